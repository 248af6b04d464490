"""Opening and describing raster files: every failure is a TerrainError naming the file."""

from __future__ import annotations

import gzip
import math
import os
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from affine import Affine
from click.testing import CliRunner
from rasterio.errors import RasterioError

import terrain
import terrain.info
from cli.main import cli
from conftest import UTM_SAMPLE, WGS84_SAMPLE, write_tif
from terrain.raster import ReadOptions, parse_crs, raster_info
from terrain.stream import process_file
from terrain.engine import RunOptions


def test_bad_files_refused(bad_raster):
    kind, path, kwargs, word = bad_raster
    with pytest.raises(terrain.TerrainError) as err:
        raster_info(path, **kwargs)
    assert path in str(err.value)
    assert word in str(err.value).lower()
    assert not isinstance(err.value, RasterioError)
    assert "\n" not in str(err.value)


def test_missing_crs_given_by_caller(make_tif):
    path = make_tif(np.ones((3, 4), np.float32), crs=None)
    info = raster_info(path, src_crs="EPSG:32616")
    assert info.crs == rasterio.crs.CRS.from_epsg(32616)


@pytest.mark.parametrize("src_crs", ["EPSG:99999999", "not a crs"])
def test_bad_src_crs(src_crs, make_tif):
    path = make_tif(np.ones((3, 4), np.float32), crs=None)
    with pytest.raises(terrain.TerrainError):
        raster_info(path, src_crs=src_crs)
    with pytest.raises(terrain.TerrainError):
        parse_crs(src_crs)


def test_complex_band_refused(make_tif):
    path = make_tif(np.ones((3, 4), np.complex64))
    with pytest.raises(terrain.TerrainError, match="complex"):
        raster_info(path)


@pytest.mark.parametrize("path", [UTM_SAMPLE, WGS84_SAMPLE])
def test_describe_sample(path):
    info = raster_info(path)
    with rasterio.open(path) as ds:
        assert info.shape == (ds.height, ds.width)
        assert info.dtype == ds.dtypes[0]
        assert info.nodata == ds.nodata
        assert info.crs == ds.crs
        assert info.transform == ds.transform
        assert info.block_shape == tuple(ds.block_shapes[0])
    assert info.path == str(path)


# --- issue 8: read each file as its maker meant it ---------------------------------
#
# Every case runs the three read paths (open_dem in memory, open_dem with dask chunks,
# the streaming process_file) and the CLI on the same file, against an analytic plane.

# 10 m pixels, north-up, EPSG:32616, 180 km east of the central meridian, where the UTM scale
# factor is 1 (to 3e-7 over these grids): CRS metres are ground metres, so a plane drawn in
# CRS coordinates has the same slope measured on the ground (planar or geodesic geometry).
UTM = Affine(10.0, 0, 680070.0, 0, -10.0, 4000000.0)
FTUS = 1200.0 / 3937.0


def slope_everywhere(path, tmp_path, *, z_factor=None, src_crs=None, cli_args=()):
    """Slope in degrees of ``path`` by every runner: {runner: float64 array, NaN = nodata}."""
    kw = {} if z_factor is None else {"z_factor": z_factor}
    out = {
        "memory": terrain.slope(terrain.open_dem(path, src_crs=src_crs), **kw).values,
        "dask": terrain.slope(terrain.open_dem(path, src_crs=src_crs, chunks=5), **kw).values,
    }
    streamed = tmp_path / f"stream_{len(os.listdir(tmp_path))}.tif"
    opts = terrain.Options(**kw)
    process_file(path, {"slope": streamed}, opts, read=ReadOptions(src_crs=src_crs),
                 run=RunOptions(tile_size=7))
    cli_out = tmp_path / f"cli_{len(os.listdir(tmp_path))}.tif"
    args = ["slope", path, "-o", str(cli_out), "--tile-size", "16", *cli_args]
    if src_crs:
        args += ["--src-crs", src_crs]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    for name, f in (("stream", streamed), ("cli", cli_out)):
        with rasterio.open(f) as ds:
            out[name] = ds.read(1, masked=True).astype(np.float64).filled(np.nan)
            out[name + " tags"] = ds.tags()
    return {k: (np.asarray(v, np.float64) if "tags" not in k else v) for k, v in out.items()}


