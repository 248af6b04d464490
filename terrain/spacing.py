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

On a projected CRS those are CRS metres, not ground metres: a projection
stretches the ground (Web Mercator by 1/cos(latitude)), and its grid north is not
true north (polar stereographic: up to 180 degrees off). With
``geometry="geodesic"`` (the default) the Grid also holds a :class:`GroundMap`:
for each cell the linear map that turns the stencil's CRS-metre derivatives into
derivatives along true east and true north on the CRS's ellipsoid, measured from
the inverse projection with geodesics (pyproj Transformer + Geod) at the nodes of a
coarse lattice and interpolated bilinearly in between; the lattice is refined
until the interpolation error, measured at the centre of every lattice cell, is
below :data:`GROUND_TOLERANCE`. ``geometry="planar"`` keeps CRS metres and grid
north (gdaldem / ArcGIS parity). Geographic grids need no map: their per-row
ellipsoidal spacing is already ground, and their axes are east and north.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import CRSMissingError, GeometryError


GEOMETRIES = ("geodesic", "planar")
# Largest error of the interpolated ground map, relative to the map's size at that
# point: a gradient (and tan(slope)) off by at most this fraction, aspect by this
# in radians (6e-4 degrees).
GROUND_TOLERANCE = 1e-5
# Lattice step in pixels, and the finer steps of the blocks where it is not enough
# (near a pole of a polar projection, where north turns quickly). 256 pixels keep
# the error of UTM, Web Mercator, LAEA ... lattices far below the tolerance.
GROUND_STEPS = (256, 64, 16, 4, 1)
# Pixels per side of a block refined on its own (a multiple of every step).
GROUND_BLOCK = 256


@dataclass(frozen=True)
class Lattice:
    """2x2 matrices at the nodes ``rows`` x ``cols`` (pixel indices) of a lattice.

    ``ground[i, j]`` holds ``(m00, m01, m10, m11)`` such that
    ``(dz/dEast, dz/dNorth) = M @ (dz/dX, dz/dY)`` with X, Y the CRS axes in metres;
    ``rotation[i, j]`` turns a ground gradient into the map's axes (its up is grid
    north on the ground), which hillshade's light is relative to.
    """

    rows: np.ndarray
    cols: np.ndarray
    ground: np.ndarray
    rotation: np.ndarray

    def piece(self, which: str, row0: int, row1: int, col0: int, col1: int):
        """(matrices, rk, rf, ck, cf): interpolation of rows row0:row1, cols col0:col1."""
        rk, rf = _bracket(self.rows, np.arange(row0, row1))
        ck, cf = _bracket(self.cols, np.arange(col0, col1))
        return getattr(self, which), rk, rf, ck, cf


@dataclass(frozen=True)
class GroundMap:
    """Per-cell maps from CRS-metre derivatives to true ground ones (see the module docstring).

    ``coarse`` covers the raster; ``refined`` maps a block ``(bi, bj)`` of
    :data:`GROUND_BLOCK` pixels, where the coarse lattice missed the tolerance, to a
    finer lattice over that block (its nodes shared with the neighbours' edges).
    ``max_error`` is the largest interpolation error measured (relative); ``dx_m`` /
    ``dy_m`` the (min, max) ground size of a pixel at the nodes.
    """

    coarse: Lattice
    refined: dict
    block: int
    max_error: float
    dx_m: tuple[float, float]
    dy_m: tuple[float, float]

    def pieces(self, which: str, row0: int, row1: int, col0: int, col1: int):
        """What covers rows row0:row1, cols col0:col1: ``(slices, piece)`` pairs, the
        coarse lattice over the whole window first, then each refined block in it
        (slices relative to the window; later pieces override earlier ones)."""
        out = [((slice(0, row1 - row0), slice(0, col1 - col0)),
                self.coarse.piece(which, row0, row1, col0, col1))]
        b = self.block
        for (bi, bj), lattice in self.refined.items():
            r0, r1 = max(row0, bi * b), min(row1, (bi + 1) * b)
            c0, c1 = max(col0, bj * b), min(col1, (bj + 1) * b)
            if r0 < r1 and c0 < c1:
                out.append(((slice(r0 - row0, r1 - row0), slice(c0 - col0, c1 - col0)),
                            lattice.piece(which, r0, r1, c0, c1)))
        return out


