/*
 * The stencils and products of terrain, compiled: see terrain/kernels.py for the
 * contract (padded block, spacing vectors, NaN = missing) and the fallbacks.
 *
 * Every function exists for float32 and float64 storage (the KERNELS macro),
 * computes in double, releases the GIL, and uses plain IEEE arithmetic (built
 * with -ffp-contract=off, no fast-math), so a cell's value depends only on its
 * neighbourhood: the same bits for any block size, in vector or scalar code.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "_cbuffers.h"
#include <math.h>
#include <stdlib.h>

#define PI 3.14159265358979323846

/* The hot loops get an AVX2 clone chosen at load time (no FMA: same bits). */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__)
#define HOT __attribute__((target_clones("avx2", "default")))
#else
#define HOT
#endif

/* Derivative at p0 of samples f at positions p (l/ll: before, r/rr: after); NaN
 * marks a missing sample. Central when both neighbours exist (numpy.gradient's
 * non-uniform formula, or the secant used by Horn / Zevenbergen-Thorne), else
 * one-sided from the centre (second order with edge_order 2), else NaN. */
static inline double line_diff(double f0, double fl, double fr, double fll, double frr,
                               double p0, double pl, double pr, double pll, double prr,
                               int edge_order, int secant)
{
    if (fl == fl && fr == fr) {
        if (secant)
            return (fr - fl) / (pr - pl);
        double hl = p0 - pl, hr = pr - p0;
        if (hl == hr)
            return (fr - fl) / (2.0 * hl);
        /* numpy.gradient's weights a, b = -(a + c), c, applied to differences from the
         * centre: the same value to round-off, and exactly 0 on a flat surface. */
        double a = -hr / (hl * (hl + hr));
        double c = hl / (hr * (hl + hr));
        return a * (fl - f0) + c * (fr - f0);
    }
    if (f0 != f0)
        return NAN;
    if (fr == fr) {
        double h1 = pr - p0;
        if (edge_order == 2 && frr == frr) {
            double h2 = prr - pr;
            double b = (h1 + h2) / (h1 * h2);
            double c = -h1 / (h2 * (h1 + h2));
            return b * (fr - f0) + c * (frr - f0);
        }
        return (fr - f0) / h1;
    }
    if (fl == fl) {
        double h2 = p0 - pl;
        if (edge_order == 2 && fll == fll) {
            double h1 = pl - pll;
            double a = h2 / (h1 * (h1 + h2));
            double b = -(h2 + h1) / (h1 * h2);
            return a * (fll - f0) + b * (fl - f0);
        }
        return (f0 - fl) / h2;
    }
    return NAN;
}

/* Weights (before, centre, after) of the interior three-point difference at each
 * of n positions starting at halo; NaN where a neighbour is beyond the block. The
 * stencils apply the outer two to differences from the centre (the centre's weight
 * is minus their sum), so that a flat surface gives exactly 0. */
static void three_point_weights(const double *pos, Py_ssize_t npos, Py_ssize_t halo,
                                Py_ssize_t n, int secant, double *w)
{
    for (Py_ssize_t k = 0; k < n; k++) {
        Py_ssize_t j = k + halo;
        if (j >= 1 && j < npos - 1) {
            double hl = pos[j] - pos[j - 1], hr = pos[j + 1] - pos[j];
            if (secant || hl == hr) {
                w[3 * k] = -1.0 / (hl + hr);
                w[3 * k + 1] = 0.0;
                w[3 * k + 2] = 1.0 / (hl + hr);
            } else {
                w[3 * k] = -hr / (hl * (hl + hr));
                w[3 * k + 1] = (hr - hl) / (hl * hr);
                w[3 * k + 2] = hl / (hr * (hl + hr));
            }
        } else {
            w[3 * k] = w[3 * k + 1] = w[3 * k + 2] = NAN;
        }
    }
}

/* Cephes' atan for x >= 0 (1 ulp). Every branch is computed and one selected, so
 * that the compiler turns the choice into blends and the loops vectorise. */
static inline double atan_nonneg(double x)
{
    const double T3P8 = 2.41421356237309504880, MOREBITS = 6.123233995736765886130e-17;
    int big = x > T3P8, mid = x > 0.66;
    double x_big = -1.0 / x, x_mid = (x - 1.0) / (x + 1.0);
    double xr = big ? x_big : (mid ? x_mid : x);
    double y0 = big ? PI / 2 : (mid ? PI / 4 : 0.0);
    double extra = big ? MOREBITS : (mid ? 0.5 * MOREBITS : 0.0);
    double zz = xr * xr;
    double p = ((((-8.750608600031904122785e-1 * zz - 1.615753718733365076637e1) * zz
                  - 7.500855792314704667340e1) * zz - 1.228866684490136173410e2) * zz
                - 6.485021904942025371773e1);
    double q = (((((zz + 2.485846490142306297962e1) * zz + 1.650270098316988542046e2) * zz
                  + 4.328810604912902668951e2) * zz + 4.853903996359136964868e2) * zz
                + 1.945506571482613964425e2);
    return y0 + (xr * (zz * p / q) + xr + extra);
}

/* atan2(y, x) in (-pi, pi] from atan_nonneg; (0, 0) gives 0. */
static inline double atan2_sel(double y, double x)
{
    double ay = fabs(y), ax = fabs(x);
    int steep = ay > ax;
    double t_steep = ax / ay, t_flat = ay / ax;
    double t = steep ? t_steep : (ax > 0.0 ? t_flat : 0.0);
    double a = atan_nonneg(t);
    a = steep ? PI / 2 - a : a;
    a = x < 0.0 ? PI - a : a;
    return y < 0.0 ? -a : a;
}

