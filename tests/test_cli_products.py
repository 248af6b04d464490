"""terrain slope | aspect | gradient | hillshade: the numbers and the GeoTIFFs they write.

Truths: tilted planes (every method is exact on them, the documented conventions
give the expected slope / aspect), numpy.gradient (the central method's definition),
meridian arcs from pyproj.Geod on a lat/lon DEM, and gdaldem run on the bundled
projected sample.
"""

from __future__ import annotations

import math

import numpy as np
import pyproj
import pytest
import rasterio
from affine import Affine

import conftest
from conftest import METHODS, UTM_SAMPLE, WGS84_SAMPLE, plane_aspect, plane_slope, write_tif

FTUS = 1200.0 / 3937.0  # metres per US survey foot (definition)


def invoke(*args):
    """Run a command; the product commands in ``--geometry planar``.

    The truths here are planes in the CRS's own coordinates and gdaldem, which are
    what --geometry planar computes; on the ground (the default) a projected grid's
    planes are distorted by the projection: see tests/test_spacing.py.
    """
    if set(map(str, args[:2])) & {"slope", "aspect", "gradient", "hillshade", "analyze"}:
        args = (*args, "--geometry", "planar")
    result = conftest.invoke(*args)
    assert result.exit_code == 0, result.output
    return result


def read(path, band=1):
    with rasterio.open(path) as ds:
        return ds.read(band)


def plane(path, p, q, *, shape=(30, 40), dx=10.0, dy=20.0, south_up=False, crs="EPSG:32616",
          dtype="float32", x0=500000.0, y0=4000000.0):
    """z = p * easting + q * northing (+ 100) on a grid of dx by dy map units."""
    rows, cols = shape
    if south_up:
        transform = Affine(dx, 0, x0, 0, dy, y0 - rows * dy)
    else:
        transform = Affine(dx, 0, x0, 0, -dy, y0)
    east = transform.c + (np.arange(cols) + 0.5) * transform.a
    north = transform.f + (np.arange(rows) + 0.5) * transform.e
    z = 100 + p * (east[None, :] - x0) + q * (north[:, None] - y0)
    return write_tif(path, z.astype(dtype), transform=transform, crs=crs)


P, Q = 0.3, -0.4  # rises east, falls north: slope atan(0.5), faces north-west


# --------------------------------------------------------------------------- planes


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("units", ["degrees", "percent", "radians", "ratio"])
def test_slope_of_a_plane(tmp_path, method, units):
    dem = plane(tmp_path / "dem.tif", P, Q)
    invoke("slope", dem, "-o", tmp_path / "s.tif", "--method", method, "--units", units)
    s = read(tmp_path / "s.tif")
    np.testing.assert_allclose(s, plane_slope(P, Q, units), rtol=2e-6)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("south_up", [False, True])
@pytest.mark.parametrize("p, q", [(P, Q), (0.0, 0.5), (-0.2, 0.0), (0.1, 0.1)])
def test_aspect_and_gradient_of_a_plane(tmp_path, method, south_up, p, q):
    dem = plane(tmp_path / "dem.tif", p, q, south_up=south_up)
    invoke("aspect", dem, "-o", tmp_path / "a.tif", "--method", method)
    invoke("gradient", dem, "-o", tmp_path / "g.tif", "--method", method)
    a = read(tmp_path / "a.tif")
    diff = (a - plane_aspect(p, q) + 180) % 360 - 180
    assert np.abs(diff).max() < 1e-4
    np.testing.assert_allclose(read(tmp_path / "g.tif", 1), p, atol=1e-5)
    np.testing.assert_allclose(read(tmp_path / "g.tif", 2), q, atol=1e-5)


@pytest.mark.parametrize("flat_value", [None, "400", "-9"])
def test_flat_cells_get_the_flat_value(tmp_path, flat_value):
    dem = write_tif(tmp_path / "flat.tif", np.full((10, 12), 250.0, np.float32))
    extra = [] if flat_value is None else ["--flat-value", flat_value]
    invoke("aspect", dem, "-o", tmp_path / "a.tif", *extra)
    assert (read(tmp_path / "a.tif") == float(flat_value or -1)).all()
    invoke("slope", dem, "-o", tmp_path / "s.tif")
    assert (read(tmp_path / "s.tif") == 0).all()