def _bracket(nodes: np.ndarray, idx: np.ndarray):
    """(k, f): node interval of each index and its fraction within it (k <= len(nodes) - 2)."""
    k = np.clip(np.searchsorted(nodes, idx, side="right") - 1, 0, nodes.size - 2)
    f = (idx - nodes[k]) / (nodes[k + 1] - nodes[k])
    return k.astype(np.intp), f.astype(np.float64)


@dataclass(frozen=True)
class Grid:
    """Ground geometry of a raster (see the module docstring)."""

    xpos: np.ndarray
    xscale: np.ndarray
    ypos: np.ndarray
    ground: GroundMap | None = None

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

    def ground_window(self, row0: int, row1: int, col0: int, col1: int):
        """(GroundMap, window) for rows ``row0:row1``, columns ``col0:col1``; None: no map."""
        return None if self.ground is None else (self.ground, (row0, row1, col0, col1))


def to_ground(px, py, ground, which: str, ox, oy) -> None:
    """``(ox, oy) = M (px, py)`` per cell with a ground map's ``which`` matrices
    (``"ground"`` or ``"rotation"``); ``ground`` is ``(GroundMap, window)`` from
    :meth:`terrain.spacing.Grid.ground_window`. The outputs may be the inputs."""
    from .kernels import ground as _ckernel_ground

    gmap, window = ground
    (whole, coarse), *refined = gmap.pieces(which, *window)
    # Refined blocks read the untouched input before the coarse pass overwrites it.
    finer = []
    for sl, piece in refined:
        fx, fy = np.empty(px[sl].shape, ox.dtype), np.empty(py[sl].shape, oy.dtype)
        _ckernel_ground(px[sl], py[sl], *piece, fx, fy)
        finer.append((sl, fx, fy))
    _ckernel_ground(px, py, *coarse, ox, oy)
    for sl, fx, fy in finer:
        ox[sl], oy[sl] = fx, fy


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


def check_geometry(geometry) -> str:
    if geometry not in GEOMETRIES:
        raise GeometryError(f"unknown geometry {geometry!r}; choose one of {', '.join(GEOMETRIES)}")
    return geometry


def grid_from_coords(x, y, crs=None, *, geometry: str = "geodesic",
                     name: str = "the raster") -> Grid:
    """A :class:`Grid` from pixel-centre coordinates and an optional CRS.

    Without CRS the coordinates are metres. With a projected CRS they are scaled
    by the CRS's linear unit (foot, US survey foot ...), and with
    ``geometry="geodesic"`` a :class:`GroundMap` carries them onto the ground.
    With a geographic CRS they are longitude / latitude, and the metric spacing
    comes from the CRS's own ellipsoid at each row's latitude.
    """
    check_geometry(geometry)
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
        ground = ground_map(x, y, crs, factor, name=name) if geometry == "geodesic" else None
        return Grid(xpos=x, xscale=np.full(y.size, factor), ypos=y * factor, ground=ground)
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


def _lattice_nodes(start: int, stop: int, step: int) -> np.ndarray:
    """Pixel indices start, start + step ... and always stop (at least two nodes)."""
    nodes = np.arange(start, stop, step)
    return np.append(nodes, stop).astype(np.intp)


