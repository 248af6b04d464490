"""Ground spacing against pyproj.Geod, unit definitions and rasterio's pixel centres."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest
import rasterio.transform
from affine import Affine

import terrain
from terrain.spacing import (check_shape, check_transform, grid_from_coords, grid_from_spacing,
                             grid_from_transform, pixel_centres)


@pytest.mark.parametrize("crs, ellps", [("EPSG:4326", "WGS84"), ("EPSG:4230", "intl"),
                                        ("EPSG:4277", "airy")])
@pytest.mark.parametrize("lat0", [0.0, 36.5, 45.0, -60.0, 70.0, 89.5])
@pytest.mark.parametrize("step", [1 / 1200, 0.01])
def test_geographic_spacing_is_geodesic(crs, ellps, lat0, step):
    """Row spacing (x scale times degrees) and the distance between rows match Geod
    distances between neighbouring pixel centres on the CRS's own ellipsoid, to a micrometre."""
    geod = pyproj.Geod(ellps=ellps)
    lat = lat0 + step * (3 - np.arange(7))  # north-up
    lon = -120.0 + step * np.arange(5)
    grid = grid_from_coords(lon, lat, crs)
    along_row = geod.inv(np.full(7, lon[1]), lat, np.full(7, lon[2]), lat)[2]
    np.testing.assert_allclose(grid.xscale * (lon[2] - lon[1]), along_row, rtol=0, atol=1e-6)
    between_rows = geod.inv(np.full(6, lon[0]), lat[:-1], np.full(6, lon[0]), lat[1:])[2]
    np.testing.assert_allclose(-np.diff(grid.ypos), between_rows, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(grid.xpos, lon)


@pytest.mark.parametrize("lat0", [0.0, 45.0])
def test_other_ellipsoid_differs(lat0):
    """The WGS84 and International 1924 spacings differ by far more than the tolerance above,
    so the test above can tell which ellipsoid was used."""
    lat = np.array([lat0 + 0.01, lat0])
    lon = np.array([0.0, 0.01])
    a = grid_from_coords(lon, lat, "EPSG:4326")
    b = grid_from_coords(lon, lat, "EPSG:4230")
    assert abs(a.xscale[0] / b.xscale[0] - 1) > 1e-6
    assert abs(np.diff(a.ypos)[0] / np.diff(b.ypos)[0] - 1) > 1e-6


@pytest.mark.parametrize("crs, factor", [
    ("EPSG:32616", 1.0), ("EPSG:2264", 1200.0 / 3937.0), ("EPSG:3361", 0.3048)])
def test_projected_units(crs, factor):
    x = np.array([1000.0, 1030.0, 1060.0])
    y = np.array([500.0, 490.0, 480.0, 470.0])
    grid = grid_from_coords(x, y, crs)
    np.testing.assert_allclose(grid.xscale, factor, rtol=1e-15)
    np.testing.assert_allclose(grid.ypos, y * factor, rtol=1e-15)
    np.testing.assert_array_equal(grid.xpos, x)


def test_no_crs_is_metres():
    x, y = np.array([0.0, 1.5, 4.0]), np.array([3.0, 7.0])
    grid = grid_from_coords(x, y)
    np.testing.assert_array_equal(grid.xpos, x)
    np.testing.assert_array_equal(grid.ypos, y)
    np.testing.assert_array_equal(grid.xscale, 1.0)


def test_grid_from_spacing_row0_north():
    grid = grid_from_spacing((3, 4), (10.0, 2.0))
    np.testing.assert_array_equal(grid.xpos, [0, 2, 4, 6])
    np.testing.assert_array_equal(grid.ypos, [0, -10, -20])


@pytest.mark.parametrize("spacing", [(0.0, 1.0), (1.0, -2.0), (float("inf"), 1.0), (1.0,), "ab"])
def test_grid_from_spacing_refuses(spacing):
    with pytest.raises(terrain.TerrainError):
        grid_from_spacing((3, 4), spacing)


@pytest.mark.parametrize("transform", [
    Affine(30.0, 0, 500000.0, 0, -30.0, 4e6),   # north-up
    Affine(30.0, 0, 500000.0, 0, 10.0, 4e6),    # south-up
    Affine(-0.5, 0, 10.0, 0, -0.25, 50.0),      # east-to-west columns
])
def test_pixel_centres_match_rasterio(transform):
    shape = (4, 5)
    x, y = pixel_centres(transform, shape)
    rx, _ = rasterio.transform.xy(transform, np.zeros(5, int), np.arange(5), offset="center")
    _, ry = rasterio.transform.xy(transform, np.arange(4), np.zeros(4, int), offset="center")
    np.testing.assert_allclose(x, rx, rtol=1e-15)
    np.testing.assert_allclose(y, ry, rtol=1e-15)


@pytest.mark.parametrize("transform", [
    Affine(30.0, 5.0, 0, 0, -30.0, 0),    # rotated / sheared
    Affine(30.0, 0, 0, 2.0, -30.0, 0),
    Affine(0.0, 0, 0, 0, -30.0, 0),       # zero pixel size
    Affine(30.0, 0, 0, 0, 0.0, 0),
])
def test_check_transform_refuses(transform):
    with pytest.raises(terrain.TerrainError, match="dem.tif"):
        check_transform(transform, "dem.tif")


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (5, 1), (0, 3), (2, 2, 2), (4,)])
def test_check_shape_refuses(shape):
    with pytest.raises(terrain.TerrainError, match="dem.tif"):
        check_shape(shape, "dem.tif")