#define KERNELS(T, S)                                                                     \
static inline double x_diff_##S(const T *z, Py_ssize_t nz, Py_ssize_t mz, Py_ssize_t i,   \
                                Py_ssize_t j, const double *xpos, double s, int eo,      \
                                int secant)                                              \
{                                                                                         \
    const T *row = z + i * mz;                                                            \
    (void)nz;                                                                             \
    double fl = j >= 1 ? row[j - 1] : NAN, fr = j + 1 < mz ? row[j + 1] : NAN;            \
    double fll = j >= 2 ? row[j - 2] : NAN, frr = j + 2 < mz ? row[j + 2] : NAN;          \
    double pl = j >= 1 ? xpos[j - 1] * s : 0.0, pr = j + 1 < mz ? xpos[j + 1] * s : 0.0;  \
    double pll = j >= 2 ? xpos[j - 2] * s : 0.0, prr = j + 2 < mz ? xpos[j + 2] * s : 0.0;\
    return line_diff(row[j], fl, fr, fll, frr, xpos[j] * s, pl, pr, pll, prr, eo, secant);\
}                                                                                         \
                                                                                          \
static inline double y_diff_##S(const T *z, Py_ssize_t nz, Py_ssize_t mz, Py_ssize_t i,   \
                                Py_ssize_t j, const double *ypos, int eo, int secant)    \
{                                                                                         \
    double fl = i >= 1 ? z[(i - 1) * mz + j] : NAN;                                       \
    double fr = i + 1 < nz ? z[(i + 1) * mz + j] : NAN;                                   \
    double fll = i >= 2 ? z[(i - 2) * mz + j] : NAN;                                      \
    double frr = i + 2 < nz ? z[(i + 2) * mz + j] : NAN;                                  \
    double pl = i >= 1 ? ypos[i - 1] : 0.0, pr = i + 1 < nz ? ypos[i + 1] : 0.0;          \
    double pll = i >= 2 ? ypos[i - 2] : 0.0, prr = i + 2 < nz ? ypos[i + 2] : 0.0;        \
    return line_diff(z[i * mz + j], fl, fr, fll, frr, ypos[i], pl, pr, pll, prr, eo,      \
                     secant);                                                             \
}                                                                                         \
                                                                                          \