class _Projection:
    """Evaluates the ground matrices of a projected grid at pixel positions."""

    def __init__(self, x, y, crs, factor: float, name: str = "the raster"):
        import pyproj

        self.x, self.y, self.factor = x, y, factor
        # Central differences over one pixel (any small step would do: the map is smooth).
        self.dx = float(np.abs(np.diff(x)).mean())
        self.dy = float(np.abs(np.diff(y)).mean())
        try:
            pcrs = pyproj.CRS.from_wkt(crs.to_wkt())
            geodetic = pcrs.geodetic_crs
            self.to_geo = pyproj.Transformer.from_crs(pcrs, geodetic, always_xy=True)
            ell = geodetic.ellipsoid
            self.geod = pyproj.Geod(a=ell.semi_major_metre, b=ell.semi_minor_metre)
        except (pyproj.exceptions.ProjError, pyproj.exceptions.CRSError, AttributeError) as exc:
            # A projection PROJ cannot invert (a misspelt method in the WKT ...).
            raise GeometryError(
                f"{name}: cannot measure its CRS on the ground ({str(exc).splitlines()[0]}); "
                "fix the CRS (gdal_edit.py -a_srs EPSG:XXXX), or use geometry='planar' "
                "(CLI: --geometry planar)") from None

    def at(self, rows: np.ndarray, cols: np.ndarray):
        """(M, R, |J col 0|, |J col 1|) at the mesh of pixel rows x cols.

        J, the derivative of (ground east, ground north) in metres with respect to
        the CRS's (X, Y) in metres, comes from central differences of one pixel
        carried onto the ellipsoid by the inverse projection, each neighbour placed
        by its geodesic distance and azimuth from the point. M = J^-T turns
        (dz/dX, dz/dY) into (dz/dEast, dz/dNorth); R rotates ground vectors into the
        map's axes.
        """
        x, y = np.meshgrid(self.x[cols], self.y[rows])
        dx, dy, f = self.dx, self.dy, self.factor
        lon0, lat0 = self.to_geo.transform(x, y, errcheck=False)

        def east_north(xp, yp):
            lon, lat = self.to_geo.transform(xp, yp, errcheck=False)
            az, _, dist = self.geod.inv(lon0, lat0, lon, lat)
            az = np.radians(az)
            return dist * np.sin(az), dist * np.cos(az)

        e_px, n_px = east_north(x + dx, y)
        e_mx, n_mx = east_north(x - dx, y)
        e_py, n_py = east_north(x, y + dy)
        e_my, n_my = east_north(x, y - dy)
        a = (e_px - e_mx) / (2 * dx * f)  # dE/dX
        c = (n_px - n_mx) / (2 * dx * f)  # dN/dX
        b = (e_py - e_my) / (2 * dy * f)  # dE/dY
        d = (n_py - n_my) / (2 * dy * f)  # dN/dY
        det = a * d - b * c
        m = np.stack([d / det, -c / det, -b / det, a / det], axis=-1)
        gamma = np.arctan2(b, d)  # grid north on the ground, east of true north
        cg, sg = np.cos(gamma), np.sin(gamma)
        rot = np.stack([cg, -sg, sg, cg], axis=-1)
        return m, rot, np.hypot(a, c) * dx * f, np.hypot(b, d) * dy * f

    def lattice(self, r0, r1, c0, c1, step, name):
        """The Lattice over pixel rows r0..r1, cols c0..c1 (inclusive) and its measured error."""
        rows, cols = _lattice_nodes(r0, r1, step), _lattice_nodes(c0, c1, step)
        m, rot, sx, sy = self.at(rows, cols)
        if not np.isfinite(m).all():
            raise GeometryError(
                f"{name}: part of the raster lies outside the area where its CRS is defined "
                "(the projection cannot be inverted there); clip it, or use geometry='planar' "
                "(CLI: --geometry planar)")
        lattice = Lattice(rows, cols, np.ascontiguousarray(m), np.ascontiguousarray(rot))
        # Bilinear interpolation errs most at the centres of the lattice cells.
        r_mid, c_mid = (rows[:-1] + rows[1:]) // 2, (cols[:-1] + cols[1:]) // 2
        r_mid, c_mid = r_mid[r_mid > rows[:-1]], c_mid[c_mid > cols[:-1]]
        error = np.zeros((rows.size - 1, cols.size - 1))
        if r_mid.size and c_mid.size:
            m_mid, rot_mid, _, _ = self.at(r_mid, c_mid)
            size = np.abs(m_mid).max(axis=-1)
            err = np.maximum(
                np.abs(_bilinear(m, rows, cols, r_mid, c_mid) - m_mid).max(axis=-1) / size,
                np.abs(_bilinear(rot, rows, cols, r_mid, c_mid) - rot_mid).max(axis=-1))
            # Each centre belongs to one lattice cell.
            ri = np.searchsorted(rows, r_mid, side="right") - 1
            ci = np.searchsorted(cols, c_mid, side="right") - 1
            error[np.ix_(ri, ci)] = err
        return lattice, error, (sx.min(), sx.max(), sy.min(), sy.max())