@pytest.mark.parametrize("x, y, crs", [
    ([0.0, 1.0, 1.0], [0.0, 1.0], None),          # repeated x
    ([0.0, 2.0, 1.0], [0.0, 1.0], None),          # not monotonic
    ([0.0, np.nan, 2.0], [0.0, 1.0], None),       # NaN coordinate
    ([0.0, 1.0], [91.0, 90.5], "EPSG:4326"),      # beyond the pole
])
def test_grid_from_coords_refuses(x, y, crs):
    with pytest.raises(terrain.TerrainError):
        grid_from_coords(x, y, crs)


def test_grid_from_transform_needs_crs():
    with pytest.raises(terrain.TerrainError, match="nocrs.tif"):
        grid_from_transform(Affine(30.0, 0, 0, 0, -30.0, 0), (3, 3), None, name="nocrs.tif")


@pytest.mark.parametrize("halo", [1, 2])
@pytest.mark.parametrize("window", [(0, 4, 0, 3), (2, 6, 1, 5), (0, 6, 0, 5)])
def test_window_vectors(window, halo):
    """Inside the raster: the raster's own vectors; beyond it: linear continuation."""
    x = np.array([0.0, 1.0, 3.0, 6.0, 10.0])
    y = np.array([0.0, -2.0, -3.0, -5.0, -8.0, -9.0])
    grid = grid_from_coords(x, y)
    r0, r1, c0, c1 = window
    xpos, xscale, ypos = grid.window(r0, r1, c0, c1, halo)

    def extended(v, start, stop):
        out = []
        for k in range(start - halo, stop + halo):
            if k < 0:
                out.append(v[0] + k * (v[1] - v[0]))
            elif k >= v.size:
                out.append(v[-1] + (k - v.size + 1) * (v[-1] - v[-2]))
            else:
                out.append(v[k])
        return np.array(out)

    np.testing.assert_array_equal(xpos, extended(x, c0, c1))
    np.testing.assert_array_equal(ypos, extended(y, r0, r1))
    assert xscale.shape == (r1 - r0 + 2 * halo,) and np.all(xscale == 1.0)


# --------------------------------------------------------------------------------------
# Ground geometry of projected grids (issue 8): planes on the real Earth
# --------------------------------------------------------------------------------------

