/*
 * The 3x3 neighbourhood indices of terrain, compiled: TRI (Riley, Wilson), TPI and
 * roughness. See terrain/neighbourhood.py for the contract (padded block, NaN =
 * missing) and for how edges and holes are defined.
 *
 * The eight neighbours form four opposite pairs through the centre (W-E, N-S,
 * NW-SE, NE-SW). A missing neighbour whose opposite is valid is extrapolated
 * linearly through the centre (its difference to the centre is minus the
 * opposite's): exact on a plane. A pair with both cells missing drops out. The
 * interior (all nine valid) is gdaldem's formula, in double.
 *
 * Every function exists for float32 and float64 storage, computes in double,
 * releases the GIL and uses plain IEEE arithmetic (-ffp-contract=off, no
 * fast-math), so a cell's value depends only on its 3x3 window: the same bits for
 * any block size.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "_cbuffers.h"
#include <math.h>

#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__)
#define HOT __attribute__((target_clones("avx2", "default")))
#else
#define HOT
#endif

enum { TRI_RILEY = 0, TRI_WILSON = 1, TPI = 2, ROUGHNESS = 3 };

/* One cell from its centre c and the differences d[k] = neighbour - c of the eight
 * neighbours, listed as the four pairs (d[2p], d[2p + 1]); NaN = missing. */
static inline double cell(int kind, double c, double *d)
{
    if (c != c)
        return NAN;
    int n = 0;
    for (int p = 0; p < 4; p++) {
        double a = d[2 * p], b = d[2 * p + 1];
        if (a != a && b != b) {
            continue;
        }
        if (a != a)
            d[2 * p] = -b;
        else if (b != b)
            d[2 * p + 1] = -a;
        d[2 * n] = d[2 * p];
        d[2 * n + 1] = d[2 * p + 1];
        n++;
    }
    if (n == 0)
        return NAN;
    int m = 2 * n;
    double acc = 0.0;
    switch (kind) {
    case TRI_RILEY:
        for (int k = 0; k < m; k++)
            acc += d[k] * d[k];
        return sqrt(acc * 8.0 / m); /* scaled to 8 neighbours; exact when m == 8 */
    case TRI_WILSON:
        for (int k = 0; k < m; k++)
            acc += fabs(d[k]);
        return acc / m;
    case TPI:
        for (int k = 0; k < m; k++)
            acc += d[k];
        return 0.0 - acc / m; /* c - mean; +0 on a flat window */
    default: {
        double lo = 0.0, hi = 0.0; /* the centre's own difference */
        for (int k = 0; k < m; k++) {
            lo = d[k] < lo ? d[k] : lo;
            hi = d[k] > hi ? d[k] : hi;
        }
        return hi - lo;
    }
    }
}

/* The differences of the window around column j of a row, as double: pairs W-E, N-S,
 * NW-SE, NE-SW (the order cell() expects). */
#define DIFFS(up, mid, dn, j, c)                                                          \
    {(double)mid[j - 1] - c, (double)mid[j + 1] - c, (double)up[j] - c,                   \
     (double)dn[j] - c,      (double)up[j - 1] - c,  (double)dn[j + 1] - c,               \
     (double)up[j + 1] - c,  (double)dn[j - 1] - c}

/* Pass 1, one loop per index (so that each vectorises): the interior formula, which is
 * NaN wherever a cell of the window is missing; it sums in cell()'s order, so the bits
 * are cell()'s. Pass 2: the NaN results whose centre is valid go through cell(). */
#define FULL_LOOP(T, EXPR)                                                                 \
    for (Py_ssize_t j = 0; j < ocols; j++) {                                               \
        double c = mid[j];                                                                 \
        double d[8] = DIFFS(up, mid, dn, j, c);                                            \
        o[j] = (T)((EXPR) * scale);                                                        \
    }

static inline double riley8(const double *d)
{
    double acc = 0.0;
    for (int k = 0; k < 8; k++)
        acc += d[k] * d[k];
    return sqrt(acc * 8.0 / 8);
}

static inline double wilson8(const double *d)
{
    double acc = 0.0;
    for (int k = 0; k < 8; k++)
        acc += fabs(d[k]);
    return acc / 8;
}

static inline double tpi8(const double *d)
{
    double acc = 0.0;
    for (int k = 0; k < 8; k++)
        acc += d[k];
    return 0.0 - acc / 8;
}