def plane_z(shape, p, q, z0=100.0):
    """z = z0 + p * East + q * North (metres) at the pixel centres of UTM, rows run south."""
    rows, cols = np.indices(shape)
    return z0 + p * 10.0 * cols - q * 10.0 * rows


def true_slope(p, q):
    return math.degrees(math.atan(math.hypot(p, q)))


@pytest.mark.parametrize("how, factor, source", [
    ("band unit 'US survey foot'", FTUS, "band unit 'US survey foot'"),
    ("band unit 'ft'", 0.3048, "band unit 'ft'"),
    ("band unit 'metre'", 1.0, "band unit 'metre'"),
    # GeoTIFF turns the vertical CRS's unit into the band unit (VerticalUnitsGeoKey); the
    # vertical CRS itself is the source when the band has no unit (the VRT below).
    ("EPSG:2229+6360", FTUS, "band unit 'US survey foot'"),
    ("EPSG:32616+5703", 1.0, "band unit 'metre'"),
])
def test_heights_in_the_files_vertical_unit(how, factor, source, tmp_path, gdaldem):
    """A 5.7 deg plane with heights stored in feet: the file's unit sets the z factor,
    reported by info, the output tags and the DataArray attrs; an explicit one wins."""
    p, q = 0.08, -0.06  # metres per metre: 5.71 deg
    shape = (14, 17)
    crs = "EPSG:32616"
    transform = UTM
    if how.startswith("EPSG:2229"):
        # Horizontal US survey feet too: 10 m pixels are 10 / FTUS ft, on the standard
        # parallel 34 deg 02' (scale factor 1, as for UTM above).
        crs = how
        transform = Affine(10.0 / FTUS, 0, 6561666.667 - 8 * 10.0 / FTUS, 0, -10.0 / FTUS,
                           1834512.814 + 7 * 10.0 / FTUS)
    elif how.startswith("EPSG:"):
        crs = how
    z = (plane_z(shape, p, q) / factor).astype(np.float64)  # heights in the file's unit
    path = write_tif(tmp_path / "dem.tif", z, transform=transform, crs=crs)
    if how.startswith("band unit"):
        with rasterio.open(path, "r+") as ds:
            ds.units = (how.split("'")[1],)
    info = raster_info(path)
    assert info.z_factor == pytest.approx(factor, rel=1e-15)
    assert info.z_factor_source == source
    truth = true_slope(p, q)
    if how.startswith("EPSG:"):
        # The same grid as a VRT whose band declares no unit: the compound CRS's vertical part.
        vrt = str(tmp_path / "dem.vrt")
        rasterio.shutil.copy(path, vrt, driver="VRT")
        text = open(vrt).read()
        open(vrt, "w").write(re.sub(r"\s*<UnitType>[^<]*</UnitType>", "", text))
        vinfo = raster_info(vrt)
        vertical = ("NAVD88 height (ftUS)', US survey foot" if factor != 1
                    else "NAVD88 height', metre")
        assert vinfo.z_factor_source == f"vertical CRS '{vertical}"
        assert vinfo.z_factor == pytest.approx(factor, rel=1e-15)
        np.testing.assert_allclose(terrain.slope(terrain.open_dem(vrt)).values, truth, atol=1e-5)
    res = slope_everywhere(path, tmp_path)
    for runner in ("memory", "dask", "stream", "cli"):
        np.testing.assert_allclose(res[runner], truth, atol=1e-5, err_msg=runner)
    for runner in ("stream", "cli"):
        assert float(res[runner + " tags"]["z_factor"]) == pytest.approx(factor, rel=1e-15)
        assert res[runner + " tags"]["z_factor_source"] == source
    dem = terrain.open_dem(path)
    assert dem.attrs["z_factor"] == pytest.approx(factor, rel=1e-15)
    s = terrain.slope(dem)
    assert s.attrs["z_factor"] == pytest.approx(factor) and s.attrs["z_factor_source"] == source
    # gdaldem on the same file: -s is horizontal units per vertical unit (1 for 2229+6360).
    horizontal = FTUS if how.startswith("EPSG:2229") else 1.0
    g, nd = gdaldem("slope", path, "-s", repr(horizontal / factor))
    inner = (slice(1, -1), slice(1, -1))
    np.testing.assert_allclose(g[inner], truth, atol=1e-4)
    # An explicit z factor wins (here: "the heights are metres after all").
    explicit = terrain.slope(dem, z_factor=1.0)
    assert explicit.attrs["z_factor_source"].startswith("explicit")
    np.testing.assert_allclose(explicit.values, true_slope(p / factor, q / factor), atol=1e-5)
    out = tmp_path / "explicit.tif"
    result = CliRunner().invoke(cli, ["slope", path, "-o", str(out), "--z-factor", "1"])
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as ds:
        np.testing.assert_allclose(ds.read(1), true_slope(p / factor, q / factor), atol=1e-4)
        assert ds.tags()["z_factor"] == "1.0"


