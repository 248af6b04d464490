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
def central(z, xpos, xscale, ypos, halo, edge_order, z_factor, dzdx, dzdy):
    """numpy.gradient's stencil: second-order central inside, one-sided at edges and voids."""
    rows, cols = dzdx.shape
    for r in range(rows):
        i = r + halo
        s = xscale[i]
        for c in range(cols):
            j = c + halo
            if z[i, j] != z[i, j]:
                dzdx[r, c] = np.nan
                dzdy[r, c] = np.nan
                continue
            dzdx[r, c] = z_factor * _x_diff(z, i, j, xpos, s, edge_order, False)
            dzdy[r, c] = z_factor * _y_diff(z, i, j, ypos, edge_order, False)


@njit(**_OPTS)
def zevenbergen_thorne(z, xpos, xscale, ypos, halo, edge_order, z_factor, dzdx, dzdy):
    """dzdx = (f - d) / (2 dx), dzdy = (b - h) / (2 dy); one-sided where a neighbour is missing."""
    rows, cols = dzdx.shape
    for r in range(rows):
        i = r + halo
        s = xscale[i]
        for c in range(cols):
            j = c + halo
            if z[i, j] != z[i, j]:
                dzdx[r, c] = np.nan
                dzdy[r, c] = np.nan
                continue
            dzdx[r, c] = z_factor * _x_diff(z, i, j, xpos, s, edge_order, True)
            dzdy[r, c] = z_factor * _y_diff(z, i, j, ypos, edge_order, True)


@njit(**_OPTS)
def horn(z, xpos, xscale, ypos, halo, edge_order, z_factor, dzdx, dzdy):
    """Horn's 3x3 stencil: the 1-2-1 weighted mean of the three rows' (columns') differences.

    Each row's difference uses that row's own ground spacing, so a plane is exact on
    geographic grids too; on projected grids this is gdaldem's
    ((c + 2f + i) - (a + 2d + g)) / (8 dx). A row (column) whose difference cannot
    be formed drops out and the weights are renormalised.
    """
    rows, cols = dzdx.shape
    for r in range(rows):
        i = r + halo
        for c in range(cols):
            j = c + halo
            if z[i, j] != z[i, j]:
                dzdx[r, c] = np.nan
                dzdy[r, c] = np.nan
                continue
            sx = 0.0
            wx = 0.0
            sy = 0.0
            wy = 0.0
            for k in range(-1, 2):
                w = 2.0 if k == 0 else 1.0
                ii = i + k
                if 0 <= ii < z.shape[0]:
                    d = _x_diff(z, ii, j, xpos, xscale[ii], edge_order, True)
                    if d == d:
                        sx += w * d
                        wx += w
                jj = j + k
                if 0 <= jj < z.shape[1]:
                    d = _y_diff(z, i, jj, ypos, edge_order, True)
                    if d == d:
                        sy += w * d
                        wy += w
            dzdx[r, c] = z_factor * sx / wx if wx > 0 else np.nan
            dzdy[r, c] = z_factor * sy / wy if wy > 0 else np.nan


@njit(**_OPTS)
def slope(dzdx, dzdy, units, out):
    """Slope from the gradient; units: 0 degrees, 1 percent, 2 radians, 3 ratio (tan)."""
    rows, cols = out.shape
    for r in range(rows):
        for c in range(cols):
            p = np.float64(dzdx[r, c])
            q = np.float64(dzdy[r, c])
            t = math.sqrt(p * p + q * q)
            if units == 0:
                out[r, c] = math.degrees(math.atan(t))
            elif units == 1:
                out[r, c] = 100.0 * t
            elif units == 2:
                out[r, c] = math.atan(t)
            else:
                out[r, c] = t


@njit(**_OPTS)
def aspect(dzdx, dzdy, flat_value, out):
    """Compass azimuth of the downslope direction, [0, 360); flat_value where flat, NaN stays."""
    rows, cols = out.shape
    for r in range(rows):
        for c in range(cols):
            p = np.float64(dzdx[r, c])
            q = np.float64(dzdy[r, c])
            if p != p or q != q:
                out[r, c] = np.nan
            elif p == 0.0 and q == 0.0:
                out[r, c] = flat_value
            else:
                a = math.degrees(math.atan2(-p, -q))
                if a < 0.0:
                    a += 360.0
                out[r, c] = a
                # Rounding to the storage type may give 360 itself.
                if out[r, c] >= 360.0:
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
