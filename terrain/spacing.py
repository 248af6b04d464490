"""Ground spacing: where every row and column of a raster lies on the ground, in metres.

A :class:`Grid` holds three vectors that the gradient kernels read:

- ``xpos``: the x coordinate of each column (CRS units; longitude in degrees for
  geographic CRSs; metres for a DataArray without CRS);
- ``xscale``: metres per x unit, for each row (constant for projected CRSs; the
  parallel's radius ``N cos(phi)`` for geographic ones, so it changes with latitude);
- ``ypos``: the northward position of each row in metres (decreasing with the row
  index on a north-up raster).

Differences of these give the signed ground distances the stencils divide by, so
north-up and south-up rasters, ascending and descending coordinates, uniform and
non-uniform spacing all give the same physical derivative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import CRSMissingError, GeometryError


@dataclass(frozen=True)
class Grid:
    """Ground geometry of a raster (see the module docstring)."""

    xpos: np.ndarray
    xscale: np.ndarray
    ypos: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return (self.ypos.size, self.xpos.size)

    def window(self, row0: int, row1: int, col0: int, col1: int, halo: int):
        """Spacing vectors of rows ``row0:row1`` and columns ``col0:col1`` plus ``halo``.

        Positions beyond the raster are extrapolated linearly; the cells there are
        NaN, so the kernels never divide by them, but they stay finite and distinct.
        """
        return (
            _padded(self.xpos, col0, col1, halo, extrapolate=True),
            _padded(self.xscale, row0, row1, halo, extrapolate=False),
            _padded(self.ypos, row0, row1, halo, extrapolate=True),
        )


def _padded(v: np.ndarray, start: int, stop: int, halo: int, *, extrapolate: bool) -> np.ndarray:
    idx = np.arange(start - halo, stop + halo)
    inside = np.clip(idx, 0, v.size - 1)
    out = v[inside].astype(np.float64)
    if extrapolate:
        lo, hi = idx < 0, idx > v.size - 1
        out[lo] = v[0] + idx[lo] * (v[1] - v[0])
        out[hi] = v[-1] + (idx[hi] - (v.size - 1)) * (v[-1] - v[-2])
    return out


def pixel_centres(transform, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """x of each column and y of each row at pixel centres, for a north-up or south-up transform."""
    check_transform(transform)
    rows, cols = shape
    x = transform.c + (np.arange(cols) + 0.5) * transform.a
    y = transform.f + (np.arange(rows) + 0.5) * transform.e
    return x, y


def check_transform(transform, name: str = "the raster") -> None:
    """Refuse geotransforms the stencils cannot use as they are."""
    if transform.b != 0 or transform.d != 0:
        raise GeometryError(
            f"{name}: rotated or sheared geotransform; resample it to a north-up grid first "
            "(e.g. gdalwarp)"
        )
    if transform.a == 0 or transform.e == 0:
        raise GeometryError(f"{name}: pixel size is zero; fix the file's geotransform")


def check_shape(shape: tuple[int, ...], name: str = "the raster") -> None:
    if len(shape) != 2:
        raise GeometryError(f"{name}: expected a 2-D elevation grid, got {len(shape)} dimensions")
    if shape[0] < 2 or shape[1] < 2:
        raise GeometryError(
            f"{name}: raster is {shape[0]} x {shape[1]} pixels; slope needs at least 2 x 2"
        )


def meridional_radius(lat_rad, a: float, e2: float):
    """Radius of curvature in the meridian, M = a(1-e2)/(1-e2 sin^2 phi)^1.5."""
    s = np.sin(lat_rad)
    return a * (1 - e2) / (1 - e2 * s * s) ** 1.5


def prime_vertical_radius(lat_rad, a: float, e2: float):
    """Radius of curvature in the prime vertical, N = a/sqrt(1-e2 sin^2 phi)."""
    s = np.sin(lat_rad)
    return a / np.sqrt(1 - e2 * s * s)


def grid_from_coords(x, y, crs=None, *, name: str = "the raster") -> Grid:
    """A :class:`Grid` from pixel-centre coordinates and an optional CRS.

    Without CRS the coordinates are metres. With a projected CRS they are scaled
    by the CRS's linear unit (foot, US survey foot ...). With a geographic CRS they
    are longitude / latitude, and the metric spacing comes from the CRS's own
    ellipsoid at each row's latitude.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    check_shape((y.size, x.size), name)
    for axis, v in (("x", x), ("y", y)):
        d = np.diff(v)
        if not (np.all(d > 0) or np.all(d < 0)) or not np.all(np.isfinite(v)):
            raise GeometryError(
                f"{name}: {axis} coordinates must be finite and strictly monotonic"
            )
    if crs is None:
        return Grid(xpos=x, xscale=np.ones(y.size), ypos=y)
    crs = _rasterio_crs(crs, name)
    if crs.is_geographic:
        # Angular unit in radians (degree for nearly every geographic CRS).
        rad = crs.units_factor[1]
        a, e2 = _ellipsoid(crs)
        lat = y * rad
        if np.any(np.abs(lat) > math.pi / 2 + 1e-9):
            raise GeometryError(f"{name}: latitudes beyond +-90 degrees; check the file's CRS")
        xscale = prime_vertical_radius(lat, a, e2) * np.cos(lat) * rad
        # Meridian arc between neighbouring rows, from M at their mid-latitude
        # (third-order accurate: far below a millimetre per pixel).
        arcs = meridional_radius(0.5 * (lat[1:] + lat[:-1]), a, e2) * np.diff(lat)
        ypos = np.concatenate(([0.0], np.cumsum(arcs)))
        return Grid(xpos=x, xscale=xscale, ypos=ypos)
    if crs.is_projected:
        factor = crs.linear_units_factor[1]
        return Grid(xpos=x, xscale=np.full(y.size, factor), ypos=y * factor)
    # A LOCAL_CS / engineering CRS: plain x / y in its unit, measured only in metres.
    try:
        unit, factor = crs.units_factor
    except Exception:  # noqa: BLE001 - rasterio's CRSError: no unit to measure with
        unit, factor = None, None
    if _is_local(crs) and factor == 1.0:
        return Grid(xpos=x, xscale=np.ones(y.size), ypos=y)
    if _is_local(crs):
        raise GeometryError(
            f"{name}: local (engineering) CRS in {unit or 'unknown units'}; terrain measures a "
            "local CRS only in metres: reproject it, or assign a metric CRS (--src-crs EPSG:XXXX)")
    raise GeometryError(f"{name}: CRS {crs.to_string()!r} is neither projected nor geographic")