@pytest.mark.parametrize("command", ["slope", "gradient"])
def test_z_factor_scales_the_gradient(tmp_path, command):
    dem = plane(tmp_path / "dem.tif", P, Q)  # elevations in feet
    extra = ["--units", "ratio"] if command == "slope" else []
    invoke(command, dem, "-o", tmp_path / "o.tif", "--z-factor", "0.3048", *extra)
    if command == "slope":
        np.testing.assert_allclose(read(tmp_path / "o.tif"), 0.3048 * math.hypot(P, Q), rtol=2e-6)
    else:
        np.testing.assert_allclose(read(tmp_path / "o.tif", 1), 0.3048 * P, rtol=1e-5)
        np.testing.assert_allclose(read(tmp_path / "o.tif", 2), 0.3048 * Q, rtol=1e-5)


def test_feet_crs_is_converted_to_metres(tmp_path):
    # Coordinates in US survey feet, elevations in metres: z rises P metres per foot east.
    dem = plane(tmp_path / "dem.tif", P, Q, crs=None)
    invoke("gradient", dem, "-o", tmp_path / "g.tif", "--src-crs", "EPSG:2229")
    np.testing.assert_allclose(read(tmp_path / "g.tif", 1), P / FTUS, rtol=1e-5)
    np.testing.assert_allclose(read(tmp_path / "g.tif", 2), Q / FTUS, rtol=1e-5)