# name: (CRS, centre lon, centre lat, pixel size in CRS units)
GROUND_CASES = {
    "webmerc-0N": ("EPSG:3857", 10.0, 0.0, 30.0),
    "webmerc-45N": ("EPSG:3857", 10.0, 45.0, 30.0),
    "webmerc-60N": ("EPSG:3857", 10.0, 60.0, 30.0),
    "webmerc-75N": ("EPSG:3857", 10.0, 75.0, 30.0),
    "polar-3413-0E": ("EPSG:3413", 0.0, 75.0, 30.0),
    "polar-3031-90E": ("EPSG:3031", 90.0, -75.0, 30.0),
    "laea-3035-68N-30E": ("EPSG:3035", 30.0, 68.0, 30.0),
    "stateplane-2229-ftUS": ("EPSG:2229", -118.3, 34.2, 100.0),
    "utm16-4deg-off": ("EPSG:32616", -83.0, 36.0, 30.0),
}
PLANE_A, PLANE_B = 0.12, -0.2  # dz/dEast, dz/dNorth of the plane at its centre


def ground_plane(case, shape=(21, 26)):
    """(z, transform, crs, truth) for z = 500 + a E + b N, with (E, N) each cell's geodesic
    offset from the raster's centre (distance and azimuth by pyproj.Geod), drawn on the
    CRS's grid. ``truth`` holds dz/dEast and dz/dNorth at each cell, by central differences
    of z over +-1 m geodesic steps east and north of the cell (pyproj.Geod.fwd)."""
    crs_text, lon0, lat0, px = GROUND_CASES[case]
    crs = pyproj.CRS(crs_text)
    to_crs = pyproj.Transformer.from_crs(crs.geodetic_crs, crs, always_xy=True)
    to_geo = pyproj.Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True)
    geod = pyproj.Geod(a=crs.ellipsoid.semi_major_metre, b=crs.ellipsoid.semi_minor_metre)
    x0, y0 = to_crs.transform(lon0, lat0)
    rows, cols = shape
    transform = Affine(px, 0, x0 - px * cols / 2, 0, -px, y0 + px * rows / 2)
    c, r = np.meshgrid(np.arange(cols) + 0.5, np.arange(rows) + 0.5)
    lon, lat = to_geo.transform(*(transform @ (c, r)))

    def height(lo, la):
        az, _, dist = geod.inv(np.full(lo.shape, lon0), np.full(lo.shape, lat0), lo, la)
        az = np.radians(az)
        return 500.0 + PLANE_A * dist * np.sin(az) + PLANE_B * dist * np.cos(az)

    def step(azimuth):
        lo, la, _ = geod.fwd(lon, lat, np.full(lon.shape, azimuth), np.ones(lon.shape))
        return height(lo, la)

    truth = {"dzdx": (step(90.0) - step(270.0)) / 2, "dzdy": (step(0.0) - step(180.0)) / 2}
    return height(lon, lat), transform, crs_text, truth


def ground_slope_aspect(p, q):
    return (np.degrees(np.arctan(np.hypot(p, q))),
            (np.degrees(np.arctan2(-p, -q)) + 360.0) % 360.0)


def angle_between(a, b):
    return np.abs((a - b + 180.0) % 360.0 - 180.0)


def check_ground(p, q, slope, aspect, truth):
    """The issue's bounds: dz/dE, dz/dN within 2e-4, slope 0.01 deg, aspect 0.05 deg."""
    assert np.abs(p - truth["dzdx"]).max() <= 2e-4
    assert np.abs(q - truth["dzdy"]).max() <= 2e-4
    true_slope, true_aspect = ground_slope_aspect(truth["dzdx"], truth["dzdy"])
    assert np.abs(slope - true_slope).max() <= 0.01
    assert angle_between(aspect, true_aspect).max() <= 0.05


