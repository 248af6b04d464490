"""terrain.classify and `terrain classify`: classes in the scheme's unit, the class GeoTIFF
(read back by GDAL's gdalinfo), class areas, the class map."""

import json
import math
import os
import subprocess

import numpy as np
import pytest
import rasterio
import xarray as xr
from click.testing import CliRunner
from rasterio.transform import from_origin

from cli.main import cli
from terrain import TerrainError
from terrain.engine import Options, RunOptions
from terrain.classify import SCHEMES, classify, classify_file, resolve_classes
from terrain.writer import WriteOptions

PX = 10.0


def _slope(values, units):
    return xr.DataArray(np.array([values], float), dims=("y", "x"), name="slope",
                        attrs={"units": units})


def test_breaks_in_the_schemes_unit_half_open_last_closed():
    # planning: 0-5-15-30-inf %; percent slopes right on the breaks go up a class
    s = _slope([0, 4.999, 5, 14.999, 15, 30, 1000, np.nan], "percent")
    assert classify(s, scheme="planning").values[0].tolist() == [1, 1, 2, 2, 3, 4, 4, 0]
    # the same slopes given in degrees classify the same (breaks stay percent)
    deg = np.degrees(np.arctan(np.array([0, 4.9, 5.1, 14.9, 15.1, 30.1, 1000]) / 100))
    assert classify(_slope(deg, "degrees"), scheme="planning").values[0].tolist() == \
        [1, 1, 2, 2, 3, 4, 4]
    # nz-luc in degrees, last class [35, 90] closed
    s = _slope([0, 2.99, 3, 34.99, 35, 89.9, 90], "degrees")
    assert classify(s, scheme="nz-luc").values[0].tolist() == [1, 1, 2, 6, 7, 7, 7]
    # usda ends at 100 %: steeper cells get the appended open class 8, not nodata
    c = classify(_slope([99.9, 100, 250], "percent"), scheme="usda")
    assert c.values[0].tolist() == [7, 8, 8]
    assert c.attrs["breaks"][-2:] == [100.0, math.inf]
    # radians and ratio slopes are converted too
    assert classify(_slope([math.atan(0.1)], "radians"), scheme="planning").values[0, 0] == 2
    assert classify(_slope([0.31], "ratio"), scheme="planning").values[0, 0] == 4


def test_scheme_table():
    assert resolve_classes(scheme="usda").breaks == (0, 2, 6, 12, 18, 25, 35, 100, math.inf)
    assert resolve_classes(scheme="fao").breaks == SCHEMES["fao"][0]
    assert len(resolve_classes(scheme="soter")) == 7
    assert resolve_classes(scheme="nz-luc").units == "degrees"
    assert len(resolve_classes(scheme="nz-luc")) == 7  # ends at 90 degrees: nothing appended


@pytest.mark.parametrize("bad", [[5, 10], [0, 10, 10], [0, 100], [0, "x"], [0]])
def test_bad_breaks(bad):
    with pytest.raises(TerrainError):
        resolve_classes(breaks=bad, units="degrees")


def test_classify_dem_uses_ground_gradient():
    # A plane of 10 % on a 10 m grid (no CRS: coordinates in metres)
    y, x = np.arange(20)[::-1] * PX, np.arange(30) * PX
    z = 0.10 * x[None, :] + 0 * y[:, None]
    dem = xr.DataArray(z, dims=("y", "x"), coords={"y": y, "x": x}, name="elevation")
    codes = classify(dem, breaks=[0, 5, 9.99, 10.01, 20], units="percent")
    assert np.all(codes.values == 3)


