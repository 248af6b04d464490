/*
 * terrain's least-squares stencils, compiled: applies per-row / per-column weight
 * sets (computed in terrain/lsq.py from the true positions of each window's cells)
 * to a padded block. See terrain/lsq.py for the contract.
 *
 * out[o] = zf * sum_k W[set][o][k] * (z[cell k] - z[centre]), k in window order
 * (north row first, west to east), one fixed order whatever the block or the
 * vector width: built with -ffp-contract=off and no fast-math, so a cell's value
 * depends only on its window (bit for bit across block sizes). A NaN anywhere in
 * the window makes the sum NaN: such cells (with a valid centre) are counted and
 * left NaN for the Python fallback; a NaN centre stays NaN.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "_cbuffers.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OUTS 5

#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__)
#define HOT __attribute__((target_clones("avx2", "default")))
#else
#define HOT
#endif

typedef double v4d __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));

static inline v4d load4_d(const double *p) { v4d v; memcpy(&v, p, sizeof v); return v; }
static inline v4d load4_f(const float *p)
{
    v4f v;
    memcpy(&v, p, sizeof v);
    return __builtin_convertvector(v, v4d);
}
static inline void store4(double *p, v4d v) { memcpy(p, &v, sizeof v); }

/* The window loop with the reach K and the number of outputs NO known at compile
 * time: the cell and output loops unroll, the sums stay in registers and the column
 * loop vectorises. The same operations in the same order as the generic loop. */
#define FIXED(T, S, K, NO)                                                                \
HOT static void run_##S##_##K##_##NO(const T *z, Py_ssize_t mz, Py_ssize_t i,          \
                                        Py_ssize_t h, const double *w, Py_ssize_t c0,     \
                                        Py_ssize_t c1, double *restrict acc,              \
                                        Py_ssize_t cols, const double *restrict z0)       \
{                                                                                         \
    enum { N = 2 * K + 1, NC = N * N };                                                   \
    const T *zr[N];                                                                       \
    for (int a = 0; a < N; a++) zr[a] = z + (i + a - K) * mz + h - K;                     \
    double wl[NO][NC];                                                                    \
    for (int o = 0; o < NO; o++)                                                          \
        for (int e = 0; e < NC; e++) wl[o][e] = w[o * NC + e];                            \
    Py_ssize_t c = c0;                                                                    \
    /* 8 columns at a time in two 4-lane vectors: independent sums per lane (the  */   \
    /* same operations, in the same order, as one column alone).                 */   \
    for (; c + 8 <= c1; c += 8) {                                                         \
        v4d za = load4_d(z0 + c), zb = load4_d(z0 + c + 4);                               \
        v4d sa[NO], sb[NO];                                                               \
        for (int o = 0; o < NO; o++) { sa[o] = (v4d){0, 0, 0, 0}; sb[o] = sa[o]; }        \
        _Pragma("GCC unroll 25")                                                          \
        for (int e = 0; e < NC; e++) {                                                    \
            const T *src = zr[e / N] + c + e % N;                                         \
            v4d da = load4_##S(src) - za, db = load4_##S(src + 4) - zb;                   \
            _Pragma("GCC unroll 5")                                                       \
            for (int o = 0; o < NO; o++) {                                                \
                double wo = wl[o][e];                                                     \
                v4d wv = {wo, wo, wo, wo};                                                \
                sa[o] += wv * da;                                                         \
                sb[o] += wv * db;                                                         \
            }                                                                             \
        }                                                                                 \
        for (int o = 0; o < NO; o++) {                                                    \
            store4(acc + o * cols + c, sa[o]);                                            \
            store4(acc + o * cols + c + 4, sb[o]);                                        \
        }                                                                                 \
    }                                                                                     \
    for (; c < c1; c++) {                                                                 \
        double zc = z0[c];                                                                \
        double s[NO];                                                                     \
        for (int o = 0; o < NO; o++) s[o] = 0.0;                                          \
        for (int e = 0; e < NC; e++) {                                                    \
            double d1 = (double)zr[e / N][c + e % N] - zc;                                \
            for (int o = 0; o < NO; o++) s[o] += wl[o][e] * d1;                           \
        }                                                                                 \
        for (int o = 0; o < NO; o++) acc[o * cols + c] = s[o];                            \
    }                                                                                     \
}