/* central (secant 0) and Zevenbergen-Thorne (secant 1): a branch-free pass with     */  \
/* per-column / per-row weights, then the fallbacks where it gave NaN.               */  \
HOT static int three_point_##S(const T *z, Py_ssize_t nz, Py_ssize_t mz, const double *xpos,  \
                           const double *xscale, const double *ypos, Py_ssize_t h,        \
                           int eo, double zf, T *dzdx, T *dzdy, int secant)               \
{                                                                                         \
    Py_ssize_t rows = nz - 2 * h, cols = mz - 2 * h;                                      \
    double *wx = malloc(sizeof(double) * 3 * (cols > 0 ? cols : 1));                      \
    double *wy = malloc(sizeof(double) * 3 * (rows > 0 ? rows : 1));                      \
    if (!wx || !wy) { free(wx); free(wy); return -1; }                                    \
    three_point_weights(xpos, mz, h, cols, secant, wx);                                   \
    three_point_weights(ypos, nz, h, rows, secant, wy);                                   \
    for (Py_ssize_t r = 0; r < rows; r++) {                                               \
        Py_ssize_t i = r + h;                                                             \
        const T *zr = z + i * mz;                                                         \
        T *ox = dzdx + r * cols, *oy = dzdy + r * cols;                                   \
        double sx = zf / xscale[i];                                                       \
        double ya = wy[3 * r] * zf, yc = wy[3 * r + 2] * zf;                              \
        int inside = i >= 1 && i < nz - 1;                                                \
        /* Columns whose both neighbours are inside the block: branch-free. */          \
        Py_ssize_t c_lo = h >= 1 ? 0 : 1, c_hi = h >= 1 ? cols : cols - 1;              \
        for (Py_ssize_t c = 0; c < cols; c++) { ox[c] = (T)NAN; oy[c] = (T)NAN; }         \
        for (Py_ssize_t c = c_lo; c < c_hi; c++) {                                        \
            Py_ssize_t j = c + h;                                                         \
            double z0 = zr[j];                                                            \
            ox[c] = (T)((wx[3 * c] * (zr[j - 1] - z0) + wx[3 * c + 2] * (zr[j + 1] - z0)) \
                        * sx);                                                            \
        }                                                                                 \
        if (inside)                                                                       \
            for (Py_ssize_t c = 0; c < cols; c++) {                                       \
                Py_ssize_t j = c + h;                                                     \
                double z0 = zr[j];                                                        \
                oy[c] = (T)(ya * (zr[j - mz] - z0) + yc * (zr[j + mz] - z0));             \
            }                                                                             \
        for (Py_ssize_t c = 0; c < cols; c++) {                                           \
            Py_ssize_t j = c + h;                                                         \
            if (zr[j] != zr[j]) { ox[c] = (T)NAN; oy[c] = (T)NAN; continue; }             \
            if (ox[c] != ox[c])                                                           \
                ox[c] = (T)(zf * x_diff_##S(z, nz, mz, i, j, xpos, xscale[i], eo, secant));\
            if (oy[c] != oy[c])                                                           \
                oy[c] = (T)(zf * y_diff_##S(z, nz, mz, i, j, ypos, eo, secant));          \
        }                                                                                 \
    }                                                                                     \
    free(wx);                                                                             \
    free(wy);                                                                             \
    return 0;                                                                             \
}                                                                                         \
                                                                                          \
/* Horn next to missing cells: mean of the rows' / columns' differences that exist. */   \
static void horn_fallback_##S(const T *z, Py_ssize_t nz, Py_ssize_t mz, Py_ssize_t i,     \
                              Py_ssize_t j, const double *xpos, const double *xscale,    \
                              const double *ypos, int eo, double zf, T *ox, T *oy)       \
{                                                                                         \
    double sx = 0.0, wx = 0.0, sy = 0.0, wy = 0.0;                                        \
    for (int k = -1; k <= 1; k++) {                                                       \
        double w = k == 0 ? 2.0 : 1.0;                                                    \
        Py_ssize_t ii = i + k, jj = j + k;                                                \
        if (ii >= 0 && ii < nz) {                                                         \
            double d = x_diff_##S(z, nz, mz, ii, j, xpos, xscale[ii], eo, 1);             \
            if (d == d) { sx += w * d; wx += w; }                                         \
        }                                                                                 \
        if (jj >= 0 && jj < mz) {                                                         \
            double d = y_diff_##S(z, nz, mz, i, jj, ypos, eo, 1);                         \
            if (d == d) { sy += w * d; wy += w; }                                         \
        }                                                                                 \
    }                                                                                     \
    *ox = wx > 0 ? (T)(zf * sx / wx) : (T)NAN;                                            \
    *oy = wy > 0 ? (T)(zf * sy / wy) : (T)NAN;                                            \
}                                                                                         \
                                                                                          \
/* Horn: 1-2-1 weighted mean of the three rows' (columns') secants, each row with its */ \
/* own ground spacing (exact on geographic grids; gdaldem's formula on projected).    */ \
HOT static int horn_##S(const T *z, Py_ssize_t nz, Py_ssize_t mz, const double *xpos,         \
                    const double *xscale, const double *ypos, Py_ssize_t h, int eo,       \
                    double zf, T *dzdx, T *dzdy)                                          \
{                                                                                         \
    Py_ssize_t rows = nz - 2 * h, cols = mz - 2 * h;                                      \
    double *inv4dx = malloc(sizeof(double) * (cols > 0 ? cols : 1));                      \
    if (!inv4dx) return -1;                                                               \
    for (Py_ssize_t c = 0; c < cols; c++) {                                               \
        Py_ssize_t j = c + h;                                                             \
        inv4dx[c] = (j >= 1 && j < mz - 1) ? 0.25 / (xpos[j + 1] - xpos[j - 1]) : NAN;    \
    }                                                                                     \
    for (Py_ssize_t r = 0; r < rows; r++) {                                               \
        Py_ssize_t i = r + h;                                                             \
        T *ox = dzdx + r * cols, *oy = dzdy + r * cols;                                   \
        if (i >= 1 && i < nz - 1) {                                                       \
            /* Any missing neighbour makes the result NaN, mended below. */              \
            const T *zn = z + (i - 1) * mz, *z0 = z + i * mz, *zs = z + (i + 1) * mz;     \
            double isn = 1.0 / xscale[i - 1], is0 = 2.0 / xscale[i];                      \
            double iss = 1.0 / xscale[i + 1];                                             \
            double qdy = 0.25 * zf / (ypos[i - 1] - ypos[i + 1]);                         \
            Py_ssize_t c_lo = h >= 1 ? 0 : 1, c_hi = h >= 1 ? cols : cols - 1;          \
            for (Py_ssize_t c = 0; c < cols; c++) { ox[c] = (T)NAN; oy[c] = (T)NAN; }     \
            for (Py_ssize_t c = c_lo; c < c_hi; c++) {                                    \
                Py_ssize_t j = c + h;                                                     \
                double a = zn[j - 1], b = zn[j], cc = zn[j + 1];                          \
                double d = z0[j - 1], f = z0[j + 1];                                      \
                double g = zs[j - 1], hh = zs[j], k = zs[j + 1];                          \
                ox[c] = (T)(zf * ((cc - a) * isn + (f - d) * is0 + (k - g) * iss)         \
                            * inv4dx[c]);                                                 \
                oy[c] = (T)(((a - g) + 2.0 * (b - hh) + (cc - k)) * qdy);                 \
            }                                                                             \
        } else {                                                                          \
            for (Py_ssize_t c = 0; c < cols; c++) { ox[c] = (T)NAN; oy[c] = (T)NAN; }     \
        }                                                                                 \
        for (Py_ssize_t c = 0; c < cols; c++) {                                           \
            Py_ssize_t j = c + h;                                                         \
            T e = z[i * mz + j];                                                          \
            if (e != e) { ox[c] = (T)NAN; oy[c] = (T)NAN; }                               \
            else if (ox[c] != ox[c] || oy[c] != oy[c])                                    \
                horn_fallback_##S(z, nz, mz, i, j, xpos, xscale, ypos, eo, zf, ox + c,    \
                                  oy + c);                                                \
        }                                                                                 \
    }                                                                                     \
    free(inv4dx);                                                                         \
    return 0;                                                                             \
}                                                                                         \
                                                                                          \
HOT static void slope_##S(const T *restrict p, const T *restrict q, Py_ssize_t n, int units, T *restrict out)            \
{                                                                                         \
    if (units == 0 || units == 2) {                                                       \
        double scale = units == 0 ? 180.0 / PI : 1.0;                                     \
        for (Py_ssize_t k = 0; k < n; k++) {                                              \
            double a = p[k], b = q[k];                                                    \
            out[k] = (T)(atan_nonneg(sqrt(a * a + b * b)) * scale);                       \
        }                                                                                 \
    } else {                                                                              \
        double factor = units == 1 ? 100.0 : 1.0;                                         \
        for (Py_ssize_t k = 0; k < n; k++) {                                              \
            double a = p[k], b = q[k];                                                    \
            out[k] = (T)(factor * sqrt(a * a + b * b));                                   \
        }                                                                                 \
    }                                                                                     \
}                                                                                         \
                                                                                          \
