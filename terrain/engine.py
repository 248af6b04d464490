"""The gradient engine: compute and run options, one padded block to products, the in-memory runner.

:func:`compute_block` is the single place where a padded block becomes
products; the in-memory runner here, the dask runner (:mod:`terrain.dask_runner`)
and the streaming runner (:mod:`terrain.stream`) only differ in where the block
comes from and where the results go.
"""

from __future__ import annotations

import dataclasses
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import _ckernels, registry
from .errors import TerrainError
from .spacing import check_geometry, to_ground

@dataclass(frozen=True)
class Options:
    """What to compute and how; validated on construction."""

    method: str = registry.DEFAULT_METHOD
    edge_order: int = 1
    z_factor: float | None = None  # None: from the file (its vertical unit), else 1.0
    units: str = "degrees"
    flat_value: float = -1.0
    azimuth: float = 315.0
    altitude: float = 45.0
    multidirectional: bool = False
    geometry: str = "geodesic"
    tri_algorithm: str = "riley"
    kind: str = "mean"  # curvature's kind

    def __post_init__(self):
        registry.method(self.method)
        if self.kind not in registry.CURVATURE_KINDS:
            raise TerrainError(f"unknown curvature kind {self.kind!r}; choose one of "
                               f"{', '.join(registry.CURVATURE_KINDS)}")
        if self.edge_order not in (1, 2):
            raise TerrainError(f"edge_order must be 1 or 2, got {self.edge_order!r}")
        if self.units not in registry.SLOPE_UNITS:
            raise TerrainError(
                f"unknown slope units {self.units!r}; choose one of "
                f"{', '.join(registry.SLOPE_UNITS)}"
            )
        if self.z_factor is not None and not (math.isfinite(self.z_factor)
                                              and self.z_factor != 0):
            raise TerrainError(f"z_factor must be finite and non-zero, got {self.z_factor!r}")
        if not 0 <= self.altitude <= 90:
            raise TerrainError(f"altitude must be within 0..90 degrees, got {self.altitude!r}")
        check_geometry(self.geometry)
        if self.tri_algorithm not in registry.TRI_ALGORITHMS:
            raise TerrainError(f"unknown TRI algorithm {self.tri_algorithm!r}; choose one of "
                               f"{', '.join(registry.TRI_ALGORITHMS)}")

    @property
    def z_factor_explicit(self) -> bool:
        """Whether the caller gave ``z_factor`` (else the input's vertical unit decides)."""
        return self.z_factor is not None

    def with_z_factor(self, factor: float) -> "Options":
        """These options with ``factor`` as the z factor unless one was given explicitly."""
        if self.z_factor_explicit:
            return self
        return dataclasses.replace(self, z_factor=float(factor))

    @property
    def halo(self) -> int:
        """Cells every block is read with around it: the method's reach or the edge order."""
        return registry.METHODS[self.method].halo(self.edge_order)


# Pixels per side of the windows the file runners process at once (memory, not results).
DEFAULT_TILE_SIZE = 1024


@dataclass(frozen=True)
class RunOptions:
    """How a file is processed: worker threads (None: all cores), window size in
    pixels, and a dask.distributed scheduler's address (None: threads here)."""

    threads: int | None = None
    tile_size: int = DEFAULT_TILE_SIZE
    scheduler: str | None = None

    def __post_init__(self):
        if not (isinstance(self.tile_size, int) and self.tile_size >= 1):
            raise TerrainError(
                f"tile size must be a positive number of pixels, got {self.tile_size}")
        if self.threads is not None and not (isinstance(self.threads, int) and self.threads >= 1):
            raise TerrainError(f"threads must be a positive number, got {self.threads}")


# Finite elevations this large are a fill value nobody declared (float32's lowest,
# -3.4e38, is the usual one); real ones are below 1e5 m, and 1e30 still computes.
FILL_LIMIT = 1e38
Z_FACTOR_EXPLICIT = "explicit (--z-factor / z_factor=)"
Z_FACTOR_DEFAULT = "default (metres)"


