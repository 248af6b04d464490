"""The stencils: one compiled kernel per gradient method, and the products.

Every kernel works on one block ``z`` padded with ``halo`` cells on each side
(NaN beyond the raster), with the block's spacing vectors (see
:mod:`terrain.spacing`), and fills ``dzdx`` / ``dzdy`` for the unpadded part.
The in-memory, dask and streaming runners all call these same functions, so the
numbers cannot depend on the runner or on the block size: each output cell is a
function of its own neighbourhood only.

Missing cells (NaN: nodata or beyond the edge) make a stencil fall back to the
best difference the valid cells allow: central, else one-sided (second order
with ``edge_order=2`` when two cells are there), else NaN. A NaN cell never gets
a value. Arithmetic is float64 whatever the storage type, without fastmath, so
results are reproducible bit for bit across block sizes.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_OPTS = dict(nogil=True, cache=True, error_model="numpy")

# Codes shared with terrain.engine.
SLOPE_UNITS = {"degrees": 0, "percent": 1, "radians": 2, "ratio": 3}


@njit(inline="always", **_OPTS)
def _line_diff(f0, fl, fr, fll, frr, p0, pl, pr, pll, prr, edge_order, secant):
    """Derivative at position p0 of samples f at positions p (l/ll: before, r/rr: after).

    Central when both neighbours exist: numpy.gradient's non-uniform formula
    (``secant`` False) or the plain secant (fr - fl) / (pr - pl) used by Horn and
    Zevenbergen-Thorne, which does not need the centre. Otherwise one-sided,
    needing the centre; numpy.gradient's edge formulas for ``edge_order`` 1 and 2.
    """
    if fl == fl and fr == fr:
        if secant:
            return (fr - fl) / (pr - pl)
        hl = p0 - pl
        hr = pr - p0
        if hl == hr:
            return (fr - fl) / (2.0 * hl)
        a = -hr / (hl * (hl + hr))
        b = (hr - hl) / (hl * hr)
        c = hl / (hr * (hl + hr))
        return a * fl + b * f0 + c * fr
    if f0 != f0:
        return np.nan
    if fr == fr:
        h1 = pr - p0
        if edge_order == 2 and frr == frr:
            h2 = prr - pr
            a = -(2.0 * h1 + h2) / (h1 * (h1 + h2))
            b = (h1 + h2) / (h1 * h2)
            c = -h1 / (h2 * (h1 + h2))
            return a * f0 + b * fr + c * frr
        return (fr - f0) / h1
    if fl == fl:
        h2 = p0 - pl
        if edge_order == 2 and fll == fll:
            h1 = pl - pll
            a = h2 / (h1 * (h1 + h2))
            b = -(h2 + h1) / (h1 * h2)
            c = (2.0 * h2 + h1) / (h2 * (h1 + h2))
            return a * fll + b * fl + c * f0
        return (f0 - fl) / h2
    return np.nan


@njit(inline="always", **_OPTS)
def _x_diff(z, i, j, xpos, s, edge_order, secant):
    """d/dx along row i at column j, metres per metre of x (s: metres per x unit)."""
    n = z.shape[1]
    fl = z[i, j - 1] if j >= 1 else np.nan
    fr = z[i, j + 1] if j + 1 < n else np.nan
    fll = z[i, j - 2] if j >= 2 else np.nan
    frr = z[i, j + 2] if j + 2 < n else np.nan
    pll = xpos[j - 2] * s if j >= 2 else 0.0
    prr = xpos[j + 2] * s if j + 2 < n else 0.0
    pl = xpos[j - 1] * s if j >= 1 else 0.0
    pr = xpos[j + 1] * s if j + 1 < n else 0.0
    return _line_diff(z[i, j], fl, fr, fll, frr, xpos[j] * s, pl, pr, pll, prr, edge_order, secant)


@njit(inline="always", **_OPTS)
def _y_diff(z, i, j, ypos, edge_order, secant):
    """d/dy along column j at row i, towards increasing ypos (north)."""
    n = z.shape[0]
    fl = z[i - 1, j] if i >= 1 else np.nan
    fr = z[i + 1, j] if i + 1 < n else np.nan
    fll = z[i - 2, j] if i >= 2 else np.nan
    frr = z[i + 2, j] if i + 2 < n else np.nan
    pll = ypos[i - 2] if i >= 2 else 0.0
    prr = ypos[i + 2] if i + 2 < n else 0.0
    pl = ypos[i - 1] if i >= 1 else 0.0
    pr = ypos[i + 1] if i + 1 < n else 0.0
    return _line_diff(z[i, j], fl, fr, fll, frr, ypos[i], pl, pr, pll, prr, edge_order, secant)


@njit(**_OPTS)
def _three_point_weights(pos, halo, n, secant):
    """Per-position weights (before, centre, after) of the interior three-point difference.

    numpy.gradient's non-uniform formula, or the secant (centre weight 0) for
    Zevenbergen-Thorne; NaN where a neighbour lies beyond the padded block.
    """
    w = np.full((n, 3), np.nan)
    for k in range(n):
        j = k + halo
        if 1 <= j < pos.size - 1:
            hl = pos[j] - pos[j - 1]
            hr = pos[j + 1] - pos[j]
            if secant or hl == hr:
                w[k, 0] = -1.0 / (hl + hr)
                w[k, 1] = 0.0
                w[k, 2] = 1.0 / (hl + hr)
            else:
                w[k, 0] = -hr / (hl * (hl + hr))
                w[k, 1] = (hr - hl) / (hl * hr)
                w[k, 2] = hl / (hr * (hl + hr))
    return w


@njit(**_OPTS)
def _three_point(z, xpos, xscale, ypos, halo, edge_order, z_factor, dzdx, dzdy, secant):
    """Central / Zevenbergen-Thorne: a branch-free pass, then fallbacks where it gave NaN."""
    rows, cols = dzdx.shape
    wx = _three_point_weights(xpos, halo, cols, secant)
    wy = _three_point_weights(ypos, halo, rows, secant)
    for r in range(rows):
        i = r + halo
        sx = z_factor / xscale[i]
        ya = wy[r, 0] * z_factor
        yb = wy[r, 1] * z_factor
        yc = wy[r, 2] * z_factor
        inside = 1 <= i < z.shape[0] - 1
        for c in range(cols):
            j = c + halo
            f0 = np.float64(z[i, j])
            if 1 <= j < z.shape[1] - 1:
                dzdx[r, c] = (wx[c, 0] * z[i, j - 1] + wx[c, 1] * f0 + wx[c, 2] * z[i, j + 1]) * sx
            else:
                dzdx[r, c] = np.nan
            if inside:
                dzdy[r, c] = ya * z[i - 1, j] + yb * f0 + yc * z[i + 1, j]
            else:
                dzdy[r, c] = np.nan
        for c in range(cols):
            j = c + halo
            if z[i, j] != z[i, j]:
                dzdx[r, c] = np.nan
                dzdy[r, c] = np.nan
                continue
            if dzdx[r, c] != dzdx[r, c]:
                dzdx[r, c] = z_factor * _x_diff(z, i, j, xpos, xscale[i], edge_order, secant)
            if dzdy[r, c] != dzdy[r, c]:
                dzdy[r, c] = z_factor * _y_diff(z, i, j, ypos, edge_order, secant)


@njit(**_OPTS)
def central(z, xpos, xscale, ypos, halo, edge_order, z_factor, dzdx, dzdy):
    """numpy.gradient's stencil: second-order central inside, one-sided at edges and voids."""
    _three_point(z, xpos, xscale, ypos, halo, edge_order, z_factor, dzdx, dzdy, False)


