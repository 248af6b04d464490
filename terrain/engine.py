"""The gradient engine: options, blocks with a halo, and the in-memory runner.

:func:`compute_block` is the single place where a padded block becomes
products; the in-memory runner here, the dask runner (:mod:`terrain.dask_runner`)
and the streaming runner (:mod:`terrain.stream`) only differ in where the block
comes from and where the results go.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import kernels
from .errors import TerrainError

METHODS = {
    "central": kernels.central,
    "horn": kernels.horn,
    "zevenbergen-thorne": kernels.zevenbergen_thorne,
}
PRODUCTS = ("dzdx", "dzdy", "slope", "aspect", "hillshade")

@dataclass(frozen=True)
class Options:
    """What to compute and how; validated on construction."""

    method: str = "central"
    edge_order: int = 1
    z_factor: float = 1.0
    units: str = "degrees"
    flat_value: float = -1.0
    azimuth: float = 315.0
    altitude: float = 45.0
    multidirectional: bool = False

    def __post_init__(self):
        if self.method not in METHODS:
            raise TerrainError(
                f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}"
            )
        if self.edge_order not in (1, 2):
            raise TerrainError(f"edge_order must be 1 or 2, got {self.edge_order!r}")
        if self.units not in kernels.SLOPE_UNITS:
            raise TerrainError(
                f"unknown slope units {self.units!r}; choose one of "
                f"{', '.join(kernels.SLOPE_UNITS)}"
            )
        if not (math.isfinite(self.z_factor) and self.z_factor != 0):
            raise TerrainError(f"z_factor must be finite and non-zero, got {self.z_factor!r}")
        if not 0 <= self.altitude <= 90:
            raise TerrainError(f"altitude must be within 0..90 degrees, got {self.altitude!r}")

    @property
    def halo(self) -> int:
        # A one-sided second-order difference reaches two cells away.
        return self.edge_order


def as_elevation(raw: np.ndarray, nodata=None) -> np.ndarray:
    """Float elevations with NaN for the nodata value, NaN and +-inf.

    Integers become float32, float64 stays float64. Works in place on float input.
    """
    if raw.dtype.kind == "f":
        z = raw if raw.dtype in (np.float32, np.float64) else raw.astype(np.float64)
    else:
        z = raw.astype(np.float32)
    if nodata is not None and not np.isnan(nodata):
        if raw.dtype.kind in "iu":
            # Compare in the raw type so that an integer nodata is never rounded; a
            # value the type cannot hold cannot occur in the data.
            info = np.iinfo(raw.dtype)
            if float(nodata).is_integer() and info.min <= nodata <= info.max:
                z[raw == raw.dtype.type(int(nodata))] = np.nan
        else:
            z[raw == nodata] = np.nan
    z[np.isinf(z)] = np.nan
    return z


def output_dtype(z_dtype) -> np.dtype:
    """Storage type of results: float64 for float64 elevations, float32 for all others."""
    return np.dtype(np.float64) if np.dtype(z_dtype) == np.float64 else np.dtype(np.float32)


def compute_block(zpad, xpos, xscale, ypos, opts: Options, products, out_dtype=None, *,
                  name: str = "the DEM"):
    """Products of one padded block.

    ``zpad`` has ``opts.halo`` extra cells on every side (NaN beyond the raster),
    the spacing vectors cover the padded block. Returns ``{name: array}`` for the
    unpadded block, in ``out_dtype`` (hillshade in float32).
    """
    h = opts.halo
    shape = (zpad.shape[0] - 2 * h, zpad.shape[1] - 2 * h)
    dtype = out_dtype or output_dtype(zpad.dtype)
    dzdx = np.empty(shape, dtype)
    dzdy = np.empty(shape, dtype)
    METHODS[opts.method](zpad, xpos, xscale, ypos, h, opts.edge_order, float(opts.z_factor), dzdx, dzdy)
    out = products_from_gradient(dzdx, dzdy, opts, products)
    if dtype == np.float32:
        # Finite elevations cannot give an infinite gradient in float64, but can
        # overflow float32 (a -3.4e38 fill value nobody declared as nodata).
        checked = [dzdx, dzdy] + [out[n] for n in ("slope",) if n in out and opts.units in ("percent", "ratio")]
        if any(np.isinf(a).any() for a in checked):
            raise TerrainError(
                f"{name}: gradient beyond float32's range (about 3.4e38): the DEM probably holds an "
                "undeclared nodata value such as -3.4e38; declare it (gdal_edit.py -a_nodata) "
                "or pass float64 elevations"
            )
    return out


def products_from_gradient(dzdx, dzdy, opts: Options, products):
    """Slope, aspect and hillshade from a gradient block (dzdx / dzdy passed through)."""
    out = {}
    for name in products:
        if name == "dzdx":
            out[name] = dzdx
        elif name == "dzdy":
            out[name] = dzdy
        elif name == "slope":
            out[name] = np.empty(dzdx.shape, dzdx.dtype)
            kernels.slope(dzdx, dzdy, kernels.SLOPE_UNITS[opts.units], out[name])
        elif name == "aspect":
            out[name] = np.empty(dzdx.shape, dzdx.dtype)
            kernels.aspect(dzdx, dzdy, float(opts.flat_value), out[name])
        elif name == "hillshade":
            out[name] = np.empty(dzdx.shape, np.float32)
            kernels.hillshade(dzdx, dzdy, float(opts.azimuth), float(opts.altitude),
                              bool(opts.multidirectional), out[name])
        else:
            raise TerrainError(f"unknown product {name!r}; choose from {', '.join(PRODUCTS)}")
    return out


def halo_bounds(shape, row0: int, row1: int, col0: int, col1: int, halo: int):
    """(r0, r1, c0, c1): the window plus ``halo`` cells around, clipped to ``shape``."""
    rows, cols = shape
    return max(row0 - halo, 0), min(row1 + halo, rows), max(col0 - halo, 0), min(col1 + halo, cols)


def pad_block(block: np.ndarray, row0: int, row1: int, col0: int, col1: int, halo: int, shape):
    """``block`` (the :func:`halo_bounds` part of the raster) padded with NaN to the full halo."""
    r0, r1, c0, c1 = halo_bounds(shape, row0, row1, col0, col1, halo)
    if (r0, r1, c0, c1) == (row0 - halo, row1 + halo, col0 - halo, col1 + halo):
        return block
    out = np.full((row1 - row0 + 2 * halo, col1 - col0 + 2 * halo), np.nan, dtype=block.dtype)
    out[r0 - row0 + halo:r1 - row0 + halo, c0 - col0 + halo:c1 - col0 + halo] = block
    return out


def pad_from_array(z: np.ndarray, row0: int, row1: int, col0: int, col1: int, halo: int):
    """Rows row0:row1, cols col0:col1 of ``z`` with ``halo`` cells around, NaN beyond ``z``.

    Always a contiguous copy, as the kernels want.
    """
    r0, r1, c0, c1 = halo_bounds(z.shape, row0, row1, col0, col1, halo)
    return pad_block(z[r0:r1, c0:c1].copy(), row0, row1, col0, col1, halo, z.shape)


def windows(shape, tile: int):
    """(row0, row1, col0, col1) of tiles covering ``shape``, row-major."""
    rows, cols = shape
    for r in range(0, rows, tile):
        for c in range(0, cols, tile):
            yield r, min(r + tile, rows), c, min(c + tile, cols)


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_in_memory(z, grid, opts: Options, products, *, tile: int = 512, threads: int | None = None,
                  name: str = "the DEM"):
    """Products of a whole in-memory elevation array, tile by tile on a thread pool."""
    out_dtype = output_dtype(z.dtype)
    out = {
        product: np.empty(z.shape, np.float32 if product == "hillshade" else out_dtype)
        for product in products
    }
    h = opts.halo

    def work(win):
        row0, row1, col0, col1 = win
        zpad = pad_from_array(z, row0, row1, col0, col1, h)
        res = compute_block(zpad, *grid.window(row0, row1, col0, col1, h), opts, products,
                            out_dtype, name=name)
        for product, block in res.items():
            out[product][row0:row1, col0:col1] = block

    wins = list(windows(z.shape, tile))
    threads = threads or default_threads()
    if threads == 1 or len(wins) == 1:
        for w in wins:
            work(w)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, wins))
    return out


def product_units(name: str, opts: Options) -> str:
    """Units recorded with a product (DataArray attrs, GeoTIFF band units)."""
    if name in ("dzdx", "dzdy"):
        return "metres per metre"
    if name == "slope":
        return opts.units
    if name == "aspect":
        return "degrees"
    return "brightness 1-255"


def product_description(name: str, opts: Options) -> str:
    """A one-line description of a product, for attrs and file metadata."""
    return {
        "dzdx": "elevation derivative towards east",
        "dzdy": "elevation derivative towards north",
        "slope": f"slope in {opts.units}",
        "aspect": "downslope azimuth, clockwise from north; "
                  f"{opts.flat_value:g} where flat",
        "hillshade": f"hillshade, azimuth {opts.azimuth:g}, altitude {opts.altitude:g}"
                     + (", multidirectional" if opts.multidirectional else ""),
    }[name]


# The one default gradient method of hillshades (issue 9 row 9): `terrain hillshade`,
# the hillshade GeoTIFF of `terrain analyze`, `terrain plot --product hillshade`,
# terrain.hillshade() and the grey backdrop of every map use it unless a method is given.
HILLSHADE_METHOD = "horn"
