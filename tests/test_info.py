"""terrain.info.dem_info and `terrain info`, against independent truths: the file read
whole with rasterio and masked with numpy, and geodesic distances from pyproj.Geod."""

from __future__ import annotations

import json

import numpy as np
import pyproj
import pytest
import rasterio
from affine import Affine

import terrain.info
from conftest import UTM_SAMPLE, WGS84_SAMPLE, invoke, write_tif
from terrain.info import dem_info

FTUS = 1200.0 / 3937.0  # metres per US survey foot (definition)


def fields(text) -> dict:
    """`terrain info` lines as {key: value} (the last value of a repeated key)."""
    return dict((k, v.strip()) for k, v in (line.split(":", 1) for line in text.splitlines()))


def geodesic_pixel(path, rows=None, cols=None):
    """((dx min, max), (dy min, max)): geodesic distances in metres between the centres of
    neighbouring pixels (east and north neighbours), at the given pixel rows and columns
    (default: every pixel), by pyproj on the CRS's own ellipsoid; ``path`` may be
    (transform, shape, crs)."""
    if isinstance(path, tuple):
        transform, shape, crs = path
    else:
        with rasterio.open(path) as ds:
            transform, shape, crs = ds.transform, ds.shape, ds.crs
    crs = pyproj.CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    to_geo = pyproj.Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True)
    geod = pyproj.Geod(a=crs.ellipsoid.semi_major_metre, b=crs.ellipsoid.semi_minor_metre)
    rows = np.arange(shape[0]) if rows is None else np.asarray(rows)
    cols = np.arange(shape[1]) if cols is None else np.asarray(cols)
    c, r = np.meshgrid(cols + 0.5, rows + 0.5)

    def lonlat(cc, rr):
        x, y = transform @ (cc, rr)
        return to_geo.transform(x, y)

    lon, lat = lonlat(c, r)
    dx = geod.inv(lon, lat, *lonlat(c + 1, r))[2]
    dy = geod.inv(lon, lat, *lonlat(c, r + 1))[2]
    return (dx.min(), dx.max()), (dy.min(), dy.max())


def truth_range(path):
    with rasterio.open(path) as ds:
        z = ds.read(1).astype(np.float64)
        if ds.nodata is not None:
            z[z == ds.nodata] = np.nan
    z[~np.isfinite(z)] = np.nan
    valid = z[~np.isnan(z)]
    return valid.min(), valid.max(), valid.size


def test_projected_sample():
    info = dem_info(UTM_SAMPLE)
    assert (info.crs, info.kind, info.crs_units) == ("EPSG:32616", "projected", "metre")
    assert info.crs_name == "WGS 84 / UTM zone 16N"
    assert info.shape == (1088, 1033) and info.dtype == "float32" and info.nodata == -9999
    assert info.pixel_size == (30.0, 30.0) and info.north_up
    # On the ground: UTM's scale (0.9996 on the central meridian, more 3 degrees off it).
    edges = [0, 544, 1087], [0, 516, 1032]
    truth_dx, truth_dy = geodesic_pixel(UTM_SAMPLE, *edges)
    np.testing.assert_allclose(info.dx_m, truth_dx, atol=2e-4)
    np.testing.assert_allclose(info.dy_m, truth_dy, atol=2e-4)
    assert 29.98 < info.dx_m[0] < info.dx_m[1] < 30.0
    with rasterio.open(UTM_SAMPLE) as ds:
        assert info.bounds == tuple(ds.bounds)
    lo, hi, n = truth_range(UTM_SAMPLE)
    assert (info.elevation_min, info.elevation_max, info.valid_cells) == (lo, hi, n)
    assert n < info.cells  # the -9999 collar is excluded


def test_geographic_sample_ground_spacing_is_geodesic():
    info = dem_info(WGS84_SAMPLE)
    assert (info.crs, info.kind, info.crs_units) == ("EPSG:4326", "geographic", "degree")
    geod = pyproj.Geod(ellps="WGS84")
    with rasterio.open(WGS84_SAMPLE) as ds:
        t, rows = ds.transform, ds.shape[0]
    lat = t.f + (np.arange(rows) + 0.5) * t.e
    lon = t.c + 0.5 * t.a
    _, _, dx = geod.inv(np.full(rows, lon), lat, np.full(rows, lon + t.a), lat)
    _, _, dy = geod.inv(np.full(rows - 1, lon), lat[:-1], np.full(rows - 1, lon), lat[1:])
    np.testing.assert_allclose(info.dx_m, (dx.min(), dx.max()), atol=1e-3)
    np.testing.assert_allclose(info.dy_m, (dy.min(), dy.max()), atol=1e-3)
    assert info.dx_m[1] - info.dx_m[0] > 0.2  # dx shrinks northward over 0.29 degrees
    lo, hi, n = truth_range(WGS84_SAMPLE)
    assert (info.elevation_min, info.elevation_max, info.valid_cells) == (lo, hi, n)