def elevation_dtype(raw_dtype) -> np.dtype:
    """float32 or float64: the type elevations of ``raw_dtype`` are computed in.

    float64 stays float64; integers of 32 bits and more (uint32, int32, int64 ...)
    can hold values float32's 24-bit mantissa rounds (millimetres, say), so they
    become float64 too; everything else float32.
    """
    raw_dtype = np.dtype(raw_dtype)
    if raw_dtype == np.float64 or (raw_dtype.kind == "f" and raw_dtype.itemsize > 8):
        return np.dtype(np.float64)
    if raw_dtype.kind in "iu" and raw_dtype.itemsize >= 4:
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def as_elevation(raw: np.ndarray, nodata=None, *, mask=None, scale: float = 1.0,
                 offset: float = 0.0, dtype=None, name: str | None = None,
                 check_fill: bool = True) -> np.ndarray:
    """Float elevations with NaN for the nodata value, masked cells, NaN and +-inf.

    The nodata value is compared in raw values, then ``mask`` (zero = no data, e.g.
    a GDAL mask or alpha band, or a numpy mask inverted) is applied, then the band's
    ``scale`` and ``offset``. ``dtype``: default :func:`elevation_dtype` of the data.
    Works in place on float input of that type. A finite value beyond 1e38 (an
    undeclared -3.4e38 fill) raises a TerrainError naming ``name`` unless
    ``check_fill`` is False.
    """
    dtype = np.dtype(elevation_dtype(raw.dtype) if dtype is None else dtype)
    if raw.dtype == dtype:
        z = raw
    else:
        z = raw.astype(dtype)
    if nodata is not None and not np.isnan(nodata):
        if raw.dtype.kind in "iu":
            # Compare in the raw type so that an integer nodata is never rounded; a
            # value the type cannot hold cannot occur in the data.
            info = np.iinfo(raw.dtype)
            if float(nodata).is_integer() and info.min <= nodata <= info.max:
                z[raw == raw.dtype.type(int(nodata))] = np.nan
        else:
            z[raw == nodata] = np.nan
    if mask is not None:
        z[np.asarray(mask) == 0] = np.nan
    if scale != 1.0:
        z *= scale
    if offset != 0.0:
        z += offset
    # One pass finds NaN, +-inf and huge fills alike.
    odd = ~(np.abs(z) < FILL_LIMIT)
    if odd.any():
        finite = np.isfinite(z) & odd
        if check_fill and finite.any():
            raise TerrainError(
                f"{name or 'the DEM'}: elevation {float(z[finite].flat[0]):.6g} is an undeclared "
                "nodata fill (no real elevation is beyond 1e38); declare it as nodata "
                "(gdal_edit.py -a_nodata VALUE, or nodata= / _FillValue) or set those cells to NaN")
        z[odd & ~finite] = np.nan
    return z


def file_elevation(raw: np.ndarray, mask, info) -> np.ndarray:
    """Elevations of a window read from a file, as ``info`` (a RasterInfo) says to read them.

    The one place the streaming, dask and in-memory readers turn raw values (and the
    window's GDAL mask, if the file has one) into float elevations.
    """
    return as_elevation(raw, info.nodata, mask=mask, scale=info.scale, offset=info.offset,
                        dtype=info.elevation_dtype, name=info.path)


def output_dtype(z_dtype) -> np.dtype:
    """Storage type of results: float64 for float64 elevations, float32 for all others."""
    return np.dtype(np.float64) if np.dtype(z_dtype) == np.float64 else np.dtype(np.float32)


@dataclass
class Surface:
    """What the products of one block are computed from (see :mod:`terrain.registry`).

    ``dzdx`` / ``dzdy``: the true ground gradient (metres per metre); ``r``, ``t``,
    ``s``: second derivatives when a product needs them; ``zpad``: the padded
    elevations (``halo`` cells around); ``rotation``: the window of a ground map,
    when the CRS's axes are not east / north.
    """

    dzdx: np.ndarray | None = None
    dzdy: np.ndarray | None = None
    r: np.ndarray | None = None
    t: np.ndarray | None = None
    s: np.ndarray | None = None
    zpad: np.ndarray | None = None
    halo: int = 0
    z_factor: float = 1.0
    rotation: tuple | None = None

    def map_gradient(self):
        """The gradient in the map's axes (hillshade's light is relative to the map's up)."""
        if self.rotation is None:
            return self.dzdx, self.dzdy
        px, py = np.empty_like(self.dzdx), np.empty_like(self.dzdy)
        to_ground(self.dzdx, self.dzdy, self.rotation, "rotation", px, py)
        return px, py