def _is_local(crs) -> bool:
    """A LOCAL_CS / ENGCRS (engineering) coordinate system."""
    wkt = crs.to_wkt().lstrip().upper()
    return wkt.startswith(("LOCAL_CS", "ENGCRS", "ENGINEERINGCRS"))


def _rasterio_crs(crs, name):
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    if isinstance(crs, CRS):
        return crs
    try:
        to_wkt = getattr(crs, "to_wkt", None)
        return CRS.from_user_input(to_wkt() if to_wkt else crs)
    except (CRSError, ValueError, TypeError) as exc:
        raise GeometryError(f"{name}: {crs!r} is not a usable CRS ({exc})") from None


def _ellipsoid(crs) -> tuple[float, float]:
    """Semi-major axis (m) and squared eccentricity of a CRS's own ellipsoid."""
    import pyproj  # only geographic CRSs need it

    ell = pyproj.CRS.from_wkt(crs.to_wkt()).ellipsoid
    a = ell.semi_major_metre
    return a, 1.0 - (ell.semi_minor_metre / a) ** 2


def grid_from_transform(transform, shape, crs, *, name: str = "the raster") -> Grid:
    """A :class:`Grid` for a georeferenced raster file."""
    check_shape(shape, name)
    check_transform(transform, name)
    if crs is None:
        raise CRSMissingError(
            f"{name}: raster has no CRS; give one with src_crs= (CLI: --src-crs EPSG:XXXX)"
        )
    x, y = pixel_centres(transform, shape)
    return grid_from_coords(x, y, crs, name=name)


def grid_from_spacing(shape, spacing, *, name: str = "the array") -> Grid:
    """A :class:`Grid` for a bare array: ``spacing=(dy, dx)`` in metres, row 0 northmost."""
    check_shape(shape, name)
    try:
        dy, dx = (float(s) for s in spacing)
    except (TypeError, ValueError):
        raise GeometryError(f"{name}: spacing must be (dy, dx) in metres") from None
    if not (dy > 0 and dx > 0 and math.isfinite(dy) and math.isfinite(dx)):
        raise GeometryError(f"{name}: spacing (dy, dx) must be positive and finite, got {spacing}")
    rows, cols = shape
    return Grid(xpos=np.arange(cols) * dx, xscale=np.ones(rows), ypos=-np.arange(rows) * dy)
