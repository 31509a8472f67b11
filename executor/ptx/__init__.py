"""A PTX execution engine: the ``sim`` backend runs kernels from their PTX.

Theory of operation
-------------------
*Pipeline.* ``_parse`` reads PTX text into typed statements (directives, variables, ``.entry`` and
``.func`` with their parameters and registers, instructions with predicates and vector and address
operands). ``_program`` resolves labels, splits each function into basic blocks and computes every
block's immediate post-dominator — where threads that diverge at a branch meet again. ``_ops``
compiles each instruction once into a closure over NumPy arrays; an instruction or modifier it does
not implement stops that at *prepare* time, so a kernel that uses one answers
``CUDA_ERROR_NOT_SUPPORTED`` naming it before anything runs (the module still loads, and its other
kernels run). :class:`LoadedModule` parses the module's skeleton once (directives, variables,
signatures) and each function's body when a kernel that reaches it is first prepared, so a library's
module of hundreds of kernels costs the parse of those it launches; a kernel is prepared at its first
launch. For ``sim``'s function attributes the engine is the JIT compiler: ``resources`` lays a kernel
out (shared, const and local bytes, registers) from the parse alone.

*Execution model.* A launch runs the grid block by block in *batches*: as many whole blocks as fit
:attr:`Limits.batch_threads` (and the register and shared-memory bounds) execute together, one
NumPy element per thread for every register, so the engine's memory does not grow with the grid.
Blocks may run in any order on a GPU; here they run in index order. Within a batch all threads
execute in lockstep under an *active mask* with a SIMT reconvergence stack (GPGPU-Sim's design):
a branch on which the active threads disagree pushes both paths, each to run until the
reconvergence point (the immediate post-dominator), where the threads continue together. This is
stronger than a GPU's scheduling and therefore legal for every race-free program: warp-synchronous
code (``shfl.sync``, ``vote.sync``, ``__syncwarp``) sees its whole warp, and ``bar.sync`` is a
point all threads of a block reach together when control flow around it is uniform. A barrier
reached by only some of a block's running threads is a barrier in divergent code, undefined in
CUDA; the engine ends the launch with ``CUDA_ERROR_LAUNCH_FAILED`` (threads that exited, or that
only wait to exit, count as arrived). ``call`` runs a ``.func`` for the active threads in a fresh
frame (registers, ``.param`` variables shared with the caller's, a local-memory frame on each
thread's stack), nested at most :attr:`Limits.call_depth` deep. A call to the extern ``vprintf`` (device
``printf``) is an intrinsic (``_printf``): formatted per thread from checked reads, bounded per
launch, logged, and handed to the listener the backend runs the launch under (:func:`printf_listening`;
``sim`` passes it to the worker's trace); a call to ``__assertfail`` (device ``assert``) prints CUDA's
line the same way and ends the launch with ``CUDA_ERROR_ASSERT``, sticky. Tensor cores: ``mma.sync``,
``ldmatrix``, ``stmatrix`` and ``movmatrix`` follow the ISA's fragment layouts (``_isa_tensor``);
``wmma.*``, whose layout the ISA leaves open, uses one of the engine's own (``_isa_wmma``); both
multiply exactly in float64 (int64) and round once, and need every lane of the warp.

*Memory.* Global and constant memory are the VM's device memory, reached only through its checked
``read``/``write`` (``executor._kernels.DeviceMemory``): an address outside the VM's allocations is
``CUDA_ERROR_ILLEGAL_ADDRESS``, sticky, as a fault is on a GPU; a misaligned one is
``CUDA_ERROR_MISALIGNED_ADDRESS``, sticky too (in every state space). Shared memory is a byte
array per block (static variables, then the dynamic ``extern`` window of the launch's size); local
memory a stack per thread; param space the launch's parameter block (kernel) or per-thread frames
(``.func``). Generic addresses map shared and local memory into windows above the 47-bit device
address space (``cvta`` converts). Module globals are where ``sim`` placed them (their addresses
come with the launch). Texture and surface objects (``tex``, ``tld4``, ``suld``, ``sust`` and their
queries: ``_isa_texture``, sampling in ``_texture_sample``) are handles the launch's
:class:`~._texture_objects.TextureObjects` resolves to texels in the VM's device memory, read and
written through the same checked gathers; an unknown handle is ``CUDA_ERROR_ILLEGAL_ADDRESS``, sticky.

*Bounds.* Every launch has an instruction budget and a wall-clock budget (:class:`Limits`); past
either it ends with ``CUDA_ERROR_LAUNCH_TIMEOUT`` (sticky, as a GPU's watchdog). Local memory,
registers and shared memory per batch are bounded; what does not fit one block is
``CUDA_ERROR_NOT_SUPPORTED``. Registers count as held at once, not as declared: a function declaring
many lets each register go where it dies (``_liveness``: backward dataflow over the CFG; a register
a thread waiting elsewhere on the SIMT stack still needs stays). A cooperative launch runs its whole
grid as one batch, so that ``grid.sync()``'s barrier word sees every block; one the engine cannot
hold as one batch is ``CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE``. What the engine keeps across
launches is charged to the launching VM's host budget before it is spent (``load_module(text,
budget)``, ``kernel(name, budget)``): a parsed module by its text's size, a prepared kernel by its
instructions; past the budget the launch answers ``CUDA_ERROR_OUT_OF_MEMORY`` after the VM's own
older cached modules have been let go.

*Numerics.* Integer arithmetic is exact (wrapping) at every width. Float32/64 ``add``/``sub``/``mul``/
``fma``/``div``/``cvt`` honour ``.rn/.rz/.rm/.rp`` exactly (from error-free transformations in
float64); ``.ftz`` flushes float32 subnormals; ``.sat`` clamps. The ``.approx`` functions (``ex2``,
``lg2``, ``sin``, ``cos``, ``tanh``, ``rsqrt``, ``rcp``, ``sqrt``) are computed in float64 and rounded
once: at least as accurate as the ISA documents, so not bitwise equal to a GPU's. ``fma.rn`` is C's
``fmaf``/``fma`` (``_fma``, built by ``setup.py``); the Python fallback of ``fma.rn.f64`` is exact
while the product's error is a double (``_numeric.fma64``), within an ulp past that.
"""

from ._cluster import cluster_shape
from ._isa import SUPPORTED
from ._machine import CACHED_MODULES, GRID_WORKSPACE_BYTES, Kernel, LoadedModule, launch, load_module
from ._parse import PtxSyntaxError, parse_ptx
from ._printf import listening as printf_listening
from ._program import build_program
from ._state import Limits

__all__ = [
    "CACHED_MODULES",
    "GRID_WORKSPACE_BYTES",
    "SUPPORTED",
    "Kernel",
    "Limits",
    "LoadedModule",
    "PtxSyntaxError",
    "build_program",
    "cluster_shape",
    "launch",
    "load_module",
    "parse_ptx",
    "printf_listening",
]