def test_unit_names():
    from terrain.raster import unit_factor

    for name in ("m", "metre", "Meters", " METRE "):
        assert unit_factor(name) == 1.0
    for name in ("ft", "foot", "feet", "international foot"):
        assert unit_factor(name) == 0.3048
    for name in ("US survey foot", "ftUS", "us-ft", "US survey feet"):
        assert unit_factor(name) == FTUS
    assert unit_factor("mm") == 0.001 and unit_factor("cm") == 0.01
    assert unit_factor("elevation") is None and unit_factor("degrees") is None


def test_band_scale_and_offset(tmp_path):
    """uint16 counts with scale 0.1, offset -100: elevation = raw * 0.1 - 100. Nodata is
    compared in raw counts (raw 1000 is nodata; raw 11000 is a valid 1000 m)."""
    shape = (16, 20)
    rows, cols = np.indices(shape)
    raw = (10600 + 22 * cols + 5 * rows).astype(np.uint16)  # 2.2 m per 10 m east, 0.5 m south
    holes = np.zeros(shape, bool)
    holes[[3, 9, 12], [4, 15, 2]] = True
    raw[holes] = 1000
    assert (raw == 11000).any()  # a valid cell whose elevation is 1000 m, the nodata number
    path = write_tif(tmp_path / "dem.tif", raw, transform=UTM, nodata=1000)
    with rasterio.open(path, "r+") as ds:
        ds.scales, ds.offsets = (0.1,), (-100.0,)
    info = raster_info(path)
    assert (info.scale, info.offset, info.elevation_dtype) == (0.1, -100.0, "float32")
    dem = terrain.open_dem(path)
    assert dem.dtype == np.float32
    expected = (raw.astype(np.float64) * 0.1 - 100).astype(np.float32)
    np.testing.assert_array_equal(np.isnan(dem.values), holes)
    np.testing.assert_allclose(dem.values[~holes], expected[~holes], rtol=1e-6)
    res = slope_everywhere(path, tmp_path)
    truth = true_slope(0.22, 0.05)  # rows run south: +0.5 m per row is -0.05 towards north
    for runner in ("memory", "dask", "stream", "cli"):
        np.testing.assert_array_equal(np.isnan(res[runner]), holes, err_msg=runner)
        # float32 elevations near 1000 m are rounded by 3e-5 m: 4e-4 deg on 10 m pixels.
        np.testing.assert_allclose(res[runner][~holes], truth, atol=1e-3, err_msg=runner)
    assert res["memory"].dtype == np.float64  # (the test's copy); the DataArray is float32
    assert terrain.slope(dem).dtype == np.float32
    # `terrain info` shows elevations, not counts.
    d = terrain.info.dem_info(path)
    assert d.elevation_min == pytest.approx(raw[~holes].min() * 0.1 - 100, abs=1e-6)
    assert d.elevation_max == pytest.approx(raw[~holes].max() * 0.1 - 100, abs=1e-6)
    assert d.valid_cells == (~holes).sum()
    text = CliRunner().invoke(cli, ["info", path]).output
    assert "raw x 0.1 + -100" in text and f"{d.elevation_min:.1f}".rstrip("0").rstrip(".") in text