@njit(**_OPTS)
def zevenbergen_thorne(z, xpos, xscale, ypos, halo, edge_order, z_factor, dzdx, dzdy):
    """dzdx = (f - d) / (2 dx), dzdy = (b - h) / (2 dy); one-sided where a neighbour is missing."""
    _three_point(z, xpos, xscale, ypos, halo, edge_order, z_factor, dzdx, dzdy, True)


@njit(**_OPTS)
def horn(z, xpos, xscale, ypos, halo, edge_order, z_factor, dzdx, dzdy):
    """Horn's 3x3 stencil: the 1-2-1 weighted mean of the three rows' (columns') differences.

    Each row's difference uses that row's own ground spacing, so a plane is exact on
    geographic grids too; on projected grids this is gdaldem's
    ((c + 2f + i) - (a + 2d + g)) / (8 dx). A row (column) whose difference cannot
    be formed drops out and the weights are renormalised.
    """
    rows, cols = dzdx.shape
    nz, mz = z.shape
    # 1 / (4 dx) per column for the full-window pass (x spacing is per column).
    inv4dx = np.empty(cols)
    for c in range(cols):
        j = c + halo
        inv4dx[c] = 0.25 / (xpos[j + 1] - xpos[j - 1]) if 1 <= j < mz - 1 else np.nan
    for r in range(rows):
        i = r + halo
        if 1 <= i < nz - 1:
            # Full-window pass, branch-free so that it vectorises: any missing cell
            # among the eight neighbours makes the result NaN, mended below.
            isn = 1.0 / xscale[i - 1]
            is0 = 2.0 / xscale[i]
            iss = 1.0 / xscale[i + 1]
            qdy = 0.25 * z_factor / (ypos[i - 1] - ypos[i + 1])
            for c in range(cols):
                j = c + halo
                if 1 <= j < mz - 1:
                    a = np.float64(z[i - 1, j - 1])
                    b = np.float64(z[i - 1, j])
                    cc = np.float64(z[i - 1, j + 1])
                    d = np.float64(z[i, j - 1])
                    f = np.float64(z[i, j + 1])
                    g = np.float64(z[i + 1, j - 1])
                    h = np.float64(z[i + 1, j])
                    k = np.float64(z[i + 1, j + 1])
                    dzdx[r, c] = z_factor * ((cc - a) * isn + (f - d) * is0 + (k - g) * iss) * inv4dx[c]
                    dzdy[r, c] = ((a - g) + 2.0 * (b - h) + (cc - k)) * qdy
                else:
                    dzdx[r, c] = np.nan
                    dzdy[r, c] = np.nan
        else:
            for c in range(cols):
                dzdx[r, c] = np.nan
                dzdy[r, c] = np.nan
        for c in range(cols):
            j = c + halo
            if z[i, j] != z[i, j]:
                dzdx[r, c] = np.nan
                dzdy[r, c] = np.nan
            elif dzdx[r, c] != dzdx[r, c] or dzdy[r, c] != dzdy[r, c]:
                _horn_fallback(z, i, j, xpos, xscale, ypos, edge_order, z_factor, dzdx, dzdy, r, c)


