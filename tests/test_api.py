"""The public compute functions against independent truths.

Truths: tilted planes (exact at every cell for every method), numpy.gradient,
geodesic distances from pyproj.Geod, the analytic hillshade, and gdaldem run in
the test on the bundled sample.
"""

from __future__ import annotations

import math

import numpy as np
import pyproj
import pytest
import xarray as xr
from affine import Affine

import terrain
from conftest import (DIFFERENCE_METHODS, METHODS, UTM_SAMPLE, WGS84_SAMPLE, plane_aspect,
                      plane_slope)

FTUS = 1200.0 / 3937.0  # metres per US survey foot (definition)
FOOT = 0.3048  # metres per international foot (definition)
UNITS = ("degrees", "percent", "radians", "ratio")


def centres(transform, shape):
    """Pixel-centre x (per column) and y (per row) straight from the affine transform."""
    rows, cols = shape
    x = np.array([(transform @ (j + 0.5, 0.5))[0] for j in range(cols)])
    y = np.array([(transform @ (0.5, i + 0.5))[1] for i in range(rows)])
    return x, y


def angular_diff(a, b):
    d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)) % 360.0
    return np.minimum(d, 360.0 - d)


def as_arrays(g):
    """(dzdx, dzdy) as numpy arrays from a gradient Dataset or a bare-array tuple."""
    if isinstance(g, xr.Dataset):
        return g["dzdx"].values, g["dzdy"].values
    return np.asarray(g[0]), np.asarray(g[1])


# --------------------------------------------------------------------------------------
# 1. Tilted planes on projected grids (and DataArrays without CRS, bare arrays)
# --------------------------------------------------------------------------------------

# name: (crs, transform, shape, metres per CRS unit, elevation unit in metres, a, b)
PROJECTED = {
    "utm-square": ("EPSG:32616", Affine(30.0, 0, 731000.0, 0, -30.0, 4069000.0), (9, 8),
                   1.0, 1.0, 0.12, -0.05),
    "utm-nonsquare": ("EPSG:32616", Affine(30.0, 0, 731000.0, 0, -10.0, 4069000.0), (10, 7),
                      1.0, 1.0, -0.3, 0.2),
    "south-up": ("EPSG:32616", Affine(30.0, 0, 731000.0, 0, 20.0, 4060000.0), (8, 9),
                 1.0, 1.0, 0.07, 0.25),
    "ftUS": ("EPSG:2264", Affine(100.0, 0, 2000000.0, 0, -100.0, 700000.0), (7, 9),
             FTUS, FOOT, -0.04, -0.11),
}


def projected_plane(case, source, make_tif):
    """(input, z_factor, a, b) for a plane z = a*E + b*N (E, N CRS metres, z in metres).

    A plane in the CRS's own coordinates: the truth of ``geometry="planar"``; planes on
    the ground are in tests/test_spacing.py.
    """
    crs, transform, shape, unit, zunit, a, b = PROJECTED[case]
    x, y = centres(transform, shape)
    east, north = np.meshgrid((x - x[0]) * unit, (y - y[0]) * unit)
    z = (300.0 + a * east + b * north) / zunit  # elevations in the CRS's vertical unit
    if source == "file":
        return terrain.open_dem(make_tif(z, transform=transform, crs=crs)), zunit, a, b
    dem = xr.DataArray(z, dims=("y", "x"), coords={"y": y, "x": x}).rio.write_crs(crs)
    return dem, zunit, a, b


def check_plane(dem, a, b, *, tol, method, edge_order, z_factor=1.0, spacing=None,
                geometry="geodesic"):
    """dzdx, dzdy, slope in every unit and aspect at every cell against the analytic plane."""
    kw = dict(method=method, edge_order=edge_order, z_factor=z_factor, spacing=spacing,
              geometry=geometry)
    p, q = as_arrays(terrain.gradient(dem, **kw))
    a = np.broadcast_to(a, p.shape)
    b = np.broadcast_to(b, p.shape)
    tol = np.broadcast_to(tol, p.shape)
    assert np.all(np.abs(p - a) <= tol), np.abs(p - a).max()
    assert np.all(np.abs(q - b) <= tol), np.abs(q - b).max()
    for units in UNITS:
        s = np.asarray(terrain.slope(dem, units=units, **kw))
        truth = plane_slope(a, b, units)
        # |d slope| <= |d gradient| in radians and ratio; scaled for the others.
        scale = {"degrees": 180 / math.pi, "percent": 100.0, "radians": 1.0, "ratio": 1.0}[units]
        assert np.all(np.abs(s - truth) <= 2 * scale * tol + 1e-6 * np.abs(truth)), units
    asp = np.asarray(terrain.aspect(dem, **kw))
    allowed = np.degrees(2 * tol / np.hypot(a, b)) + 1e-5
    assert np.all(angular_diff(asp, plane_aspect(a, b)) <= allowed)
    assert np.all((asp >= 0) & (asp < 360))