def _masked_files(tmp_path, z, holes):
    """The same DEM with its holes as an internal mask, a .msk sidecar and alpha bands."""
    garbage = z.copy()
    garbage[holes] = -5000.0  # what lies under the mask: cliffs if it were read
    prof = dict(driver="GTiff", width=z.shape[1], height=z.shape[0], count=1, dtype="float32",
                crs="EPSG:32616", transform=UTM)
    files = {}
    for kind, internal in (("internal mask", True), (".msk sidecar", False)):
        path = str(tmp_path / f"{kind[1:4]}_{internal}.tif")
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=internal):
            with rasterio.open(path, "w", **prof) as ds:
                ds.write(garbage, 1)
                ds.write_mask(~holes)
        files[kind] = path
    assert os.path.exists(files[".msk sidecar"] + ".msk")
    for kind, dtype in (("float32 alpha band", "float32"), ("uint8 dem, alpha band", "uint8")):
        path = str(tmp_path / f"alpha_{dtype}.tif")
        data = garbage if dtype == "float32" else np.where(holes, 0, z).astype(np.uint8)
        with rasterio.open(path, "w", **dict(prof, count=2, dtype=dtype), alpha="YES",
                           photometric="MINISBLACK") as ds:
            ds.write(data.astype(dtype), 1)
            ds.write(np.where(holes, 0, 255).astype(dtype), 2)
        files[kind] = path
    return files


@pytest.mark.parametrize("kind", ["internal mask", ".msk sidecar", "float32 alpha band",
                                  "uint8 dem, alpha band"])
def test_gdal_mask_and_alpha_bands_are_holes(kind, tmp_path):
    p, q = 0.3, 0.1
    shape = (15, 18)
    z = plane_z(shape, p, q, z0=50.0).astype(np.float32)
    holes = np.zeros(shape, bool)
    holes[4:7, 5:9] = True
    holes[11, 14] = True
    path = _masked_files(tmp_path, z, holes)[kind]
    assert raster_info(path).mask is not None
    res = slope_everywhere(path, tmp_path)
    for runner in ("memory", "dask", "stream", "cli"):
        np.testing.assert_array_equal(np.isnan(res[runner]), holes, err_msg=runner)
        np.testing.assert_allclose(res[runner][~holes], true_slope(p, q), atol=1e-4,
                                   err_msg=runner)
    d = terrain.info.dem_info(path)
    assert d.valid_cells == (~holes).sum() and d.elevation_min >= 0
    assert "mask:" in CliRunner().invoke(cli, ["info", path]).output


@pytest.mark.parametrize("dtype, z0, zf, p", [
    ("uint32", 3_000_000_000, 0.001, 1.0),  # millimetres: 45 deg
    ("int64", 40_000_000_000, 0.001, 0.1),  # 5.71 deg
    ("int32", -2_000_000_000, 0.001, 0.1),
])
def test_integers_beyond_float32_are_computed_in_float64(dtype, z0, zf, p, tmp_path):
    """Heights in millimetres around 3e9: float32 would round them to 256 mm steps."""
    shape = (12, 13)
    rows, cols = np.indices(shape)
    z_mm = z0 + np.round(p * 10_000 * cols).astype(np.int64) - 7 * rows  # rows: 7 mm per 10 m
    raw = z_mm.astype(dtype)
    assert np.array_equal(raw.astype(np.int64), z_mm)
    path = write_tif(tmp_path / "dem.tif", raw, transform=UTM)
    if dtype == "int64" and rasterio.open(path).dtypes[0] != "int64":
        pytest.skip("this GDAL cannot write int64 GeoTIFFs")
    with rasterio.open(path, "r+") as ds:
        ds.units = ("mm",)
    info = raster_info(path)
    assert info.elevation_dtype == "float64" and info.z_factor == zf
    assert terrain.open_dem(path).dtype == np.float64
    res = slope_everywhere(path, tmp_path)
    truth = true_slope(p, 0.0007)
    for runner in ("memory", "dask", "stream", "cli"):
        # float32 would give steps of 256 mm on 10 000 mm per pixel: degrees of noise.
        np.testing.assert_allclose(res[runner], truth, atol=1e-4, err_msg=runner)
    # By type: any 32-bit integer band, whatever its values (no extra pass over the file).
    small = write_tif(tmp_path / "small.tif", (raw - raw.min()).astype("int32") % 100000,
                      transform=UTM)
    assert raster_info(small).elevation_dtype == "float64"