@njit(**_OPTS)
def _horn_fallback(z, i, j, xpos, xscale, ypos, edge_order, z_factor, dzdx, dzdy, r, c):
    """Horn next to missing cells: mean of the rows' / columns' differences that exist."""
    nz, mz = z.shape
    sx = 0.0
    wx = 0.0
    sy = 0.0
    wy = 0.0
    for kk in range(-1, 2):
        w = 2.0 if kk == 0 else 1.0
        ii = i + kk
        if 0 <= ii < nz:
            dd = _x_diff(z, ii, j, xpos, xscale[ii], edge_order, True)
            if dd == dd:
                sx += w * dd
                wx += w
        jj = j + kk
        if 0 <= jj < mz:
            dd = _y_diff(z, i, jj, ypos, edge_order, True)
            if dd == dd:
                sy += w * dd
                wy += w
    dzdx[r, c] = z_factor * sx / wx if wx > 0 else np.nan
    dzdy[r, c] = z_factor * sy / wy if wy > 0 else np.nan


# Cephes' atan (range reduction and a rational approximation, 1 ulp): unlike a
# libm call it vectorises, which makes slope and aspect several times faster, and
# its plain IEEE arithmetic gives the same bits in vector and scalar code.
_T3P8 = 2.41421356237309504880
_MOREBITS = 6.123233995736765886130e-17
_P = (-8.750608600031904122785e-1, -1.615753718733365076637e1, -7.500855792314704667340e1,
      -1.228866684490136173410e2, -6.485021904942025371773e1)
_Q = (2.485846490142306297962e1, 1.650270098316988542046e2, 4.328810604912902668951e2,
      4.853903996359136964868e2, 1.945506571482613964425e2)


@njit(inline="always", **_OPTS)
def _atan_nonneg(x):
    """atan(x) for x >= 0 (NaN stays NaN)."""
    big = x > _T3P8
    mid = x > 0.66
    xr = -1.0 / x if big else ((x - 1.0) / (x + 1.0) if mid else x)
    y0 = math.pi / 2 if big else (math.pi / 4 if mid else 0.0)
    extra = _MOREBITS if big else (0.5 * _MOREBITS if mid else 0.0)
    zz = xr * xr
    p = (((_P[0] * zz + _P[1]) * zz + _P[2]) * zz + _P[3]) * zz + _P[4]
    q = ((((zz + _Q[0]) * zz + _Q[1]) * zz + _Q[2]) * zz + _Q[3]) * zz + _Q[4]
    return y0 + (xr * (zz * p / q) + xr + extra)


