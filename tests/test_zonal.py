"""terrain.zonal.slope_stats and `terrain stats`: per-zone class areas and slope statistics
against exact geometry (two planes, polygons clipped analytically), numpy, exactextract run
on terrain's slope raster, and pyproj.Geod."""

import json
import math

import fiona
import numpy as np
import pandas as pd
import pyproj
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.transform import from_origin

from cli.main import cli
from terrain.engine import Options, RunOptions
from terrain.zonal import slope_stats

PX = 10.0
X0, Y0 = 500_000.0, 5_000_000.0  # UTM 33N, on the central meridian (scale 0.9996)
ROWS, COLS, HALF = 100, 120, 60
TANS = (0.03, 0.115, 0.20)  # west plane, the seam column's central difference, east plane
HOLE = (slice(40, 50), slice(20, 30))  # nodata cells on the west plane


def _dem(path):
    x = np.arange(COLS) * PX
    z = np.where(x < HALF * PX, 0.03 * x, 0.03 * HALF * PX + 0.20 * (x - HALF * PX))
    z = np.broadcast_to(z, (ROWS, COLS)).astype(np.float64).copy()
    z[HOLE] = -9999
    with rasterio.open(path, "w", driver="GTiff", width=COLS, height=ROWS, count=1,
                       dtype="float64", crs="EPSG:32633", nodata=-9999,
                       transform=from_origin(X0, Y0, PX, PX)) as ds:
        ds.write(z, 1)
    return str(path)


# Polygons in the DEM's CRS with vertices off the pixel grid, spanning the planes' seam.
POLYS = {
    "tri": [(X0 + 123.4, Y0 - 77.7), (X0 + 1011.1, Y0 - 333.3), (X0 + 300.2, Y0 - 901.9)],
    "quad": [(X0 + 555.5, Y0 - 120.3), (X0 + 1150.7, Y0 - 250.9), (X0 + 1100.2, Y0 - 980.1),
             (X0 + 520.4, Y0 - 700.6)],
}


def _shoelace(p):
    x, y = np.array(p).T
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _clip(poly, axis, value, keep_greater):
    """Sutherland-Hodgman: the part of ``poly`` on one side of the line coord[axis] = value."""
    out = []
    n = len(poly)
    for i in range(n):
        p, q = poly[i], poly[(i + 1) % n]
        pin = (p[axis] >= value) if keep_greater else (p[axis] <= value)
        qin = (q[axis] >= value) if keep_greater else (q[axis] <= value)
        if pin:
            out.append(p)
        if pin != qin:
            f = (value - p[axis]) / (q[axis] - p[axis])
            out.append(tuple(p[k] + f * (q[k] - p[k]) for k in range(2)))
    return out


def _area_in(poly, x0, x1, y0=-math.inf, y1=math.inf):
    p = poly
    for axis, v, g in ((0, x0, True), (0, x1, False), (1, y0, True), (1, y1, False)):
        if math.isfinite(v):
            p = _clip(p, axis, v, g)
            if len(p) < 3:
                return 0.0
    return _shoelace(p)


def _truth(poly):
    """(area, hole area, west, seam, east) of a polygon: exact from geometry."""
    seam0, seam1 = X0 + HALF * PX, X0 + (HALF + 1) * PX
    hole = _area_in(poly, X0 + 20 * PX, X0 + 30 * PX, Y0 - 50 * PX, Y0 - 40 * PX)
    west = _area_in(poly, -math.inf, seam0) - hole
    seam = _area_in(poly, seam0, seam1)
    east = _area_in(poly, seam1, math.inf)
    return _shoelace(poly), hole, west, seam, east


def _zones_file(path, crs="EPSG:32633", polys=POLYS, transform=None):
    schema = {"geometry": "Polygon", "properties": {"name": "str"}}
    with fiona.open(path, "w", driver="GPKG", crs=crs, schema=schema) as dst:
        for name, ring in polys.items():
            ring = list(ring)
            if transform is not None:
                ring = [transform(*p) for p in ring]
            dst.write({"geometry": {"type": "Polygon", "coordinates": [ring + [ring[0]]]},
                       "properties": {"name": name}})
    return str(path)