RANGE_SERVER = r'''
import http.server, os, re, sys

class Handler(http.server.SimpleHTTPRequestHandler):
    """Static files with single-range GETs (what GDAL's /vsicurl/ asks for)."""

    def log_message(self, *args):
        pass

    def send_head(self):
        path = self.translate_path(self.path.split("?", 1)[0])
        if not os.path.isfile(path):
            self.send_error(404)
            return None
        size = os.path.getsize(path)
        f = open(path, "rb")
        m = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range", ""))
        if m:
            start = int(m.group(1))
            end = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
            f.seek(start)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_header("Content-Length", str(end - start + 1))
            self.remaining = end - start + 1
        else:
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.remaining = size
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        return f

    def copyfile(self, source, outputfile):
        outputfile.write(source.read(self.remaining))

os.chdir(sys.argv[1])
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
'''


@pytest.fixture
def http_root(tmp_path):
    """(folder, base URL) served over HTTP with Range support on 127.0.0.1, in another process
    (rasterio.open holds the GIL: a server thread in this process would stall)."""
    root = tmp_path / "www"
    root.mkdir()
    script = tmp_path / "range_server.py"
    script.write_text(RANGE_SERVER)
    proc = subprocess.Popen([sys.executable, str(script), str(root)], stdout=subprocess.PIPE,
                            text=True)
    try:
        port = int(proc.stdout.readline())
        yield root, f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _plain_dem(path):
    z = plane_z((16, 20), 0.2, 0.1).astype(np.float32)
    return write_tif(path, z, transform=UTM), true_slope(0.2, 0.1)


def test_archives_and_urls(tmp_path, http_root):
    """/vsizip/, zip://, /vsigzip/, /vsicurl/ and http:// paths read like the file itself."""
    src, truth = _plain_dem(tmp_path / "dem.tif")
    with zipfile.ZipFile(tmp_path / "dem.zip", "w") as zf:
        zf.write(src, "sub/dem.tif")
    with open(src, "rb") as f, gzip.open(tmp_path / "dem.tif.gz", "wb") as g:
        g.write(f.read())
    root, url = http_root
    with open(src, "rb") as f:
        (root / "dem.tif").write_bytes(f.read())
    paths = [f"/vsizip/{tmp_path}/dem.zip/sub/dem.tif", f"zip://{tmp_path}/dem.zip!sub/dem.tif",
             f"/vsigzip/{tmp_path}/dem.tif.gz", f"/vsicurl/{url}/dem.tif", f"{url}/dem.tif"]
    os.makedirs(tmp_path / "out")
    inputs_before = sorted(os.listdir(tmp_path))
    for path in paths:
        assert raster_info(path).shape == (16, 20), path
        res = slope_everywhere(path, tmp_path / "out")
        for runner in ("memory", "dask", "stream", "cli"):
            np.testing.assert_allclose(res[runner], truth, atol=1e-4, err_msg=f"{path} {runner}")
    assert sorted(os.listdir(tmp_path)) == inputs_before  # nothing written next to the inputs
    # `terrain analyze` names the outputs after the member / URL file, not the archive path.
    result = CliRunner().invoke(cli, ["analyze", paths[0], "-d", str(tmp_path / "an"),
                                      "--no-maps"])
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(tmp_path / "an")) == [f"dem_{k}.tif" for k in
                                                   ("aspect", "gradient", "hillshade", "slope")]
    # A wrong member or a missing URL: one line naming the path, exit 1.
    for bad in (f"/vsizip/{tmp_path}/dem.zip/nope.tif", f"{url}/missing.tif"):
        with pytest.raises(terrain.TerrainError, match="GDAL cannot open it") as err:
            raster_info(bad)
        assert bad in str(err.value) and "\n" not in str(err.value)
        result = CliRunner().invoke(cli, ["slope", bad, "-o", str(tmp_path / "bad.tif")])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert not os.path.exists(tmp_path / "bad.tif")
    # A missing local file keeps its own message.
    with pytest.raises(terrain.TerrainError, match="no such file; check the path"):
        raster_info(str(tmp_path / "nowhere.tif"))


