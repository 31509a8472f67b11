"""Hostile values against this session's guest-reachable calls (security review): every field a guest
writes at its edges (0, 1, page and int64/uint64 boundaries), each call answering a CUDA error or
touching only the bytes it names — never another exception, never bytes beside them."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from executor import CudaError, PinnedArea, VmShare, _cuda, _cuda_textures
from protocol import CUresult
from tests.executor.test_cuda_textures import TEXTURE, FakeDriver
from tests.executor.test_cuda_textures import _executor as _stand_in
from tests.executor.test_handlers import Handle
from tests.executor.test_handlers import call_handler as _call
from tests.executor.test_sim_textures import LAYERED, Gpu

#: values where arithmetic on u64 fields goes wrong: 0, 1, small, page, int64 and uint64 edges
_EDGES = [0, 1, 2, 3, 4, 15, 16, 64, 4095, 4096, 2**31, 2**32 - 1, 2**32, 2**62, 2**63 - 1, 2**63,
          2**64 - 4096, 2**64 - 1]
_U64 = st.one_of(st.sampled_from(_EDGES), st.integers(0, 2**64 - 1), st.integers(0, 64))


def _fields(draw: Any, names: tuple[str, ...]) -> dict[str, int]:
    return {name: draw(_U64) for name in names}


@st.composite
def _host_box(draw: Any) -> dict[str, int]:
    small = st.one_of(st.integers(0, 8), _U64)  # coordinates mostly inside, so the strides matter
    box = {name: draw(small) for name in ("x", "y", "z")} | _fields(draw, ("pitch", "layout_height"))
    box |= {"width_bytes": draw(st.integers(1, 64)), "height": draw(st.integers(1, 4)),
            "depth": draw(st.integers(1, 3))}
    return box


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(box=_host_box(), to_device=st.booleans())
@example(box={"x": 0, "y": 0, "z": 0, "pitch": 2**63, "layout_height": 1, "width_bytes": 16, "height": 1,
              "depth": 1}, to_device=True)
def test_host_box_copies_fail_as_cuda_errors_or_touch_just_their_box(box: dict[str, Any], to_device: bool) -> None:
    """A pitched device side with any x/y/z/pitch/layout height (``as_strided`` took a pitch past
    int64 for a one-row box: OverflowError, the worker's 'call crashed', CUDA_ERROR_UNKNOWN): a CUDA
    error that changes nothing, or exactly the box's bytes (``device + z*pitch*layout_height + y*pitch
    + x`` onwards, which may name another of the VM's blocks), all inside one block."""
    gpu = Gpu()
    blocks = [int(gpu("mem_alloc", bytesize=4096).dptr) for _ in range(3)]
    model = {ptr: bytearray(bytes([0xA0 + i]) * 4096) for i, ptr in enumerate(blocks)}
    for ptr, data in model.items():
        gpu("memcpy_htod", inp=bytes(data), dst=ptr, stream=0)
    w, h, d = box["width_bytes"], box["height"], box["depth"]
    payload = bytes(range(256)) * (w * h * d // 256 + 1)
    first = blocks[1] + box["z"] * box["pitch"] * box["layout_height"] + box["y"] * box["pitch"] + box["x"]
    addresses = [first + k * box["pitch"] * box["layout_height"] + j * box["pitch"] + i
                 for k in range(d) for j in range(h) for i in range(w)]
    try:
        if to_device:
            gpu("memcpy_3d_htod", inp=payload[:w * h * d], array=0, stream=0, device=blocks[1], **box)
        else:
            gpu("memcpy_3d_dtoh", out_cap=w * h * d, array=0, stream=0, device=blocks[1], **box)
    except CudaError:
        served = False
    else:
        served = True
        owner = [ptr for ptr in blocks if ptr <= addresses[0] < ptr + 4096]
        assert owner and all(owner[0] <= a < owner[0] + 4096 for a in addresses)  # one block holds the box
        data = model[owner[0]]
        if to_device:
            for n, a in enumerate(addresses):
                data[a - owner[0]] = payload[n]
        else:
            assert gpu.out == bytes(data[a - owner[0]] for a in addresses)
    for ptr, data in model.items():  # nothing else moved (nothing at all when refused)
        gpu("memcpy_dtoh", out_cap=4096, src=ptr, count=4096, stream=0)
        assert gpu.out == bytes(data), (served, ptr)


_U32 = st.one_of(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 0x10, 0x20, 0xFF, 2**31, 2**32 - 1]), st.integers(0, 2**32 - 1))
_SMALL = st.one_of(st.integers(0, 70), st.sampled_from([2046, 2048, 16384, 32768, 65536, 131072]), _U64)


