"""``vgpu-mediator``: run the daemon, ask it for status, or run the demo."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._config import ConfigError, MediatorConfig, load_config

__all__ = ["main"]

DEFAULT_CONFIG = Path("/etc/vgpu-mediator/config.toml")


def _load(path: str | None) -> tuple[MediatorConfig, Path | None]:
    if path is None:
        if DEFAULT_CONFIG.exists():
            return load_config(DEFAULT_CONFIG), DEFAULT_CONFIG
        return MediatorConfig(), None
    return load_config(path), Path(path)


def _run_loop(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def cmd_run(args: argparse.Namespace) -> int:
    from ._daemon import Daemon
    from ._logging import configure_logging
    from ._sockets import HostSetupError

    config, path = _load(args.config)
    configure_logging(config.mediator.log_level)
    if config.mediator.backend == "cuda":
        from executor import cuda_available

        usable, why = cuda_available()
        if not usable:  # fail at start, not at the first VM's attach
            print(f"vgpu-mediator: backend = \"cuda\" is configured but cannot run here: {why}; "
                  'use backend = "auto" or "sim"', file=sys.stderr)
            return 3
    try:
        return int(_run_loop(Daemon(config, path).run()))
    except HostSetupError as exc:  # the host is not set up to serve safely: say what to fix, once
        print(f"vgpu-mediator: {exc}", file=sys.stderr)
        return 2


def _human(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


def format_status(reply: dict[str, Any]) -> str:
    host = reply["host"]
    lines = [f"mediator pid {host['pid']}  backend {host['backend']}  up {host['uptime_s']} s  "
             f"VMs attached {host['attached']}/{host['vms']}"]
    mqtt = host.get("mqtt", {"state": "disabled"})
    if mqtt["state"] != "disabled":
        error = f"  last error: {mqtt['last_error']}" if mqtt.get("last_error") else ""
        lines.append(f"mqtt {mqtt['state']} to {mqtt['broker']}  connects {mqtt['connects']}  "
                     f"queued {mqtt['queued']}  dropped {mqtt['dropped']}{error}")
    metrics = host.get("metrics", {"state": "disabled"})
    if metrics.get("state") != "disabled":
        lines.append(f"metrics on http://{metrics['bind']}:{metrics['port']}/metrics  "
                     f"scrapes {metrics['scrapes']}")
    lines.append("")
    header = ("ID", "NAME", "STATE", "PID", "CALLS", "ERRORS", "CALLS/S", "MEMORY", "QUOTA")
    rows = [header]
    for vm in reply["vms"]:
        rows.append((str(vm["id"]), vm["name"], vm["state"], str(vm["worker_pid"] or "-"),
                     str(vm["calls"]), str(vm["errors"]), f"{vm['calls_per_s']:.0f}",
                     _human(vm["memory_used"]), _human(vm["memory_quota"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def _control_paths(args: argparse.Namespace, config: MediatorConfig) -> list[Path]:
    """Where to ask: the socket given, or the operators' socket and then the read-only one."""
    if args.socket:
        return [Path(args.socket)]
    return [config.mediator.control_path, config.mediator.control_ro_path]


def cmd_status(args: argparse.Namespace) -> int:
    from ._control_client import ControlError, request_first

    config, _ = _load(args.config)
    try:
        reply = request_first(_control_paths(args, config), {"cmd": "status"})
    except ControlError as exc:
        print(f"vgpu-mediator: {exc}", file=sys.stderr)
        return 1
    reply.pop("ok", None)
    print(json.dumps(reply, indent=2) if args.json else format_status(reply))
    return 0


def format_trace(record: dict[str, Any], vm: str) -> str:
    stamp = datetime.fromtimestamp(record["time_ns"] / 1e9, tz=UTC).strftime("%H:%M:%S.%f")
    flags = " async" if record["flags"] & 1 else ""
    return (f"{stamp} {vm} #{record['seq']} {record['call']}({record['args']}){flags} -> "
            f"{record['status_name']} {record['duration_ns'] / 1000:.1f}µs")


def cmd_trace(args: argparse.Namespace) -> int:
    from ._control_client import ControlError, request_first

    config, _ = _load(args.config)
    paths = _control_paths(args, config)
    query: dict[str, Any] = {"cmd": "trace", "vm": args.vm, "limit": args.lines}
    if args.on or args.off:
        query["enable"] = bool(args.on)
        paths = paths[:1]  # switching needs an operator: the read-only socket would refuse it
    try:
        reply = request_first(paths, query)
        if "enable" in query and not args.follow:
            print(f"tracing {'on' if reply['tracing'] else 'off'} for {reply['vm']}")
            return 0
        while True:
            for record in reply["records"]:
                if args.call and record["call"] != args.call:
                    continue
                if args.errors and record["status"] == 0:
                    continue
                print(json.dumps(record) if args.json else format_trace(record, reply["vm"]),
                      flush=True)
            if not args.follow:
                return 0
            time.sleep(0.2)
            reply = request_first(paths, {"cmd": "trace", "vm": args.vm, "after": reply["next"]})
    except ControlError as exc:
        print(f"vgpu-mediator: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return run_demo(backend=args.backend, size_mib=args.size_mib)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vgpu-mediator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the daemon in the foreground")
    run.add_argument("-c", "--config", help=f"TOML configuration (default {DEFAULT_CONFIG} if present)")
    run.set_defaults(func=cmd_run)
    status = sub.add_parser("status", help="VMs, calls, errors, memory of a running daemon")
    status.add_argument("-c", "--config")
    status.add_argument("-s", "--socket", help="control socket path (overrides the config)")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    trace = sub.add_parser("trace", help="show a VM's traced calls (switch tracing with --on/--off)")
    trace.add_argument("--vm", required=True, help="VM id or name")
    trace.add_argument("-f", "--follow", action="store_true", help="keep printing new calls")
    trace.add_argument("--json", action="store_true", help="one JSON object per call")
    trace.add_argument("--call", help="only this call (catalog name, e.g. mem_alloc)")
    trace.add_argument("--errors", action="store_true", help="only calls that failed")
    trace.add_argument("-n", "--lines", type=int, default=50, help="how much history to print first")
    switch = trace.add_mutually_exclusive_group()
    switch.add_argument("--on", action="store_true", help="switch tracing on for this VM")
    switch.add_argument("--off", action="store_true", help="switch tracing off for this VM")
    trace.add_argument("-c", "--config")
    trace.add_argument("-s", "--socket", help="control socket path (overrides the config)")
    trace.set_defaults(func=cmd_trace)
    demo = sub.add_parser("demo", help="start a mediator and a guest running a GGML-shaped workload")
    demo.add_argument("--backend", default="auto", choices=("sim", "cuda", "auto"))
    demo.add_argument("--size-mib", type=int, default=16, help="size of the uploaded weights")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"vgpu-mediator: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