def _netcdf_classic(path, x, y, variables: dict, wkt: str):
    """A NetCDF-3 classic file (the format's spec, written by hand: no netCDF library
    needed): 1-D x / y coordinates, a CF grid mapping with the CRS, 2-D float variables."""
    import struct

    def name(s):
        b = s.encode()
        return struct.pack(">i", len(b)) + b + b"\0" * (-len(b) % 4)

    def text_attr(key, value):
        b = value.encode()
        return name(key) + struct.pack(">ii", 2, len(b)) + b + b"\0" * (-len(b) % 4)

    def atts(items):
        return struct.pack(">ii", 12, len(items)) + b"".join(items) if items else b"\0" * 8

    ny, nx = len(y), len(x)
    # (name, dim ids, attributes, nc_type, data bytes)
    specs = [("x", [1], [text_attr("standard_name", "projection_x_coordinate"),
                         text_attr("units", "m")], 6, np.asarray(x, ">f8").tobytes()),
             ("y", [0], [text_attr("standard_name", "projection_y_coordinate"),
                         text_attr("units", "m")], 6, np.asarray(y, ">f8").tobytes()),
             ("crs", [], [text_attr("spatial_ref", wkt), text_attr("crs_wkt", wkt)], 4,
              struct.pack(">i", 0))]
    for var, data in variables.items():
        specs.append((var, [0, 1], [text_attr("grid_mapping", "crs")], 5,
                      np.asarray(data, ">f4").tobytes()))
    header = b"CDF\x01" + struct.pack(">i", 0)
    header += struct.pack(">ii", 10, 2) + name("y") + struct.pack(">i", ny) + name("x") + \
        struct.pack(">i", nx)
    header += b"\0" * 8  # no global attributes

    def var_list(offsets):
        out = struct.pack(">ii", 11, len(specs))
        for (vname, dims, attrs, nc_type, data), begin in zip(specs, offsets):
            vsize = len(data) + (-len(data) % 4)
            out += name(vname) + struct.pack(">i", len(dims)) + \
                b"".join(struct.pack(">i", d) for d in dims) + atts(attrs) + \
                struct.pack(">iii", nc_type, vsize, begin)
        return out

    size = len(header) + len(var_list([0] * len(specs)))
    offsets, at = [], size
    for spec in specs:
        offsets.append(at)
        at += len(spec[4]) + (-len(spec[4]) % 4)
    with open(path, "wb") as f:
        f.write(header + var_list(offsets))
        for spec in specs:
            f.write(spec[4] + b"\0" * (-len(spec[4]) % 4))
    return str(path)


@pytest.mark.parametrize("damage, says", [
    ("dimension", "variable 'x' needs 8,589,934,592 bytes"),
    ("attribute", "an attribute larger than the file"),
    ("truncated-data", "beyond the file's"),
    ("truncated-header", "the header is cut short"),
    ("dimension-id", "names a dimension that does not exist"),
])
def test_damaged_classic_netcdf_is_refused_before_gdal_reads_it(tmp_path, monkeypatch, damage,
                                                                says):
    """A classic netCDF whose header claims more than the file holds is refused from the
    header alone. (Found by tests/test_fuzz.py: with a flipped length, GDAL's netCDF driver
    allocated and filled 4.5 GB for one attribute, 10-30 s, and aborted under a memory
    limit.) The intact file still opens."""
    import struct

    z = plane_z((16, 20), 0.2, 0.1).astype(np.float32)
    x = UTM.c + 5.0 + 10 * np.arange(20)
    y = 4000000.0 - 5 - 10 * np.arange(16)
    wkt = rasterio.crs.CRS.from_epsg(32616).to_wkt()
    good = _netcdf_classic(tmp_path / "good.nc", x, y, {"elevation": z}, wkt)
    np.testing.assert_array_equal(terrain.open_dem(good).values, z)
    data = bytearray(open(good, "rb").read())
    # The x dimension: its name (length 1, "x", padding) then its length, 20.
    at = data.index(struct.pack(">i", 1) + b"x\0\0\0" + struct.pack(">i", 20))
    if damage == "dimension":
        data[at + 8:at + 12] = struct.pack(">i", 2**30)
    elif damage == "attribute":  # the first attribute's value count: "units" of x, 1 char
        units = data.index(struct.pack(">i", 5) + b"units\0\0\0" + struct.pack(">ii", 2, 1))
        data[units + 16:units + 20] = struct.pack(">i", 2**31 - 1)
    elif damage == "truncated-data":
        data = data[:-100]
    elif damage == "truncated-header":
        data = data[:at + 6]
    else:  # elevation's second dimension id 1 (x) becomes 7
        var = data.index(struct.pack(">i", 9) + b"elevation")
        data[var + 24:var + 28] = struct.pack(">i", 7)
    bad = tmp_path / "bad.nc"
    bad.write_bytes(bytes(data))
    monkeypatch.setattr(rasterio, "open", lambda *a, **k: pytest.fail("GDAL was asked to open it"))
    with pytest.raises(terrain.TerrainError) as err:
        terrain.open_dem(bad)
    message = str(err.value)
    assert message.startswith(f"{bad}: damaged or truncated netCDF file (") and says in message
    assert "\n" not in message


