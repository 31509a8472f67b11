"""Only the C extension lives here; everything else about the package is in pyproject.toml.

``protocol._cring`` (native/cring.c) is the ring hot path. It is optional: where it cannot be built
(no compiler, no Python headers) the install carries on and protocol/_ring.py's pure-Python rings
serve instead. ``mediator._copyfast`` (native/copyfast.c) serves pinned copies on ``sim`` in C; where it
is not built the server's Python path serves them (mediator/_pinned_fast.py).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("protocol._cring", ["native/cring.c"], optional=True,
                  extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra",
                                      "-Wno-missing-field-initializers",
                                      "-Wno-cast-function-type"]),
        Extension("mediator._copyfast", ["native/copyfast.c"], optional=True,
                  extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra",
                                      "-Wno-missing-field-initializers",
                                      "-Wno-cast-function-type"]),
        # the PTX engine's fma.rn (executor/ptx/_fma.py) and native segments (_native_run.py):
        # -ffp-contract=off, so that the NaN case's x * y + z is the two roundings the Python form's
        # is; -fno-math-errno, so that sqrt is one vectorized instruction (nothing reads errno)
        Extension("executor.ptx._fmafast", ["native/ptxfma.c"], depends=["native/pyargs.h"], optional=True,
                  extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-ffp-contract=off",
                                      "-fno-math-errno",
                                      "-Wno-missing-field-initializers",
                                      "-Wno-cast-function-type"]),
        # the PTX engine's texture sampling (executor/ptx/_texture_sample.py): -ffp-contract=off, so
        # that a linear filter's blend rounds each product and sum as the NumPy form's does
        Extension("executor.ptx._texfast", ["native/ptxtex.c"], depends=["native/pyargs.h"], optional=True,
                  extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-ffp-contract=off",
                                      "-Wno-missing-field-initializers",
                                      "-Wno-cast-function-type"]),
        # the PTX engine's shared and local window accesses (executor/ptx/_memory.py): index, gather
        # and scatter in one pass each
        Extension("executor.ptx._winfast", ["native/ptxwin.c"], depends=["native/pyargs.h"], optional=True,
                  extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra",
                                      "-Wno-missing-field-initializers",
                                      "-Wno-cast-function-type"]),
    ],
)