@pytest.mark.parametrize("method", ["central", "horn", "zevenbergen-thorne"])
@pytest.mark.parametrize("case", list(GROUND_CASES))
def test_ground_plane_every_projection(case, method, tmp_path):
    z, transform, crs, truth = ground_plane(case)
    dem = terrain.open_dem(_write(tmp_path / "plane.tif", z, transform, crs))
    g = terrain.gradient(dem, method=method)
    slope = terrain.slope(g).values
    aspect = terrain.aspect(g).values
    check_ground(g["dzdx"].values, g["dzdy"].values, slope, aspect, truth)


@pytest.mark.parametrize("case", ["webmerc-60N", "polar-3413-0E", "laea-3035-68N-30E",
                                  "stateplane-2229-ftUS"])
def test_planar_is_the_crs_plane_and_misses_the_ground(case, tmp_path):
    """What gdaldem computes (CRS units, grid north) is far off the ground on these grids:
    the test above can tell the geometries apart."""
    z, transform, crs, truth = ground_plane(case)
    dem = terrain.open_dem(_write(tmp_path / "plane.tif", z, transform, crs))
    g = terrain.gradient(dem, geometry="planar")
    true_slope, true_aspect = ground_slope_aspect(truth["dzdx"], truth["dzdy"])
    slope, aspect = terrain.slope(g).values, terrain.aspect(g).values
    off = max(np.abs(slope - true_slope).max(), angle_between(aspect, true_aspect).max())
    assert off > 0.1


@pytest.mark.parametrize("method", ["central", "horn", "zevenbergen-thorne"])
@pytest.mark.parametrize("case", ["webmerc-60N", "polar-3031-90E", "laea-3035-68N-30E",
                                  "stateplane-2229-ftUS"])
def test_cli_ground_plane(case, method, tmp_path):
    from click.testing import CliRunner

    from cli.main import cli

    z, transform, crs, truth = ground_plane(case)
    src = _write(tmp_path / "plane.tif", z, transform, crs)
    outs = {}
    for command in ("gradient", "slope", "aspect"):
        outs[command] = tmp_path / f"{command}.tif"
        result = CliRunner().invoke(cli, [command, src, "-o", str(outs[command]),
                                          "--tile-size", "16", "--method", method])
        assert result.exit_code == 0, result.output
    with rasterio.open(outs["gradient"]) as ds:
        p, q = ds.read(1).astype(np.float64), ds.read(2).astype(np.float64)
    with rasterio.open(outs["slope"]) as ds:
        slope = ds.read(1).astype(np.float64)
    with rasterio.open(outs["aspect"]) as ds:
        aspect = ds.read(1).astype(np.float64)
    check_ground(p, q, slope, aspect, truth)


def test_web_mercator_doubles_the_slope_at_60n(tmp_path):
    """tan(slope) on EPSG:3857 at 60 N: twice what the CRS units say (the issue's row)."""
    z, transform, crs, truth = ground_plane("webmerc-60N")
    dem = terrain.open_dem(_write(tmp_path / "plane.tif", z, transform, crs))
    ground = terrain.slope(dem, units="ratio").values
    planar = terrain.slope(dem, units="ratio", geometry="planar").values
    np.testing.assert_allclose(ground / planar, 2.0, rtol=0.01)


def test_hillshade_light_is_relative_to_the_map(tmp_path):
    """A polar grid 45 degrees off true north: hillshade is that of the ground slope lit from
    the map's north-west, i.e. gdaldem's formula on the ground gradient turned into the map's
    axes (meridian convergence removed), not the planar one."""
    z, transform, crs, truth = ground_plane("polar-3413-0E")
    dem = terrain.open_dem(_write(tmp_path / "plane.tif", z, transform, crs))
    hs = terrain.hillshade(dem, method="horn").values
    # Grid north at 0 E on EPSG:3413 (central meridian -45 W) points 45 degrees east of true
    # north: a ground gradient (gE, gN) is (gE cos45 - gN sin45, gE sin45 + gN cos45) in the
    # map's axes.
    t = np.radians(45.0)
    px = truth["dzdx"] * np.cos(t) - truth["dzdy"] * np.sin(t)
    py = truth["dzdx"] * np.sin(t) + truth["dzdy"] * np.cos(t)
    az, alt = np.radians(315.0), np.radians(45.0)
    cos_i = (np.sin(alt) - px * np.sin(az) * np.cos(alt) - py * np.cos(az) * np.cos(alt)) / \
        np.sqrt(1 + px ** 2 + py ** 2)
    np.testing.assert_allclose(hs, 1 + 254 * np.maximum(cos_i, 0), atol=0.05)
    # ... and from the gradient Dataset, the same.
    again = terrain.hillshade(terrain.gradient(dem, method="horn")).values
    np.testing.assert_allclose(again, hs, atol=1e-4)