@njit(inline="always", **_OPTS)
def _atan2(y, x):
    """atan2(y, x) in (-pi, pi] from _atan_nonneg; (0, 0) gives 0."""
    ay = abs(y)
    ax = abs(x)
    steep = ay > ax
    t = ax / ay if steep else (ay / ax if ax > 0.0 else 0.0)
    a = _atan_nonneg(t)
    a = math.pi / 2 - a if steep else a
    a = math.pi - a if x < 0.0 else a
    return -a if y < 0.0 else a


@njit(**_OPTS)
def slope(dzdx, dzdy, units, out):
    """Slope from the gradient; units: 0 degrees, 1 percent, 2 radians, 3 ratio (tan)."""
    rows, cols = out.shape
    # One loop per unit, so that each one vectorises.
    scale = 180.0 / math.pi if units == 0 else 1.0
    for r in range(rows):
        if units == 0 or units == 2:
            for c in range(cols):
                p = np.float64(dzdx[r, c])
                q = np.float64(dzdy[r, c])
                out[r, c] = _atan_nonneg(math.sqrt(p * p + q * q)) * scale
        else:
            factor = 100.0 if units == 1 else 1.0
            for c in range(cols):
                p = np.float64(dzdx[r, c])
                q = np.float64(dzdy[r, c])
                out[r, c] = factor * math.sqrt(p * p + q * q)


@njit(**_OPTS)
def aspect(dzdx, dzdy, flat_value, out):
    """Compass azimuth of the downslope direction, [0, 360); flat_value where flat, NaN stays."""
    rows, cols = out.shape
    for r in range(rows):
        for c in range(cols):
            p = np.float64(dzdx[r, c])
            q = np.float64(dzdy[r, c])
            a = _atan2(-p, -q) * (180.0 / math.pi)
            a = a + 360.0 if a < 0.0 else a
            a = flat_value if (p == 0.0 and q == 0.0) else a
            out[r, c] = np.nan if (p != p or q != q) else a
        # Rounding to the storage type may give 360 itself.
        for c in range(cols):
            if out[r, c] >= 360.0 and not (dzdx[r, c] == 0.0 and dzdy[r, c] == 0.0):
                out[r, c] = 0.0


@njit(**_OPTS)
def hillshade(dzdx, dzdy, azimuth, altitude, multidirectional, out):
    """gdaldem's hillshade, 1..255 (NaN where no gradient), on the true gradient.

    Standard: 1 + 254 * max(cos(incidence), 0) with cos(incidence) =
    (sin(alt) - dzdx sin(az) cos(alt) - dzdy cos(az) cos(alt)) / sqrt(1 + |grad|^2).
    Multidirectional: gdaldem's four lights (225, 270, 315, 360 degrees, 127 each,
    clipped at 0), weighted by the gradient's direction.
    """
    rows, cols = out.shape
    sin_alt = math.sin(math.radians(altitude))
    cos_alt = math.cos(math.radians(altitude))
    sin_az = math.sin(math.radians(azimuth))
    cos_az = math.cos(math.radians(azimuth))
    c225 = math.cos(math.radians(225.0))
    for r in range(rows):
        for c in range(cols):
            p = np.float64(dzdx[r, c])
            q = np.float64(dzdy[r, c])
            if p != p or q != q:
                out[r, c] = np.nan
                continue
            g2 = p * p + q * q
            norm = math.sqrt(1.0 + g2)
            if not multidirectional:
                cang = (sin_alt - p * sin_az * cos_alt - q * cos_az * cos_alt) / norm
                out[r, c] = 1.0 if cang <= 0.0 else 1.0 + 254.0 * cang
                continue
            if g2 == 0.0:
                out[r, c] = 1.0 + 254.0 * sin_alt
                continue
            # gdaldem's x, y: x = -dzdx, y = dzdy.
            x = -p
            y = q
            v225 = max(0.0, 127.0 * sin_alt + (x - y) * 127.0 * c225 * cos_alt)
            v270 = max(0.0, 127.0 * sin_alt - x * 127.0 * cos_alt)
            v315 = max(0.0, 127.0 * sin_alt + (x + y) * 127.0 * c225 * cos_alt)
            v360 = max(0.0, 127.0 * sin_alt - y * 127.0 * cos_alt)
            w225 = 0.5 * g2 - x * y
            w270 = x * x
            w315 = g2 - w225
            w360 = y * y
            total = w225 * v225 + w270 * v270 + w315 * v315 + w360 * v360
            out[r, c] = 1.0 + (total / g2) / norm