def _storage_dtype(name: str, dtype) -> np.dtype:
    # Byte products are float32 in memory (NaN = no data) until written.
    return np.dtype(np.float32) if registry.PRODUCTS[name].storage == "byte" else np.dtype(dtype)


def compute_block(zpad, grid, window, opts: Options, products, out_dtype=None, *,
                  name: str = "the DEM"):
    """Products of one padded block.

    ``window`` is ``(row0, row1, col0, col1)`` of the block in ``grid`` (a
    :class:`terrain.spacing.Grid`); ``zpad`` holds it with ``opts.halo`` extra
    cells on every side (NaN beyond the raster). Where the grid has a ground map
    (projected CRS, geodesic geometry) the stencil's CRS-metre derivatives are
    carried onto true east / north. Returns ``{name: array}`` for the unpadded
    block, in ``out_dtype`` (byte products in float32).
    """
    decls = [registry.product(n) for n in products]
    needs = {d.needs for d in decls}
    h = opts.halo
    method = registry.METHODS[opts.method]
    ground = grid.ground_window(*window)
    shape = (zpad.shape[0] - 2 * h, zpad.shape[1] - 2 * h)
    dtype = out_dtype or output_dtype(zpad.dtype)
    z_factor = 1.0 if opts.z_factor is None else float(opts.z_factor)  # None: metres
    surface = Surface(zpad=zpad, halo=h, z_factor=z_factor, rotation=ground)
    if needs & {"first", "second"}:
        xpos, xscale, ypos = grid.window(*window, h)
        surface.dzdx, surface.dzdy = np.empty(shape, dtype), np.empty(shape, dtype)
        method.gradient(zpad, xpos, xscale, ypos, h, opts.edge_order, z_factor,
                        surface.dzdx, surface.dzdy)
        if ground is not None:
            # CRS-metre derivatives -> true east / north on the ellipsoid (in place).
            to_ground(surface.dzdx, surface.dzdy, ground, "ground", surface.dzdx, surface.dzdy)
    if "second" in needs:
        if method.second is None:
            raise TerrainError(
                f"method {opts.method!r} has no second derivatives; choose one of "
                + ", ".join(m.name for m in registry.METHODS.values() if m.second))
        surface.r, surface.t, surface.s = (np.empty(shape, dtype) for _ in range(3))
        method.second(zpad, xpos, xscale, ypos, h, z_factor, surface.r, surface.t, surface.s)
        if ground is not None:
            from .lsq import second_to_ground

            second_to_ground(surface.r, surface.t, surface.s, ground)
    out = {d.name: d.compute(surface, opts, _storage_dtype(d.name, dtype)) for d in decls}
    if dtype == np.float32 and surface.dzdx is not None:
        # Finite elevations cannot give an infinite gradient in float64, but can
        # overflow float32 (a -3.4e38 fill value nobody declared as nodata).
        checked = [surface.dzdx, surface.dzdy] + [
            out[d.name] for d in decls if d.float32_limit is not None and d.float32_limit(opts)]
        if any(_ckernels.has_inf(np.ascontiguousarray(a)) for a in checked):
            raise TerrainError(
                f"{name}: gradient beyond float32's range (about 3.4e38): the DEM probably holds an "
                "undeclared nodata value such as -3.4e38; declare it (gdal_edit.py -a_nodata) "
                "or pass float64 elevations"
            )
    return out


def products_from_gradient(dzdx, dzdy, opts: Options, products, *, rotation=None):
    """Products of a gradient block that need nothing else (dzdx / dzdy passed through).

    ``rotation``, a window of a ground map (see :func:`compute_block`), turns the
    ground gradient into the map's axes for hillshade, whose light is relative to
    the map's up.
    """
    decls = [registry.product(n) for n in products]
    for d in decls:
        if d.needs != "first":
            raise TerrainError(f"{d.name} needs the elevations, not only a gradient; "
                               "compute it from the DEM")
    surface = Surface(dzdx=dzdx, dzdy=dzdy, rotation=rotation)
    return {d.name: d.compute(surface, opts, _storage_dtype(d.name, dzdx.dtype)) for d in decls}


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
    out = {product: np.empty(z.shape, _storage_dtype(product, out_dtype))
           for product in products}
    h = opts.halo

    def work(win):
        row0, row1, col0, col1 = win
        zpad = pad_from_array(z, row0, row1, col0, col1, h)
        res = compute_block(zpad, grid, win, opts, products, out_dtype, name=name)
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
