"""Bad inputs and bad values (issue 5), through the library and the CLI.

Bad input matrix: each case is built in tmp_path; the library (``terrain.open_dem``
and ``terrain.stream.process_file``) must raise ``terrain.TerrainError`` naming the
file; the CLI (a real subprocess) must exit 1 with one or two lines on stderr, no
traceback, no output file, and the input unchanged byte for byte.

Values: NaN / +-inf elevations, integer nodata values, all-nodata DEMs and huge
elevations, checked on planes whose elevations and spacings are exact binary
fractions, so that every valid gradient is exactly the plane's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

import terrain
import terrain.stream
from conftest import DIFFERENCE_METHODS, METHODS, UTM_SAMPLE, crashed, invoke, sha256, write_tif
from terrain.engine import Options, RunOptions
from terrain.stream import process_file
from terrain.raster import ReadOptions
from terrain.writer import WriteOptions

TERRAIN = str(Path(sys.executable).with_name("terrain"))
UTM = Affine(32.0, 0, 731000.0, 0, -16.0, 4069000.0)


def good_dem(path, shape=(8, 9), **kwargs):
    z = np.arange(shape[0] * shape[1], dtype=np.float32).reshape(shape)
    return write_tif(path, z, **kwargs)


# --------------------------------------------------------------------------------------
# The bad input matrix
# --------------------------------------------------------------------------------------
# Each builder gets tmp_path and returns (src, out, lib_kwargs, cli_args, named) where
# `named` is the path the message must contain.

def _missing(t):
    return t / "no_such_dem.tif", t / "out" / "s.tif", {}, [], t / "no_such_dem.tif"


def _directory(t):
    (t / "folder.tif").mkdir()
    return t / "folder.tif", t / "out" / "s.tif", {}, [], t / "folder.tif"


def _empty(t):
    (t / "empty.tif").write_bytes(b"")
    return t / "empty.tif", t / "out" / "s.tif", {}, [], t / "empty.tif"


def _text(t):
    (t / "notes.tif").write_text("elevation,x,y\n1,2,3\n")
    return t / "notes.tif", t / "out" / "s.tif", {}, [], t / "notes.tif"


def _truncated(fraction):
    def build(t):
        data = UTM_SAMPLE.read_bytes()
        (t / "cut.tif").write_bytes(data[:int(len(data) * fraction)])
        return t / "cut.tif", t / "out" / "s.tif", {}, [], t / "cut.tif"
    return build


def _png(t):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(t / "picture.png", "w", driver="PNG", width=20, height=10, count=1,
                           dtype="uint8") as ds:
            ds.write(np.arange(200, dtype=np.uint8).reshape(10, 20), 1)
    return t / "picture.png", t / "out" / "s.tif", {}, [], t / "picture.png"


def _no_crs(t):
    src = good_dem(t / "nocrs.tif", crs=None, transform=UTM)
    return Path(src), t / "out" / "s.tif", {}, [], Path(src)


def _rotated(shear):
    def build(t):
        a, b, d = (30.0, 5.0, 0.0) if not shear else (30.0, 0.0, 4.0)
        src = good_dem(t / "rotated.tif", transform=Affine(a, b, 731000.0, d, -30.0, 4069000.0))
        return Path(src), t / "out" / "s.tif", {}, [], Path(src)
    return build


def _shape(rows, cols):
    def build(t):
        src = good_dem(t / f"r{rows}x{cols}.tif", shape=(rows, cols))
        return Path(src), t / "out" / "s.tif", {}, [], Path(src)
    return build


def _band(t):
    src = good_dem(t / "one_band.tif")
    return Path(src), t / "out" / "s.tif", {"band": 2}, ["--band", "2"], Path(src)


def _latin1_crs_name(t):
    """A custom CRS whose name is Latin-1, not UTF-8 (older software writes such files)."""
    from rasterio.crs import CRS

    wkt = CRS.from_string("+proj=tmerc +lon_0=3 +k=0.9996 +x_0=500000 +ellps=GRS80 +units=m")\
        .to_wkt().replace("unknown", "R_seau g_od_sique", 1)
    src = good_dem(t / "latin1.tif", crs=CRS.from_wkt(wkt))
    data = Path(src).read_bytes()
    assert data.count(b"R_seau g_od_sique") == 1
    Path(src).write_bytes(data.replace(b"R_seau g_od_sique", "Réseau géodésique".encode("latin-1")))
    return Path(src), t / "out" / "s.tif", {}, [], Path(src)


def _under_a_file(t):
    src = good_dem(t / "dem.tif")
    (t / "plain_file").write_text("x")
    out = t / "plain_file" / "sub" / "s.tif"
    return Path(src), out, {}, [], out


def _output_is_input(t):
    src = good_dem(t / "dem.tif")
    return Path(src), Path(src), {"overwrite": True}, ["--overwrite"], Path(src)


def _existing_output(t):
    src = good_dem(t / "dem.tif")
    out = t / "out" / "s.tif"
    out.parent.mkdir()
    out.write_bytes(b"an earlier result")
    return Path(src), out, {}, [], out


INPUT_CASES = {
    "missing": _missing,
    "directory": _directory,
    "empty": _empty,
    "text-named-tif": _text,
    "truncated-header": _truncated(0.002),
    "truncated-data": _truncated(0.6),
    "png-no-georeferencing": _png,
    "no-crs": _no_crs,
    "rotated": _rotated(False),
    "sheared": _rotated(True),
    "1x1": _shape(1, 1),
    "1xN": _shape(1, 7),
    "Nx1": _shape(7, 1),
    "band-missing": _band,
    "crs-name-latin1": _latin1_crs_name,
}
OUTPUT_CASES = {
    "output-under-a-file": _under_a_file,
    "output-is-input": _output_is_input,
    "existing-output": _existing_output,
}
ALL_CASES = {**INPUT_CASES, **OUTPUT_CASES}


def snapshot(folder: Path) -> dict:
    """{relative path: sha256 or 'dir'} of everything under folder."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            out[os.path.relpath(os.path.join(root, d), folder)] = "dir"
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, folder)] = sha256(p)
    return out


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
@pytest.mark.parametrize("case", list(ALL_CASES))
def test_library_refuses(case, tmp_path):
    src, out, kwargs, _, named = ALL_CASES[case](tmp_path)
    before = snapshot(tmp_path)
    if case in INPUT_CASES:
        with pytest.raises(terrain.TerrainError) as err:
            terrain.open_dem(src, **kwargs)
        assert str(named) in str(err.value), str(err.value)
        assert "\n" not in str(err.value)
    with pytest.raises(terrain.TerrainError) as err:
        process_file(src, {"slope": out}, read=ReadOptions(band=kwargs.get("band", 1)),
                     write=WriteOptions(overwrite=kwargs.get("overwrite", False)))
    assert str(named) in str(err.value), str(err.value)
    assert "\n" not in str(err.value)
    assert snapshot(tmp_path) == before, "the failed call changed or left files"