HOT static void aspect_##S(const T *restrict p, const T *restrict q, Py_ssize_t n, double flat, T *restrict out)         \
{                                                                                         \
    for (Py_ssize_t k = 0; k < n; k++) {                                                  \
        double a = p[k], b = q[k];                                                        \
        double az = atan2_sel(-a, -b) * (180.0 / PI);                                     \
        az = az < 0.0 ? az + 360.0 : az;                                                  \
        az = (a == 0.0 && b == 0.0) ? flat : az;                                          \
        out[k] = (a != a || b != b) ? (T)NAN : (T)az;                                     \
    }                                                                                     \
    /* Rounding to the storage type may give 360 itself. */                               \
    for (Py_ssize_t k = 0; k < n; k++)                                                    \
        if (out[k] >= (T)360.0 && !(p[k] == 0 && q[k] == 0)) out[k] = 0;                  \
}                                                                                         \
                                                                                          \
HOT static void hillshade_##S(const T *restrict p, const T *restrict q, Py_ssize_t n, double az_deg,            \
                          double alt_deg, int multi, T *restrict out)                              \
{                                                                                         \
    double sin_alt = sin(alt_deg * PI / 180.0), cos_alt = cos(alt_deg * PI / 180.0);      \
    double sin_az = sin(az_deg * PI / 180.0), cos_az = cos(az_deg * PI / 180.0);          \
    double c225 = cos(225.0 * PI / 180.0);                                                \
    if (!multi) {                                                                         \
        /* NaN propagates: cang NaN fails "<= 0" and gives 1 + 254 NaN = NaN. */            \
        for (Py_ssize_t k = 0; k < n; k++) {                                              \
            double a = p[k], b = q[k];                                                    \
            double cang = (sin_alt - a * sin_az * cos_alt - b * cos_az * cos_alt)          \
                          / sqrt(1.0 + a * a + b * b);                                    \
            out[k] = (T)(cang <= 0.0 ? 1.0 : 1.0 + 254.0 * cang);                     \
        }                                                                                 \
        return;                                                                           \
    }                                                                                     \
    for (Py_ssize_t k = 0; k < n; k++) {                                                  \
        double a = p[k], b = q[k];                                                        \
        double g2 = a * a + b * b, norm = sqrt(1.0 + g2);                                 \
        /* gdaldem's x, y: x = -dzdx, y = dzdy; four lights of 127, clipped at 0. */      \
        double x = -a, y = b;                                                             \
        double v225 = fmax(0.0, 127.0 * sin_alt + (x - y) * 127.0 * c225 * cos_alt);      \
        double v270 = fmax(0.0, 127.0 * sin_alt - x * 127.0 * cos_alt);                   \
        double v315 = fmax(0.0, 127.0 * sin_alt + (x + y) * 127.0 * c225 * cos_alt);      \
        double v360 = fmax(0.0, 127.0 * sin_alt - y * 127.0 * cos_alt);                   \
        double w225 = 0.5 * g2 - x * y, w270 = x * x, w315 = g2 - w225, w360 = y * y;     \
        double total = w225 * v225 + w270 * v270 + w315 * v315 + w360 * v360;             \
        double shade = 1.0 + (total / g2) / norm;                                         \
        out[k] = (T)(g2 == 0.0 ? 1.0 + 254.0 * sin_alt : shade);                      \
    }                                                                                     \
}

/* The ground map (see terrain/spacing.py GroundMap): each cell's 2x2 matrix is the
 * bilinear interpolation of the lattice (nr x nc nodes, 4 entries each) at the
 * cell's node interval rk / ck and fractions rf / cf, and (ox, oy) = M (px, py).
 * A cell's matrix depends only on its own indices: the same bits in any window. */
#define GROUND(T, S)                                                                      \
HOT static int ground_##S(const T *px, const T *py, Py_ssize_t rows, Py_ssize_t cols,     \
                          const double *lat, Py_ssize_t nc, const Py_ssize_t *rk,         \
                          const double *rf, const Py_ssize_t *ck, const double *cf,       \
                          T *ox, T *oy)                                                   \
{                                                                                         \
    double *row = malloc(sizeof(double) * 4 * (nc > 0 ? nc : 1));                         \
    if (!row) return -1;                                                                  \
    for (Py_ssize_t r = 0; r < rows; r++) {                                               \
        const double *top = lat + 4 * rk[r] * nc, *bottom = top + 4 * nc;                 \
        double f = rf[r];                                                                 \
        for (Py_ssize_t e = 0; e < 4 * nc; e++)                                           \
            row[e] = top[e] * (1.0 - f) + bottom[e] * f;                                  \
        const T *x = px + r * cols, *y = py + r * cols;                                   \
        T *gx = ox + r * cols, *gy = oy + r * cols;                                       \
        /* Runs of columns in one lattice interval: the nodes are loop constants    */     \
        /* there, so the loop vectorises (the same formula, so the same bits).      */     \
        for (Py_ssize_t c0 = 0, c1; c0 < cols; c0 = c1) {                                 \
            for (c1 = c0 + 1; c1 < cols && ck[c1] == ck[c0]; c1++) ;                      \
            const double *a = row + 4 * ck[c0], *b = a + 4;                               \
            double a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];                            \
            double b0 = b[0], b1 = b[1], b2 = b[2], b3 = b[3];                            \
            for (Py_ssize_t c = c0; c < c1; c++) {                                        \
                double g = cf[c], h = 1.0 - g;                                            \
                double m0 = a0 * h + b0 * g, m1 = a1 * h + b1 * g;                        \
                double m2 = a2 * h + b2 * g, m3 = a3 * h + b3 * g;                        \
                double vx = x[c], vy = y[c];                                              \
                gx[c] = (T)(m0 * vx + m1 * vy);                                           \
                gy[c] = (T)(m2 * vx + m3 * vy);                                           \
            }                                                                             \
        }                                                                                 \
    }                                                                                     \
    free(row);                                                                            \
    return 0;                                                                             \
}

