/* The Python-buffer helpers every compiled module of terrain shares: C-contiguous
 * buffers (with their format, writable when asked), released together, and their
 * element kind ('f' float32, 'd' float64 ...). */
#ifndef TERRAIN_CBUFFERS_H
#define TERRAIN_CBUFFERS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct { Py_buffer b; int ok; } Buf;

static int buf_get(PyObject *obj, Buf *buf, int writable)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    buf->ok = PyObject_GetBuffer(obj, &buf->b, flags) == 0;
    return buf->ok;
}

static void buf_release(Buf *bufs, int n)
{
    for (int k = 0; k < n; k++)
        if (bufs[k].ok) PyBuffer_Release(&bufs[k].b);
}

/* The element kind of a native-order buffer: a format "f", or "<f" / "=f" / "@f" as
 * arrays that crossed a pickle (dask) report it; big-endian ones are not native. */
static char buf_kind(Buf *buf)
{
    const char *f = buf->b.format;
    if (!f) return 'B';
    if (*f == '@' || *f == '=') f++;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    else if (*f == '<') f++;
#endif
    return *f;
}

#endif