def test_two_planes_exact_class_areas(tmp_path):
    dem = _dem(tmp_path / "dem.tif")
    zones = _zones_file(tmp_path / "zones.gpkg")
    df = slope_stats(dem, zones=zones, zone_field="name", scheme="planning",
                     opts=Options(geometry="planar"),
                     run=RunOptions(tile_size=32)).set_index("zone")
    deg = [math.degrees(math.atan(t)) for t in TANS]
    for name, poly in POLYS.items():
        area, hole, west, seam, east = _truth(poly)
        row = df.loc[name]
        assert row.area_ha == pytest.approx(area / 1e4, rel=1e-7)
        assert row.valid_pct == pytest.approx(100 * (1 - hole / area), rel=1e-7)
        # planning: 3 % -> class 1, the seam's 11.5 % -> class 2, 20 % -> class 3
        assert row.class1_ha == pytest.approx(west / 1e4, rel=1e-6)  # issue: 0.5 %
        assert row.class2_ha == pytest.approx(seam / 1e4, rel=1e-6)
        assert row.class3_ha == pytest.approx(east / 1e4, rel=1e-6)
        assert row.class4_ha == 0
        valid = west + seam + east
        assert row.class1_pct + row.class2_pct + row.class3_pct == pytest.approx(100)
        mean = (west * deg[0] + seam * deg[1] + east * deg[2]) / valid
        assert row.slope_mean == pytest.approx(mean, rel=1e-7)
        assert row.slope_min == pytest.approx(deg[0]) and row.slope_max == pytest.approx(deg[2])
        # the area-weighted median lies on the plane holding the middle of the area
        med = deg[0] if west > valid / 2 else deg[2] if east > valid / 2 else deg[1]
        assert abs(row.slope_median - med) <= 0.01
        std = math.sqrt((west * (deg[0] - mean) ** 2 + seam * (deg[1] - mean) ** 2
                         + east * (deg[2] - mean) ** 2) / valid)
        assert row.slope_std == pytest.approx(std, rel=1e-6)


def test_true_ground_areas_and_reprojected_zones(tmp_path):
    """Geodesic geometry: zone areas are the polygons' ellipsoidal areas (pyproj.Geod), and
    zones given in lon/lat are reprojected to the DEM's CRS."""
    dem = _dem(tmp_path / "dem.tif")
    to_ll = pyproj.Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    zones = _zones_file(tmp_path / "ll.gpkg", crs="EPSG:4326", transform=to_ll.transform)
    df = slope_stats(dem, zones=zones, zone_field="name", units="percent").set_index("zone")
    geod = pyproj.Geod(ellps="WGS84")
    for name, poly in POLYS.items():
        lon, lat = to_ll.transform(*np.array(poly).T)
        # the polygons are small: straight UTM edges and geodesics coincide to ~1e-9
        truth = abs(geod.polygon_area_perimeter(lon, lat)[0])
        assert df.loc[name].area_ha == pytest.approx(truth / 1e4, rel=1e-5)
        # UTM scale 0.9996 on the central meridian: ground areas 0.08 % above CRS areas
        assert df.loc[name].area_ha > _shoelace(poly) / 1e4 * 1.0007
        assert df.loc[name].slope_min == pytest.approx(3.0, rel=1e-3)  # percent
        assert df.loc[name].slope_max == pytest.approx(20.0, rel=1e-3)