KERNELS(float, f)
KERNELS(double, d)
GROUND(float, f)
GROUND(double, d)

/* ---- Python bindings: C-contiguous buffers; sizes and types checked here too ---- */


/* The gradient stencils, one named entry point each (no method codes cross from Python). */
enum stencil { CENTRAL, HORN, ZEVENBERGEN_THORNE };

static PyObject *gradient_entry(PyObject *args, enum stencil stencil)
{
    PyObject *o[6];
    int eo;
    Py_ssize_t nz, mz, h;
    double zf;
    if (!PyArg_ParseTuple(args, "OnnOOOnidOO", &o[0], &nz, &mz, &o[1], &o[2], &o[3],
                          &h, &eo, &zf, &o[4], &o[5]))
        return NULL;
    Buf b[6] = {{0}};
    int ok = buf_get(o[0], &b[0], 0) && buf_get(o[1], &b[1], 0) && buf_get(o[2], &b[2], 0)
             && buf_get(o[3], &b[3], 0) && buf_get(o[4], &b[4], 1) && buf_get(o[5], &b[5], 1);
    if (!ok) { buf_release(b, 6); return NULL; }
    char t = buf_kind(&b[0]);
    Py_ssize_t isz = t == 'f' ? 4 : 8, d = (Py_ssize_t)sizeof(double);
    /* Sizes checked here, not only by the caller: a wrong one would read out of bounds. */
    int sizes = (t == 'f' || t == 'd') && h >= 0 && nz > 2 * h && mz > 2 * h
                && (eo == 1 || eo == 2)
                && b[0].b.len == nz * mz * isz && buf_kind(&b[4]) == t && buf_kind(&b[5]) == t
                && b[4].b.len == (nz - 2 * h) * (mz - 2 * h) * isz && b[5].b.len == b[4].b.len
                && b[1].b.len == mz * d && b[2].b.len == nz * d && b[3].b.len == nz * d
                && buf_kind(&b[1]) == 'd' && buf_kind(&b[2]) == 'd' && buf_kind(&b[3]) == 'd';
    if (!sizes) {
        buf_release(b, 6);
        PyErr_SetString(PyExc_ValueError, "gradient: arrays of inconsistent sizes or types");
        return NULL;
    }
    int rc = 0;
    Py_BEGIN_ALLOW_THREADS
    const double *xp = b[1].b.buf, *xs = b[2].b.buf, *yp = b[3].b.buf;
    if (t == 'f') {
        if (stencil == HORN)
            rc = horn_f(b[0].b.buf, nz, mz, xp, xs, yp, h, eo, zf, b[4].b.buf, b[5].b.buf);
        else
            rc = three_point_f(b[0].b.buf, nz, mz, xp, xs, yp, h, eo, zf, b[4].b.buf,
                               b[5].b.buf, stencil == ZEVENBERGEN_THORNE);
    } else {
        if (stencil == HORN)
            rc = horn_d(b[0].b.buf, nz, mz, xp, xs, yp, h, eo, zf, b[4].b.buf, b[5].b.buf);
        else
            rc = three_point_d(b[0].b.buf, nz, mz, xp, xs, yp, h, eo, zf, b[4].b.buf,
                               b[5].b.buf, stencil == ZEVENBERGEN_THORNE);
    }
    Py_END_ALLOW_THREADS
    buf_release(b, 6);
    if (rc) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *py_central(PyObject *self, PyObject *args) { return gradient_entry(args, CENTRAL); }
static PyObject *py_horn(PyObject *self, PyObject *args) { return gradient_entry(args, HORN); }
static PyObject *py_zevenbergen_thorne(PyObject *self, PyObject *args)
{
    return gradient_entry(args, ZEVENBERGEN_THORNE);
}

/* The per-cell products of the gradient, one named entry point each. */
enum product { SLOPE, ASPECT, HILLSHADE };

static PyObject *product_entry(PyObject *args, enum product product)
{
    PyObject *o[3];
    int units = 0, multi = 0;
    double flat = 0.0, az = 0.0, alt = 0.0;
    int parsed = product == SLOPE ? PyArg_ParseTuple(args, "OOiO", &o[0], &o[1], &units, &o[2])
               : product == ASPECT ? PyArg_ParseTuple(args, "OOdO", &o[0], &o[1], &flat, &o[2])
               : PyArg_ParseTuple(args, "OOddiO", &o[0], &o[1], &az, &alt, &multi, &o[2]);
    if (!parsed)
        return NULL;
    Buf b[3] = {{0}};
    if (!(buf_get(o[0], &b[0], 0) && buf_get(o[1], &b[1], 0) && buf_get(o[2], &b[2], 1))) {
        buf_release(b, 3);
        return NULL;
    }
    char t = buf_kind(&b[0]);
    int sizes = (t == 'f' || t == 'd') && buf_kind(&b[1]) == t && buf_kind(&b[2]) == t
                && b[1].b.len == b[0].b.len && b[2].b.len == b[0].b.len
                && units >= 0 && units <= 3;
    if (!sizes) {
        buf_release(b, 3);
        PyErr_SetString(PyExc_ValueError, "product: arrays of inconsistent sizes or types");
        return NULL;
    }
    Py_ssize_t n = b[0].b.len / b[0].b.itemsize;
    Py_BEGIN_ALLOW_THREADS
    if (t == 'f') {
        if (product == SLOPE) slope_f(b[0].b.buf, b[1].b.buf, n, units, b[2].b.buf);
        else if (product == ASPECT) aspect_f(b[0].b.buf, b[1].b.buf, n, flat, b[2].b.buf);
        else hillshade_f(b[0].b.buf, b[1].b.buf, n, az, alt, multi, b[2].b.buf);
    } else {
        if (product == SLOPE) slope_d(b[0].b.buf, b[1].b.buf, n, units, b[2].b.buf);
        else if (product == ASPECT) aspect_d(b[0].b.buf, b[1].b.buf, n, flat, b[2].b.buf);
        else hillshade_d(b[0].b.buf, b[1].b.buf, n, az, alt, multi, b[2].b.buf);
    }
    Py_END_ALLOW_THREADS
    buf_release(b, 3);
    Py_RETURN_NONE;
}

static PyObject *py_slope(PyObject *self, PyObject *args) { return product_entry(args, SLOPE); }
static PyObject *py_aspect(PyObject *self, PyObject *args) { return product_entry(args, ASPECT); }
static PyObject *py_hillshade(PyObject *self, PyObject *args)
{
    return product_entry(args, HILLSHADE);
}

static PyObject *py_ground(PyObject *self, PyObject *args)
{
    PyObject *o[9];
    Py_ssize_t rows, cols, nr, nc;
    if (!PyArg_ParseTuple(args, "OOnnOnnOOOOOO", &o[0], &o[1], &rows, &cols, &o[2], &nr, &nc,
                          &o[3], &o[4], &o[5], &o[6], &o[7], &o[8]))
        return NULL;
    Buf b[9] = {{0}};
    int ok = buf_get(o[0], &b[0], 0) && buf_get(o[1], &b[1], 0) && buf_get(o[2], &b[2], 0)
             && buf_get(o[3], &b[3], 0) && buf_get(o[4], &b[4], 0) && buf_get(o[5], &b[5], 0)
             && buf_get(o[6], &b[6], 0) && buf_get(o[7], &b[7], 1) && buf_get(o[8], &b[8], 1);
    if (!ok) { buf_release(b, 9); return NULL; }
    Py_ssize_t n = rows * cols;
    char t = buf_kind(&b[0]);
    Py_ssize_t isz = t == 'f' ? 4 : 8;
    /* Sizes checked here, not only by the caller: a wrong one would read out of bounds. */
    int sizes = b[0].b.len == n * isz && b[1].b.len == n * isz && b[7].b.len == n * isz
                && b[8].b.len == n * isz && buf_kind(&b[1]) == t && buf_kind(&b[7]) == t
                && buf_kind(&b[8]) == t && (t == 'f' || t == 'd')
                && b[2].b.len == (Py_ssize_t)sizeof(double) * 4 * nr * nc && nr >= 2 && nc >= 2
                && b[3].b.len == (Py_ssize_t)sizeof(Py_ssize_t) * rows
                && b[4].b.len == (Py_ssize_t)sizeof(double) * rows
                && b[5].b.len == (Py_ssize_t)sizeof(Py_ssize_t) * cols
                && b[6].b.len == (Py_ssize_t)sizeof(double) * cols;
    if (sizes) {
        const Py_ssize_t *rk = b[3].b.buf, *ck = b[5].b.buf;
        for (Py_ssize_t r = 0; r < rows && sizes; r++) sizes = rk[r] >= 0 && rk[r] <= nr - 2;
        for (Py_ssize_t c = 0; c < cols && sizes; c++) sizes = ck[c] >= 0 && ck[c] <= nc - 2;
    }
    if (!sizes) {
        buf_release(b, 9);
        PyErr_SetString(PyExc_ValueError, "ground: arrays of inconsistent sizes or types");
        return NULL;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    if (t == 'f')
        rc = ground_f(b[0].b.buf, b[1].b.buf, rows, cols, b[2].b.buf, nc, b[3].b.buf,
                      b[4].b.buf, b[5].b.buf, b[6].b.buf, b[7].b.buf, b[8].b.buf);
    else
        rc = ground_d(b[0].b.buf, b[1].b.buf, rows, cols, b[2].b.buf, nc, b[3].b.buf,
                      b[4].b.buf, b[5].b.buf, b[6].b.buf, b[7].b.buf, b[8].b.buf);
    Py_END_ALLOW_THREADS
    buf_release(b, 9);
    if (rc) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* One pass, no temporary, in the block's own type: NaN -> value in place (the
 * writers' nodata), whether any cell is infinite (float32 overflow); a file's
 * nodata and non-finite cells -> NaN (a map's read). */
#define CELLS(T, S)                                                                       \
HOT static void fill_nan_##S(T *restrict p, Py_ssize_t n, T value)                        \
{                                                                                         \
    for (Py_ssize_t k = 0; k < n; k++) if (p[k] != p[k]) p[k] = value;                    \
}                                                                                         \
HOT static int has_inf_##S(const T *restrict p, Py_ssize_t n)                             \
{                                                                                         \
    int any = 0;                                                                          \
    for (Py_ssize_t k = 0; k < n; k++) any |= (p[k] == (T)INFINITY) | (p[k] == -(T)INFINITY); \
    return any;                                                                           \
}                                                                                         \
HOT static int to_nan_##S(T *restrict p, Py_ssize_t n, int use_nodata, T nodata)          \
{                                                                                         \
    int any = 0;                                                                          \
    for (Py_ssize_t k = 0; k < n; k++) {                                                  \
        T v = p[k];                                                                       \
        int bad = (v - v) != (T)0 || (use_nodata && v == nodata);                         \
        any |= bad;                                                                       \
        p[k] = bad ? (T)NAN : v;                                                          \
    }                                                                                     \
    return any;                                                                           \
}                                                                                         \
/* A byte product's storage: NaN -> nodata, else floor(v + 0.5) with the sum in the      \
 * block's own type (numpy's np.floor(block + 0.5); floor is exact), clamped to 0..255. */ \
HOT static void to_byte_##S(const T *restrict p, Py_ssize_t n, unsigned char nodata,      \
                            unsigned char *restrict out)                                  \
{                                                                                         \
    for (Py_ssize_t k = 0; k < n; k++) {                                                  \
        double w = floor((double)(T)(p[k] + (T)0.5));                                     \
        w = w < 0.0 ? 0.0 : (w > 255.0 ? 255.0 : w);                                      \
        out[k] = p[k] != p[k] ? nodata : (unsigned char)w;                                \
    }                                                                                     \
}
CELLS(float, f)
CELLS(double, d)

/* A window's display-cell sums (terrain.stream.DisplayGrid's block means): rows in
 * runs [bounds[i], bounds[i+1]) fall in display row i, column c in display column
 * cell[c] (non-decreasing). Each run's columns are summed first (acc: one double and
 * one count a column, the loop vectorises), then folded into their display cells;
 * sums and counts are added to. NaN cells count as missing. */
#define BLOCK_SUMS(T, S)                                                                  \
HOT static void block_sums_##S(const T *z, Py_ssize_t cols, const long long *bounds,      \
                               Py_ssize_t runs, const long long *cell, Py_ssize_t ncell,  \
                               double *sums, int *counts, double *acc, int *cnt)          \
{                                                                                         \
    for (Py_ssize_t i = 0; i < runs; i++) {                                               \
        for (Py_ssize_t c = 0; c < cols; c++) { acc[c] = 0.0; cnt[c] = 0; }              \
        for (long long r = bounds[i]; r < bounds[i + 1]; r++) {                          \
            const T *row = z + r * cols;                                                  \
            for (Py_ssize_t c = 0; c < cols; c++) {                                       \
                double v = row[c];                                                        \
                int ok = v == v;                                                          \
                acc[c] += ok ? v : 0.0;                                                   \
                cnt[c] += ok;                                                             \
            }                                                                             \
        }                                                                                 \
        double *s = sums + i * ncell;                                                     \
        int *n = counts + i * ncell;                                                      \
        for (Py_ssize_t c = 0; c < cols; c++) { s[cell[c]] += acc[c]; n[cell[c]] += cnt[c]; } \
    }                                                                                     \
}
BLOCK_SUMS(float, f)
BLOCK_SUMS(double, d)

static int cells_buffer(PyObject *obj, Buf *b, int writable, const char *name)
{
    if (!buf_get(obj, b, writable)) return 0;
    char t = buf_kind(b);
    if (t != 'f' && t != 'd') {
        buf_release(b, 1);
        PyErr_Format(PyExc_TypeError, "%s: a float32 or float64 array", name);
        return 0;
    }
    return 1;
}

static PyObject *py_fill_nan(PyObject *self, PyObject *args)
{
    PyObject *obj;
    double value;
    if (!PyArg_ParseTuple(args, "Od", &obj, &value)) return NULL;
    Buf b = {0};
    if (!cells_buffer(obj, &b, 1, "fill_nan")) return NULL;
    Py_ssize_t n = b.b.len / b.b.itemsize;
    Py_BEGIN_ALLOW_THREADS
    if (buf_kind(&b) == 'f') fill_nan_f(b.b.buf, n, (float)value);
    else fill_nan_d(b.b.buf, n, value);
    Py_END_ALLOW_THREADS
    buf_release(&b, 1);
    Py_RETURN_NONE;
}

static PyObject *py_to_byte(PyObject *self, PyObject *args)
{
    PyObject *obj, *dst;
    int nodata;
    if (!PyArg_ParseTuple(args, "OiO", &obj, &nodata, &dst)) return NULL;
    Buf b[2] = {{0}};
    if (!cells_buffer(obj, &b[0], 0, "to_byte")) return NULL;
    if (!buf_get(dst, &b[1], 1)) { buf_release(b, 2); return NULL; }
    Py_ssize_t n = b[0].b.len / b[0].b.itemsize;
    if (b[1].b.itemsize != 1 || b[1].b.len != n || nodata < 0 || nodata > 255) {
        buf_release(b, 2);
        PyErr_SetString(PyExc_ValueError, "to_byte: out must be uint8 of the block's size");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (buf_kind(&b[0]) == 'f') to_byte_f(b[0].b.buf, n, (unsigned char)nodata, b[1].b.buf);
    else to_byte_d(b[0].b.buf, n, (unsigned char)nodata, b[1].b.buf);
    Py_END_ALLOW_THREADS
    buf_release(b, 2);
    Py_RETURN_NONE;
}

static PyObject *py_has_inf(PyObject *self, PyObject *args)
{
    PyObject *obj;
    if (!PyArg_ParseTuple(args, "O", &obj)) return NULL;
    Buf b = {0};
    if (!cells_buffer(obj, &b, 0, "has_inf")) return NULL;
    Py_ssize_t n = b.b.len / b.b.itemsize;
    int any;
    Py_BEGIN_ALLOW_THREADS
    any = buf_kind(&b) == 'f' ? has_inf_f(b.b.buf, n) : has_inf_d(b.b.buf, n);
    Py_END_ALLOW_THREADS
    buf_release(&b, 1);
    return PyBool_FromLong(any);
}

static PyObject *py_to_nan(PyObject *self, PyObject *args)
{
    PyObject *obj, *nodata_obj;
    if (!PyArg_ParseTuple(args, "OO", &obj, &nodata_obj)) return NULL;
    int use_nodata = nodata_obj != Py_None;
    double nodata = use_nodata ? PyFloat_AsDouble(nodata_obj) : 0.0;
    if (use_nodata && nodata == -1.0 && PyErr_Occurred()) return NULL;
    Buf b = {0};
    if (!cells_buffer(obj, &b, 1, "to_nan")) return NULL;
    Py_ssize_t n = b.b.len / b.b.itemsize;
    int any;
    Py_BEGIN_ALLOW_THREADS
    if (buf_kind(&b) == 'f') any = to_nan_f(b.b.buf, n, use_nodata, (float)nodata);
    else any = to_nan_d(b.b.buf, n, use_nodata, nodata);
    Py_END_ALLOW_THREADS
    buf_release(&b, 1);
    return PyBool_FromLong(any);
}



/* A buffer of signed integers of ``size`` bytes (numpy's int64 is 'l' or 'q'). */
static int signed_ints(Buf *b, Py_ssize_t size)
{
    char k = buf_kind(b);
    return b->b.itemsize == size && (k == 'i' || k == 'l' || k == 'q');
}

static PyObject *py_block_sums(PyObject *self, PyObject *args)
{
    PyObject *objs[5];
    if (!PyArg_ParseTuple(args, "OOOOO", &objs[0], &objs[1], &objs[2], &objs[3], &objs[4]))
        return NULL;
    Buf b[5] = {{0}};
    if (!cells_buffer(objs[0], &b[0], 0, "block_sums")) return NULL;
    for (int k = 1; k < 5; k++)
        if (!buf_get(objs[k], &b[k], k >= 3)) { buf_release(b, 5); return NULL; }
    Py_ssize_t rows = b[0].b.ndim == 2 ? b[0].b.shape[0] : -1;
    Py_ssize_t cols = b[0].b.ndim == 2 ? b[0].b.shape[1] : -1;
    Py_ssize_t nb = b[1].b.len / 8, runs = nb - 1, ncell = b[3].b.ndim == 2 ? b[3].b.shape[1] : -1;
    const long long *bounds = b[1].b.buf, *cell = b[2].b.buf;
    int ok = rows >= 0 && signed_ints(&b[1], 8) && signed_ints(&b[2], 8)
             && buf_kind(&b[3]) == 'd' && signed_ints(&b[4], 4) && runs >= 0
             && b[2].b.len == 8 * cols && ncell >= 0 && b[3].b.shape[0] == runs
             && b[4].b.len == 4 * runs * ncell;
    for (Py_ssize_t i = 0; ok && i < nb; i++)  /* runs within the block, in order */
        ok = bounds[i] >= (i ? bounds[i - 1] : 0) && bounds[i] <= rows;
    for (Py_ssize_t c = 0; ok && c < cols; c++)
        ok = cell[c] >= 0 && cell[c] < ncell;
    if (!ok) {
        buf_release(b, 5);
        PyErr_SetString(PyExc_ValueError, "block_sums(block, bounds, cell, sums, counts): a "
                        "2-D block, int64 run bounds within it and a cell of each column, "
                        "float64 sums and int32 counts of (runs, cells)");
        return NULL;
    }
    double *acc = malloc(sizeof(double) * (cols > 0 ? cols : 1));
    int *cnt = malloc(sizeof(int) * (cols > 0 ? cols : 1));
    if (!acc || !cnt) { free(acc); free(cnt); buf_release(b, 5); return PyErr_NoMemory(); }
    Py_BEGIN_ALLOW_THREADS
    if (buf_kind(&b[0]) == 'f')
        block_sums_f(b[0].b.buf, cols, bounds, runs, cell, ncell, b[3].b.buf, b[4].b.buf, acc, cnt);
    else
        block_sums_d(b[0].b.buf, cols, bounds, runs, cell, ncell, b[3].b.buf, b[4].b.buf, acc, cnt);
    Py_END_ALLOW_THREADS
    free(acc);
    free(cnt);
    buf_release(b, 5);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"ground", py_ground, METH_VARARGS,
     "ground(px, py, rows, cols, lattice, nr, nc, rk, rf, ck, cf, ox, oy)"},
    {"central", py_central, METH_VARARGS,
     "central(z, rows, cols, xpos, xscale, ypos, halo, edge_order, z_factor, dzdx, dzdy)"},
    {"horn", py_horn, METH_VARARGS,
     "horn(z, rows, cols, xpos, xscale, ypos, halo, edge_order, z_factor, dzdx, dzdy)"},
    {"zevenbergen_thorne", py_zevenbergen_thorne, METH_VARARGS,
     "zevenbergen_thorne(z, rows, cols, xpos, xscale, ypos, halo, edge_order, z_factor, dzdx, "
     "dzdy)"},
    {"slope", py_slope, METH_VARARGS, "slope(dzdx, dzdy, units, out)"},
    {"fill_nan", py_fill_nan, METH_VARARGS, "fill_nan(a, value): NaN -> value in place"},
    {"has_inf", py_has_inf, METH_VARARGS, "has_inf(a): whether a cell is +-inf"},
    {"to_nan", py_to_nan, METH_VARARGS,
     "to_nan(a, nodata): non-finite and nodata (None: none) cells -> NaN in place; any"},
    {"to_byte", py_to_byte, METH_VARARGS,
     "to_byte(a, nodata, out): NaN -> nodata, else floor(a + 0.5) clamped to 0..255"},
    {"block_sums", py_block_sums, METH_VARARGS,
     "block_sums(block, bounds, cell, sums, counts): display-cell sums and valid counts"},
    {"aspect", py_aspect, METH_VARARGS, "aspect(dzdx, dzdy, flat_value, out)"},
    {"hillshade", py_hillshade, METH_VARARGS,
     "hillshade(dzdx, dzdy, azimuth, altitude, multidirectional, out)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ckernels",
                                    "terrain's compiled stencils (see terrain/kernels.py)", -1,
                                    methods};

PyMODINIT_FUNC PyInit__ckernels(void) { return PyModule_Create(&module); }
