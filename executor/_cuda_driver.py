"""The ``cuda`` backend's boundary with NVIDIA's bindings: lazy imports, status translation, probing.

Nothing here imports ``cuda.bindings`` or ``nvmath`` at module import time, so ``executor._cuda`` can be
imported on a machine with neither a driver nor the packages; :func:`load_driver` and
:func:`load_cublas` import them on first use and turn an :class:`ImportError` into
:class:`BackendUnavailableError`. Every driver call goes through :func:`check`, which turns a failing
``CUresult`` into a :class:`CudaError` carrying the protocol's ``CUresult`` of the same value (unknown
values become ``CUDA_ERROR_UNKNOWN`` with the number in the message) and marks the errors that poison a
context as sticky.
"""

from __future__ import annotations

from typing import Any, Final

from protocol import CublasStatus, CUresult

from ._errors import BackendUnavailableError, CudaError

__all__ = [
    "STICKY",
    "check",
    "cublas_error",
    "cuda_available",
    "driver_error",
    "load_cublas",
    "load_driver",
    "status_code",
]

#: ``CUresult`` values after which the context is unusable (cuda.h: "the process must be terminated
#: and relaunched"): illegal address, launch timeout, assert, hardware stack error, illegal
#: instruction, misaligned address, invalid address space, invalid PC, launch failed, and the
#: cooperative launch / tensor memory leak faults.
STICKY: Final = frozenset({700, 702, 710, 714, 715, 716, 717, 718, 719, 720, 721, 722})

_driver: Any = None
_cublas: Any = None


def load_driver() -> Any:
    """``cuda.bindings.driver``, imported on first use."""
    global _driver
    if _driver is None:
        try:
            from cuda.bindings import driver
        except ImportError as exc:
            raise BackendUnavailableError(
                "the cuda backend needs NVIDIA's cuda-bindings (pip install 'vgpu-mediator[cuda]'): "
                f"{exc}") from exc
        _driver = driver
    return _driver


def load_cublas() -> Any:
    """``nvmath.bindings.cublas``, imported on first use (it loads libcublas itself)."""
    global _cublas
    if _cublas is None:
        try:
            from nvmath.bindings import cublas
        except ImportError as exc:
            raise BackendUnavailableError(
                f"cuBLAS calls need nvmath-python (pip install 'vgpu-mediator[cuda]'): {exc}") from exc
        _cublas = cublas
    return _cublas


def status_code(err: Any) -> int:
    """The integer value of a cuda-bindings ``CUresult`` (an enum member or a plain int)."""
    value = getattr(err, "value", err)
    return int(value)


def _describe(code: int) -> str:
    driver = _driver
    if driver is None:
        return f"CUresult {code}"
    try:
        err = driver.CUresult(code)
        _, name = driver.cuGetErrorName(err)
        _, text = driver.cuGetErrorString(err)
    except Exception:
        return f"CUresult {code}"
    name_s = name.decode() if isinstance(name, bytes) else str(name)
    text_s = text.decode() if isinstance(text, bytes) else str(text)
    return f"{name_s} ({text_s})"


def driver_error(code: int, what: str) -> CudaError:
    """The :class:`CudaError` for a failed driver call ``what`` that returned ``code``."""
    try:
        status = CUresult(code)
        detail = f"{what} failed: {_describe(code)}"
    except ValueError:
        status = CUresult.CUDA_ERROR_UNKNOWN
        detail = f"{what} failed with CUresult {code}, which the protocol has no name for: {_describe(code)}"
    return CudaError(status, detail, sticky=code in STICKY)


def check(result: Any, what: str) -> Any:
    """Unpack a cuda-bindings return tuple ``(err, *values)``: the value (or a tuple of them, or None);
    raises :class:`CudaError` when ``err`` is not ``CUDA_SUCCESS``."""
    if isinstance(result, tuple):
        code = status_code(result[0])
        if code:
            raise driver_error(code, what)
        if len(result) == 1:
            return None
        if len(result) == 2:
            return result[1]
        return result[1:]
    code = status_code(result)
    if code:
        raise driver_error(code, what)
    return None


def cublas_error(exc: Exception, what: str) -> CudaError:
    """Translate nvmath's ``cuBLASError`` (its ``status`` attribute is the ``cublasStatus_t``)."""
    raw = getattr(exc, "status", None)
    try:
        status = CublasStatus(int(raw)) if raw is not None else CublasStatus.CUBLAS_STATUS_INTERNAL_ERROR
    except (TypeError, ValueError):
        status = CublasStatus.CUBLAS_STATUS_INTERNAL_ERROR
    return CudaError(status, f"{what} failed: {exc}")


def cuda_available() -> tuple[bool, str]:
    """Whether the ``cuda`` backend can run here, and why (never raises)."""
    try:
        driver = load_driver()
    except BackendUnavailableError as exc:
        return False, str(exc)
    try:
        code = status_code(driver.cuInit(0)[0])
        if code:
            return False, f"cuInit failed: {_describe(code)}"
        err, count = driver.cuDeviceGetCount()
        if status_code(err):
            return False, f"cuDeviceGetCount failed: {_describe(status_code(err))}"
        if count < 1:
            return False, "the driver reports no CUDA device"
        err, version = driver.cuDriverGetVersion()
        version_s = f"{version // 1000}.{version % 1000 // 10}" if not status_code(err) else "?"
        return True, f"{count} CUDA device(s), driver API {version_s}"
    except Exception as exc:  # a broken driver installation must not take the caller down
        return False, f"probing the CUDA driver failed: {exc!r}"
