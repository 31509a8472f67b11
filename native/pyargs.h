/* Buffers a native function holds while it runs (the PTX engine's extensions: ptxfma.c, ptxtex.c):
   each acquired with PyObject_GetBuffer, released once by release(), whichever were held. */

#ifndef VGPU_PYARGS_H
#define VGPU_PYARGS_H

#include <Python.h>

typedef struct {
    Py_buffer view;
    int held;
} Arg;

static inline void release(Arg *args, int count) {
    for (int i = 0; i < count; i++) {
        if (args[i].held) {
            PyBuffer_Release(&args[i].view);
            args[i].held = 0;
        }
    }
}

#endif