def test_means_equal_exactextract_on_terrain_slope(tmp_path):
    """exactextract's own coverage-weighted mean over terrain's slope GeoTIFF gives the
    same per-zone means as slope_stats (planar: all cells have the same area)."""
    from exactextract import exact_extract

    src = "sample_data/jacksboro_utm16n.tif"
    slope = tmp_path / "slope.tif"
    r = CliRunner().invoke(cli, ["slope", src, "-o", str(slope), "--geometry", "planar"])
    assert r.exit_code == 0, r.output
    with rasterio.open(src) as ds:
        b = ds.bounds
    w, h = b.right - b.left, b.top - b.bottom
    polys = {
        "a": [(b.left + 0.1 * w, b.bottom + 0.2 * h), (b.left + 0.63 * w, b.bottom + 0.11 * h),
              (b.left + 0.5 * w, b.bottom + 0.7 * h)],
        "b": [(b.left + 0.4 * w, b.bottom + 0.5 * h), (b.left + 0.95 * w, b.bottom + 0.45 * h),
              (b.left + 0.9 * w, b.bottom + 0.93 * h), (b.left + 0.45 * w, b.bottom + 0.88 * h)],
    }
    zones = _zones_file(tmp_path / "z.gpkg", crs="EPSG:32616", polys=polys)
    df = slope_stats(src, zones=zones, zone_field="name",
                     opts=Options(geometry="planar")).set_index("zone")
    with rasterio.open(slope) as ds:
        feats = [{"type": "Feature", "id": i, "properties": {"name": n},
                  "geometry": {"type": "Polygon", "coordinates": [p + [p[0]]]}}
                 for i, (n, p) in enumerate(polys.items())]
        res = exact_extract(ds, feats, ["mean", "min", "max"], include_cols=["name"])
    for r in res:
        p = r["properties"]
        assert df.loc[p["name"]].slope_mean == pytest.approx(p["mean"], rel=1e-6)
        assert df.loc[p["name"]].slope_max == pytest.approx(p["max"], rel=1e-6)


def _weighted_quantile(v, w, q):
    o = np.argsort(v)
    v, w = v[o], w[o]
    c = np.cumsum(w)
    return v[np.searchsorted(c, q * c[-1])]


