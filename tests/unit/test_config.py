"""The TOML configuration: defaults, sizes, and errors that name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediator import ConfigError, load_config, parse_config


def test_defaults_need_no_file_content() -> None:
    config = parse_config({})
    assert config.mediator.backend == "auto"
    assert config.mediator.region_size == 64 * 2**20
    assert config.mediator.control_path == Path("/run/vgpu-mediator/control.sock")
    assert config.vm == []


def test_sizes_accept_units(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[mediator]\nregion_size = "128MiB"\n[[vm]]\nid = 1\nname = "a"\nmemory_quota = "4GiB"\n')
    config = load_config(path)
    assert config.mediator.region_size == 128 * 2**20
    assert config.vm[0].memory_quota == 4 * 2**30


@pytest.mark.parametrize(
    ("toml", "names"),
    [
        ('[mediator]\nbackend = "opencl"\n', "mediator.backend"),
        ('[mediator]\nregion_size = "3MiB"\n', "mediator"),
        ('[mediator]\nregion_size = "lots"\n', "mediator.region_size"),
        ('[mediator]\nsocket_dri = "/x"\n', "mediator.socket_dri"),
        ('[[vm]]\nid = 1\nname = "a"\n[[vm]]\nid = 2\nname = "b c"\n', "vm[1].name"),
        ('[[vm]]\nid = 0\nname = "a"\n', "vm[0].id"),
        ('[[vm]]\nid = 1\nname = "a"\n[[vm]]\nid = 1\nname = "b"\n', "share id 1"),
        ('[device]\nuuid = "xyz"\n', "device"),
    ],
)
def test_errors_name_the_bad_key(tmp_path: Path, toml: str, names: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert names in str(err.value)
    assert str(path) in str(err.value)


def test_unreadable_and_invalid_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[mediator\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)
