"""vgpu-mediator: run the daemon, ask it for status and traces, change a VM, or run the demo."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from ._config import ConfigError, MediatorConfig, load_config

__all__ = ["main"]

#: the configuration every command reads unless -c names another (VGPU_MEDIATOR_CONFIG overrides it)
DEFAULT_CONFIG = Path("/etc/vgpu-mediator/config.toml")
DESCRIPTION = ("Host side of CUDA API remoting for VMs: run the daemon, ask it for status and traces, "
               "change a VM's quota, reset or detach it, or run a self-contained demo.")


def _default_config() -> Path:
    return Path(os.environ.get("VGPU_MEDIATOR_CONFIG", DEFAULT_CONFIG))


def _load(path: str | None) -> tuple[MediatorConfig, Path | None]:
    """The configuration named, else the default one if present, else the built-in defaults."""
    if path is None:
        default = _default_config()
        if default.exists():
            return load_config(default), default
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


def _pinned(vm: dict[str, Any]) -> str:
    """The VM's pinned area: what its processes hold of it (``cudaMallocHost``), of its size."""
    size = vm.get("pinned_size") or 0
    return f"{_human(vm.get('pinned_used', 0))}/{_human(size)}" if size else "-"


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
    header = ("ID", "NAME", "STATE", "PID", "PROCS", "CALLS", "ERRORS", "CALLS/S", "MEMORY", "QUOTA",
              "PINNED")
    rows = [header]
    overridden = False
    for vm in reply["vms"]:
        operator = vm.get("memory_quota_source") == "operator"
        overridden |= operator
        rows.append((str(vm["id"]), vm["name"], vm["state"] + (" (removed)" if vm.get("retiring") else ""),
                     str(vm["worker_pid"] or "-"),
                     f"{vm.get('channels_open', 0)}/{vm.get('channel_count', '-')}",
                     str(vm["calls"]), str(vm["errors"]),
                     f"{vm['calls_per_s']:.0f}", _human(vm["memory_used"]),
                     _human(vm["memory_quota"]) + ("*" if operator else ""), _pinned(vm)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    channels = [(vm["name"], c) for vm in reply["vms"] for c in vm.get("channels", [])
                if c["state"] == "open"]
    if channels:  # one line per guest process holding a context
        lines.append("")
        lines += [f"{name} ch{c['index']}  pid {c['owner_pid']}  peer {c['owner_peer']}  "
                  f"gen {c['generation']}  calls {c['calls']}  errors {c['errors']}  "
                  f"memory {_human(c['memory_used'])}  handles {c['live_handles']}" for name, c in channels]
    if overridden:
        lines += ["", "* set at run time (set-quota), overriding the configuration file's until it changes"]
    return "\n".join(lines)


def _control_paths(args: argparse.Namespace, config: MediatorConfig, *, operator: bool = False) -> list[Path]:
    """Where to ask: the socket given, or the configuration's operators' socket and then (to read) the
    read-only one."""
    if args.socket:
        return [Path(args.socket)]
    if operator:  # a change: the read-only socket would refuse it
        return [config.mediator.control_path]
    return [config.mediator.control_path, config.mediator.control_ro_path]


def _ask(args: argparse.Namespace, payload: dict[str, Any], *, operator: bool = False) -> dict[str, Any]:
    from ._control_client import request_first

    config, _ = _load(args.config)
    return request_first(_control_paths(args, config, operator=operator), payload)


def cmd_status(args: argparse.Namespace) -> int:
    reply = _ask(args, {"cmd": "status"})
    reply.pop("ok", None)
    print(json.dumps(reply, indent=2) if args.json else format_status(reply))
    return 0


def _stamp(time_ns: int) -> str:
    """Local time with its UTC offset, to the microsecond."""
    return datetime.fromtimestamp(time_ns / 1e9).astimezone().isoformat(timespec="microseconds")


def format_trace(record: dict[str, Any], vm: str) -> str:
    flags = " async" if record["flags"] & 1 else ""
    channel = record.get("channel")
    where = f"{vm}/ch{channel}" if channel is not None else vm
    return (f"{_stamp(record['time_ns'])} {where} #{record['seq']} {record['call']}({record['args']}){flags}"
            f" -> {record['status_name']} {record['duration_ns'] / 1000:.1f}µs")


def _wanted(args: argparse.Namespace, record: dict[str, Any]) -> bool:
    return (not args.call or record["call"] == args.call) and not (args.errors and record["status"] == 0)


def _print_record(args: argparse.Namespace, record: dict[str, Any], vm: str) -> None:
    print(json.dumps(record) if args.json else format_trace(record, vm), flush=True)


def cmd_trace(args: argparse.Namespace) -> int:
    from protocol import CALLS_BY_NAME

    if args.call and args.call not in CALLS_BY_NAME:
        close = [name for name in CALLS_BY_NAME if args.call in name][:8]
        hint = f"; did you mean {', '.join(close)}?" if close else " (catalog names, e.g. mem_alloc)"
        print(f"vgpu-mediator: unknown call {args.call!r}{hint}", file=sys.stderr)
        return 2
    if args.lines < 0:
        print("vgpu-mediator: -n must be 0 or more", file=sys.stderr)
        return 2
    if args.on or args.off:
        reply = _ask(args, {"cmd": "trace", "vm": args.vm, "enable": bool(args.on)}, operator=True)
        print(f"tracing {'on' if reply['tracing'] else 'off'} for {reply['vm']}", flush=True)
        if not args.follow:
            return 0
    filtered = bool(args.call or args.errors)
    # -n counts what is printed: with a filter, the whole ring is read and the last n matches kept
    reply = _ask(args, {"cmd": "trace", "vm": args.vm, "limit": None if filtered else args.lines})
    history = [r for r in reply["records"] if _wanted(args, r)]
    for record in history[-args.lines:] if args.lines else []:
        _print_record(args, record, reply["vm"])
    if not args.follow:
        return 0
    from ._control_client import request_first

    paths = _control_paths(args, _load(args.config)[0])  # once: the loop asks five times a second
    after = reply["next"]
    while True:
        time.sleep(0.2)
        reply = request_first(paths, {"cmd": "trace", "vm": args.vm, "after": after})
        records = reply["records"]
        lost = lost_records(reply, after)
        if lost:
            print(f"vgpu-mediator: {lost} trace records lost (the ring was overwritten before they "
                  "were read)", file=sys.stderr, flush=True)
        for record in records:
            if _wanted(args, record):
                _print_record(args, record, reply["vm"])
        after = reply["next"]


def lost_records(reply: dict[str, Any], after: int) -> int:
    """How many records past ``after`` a trace reply no longer has: the worker wrote faster than we
    read, and the ring lapped us (its records carry their index; ``next`` is one past the newest)."""
    first = reply["records"][0]["index"] if reply["records"] else reply["next"]
    return max(int(first) - after, 0)


def _vm_command(cmd: str, done: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        payload: dict[str, Any] = {"cmd": cmd, "vm": args.vm}
        if cmd == "set_quota":
            payload["bytes"] = None if args.size.lower() in ("none", "null") else args.size
        _ask(args, payload, operator=True)
        print(done.format(vm=args.vm, size=getattr(args, "size", None)))
        return 0

    return run


def cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return run_demo(backend=args.backend, size_mib=args.size_mib)


def _version() -> str:
    try:
        return importlib.metadata.version("vgpu-mediator")
    except importlib.metadata.PackageNotFoundError:  # a tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vgpu-mediator", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    config_help = f"TOML configuration (default: {DEFAULT_CONFIG} if present; VGPU_MEDIATOR_CONFIG overrides)"
    client = argparse.ArgumentParser(add_help=False)  # how every client command finds the daemon
    client.add_argument("-c", "--config", help=f"{config_help}; its control socket is asked")
    client.add_argument("-s", "--socket", help="control socket path (overrides the configuration's)")

    run = sub.add_parser("run", help="run the daemon in the foreground",
                         description="Run the daemon in the foreground (systemd: Type=notify).")
    run.add_argument("-c", "--config", help=config_help)
    run.set_defaults(func=cmd_run)
    status = sub.add_parser("status", parents=[client], help="VMs, calls, errors, memory of a running daemon",
                            description="Show the running daemon's VMs, calls, errors and memory.")
    status.add_argument("--json", action="store_true", help="everything, as one JSON object")
    status.set_defaults(func=cmd_status)
    trace = sub.add_parser("trace", parents=[client],
                           help="show a VM's traced calls (switch tracing with --on/--off)",
                           description="Show a VM's traced calls, or switch its tracing on or off.")
    trace.add_argument("--vm", required=True, help="VM id or name")
    trace.add_argument("-f", "--follow", action="store_true", help="keep printing new calls")
    trace.add_argument("--json", action="store_true", help="one JSON object per call")
    trace.add_argument("--call", help="only this call (catalog name, e.g. mem_alloc)")
    trace.add_argument("--errors", action="store_true", help="only calls that failed")
    trace.add_argument("-n", "--lines", type=int, default=50,
                       help="how many past calls to print first, counted after --call/--errors (default 50)")
    switch = trace.add_mutually_exclusive_group()
    switch.add_argument("--on", action="store_true", help="switch tracing on for this VM")
    switch.add_argument("--off", action="store_true", help="switch tracing off for this VM")
    trace.set_defaults(func=cmd_trace)
    quota = sub.add_parser("set-quota", parents=[client], help="change a VM's device memory quota",
                           description="Change a VM's device memory quota now (its attached guest "
                           "included) until the configuration file's quota for it changes.")
    quota.add_argument("vm", metavar="VM", help="VM id or name")
    quota.add_argument("size", metavar="SIZE", help="bytes, a size such as 4GiB, or none (no quota)")
    quota.set_defaults(func=_vm_command("set_quota", "quota of {vm} set to {size}"))
    reset = sub.add_parser("reset", parents=[client], help="give a VM a fresh worker and GPU context",
                           description="Reset a VM: a fresh worker and GPU context, a new epoch; the "
                           "guest's driver starts over.")
    reset.add_argument("vm", metavar="VM", help="VM id or name")
    reset.set_defaults(func=_vm_command("reset", "{vm} reset"))
    detach = sub.add_parser("detach", parents=[client], help="end a VM's session, releasing its GPU",
                            description="End a VM's session: its GPU resources are released; the "
                            "guest sees the device stopped.")
    detach.add_argument("vm", metavar="VM", help="VM id or name")
    detach.set_defaults(func=_vm_command("detach", "{vm} detached"))
    demo = sub.add_parser("demo", help="start a mediator and a guest running a GGML-shaped workload",
                          description="Start a mediator and a Python guest and run a GGML-shaped "
                          "workload end to end (no VM needed).")
    demo.add_argument("--backend", default="auto", choices=("sim", "cuda", "auto"))
    demo.add_argument("--size-mib", type=int, default=16, help="size of the uploaded weights")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ._control_client import ControlError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"vgpu-mediator: {exc}", file=sys.stderr)
        return 2
    except ControlError as exc:
        print(f"vgpu-mediator: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`status --json | head`): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that flushing stdout at exit does not fail again
        return 141


if __name__ == "__main__":
    sys.exit(main())