@pytest.mark.parametrize("edge_order", [1, 2])
def test_central_gradient_is_numpy_gradient(tmp_path, edge_order):
    rng = np.random.default_rng(3)
    z = rng.random((25, 31)).cumsum(axis=1).cumsum(axis=0).astype(np.float64) * 3
    dem = write_tif(tmp_path / "dem.tif", z, transform=Affine(10.0, 0, 500000, 0, -20.0, 4e6))
    invoke("gradient", dem, "-o", tmp_path / "g.tif", "--edge-order", str(edge_order))
    dzdx = np.gradient(z, 10.0, axis=1, edge_order=edge_order)
    dzdy = -np.gradient(z, 20.0, axis=0, edge_order=edge_order)  # rows run south
    np.testing.assert_allclose(read(tmp_path / "g.tif", 1), dzdx, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(read(tmp_path / "g.tif", 2), dzdy, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_geographic_dem_uses_meridian_arcs(tmp_path, method):
    """z = k * (meridian arc north of 45 N, from pyproj.Geod): slope atan(k), facing south."""
    k = 0.25
    rows, cols, res = 40, 30, 1 / 1200  # 3 arc-seconds
    transform = Affine(res, 0, 10.0, 0, -res, 45.0 + rows * res)
    lat = transform.f + (np.arange(rows) + 0.5) * transform.e
    geod = pyproj.Geod(ellps="WGS84")
    _, _, arc = geod.inv(np.full(rows, 10.0), np.full(rows, 45.0), np.full(rows, 10.0), lat)
    z = np.repeat((k * arc)[:, None], cols, axis=1)
    dem = write_tif(tmp_path / "dem.tif", z, transform=transform, crs="EPSG:4326")
    invoke("slope", dem, "-o", tmp_path / "s.tif", "--method", method)
    invoke("aspect", dem, "-o", tmp_path / "a.tif", "--method", method)
    invoke("gradient", dem, "-o", tmp_path / "g.tif", "--method", method)
    np.testing.assert_allclose(read(tmp_path / "s.tif"), math.degrees(math.atan(k)), atol=1e-4)
    np.testing.assert_allclose(read(tmp_path / "a.tif"), 180.0, atol=1e-4)
    np.testing.assert_allclose(read(tmp_path / "g.tif", 2), k, rtol=1e-6)
    assert np.abs(read(tmp_path / "g.tif", 1)).max() < 1e-9


def test_band_option_selects_the_elevation_band(tmp_path):
    rows, cols = 10, 12
    junk = np.zeros((rows, cols), np.float32)
    good = read(plane(tmp_path / "p.tif", P, Q, shape=(rows, cols)))
    path = tmp_path / "two.tif"
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=2,
                       dtype="float32", crs="EPSG:32616",
                       transform=Affine(10.0, 0, 500000.0, 0, -20.0, 4e6)) as ds:
        ds.write(junk, 1)
        ds.write(good, 2)
    invoke("slope", path, "-o", tmp_path / "s.tif", "--band", "2")
    np.testing.assert_allclose(read(tmp_path / "s.tif"), plane_slope(P, Q, "degrees"), rtol=2e-6)


def test_results_do_not_depend_on_tiles_or_threads(tmp_path):
    rng = np.random.default_rng(5)
    z = (rng.random((70, 90)) * 50).astype(np.float32)
    z[20:30, 40:45] = -9999
    z[rng.random(z.shape) < 0.05] = -9999
    dem = write_tif(tmp_path / "dem.tif", z, nodata=-9999)
    invoke("gradient", dem, "-o", tmp_path / "a.tif")
    invoke("gradient", dem, "-o", tmp_path / "b.tif", "--tile-size", "16", "--threads", "1")
    for band in (1, 2):
        assert np.array_equal(read(tmp_path / "a.tif", band), read(tmp_path / "b.tif", band))
        assert (read(tmp_path / "a.tif", band)[z == -9999] == -9999).all()


# --------------------------------------------------------------------------- against gdaldem


def horn64(z, spacing):
    """Horn's gradient in float64, interior cells (NaN where the 3x3 window has a hole)."""
    a, b, c = z[:-2, :-2], z[:-2, 1:-1], z[:-2, 2:]
    d, f = z[1:-1, :-2], z[1:-1, 2:]
    g, h, i = z[2:, :-2], z[2:, 1:-1], z[2:, 2:]
    dzdx = np.full(z.shape, np.nan)
    dzdy = np.full(z.shape, np.nan)
    dzdx[1:-1, 1:-1] = ((c + 2 * f + i) - (a + 2 * d + g)) / (8 * spacing)
    dzdy[1:-1, 1:-1] = ((a + 2 * b + c) - (g + 2 * h + i)) / (8 * spacing)
    return dzdx, dzdy


def angle_diff(a, b):
    return (a - b + 180) % 360 - 180


@pytest.fixture(scope="module")
def horn_sample(tmp_path_factory):
    """The CLI's Horn slope and aspect of the projected sample, and float64 Horn in numpy."""
    out = tmp_path_factory.mktemp("horn")
    invoke("-q", "slope", UTM_SAMPLE, "-o", out / "slope.tif", "--method", "horn")
    invoke("-q", "aspect", UTM_SAMPLE, "-o", out / "aspect.tif", "--method", "horn")
    with rasterio.open(UTM_SAMPLE) as ds:
        z = ds.read(1).astype(np.float64)
        z[z == ds.nodata] = np.nan
        spacing = ds.res[0]
    p, q = horn64(z, spacing)
    return {"slope": read(out / "slope.tif").astype(np.float64),
            "aspect": read(out / "aspect.tif").astype(np.float64),
            "slope64": np.degrees(np.arctan(np.hypot(p, q))),
            "aspect64": np.degrees(np.arctan2(-p, -q)) % 360}


def test_horn_slope_equals_gdaldem(horn_sample, gdaldem):
    ref, nodata = gdaldem("slope", UTM_SAMPLE)
    has = ref != nodata
    assert has.mean() > 0.9
    assert np.abs(horn_sample["slope"][has] - ref[has]).max() <= 0.001


def test_horn_aspect_equals_gdaldem(horn_sample, gdaldem):
    """To 0.001 deg, plus the error of gdaldem's single-precision gradient (about 1e-6 m/m
    with these elevations), which turns an azimuth by 1e-6 / |gradient| radians."""
    ref, nodata = gdaldem("aspect", UTM_SAMPLE)
    slope, _ = gdaldem("slope", UTM_SAMPLE)
    has = (ref != nodata) & (slope > 0)
    assert has.mean() > 0.9
    tol = 0.001 + np.degrees(4e-6 / np.tan(np.radians(slope[has])))
    assert (np.abs(angle_diff(horn_sample["aspect"][has], ref[has])) <= tol).all()


@pytest.mark.parametrize("product", ["slope", "aspect"])
def test_horn_equals_float64_horn_everywhere_inside(horn_sample, product):
    mine, truth = horn_sample[product], horn_sample[product + "64"]
    has = ~np.isnan(truth)
    if product == "aspect":
        has &= horn_sample["slope64"] > 0
    assert has.mean() > 0.9
    assert np.abs(angle_diff(mine[has], truth[has])).max() <= 0.001


@pytest.mark.parametrize("ours, theirs", [
    ([], []),
    (["--azimuth", "90", "--altitude", "30"], ["-az", "90", "-alt", "30"]),
    (["--multidirectional"], ["-multidirectional"]),
])
def test_hillshade_equals_gdaldem(tmp_path, gdaldem, ours, theirs):
    """Within one grey level (both round a float to a byte); horn is the default method."""
    invoke("-q", "hillshade", UTM_SAMPLE, "-o", tmp_path / "h.tif", *ours)
    mine = read(tmp_path / "h.tif").astype(int)
    ref, nodata = gdaldem("hillshade", UTM_SAMPLE, *theirs)
    has = ref != nodata
    assert has.mean() > 0.9
    assert np.abs(mine[has] - ref[has].astype(int)).max() <= 1


def test_percent_slope_equals_gdaldem(tmp_path, gdaldem):
    invoke("-q", "slope", UTM_SAMPLE, "-o", tmp_path / "p.tif", "--method", "horn",
           "--units", "percent")
    ref, nodata = gdaldem("slope", UTM_SAMPLE, "-p")
    has = ref != nodata
    mine = read(tmp_path / "p.tif")
    # 0.001 degree expressed in percent at each cell's slope.
    tol = 100 * np.radians(0.001) / np.cos(np.arctan(ref[has] / 100)) ** 2
    assert (np.abs(mine[has] - ref[has]) <= tol).all()


# --------------------------------------------------------------------------- the GeoTIFFs


@pytest.fixture(scope="module")
def sample_products(tmp_path_factory):
    """Each command's output on the projected sample (-9999 holes) with default options."""
    out = tmp_path_factory.mktemp("products")
    paths = {}
    for command in ("slope", "aspect", "gradient", "hillshade"):
        paths[command] = out / f"{command}.tif"
        invoke("-q", command, UTM_SAMPLE, "-o", paths[command])
    return paths


FORMAT = {
    # command: dtype, nodata, band descriptions, units, method tag
    "slope": ("float32", -9999, ("slope",), ("degrees",), "central"),
    "aspect": ("float32", -9999, ("aspect",), ("degrees",), "central"),
    "gradient": ("float32", -9999, ("dzdx", "dzdy"), ("metres per metre",) * 2, "central"),
    "hillshade": ("uint8", 0, ("hillshade",), ("brightness 1-255",), "horn"),
}


@pytest.mark.parametrize("command", FORMAT)
def test_geotiff_layout_and_georeference(sample_products, command):
    dtype, nodata, descriptions, units, method = FORMAT[command]
    with rasterio.open(UTM_SAMPLE) as src, rasterio.open(sample_products[command]) as ds:
        assert ds.crs == src.crs
        assert ds.transform == src.transform
        assert (ds.width, ds.height) == (src.width, src.height)
        assert ds.dtypes == (dtype,) * len(descriptions)
        assert ds.nodata == nodata
        assert ds.descriptions == descriptions
        assert ds.units == units
        # 1033 x 1088 in 3 x 3 blocks, as with 512, of 368 = 16 x ceil(1088 / 48).
        assert ds.block_shapes == [(368, 368)] * len(descriptions)
        assert ds.profile["tiled"]
        assert ds.compression.name == "zstd"
        # Horizontal differencing for floats too: chosen by measurement (issue 11).
        assert ds.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "2"
        assert ds.tags()["method"] == method
        holes = src.read(1) == src.nodata
        for band in range(1, ds.count + 1):
            data = ds.read(band)
            assert (data[holes] == nodata).all()
            assert (data[~holes] != nodata).mean() > 0.999


@pytest.mark.parametrize("co, compression", [
    ([], "zstd"),
    (["--co", "COMPRESS=NONE"], None),
    (["--co", "COMPRESS=DEFLATE"], "deflate"),
    (["--co", "compress=lzw"], "lzw"),
])
def test_creation_options_are_honoured(tmp_path, co, compression):
    dem = plane(tmp_path / "dem.tif", P, Q)
    invoke("slope", dem, "-o", tmp_path / "s.tif", *co)
    with rasterio.open(tmp_path / "s.tif") as ds:
        assert (ds.compression.name if ds.compression else None) == compression
        np.testing.assert_allclose(ds.read(1), plane_slope(P, Q, "degrees"), rtol=2e-6)


def test_block_size_creation_options(tmp_path):
    dem = plane(tmp_path / "dem.tif", P, Q)
    invoke("aspect", dem, "-o", tmp_path / "a.tif", "--co", "BLOCKXSIZE=256",
           "--co", "BLOCKYSIZE=256")
    with rasterio.open(tmp_path / "a.tif") as ds:
        assert ds.block_shapes == [(256, 256)]


@pytest.mark.parametrize("cog", [False, True])
def test_gradient_bands_stored_apart_and_cog_options_without_warnings(cog, tmp_path):
    """The gradient's two bands are stored apart (INTERLEAVE=BAND, PlanarConfiguration 2);
    a COG interleaves by pixel, and is given the COG driver's own option names (LEVEL, not
    ZSTD_LEVEL; no INTERLEAVE): GDAL warns of no unsupported option. The values are the
    same either way."""
    out = tmp_path / "g.tif"
    result = invoke("gradient", UTM_SAMPLE, "-o", out, *(["--cog"] if cog else []))
    assert "warning" not in result.output, result.output
    with rasterio.open(out) as ds:
        assert ds.interleaving.name.lower() == ("pixel" if cog else "band")
        assert ds.tags(ns="IMAGE_STRUCTURE")["COMPRESSION"] == "ZSTD"
        bands = ds.read()
    other = tmp_path / "other.tif"
    invoke("gradient", UTM_SAMPLE, "-o", other, *([] if cog else ["--cog"]))
    np.testing.assert_array_equal(read(other, 1), bands[0])
    np.testing.assert_array_equal(read(other, 2), bands[1])


@pytest.mark.parametrize("codec", [("ZSTD", ["--co", "ZSTD_LEVEL=3"]),
                                   ("DEFLATE", ["--co", "COMPRESS=DEFLATE", "--co", "ZLEVEL=2"]),
                                   ("DEFLATE", ["--co", "COMPRESS=DEFLATE"])])
def test_cog_codec_levels_without_warnings(codec, tmp_path):
    """A COG's codec level given with GTiff's names (ZSTD_LEVEL, ZLEVEL) reaches the COG
    driver as LEVEL, and only the level of the codec used: GDAL warns of nothing."""
    name, options = codec
    out = tmp_path / "s.tif"
    result = invoke("slope", UTM_SAMPLE, "-o", out, "--cog", *options)
    assert "warning" not in result.output, result.output
    with rasterio.open(out) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE")["COMPRESSION"] == name
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"


@pytest.fixture(scope="module")
def cog_products(tmp_path_factory):
    out = tmp_path_factory.mktemp("cog")
    paths = {}
    for command in ("slope", "aspect"):
        paths[command] = out / f"{command}.tif"
        invoke("-q", command, UTM_SAMPLE, "-o", paths[command], "--cog")
    return paths


@pytest.mark.parametrize("command", ["slope", "aspect"])
def test_cog_layout(cog_products, command):
    path = cog_products[command]
    head = path.read_bytes()[:1024]
    assert b"LAYOUT=IFDS_BEFORE_DATA" in head  # GDAL's COG ghost area
    with rasterio.open(path) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert ds.overviews(1) == [2, 4]  # 1033 x 1088 down to one 512 block
        assert ds.block_shapes == [(512, 512)]
        assert ds.compression.name == "zstd"
        with rasterio.open(UTM_SAMPLE) as src:
            assert ds.transform == src.transform and ds.crs == src.crs


def _overview_values_in_base(path):
    """Fraction of the first overview's valid values that occur in the full-resolution band."""
    with rasterio.open(path) as ds:
        base = ds.read(1)
    with rasterio.open(path, overview_level=0) as ds:
        ovr = ds.read(1)
    valid = ovr[ovr != -9999]
    return np.isin(valid, base).mean()


def test_cog_overviews_nearest_for_aspect_average_for_slope(cog_products):
    # Nearest picks existing pixels; an average of angles would invent (wrong) ones.
    assert _overview_values_in_base(cog_products["aspect"]) == 1.0
    assert _overview_values_in_base(cog_products["slope"]) < 0.5


def test_scheduler_option_computes_the_same_file(tmp_path):
    distributed = pytest.importorskip("distributed")
    invoke("-q", "gradient", WGS84_SAMPLE, "-o", tmp_path / "local.tif")
    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        invoke("-q", "gradient", WGS84_SAMPLE, "-o", tmp_path / "cluster.tif",
               "--scheduler", cluster.scheduler_address, "--tile-size", "128")
    for band in (1, 2):
        assert np.array_equal(read(tmp_path / "local.tif", band), read(tmp_path / "cluster.tif", band))
