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
a value. Arithmetic is float64 whatever the storage type, with plain IEEE
operations, so results are reproducible bit for bit across block sizes.

The loops are C (``terrain/_ckernels.c``, built at install): they release the GIL
for the runners' threads and, unlike a JIT, cost nothing at start-up.
"""

from __future__ import annotations

import numpy as np

from . import _ckernels
from .registry import SLOPE_UNITS as _UNIT_NAMES

# The C kernels' codes of the slope units (their order in the registry).
SLOPE_UNITS = {name: code for code, name in enumerate(_UNIT_NAMES)}


def _storage(a) -> np.ndarray:
    """``a`` as a C-contiguous float32 or float64 array (no copy when it already is)."""
    a = np.asarray(a)
    dtype = np.float32 if a.dtype == np.float32 else np.float64
    return np.ascontiguousarray(a, dtype=dtype)


def _run_into(outs, dtype, fill):
    """Call ``fill`` with contiguous outputs of ``dtype``, copying into ``outs`` if needed."""
    direct = [o.flags.c_contiguous and o.flags.writeable and o.dtype == dtype for o in outs]
    tmp = [o if ok else np.empty(o.shape, dtype) for o, ok in zip(outs, direct)]
    fill(*tmp)
    for o, t, ok in zip(outs, tmp, direct):
        if not ok:
            o[...] = t


def _gradient(entry, z, xpos, xscale, ypos, halo, edge_order, z_factor, dzdx, dzdy):
    z = _storage(z)
    rows, cols = z.shape
    if dzdx.shape != (rows - 2 * halo, cols - 2 * halo) or dzdy.shape != dzdx.shape:
        raise ValueError("dzdx / dzdy must be the padded block's shape less the halo")
    vec = [np.ascontiguousarray(v, dtype=np.float64) for v in (xpos, xscale, ypos)]
    if vec[0].size != cols or vec[1].size != rows or vec[2].size != rows:
        raise ValueError("spacing vectors must match the padded block")
    _run_into((dzdx, dzdy), z.dtype, lambda ox, oy: entry(
        z, rows, cols, *vec, int(halo), int(edge_order), float(z_factor), ox, oy))


def central(z, xpos, xscale, ypos, halo, edge_order, z_factor, dzdx, dzdy):
    """numpy.gradient's stencil: second-order central inside, one-sided at edges and voids.

    Non-uniform spacing uses numpy.gradient's non-uniform formulas.
    """
    _gradient(_ckernels.central, z, xpos, xscale, ypos, halo, edge_order, z_factor, dzdx, dzdy)


def horn(z, xpos, xscale, ypos, halo, edge_order, z_factor, dzdx, dzdy):
    """Horn's 3x3 stencil: the 1-2-1 weighted mean of the three rows' (columns') differences.

    Each row's difference uses that row's own ground spacing, so a plane is exact on
    geographic grids too; on projected grids this is gdaldem's
    ((c + 2f + i) - (a + 2d + g)) / (8 dx). A row (column) whose difference cannot
    be formed drops out and the weights are renormalised.
    """
    _gradient(_ckernels.horn, z, xpos, xscale, ypos, halo, edge_order, z_factor, dzdx, dzdy)


def zevenbergen_thorne(z, xpos, xscale, ypos, halo, edge_order, z_factor, dzdx, dzdy):
    """dzdx = (f - d) / (2 dx), dzdy = (b - h) / (2 dy); one-sided where a neighbour is missing."""
    _gradient(_ckernels.zevenbergen_thorne, z, xpos, xscale, ypos, halo, edge_order, z_factor, dzdx, dzdy)


def ground(px, py, lattice, rk, rf, ck, cf, ox, oy):
    """``(ox, oy) = M (px, py)`` per cell, M interpolated from ``lattice`` (see GroundMap).

    ``lattice`` is (nodes in y, nodes in x, 4) float64; ``rk`` / ``ck`` are each
    row's / column's node interval, ``rf`` / ``cf`` the fractions within it. The
    outputs may be the inputs (in place).
    """
    p = _storage(px)
    q = np.ascontiguousarray(py, dtype=p.dtype)
    lat = np.ascontiguousarray(lattice, dtype=np.float64)
    rows, cols = p.shape
    idx = [np.ascontiguousarray(v, dtype=np.intp) for v in (rk, ck)]
    frac = [np.ascontiguousarray(v, dtype=np.float64) for v in (rf, cf)]
    _run_into((ox, oy), p.dtype, lambda gx, gy: _ckernels.ground(
        p, q, rows, cols, lat, lat.shape[0], lat.shape[1], idx[0], frac[0], idx[1], frac[1],
        gx, gy))


def _product(entry, dzdx, dzdy, out, *settings):
    p = _storage(dzdx)
    q = np.ascontiguousarray(dzdy, dtype=p.dtype)
    if p.shape != q.shape or out.shape != p.shape:
        raise ValueError("dzdx, dzdy and out must have the same shape")
    _run_into((out,), p.dtype, lambda o: entry(p, q, *settings, o))


def slope(dzdx, dzdy, units, out):
    """Slope from the gradient; units: 0 degrees, 1 percent, 2 radians, 3 ratio (tan)."""
    _product(_ckernels.slope, dzdx, dzdy, out, int(units))


def aspect(dzdx, dzdy, flat_value, out):
    """Compass azimuth of the downslope direction, [0, 360); flat_value where flat, NaN stays."""
    _product(_ckernels.aspect, dzdx, dzdy, out, float(flat_value))
    if out.dtype != np.asarray(dzdx).dtype:
        # Computed in the gradient's type: rounding into ``out`` may give 360 itself.
        flat = (np.asarray(dzdx) == 0) & (np.asarray(dzdy) == 0)
        out[(out >= 360) & ~flat] = 0


def hillshade(dzdx, dzdy, azimuth, altitude, multidirectional, out):
    """gdaldem's hillshade, 1..255 (NaN where no gradient), on the true gradient.

    Standard: 1 + 254 * max(cos(incidence), 0) with cos(incidence) =
    (sin(alt) - dzdx sin(az) cos(alt) - dzdy cos(az) cos(alt)) / sqrt(1 + |grad|^2).
    Multidirectional: gdaldem's four lights (225, 270, 315, 360 degrees, 127 each,
    clipped at 0), weighted by the gradient's direction.
    """
    _product(_ckernels.hillshade, dzdx, dzdy, out, float(azimuth), float(altitude),
             int(bool(multidirectional)))