@settings(max_examples=300, deadline=None)
@given(width=_SMALL, height=_SMALL, depth=_SMALL, fmt=st.sampled_from([0x01, 0x02, 0x03, 0x08, 0x0A, 0x10, 0x20]) | _U32,
       channels=st.sampled_from([1, 2, 4]) | _U32, flags=st.integers(0, 0x1FF) | _U32)
def test_array_descriptors_are_served_or_refused_with_a_status(width: int, height: int, depth: int, fmt: int,
                                                               channels: int, flags: int) -> None:
    """Any descriptor: an array within the quota or a CUDA error — and a refused one holds nothing."""
    gpu = Gpu(quota=64 << 20)
    try:
        gpu("array_create", width=width, height=height, depth=depth, format=fmt, channels=channels, flags=flags)
    except CudaError:
        assert gpu.ex.memory.used == 0 and gpu.ex.live_handles() == 0 and gpu.ex.host.used == 0
    assert gpu.ex.memory.used <= 64 << 20


@settings(max_examples=300, deadline=None)
@given(resource=st.sampled_from([0, 1, 2, 3]) | _U32, offset=st.sampled_from([0, 256, 4096]) | _U64,
       size_bytes=_SMALL, width=_SMALL, height=_SMALL, pitch=_SMALL, fmt=st.sampled_from([0x01, 0x20]) | _U32,
       channels=st.sampled_from([1, 2, 4]) | _U32, modes=st.lists(_U32, min_size=3, max_size=3),
       filter_=st.sampled_from([0, 1]) | _U32, flags=st.integers(0, 0x7F) | _U32,
       border=st.floats(allow_nan=True, allow_infinity=True, width=32))
def test_texture_descriptions_are_served_or_refused_with_a_status(
        resource: int, offset: int, size_bytes: int, width: int, height: int, pitch: int, fmt: int, channels: int,
        modes: list[int], filter_: int, flags: int, border: float) -> None:
    gpu = Gpu()
    block = int(gpu("mem_alloc", bytesize=8192).dptr)
    arr = gpu.array(4, 4)
    held = gpu.ex.host.used
    args: dict[str, Any] = dict(resource=resource, array=arr, device=(block + offset) % 2**64, size_bytes=size_bytes,
                width=width, height=height, pitch=pitch, format=fmt, channels=channels, address_x=modes[0],
                address_y=modes[1], address_z=modes[2], filter=filter_, flags=flags, border_r=border,
                border_g=0.0, border_b=0.0, border_a=border)
    try:
        gpu("tex_object_create", **args)
    except CudaError:
        assert gpu.ex.host.used == held


class _ContextDriver(FakeDriver):
    """The texture stand-in driver, able to make and destroy a context too."""

    def __getattr__(self, name: str) -> Any:
        if name in ("cuDeviceGet", "cuCtxCreate"):
            def made(*args: Any) -> tuple[int, Any]:
                self.calls.append((name, args))
                return (0, Handle())
            return made
        if name == "cuDeviceGetName":
            return lambda size, device: (0, b"stand-in".ljust(size, b"\0"))
        if name == "CUstream":
            return lambda value: Handle()
        return super().__getattr__(name)


def test_a_closed_cuda_context_holds_no_arrays_textures_or_surfaces(monkeypatch: pytest.MonkeyPatch) -> None:
    """``CudaExecutor.close`` destroys the VM's arrays and texture/surface objects (before the context)
    and forgets them: it kept them, so a closed context still counted them in ``live_handles`` (what
    a session must release to zero) and in the quota's bytes."""
    driver = _ContextDriver()
    monkeypatch.setattr(_cuda, "load_driver", lambda: driver)
    monkeypatch.setattr(_cuda, "cuda_available", lambda: (True, ""))
    ex = _cuda.CudaExecutor()
    array = _call(ex, "array_create", width=64, height=64, depth=0, format=0x20, channels=4, flags=2)
    _call(ex, "tex_object_create", **(TEXTURE | dict(array=int(array.array))))
    _call(ex, "surf_object_create", array=int(array.array))
    assert ex.live_handles() == 3 and ex.memory_used() == 64 * 64 * 16
    ex.close()
    assert ex.live_handles() == 0 and ex.memory_used() == 0
    destroyed = [name for name, _ in driver.calls if name.endswith("Destroy")]
    assert destroyed[:3] == ["cuTexObjectDestroy", "cuSurfObjectDestroy", "cuArrayDestroy"]
    assert destroyed[-1] == "cuCtxDestroy"