def _bilinear(lattice: np.ndarray, rows, cols, r, c) -> np.ndarray:
    """``lattice`` (nodes ``rows`` x ``cols``, last axis entries) interpolated at (r, c) pixels."""
    rk, rf = _bracket(rows, r)
    ck, cf = _bracket(cols, c)
    rf, cf = rf[:, None, None], cf[None, :, None]
    top = lattice[rk][:, ck] * (1 - cf) + lattice[rk][:, ck + 1] * cf
    bottom = lattice[rk + 1][:, ck] * (1 - cf) + lattice[rk + 1][:, ck + 1] * cf
    return top * (1 - rf) + bottom * rf


def ground_map(x, y, crs, factor: float, *, steps=GROUND_STEPS, block: int = GROUND_BLOCK,
               tolerance: float = GROUND_TOLERANCE, name: str = "the raster") -> GroundMap:
    """The :class:`GroundMap` of a projected grid with pixel-centre coordinates x, y.

    A lattice of ``steps[0]`` pixels covers the raster; each block of ``block``
    pixels where bilinear interpolation misses the exact matrices by more than
    ``tolerance`` at a lattice-cell centre gets the next finer step, and so on down
    to every pixel (step 1 is exact).
    """
    proj = _Projection(np.asarray(x, np.float64), np.asarray(y, np.float64), crs, factor, name)
    rows_n, cols_n = len(proj.y), len(proj.x)
    coarse, error, sizes = proj.lattice(0, rows_n - 1, 0, cols_n - 1, steps[0], name)
    extremes = [sizes]
    # Blocks whose coarse cells miss the tolerance (a block spans block // step cells).
    per = block // steps[0]
    bad = error > tolerance
    todo = sorted({(int(i) // per, int(j) // per) for i, j in zip(*np.nonzero(bad))})
    worst = float(error[~bad].max()) if (~bad).any() else 0.0
    refined = {}
    for step in steps[1:]:
        still = []
        for bi, bj in todo:
            r0, c0 = bi * block, bj * block
            r1, c1 = min(r0 + block, rows_n - 1), min(c0 + block, cols_n - 1)
            lattice, err, sizes = proj.lattice(r0, r1, c0, c1, step, name)
            refined[(bi, bj)] = lattice
            extremes.append(sizes)
            if step > 1 and (err > tolerance).any():
                still.append((bi, bj))
            else:
                worst = max(worst, float(err.max()))
        todo = still
    ext = np.array(extremes)
    return GroundMap(coarse=coarse, refined=refined, block=block, max_error=worst,
                     dx_m=(float(ext[:, 0].min()), float(ext[:, 1].max())),
                     dy_m=(float(ext[:, 2].min()), float(ext[:, 3].max())))


def grid_from_transform(transform, shape, crs, *, geometry: str = "geodesic",
                        name: str = "the raster") -> Grid:
    """A :class:`Grid` for a georeferenced raster file."""
    check_shape(shape, name)
    check_transform(transform, name)
    if crs is None:
        raise CRSMissingError(
            f"{name}: raster has no CRS; give one with src_crs= (CLI: --src-crs EPSG:XXXX)"
        )
    x, y = pixel_centres(transform, shape)
    return grid_from_coords(x, y, crs, geometry=geometry, name=name)


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
