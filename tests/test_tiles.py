"""Tile sets (issue 14): per-tile outputs of a mosaic, with no seams.

Truth: the whole raster (the sample, or the sample with the missing tiles' / the
gap's cells set to nodata) streamed as one file by ``process_file``; each tile's
outputs must equal it on the tile's cells bit for bit. The tiles are cut from
the sample with rasterio windows, with and without a one-pixel overlap.
"""

from __future__ import annotations

import os
import platform
import subprocess
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window

import terrain
from conftest import METHODS, UTM_SAMPLE, WGS84_SAMPLE, write_tif
from terrain import tiles
from terrain.engine import Options, RunOptions
from terrain.errors import InputError
from terrain.stream import process_file
from terrain.writer import WriteOptions

KINDS = ("slope", "aspect", "gradient", "hillshade")
# Every method, central also with second-order edges.
METHOD_OPTS = [(m, 1) for m in METHODS] + [("central", 2)]


def split(src, folder, n, overlap=0, *, skip=(), nodata="keep", bounds=None):
    """Cut ``src`` into ``n`` x ``n`` GeoTIFF tiles t{i}{j}.tif (``overlap`` extra rows and
    columns repeated from the next tile, as SRTM does); ``skip``: (i, j) not written;
    ``bounds``: ((row edges), (col edges)) instead of even ones. Returns the paths."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    with rasterio.open(src) as ds:
        rows, cols = ds.shape
        rb, cb = bounds or (np.linspace(0, rows, n + 1).astype(int),
                            np.linspace(0, cols, n + 1).astype(int))
        for i in range(len(rb) - 1):
            for j in range(len(cb) - 1):
                if (i, j) in skip:
                    continue
                r0, r1 = rb[i], min(rb[i + 1] + overlap, rows)
                c0, c1 = cb[j], min(cb[j + 1] + overlap, cols)
                win = Window(c0, r0, c1 - c0, r1 - r0)
                profile = dict(driver="GTiff", width=c1 - c0, height=r1 - r0, count=1,
                               dtype=ds.dtypes[0], crs=ds.crs, transform=ds.window_transform(win))
                if nodata == "keep":
                    if ds.nodata is not None:
                        profile["nodata"] = ds.nodata
                elif nodata is not None:
                    profile["nodata"] = nodata
                path = os.path.join(folder, f"t{i}{j}.tif")
                with rasterio.open(path, "w", **profile) as out:
                    out.write(ds.read(1, window=win), 1)
                    out.set_band_unit(1, ds.units[0] or "")
                paths.append(path)
    return paths


def blank(src, path, cells, *, dtype=None, nodata=None):
    """A copy of ``src`` with ``cells`` (list of (rows slice, cols slice)) set to nodata."""
    with rasterio.open(src) as ds:
        z = ds.read(1)
        profile = dict(driver="GTiff", width=ds.width, height=ds.height, count=1,
                       dtype=dtype or ds.dtypes[0], crs=ds.crs, transform=ds.transform)
        nd = ds.nodata if nodata is None else nodata
        unit = ds.units[0] or ""
    z = z.astype(profile["dtype"])
    for rs, cs in cells:
        z[rs, cs] = nd
    profile["nodata"] = nd
    with rasterio.open(path, "w", **profile) as out:
        out.write(z, 1)
        out.set_band_unit(1, unit)
    return str(path)


def whole_outputs(src, folder, opts):
    """{kind: path} of the whole raster streamed as one file (the truth)."""
    outputs = {k: os.path.join(folder, f"whole_{k}.tif") for k in KINDS}
    process_file(src, outputs, opts, run=RunOptions(tile_size=128))
    return outputs


@pytest.fixture(scope="module")
def whole_of(tmp_path_factory):
    """``whole_of(src, opts)``: :func:`whole_outputs`, made once per raster and options for
    the module (the splits of one sample share their truth)."""
    made = {}

    def get(src, opts):
        if (str(src), opts) not in made:
            made[str(src), opts] = whole_outputs(src, tmp_path_factory.mktemp("whole"), opts)
        return made[str(src), opts]

    return get


def tile_outputs(path):
    stem = os.path.splitext(path)[0]
    return {k: f"{stem}_{k}.out.tif" for k in KINDS}


def assert_tiles_equal_whole(paths, whole, outputs_of=tile_outputs):
    """Every tile's outputs: its own transform and shape, and the whole's cells bit for bit."""
    for path in paths:
        with rasterio.open(path) as t:
            transform, shape, crs = t.transform, t.shape, t.crs
        for kind in KINDS:
            with rasterio.open(outputs_of(path)[kind]) as o, rasterio.open(whole[kind]) as w:
                assert o.transform == transform and o.shape == shape and o.crs == crs
                col = round((transform.c - w.transform.c) / w.transform.a)
                row = round((transform.f - w.transform.f) / w.transform.e)
                expected = w.read(window=Window(col, row, shape[1], shape[0]))
                got = o.read()
                assert o.nodata == w.nodata and o.dtypes == w.dtypes
                assert got.tobytes() == expected.tobytes(), (
                    f"{path} {kind}: {int((got != expected).sum())} cells differ, "
                    f"max {np.abs(got.astype(float) - expected).max()}")


# --------------------------------------------------------------------------- bit for bit


def _tile_cases():
    """Every sample, split, overlap and method; the quick run (-m "not slow") keeps the
    3 x 3 split with overlap on the UTM sample for every method, and one lat/lon split."""
    for name, sample in (("wgs84", WGS84_SAMPLE), ("utm", UTM_SAMPLE)):
        for n, overlap in ((2, 0), (2, 1), (3, 0), (3, 1)):
            for method, edge_order in METHOD_OPTS:
                quick = (name == "utm" and (n, overlap) == (3, 1)) or \
                    (name == "wgs84" and (n, overlap) == (2, 0) and method == "central")
                yield pytest.param(sample, n, overlap, method, edge_order,
                                   id=f"{name}-{n}-{overlap}-{method}-{edge_order}",
                                   marks=() if quick else pytest.mark.slow)


@pytest.mark.parametrize("sample, n, overlap, method, edge_order", list(_tile_cases()))
def test_each_tile_equals_the_whole_raster(tmp_path, whole_of, sample, n, overlap, method,
                                          edge_order):
    paths = split(sample, tmp_path / "tiles", n, overlap)
    opts = Options(method=method, edge_order=edge_order)
    whole = whole_of(sample, opts)
    results = tiles.process_tiles(paths, tile_outputs, opts, run=RunOptions(tile_size=64, threads=2))
    assert set(results) == set(paths) and all(r["valid"] for r in results.values())
    assert_tiles_equal_whole(paths, whole)
    # Seamless is not independent: file by file, the seams differ (the 10.9 degrees).
    alone = {k: str(tmp_path / f"alone_{k}.tif") for k in KINDS}
    process_file(paths[0], alone, opts)
    with rasterio.open(alone["slope"]) as a, rasterio.open(tile_outputs(paths[0])["slope"]) as t:
        assert not np.array_equal(a.read(), t.read())


def test_tiles_keep_their_vertical_unit_and_source_tag(tmp_path):
    paths = split(WGS84_SAMPLE, tmp_path, 2)
    tiles.process_tiles(paths, tile_outputs, Options())
    whole = raster_tags = None
    with rasterio.open(tile_outputs(paths[1])["slope"]) as ds:
        raster_tags = ds.tags()
    with rasterio.open(WGS84_SAMPLE) as ds:
        whole = ds.units[0]
    assert whole == "m"
    assert raster_tags["source"] == "t01.tif"
    assert raster_tags["z_factor_source"] == "band unit 'm'"


def test_jobs_give_the_same_files(tmp_path):
    paths = split(UTM_SAMPLE, tmp_path / "tiles", 3, 1)
    whole = whole_outputs(UTM_SAMPLE, tmp_path, Options(method="horn"))
    tiles.process_tiles(paths, tile_outputs, Options(method="horn"), jobs=3,
                        run=RunOptions(threads=1, tile_size=100))
    assert_tiles_equal_whole(paths, whole)


def test_memory_is_bounded_by_the_window(tmp_path, monkeypatch):
    """Reads are windows of tile_size plus the halo, never a whole tile or the mosaic."""
    import terrain.stream as stream

    paths = split(UTM_SAMPLE, tmp_path / "tiles", 2)
    shapes = []
    real = stream.read_padded

    def spy(ds, info, row0, row1, col0, col1, halo):
        out = real(ds, info, row0, row1, col0, col1, halo)
        shapes.append(out.shape)
        return out

    monkeypatch.setattr(stream, "read_padded", spy)
    tiles.process_tiles(paths, tile_outputs, Options(), run=RunOptions(tile_size=50, threads=1))
    assert shapes and max(max(s) for s in shapes) <= 50 + 2


# --------------------------------------------------------------------------- holes


@pytest.mark.parametrize("missing", [(1, 1), (0, 2)], ids=["centre", "corner"])
@pytest.mark.parametrize("method, edge_order", [("central", 1), ("horn", 1), ("central", 2)])
def test_missing_neighbour_equals_the_mosaic_with_those_cells_empty(tmp_path, missing, method,
                                                                     edge_order):
    rb, cb = [0, 115, 230, 344], [0, 134, 268, 403]
    paths = split(WGS84_SAMPLE, tmp_path / "tiles", 3, skip=[missing], bounds=(rb, cb))
    i, j = missing
    truth = blank(WGS84_SAMPLE, tmp_path / "holed.tif",
                  [(slice(rb[i], rb[i + 1]), slice(cb[j], cb[j + 1]))])
    opts = Options(method=method, edge_order=edge_order)
    whole = whole_outputs(truth, tmp_path, opts)
    tiles.process_tiles(paths, tile_outputs, opts)
    assert_tiles_equal_whole(paths, whole)


def test_gap_between_tiles_is_nodata(tmp_path):
    """Tiles with 10 rows and 7 columns missing between them; no nodata declared (int16):
    the gap is NaN in a Float32 mosaic, and the tiles equal the whole as float32 with NaN there."""
    rb, cb = [0, 150, 344], [0, 200, 403]
    d = tmp_path / "tiles"
    d.mkdir()
    paths = []
    with rasterio.open(WGS84_SAMPLE) as ds:
        for i, (r0, r1) in enumerate([(0, 150), (160, 344)]):
            for j, (c0, c1) in enumerate([(0, 200), (207, 403)]):
                win = Window(c0, r0, c1 - c0, r1 - r0)
                z = ds.read(1, window=win)
                assert not (z == ds.nodata).any()
                paths.append(write_tif(d / f"g{i}{j}.tif", z, crs=ds.crs,
                                       transform=ds.window_transform(win)))
    truth = blank(WGS84_SAMPLE, tmp_path / "gap.tif",
                  [(slice(150, 160), slice(None)), (slice(None), slice(200, 207))],
                  dtype="float32", nodata=np.nan)
    plan = tiles.plan_tiles(paths)
    assert len(plan.sets) == 1 and plan.sets[0].shape == (344, 403)
    opts = Options(method="horn")
    whole = whole_outputs(truth, tmp_path, opts)
    tiles.process_tiles(paths, tile_outputs, opts)
    assert_tiles_equal_whole(paths, whole)


# --------------------------------------------------------------------------- other grids


@pytest.mark.parametrize("how", ["half-pixel", "resolution", "crs"])
def test_tile_on_another_grid_is_processed_alone_with_one_warning(tmp_path, how):
    paths = split(UTM_SAMPLE, tmp_path / "tiles", 2)
    with rasterio.open(paths[3]) as ds:
        z, t, crs = ds.read(1), ds.transform, ds.crs
    odd_t = {"half-pixel": t @ Affine.translation(0.5, 0),
             "resolution": Affine(t.a / 2, 0, t.c, 0, t.e / 2, t.f),
             "crs": t}[how]
    odd = write_tif(tmp_path / "odd.tif", z, transform=odd_t,
                    crs="EPSG:32617" if how == "crs" else crs, nodata=-9999.0)
    inputs = paths + [odd]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tiles.process_tiles(inputs, tile_outputs, Options())
    mine = [w for w in caught if issubclass(w.category, tiles.TilesWarning)]
    assert len(mine) == 1 and str(mine[0].message).startswith(f"{odd}: not on the grid")
    # The set is still seamless ...
    whole = whole_outputs(UTM_SAMPLE, tmp_path, Options())
    assert_tiles_equal_whole(paths, whole)
    # ... and the odd tile got its own processing.
    alone = {k: str(tmp_path / f"alone_{k}.tif") for k in KINDS}
    process_file(odd, alone, Options())
    for kind in KINDS:
        with rasterio.open(alone[kind]) as a, rasterio.open(tile_outputs(odd)[kind]) as b:
            assert a.read().tobytes() == b.read().tobytes()


def test_identical_rasters_are_not_a_tile_set(tmp_path):
    """Two DEMs of the same place (full overlap) are processed file by file, without a warning."""
    z = np.arange(200, dtype=np.float32).reshape(10, 20)
    a, b = write_tif(tmp_path / "a.tif", z), write_tif(tmp_path / "b.tif", z * 2)
    plan = tiles.plan_tiles([a, b])
    assert plan.sets == [] and plan.alone == [a, b] and plan.warning() is None


# --------------------------------------------------------------------------- inputs


def test_glob_folder_list_file_and_vrt_name_the_same_tiles(tmp_path):
    d = tmp_path / "tiles"
    paths = split(WGS84_SAMPLE, d, 2)
    (d / "t00.tif.aux.xml").write_text("<PAMDataset/>")  # a sidecar, not a tile
    listing = tmp_path / "tiles.txt"
    listing.write_text("# my tiles\n" + "\n".join(os.path.relpath(p, tmp_path) for p in paths)
                       + "\n\n")
    vrt = tmp_path / "mosaic.vrt"
    exe = shutil.which("gdalbuildvrt") or "/usr/bin/gdalbuildvrt"
    subprocess.run([exe, str(vrt), *paths], check=True, capture_output=True)
    expected = [os.path.abspath(p) for p in paths]
    assert [os.path.abspath(p) for p in tiles.expand_inputs([str(d / "t*.tif")])] == expected
    assert [os.path.abspath(p) for p in tiles.expand_inputs([d])] == expected
    assert [os.path.abspath(p) for p in tiles.expand_inputs([listing])] == expected
    assert sorted(tiles.expand_inputs([vrt])) == expected
    assert tiles.expand_inputs([paths[0], d / "t0*.tif"]) == [paths[0], paths[0], paths[1]]
    assert tiles.expand_inputs([vrt], expand_vrt=False) == [str(vrt)]


@pytest.mark.parametrize("case", ["empty glob", "missing entry", "folder entry", "empty folder",
                                  "empty list"])
def test_bad_inputs_are_one_line_errors(tmp_path, case):
    paths = split(WGS84_SAMPLE, tmp_path / "tiles", 2)
    listing = tmp_path / "list.txt"
    if case == "empty glob":
        arg, words = str(tmp_path / "tiles" / "*.hgt"), "matches no file"
    elif case == "missing entry":
        listing.write_text(f"{paths[0]}\nnope.tif\n")
        arg, words = listing, "line 2: " + str(tmp_path / "nope.tif") + ": no such file; fix the list"
    elif case == "folder entry":
        listing.write_text(f"{paths[0]}\n{tmp_path}\n")
        arg, words = listing, "not a readable file"
    elif case == "empty folder":
        (tmp_path / "none").mkdir()
        arg, words = tmp_path / "none", "directory holding no raster file"
    else:
        listing.write_text("# nothing\n\n")
        arg, words = listing, "names no raster"
    with pytest.raises(InputError) as err:
        tiles.expand_inputs([arg])
    text = str(err.value)
    assert "\n" not in text and text.startswith(str(arg)) and words in text


def test_vrt_is_written_with_the_tiles_nodata_and_overlap(tmp_path):
    """GDAL reads the VRT back: the sample's values, the tiles' nodata, a hole as nodata."""
    paths = split(WGS84_SAMPLE, tmp_path / "tiles", 3, 1, skip=[(2, 2)])
    plan = tiles.plan_tiles(paths)
    vrt = tiles.write_vrt(plan.sets[0], str(tmp_path / "m.vrt"))
    with rasterio.open(vrt) as m, rasterio.open(WGS84_SAMPLE) as w:
        assert m.transform == w.transform and m.crs == w.crs and m.shape == w.shape
        assert m.nodata == w.nodata and m.dtypes == w.dtypes and m.units == w.units
        a, b = m.read(1), w.read(1)
    r, c = np.linspace(0, 344, 4).astype(int)[2], np.linspace(0, 403, 4).astype(int)[2]
    hole = np.zeros(a.shape, bool)
    hole[r:, c:] = True
    hole[r, c:] = hole[r:, c] = False  # the neighbours' overlap covers the edge
    assert (a[hole] == -32768).all()
    assert np.array_equal(a[~hole], b[~hole])


# --------------------------------------------------------------------------- Python


def test_open_dem_of_tiles_is_a_lazy_mosaic_whose_products_equal_the_tile_outputs(tmp_path):
    paths = split(UTM_SAMPLE, tmp_path / "tiles", 3, 1)
    dem = terrain.open_dem(paths)
    assert type(dem.data).__module__.startswith("dask")
    whole = terrain.open_dem(UTM_SAMPLE)
    assert dem.rio.transform() == whole.rio.transform() and dem.rio.crs == whole.rio.crs
    assert np.array_equal(dem.values, whole.values, equal_nan=True)
    assert dem.attrs["z_factor_source"] == "band unit 'm'"
    opts = Options(method="horn")
    tiles.process_tiles(paths, tile_outputs, opts)
    products = {"slope": terrain.slope(dem, method="horn"),
                "aspect": terrain.aspect(dem, method="horn"),
                "hillshade": terrain.hillshade(dem, method="horn")}
    transform = whole.rio.transform()
    for path in paths:
        for kind, da in products.items():
            with rasterio.open(tile_outputs(path)[kind]) as o:
                col = round((o.transform.c - transform.c) / transform.a)
                row = round((o.transform.f - transform.f) / transform.e)
                got = o.read(1)
                part = da.values[row:row + o.height, col:col + o.width]
                if kind == "hillshade":
                    expected = np.where(np.isnan(part), 0, np.floor(part + 0.5)).astype(np.uint8)
                else:
                    expected = np.where(np.isnan(part), np.float32(-9999), part).astype(np.float32)
                assert got.tobytes() == expected.tobytes(), (path, kind)


def test_open_dem_refuses_tiles_on_two_grids(tmp_path):
    paths = split(UTM_SAMPLE, tmp_path / "tiles", 2)
    odd = write_tif(tmp_path / "odd.tif", np.ones((5, 5), np.float32),
                    transform=Affine(30, 0, 15, 0, -30, 4e6))
    with pytest.raises(InputError, match="odd.tif: not on the grid of"):
        terrain.open_dem(paths + [odd])


def test_an_output_is_never_one_of_the_tiles(tmp_path):
    """Each tile reads its neighbours: none of them (nor itself) may be an output."""
    import hashlib

    paths = split(WGS84_SAMPLE, tmp_path, 2)
    digest = {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}
    plan = tiles.plan_tiles(paths)
    with tiles.TileWorkdir() as work:
        work.vrt_for(plan.sets[0], 0)
        tile_set, tile = plan.job(paths[0])
        for target in (paths[3], paths[0]):
            with pytest.raises(terrain.errors.OutputError, match="is one of the input tiles"):
                tiles.process_tile(tile_set, tile, {"slope": target}, Options(),
                                   write=WriteOptions(overwrite=True))
    assert {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths} == digest
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in paths)


# --------------------------------------------------------------------------- command line


def _cli(*args):
    from click.testing import CliRunner

    from cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def _cli_outputs(out):
    return lambda p: {k: str(out / f"{Path(p).stem}_{k}.tif") for k in KINDS}


@pytest.mark.parametrize("threads, at_once, tile_threads", [("2", 2, 1), ("8", 3, 8), ("1", 1, 1)],
                         ids=["one-tile-per-thread", "shared-threads", "one-thread"])
def test_analyze_runs_tiles_of_a_set_at_once(tmp_path, monkeypatch, threads, at_once,
                                             tile_threads):
    """With --jobs 1, tiles of a set run several at once (terrain.tiles.schedule): 9 tiles on
    2 threads, 2 at once each on its thread; on 8 threads, TILE_LANES at once on the 8
    shared threads; on 1, one by one. Each tile equals the whole raster's analyze bit for
    bit, and the lines come in input order (a tile finished early waits for those before)."""
    import threading
    import time

    import terrain.stream as stream

    assert tiles.TILE_LANES == 3
    paths = split(UTM_SAMPLE, tmp_path / "tiles", 3, 1)
    whole = tmp_path / "whole"
    assert _cli("-q", "analyze", UTM_SAMPLE, "-d", whole, "--no-maps").exit_code == 0
    inside, most, used, lock = [0], [0], set(), threading.Lock()
    real = stream.process_file

    def spy(*args, **kwargs):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            used.add(kwargs["run"].threads)
        try:
            time.sleep(0.1)  # the next tiles start meanwhile, if they are allowed to
            return real(*args, **kwargs)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(stream, "process_file", spy)
    out = tmp_path / "out"
    result = _cli("analyze", *paths, "-d", out, "--no-maps", "--threads", threads,
                  "--tile-size", "32")
    assert result.exit_code == 0, result.output
    assert most[0] == at_once and used == {tile_threads}
    assert result.stderr.splitlines() == [
        f"{p}: wrote {out}/{Path(p).stem}_{{slope,aspect,gradient,hillshade}}.tif" for p in paths]
    truth = {k: str(whole / f"jacksboro_utm16n_{k}.tif") for k in KINDS}
    assert_tiles_equal_whole(paths, truth, _cli_outputs(out))


def test_a_failing_tile_among_those_at_once_is_reported_the_others_written(tmp_path):
    """A tile whose output exists (no --overwrite) fails in one line while the tiles around it
    run; the others are written, the existing file is untouched, exit 1."""
    paths = split(UTM_SAMPLE, tmp_path / "tiles", 3, 1)
    out = tmp_path / "out"
    out.mkdir()
    taken = out / "t11_aspect.tif"
    taken.write_bytes(b"someone else's")
    result = _cli("analyze", *paths, "-d", out, "--no-maps", "--threads", "2", "--tile-size", "32")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 10 and "Traceback" not in result.output
    assert lines[4].startswith(f"terrain: error: {taken}") and "--overwrite" in lines[4]
    assert lines[:4] + lines[5:9] == [
        f"{p}: wrote {out}/{Path(p).stem}_{{slope,aspect,gradient,hillshade}}.tif"
        for p in paths[:4] + paths[5:]]
    assert lines[9] == f"terrain: 1 of 9 DEMs failed: {paths[4]}"
    assert taken.read_bytes() == b"someone else's"
    assert sorted(os.listdir(out)) == sorted(
        [f"{Path(p).stem}_{k}.tif" for p in paths if p != paths[4] for k in KINDS]
        + ["t11_aspect.tif"])


@pytest.mark.parametrize("case", ["int16 nodata, a tile missing", "int16 no nodata, a gap",
                                  "float32 overlap, no nodata", "int16 nodata, overlap"])
def test_windows_read_from_the_tiles_equal_gdals_reading_of_the_vrt(tmp_path, case):
    """The set's workers read the mosaic's windows from the tiles (SetExecutor.read_padded);
    truth: GDAL reading the VRT (terrain.stream.read_padded on it), window by window,
    halo and edges included."""
    import terrain.stream as stream
    from terrain.raster import GDAL_ENV, open_raster

    folder = tmp_path / "tiles"
    if case.startswith("int16 nodata"):
        overlap = 1 if case.endswith("overlap") else 0
        paths = split(WGS84_SAMPLE, folder, 3, overlap, skip=[] if overlap else [(1, 2)])
    elif case.startswith("int16 no nodata"):
        folder.mkdir()
        with rasterio.open(WGS84_SAMPLE) as ds:
            paths = [write_tif(folder / f"g{i}.tif", ds.read(1, window=w), crs=ds.crs,
                               transform=ds.window_transform(w))
                     for i, w in enumerate([Window(0, 0, 200, 150), Window(207, 0, 196, 150),
                                            Window(0, 160, 403, 184)])]
    else:
        src = blank(WGS84_SAMPLE, tmp_path / "f.tif", [], dtype="float32", nodata=np.nan)
        paths = split(src, folder, 2, 1, nodata=None)
    plan = tiles.plan_tiles(paths)
    assert len(plan.sets) == 1
    tile_set = plan.sets[0]
    with tiles.TileWorkdir() as work:
        work.vrt_for(tile_set, 0)
        info = tile_set.info()
        assert tile_set.direct_reads() == (case != "int16 nodata, overlap")
        pool = tile_set.executor(2)
        rows, cols = info.shape
        with rasterio.Env(**GDAL_ENV), open_raster(tile_set.vrt) as vrt:
            for r0, r1, c0, c1 in [(0, rows, 0, cols), (140, 170, 190, 215), (0, 7, 396, cols),
                                   (rows - 3, rows, 0, 50), (100, 230, 130, 280)]:
                for halo in (1, 2):
                    got = pool.submit(pool.read_padded, info, r0, r1, c0, c1, halo).result()
                    expected = stream.read_padded(vrt, info, r0, r1, c0, c1, halo)
                    assert got.dtype == expected.dtype and got.shape == expected.shape
                    assert np.array_equal(got, expected, equal_nan=True), (r0, r1, c0, c1, halo)


@pytest.mark.slow
def test_analyze_of_a_tile_set_interrupted_leaves_whole_tiles_only(tmp_path):
    """SIGINT while several tiles of a set run at once (--threads 2): exit 130, one line, no
    temporary file; each tile has all of its four outputs or none, and those it has equal
    the whole raster's analyze on its cells (finished before the signal, complete)."""
    import signal
    import subprocess
    import sys
    import time

    rng = np.random.default_rng(5)
    dem = write_tif(tmp_path / "big.tif", rng.random((3000, 3000), dtype=np.float32) * 500,
                    nodata=-9999.0)
    paths = split(dem, tmp_path / "tiles", 3)
    out = tmp_path / "out"
    out.mkdir()
    exe = os.path.join(os.path.dirname(sys.executable), "terrain")
    cmd = [exe, "analyze", *paths, "-d", str(out), "--no-maps", "--threads", "2",
           "--tile-size", "256", "--co", "ZSTD_LEVEL=9"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not any(n.endswith(".part.tif") for n in os.listdir(out)):
            assert proc.poll() is None, f"exited before writing: {proc.communicate()}"
            assert time.monotonic() < deadline, "no temporary output in 60 s"
            time.sleep(0.02)
        time.sleep(1.0)
        assert proc.poll() is None, "the run finished before the signal; make the DEM bigger"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (proc.returncode, err)
    lines = err.strip().splitlines()
    assert "Traceback" not in err and "interrupted" in lines[-1], err
    names = os.listdir(out)
    assert not [n for n in names if n.startswith(".")], names
    stems = {Path(p).stem for p in paths}
    have = {s: sorted(n for n in names if n.startswith(s + "_")) for s in stems}
    assert all(v in ([], sorted(f"{s}_{k}.tif" for k in KINDS)) for s, v in have.items()), have
    finished = [p for p in paths if have[Path(p).stem]]
    assert len(finished) < len(paths)
    # The finished tiles' lines, in input order (one finished ahead of a running one has
    # no line yet), and every finished tile named in the last line; their files complete.
    assert lines[:-1] == [f"{p}: wrote {out}/{Path(p).stem}_{{slope,aspect,gradient,hillshade}}"
                          ".tif" for p in finished[:len(lines) - 1]], err
    if finished:
        assert lines[-1].startswith("terrain: interrupted; finished before it") and all(
            p in lines[-1] for p in finished), err
        whole = tmp_path / "whole"
        assert _cli("-q", "analyze", dem, "-d", whole, "--no-maps").exit_code == 0
        assert_tiles_equal_whole(finished, {k: str(whole / f"big_{k}.tif") for k in KINDS},
                                 _cli_outputs(out))


def test_workers_keep_a_bounded_number_of_tiles_open(tmp_path, monkeypatch):
    """Each worker closes its least recently used tile beyond OPEN_PER_THREAD: memory does
    not grow with the number of tiles, and the windows still equal GDAL's VRT reads."""
    import terrain.stream as stream
    from terrain.raster import GDAL_ENV, open_raster

    monkeypatch.setattr(tiles, "OPEN_PER_THREAD", 2)
    paths = split(WGS84_SAMPLE, tmp_path / "tiles", 3)
    tile_set = tiles.plan_tiles(paths).sets[0]
    with tiles.TileWorkdir() as work:
        work.vrt_for(tile_set, 0)
        info = tile_set.info()
        pool = tile_set.executor(2)
        with rasterio.Env(**GDAL_ENV), open_raster(tile_set.vrt) as vrt:
            for r0 in range(0, 344, 40):
                for c0 in range(0, 403, 60):
                    r1, c1 = min(r0 + 40, 344), min(c0 + 60, 403)
                    got = pool.submit(pool.read_padded, info, r0, r1, c0, c1, 1).result()
                    assert np.array_equal(got, stream.read_padded(vrt, info, r0, r1, c0, c1, 1),
                                          equal_nan=True)
        opened = [len(mine) for mine in pool._handles]
        assert opened and max(opened) <= 2


@pytest.mark.parametrize("overlap", [0, 1], ids=["edge to edge", "one-pixel overlap"])
def test_lanes_read_halos_from_edge_strips_equal_to_gdals_reading_of_the_vrt(tmp_path, overlap):
    """Tiles run as lanes of one thread (tile_threads 1) read their halos from the set's
    HaloStrips; truth: GDAL reading the VRT, window by window (a tile's whole, windows
    inside it, windows across corners), halo 1 and 2; each edge strip is read at most once."""
    import terrain.stream as stream
    from terrain.raster import GDAL_ENV, open_raster

    # No nodata declared: overlapping tiles are read straight from the files too.
    paths = split(WGS84_SAMPLE, tmp_path / "tiles", 3, overlap, nodata=None)
    tile_set = tiles.plan_tiles(paths).sets[0]
    assert tile_set.direct_reads()
    assert tiles.schedule(tile_set, 2) == 2 and tile_set.tile_threads == 1
    reads = []
    real = tiles.HaloStrips.read

    def spy(self, k, shape, part, read):
        return real(self, k, shape, part, lambda p: (reads.append((k, p)), read(p))[1])

    with tiles.TileWorkdir() as work, pytest.MonkeyPatch.context() as mp:
        mp.setattr(tiles.HaloStrips, "read", spy)
        work.vrt_for(tile_set, 0)
        info = tile_set.info()
        lane = tile_set.executor(1)
        assert lane is not None and lane._pool is None  # the windows run on the lane's thread
        windows = [t.window for t in tile_set.tiles]  # each tile whole, in the set's order
        windows += [(10, 60, 20, 90), (100, 130, 120, 150), (110, 125, 125, 140), (0, 344, 0, 40)]
        with rasterio.Env(**GDAL_ENV), open_raster(tile_set.vrt) as vrt:
            for halo in (1, 2):
                for r0, r1, c0, c1 in windows:
                    got = lane.submit(lane.read_padded, info, r0, r1, c0, c1, halo).result()
                    expected = stream.read_padded(vrt, info, r0, r1, c0, c1, halo)
                    assert np.array_equal(got, expected, equal_nan=True), (r0, r1, c0, c1, halo)
        assert len(tile_set.strips()) > 0
        strip_reads = [(k, p) for k, p in reads if min(p[0][1] - p[0][0], p[1][1] - p[1][0]) <= 2]
        assert len(strip_reads) == len(set(strip_reads))  # never the same strip twice


@pytest.mark.parametrize("kept", [9, 4], ids=["all kept", "KEEP_OPEN 4"])
def test_tiles_kept_open_from_the_planning_are_read_with_fewer_opens(tmp_path, monkeypatch,
                                                                      kept):
    """plan_tiles(keep_open=True) keeps the set's tiles open (at most KEEP_OPEN) for the
    lanes' reads, neighbours' edge strips included: the windows still equal GDAL's reading
    of the VRT (truth), the tiles are opened fewer times than without (counted), and
    closing the set closes them all."""
    import terrain.raster as raster
    import terrain.stream as stream
    from terrain.raster import GDAL_ENV, open_raster

    monkeypatch.setattr(tiles, "KEEP_OPEN", kept)
    paths = split(WGS84_SAMPLE, tmp_path / "tiles", 3)
    opens = []
    real_open = raster.open_raster

    def counting(path, *args, **kwargs):
        opens.append(path)
        return real_open(path, *args, **kwargs)

    counts = {}
    for keep_open in (False, True):
        tile_set = tiles.plan_tiles(paths, keep_open=keep_open).sets[0]
        planned = dict(tile_set._opened)
        assert len(planned) == (min(kept, 9) if keep_open else 0)
        assert all(not ds.closed for ds in planned.values())
        assert tiles.schedule(tile_set, 2) == 2 and tile_set.tile_threads == 1
        with tiles.TileWorkdir() as work:
            work.vrt_for(tile_set, 0)
            info = tile_set.info()
            lane = tile_set.executor(1)
            opens.clear()
            with monkeypatch.context() as mp, rasterio.Env(**GDAL_ENV), \
                    open_raster(tile_set.vrt) as vrt:
                mp.setattr(raster, "open_raster", counting)
                first = None
                for halo in (1, 2):
                    for r0, r1, c0, c1 in [t.window for t in tile_set.tiles]:
                        got = lane.submit(lane.read_padded, info, r0, r1, c0, c1, halo).result()
                        expected = stream.read_padded(vrt, info, r0, r1, c0, c1, halo)
                        assert np.array_equal(got, expected, equal_nan=True), (r0, r1, halo)
                    if first is None:  # opens of the first pass over the tiles
                        first = len([p for p in opens if p in paths])
            counts[keep_open] = (first, len([p for p in opens if p in paths]))
        assert all(ds.closed for ds in planned.values()) and not tile_set._opened
    # Fewer opens in all; the first pass with every tile kept: none at all (the tiles read
    # whole are closed then, so the second pass opens each once, for its own read).
    assert counts[True][1] < counts[False][1] and counts[False][0] > 0
    if kept >= 9:
        assert counts[True] == (0, 9)


def test_plan_tiles_closes_what_it_keeps_for_files_left_alone(tmp_path):
    """A file on another grid is processed alone (opened again then): plan_tiles keeps
    open only the tiles of a set; a set written nowhere is closed by TileSet.close."""
    paths = split(WGS84_SAMPLE, tmp_path / "tiles", 2)
    with rasterio.open(WGS84_SAMPLE) as ds:
        other = write_tif(tmp_path / "other.tif", ds.read(1)[:50, :60], crs=ds.crs,
                          transform=ds.transform @ Affine.translation(0.5, 0))
    plan = tiles.plan_tiles(paths + [str(other)], keep_open=True)
    assert plan.alone == [str(other)] and len(plan.sets) == 1
    assert sorted(plan.sets[0]._opened) == sorted(paths)
    handles = list(plan.sets[0]._opened.values())
    plan.sets[0].close()
    assert all(ds.closed for ds in handles) and not plan.sets[0]._opened


def test_lanes_compress_their_own_files_and_equal_the_whole_raster(tmp_path, whole_of,
                                                                    monkeypatch):
    """A set run as lanes (tile_threads 1) writes its tiles with inline encoding (each lane
    compresses its own files' blocks; the encoding pool is never used) and the outputs
    still equal the whole raster's on each tile's cells; a set on shared threads keeps
    the pool."""
    from terrain import tiff

    paths = split(UTM_SAMPLE, tmp_path / "tiles", 3)
    tile_set = tiles.plan_tiles(paths).sets[0]
    for tile_threads, inline in ((1, True), (None, False)):
        tile_set.tile_threads = tile_threads
        with tiles.writing(tile_set) as templates:
            assert templates is tile_set.templates()
            assert tiff._INLINE.get() is inline
    assert tiff._INLINE.get() is False
    whole = whole_of(UTM_SAMPLE, Options())  # (streamed with the pool)

    def no_pool():
        raise AssertionError("encoder_pool used by a lane")

    monkeypatch.setattr(tiff, "encoder_pool", no_pool)
    out = tmp_path / "out"
    tiles.process_tiles(paths, lambda p: {k: str(out / f"{Path(p).stem}_{k}.tif")
                                          for k in KINDS},
                        Options(), run=RunOptions(threads=2))
    assert_tiles_equal_whole(paths, whole,
                             lambda p: {k: out / f"{Path(p).stem}_{k}.tif" for k in KINDS})


def test_halo_strips_read_each_strip_once_and_stay_bounded():
    """HaloStrips on a synthetic 'tile' (the values are the truth): parts inside an edge
    strip come from the strip (read once, even by threads asking at once), a read of the
    whole tile fills its strips, and the strips kept stay under the byte limit."""
    import threading
    import time

    z = np.arange(50 * 70, dtype=np.float32).reshape(50, 70)
    calls = []

    def read(part):
        (a0, a1), (b0, b1) = part
        calls.append(part)
        time.sleep(0.05)  # (threads asking at once overlap)
        return z[a0:a1, b0:b1].copy()

    strips = tiles.HaloStrips()
    got = []
    threads = [threading.Thread(target=lambda: got.append(strips.read(0, z.shape, ((0, 1), (5, 30)), read)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [((0, 2), (0, 70))] and all(np.array_equal(g, z[0:1, 5:30]) for g in got)
    assert np.array_equal(strips.read(0, z.shape, ((1, 2), (60, 70)), read), z[1:2, 60:70])
    assert np.array_equal(strips.read(0, z.shape, ((3, 40), (68, 70)), read), z[3:40, 68:70])
    assert calls[-1] == ((0, 50), (68, 70)) and len(calls) == 2
    # A whole tile's read fills its four strips: its neighbours' halos need no read.
    assert np.array_equal(strips.read(1, z.shape, ((0, 50), (0, 70)), read), z)
    n = len(calls)
    for part in [((48, 50), (0, 70)), ((0, 50), (0, 1)), ((10, 20), (69, 70)), ((0, 2), (3, 9))]:
        (a0, a1), (b0, b1) = part
        assert np.array_equal(strips.read(1, z.shape, part, read), z[a0:a1, b0:b1])
    assert len(calls) == n
    # Bounded: 3 strips of 70 x 2 float32 at most.
    small = tiles.HaloStrips(max_bytes=3 * 70 * 2 * 4)
    for k in range(20):
        small.read(k, z.shape, ((0, 50), (0, 70)), read)
    assert len(small) <= 3


CHURN = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from cli.main import keep_freed_memory
    keep_freed_memory()
def churn():  # what each tile does: its windows' arrays and 1 MB block buffers, then frees
    for _ in range(100):
        blocks = [np.ones((512, 512), np.float32) for _ in range(8)]
        big = np.ones((1024, 1024), np.float64)
        del blocks, big
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="glibc's malloc only")
def test_a_tile_set_keeps_freed_memory_instead_of_faulting_it_in_again(tmp_path):
    """keep_freed_memory (the command line's malloc policy): memory freed by one tile is
    reused by the next without page faults (truth: the kernel's count of minor faults,
    getrusage, in a fresh process); the default malloc faults every page in again."""
    script = tmp_path / "churn.py"
    script.write_text(CHURN)
    faults = {how: int(subprocess.run([sys.executable, str(script), how], check=True,
                                      capture_output=True, text=True).stdout)
              for how in ("default", "keep")}
    # 100 x 16 MB allocated and freed: 400,000 pages; the default faults most in again.
    assert faults["default"] > 100_000
    assert faults["keep"] < faults["default"] / 20
