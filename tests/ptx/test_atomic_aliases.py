"""Atomics on one shared location that the threads name differently in a cluster launch: a block's
own location with its plain shared address and, through ``mapa``, with its rank; another block's
through ``mapa``. It is one location (``_cluster``), so every update lands, in the scans and in the
reference rounds alike (``_isa_atomic``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from executor.ptx import _isa_atomic
from tests.ptx.conftest import ptx_device
from tests.ptx.test_atomics import CLUSTER_ATOMICS

_MAPA = "    mapa.shared::cluster.u32 %r6, %r5, 0;\n"
#: rank 0's threads add with the plain address, the other ranks' through mapa to rank 0
_RANK0_PLAIN = _MAPA + (
    "    mov.u32 %r15, %cluster_ctarank;\n    setp.eq.u32 %p3, %r15, 0;\n    selp.b32 %r6, %r5, %r6, %p3;\n"
)
#: odd threads of rank 0 name their own location through mapa to their own rank, even ones plainly;
#: the other ranks through mapa to rank 0
_OWN_RANK = (
    _RANK0_PLAIN
    + "    and.b32 %r14, %r1, 1;\n    setp.ne.u32 %p2, %r14, 0;\n    @%p2 mapa.shared::cluster.u32 %r6, %r5, 0;\n"
)


@pytest.mark.parametrize("scans", [True, False], ids=["scans", "rounds"])
@pytest.mark.parametrize("naming", [_RANK0_PLAIN, _OWN_RANK], ids=["plain-and-mapa", "own-rank-mapa"])
def test_one_location_named_with_and_without_its_rank_sees_every_update(
    monkeypatch: pytest.MonkeyPatch, naming: str, scans: bool
) -> None:
    monkeypatch.setattr(_isa_atomic, "SCANS", scans)
    source = CLUSTER_ATOMICS.replace(_MAPA, naming).replace(".reg .pred %p<3>;", ".reg .pred %p<4>;")
    blocks, bt = 8, 64
    x = np.random.default_rng(3).integers(0, 1000, blocks * bt).astype(np.uint32)
    dev = ptx_device(source)
    out, olds = dev.zeros(blocks // 4, np.uint32), dev.zeros(blocks * bt, np.uint32)
    dev.run("cluster_sum", blocks, bt, dev.put(x), out, olds, cluster=(4, 1, 1))
    per_cluster = x.reshape(2, -1)
    assert dev.get(out, blocks // 4, np.uint32).tolist() == per_cluster.sum(axis=1).tolist()
    got: npt.NDArray[Any] = dev.get(olds, blocks * bt, np.uint32).reshape(2, -1)
    assert np.array_equal(got, np.cumsum(per_cluster, axis=1) - per_cluster)  # in thread order