def _plane_dem(path, slopes=(0.03, 0.20), shape=(60, 80), nodata_block=True):
    """Two planes along x: tan(slope) slopes[0] on the west half, slopes[1] east; UTM 33N,
    10 m pixels, a nodata hole."""
    rows, cols = shape
    x = np.arange(cols) * PX
    half = cols // 2
    z = np.where(x < half * PX, slopes[0] * x, slopes[0] * half * PX + slopes[1] * (x - half * PX))
    z = np.broadcast_to(z, shape).astype(np.float32).copy()
    if nodata_block:
        z[5:9, 10:14] = -9999
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=1,
                       dtype="float32", crs="EPSG:32633", nodata=-9999,
                       transform=from_origin(500_000, 5_000_000, PX, PX)) as ds:
        ds.write(z, 1)
    return str(path)


def _numpy_codes(path, inner_breaks_pct):
    with rasterio.open(path) as ds:
        z = ds.read(1, masked=True).filled(np.nan).astype(np.float64)
    gy, gx = np.gradient(z, PX)
    pct = 100 * np.hypot(gx, gy)
    codes = np.searchsorted(inner_breaks_pct, pct, side="right") + 1
    codes[~np.isfinite(pct)] = 0
    return codes


def test_classify_file_matches_numpy_and_gdal_reads_it(tmp_path):
    dem = _plane_dem(tmp_path / "dem.tif")
    out = tmp_path / "classes.tif"
    res = classify_file(dem, out, scheme="planning",
                        opts=Options(geometry="planar"), run=RunOptions(tile_size=16))
    with rasterio.open(out) as ds:
        codes = ds.read(1)
        assert ds.dtypes[0] == "uint8" and ds.nodata == 0
        assert ds.tags()["breaks"] == "0,5,15,30,inf" and ds.tags()["break_units"] == "percent"
        with rasterio.open(dem) as src:
            assert ds.crs == src.crs and ds.transform == src.transform
    # np.gradient's interior differences; terrain's one-sided ones next to the hole
    # (numpy gives NaN there) and at the edges are exact on a plane: compare where numpy has a value
    truth = _numpy_codes(dem, [5, 15, 30])
    has = truth > 0
    assert np.array_equal(codes[has], truth[has])
    assert np.all(codes[5:9, 10:14] == 0)
    assert set(np.unique(codes[codes > 0])) <= {1, 2, 3}
    # class areas: cells x 100 m2 (planar)
    counts = np.bincount(codes.ravel(), minlength=5)
    assert res["area_m2"] == pytest.approx((counts[1:] * PX * PX).tolist())
    # same codes whatever the window size
    out2 = tmp_path / "classes2.tif"
    classify_file(dem, out2, scheme="planning",
                  opts=Options(geometry="planar"), run=RunOptions(tile_size=1024))
    with rasterio.open(out2) as ds:
        assert np.array_equal(ds.read(1), codes)
    # GDAL reads back the colour table, category names and attribute table
    info = json.loads(subprocess.run(["gdalinfo", "-json", str(out)], capture_output=True,
                                     text=True, check=True).stdout)
    band = info["bands"][0]
    assert band["colorInterpretation"] == "Palette"
    assert band["categories"] == ["nodata", "0-5 %", "5-15 %", "15-30 %", ">= 30 %"]
    assert len(band["colorTable"]["entries"]) >= 5
    rat = info["rat"]["row"]
    assert [r["f"][0] for r in rat] == [1, 2, 3, 4] and rat[3]["f"][1] == ">= 30 %"