@pytest.mark.parametrize("crs, x0, y0, px, shape", [
    ("EPSG:3413", -9000.0, 9000.0, 60.0, (300, 300)),      # the North Pole inside
    ("EPSG:3031", 1.5e6, 1.0e6, 500.0, (400, 420)),
    ("EPSG:3857", 1.0e6, 1.35e7, 200.0, (300, 330)),       # 76 to 78 N
    ("EPSG:3035", 5.3e6, 5.0e6, 100.0, (280, 300)),
])
def test_ground_map_interpolation_error_is_bounded(crs, x0, y0, px, shape):
    """The lattice shortcut against the exact matrices at every cell: within the tolerance
    the map claims, which keeps aspect within 6e-4 degrees and tan(slope) within 1e-5."""
    from terrain.spacing import GROUND_TOLERANCE, _Projection

    rows, cols = shape
    x = x0 + (np.arange(cols) + 0.5) * px
    y = y0 - (np.arange(rows) + 0.5) * px
    grid = grid_from_coords(x, y, crs)
    exact_m, exact_r, _, _ = _Projection(x, y, rasterio.crs.CRS.from_user_input(crs), 1.0).at(
        np.arange(rows), np.arange(cols))
    from terrain.engine import to_ground

    ones, zeros = np.ones(shape), np.zeros(shape)
    window = grid.ground_window(0, rows, 0, cols)
    for which, exact in (("ground", exact_m), ("rotation", exact_r)):
        got = np.empty(shape + (4,))
        for k, (px_, py_) in enumerate(((ones, zeros), (zeros, ones))):
            ox, oy = np.empty(shape), np.empty(shape)
            to_ground(px_, py_, window, which, ox, oy)
            got[..., k], got[..., 2 + k] = ox, oy
        size = np.abs(exact).max(axis=-1, keepdims=True) if which == "ground" else 1.0
        error = (np.abs(got - exact) / size).max()
        assert error <= 2 * GROUND_TOLERANCE, (which, error)
    assert grid.ground.max_error <= GROUND_TOLERANCE


def test_planar_web_mercator_equals_gdaldem(tmp_path, gdaldem):
    """--geometry planar is gdaldem's parity mode on a Web Mercator file."""
    rng = np.random.default_rng(4)
    z = np.cumsum(np.cumsum(rng.normal(0, 1.0, (60, 70)), 0), 1).astype(np.float32)
    src = _write(tmp_path / "wm.tif", z, Affine(30.0, 0, 1.1e6, 0, -30.0, 8.4e6), "EPSG:3857")
    ref, nodata = gdaldem("slope", src)
    has = ref != nodata
    ours = terrain.slope(terrain.open_dem(src), method="horn", geometry="planar").values
    assert has.sum() == 58 * 68
    assert np.abs(ours[has] - ref[has]).max() <= 0.001
    ground = terrain.slope(terrain.open_dem(src), method="horn").values
    assert np.abs(ground[has] - ref[has]).max() > 1.0  # gdaldem is off the ground there


def _write(path, z, transform, crs):
    with rasterio.open(path, "w", driver="GTiff", width=z.shape[1], height=z.shape[0], count=1,
                       dtype=z.dtype, crs=crs, transform=transform) as ds:
        ds.write(z, 1)
    return str(path)