def test_subdatasets(tmp_path):
    """NETCDF:"f.nc":var, HDF5: and GPKG: subdatasets read like a GeoTIFF of the same grid;
    a container with several subdatasets is refused with their list."""
    from rasterio.env import Env

    with Env() as env:
        drivers = env.drivers()
    assert {"netCDF", "HDF5", "GPKG"} <= set(drivers)
    z = plane_z((16, 20), 0.2, 0.1).astype(np.float32)
    truth = true_slope(0.2, 0.1)
    x = UTM.c + 5.0 + 10 * np.arange(20)
    y = 4000000.0 - 5 - 10 * np.arange(16)
    wkt = rasterio.crs.CRS.from_epsg(32616).to_wkt()
    nc = _netcdf_classic(tmp_path / "f.nc", x, y, {"elevation": z, "other": 2 * z, "third": 3 * z},
                         wkt)
    with pytest.raises(terrain.TerrainError) as err:
        raster_info(nc)
    names = [f'NETCDF:"{nc}":{v}' for v in ("elevation", "other", "third")]
    assert str(err.value) == f"{nc}: holds 3 subdatasets: {', '.join(names)}; open one of them"
    result = CliRunner().invoke(cli, ["slope", nc, "-o", str(tmp_path / "x.tif")])
    assert result.exit_code == 1 and names[0] in result.output
    info = raster_info(names[0])
    assert info.shape == (16, 20) and info.crs == rasterio.crs.CRS.from_epsg(32616)
    assert info.transform == UTM
    np.testing.assert_array_equal(terrain.open_dem(names[0]).values, z)
    os.makedirs(tmp_path / "o")
    res = slope_everywhere(names[0], tmp_path / "o")
    for runner in ("memory", "dask", "stream", "cli"):
        np.testing.assert_allclose(res[runner], truth, atol=1e-4, err_msg=runner)
    # GeoPackage raster tables.
    gpkg = str(tmp_path / "f.gpkg")
    for i, table in enumerate(("dem", "double")):
        with rasterio.open(gpkg, "w", driver="GPKG", width=20, height=16, count=1,
                           dtype="float32", crs="EPSG:32616", transform=UTM, RASTER_TABLE=table,
                           APPEND_SUBDATASET="YES" if i else "NO") as ds:
            ds.write(z * (i + 1), 1)
    with pytest.raises(terrain.TerrainError, match="holds 2 subdatasets: GPKG:"):
        raster_info(gpkg)
    np.testing.assert_array_equal(terrain.open_dem(f"GPKG:{gpkg}:double").values, 2 * z)
    np.testing.assert_allclose(terrain.slope(terrain.open_dem(f"GPKG:{gpkg}:dem")).values,
                               truth, atol=1e-4)
    # HDF5: a NetCDF-4 file (HDF5 inside) read through GDAL's HDF5 driver. It knows no
    # georeferencing there (identity transform, rows bottom-up), so give a CRS.
    nc4 = str(tmp_path / "f4.nc")
    rasterio.shutil.copy(write_tif(tmp_path / "g.tif", z, transform=UTM), nc4, driver="netCDF",
                         FORMAT="NC4")
    h5 = f'HDF5:"{nc4}"://Band1'
    dem = terrain.open_dem(h5, src_crs="EPSG:32616")
    np.testing.assert_array_equal(dem.values, z[::-1])
    assert terrain.info.dem_info(h5).valid_cells == z.size