def test_cli_classify_and_plot(tmp_path):
    dem = _plane_dem(tmp_path / "dem.tif")
    out, png = tmp_path / "c.tif", tmp_path / "c.png"
    r = CliRunner().invoke(cli, ["classify", dem, "-o", str(out), "--breaks", "0,2,10",
                                 "--units", "percent", "--plot", str(png)])
    assert r.exit_code == 0, r.output
    with rasterio.open(out) as ds:
        codes = ds.read(1)
    # 3 % west half: class 2 (2-10 %); 20 % east half: class 3 (>= 10 %)
    assert np.all(codes[:, 2:38][codes[:, 2:38] > 0] == 2)
    assert np.all(codes[:, 42:] == 3)
    import matplotlib.image as mpimg

    img = mpimg.imread(str(png))
    assert img.std() > 0.05
    # vector formats by extension, with the legend's labels and area shares as text
    svg = tmp_path / "c.svg"
    r = CliRunner().invoke(cli, ["classify", dem, "-o", str(tmp_path / "c3.tif"), "--breaks",
                                 "0,2,10", "--units", "percent", "--plot", str(svg)])
    assert r.exit_code == 0, r.output
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    # both a scheme and breaks: usage error, nothing written
    r = CliRunner().invoke(cli, ["classify", dem, "-o", str(tmp_path / "x.tif"),
                                 "--scheme", "usda", "--breaks", "0,5"])
    assert r.exit_code == 2 and not (tmp_path / "x.tif").exists()
    # an existing output without --overwrite: one line, exit 1, file untouched
    before = os.path.getmtime(out)
    r = CliRunner().invoke(cli, ["classify", dem, "-o", str(out)])
    assert r.exit_code == 1 and "already exists" in r.output
    assert os.path.getmtime(out) == before
    leftovers = [p for p in os.listdir(tmp_path) if p.startswith(".")]
    assert leftovers == []


def test_cli_scheme_names_mirror_the_library():
    from cli.classify import SCHEME_NAMES

    assert tuple(SCHEME_NAMES) == tuple(SCHEMES)


def test_overwrite_publishes_the_new_categories_with_the_file(tmp_path):
    """--overwrite replaces the class GeoTIFF and its .aux.xml together: GDAL reads the new
    scheme's category names, never the old file's (issue 9's sidecar rule)."""
    dem = _plane_dem(tmp_path / "dem.tif")
    out = tmp_path / "classes.tif"
    classify_file(dem, out, scheme="planning", opts=Options(geometry="planar"))
    with pytest.raises(TerrainError, match="already exists"):
        classify_file(dem, out, scheme="fao", opts=Options(geometry="planar"))
    classify_file(dem, out, scheme="fao", opts=Options(geometry="planar"),
                  write=WriteOptions(overwrite=True))
    info = json.loads(subprocess.run(["gdalinfo", "-json", str(out)], capture_output=True,
                                     text=True, check=True).stdout)
    labels = resolve_classes(None, "fao", "degrees").labels()
    assert info["bands"][0]["categories"] == ["nodata", *labels]
    assert sorted(os.listdir(tmp_path)) == ["classes.tif", "classes.tif.aux.xml", "dem.tif"]


def test_classify_file_and_stats_take_an_opened_dem_and_typed_options(tmp_path, monkeypatch):
    """A DEM described once (RasterInfo) is passed down, not opened again; write=WriteOptions
    (cog=True) gives a cloud-optimized class file with the same codes (nearest overviews)."""
    import terrain.raster
    from terrain.raster import ReadOptions, raster_info
    from terrain.zonal import slope_stats

    dem = _plane_dem(tmp_path / "dem.tif")
    opts = Options(geometry="planar")
    by_path = classify_file(dem, tmp_path / "a.tif", scheme="planning", opts=opts,
                            read=ReadOptions(band=1), run=RunOptions(tile_size=16, threads=2))
    stats_by_path = slope_stats(dem, opts=opts)
    info = raster_info(dem)

    def no_reopen(*args, **kwargs):
        raise AssertionError(f"the DEM was opened again: {args}")

    monkeypatch.setattr(terrain.raster, "raster_info", no_reopen)
    by_info = classify_file(info, tmp_path / "b.tif", scheme="planning", opts=opts,
                            write=WriteOptions(cog=True))
    stats_by_info = slope_stats(info, opts=opts)
    assert by_info["area_m2"] == by_path["area_m2"]
    assert stats_by_info.equals(stats_by_path)
    with rasterio.open(tmp_path / "a.tif") as a, rasterio.open(tmp_path / "b.tif") as b:
        assert np.array_equal(a.read(1), b.read(1))
        assert b.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert a.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") != "COG"
