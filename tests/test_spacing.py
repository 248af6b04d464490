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