def test_zone_raster_matches_numpy(tmp_path):
    src = "sample_data/jacksboro_utm16n.tif"
    with rasterio.open(src) as ds:
        profile = ds.profile
        rows, cols = ds.shape
    zone = np.zeros((rows, cols), np.int16)
    zone[: rows // 2, : cols // 3] = 1
    zone[rows // 3:, cols // 2:] = 7
    profile.update(dtype="int16", nodata=0, count=1)
    zpath = tmp_path / "zones.tif"
    with rasterio.open(zpath, "w", **profile) as ds:
        ds.write(zone, 1)
    slope = tmp_path / "slope.tif"
    assert CliRunner().invoke(cli, ["slope", src, "-o", str(slope), "--geometry", "planar"]).exit_code == 0
    with rasterio.open(slope) as ds:
        s = ds.read(1, masked=True).astype(np.float64).filled(np.nan)
    df = slope_stats(src, zones=str(zpath), opts=Options(geometry="planar"),
                     run=RunOptions(tile_size=300))
    assert df.zone.tolist() == [1, 7]
    for code in (1, 7):
        row = df.set_index("zone").loc[code]
        v = s[(zone == code) & np.isfinite(s)]
        assert row.cells == np.count_nonzero(zone == code)
        assert row.area_ha == pytest.approx(np.count_nonzero(zone == code) * 900 / 1e4)
        assert row.slope_mean == pytest.approx(v.mean(), rel=1e-6)
        assert row.slope_std == pytest.approx(v.std(), rel=1e-5)
        for q, col in ((0.1, "slope_p10"), (0.5, "slope_median"), (0.9, "slope_p90")):
            assert abs(row[col] - _weighted_quantile(v, np.ones_like(v), q)) <= 0.011


def test_latlon_whole_dem_area_is_its_footprint():
    src = "sample_data/jacksboro_wgs84.tif"
    df = slope_stats(src)
    with rasterio.open(src) as ds:
        b = ds.bounds
    n = 2000
    t = np.linspace(0, 1, n, endpoint=False)
    lon = np.concatenate([b.left + (b.right - b.left) * t, np.full(n, b.right),
                          b.right - (b.right - b.left) * t, np.full(n, b.left)])
    lat = np.concatenate([np.full(n, b.bottom), b.bottom + (b.top - b.bottom) * t,
                          np.full(n, b.top), b.top - (b.top - b.bottom) * t])
    truth = abs(pyproj.Geod(ellps="WGS84").polygon_area_perimeter(lon, lat)[0])
    row = df.iloc[0]
    assert row.zone == "all"
    assert row.area_ha == pytest.approx(truth / 1e4, rel=1e-4)
    classes = [c for c in df.columns if c.endswith("_ha") and c.startswith("class")]
    assert row[classes].sum() == pytest.approx(row.area_ha * row.valid_pct / 100, rel=1e-7)


def test_cli_stats_csv_json_and_errors(tmp_path):
    dem = _dem(tmp_path / "dem.tif")
    zones = _zones_file(tmp_path / "zones.gpkg")
    csv, js = tmp_path / "t.csv", tmp_path / "t.json"
    r = CliRunner().invoke(cli, ["stats", dem, "--zones", zones, "--zone-field", "name",
                                 "--breaks", "0,10", "--units", "percent", "-o", str(csv)])
    assert r.exit_code == 0, r.output
    df = pd.read_csv(csv)
    assert df.zone.tolist() == ["tri", "quad"]
    assert list(df.columns[:11]) == ["zone", "cells", "area_ha", "valid_pct", "slope_mean",
                                     "slope_median", "slope_min", "slope_max", "slope_std",
                                     "slope_p10", "slope_p90"]
    assert "class2_pct" in df.columns and "class3_ha" not in df.columns
    r = CliRunner().invoke(cli, ["stats", dem, "--scheme", "fao", "-o", str(js)])
    assert r.exit_code == 0, r.output
    doc = json.loads(js.read_text())
    assert [c["label"] for c in doc["classes"]][:2] == ["0-2 %", "2-5 %"]
    assert doc["classes"][-1]["hi"] is None and doc["rows"][0]["zone"] == "all"
    r = CliRunner().invoke(cli, ["stats", dem, "--zones", zones, "--zone-field", "nope",
                                 "-o", str(tmp_path / "x.csv")])
    assert r.exit_code == 1 and "no field 'nope'" in r.output and "name" in r.output
    assert not (tmp_path / "x.csv").exists()
    r = CliRunner().invoke(cli, ["stats", dem, "-o", str(tmp_path / "x.txt")])
    assert r.exit_code == 2


def test_bad_zones(tmp_path):
    from terrain import TerrainError

    dem = _dem(tmp_path / "dem.tif")
    # a zone raster on another grid
    zpath = tmp_path / "z.tif"
    with rasterio.open(zpath, "w", driver="GTiff", width=10, height=10, count=1, dtype="uint8",
                       crs="EPSG:32633", transform=from_origin(X0, Y0, PX, PX)) as ds:
        ds.write(np.ones((10, 10), np.uint8), 1)
    with pytest.raises(TerrainError, match="on the DEM's grid"):
        slope_stats(dem, zones=str(zpath))
    # points are not zones
    pts = tmp_path / "pts.gpkg"
    with fiona.open(pts, "w", driver="GPKG", crs="EPSG:32633",
                    schema={"geometry": "Point", "properties": {}}) as dst:
        dst.write({"geometry": {"type": "Point", "coordinates": (X0 + 50, Y0 - 50)},
                   "properties": {}})
    with pytest.raises(TerrainError, match="not a polygon"):
        slope_stats(dem, zones=str(pts))
    # not a vector file at all
    junk = tmp_path / "junk.gpkg"
    junk.write_text("nonsense")
    r = CliRunner().invoke(cli, ["stats", dem, "--zones", str(junk), "-o", str(tmp_path / "t.csv")])
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "junk.gpkg" in r.output
    assert not (tmp_path / "t.csv").exists()