@st.composite
def _array_box(draw: Any) -> tuple[int, int, int, int, int, int]:
    """(x, y, z, w, h, d) for a 64 x 4 x 3-byte array of 4-byte texels: half of them inside, the rest
    anything (partial texels, past an edge, u64 edges)."""
    if draw(st.booleans()):
        x, y, z = 4 * draw(st.integers(0, 15)), draw(st.integers(0, 3)), draw(st.integers(0, 2))
        return (x, y, z, 4 * draw(st.integers(1, 16 - x // 4)), draw(st.integers(1, 4 - y)),
                draw(st.integers(1, 3 - z)))
    return (draw(_SMALL), draw(_SMALL), draw(_SMALL), draw(st.integers(1, 80)), draw(st.integers(1, 6)),
            draw(st.integers(1, 5)))


@settings(max_examples=300, deadline=None)
@given(box=_array_box(), layered=st.booleans(), to_array=st.booleans())
def test_array_boxes_fail_as_cuda_errors_or_touch_just_their_box(box: tuple[int, int, int, int, int, int],
                                                                layered: bool, to_array: bool) -> None:
    """An array side with any box: refused, or exactly the box of the array's texels (rows of 16
    texels of 4 bytes, 4 rows, 3 slices or layers), the other arrays untouched."""
    x, y, z, w, h, d = box
    gpu = Gpu()
    arrays = [gpu.array(16, 4, 3, flags=LAYERED if layered else 0) for _ in range(3)]
    model = {a: np.arange(3 * 4 * 64, dtype=np.uint32).astype(np.uint8).reshape(3, 4, 64) + i
             for i, a in enumerate(arrays)}
    for a, data in model.items():
        gpu.put(data, array=a)
    payload = (np.arange(w * h * d, dtype=np.uint32) * 7).astype(np.uint8).reshape(d, h, w)
    try:
        if to_array:
            gpu.put(payload, array=arrays[1], x=x, y=y, z=z)
        else:
            got = gpu.get((d, h, w), array=arrays[1], x=x, y=y, z=z)
    except CudaError:
        event("refused")
    else:
        event("served")
        inside = model[arrays[1]][z:z + d, y:y + h, x:x + w]
        assert inside.shape == (d, h, w) and x % 4 == 0 and w % 4 == 0  # served only inside, whole texels
        if to_array:
            inside[...] = payload
        else:
            assert np.array_equal(got, inside)
    for a, data in model.items():
        assert np.array_equal(gpu.get((3, 4, 64), array=a), data)


def test_cuda_bounds_the_texture_and_surface_objects_a_vm_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the bound every handle kind has, a new texture or surface object is OUT_OF_MEMORY before
    the driver makes one (the cuda backend kept them in dicts without any bound or charge: a guest
    could grow its worker's records, and the driver's, without limit); destroying one makes room."""
    monkeypatch.setattr(_cuda_textures, "MAX_OBJECTS", 2)
    driver = FakeDriver(object_values=list(range(10, 20)))
    ex = _stand_in(driver)
    array = int(_call(ex, "array_create", width=4, height=4, depth=0, format=0x20, channels=1, flags=2).array)
    cases: list[tuple[str, dict[str, Any]]] = [("tex", TEXTURE | dict(array=array)), ("surf", dict(array=array))]
    for kind, args in cases:
        made = [int(getattr(_call(ex, f"{kind}_object_create", **args), "texture" if kind == "tex" else "surface"))
                for _ in range(2)]
        creates = len(driver.called(f"cu{kind.capitalize()}ObjectCreate"))
        with pytest.raises(CudaError) as caught:
            _call(ex, f"{kind}_object_create", **args)
        assert caught.value.status == CUresult.CUDA_ERROR_OUT_OF_MEMORY
        assert len(driver.called(f"cu{kind.capitalize()}ObjectCreate")) == creates  # the driver was not asked
        handle: dict[str, Any] = {"texture" if kind == "tex" else "surface": made[0]}
        _call(ex, f"{kind}_object_destroy", **handle)
        _call(ex, f"{kind}_object_create", **args)


def test_the_c_copy_path_lets_an_array_go_with_its_destruction() -> None:
    """A guest that names a CUDA array's memory as device memory (its address is never handed out,
    but it is the VM's own and can be guessed) is served in C like any block, and once the array is
    destroyed its copies are refused as the Python path refuses them, never reaching freed bytes."""
    from tests.executor.test_pinned_fast import DTOH, HTOD, STAGED_DTOH, STAGED_HTOD, Side, both, fresh_sides

    page = 4096

    def script(side: Side) -> None:
        handle = side.value("array_create", "array", width=8 * page // 16, height=1, depth=0, format=0x20,
                            channels=4, flags=0)
        into = side.pair.executor.textures.arrays.get(handle).ptr - side.dev
        copies = [side.staged(STAGED_HTOD, count=page, dev_offset=into),
                  side.staged(STAGED_DTOH, count=page, dev_offset=into + page),
                  side.copy(HTOD, count=page, dev_offset=into + 2 * page),
                  side.copy(DTOH, count=page, dev_offset=into + 3 * page)]
        side.submit(copies)
        side.submit(copies)  # served in C now that it knows the block
        side.pair.call("array_destroy", array=handle)
        side.submit(copies)  # refused: the array's memory is gone

    with fresh_sides() as sides:
        fast, slow = both(sides, script)
        assert [s[2] for s in fast.seen if s[0] != "drain"][-4:] == [CUresult.CUDA_ERROR_INVALID_VALUE] * 4
        assert fast.python_copies <= slow.python_copies - 4  # the second batch was served in C


_ALIAS_OPS = st.lists(st.tuples(st.sampled_from(["alloc", "alloc", "alias", "alias", "alias", "free", "block", "close"]),
                                st.integers(0, 1),
                                st.integers(0, 7), st.sampled_from([0, 1, 2, 3, 63, 64, 4096]) | _U64),
                      min_size=4, max_size=30)


@settings(max_examples=300, deadline=None)
@given(ops=_ALIAS_OPS)
def test_aliases_across_two_contexts_never_overlap_and_reach_only_their_own_range(
        ops: list[tuple[str, int, int, int]]) -> None:
    """Two processes of one VM allocating pinned ranges, aliasing them at addresses of their choosing
    (their guest pointers: near others', on device blocks, anywhere), allocating device blocks, freeing
    and closing, in any order: the VM's claimed addresses never overlap, and every live alias is its
    own range's bytes in its own context's map alone."""
    from tests.executor.test_pinned import GUEST_AREA, PAGE, call

    buf = bytearray(64 * PAGE)
    share = VmShare("sim")
    share.pinned = PinnedArea(memoryview(buf))
    contexts = [share.create_context(), share.create_context()]
    ranges: list[list[int]] = [[], []]
    for op, who, pick, value in ops:
        ex = contexts[who]
        mine = ranges[who]
        try:
            if op == "alloc":
                made = call(ex, "mem_host_alloc", bytesize=(pick % 3 + 1) * PAGE, flags=2)
                mine.append(int(made.offset))  # type: ignore[attr-defined]
            elif op == "alias" and mine:
                address = value if value > 64 * PAGE else GUEST_AREA + value * PAGE if value < 64 else 0
                call(ex, "mem_host_alias", offset=mine[pick % len(mine)], address=address)
            elif op == "free" and mine:
                call(ex, "mem_free_host", offset=mine.pop(pick % len(mine)))
            elif op == "block":
                call(ex, "mem_alloc", bytesize=(pick + 1) * PAGE)
            elif op == "close":
                share.close_context(ex)
                contexts[who], ranges[who] = share.create_context(), []
        except CudaError:
            pass
        space = contexts[0].memory.space  # type: ignore[attr-defined]
        claims = list(zip(space.starts, space.ends, strict=True))
        assert claims == sorted(claims) and all(a[1] <= b[0] for a, b in itertools.pairwise(claims))
        for me, other in ((0, 1), (1, 0)):
            memory = contexts[me].memory  # type: ignore[attr-defined]
            for offset, start in memory.host_aliases.items():
                alloc = memory.allocations.find(start)
                assert alloc is not None and alloc.kind == "host" and offset in ranges[me]
                assert np.shares_memory(alloc.obj, np.frombuffer(buf, np.uint8)[offset:offset + alloc.size])
                assert contexts[other].memory.allocations.find(start) is None  # type: ignore[attr-defined]
                event("a live alias checked")
    for ex in contexts:
        share.close_context(ex)
    assert share.pinned.allocator.used == 0