def test_feet_crs_ground_spacing(tmp_path):
    dem = write_tif(tmp_path / "ft.tif", np.ones((5, 6), np.float32),
                    transform=Affine(100.0, 0, 6e6, 0, -50.0, 2e6), crs="EPSG:2229")
    info = dem_info(dem)
    assert info.crs_units == "US survey foot"
    truth_dx, truth_dy = geodesic_pixel(dem)
    np.testing.assert_allclose(info.dx_m, truth_dx, rtol=1e-7)
    np.testing.assert_allclose(info.dy_m, truth_dy, rtol=1e-7)
    # 100 and 50 US survey feet times the projection's scale there (< 1e-4 off).
    np.testing.assert_allclose(info.dx_m, (100 * FTUS,) * 2, rtol=1e-4)
    np.testing.assert_allclose(info.dy_m, (50 * FTUS,) * 2, rtol=1e-4)


def test_south_up_raster(tmp_path):
    dem = write_tif(tmp_path / "s.tif", np.ones((4, 5), np.float32),
                    transform=Affine(10.0, 0, 500000, 0, 20.0, 4e6))
    info = dem_info(dem)
    assert not info.north_up
    assert info.bounds == (500000, 4e6, 500050, 4e6 + 80)
    np.testing.assert_allclose(info.dy_m, geodesic_pixel(dem)[1], rtol=1e-7)
    np.testing.assert_allclose(info.dy_m, (20.0 / 0.9996,) * 2, rtol=1e-5)  # UTM's k0


def test_without_crs_is_described_with_a_note(tmp_path):
    dem = write_tif(tmp_path / "nocrs.tif", np.ones((4, 5), np.float32), crs=None)
    info = dem_info(dem)
    assert info.crs is None and info.dx_m is None
    assert any("--src-crs" in note for note in info.notes)
    info = dem_info(dem, src_crs="EPSG:32616")
    assert info.crs == "EPSG:32616" and info.notes == ()
    with rasterio.open(dem) as ds:
        truth = geodesic_pixel((ds.transform, ds.shape, "EPSG:32616"))[0]
    np.testing.assert_allclose(info.dx_m, truth, rtol=1e-7)


@pytest.mark.parametrize("dtype, nodata", [("float32", -9999.0), ("float64", None),
                                           ("int16", -32768), ("uint16", 0)])
def test_elevation_range_streams_and_excludes_nodata(tmp_path, monkeypatch, dtype, nodata):
    rng = np.random.default_rng(2)
    z = (rng.random((203, 57)) * 1000 + 10).astype(dtype)
    if nodata is not None:
        z[5, 7] = nodata
    if np.dtype(dtype).kind == "f":
        z[10, 3], z[11, 4], z[12, 5] = np.nan, np.inf, -np.inf
    z[200, 50] = 5  # the minimum, in the last window
    path = tmp_path / "z.tif"
    with rasterio.open(path, "w", driver="GTiff", width=57, height=203, count=1, dtype=dtype,
                       crs="EPSG:32616", transform=Affine(30, 0, 5e5, 0, -30, 4e6),
                       nodata=nodata, blockysize=3) as ds:  # striped: 3 rows per block
        ds.write(z, 1)
    monkeypatch.setattr(terrain.info, "_WINDOW_CELLS", 57 * 10)  # about 10 rows at a time
    reads = []
    with rasterio.open(path) as ds:
        read = ds.read

        def counting_read(*args, **kwargs):
            reads.append(kwargs["window"])
            return read(*args, **kwargs)

        ds.read = counting_read
        lo, hi, n = terrain.info.elevation_range(ds, 1, ds.nodata, str(path))
    assert len(reads) == 23 and all(w.height in (9, 5) for w in reads)  # whole 3-row blocks
    assert (lo, hi, n) == truth_range(path)
    assert lo == 5


def test_all_nodata(tmp_path):
    dem = write_tif(tmp_path / "void.tif", np.full((4, 5), -9999, np.float32), nodata=-9999)
    info = dem_info(dem)
    assert (info.elevation_min, info.elevation_max, info.valid_cells) == (None, None, 0)
    assert "elevation:    no valid cell (all nodata)" in info.lines()
    assert any("all nodata" in note for note in info.notes)


# --------------------------------------------------------------------------- CLI