static inline double rough8(const double *d)
{
    double lo = 0.0, hi = 0.0, any = 0.0;
    for (int k = 0; k < 8; k++) {
        lo = d[k] < lo ? d[k] : lo;
        hi = d[k] > hi ? d[k] : hi;
        any += d[k];
    }
    return any == any ? hi - lo : NAN; /* min / max would hide a NaN */
}

#define NEIGHBOUR(T, S)                                                                    \
    HOT static void neighbour_##S(int kind, const T *z, Py_ssize_t rows, Py_ssize_t cols,   \
                                  Py_ssize_t h, double scale, T *out)                      \
    {                                                                                      \
        Py_ssize_t orows = rows - 2 * h, ocols = cols - 2 * h;                             \
        for (Py_ssize_t i = 0; i < orows; i++) {                                           \
            const T *up = z + (i + h - 1) * cols + h;                                      \
            const T *mid = up + cols, *dn = mid + cols;                                    \
            T *o = out + i * ocols;                                                        \
            switch (kind) {                                                                \
            case TRI_RILEY: FULL_LOOP(T, riley8(d)) break;                                 \
            case TRI_WILSON: FULL_LOOP(T, wilson8(d)) break;                               \
            case TPI: FULL_LOOP(T, tpi8(d)) break;                                         \
            default: FULL_LOOP(T, rough8(d)) break;                                        \
            }                                                                              \
            for (Py_ssize_t j = 0; j < ocols; j++) {                                       \
                double c = mid[j];                                                         \
                if (o[j] == o[j] || c != c)                                                \
                    continue;                                                              \
                double d[8] = DIFFS(up, mid, dn, j, c);                                    \
                o[j] = (T)(cell(kind, c, d) * scale);                                      \
            }                                                                              \
        }                                                                                  \
    }

NEIGHBOUR(float, f)
NEIGHBOUR(double, d)


static PyObject *py_neighbour(PyObject *self, PyObject *args)
{
    PyObject *oz, *oo;
    int kind;
    Py_ssize_t rows, cols, h;
    double zf;
    if (!PyArg_ParseTuple(args, "iOnnndO", &kind, &oz, &rows, &cols, &h, &zf, &oo))
        return NULL;
    Buf b[2] = {{0}};
    if (!(buf_get(oz, &b[0], 0) && buf_get(oo, &b[1], 1))) {
        if (b[0].ok) PyBuffer_Release(&b[0].b);
        if (b[1].ok) PyBuffer_Release(&b[1].b);
        return NULL;
    }
    char t = buf_kind(&b[0]);
    Py_ssize_t isz = t == 'f' ? 4 : 8;
    /* Sizes checked here, not only by the caller: a wrong one would read out of bounds. */
    int ok = (t == 'f' || t == 'd') && buf_kind(&b[1]) == t && kind >= 0 && kind <= 3 && h >= 1
             && rows > 2 * h && cols > 2 * h && b[0].b.len == rows * cols * isz
             && b[1].b.len == (rows - 2 * h) * (cols - 2 * h) * isz;
    if (!ok) {
        PyBuffer_Release(&b[0].b);
        PyBuffer_Release(&b[1].b);
        PyErr_SetString(PyExc_ValueError, "neighbour: arrays of inconsistent sizes or types");
        return NULL;
    }
    /* TPI keeps the sign of z_factor; the others are magnitudes. */
    double scale = kind == TPI ? zf : fabs(zf);
    Py_BEGIN_ALLOW_THREADS
    if (t == 'f')
        neighbour_f(kind, b[0].b.buf, rows, cols, h, scale, b[1].b.buf);
    else
        neighbour_d(kind, b[0].b.buf, rows, cols, h, scale, b[1].b.buf);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&b[0].b);
    PyBuffer_Release(&b[1].b);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"neighbour", py_neighbour, METH_VARARGS,
     "neighbour(kind, z, rows, cols, halo, z_factor, out): kind 0 TRI Riley, 1 TRI Wilson, "
     "2 TPI, 3 roughness"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cneighbour",
                                    "terrain's compiled neighbourhood indices "
                                    "(see terrain/neighbourhood.py)",
                                    -1, methods};

PyMODINIT_FUNC PyInit__cneighbour(void) { return PyModule_Create(&module); }