@pytest.mark.parametrize("case", list(ALL_CASES))
def test_cli_refuses(case, tmp_path):
    src, out, _, args, named = ALL_CASES[case](tmp_path)
    before = snapshot(tmp_path)
    res = invoke("slope", src, "-o", out, *args)
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 1, (res.exit_code, res.stderr)
    assert not crashed(res) and "Traceback" not in res.stderr
    assert 1 <= len(lines) <= 2, res.stderr
    assert lines[-1].startswith("terrain: error:") and str(named) in lines[-1], res.stderr
    assert "unexpected" not in res.stderr, res.stderr
    assert snapshot(tmp_path) == before, "the failed run changed or left files"


def test_no_crs_given_by_src_crs(tmp_path):
    """The no-CRS file works once a CRS is given, in the library and the CLI."""
    src, out, *_ = _no_crs(tmp_path)
    dem = terrain.open_dem(src, src_crs="EPSG:32616")
    truth = terrain.slope(dem, geometry="planar").values
    process_file(src, {"slope": out}, Options(geometry="planar"),
                 read=ReadOptions(src_crs="EPSG:32616"))
    res = subprocess.run([TERRAIN, "slope", str(src), "-o", str(tmp_path / "cli.tif"),
                          "--src-crs", "EPSG:32616", "--geometry", "planar"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    # z = 9 * row + col on 32 m x 16 m pixels: slope is atan(hypot(1 / 32, 9 / 16)) everywhere.
    assert np.allclose(truth, np.degrees(np.arctan(np.hypot(1 / 32, 9 / 16))), rtol=1e-6)
    for path in (out, tmp_path / "cli.tif"):
        with rasterio.open(path) as ds:
            assert ds.crs == "EPSG:32616"
            assert np.array_equal(ds.read(1), truth.astype(np.float32))


def test_verbose_shows_the_traceback(tmp_path):
    res = subprocess.run([TERRAIN, "-v", "slope", str(tmp_path / "nope.tif"), "-o",
                          str(tmp_path / "o.tif")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert "Traceback" in res.stderr and "nope.tif" in res.stderr.strip().splitlines()[-1]


# --------------------------------------------------------------------------------------
# Values: NaN and +-inf, integer nodata, all nodata, huge elevations
# --------------------------------------------------------------------------------------
# Planes on a 32 m x 16 m north-up grid with elevations that are exact in float32 and
# in every integer type used: z = z0 + 8 * col - 2 * row, so dzdx = 8 / 32 = 0.25 and
# dzdy = +2 / 16 = 0.125 (rows run south) exactly, whatever the stencil.

P_TRUE, Q_TRUE = 0.25, 0.125


def plane(shape, z0=100.0, dtype=np.float32):
    rows, cols = np.indices(shape)
    return (z0 + 8 * cols - 2 * rows).astype(dtype)


def neighbours_both_axes(valid):
    """Valid cells with a valid neighbour in their row and one in their column."""
    pad = np.pad(valid, 1, constant_values=False)
    row_nb = pad[1:-1, :-2] | pad[1:-1, 2:]
    col_nb = pad[:-2, 1:-1] | pad[2:, 1:-1]
    return valid & row_nb & col_nb


def check_plane_gradient(p, q, valid):
    """Exact where the plane must be exact, NaN on voids, nothing else but exact-or-NaN."""
    p = np.asarray(p, np.float64)
    q = np.asarray(q, np.float64)
    must = neighbours_both_axes(valid)
    assert np.all(np.isnan(p[~valid])) and np.all(np.isnan(q[~valid]))
    assert np.all(p[must] == P_TRUE), p[must][p[must] != P_TRUE][:5]
    assert np.all(q[must] == Q_TRUE), q[must][q[must] != Q_TRUE][:5]
    assert not np.isinf(p).any() and not np.isinf(q).any()
    for v, truth in ((p, P_TRUE), (q, Q_TRUE)):
        extra = valid & ~must & ~np.isnan(v)
        assert np.all(v[extra] == truth)


def nonfinite_dem(path):
    """Float32 plane with NaN, +inf and -inf cells, on edges, corners, seams, adjacent."""
    z = plane((12, 11))
    bad = {np.nan: [(0, 0), (5, 5), (5, 6), (11, 3)], np.inf: [(0, 7), (3, 2), (6, 5)],
           -np.inf: [(11, 10), (8, 0), (4, 2), (9, 9)]}
    for value, cells in bad.items():
        for cell in cells:
            z[cell] = value
    z[7, 4:7] = np.nan  # a row-wise void: cells above and below lose their centred y stencil
    return write_tif(path, z, transform=UTM), np.isfinite(z)


@pytest.mark.parametrize("edge_order", [1, 2])
@pytest.mark.parametrize("method", METHODS)
def test_nan_and_inf_are_nodata(method, edge_order, tmp_path):
    src, valid = nonfinite_dem(tmp_path / "dem.tif")
    dem = terrain.open_dem(src)
    assert np.array_equal(np.isfinite(dem.values), valid) and not np.isinf(dem.values).any()
    res = terrain.compute(dem, ("dzdx", "dzdy", "slope", "aspect", "hillshade"),
                          method=method, edge_order=edge_order, geometry="planar")
    check_plane_gradient(res["dzdx"].values, res["dzdy"].values, valid)
    for name in ("slope", "aspect", "hillshade"):
        v = res[name].values
        assert not np.isinf(v).any()
        assert np.isnan(v[~valid]).all()
        assert np.isfinite(v[neighbours_both_axes(valid)]).all()
    # The same through the streaming engine, with seams through the voids.
    p, q = streamed_gradient(src, tmp_path, method, edge_order, tile_size=3, threads=2)
    check_plane_gradient(p, q, valid)


def streamed_gradient(src, tmp_path, method, edge_order, *, tile_size, threads):
    """dzdx, dzdy of ``src`` through the streaming engine, read back with NaN for nodata."""
    out = tmp_path / "g.tif"
    process_file(src, {"gradient": out},
                 Options(method=method, edge_order=edge_order, geometry="planar"),
                 run=RunOptions(tile_size=tile_size, threads=threads))
    with rasterio.open(out) as ds:
        p, q = ds.read(1).astype(np.float64), ds.read(2).astype(np.float64)
    p[p == -9999] = np.nan
    q[q == -9999] = np.nan
    return p, q


INTEGER_CASES = {
    # dtype, nodata, z0 (the plane stays inside the type's range and never hits nodata)
    "int16 -32768": (np.int16, -32768, -40),
    "uint16 65535": (np.uint16, 65535, 30),
    "uint8 0": (np.uint8, 0, 30),
    "int32 -9999": (np.int32, -9999, 5000),
}


def integer_plane_with_holes(case, path):
    """INTEGER_CASES[case]'s plane with holes of its nodata value, written to ``path``:
    (path, dtype, holes)."""
    dtype, nodata, z0 = INTEGER_CASES[case]
    z = plane((10, 12), z0=z0, dtype=dtype)
    holes = np.zeros(z.shape, bool)
    holes[[0, 4, 4, 5, 9, 2], [5, 0, 1, 8, 11, 10]] = True
    holes[6:8, 3:5] = True
    z[holes] = nodata
    return write_tif(path, z, transform=UTM, nodata=nodata), dtype, holes


@pytest.mark.parametrize("edge_order", [1, 2])
@pytest.mark.parametrize("method", DIFFERENCE_METHODS)  # evans / florinsky: tests/test_lsq.py
@pytest.mark.parametrize("case", list(INTEGER_CASES))
def test_integer_nodata_never_an_elevation(case, method, edge_order, tmp_path):
    src, dtype, holes = integer_plane_with_holes(case, tmp_path / "dem.tif")
    dem = terrain.open_dem(src)
    # 32-bit integers can exceed float32's 24-bit mantissa: computed in float64 (issue 8).
    assert dem.dtype == (np.float64 if np.dtype(dtype).itemsize >= 4 else np.float32)
    g = terrain.gradient(dem, method=method, edge_order=edge_order, geometry="planar")
    check_plane_gradient(g["dzdx"].values, g["dzdy"].values, ~holes)
    p, q = streamed_gradient(src, tmp_path, method, edge_order, tile_size=4, threads=1)
    check_plane_gradient(p, q, ~holes)


@pytest.mark.parametrize("fill", ["nodata-tag", "nan-no-tag"])
def test_all_nodata(fill, tmp_path):
    if fill == "nodata-tag":
        src = write_tif(tmp_path / "dem.tif", np.full((6, 7), -9999, np.float32), transform=UTM,
                        nodata=-9999)
    else:
        src = write_tif(tmp_path / "dem.tif", np.full((6, 7), np.nan, np.float32), transform=UTM)
    assert np.isnan(terrain.slope(terrain.open_dem(src)).values).all()
    lib_out = tmp_path / "lib.tif"
    assert process_file(src, {"slope": lib_out})["valid"] is False
    out = tmp_path / "cli.tif"
    res = subprocess.run([TERRAIN, "slope", src, "-o", str(out)], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert any(line.startswith("warning:") and "no valid" in line
               for line in res.stderr.splitlines()), res.stderr
    assert "Traceback" not in res.stderr
    for path in (lib_out, out):
        with rasterio.open(path) as ds:
            assert ds.nodata == -9999 and (ds.read(1) == -9999).all()


@pytest.mark.parametrize("method", METHODS)
def test_huge_elevations_1e30(method, tmp_path):
    """z = 2**100 * (col + 2 row) (about 1e30, exact in float32): finite gradient, slope 90."""
    shape = (9, 8)
    rows, cols = np.indices(shape)
    z = (2.0 ** 100 * (cols + 2 * rows)).astype(np.float32)
    src = write_tif(tmp_path / "dem.tif", z, transform=Affine(32.0, 0, 0, 0, -32.0, 0))
    res = terrain.compute(terrain.open_dem(src), ("dzdx", "dzdy", "slope", "aspect", "hillshade"),
                          method=method, geometry="planar")
    # z grows by 2**100 per column (east) and 2**101 per row (south), 32 m apart.
    p_true, q_true = 2.0 ** 100 / 32, -(2.0 ** 101) / 32
    assert (res["dzdx"].values == np.float32(p_true)).all()
    assert (res["dzdy"].values == np.float32(q_true)).all()
    slope_true = np.degrees(np.arctan(np.hypot(p_true, q_true)))
    assert (res["slope"].values == np.float32(slope_true)).all() and slope_true > 89.999
    aspect_true = (np.degrees(np.arctan2(-p_true, -q_true)) + 360) % 360
    assert np.allclose(res["aspect"].values, aspect_true, atol=1e-4)
    assert np.isfinite(res["hillshade"].values).all()
    out = tmp_path / "s.tif"
    process_file(src, {"gradient": out, "slope": tmp_path / "slope.tif"},
                 Options(method=method, geometry="planar"), run=RunOptions(tile_size=3))
    with rasterio.open(out) as ds:
        assert np.isfinite(ds.read()).all()


@pytest.mark.parametrize("product, units", [("dzdx", "degrees"), ("slope", "percent")])
def test_float_max_fill_without_nodata_tag_does_not_overflow_silently(product, units, tmp_path):
    """A 25 cm lidar DEM with -FLT_MAX fill but no nodata tag: the fill is a (bogus) elevation
    of -3.4e38, and the gradient next to it, 6.8e38 m/m, exceeds float32. It must be either
    computed exactly (float64), or reported: never a silent inf."""
    z = plane((8, 8))
    z[3:5, 3:5] = -np.finfo(np.float32).max
    src = write_tif(tmp_path / "dem.tif", z, transform=Affine(0.25, 0, 731000, 0, -0.25, 4069000))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            v = terrain.compute(terrain.open_dem(src), (product,), units=units)[product].values
        except terrain.TerrainError:
            return  # reported
    assert np.isfinite(v).all() or caught, "inf in the output, and no warning or error"


def test_non_utf8_file_name(tmp_path):
    """A DEM whose file name is Latin-1 (unzipped from an old archive): Linux allows it and
    Python holds it as a surrogate-escaped str. The library must read it or refuse it with a
    TerrainError; the CLI must not call it an unexpected error."""
    src = good_dem(tmp_path / "plain.tif")
    name = os.fsdecode(b"mod\xe8le_num\xe9rique.tif")  # 'modèle_numérique' in Latin-1
    os.rename(src, tmp_path / name)
    src = str(tmp_path / name)
    try:
        terrain.open_dem(src)
    except terrain.TerrainError:
        pass
    try:
        process_file(src, {"slope": tmp_path / "lib.tif"})
    except terrain.TerrainError:
        pass
    res = subprocess.run([TERRAIN, "slope", os.fsencode(src), "-o", str(tmp_path / "cli.tif")],
                         capture_output=True, timeout=60)
    err = res.stderr.decode("utf-8", "replace")
    assert res.returncode in (0, 1) and "Traceback" not in err
    assert "unexpected" not in err, err


PRODUCT_RUNS = [("slope", u) for u in ("degrees", "percent", "radians", "ratio")] + \
    [("aspect", None), ("gradient", None), ("hillshade", None)]


@pytest.mark.parametrize("product, units", PRODUCT_RUNS)
def test_undeclared_float_max_fill_is_one_clear_error_for_every_product(product, units, tmp_path):
    """-3.4e38 (float32's lowest) left in a DEM without a nodata tag: the same TerrainError
    from the library (in memory, dask, streaming) and the CLI, whatever the product and
    unit; no output file, input untouched. Declared as nodata, the same cells are holes."""
    z = plane((8, 8))
    z[3:5, 3:5] = -np.finfo(np.float32).max
    src = write_tif(tmp_path / "dem.tif", z, transform=UTM)
    before = sha256(src)
    opts = {} if units is None else {"units": units}
    lib_product = "dzdx" if product == "gradient" else product
    messages = []
    for run in ("memory", "dask", "stream"):
        with pytest.raises(terrain.TerrainError) as err:
            if run == "stream":
                process_file(src, {product: tmp_path / "lib.tif"}, Options(**opts))
            else:
                dem = terrain.open_dem(src, chunks=4 if run == "dask" else None)
                terrain.compute(dem, (lib_product,), **opts)[lib_product].values
        messages.append(str(err.value))
    assert not (tmp_path / "lib.tif").exists()
    res = invoke(product, src, "-o", tmp_path / "cli.tif", *(["--units", units] if units else []))
    assert res.exit_code == 1 and not crashed(res) and "Traceback" not in res.stderr
    assert not (tmp_path / "cli.tif").exists()
    messages.append(res.stderr.strip().removeprefix("terrain: error: "))
    assert len(set(messages)) == 1, messages
    assert messages[0].startswith(f"{src}: elevation -3.40282e+38 is an undeclared nodata fill")
    assert "gdal_edit.py -a_nodata" in messages[0]
    assert sha256(src) == before
    # A bare array says the same, without a file name.
    with pytest.raises(terrain.TerrainError, match="undeclared nodata fill"):
        terrain.compute(z, (lib_product,), spacing=(16.0, 32.0), **opts)
    # Declared, they are holes.
    with rasterio.open(src, "r+") as ds:
        ds.nodata = float(-np.finfo(np.float32).max)
    s = terrain.compute(terrain.open_dem(src), (lib_product,), **opts)[lib_product].values
    assert np.isnan(s[3:5, 3:5]).all() and np.isfinite(s[:3]).all()
    # `terrain info` describes such a file, with a note saying what to do.
    with rasterio.open(src, "r+") as ds:
        ds.nodata = None
    info = invoke("info", src)
    assert info.exit_code == 0 and "undeclared nodata fill" in info.stdout
