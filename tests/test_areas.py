"""terrain.areas: ground cell areas against pyproj.Geod polygon areas."""

import numpy as np
import pyproj
import pytest
import rasterio
from rasterio.transform import from_origin

from terrain.areas import CellAreas, cell_areas
from terrain.raster import raster_info

WGS84 = pyproj.Geod(ellps="WGS84")


def _write(path, crs, transform, shape):
    with rasterio.open(path, "w", driver="GTiff", width=shape[1], height=shape[0], count=1,
                       dtype="float32", crs=crs, transform=transform) as ds:
        ds.write(np.zeros(shape, np.float32), 1)
    return str(path)


def _geod_area(lons, lats):
    area, _ = WGS84.polygon_area_perimeter(lons, lats)
    return abs(area)


def _ring(x0, y0, x1, y1, n=200):
    """Closed ring along the rectangle's edges, n points per edge (densified)."""
    t = np.linspace(0, 1, n, endpoint=False)
    xs = np.concatenate([x0 + (x1 - x0) * t, np.full(n, x1), x1 - (x1 - x0) * t, np.full(n, x0)])
    ys = np.concatenate([np.full(n, y0), y0 + (y1 - y0) * t, np.full(n, y1), y1 - (y1 - y0) * t])
    return xs, ys


@pytest.mark.parametrize("lat0", [0.5, 36.4, 60.0, 84.0])
def test_latlon_total_equals_geod_footprint(tmp_path, lat0):
    # 1 arc-second grid, 300 x 400 cells: footprint polygon area from pyproj.Geod.
    d = 1 / 3600
    path = _write(tmp_path / "ll.tif", "EPSG:4326", from_origin(10.0, lat0 + 300 * d, d, d), (300, 400))
    info = raster_info(path)
    total = CellAreas.from_info(info).total()
    # Parallels are not geodesics: densify so the polygon follows them.
    lons, lats = _ring(10.0, lat0, 10.0 + 400 * d, lat0 + 300 * d, n=2000)
    truth = _geod_area(lons, lats)
    assert total == pytest.approx(truth, rel=1e-4)  # 0.01 %


def test_latlon_sample_total(tmp_path):
    path = "sample_data/jacksboro_wgs84.tif"
    info = raster_info(path)
    a = cell_areas(path)
    t = info.transform
    rows, cols = info.shape
    lons, lats = _ring(t.c, t.f + rows * t.e, t.c + cols * t.a, t.f, n=2000)
    assert a.sum() == pytest.approx(_geod_area(lons, lats), rel=1e-4)
    # one row's cells share an area; rows differ (latitude)
    assert np.all(a[0] == a[0, 0]) and a[0, 0] != a[-1, 0]


def _cell_truth(crs, x0, y0, x1, y1):
    tr = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    xs, ys = _ring(x0, y0, x1, y1, n=100)
    lons, lats = tr.transform(xs, ys)
    return _geod_area(lons, lats)


def test_web_mercator_60n_factor_399(tmp_path):
    tr = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    x0, y0 = tr.transform(10.0, 60.0)
    px = 100.0
    path = _write(tmp_path / "wm.tif", "EPSG:3857", from_origin(x0, y0 + 50 * px, px, px), (50, 60))
    a = cell_areas(path)
    # bottom-left cell: its south edge on 60 N
    truth = _cell_truth("EPSG:3857", x0, y0, x0 + px, y0 + px)
    assert a[-1, 0] == pytest.approx(truth, rel=1e-4)
    ratio = px * px / a[-1, 0]
    assert ratio == pytest.approx(3.99, abs=0.006)
    # the sphere's figure (get_factors: 1/cos^2 = 4.00) is 0.3 % off on WGS84
    factors = pyproj.Proj("EPSG:3857").get_factors(10.0, 60.0)
    assert factors.areal_scale == pytest.approx(4.0, rel=1e-3)
    assert abs(ratio - factors.areal_scale) > 0.008
    # every cell against its own geodesic polygon
    for r, c in [(0, 0), (10, 30), (49, 59)]:
        xa, yb = x0 + c * px, y0 + (49 - r) * px
        assert a[r, c] == pytest.approx(_cell_truth("EPSG:3857", xa, yb, xa + px, yb + px), rel=1e-4)


def test_utm_correction_small_and_exact(tmp_path):
    # UTM 33N, 150 km east of the central meridian: scale ~1.0001, area correction < 0.1 %
    x0, y0 = 650_000.0, 5_500_000.0
    px = 30.0
    path = _write(tmp_path / "utm.tif", "EPSG:32633", from_origin(x0, y0, px, px), (40, 40))
    a = cell_areas(path)
    assert np.abs(a / (px * px) - 1).max() < 1e-3
    truth = _cell_truth("EPSG:32633", x0, y0 - px, x0 + px, y0)
    assert a[0, 0] == pytest.approx(truth, rel=2e-5)
    planar = cell_areas(path, geometry="planar")
    assert np.all(planar == px * px)