@pytest.mark.parametrize("edge_order", [1, 2])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("source", ["file", "dataarray"])
@pytest.mark.parametrize("case", list(PROJECTED))
def test_plane_projected(case, source, method, edge_order, make_tif):
    dem, zf, a, b = projected_plane(case, source, make_tif)
    check_plane(dem, a, b, tol=1e-9, method=method, edge_order=edge_order, z_factor=zf,
                geometry="planar")


@pytest.mark.parametrize("case", ["utm-nonsquare", "south-up"])
def test_plane_same_answer_north_up_south_up(case, make_tif):
    """The south-up file, its north-up flip and an ascending-y DataArray agree."""
    dem, _, a, b = projected_plane(case, "file", make_tif)
    flipped = dem.isel(y=slice(None, None, -1))
    results = [terrain.gradient(d, method="horn", geometry="planar") for d in (dem, flipped)]
    np.testing.assert_allclose(results[1]["dzdx"].values[::-1], results[0]["dzdx"].values,
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(results[1]["dzdy"].values[::-1], results[0]["dzdy"].values,
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(results[0]["dzdy"].values, b, rtol=1e-9)


@pytest.mark.parametrize("edge_order", [1, 2])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", ["nocrs-nonuniform", "nocrs-descending", "bare-array"])
def test_plane_without_crs(kind, method, edge_order):
    """DataArrays without CRS are in metres (uniform or not); bare arrays need spacing."""
    a, b = 0.21, -0.13
    rng = np.random.default_rng(5)
    x = np.cumsum(rng.uniform(5.0, 40.0, 8))
    y = np.cumsum(rng.uniform(5.0, 40.0, 6))
    if kind == "nocrs-descending":
        y = y[::-1]
    if kind == "bare-array":
        dy, dx = 12.5, 30.0
        x = np.arange(8) * dx
        y = -np.arange(6) * dy  # row 0 is north
    z = 10.0 + a * x[None, :] + b * y[:, None]
    if kind == "bare-array":
        check_plane(z, a, b, tol=1e-9, method=method, edge_order=edge_order, spacing=(dy, dx))
    else:
        dem = xr.DataArray(z, dims=("y", "x"), coords={"y": y, "x": x})
        check_plane(dem, a, b, tol=1e-9, method=method, edge_order=edge_order)


# --------------------------------------------------------------------------------------
# 1e. Geographic grids: the plane built from pyproj.Geod distances
# --------------------------------------------------------------------------------------

GEOD = pyproj.Geod(ellps="WGS84")
PIX = 1.0 / 1200.0  # 3 arc-seconds


def geodesic_plane(lat0, a, b, shape=(9, 11)):
    """Plane z = a*E + b*N on a 3" grid centred on lat0, with E and N from Geod distances.

    E(i, j): signed geodesic distance along row i's parallel from the centre column;
    N(i): signed meridian distance from lat0. Returns the grid and the exact truths:
    dzdx = a, and dzdy = b + a * dE/dN, where dE/dN (meridian convergence: the
    parallels shrink towards the pole) is measured with Geod too.
    """
    rows, cols = shape
    ic, jc = rows // 2, cols // 2
    transform = Affine(PIX, 0, -84.0, 0, -PIX, lat0 + (ic + 0.5) * PIX)
    lon, lat = centres(transform, shape)
    lon2, lat2 = np.meshgrid(lon, lat)

    def east(latitudes):
        la = np.broadcast_to(latitudes, lon2.shape)
        d = GEOD.inv(np.full(lon2.shape, lon[jc]), la, lon2, la)[2]
        return np.sign(lon2 - lon[jc]) * d

    def north(latitudes):
        la = np.asarray(latitudes, np.float64)
        at = np.full(la.shape, lon[jc])
        d = GEOD.inv(at, np.full(la.shape, lat0), at, la)[2]
        return np.sign(la - lat0) * d

    z = 200.0 + a * east(lat2) + b * north(lat2)
    eps = 1e-3
    de_dn = (east(lat2 + eps) - east(lat2 - eps)) / (north(lat2 + eps) - north(lat2 - eps))
    return z, transform, lon, lat, np.full(shape, float(a)), b + a * de_dn


@pytest.mark.parametrize("edge_order", [1, 2])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("source", ["file", "dataarray"])
@pytest.mark.parametrize("lat0", [0.0, 45.0, 70.0])
def test_plane_geographic(lat0, source, method, edge_order, make_tif):
    a, b = 0.3, -0.2
    z, transform, lon, lat, p_true, q_true = geodesic_plane(lat0, a, b)
    if source == "file":
        dem = terrain.open_dem(make_tif(z, transform=transform, crs="EPSG:4326"))
    else:
        dem = xr.DataArray(z, dims=("y", "x"), coords={"y": lat, "x": lon}).rio.write_crs(
            "EPSG:4326")
    tol = np.full(z.shape, 1e-6 * math.hypot(a, b))
    if method == "horn":
        # Horn's column weights (1, 2, 1) become (2, 1)/3 at the first and last column; the
        # meridian convergence changes dz/dN by a * dE/dN from one column to the next, so
        # there Horn legitimately differs from the point derivative by up to that much.
        step = np.abs(np.diff(q_true, axis=1)).max()
        tol[:, [0, -1]] += step
    check_plane(dem, p_true, q_true, tol=tol, method=method, edge_order=edge_order)


# --------------------------------------------------------------------------------------
# 2. numpy.gradient: the table, random arrays, bare arrays
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("f, x, edge_order, expected", [
    ([2, 4, 5, 6, 7, 8], np.arange(6.0), 1, [2, 1.5, 1, 1, 1, 1]),
    ([2, 4, 5, 6, 7, 8], [1.3, 2.2, 3.4, 4.2, 5.1, 6.2], 1,
     [2.22222222, 1.62698413, 1.08333333, 1.18464052, 1.02020202, 0.90909091]),
    ([24, 34, 45, 56], np.arange(4.0), 2, [9.5, 10.5, 11, 11]),
])
def test_numpy_gradient_table_1d(f, x, edge_order, expected):
    dem = xr.DataArray(np.array([f, f], np.float64), dims=("y", "x"),
                       coords={"y": [0.0, 1.0], "x": np.asarray(x, np.float64)})
    g = terrain.gradient(dem, edge_order=edge_order)
    for row in g["dzdx"].values:
        np.testing.assert_allclose(row, expected, rtol=0, atol=5e-9)
    np.testing.assert_array_equal(g["dzdy"].values, 0.0)


def test_numpy_gradient_table_2d():
    dem = xr.DataArray(np.array([[11, 22, 33], [14, 15, 16]], np.float64), dims=("y", "x"),
                       coords={"y": [0.0, 1.0], "x": [0.0, 1.0, 2.0]})
    g = terrain.gradient(dem)
    np.testing.assert_array_equal(g["dzdy"].values, [[3, -7, -17], [3, -7, -17]])
    np.testing.assert_array_equal(g["dzdx"].values, [[11, 11, 11], [1, 1, 1]])


@pytest.mark.parametrize("edge_order", [1, 2])
@pytest.mark.parametrize("y_order", ["ascending", "descending"])
@pytest.mark.parametrize("spacing", ["uniform", "nonuniform"])
def test_central_matches_numpy_gradient(spacing, y_order, edge_order):
    rng = np.random.default_rng(11)
    z = rng.normal(100.0, 20.0, (13, 17))
    if spacing == "uniform":
        y, x = np.arange(13) * 2.5, np.arange(17) * 1.5
    else:
        y, x = np.cumsum(rng.uniform(0.5, 3.0, 13)), np.cumsum(rng.uniform(0.5, 3.0, 17))
    if y_order == "descending":
        y = 1000.0 - y
    dem = xr.DataArray(z, dims=("y", "x"), coords={"y": y, "x": x})
    g = terrain.gradient(dem, edge_order=edge_order)
    ref_y, ref_x = np.gradient(z, y, x, edge_order=edge_order)
    for ours, ref in ((g["dzdx"].values, ref_x), (g["dzdy"].values, ref_y)):
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())


@pytest.mark.parametrize("edge_order", [1, 2])
def test_bare_array_with_spacing(edge_order):
    rng = np.random.default_rng(3)
    z = rng.normal(0.0, 5.0, (6, 9))
    dy, dx = 7.0, 3.0
    p, q = terrain.gradient(z, spacing=(dy, dx), edge_order=edge_order)
    assert isinstance(p, np.ndarray) and p.shape == z.shape
    np.testing.assert_allclose(p, np.gradient(z, dx, axis=1, edge_order=edge_order), rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(q, -np.gradient(z, dy, axis=0, edge_order=edge_order), rtol=1e-12,
                               atol=1e-12)


# --------------------------------------------------------------------------------------
# 3. Nodata holes
# --------------------------------------------------------------------------------------

def holes_mask(shape):
    """Single holes, a 2x2 hole, edge and corner holes, and two NaN columns / rows that leave
    column 8 isolated along x and row 4 isolated along y."""
    m = np.zeros(shape, bool)
    m[2, 3] = m[0, 5] = m[6, 0] = m[shape[0] - 1, shape[1] - 1] = True
    m[7:9, 2:4] = True
    m[:, 7] = m[:, 9] = True
    m[3, :] = m[5, :] = True
    return m


def expected_finite(valid, method):
    """Cells that must get a dzdx / dzdy: a valid cell with a difference along that axis.

    Central and Zevenbergen-Thorne use the cell's own row (column); Horn also the rows
    (columns) either side, each of which gives a difference when both neighbours are valid
    or when its middle cell and one neighbour are.
    """
    pad = np.pad(valid, 1)

    def has_diff(v, axis):
        lo = np.roll(v, 1, axis)
        hi = np.roll(v, -1, axis)
        return (lo & hi) | (v & (lo | hi))

    hx, hy = has_diff(pad, 1), has_diff(pad, 0)
    if method == "horn":
        hx = hx | np.roll(hx, 1, 0) | np.roll(hx, -1, 0)
        hy = hy | np.roll(hy, 1, 1) | np.roll(hy, -1, 1)
    return valid & hx[1:-1, 1:-1], valid & hy[1:-1, 1:-1]


@pytest.mark.parametrize("edge_order", [1, 2])
@pytest.mark.parametrize("method", DIFFERENCE_METHODS)  # evans / florinsky: tests/test_lsq.py
@pytest.mark.parametrize("kind", ["float-nan", "int16-nodata"])
def test_nodata_holes(kind, method, edge_order, make_tif):
    shape = (10, 12)
    hole = holes_mask(shape)
    i, j = np.mgrid[0:shape[0], 0:shape[1]]
    # 30 m pixels, north-up: 3 m per column east, 2 m per row south.
    z = 1000 + 3 * j - 2 * i
    a, b = 3 / 30, 2 / 30
    if kind == "float-nan":
        z = np.where(hole, np.nan, z.astype(np.float64))
        path, tol = make_tif(z), 1e-9
    else:
        z = np.where(hole, -32768, z).astype(np.int16)
        path, tol = make_tif(z, nodata=-32768), 1e-6
    dem = terrain.open_dem(path)
    p, q = as_arrays(terrain.gradient(dem, method=method, edge_order=edge_order,
                                      geometry="planar"))
    fx, fy = expected_finite(~hole, method)
    assert np.all(np.isnan(p[hole])) and np.all(np.isnan(q[hole]))
    np.testing.assert_array_equal(np.isfinite(p), fx)
    np.testing.assert_array_equal(np.isfinite(q), fy)
    np.testing.assert_allclose(p[fx], a, rtol=tol)
    np.testing.assert_allclose(q[fy], b, rtol=tol)
    # Isolated along one axis: no x difference in column 8, no y difference in row 4.
    assert np.all(np.isnan(p[:, 8])) and np.all(np.isnan(q[4, :]))
    rows_y = ~hole[:, 8] & (np.arange(shape[0]) != 4)
    cols_x = ~hole[4] & (np.arange(shape[1]) != 8)
    assert np.all(np.isfinite(q[rows_y, 8])) and np.all(np.isfinite(p[4, cols_x]))
    # A valid cell with a neighbour along each axis always gets both derivatives.
    nx, ny = expected_finite(~hole, "central")
    assert np.all(np.isfinite(p[nx])) and np.all(np.isfinite(q[ny]))
    s = terrain.slope(dem, method=method, edge_order=edge_order, geometry="planar").values
    assert np.all(np.isnan(s[hole]))
    np.testing.assert_allclose(s[fx & fy], plane_slope(a, b, "degrees"), rtol=tol)


# --------------------------------------------------------------------------------------
# 4. Flat aspect
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("flat_value", [None, 400.0, 0.0])
def test_flat_aspect(method, flat_value, make_tif):
    z = np.full((6, 7), 123.0, np.float32)
    z[2, 3] = z[0, 0] = -9999
    dem = terrain.open_dem(make_tif(z, nodata=-9999))
    kw = {} if flat_value is None else {"flat_value": flat_value}
    asp = terrain.aspect(dem, method=method, **kw).values
    nodata = z == -9999
    assert np.all(np.isnan(asp[nodata]))
    np.testing.assert_array_equal(asp[~nodata], -1.0 if flat_value is None else flat_value)
    np.testing.assert_array_equal(terrain.slope(dem, method=method).values[~nodata], 0.0)


# --------------------------------------------------------------------------------------
# 5. The real sample against gdaldem and against geodesic distances
# --------------------------------------------------------------------------------------

GDAL_ALG = {"horn": [], "zevenbergen-thorne": ["-alg", "ZevenbergenThorne"]}


@pytest.fixture(scope="module")
def utm_dem():
    return terrain.open_dem(UTM_SAMPLE)


@pytest.mark.parametrize("method", list(GDAL_ALG))
def test_slope_vs_gdaldem(method, utm_dem, gdaldem):
    ref, nodata = gdaldem("slope", UTM_SAMPLE, *GDAL_ALG[method])
    have = ref != nodata
    assert have.sum() > 500_000
    ours = terrain.slope(utm_dem, method=method, geometry="planar").values
    assert np.all(np.isfinite(ours[have]))
    assert np.abs(ours[have] - ref[have]).max() < 1e-3


def window_max_abs(z):
    """max |z| over each cell's 3x3 window (NaN counts as 0)."""
    pad = np.pad(np.nan_to_num(np.abs(z.astype(np.float64))), 1)
    views = [pad[1 + di:pad.shape[0] - 1 + di, 1 + dj:pad.shape[1] - 1 + dj]
             for di in (-1, 0, 1) for dj in (-1, 0, 1)]
    return np.max(np.stack(views), axis=0)


@pytest.mark.parametrize("method", list(GDAL_ALG))
def test_aspect_vs_gdaldem(method, utm_dem, gdaldem):
    ref, nodata = gdaldem("aspect", UTM_SAMPLE, *GDAL_ALG[method])
    have = ref != nodata  # gdaldem also writes nodata where the cell is flat
    assert have.sum() > 500_000
    g = terrain.gradient(utm_dem, method=method, geometry="planar")
    ours = terrain.aspect(g).values
    assert np.all(np.isfinite(ours[have]))
    diff = angular_diff(ours[have], ref[have])
    if method == "zevenbergen-thorne":
        # gdaldem's (f - d) of two float32 neighbours is exact: no excuse anywhere.
        assert diff.max() < 1e-3
        return
    # gdaldem forms Horn's weighted sums of a float32 DEM in float32 ((c + f + f + i) ...):
    # up to 9.5 float32 roundings of the window's largest |z| per component, which on
    # near-flat cells (a lake at 305 m: |gradient| ~ 1e-5) turns into degrees of aspect.
    # Allow that worst case, and nothing else beyond 0.001 degrees.
    grad = np.hypot(g["dzdx"].values, g["dzdy"].values)[have]
    rounding = 9.5 * math.sqrt(2) * np.finfo(np.float32).eps * window_max_abs(utm_dem.values)[have]
    allowed = 1e-3 + np.degrees(rounding / (8 * 30.0 * grad))
    assert np.all(diff <= allowed), (diff - allowed).max()
    assert np.mean(diff > 1e-3) < 0.02


@pytest.mark.parametrize("edge_order", [1, 2])
def test_geographic_sample_vs_geodesic_reference(edge_order):
    """Central slope on the 3" WGS84 sample against np.gradient over Geod distances."""
    dem = terrain.open_dem(WGS84_SAMPLE)
    z = dem.values.astype(np.float64)
    lon, lat = dem["x"].values, dem["y"].values
    rows = lat.size
    # Per row: ground distance between neighbouring pixel centres along the row.
    dx = GEOD.inv(np.full(rows, lon[0]), lat, np.full(rows, lon[1]), lat)[2]
    # Between rows: meridian distances, accumulated northwards (row 0 is north).
    dy = GEOD.inv(np.full(rows - 1, lon[0]), lat[:-1], np.full(rows - 1, lon[0]), lat[1:])[2]
    north = -np.concatenate(([0.0], np.cumsum(dy)))
    p = np.gradient(z, axis=1, edge_order=edge_order) / dx[:, None]
    q = np.gradient(z, north, axis=0, edge_order=edge_order)
    ref = np.degrees(np.arctan(np.hypot(p, q)))
    ours = terrain.slope(dem, edge_order=edge_order).values
    assert np.abs(ours - ref).max() < 1e-4


# --------------------------------------------------------------------------------------
# 6. Hillshade
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("azimuth, altitude", [(315.0, 45.0), (90.0, 30.0), (200.0, 60.0)])
@pytest.mark.parametrize("a, b", [(0.12, -0.05), (-0.3, 0.4), (1.5, 2.0)])
def test_hillshade_plane_analytic(a, b, azimuth, altitude, method, make_tif):
    dem, _, _, _ = projected_plane("utm-nonsquare", "file", make_tif)
    x, y = dem["x"].values, dem["y"].values
    dem = dem.copy(data=300.0 + a * (x - x[0])[None, :] + b * (y - y[0])[:, None])
    hs = terrain.hillshade(dem, azimuth=azimuth, altitude=altitude, method=method,
                           geometry="planar").values
    # cos(incidence) = cos(zenith) cos(slope) + sin(zenith) sin(slope) cos(azimuth - aspect)
    slope = math.atan(math.hypot(a, b))
    zen = math.radians(90.0 - altitude)
    asp = math.radians(float(plane_aspect(a, b)))
    cos_i = math.cos(zen) * math.cos(slope) + math.sin(zen) * math.sin(slope) * math.cos(
        math.radians(azimuth) - asp)
    np.testing.assert_allclose(hs, 1.0 + 254.0 * max(cos_i, 0.0), rtol=1e-6)


@pytest.mark.parametrize("method, multidirectional", [
    ("horn", False), ("zevenbergen-thorne", False), ("horn", True), ("zevenbergen-thorne", True)])
def test_hillshade_vs_gdaldem(method, multidirectional, utm_dem, gdaldem):
    opts = GDAL_ALG[method] + (["-multidirectional"] if multidirectional else [])
    ref, nodata = gdaldem("hillshade", UTM_SAMPLE, *opts)
    have = ref != nodata
    assert have.sum() > 500_000
    ours = terrain.hillshade(utm_dem, method=method, multidirectional=multidirectional,
                             geometry="planar").values
    assert np.all(np.isfinite(ours[have]))
    diff = np.abs(np.round(ours[have]).astype(int) - ref[have].astype(int))
    # gdaldem divides with an approximate SSE reciprocal square root: rare 1-2 level misses
    # (about 40 of a million pixels here).
    assert diff.max() <= 2
    assert np.mean(diff > 0) < 1e-4


@pytest.mark.parametrize("a, b", [(0.0, 0.0), (0.3, 0.1), (-2.0, 1.0), (0.5, -3.0), (-0.2, -0.7)])
@pytest.mark.parametrize("multidirectional", [False, True])
def test_hillshade_plane_vs_gdaldem(a, b, multidirectional, make_tif, gdaldem):
    """Steep, flat and every-quadrant planes: gdaldem's interior value is ours everywhere."""
    dem, _, _, _ = projected_plane("utm-square", "file", make_tif)
    x, y = dem["x"].values, dem["y"].values
    z = (300.0 + a * (x - x[0])[None, :] + b * (y - y[0])[:, None]).astype(np.float32)
    path = make_tif(z, name="plane.tif", transform=dem.rio.transform())
    ref, nodata = gdaldem("hillshade", path, *(["-multidirectional"] if multidirectional else []))
    hs = terrain.hillshade(terrain.open_dem(path), multidirectional=multidirectional,
                           geometry="planar").values
    assert np.all(np.isfinite(hs))
    inner = ref[1:-1, 1:-1]
    assert np.ptp(inner) <= 1  # a plane: gdaldem gives one value (give or take its rsqrt)
    np.testing.assert_allclose(hs, np.median(inner), atol=1.0)


# --------------------------------------------------------------------------------------
# 9. Gradient Dataset input; products keep the input's grid and georeferencing
# --------------------------------------------------------------------------------------

PRODUCTS = {
    "slope": lambda d, **kw: terrain.slope(d, units="percent", **kw),
    "aspect": lambda d, **kw: terrain.aspect(d, flat_value=-5.0, **kw),
    "hillshade": lambda d, **kw: terrain.hillshade(d, azimuth=100.0, altitude=30.0, **kw),
}


@pytest.mark.parametrize("edge_order", [1, 2])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("product", list(PRODUCTS))
def test_gradient_dataset_input(product, method, edge_order):
    dem = terrain.open_dem(WGS84_SAMPLE).isel(y=slice(0, 40), x=slice(0, 50))
    direct = PRODUCTS[product](dem, method=method, edge_order=edge_order)
    g = terrain.gradient(dem, method=method, edge_order=edge_order)
    shared = PRODUCTS[product](g)
    np.testing.assert_array_equal(shared.values, direct.values)
    assert shared.dims == direct.dims == dem.dims


def grid_input(source, make_tif):
    if source == "nocrs":
        return xr.DataArray(np.random.default_rng(0).normal(size=(5, 6)), dims=("y", "x"),
                            coords={"y": [0.0, 1, 3, 4, 8], "x": np.arange(6.0) * 2})
    case, kind = {"utm-file": ("utm-nonsquare", "file"),
                  "south-up-dataarray": ("south-up", "dataarray")}[source]
    return projected_plane(case, kind, make_tif)[0]


@pytest.mark.parametrize("product, via_gradient", [
    ("gradient", False), *[(p, v) for p in PRODUCTS for v in (False, True)]])
@pytest.mark.parametrize("source", ["utm-file", "south-up-dataarray", "nocrs"])
def test_products_keep_grid(product, via_gradient, source, make_tif):
    dem = grid_input(source, make_tif)
    inp = terrain.gradient(dem, method="horn") if via_gradient else dem
    if product == "gradient":
        outs = list(terrain.gradient(inp).data_vars.values())
    else:
        outs = [PRODUCTS[product](inp)]
    for out in outs:
        assert out.dims == dem.dims and out.shape == dem.shape
        for c in ("x", "y"):
            np.testing.assert_array_equal(out[c].values, dem[c].values)
        assert out.rio.crs == dem.rio.crs
        if dem.rio.crs is not None:
            assert out.rio.transform() == dem.rio.transform()


# --------------------------------------------------------------------------------------
# Flat is flat (issue 8): no direction from rounding residue, on every grid and method
# --------------------------------------------------------------------------------------

FLAT_GRIDS = {
    # A 3-arc-second lat/lon grid: rows unevenly spaced on the ellipsoid (numpy.gradient's
    # non-uniform weights), the case where 684 of 1444 flat cells got a direction.
    "wgs84": ("EPSG:4326", Affine(1 / 1200, 0, -84.3, 0, -1 / 1200, 36.6)),
    "utm": ("EPSG:32616", Affine(30.0, 0, 731000.0, 0, -30.0, 4069000.0)),
    "webmerc": ("EPSG:3857", Affine(30.0, 0, 1.1e6, 0, -30.0, 8.4e6)),
    "polar": ("EPSG:3413", Affine(30.0, 0, 1.0e6, 0, -30.0, -1.0e6)),
}


@pytest.mark.parametrize("edge_order", [1, 2])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("geometry", ["geodesic", "planar"])
@pytest.mark.parametrize("grid", list(FLAT_GRIDS))
def test_flat_is_flat(grid, geometry, method, edge_order, make_tif):
    crs, transform = FLAT_GRIDS[grid]
    z = np.full((38, 38), 261.37, np.float32)  # a lake: 1444 cells at one level
    z[5, 7] = z[20:23, 30] = -9999
    dem = terrain.open_dem(make_tif(z, transform=transform, crs=crs, nodata=-9999))
    kw = dict(method=method, edge_order=edge_order, geometry=geometry)
    valid = z != -9999
    asp = terrain.aspect(dem, **kw).values
    np.testing.assert_array_equal(asp[valid], -1.0)
    g = terrain.gradient(dem, **kw)
    np.testing.assert_array_equal(g["dzdx"].values[valid], 0.0)
    np.testing.assert_array_equal(g["dzdy"].values[valid], 0.0)
    np.testing.assert_array_equal(terrain.slope(dem, **kw).values[valid], 0.0)


# --- issue 8: holes and vertical units of in-memory inputs --------------------------

def _holed_plane(tmp_path, nodata=-9999.0):
    """A 0.3 / -0.2 plane on 10 m pixels with holes, as a GeoTIFF with a nodata value."""
    from affine import Affine

    from conftest import write_tif

    rows, cols = np.indices((14, 16))
    z = (200.0 + 3.0 * cols + 2.0 * rows).astype(np.float32)  # rows run south: dzdy = -0.2
    holes = np.zeros(z.shape, bool)
    holes[5:8, 6:9] = True
    holes[0, 15] = True
    z[holes] = nodata
    # 180 km east of the UTM central meridian: scale factor 1, CRS metres are ground metres.
    path = write_tif(tmp_path / "dem.tif", z, transform=Affine(10.0, 0, 680070.0, 0, -10.0, 4e6),
                     nodata=nodata)
    return path, z, holes, math.degrees(math.atan(math.hypot(0.3, 0.2)))


def test_numpy_masked_array_holes(tmp_path):
    """ds.read(masked=True) passed to the library: masked cells are holes, never cliffs."""
    import rasterio

    path, z, holes, truth = _holed_plane(tmp_path)
    with rasterio.open(path) as ds:
        masked = ds.read(1, masked=True)
    assert isinstance(masked, np.ma.MaskedArray) and masked.mask.sum() == holes.sum()
    for f in (terrain.slope, lambda a, **kw: terrain.compute(a, ("slope",), **kw)["slope"]):
        s = f(masked, spacing=(10.0, 10.0))
        np.testing.assert_array_equal(np.isnan(s), holes)
        np.testing.assert_allclose(s[~holes], truth, atol=1e-4)
    # A mask over valid-looking numbers (no nodata value at all) works the same.
    clean = np.ma.array(np.where(holes, 5000.0, z), mask=holes)
    np.testing.assert_array_equal(np.isnan(terrain.slope(clean, spacing=(10.0, 10.0))), holes)
    np.testing.assert_array_equal(np.ma.getmaskarray(clean), holes)  # the caller's, untouched
    assert (clean.data[holes] == 5000.0).all()


@pytest.mark.parametrize("masked", [True, False])
@pytest.mark.parametrize("with_crs", [True, False])
def test_rioxarray_fill_values_are_holes(masked, with_crs, tmp_path):
    """rioxarray.open_rasterio(masked=True or not), with or without its CRS: _FillValue
    in attrs or encoding makes holes; the plane's slope elsewhere."""
    import rioxarray

    path, z, holes, truth = _holed_plane(tmp_path)
    da = rioxarray.open_rasterio(path, masked=masked).squeeze("band", drop=True)
    assert ("_FillValue" in da.attrs) != masked and ("_FillValue" in da.encoding) == masked
    if not with_crs:
        da = da.drop_vars("spatial_ref")
        da.attrs.pop("grid_mapping", None)
        da.encoding.pop("grid_mapping", None)
        assert da.rio.crs is None
    s = terrain.slope(da)
    np.testing.assert_array_equal(np.isnan(s.values), holes)
    np.testing.assert_allclose(s.values[~holes], truth, atol=1e-4)
    lazy = terrain.slope(da.chunk({"y": 5, "x": 6})).values
    np.testing.assert_array_equal(np.isnan(lazy), holes)


@pytest.mark.parametrize("attrs, factor, source", [
    ({}, 1.0, "default (metres)"),
    ({"units": "ft"}, 0.3048, "units attr 'ft'"),
    ({"units": "US survey foot"}, FTUS, "units attr 'US survey foot'"),
    ({"units": "metre"}, 1.0, "units attr 'metre'"),
    ({"crs": "EPSG:2229+6360"}, FTUS, "vertical CRS 'NAVD88 height (ftUS)', US survey foot"),
])
def test_dataarray_vertical_units(attrs, factor, source):
    """A DataArray's units attr or compound CRS sets the z factor; results record it."""
    p = 0.05  # metres per metre east
    x = 10.0 * np.arange(9)
    y = 100.0 - 10.0 * np.arange(7)
    z = np.broadcast_to(p * x / factor, (7, 9)).copy()  # heights in the declared unit
    dem = xr.DataArray(z, dims=("y", "x"), coords={"y": y, "x": x})
    if "units" in attrs:
        dem.attrs["units"] = attrs["units"]
    if "crs" in attrs:
        import rioxarray  # noqa: F401

        dem = dem.rio.write_crs(attrs["crs"])
        # The CRS's horizontal unit is US survey feet too; on its standard parallel
        # (34 deg 02', scale factor 1) CRS feet are ground feet.
        dem = dem.assign_coords(x=6561666.667 + x / FTUS, y=1834512.814 + (y - 100.0) / FTUS)
    s = terrain.slope(dem, units="ratio")
    np.testing.assert_allclose(s.values, p, rtol=1e-6)
    assert s.attrs["z_factor"] == pytest.approx(factor, rel=1e-15)
    assert s.attrs["z_factor_source"] == source
    explicit = terrain.slope(dem, units="ratio", z_factor=1.0)
    np.testing.assert_allclose(explicit.values, p / factor, rtol=1e-6)
    assert explicit.attrs["z_factor_source"] == "explicit (--z-factor / z_factor=)"


def test_products_of_a_gradient_say_its_geometry(tmp_path):
    """slope(gradient(dem, geometry="planar")) is a planar slope and says so."""
    from conftest import write_tif

    z = np.arange(48, dtype=np.float32).reshape(6, 8)
    dem = terrain.open_dem(write_tif(tmp_path / "dem.tif", z, crs="EPSG:3857",
                                     transform=Affine(30.0, 0, 1.1e6, 0, -30.0, 8.4e6)))
    for geometry in ("planar", "geodesic"):
        g = terrain.gradient(dem, geometry=geometry)
        s = terrain.slope(g)
        assert s.attrs["geometry"] == geometry
        np.testing.assert_array_equal(s.values, terrain.slope(dem, geometry=geometry).values)
