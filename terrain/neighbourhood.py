"""Neighbourhood indices on the 3x3 window: TRI (Riley, Wilson), TPI and roughness.

Each function works like the gradient kernels (:mod:`terrain.kernels`): ``z`` is
one block padded with ``halo`` >= 1 cells on each side (NaN beyond the raster),
``out`` receives the unpadded block, arithmetic is float64 whatever the storage
type (float32 or float64), and each output cell depends only on its own 3x3
window, so the result is the same bit for bit for any block size. Values are in
elevation units times ``z_factor``, i.e. metres.

On the interior (all nine cells valid) they are gdaldem's definitions
(``apps/gdaldem_lib.cpp``), with c the centre and z_k its eight neighbours:

- ``tri`` Riley (gdaldem's default): sqrt(sum_k (z_k - c)^2);
- ``tri`` Wilson: mean_k |z_k - c|;
- ``tpi``: c - mean_k z_k;
- ``roughness``: max - min of the nine cells.

gdaldem computes these in float32 (it reads float rasters as float32) and gives
nodata on the raster border and around every hole; terrain computes in float64,
so the two agree to float32 rounding on the interior.

Edges and holes (where gdaldem has nodata): the eight neighbours form four
opposite pairs through the centre (W-E, N-S, NW-SE, NE-SW).

- A missing neighbour whose opposite is valid is extrapolated linearly through the
  centre, 2 c - opposite (its difference to the centre is minus the opposite's):
  every index is then exact on a tilted plane there (TPI 0, roughness twice the
  largest step, TRI as on the interior), as the gradient methods are at edges.
  This is what ``gdaldem -compute_edges`` does along the raster border, except
  that gdaldem extrapolates along the border row or column where terrain goes
  through the centre (the same on a plane), and it puts the centre's own value in
  place of a hole's cells.
- A pair whose two cells are both missing drops out (raster corners, a cell
  between two holes). Wilson TRI and TPI are then means over the remaining
  neighbours; Riley TRI is scaled to 8 neighbours, sqrt(8 / m * sum of the m
  squares), so that it keeps the interior's magnitude; roughness is max - min
  over the centre and the remaining neighbours.
- A NaN centre stays NaN; a cell none of whose pairs has a valid cell is NaN.
"""

from __future__ import annotations

import numpy as np

from . import _cneighbour
from .registry import TRI_ALGORITHMS
_KINDS = {"riley": 0, "wilson": 1, "tpi": 2, "roughness": 3}


def _storage(a) -> np.ndarray:
    """``a`` as a C-contiguous float32 or float64 array (no copy when it already is)."""
    a = np.asarray(a)
    dtype = np.float32 if a.dtype == np.float32 else np.float64
    return np.ascontiguousarray(a, dtype=dtype)


def _run(kind, z, halo, z_factor, out):
    z = _storage(z)
    if z.ndim != 2:
        raise ValueError("z must be a 2-D padded block")
    halo = int(halo)
    if halo < 1:
        raise ValueError("the neighbourhood indices need a halo of at least 1")
    rows, cols = z.shape
    if out.shape != (rows - 2 * halo, cols - 2 * halo):
        raise ValueError("out must be the padded block's shape less the halo")
    if out.flags.c_contiguous and out.flags.writeable and out.dtype == z.dtype:
        _cneighbour.neighbour(kind, z, rows, cols, halo, float(z_factor), out)
    else:
        tmp = np.empty(out.shape, z.dtype)
        _cneighbour.neighbour(kind, z, rows, cols, halo, float(z_factor), tmp)
        out[...] = tmp
    return out


def tri(z, halo, z_factor, out, *, algorithm="riley"):
    """Terrain Ruggedness Index: Riley (root of the summed squared differences to
    the 8 neighbours, gdaldem's default) or Wilson (their mean absolute difference).

    >>> z = np.full((5, 5), np.nan); z[1:4, 1:4] = [[0, 0, 0], [0, 1, 0], [0, 0, 0]]
    >>> out = np.empty((3, 3)); float(tri(z, 1, 1.0, out)[1, 1]) ** 2  # 8 neighbours, each 1 below
    8.000000000000002
    >>> float(tri(z, 1, 1.0, out, algorithm="wilson")[1, 1])
    1.0
    """
    if algorithm not in TRI_ALGORITHMS:
        raise ValueError(f"TRI algorithm must be one of {TRI_ALGORITHMS}, got {algorithm!r}")
    return _run(_KINDS[algorithm], z, halo, z_factor, out)


def tpi(z, halo, z_factor, out):
    """Topographic Position Index: the centre minus the mean of its 8 neighbours."""
    return _run(_KINDS["tpi"], z, halo, z_factor, out)


def roughness(z, halo, z_factor, out):
    """Roughness: the largest minus the smallest value of the 3x3 window."""
    return _run(_KINDS["roughness"], z, halo, z_factor, out)


def on_array(z, index, z_factor=1.0, algorithm="riley", dtype=None):
    """``index`` ("tri", "tpi" or "roughness") of a whole 2-D array (NaN = missing).

    Pads the array with a NaN halo of 1 (the raster edge) and returns a new array
    of ``dtype`` (default: float32 for float32 input, else float64).
    """
    z = _storage(z)
    pad = np.pad(z, 1, constant_values=np.nan)
    out = np.empty(z.shape, dtype or z.dtype)
    if index == "tri":
        return tri(pad, 1, z_factor, out, algorithm=algorithm)
    if index == "tpi":
        return tpi(pad, 1, z_factor, out)
    if index == "roughness":
        return roughness(pad, 1, z_factor, out)
    raise ValueError(f"index must be 'tri', 'tpi' or 'roughness', got {index!r}")