def test_cli_info_text():
    result = invoke("info", WGS84_SAMPLE)
    assert result.exit_code == 0
    assert result.stderr == ""
    lo, hi, n = truth_range(WGS84_SAMPLE)
    text = result.stdout
    assert f"file:         {WGS84_SAMPLE}\n" in text
    assert "crs:          EPSG:4326 - WGS 84 (geographic, degree)\n" in text
    assert "size:         403 x 344 pixels (columns x rows), 138,632 cells\n" in text
    assert "= 3 x 3 arc-seconds, north-up\n" in text
    assert "ground pixel: dx 74.435 to 74.710 m, dy 92.473 to 92.477 m" in text
    assert "nodata:       -32768\n" in text
    assert f"elevation:    {lo:.0f} to {hi:.0f} ({n:,} valid cells, 100.0 %)\n" in text


def test_cli_info_projected_text():
    result = invoke("info", UTM_SAMPLE)
    assert result.exit_code == 0
    assert "(projected, metre)" in result.stdout
    assert "pixel size:   30 x 30 metre (x, y), north-up\n" in result.stdout
    lo, hi = dem_info(UTM_SAMPLE, stats=False).dx_m
    assert f"ground pixel: dx {lo:.3f} to {hi:.3f} m, dy " in result.stdout
    assert "(on the ellipsoid, the projection's scale removed)" in result.stdout


def test_cli_info_json_and_no_stats():
    result = invoke("info", UTM_SAMPLE, "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data == json.loads(json.dumps(dem_info(UTM_SAMPLE).as_dict()))
    assert data["crs"] == "EPSG:32616" and data["cells"] == 1088 * 1033
    result = invoke("info", UTM_SAMPLE, "--no-stats")
    assert result.exit_code == 0 and "elevation:" not in result.stdout


def test_cli_info_without_crs(tmp_path):
    dem = write_tif(tmp_path / "nocrs.tif", np.ones((4, 5), np.float32), crs=None)
    result = invoke("info", dem)
    assert result.exit_code == 0
    info = fields(result.stdout)
    assert info["crs"] == "none"
    assert "ground pixel" not in info
    assert "--src-crs" in info["note"]
    result = invoke("info", dem, "--src-crs", "EPSG:32616")
    info = fields(result.stdout)
    assert info["crs"].startswith("EPSG:32616 - ") and "note" not in info


def test_nan_nodata_in_json(tmp_path):
    z = np.ones((4, 5), np.float32)
    z[0, 0] = np.nan
    dem = write_tif(tmp_path / "nan.tif", z, nodata=np.nan)
    result = invoke("info", dem, "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert data["nodata"] == "nan" and data["valid_cells"] == 19


def test_elevation_semantics_reported(tmp_path):
    """Scale / offset, mask kind and the z factor with its source, in text and JSON; the
    elevation range is in scaled elevations, holes of the mask excluded."""
    rows, cols = np.indices((6, 7))
    raw = (3000 + 10 * cols + rows).astype(np.uint16)
    holes = np.zeros(raw.shape, bool)
    holes[2, 3] = True
    path = str(tmp_path / "dem.tif")
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(path, "w", driver="GTiff", width=7, height=6, count=1, dtype="uint16",
                           crs="EPSG:2229", transform=Affine(30.0, 0, 6e6, 0, -30.0, 2e6)) as ds:
            ds.write(np.where(holes, 65000, raw).astype(np.uint16), 1)
            ds.write_mask(~holes)
    with rasterio.open(path, "r+") as ds:
        ds.scales, ds.offsets = (0.5,), (-1000.0,)
        ds.units = ("US survey foot",)
    valid = raw[~holes].astype(np.float64) * 0.5 - 1000
    d = dem_info(path).as_dict()
    assert (d["scale"], d["offset"], d["mask"]) == (0.5, -1000.0, "per-dataset mask")
    assert d["z_factor"] == pytest.approx(FTUS, rel=1e-15)
    assert d["z_factor_source"] == "band unit 'US survey foot'"
    assert (d["elevation_min"], d["elevation_max"], d["valid_cells"]) == \
        (valid.min(), valid.max(), valid.size)
    result = invoke("info", path, "--json")
    assert json.loads(result.stdout)["z_factor_source"] == "band unit 'US survey foot'"
    f = fields(invoke("info", path).stdout)
    assert f["z factor"] == "0.30480061 m per elevation unit (US survey foot), from band unit " \
        "'US survey foot'"
    assert f["scale/offset"].startswith("elevation = raw x 0.5 + -1000")
    assert f["mask"].startswith("per-dataset mask")
    assert f["elevation"] == f"{valid.min():g} to {valid.max():g} (41 valid cells, 97.6 %)"