#define FIXED_ALL(T, S)                                                                   \
FIXED(T, S, 1, 2) FIXED(T, S, 1, 3) FIXED(T, S, 1, 5)                                     \
FIXED(T, S, 2, 2) FIXED(T, S, 2, 3) FIXED(T, S, 2, 5)

FIXED_ALL(float, f)
FIXED_ALL(double, d)

/* Mirror-symmetric windows (a uniform projected grid: the cells at (+-dr, +-dc) sit at
 * (+-x, +-y)): each output is odd or even in x and in y, so its weights are too
 * (terrain/lsq.py makes them exactly so), and the four cells of a quadrant group
 * share one weight. Output classes: 0 = p (odd x, even y), 1 = q (even x, odd y),
 * 2 = r, t (even, even), 3 = s (odd, odd); NO = 2 is (p, q), 3 is (r, t, s), 5 all.
 * Fewer multiplications; a fixed order of operations whatever the block. The body
 * is written once for 4-lane vectors and for single columns (the same bits). */
#define SYM_BODY(VT, LD, ZC, CC, OUT)                                                     \
    {                                                                                     \
        VT zc = ZC;                                                                       \
        VT sm[NOUT];                                                                        \
        for (int o = 0; o < NOUT; o++) sm[o] = zc - zc;                                     \
        _Pragma("GCC unroll 4")                                                           \
        for (int a = 1; a <= RK; a++) {                                                    \
            _Pragma("GCC unroll 4")                                                       \
            for (int b = 1; b <= RK; b++) {                                                \
                VT A = LD(zr[RK + a] + (CC) + b), B = LD(zr[RK + a] + (CC) - b);            \
                VT C = LD(zr[RK - a] + (CC) + b), D = LD(zr[RK - a] + (CC) - b);            \
                VT ab = A - B, cd = C - D;                                                \
                VT x0 = ab + cd, x1 = (A - C) + (B - D), x3 = ab - cd;                    \
                VT x2 = ((A - zc) + (B - zc)) + ((C - zc) + (D - zc));                    \
                _Pragma("GCC unroll 5")                                                   \
                for (int o = 0; o < NOUT; o++) {                                            \
                    double wo = wq[o][a - 1][b - 1];                                      \
                    VT xv = cls[o] == 0 ? x0 : cls[o] == 1 ? x1 : cls[o] == 2 ? x2 : x3;  \
                    sm[o] += wo * xv;                                                     \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
        _Pragma("GCC unroll 4")                                                           \
        for (int b = 1; b <= RK; b++) {                                                    \
            VT E = LD(zr[RK] + (CC) + b), F = LD(zr[RK] + (CC) - b);                        \
            VT odd = E - F, even = (E - zc) + (F - zc);                                   \
            _Pragma("GCC unroll 5")                                                       \
            for (int o = 0; o < NOUT; o++) {                                                \
                if (cls[o] == 0) sm[o] += wx[o][b - 1] * odd;                             \
                else if (cls[o] == 2) sm[o] += wx[o][b - 1] * even;                       \
            }                                                                             \
        }                                                                                 \
        _Pragma("GCC unroll 4")                                                           \
        for (int a = 1; a <= RK; a++) {                                                    \
            VT G = LD(zr[RK + a] + (CC)), H = LD(zr[RK - a] + (CC));                        \
            VT odd = G - H, even = (G - zc) + (H - zc);                                   \
            _Pragma("GCC unroll 5")                                                       \
            for (int o = 0; o < NOUT; o++) {                                                \
                if (cls[o] == 1) sm[o] += wy[o][a - 1] * odd;                             \
                else if (cls[o] == 2) sm[o] += wy[o][a - 1] * even;                       \
            }                                                                             \
        }                                                                                 \
        for (int o = 0; o < NOUT; o++) OUT;                                                 \
    }

static inline double ld1_f(const float *p) { return (double)*p; }
static inline double ld1_d(const double *p) { return *p; }

#define FIXEDSYM(T, S, K, NO)                                                             \
HOT static void runsym_##S##_##K##_##NO(const T *z, Py_ssize_t mz, Py_ssize_t i,          \
                                        Py_ssize_t h, const double *w, Py_ssize_t c0,     \
                                        Py_ssize_t c1, double *restrict acc,              \
                                        Py_ssize_t cols, const double *restrict z0)       \
{                                                                                         \
    enum { N = 2 * K + 1, NC = N * N, RK = K, NOUT = NO };                                \
    static const int cls5[5] = {0, 1, 2, 2, 3}, cls3[3] = {2, 2, 3}, cls2[2] = {0, 1};    \
    const int *cls = NO == 5 ? cls5 : NO == 3 ? cls3 : cls2;                              \
    const T *zr[N];                                                                       \
    for (int a = 0; a < N; a++) zr[a] = z + (i + a - K) * mz + h;                         \
    double wq[NO][K][K], wx[NO][K], wy[NO][K];                                            \
    for (int o = 0; o < NO; o++)                                                          \
        for (int a = 1; a <= K; a++) {                                                    \
            wx[o][a - 1] = w[o * NC + K * N + K + a];                                     \
            wy[o][a - 1] = w[o * NC + (K + a) * N + K];                                   \
            for (int b = 1; b <= K; b++)                                                  \
                wq[o][a - 1][b - 1] = w[o * NC + (K + a) * N + K + b];                    \
        }                                                                                 \
    Py_ssize_t c = c0;                                                                    \
    for (; c + 4 <= c1; c += 4)                                                           \
        SYM_BODY(v4d, load4_##S, load4_d(z0 + c), c, store4(acc + o * cols + c, sm[o]))   \
    for (; c < c1; c++)                                                                   \
        SYM_BODY(double, ld1_##S, z0[c], c, acc[o * cols + c] = sm[o])                    \
}

#define FIXEDSYM_ALL(T, S)                                                                \
FIXEDSYM(T, S, 1, 2) FIXEDSYM(T, S, 1, 3) FIXEDSYM(T, S, 1, 5)                            \
FIXEDSYM(T, S, 2, 2) FIXEDSYM(T, S, 2, 3) FIXEDSYM(T, S, 2, 5)

FIXEDSYM_ALL(float, f)
FIXEDSYM_ALL(double, d)

#define DISPATCH(S, K, NO) \
    if (k == K && nouts == NO) { \
        if (sym[set]) runsym_##S##_##K##_##NO(z, mz, i, h, w, c0, c1, acc, cols, z0); \
        else run_##S##_##K##_##NO(z, mz, i, h, w, c0, c1, acc, cols, z0); \
        continue; }

#define APPLY(T, S)                                                                       \
HOT static Py_ssize_t apply_##S(const T *z, Py_ssize_t nz, Py_ssize_t mz, Py_ssize_t h,   \
                                Py_ssize_t k, const double *W, Py_ssize_t nouts,          \
                                const Py_ssize_t *rowset, const Py_ssize_t *colset,       \
                                Py_ssize_t ncolsets, const unsigned char *sym, double zf, \
                                T **outs, double *restrict acc, double *restrict z0,               \
                                double *restrict d)                                       \
{                                                                                         \
    Py_ssize_t rows = nz - 2 * h, cols = mz - 2 * h, n = 2 * k + 1, ncells = n * n;       \
    Py_ssize_t nfb = 0;                                                                   \
    for (Py_ssize_t r = 0; r < rows; r++) {                                               \
        Py_ssize_t i = r + h;                                                             \
        const T *zc = z + i * mz + h;                                                     \
        for (Py_ssize_t c = 0; c < cols; c++) z0[c] = (double)zc[c];                      \
        for (Py_ssize_t e = 0; e < nouts * cols; e++) acc[e] = 0.0;                       \
        /* Runs of columns sharing a weight set: the weights are loop constants. */       \
        for (Py_ssize_t c0 = 0, c1; c0 < cols; c0 = c1) {                                 \
            for (c1 = c0 + 1; c1 < cols && colset[c1] == colset[c0]; c1++) ;              \
            Py_ssize_t set = rowset[r] * ncolsets + colset[c0];                           \
            const double *w = W + set * nouts * ncells;                                   \
            DISPATCH(S, 1, 2) DISPATCH(S, 1, 3) DISPATCH(S, 1, 5)                         \
            DISPATCH(S, 2, 2) DISPATCH(S, 2, 3) DISPATCH(S, 2, 5)                         \
            for (Py_ssize_t cell = 0; cell < ncells; cell++) {                            \
                Py_ssize_t dr = cell / n - k, dc = cell % n - k;                          \
                const T *zs = z + (i + dr) * mz + h + dc;                                 \
                for (Py_ssize_t c = c0; c < c1; c++) d[c] = (double)zs[c] - z0[c];        \
                for (Py_ssize_t o = 0; o < nouts; o++) {                                  \
                    double wo = w[o * ncells + cell];                                     \
                    double *restrict a = acc + o * cols;                                  \
                    for (Py_ssize_t c = c0; c < c1; c++) a[c] += wo * d[c];               \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
        for (Py_ssize_t o = 0; o < nouts; o++) {                                          \
            T *out = outs[o] + r * cols;                                                  \
            const double *a = acc + o * cols;                                             \
            for (Py_ssize_t c = 0; c < cols; c++) out[c] = (T)(a[c] * zf);                \
        }                                                                                 \
        for (Py_ssize_t c = 0; c < cols; c++) {                                           \
            int bad = 0;                                                                  \
            for (Py_ssize_t o = 0; o < nouts; o++) bad |= acc[o * cols + c] != acc[o * cols + c]; \
            if (z0[c] != z0[c]) {                                                         \
                for (Py_ssize_t o = 0; o < nouts; o++) outs[o][r * cols + c] = (T)NAN;     \
            } else if (bad) {                                                             \
                for (Py_ssize_t o = 0; o < nouts; o++) outs[o][r * cols + c] = (T)NAN;     \
                nfb++;                                                                    \
            }                                                                             \
        }                                                                                 \
    }                                                                                     \
    return nfb;                                                                           \
}

APPLY(float, f)
APPLY(double, d)


/* apply(z, nz, mz, halo, reach, W, nsets, nouts, rowset, colset, ncolsets, sym, zf, outs)
 * -> number of cells left NaN for the fallback. */
static PyObject *py_apply(PyObject *self, PyObject *args)
{
    PyObject *oz, *ow, *ors, *ocs, *osym, *oouts;
    Py_ssize_t nz, mz, h, k, nsets, nouts, ncolsets;
    double zf;
    if (!PyArg_ParseTuple(args, "OnnnnOnnOOnOdO", &oz, &nz, &mz, &h, &k, &ow, &nsets, &nouts,
                          &ors, &ocs, &ncolsets, &osym, &zf, &oouts))
        return NULL;
    if (!PyTuple_Check(oouts) || PyTuple_GET_SIZE(oouts) != nouts || nouts < 1
        || nouts > MAX_OUTS) {
        PyErr_SetString(PyExc_ValueError, "apply: outs must be a tuple of nouts (1..5) arrays");
        return NULL;
    }
    Buf b[5 + MAX_OUTS] = {{0}};
    int nb = 5 + (int)nouts;
    int ok = buf_get(oz, &b[0], 0) && buf_get(ow, &b[1], 0) && buf_get(ors, &b[2], 0) && buf_get(ocs, &b[3], 0)
             && buf_get(osym, &b[4 + nouts], 0);
    for (Py_ssize_t o = 0; o < nouts && ok; o++)
        ok = buf_get(PyTuple_GET_ITEM(oouts, o), &b[4 + o], 1);
    if (!ok) { buf_release(b, nb); return NULL; }
    char t = buf_kind(&b[0]);
    Py_ssize_t isz = t == 'f' ? 4 : 8;
    Py_ssize_t rows = nz - 2 * h, cols = mz - 2 * h, n = 2 * k + 1, ncells = n * n;
    /* Sizes checked here: a wrong one would read or write out of bounds. */
    int sizes = (t == 'f' || t == 'd') && rows >= 0 && cols >= 0 && k >= 0 && h >= k
                && ncolsets >= 1 && nsets >= 1 && nsets % ncolsets == 0
                && b[0].b.len == nz * mz * isz && buf_kind(&b[1]) == 'd'
                && b[1].b.len == (Py_ssize_t)sizeof(double) * nsets * nouts * ncells
                && b[2].b.len == (Py_ssize_t)sizeof(Py_ssize_t) * rows
                && b[3].b.len == (Py_ssize_t)sizeof(Py_ssize_t) * cols
                && b[4 + nouts].b.len == nsets && b[4 + nouts].b.itemsize == 1;
    for (Py_ssize_t o = 0; o < nouts && sizes; o++)
        sizes = buf_kind(&b[4 + o]) == t && b[4 + o].b.len == rows * cols * isz;
    if (sizes) {
        const Py_ssize_t *rs = b[2].b.buf, *cs = b[3].b.buf;
        for (Py_ssize_t r = 0; r < rows && sizes; r++)
            sizes = rs[r] >= 0 && rs[r] < nsets / ncolsets;
        for (Py_ssize_t c = 0; c < cols && sizes; c++) sizes = cs[c] >= 0 && cs[c] < ncolsets;
    }
    if (!sizes) {
        buf_release(b, nb);
        PyErr_SetString(PyExc_ValueError, "apply: arrays of inconsistent sizes or types");
        return NULL;
    }
    double *work = malloc(sizeof(double) * ((nouts + 2) * (cols > 0 ? cols : 1)));
    if (!work) { buf_release(b, nb); return PyErr_NoMemory(); }
    void *outs[MAX_OUTS];
    for (Py_ssize_t o = 0; o < nouts; o++) outs[o] = b[4 + o].b.buf;
    Py_ssize_t c1 = cols > 0 ? cols : 1, nfb;
    Py_BEGIN_ALLOW_THREADS
    if (t == 'f')
        nfb = apply_f(b[0].b.buf, nz, mz, h, k, b[1].b.buf, nouts, b[2].b.buf, b[3].b.buf,
                      ncolsets, b[4 + nouts].b.buf, zf, (float **)outs, work, work + nouts * c1,
                      work + (nouts + 1) * c1);
    else
        nfb = apply_d(b[0].b.buf, nz, mz, h, k, b[1].b.buf, nouts, b[2].b.buf, b[3].b.buf,
                      ncolsets, b[4 + nouts].b.buf, zf, (double **)outs, work, work + nouts * c1,
                      work + (nouts + 1) * c1);
    Py_END_ALLOW_THREADS
    free(work);
    buf_release(b, nb);
    return PyLong_FromSsize_t(nfb);
}

static PyMethodDef methods[] = {
    {"apply", py_apply, METH_VARARGS,
     "apply(z, nz, mz, halo, reach, W, nsets, nouts, rowset, colset, ncolsets, sym, zf, outs)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_clsq",
                                    "terrain's least-squares stencils (see terrain/lsq.py)", -1,
                                    methods};

PyMODINIT_FUNC PyInit__clsq(void) { return PyModule_Create(&module); }