@pytest.mark.parametrize("unit, factor", [("metre", 1.0), ("US survey foot", FTUS)])
def test_local_engineering_crs(unit, factor, tmp_path):
    """LOCAL_CS / ENGCRS grids: metres are measured as metres; any other unit is one
    clear error, in `terrain info` and `terrain slope` alike."""
    z = plane_z((12, 14), 0.25, -0.1).astype(np.float32)
    wkt = f'LOCAL_CS["site grid",UNIT["{unit}",{factor!r}]]'
    path = write_tif(tmp_path / "dem.tif", z, transform=Affine(10.0, 0, 1000.0, 0, -10.0, 5000.0),
                     crs=rasterio.crs.CRS.from_wkt(wkt))
    info_run = CliRunner().invoke(cli, ["info", path])
    out = tmp_path / "s.tif"
    slope_run = CliRunner().invoke(cli, ["slope", path, "-o", str(out)])
    if factor == 1.0:
        assert info_run.exit_code == 0, info_run.output
        assert "unexpected" not in info_run.output
        assert "ground pixel: dx 10.000 m, dy 10.000 m" in info_run.output
        assert slope_run.exit_code == 0, slope_run.output
        with rasterio.open(out) as ds:
            np.testing.assert_allclose(ds.read(1), true_slope(0.25, -0.1), atol=1e-4)
        np.testing.assert_allclose(terrain.slope(terrain.open_dem(path)).values,
                                   true_slope(0.25, -0.1), atol=1e-4)
    else:
        for run in (info_run, slope_run):
            assert run.exit_code == 1
            assert "local (engineering) CRS in US survey foot" in run.output
            assert "unexpected" not in run.output and "Traceback" not in run.output
        assert not out.exists()
        with pytest.raises(terrain.TerrainError, match="local"):
            terrain.slope(terrain.open_dem(path))


def test_aux_xml_sidecar_is_read(tmp_path):
    """Scale, offset and units kept in dem.tif.aux.xml (GDAL's PAM sidecar, as QGIS, ArcGIS
    or gdal_edit on a read-only file leave them): GDAL only sees it when it may list the
    folder, which terrain's EMPTY_DIR setting forbids unless a sidecar is there."""
    rows, cols = np.indices((9, 11))
    counts = 2000 + 30 * cols + 10 * rows  # 3 ft per 10 m east, 1 ft per 10 m south
    path = write_tif(tmp_path / "dem.tif", counts.astype(np.int16), transform=UTM)
    (tmp_path / "dem.tif.aux.xml").write_text(
        '<PAMDataset><PAMRasterBand band="1"><UnitType>ft</UnitType><Offset>-100</Offset>'
        "<Scale>0.1</Scale></PAMRasterBand></PAMDataset>")
    info = raster_info(path)
    assert (info.scale, info.offset, info.z_factor) == (0.1, -100.0, 0.3048)
    np.testing.assert_allclose(terrain.open_dem(path).values, counts * 0.1 - 100, rtol=1e-6)
    res = slope_everywhere(path, tmp_path)
    truth = true_slope(0.3 * 0.3048, 0.1 * 0.3048)
    for runner in ("memory", "dask", "stream", "cli"):
        np.testing.assert_allclose(res[runner], truth, atol=1e-4, err_msg=runner)


def test_colon_in_a_missing_local_name(tmp_path):
    path = str(tmp_path / "survey:2024.tif")
    with pytest.raises(terrain.TerrainError, match="no such file"):
        raster_info(path)
    relative = "survey:2024.tif"
    with pytest.raises(terrain.TerrainError, match="survey:2024.tif: no such file"):
        raster_info(relative)


@pytest.mark.parametrize("path, stem", [
    ("/data/dem.tif", "dem"),
    ("/data/my dem.v2.tif", "my dem.v2"),  # local names as they always were
    ("/vsizip//data/tiles.zip/sub/n45e007.tif", "n45e007"),
    ("zip:///data/tiles.zip!sub/n45e007.tif", "n45e007"),
    ("/vsigzip//data/dem.tif.gz", "dem"),
    ("/vsicurl/https://example.org/a/dem.tif?token=1", "dem"),
    ("https://example.org/a/dem.tif?token=1#x", "dem"),
    ('NETCDF:"/data/f.nc":elevation', "f_elevation"),
    ('HDF5:"/data/f.h5"://grids/elevation', "f_grids_elevation"),
    ("GPKG:/data/f.gpkg:dem", "f_dem"),
])
def test_dataset_stem(path, stem):
    from terrain.raster import dataset_stem

    assert dataset_stem(path) == stem
