"""Streaming file -> file (issue 4, seams): tiled output equals the in-memory library.

Truths: the in-memory result of ``terrain.compute`` on ``terrain.open_dem`` of the
same file (one block: the test rasters are smaller than the in-memory tile), cast
to float32 with NaN -> -9999 as the writer does; and ``numpy.gradient`` for the
``central`` method. Tile sizes go down to one pixel so that every seam falls inside
the raster, and nodata cells sit on the seams of every tile size used.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine

import terrain
import terrain.stream
from conftest import DIFFERENCE_METHODS, METHODS, write_tif
from terrain.engine import Options, RunOptions
from terrain.stream import process_file
from terrain.raster import ReadOptions

TILE_SIZES = (1, 2, 3, 7, 16, 1024)
# (tile size, threads): every tile size; 1 and 2 threads on the same tile size too.
RUNS = ((1, 2), (2, 1), (3, 2), (7, 1), (7, 2), (16, 2), (1024, 1))
SHAPE = (23, 19)  # rows, cols; not a multiple of any tile size above but 1
NODATA = -9999.0

# Output file kinds and the bands (products) they hold: every product once.
KINDS = {"slope": ("slope",), "aspect": ("aspect",), "gradient": ("dzdx", "dzdy"),
         "hillshade": ("hillshade",)}
# The single-band gradient kinds, checked on fewer runs.
EXTRA_KINDS = {"dzdx": ("dzdx",), "dzdy": ("dzdy",)}

GRIDS = {
    "utm": ("EPSG:32616", Affine(30.0, 0, 731000.0, 0, -20.0, 4069000.0)),
    "wgs84": ("EPSG:4326", Affine(1 / 1200, 0, -84.41, 0, -1 / 1200, 36.73)),
    "utm-south-up": ("EPSG:32616", Affine(10.0, 0, 731000.0, 0, 25.0, 4060000.0)),
}


def seam_nodata_mask(shape):
    """Nodata on the seams of every tile size: rows/columns 2, 3, 6, 7, 14, 16, ..."""
    mask = np.zeros(shape, bool)
    mask[7, 0:6] = True          # along the seam between tile rows 0-6 / 7-13 (tile 7)
    mask[3:11, 16] = True        # down the seam of tile 16 (and 1, 2)
    mask[6, 6] = mask[3, 3] = mask[2, 2] = mask[14, 14] = True  # tile corners (3, 7, 2 ...)
    mask[15:17, 6:8] = True      # a 2x2 void crossing the seams of tiles 2 and 16
    mask[0, 9] = mask[22, 18] = True  # on the raster's edge and corner
    mask[20, 0:3] = True
    return mask


def make_dem(path, grid, *, nodata_cells=True, dtype=np.float32):
    """A rough random surface (not a plane: seams must matter) with nodata on the seams."""
    rng = np.random.default_rng(42)
    rows, cols = SHAPE
    z = 200.0 + np.cumsum(rng.normal(0, 3, SHAPE), axis=0) + np.cumsum(rng.normal(0, 3, SHAPE), 1)
    z = z.astype(dtype)
    if nodata_cells:
        z[seam_nodata_mask(SHAPE)] = NODATA
    crs, transform = GRIDS[grid]
    return write_tif(path, z, transform=transform, crs=crs, nodata=NODATA)


def read_file(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.profile, ds.descriptions


def expected_bands(dem_path, kind, method, edge_order):
    """The in-memory library's products for a file kind, encoded as the writer encodes them."""
    names = {**KINDS, **EXTRA_KINDS}[kind]
    dem = terrain.open_dem(dem_path)
    res = terrain.compute(dem, names, method=method, edge_order=edge_order)
    bands = []
    for name in names:
        v = res[name].values
        if name == "hillshade":
            bands.append(np.where(np.isnan(v), 0, np.floor(v + 0.5)).astype(np.uint8))
        else:
            bands.append(np.where(np.isnan(v), np.float32(NODATA), v.astype(np.float32)))
    return np.stack(bands)


def assert_bitwise_equal(a, b, msg=""):
    assert a.shape == b.shape and a.dtype == b.dtype, msg
    view = np.uint32 if a.dtype == np.float32 else a.dtype
    diff = a.view(view) != b.view(view)
    assert not diff.any(), f"{msg}: {diff.sum()} cells differ, first at {np.argwhere(diff)[:5].tolist()}"


@pytest.fixture(scope="module")
def dems(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seams")
    return {g: make_dem(folder / f"{g}.tif", g) for g in GRIDS}


@pytest.fixture(scope="module")
def truths(dems):
    cache = {}

    def get(grid, method, edge_order):
        key = (grid, method, edge_order)
        if key not in cache:
            cache[key] = {k: expected_bands(dems[grid], k, method, edge_order) for k in KINDS}
        return cache[key]

    return get


def test_dem_has_nodata_on_every_seam():
    """The fixture really puts voids on the seams (the test below is only as good as this)."""
    mask = seam_nodata_mask(SHAPE)
    for tile in TILE_SIZES[:-1]:
        seam_rows = [r for r in range(tile, SHAPE[0], tile)]
        seam_cols = [c for c in range(tile, SHAPE[1], tile)]
        touching = mask[[r for s in seam_rows for r in (s - 1, s)], :].any() or \
            mask[:, [c for s in seam_cols for c in (s - 1, s)]].any()
        assert touching, tile


# The quick run keeps every method on the UTM grid with edge order 1, and edge order 2 and the
# lat/lon grid for the difference stencils (the least-squares fits barely use the edge order);
# the full run has every combination.
CASES = [(g, m, e) if (g, e) == ("utm", 1) or (m in DIFFERENCE_METHODS and (g == "utm") != (e == 1))
         else pytest.param(g, m, e, marks=pytest.mark.slow)
         for g in ("utm", "wgs84") for m in METHODS for e in (1, 2)] + [
    ("utm-south-up", "central", 1), ("utm-south-up", "horn", 2)]


@pytest.mark.parametrize("grid, method, edge_order", CASES)
def test_tiled_equals_in_memory_every_tile_size(grid, method, edge_order, dems, truths, tmp_path):
    """Every product, every tile size, 1 and 2 threads: bit for bit the in-memory result."""
    truth = truths(grid, method, edge_order)
    opts = Options(method=method, edge_order=edge_order)
    assert {t for t, _ in RUNS} == set(TILE_SIZES)
    for tile, threads in RUNS:
        out = tmp_path / f"t{tile}_n{threads}"
        outputs = {k: out / f"{k}.tif" for k in KINDS}
        res = process_file(dems[grid], outputs, opts,
                           run=RunOptions(tile_size=tile, threads=threads))
        assert res == {"valid": True, "cells": SHAPE[0] * SHAPE[1]}
        for kind, path in outputs.items():
            data, profile, descriptions = read_file(path)
            assert descriptions == KINDS[kind]
            assert profile["nodata"] == (0 if kind == "hillshade" else NODATA)
            assert_bitwise_equal(data, truth[kind], f"{kind} tile={tile} threads={threads}")
    # The voids really are voids in the outputs, and their neighbours got values.
    slope = truth["slope"][0]
    mask = seam_nodata_mask(SHAPE)
    assert np.all(slope[mask] == NODATA)
    assert np.all(slope[~mask] != NODATA)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("tile", [2, 7])
def test_single_band_gradient_files(tile, method, dems, tmp_path):
    """The dzdx and dzdy file kinds equal the in-memory result too (geographic DEM)."""
    outputs = {k: tmp_path / f"{k}.tif" for k in EXTRA_KINDS}
    process_file(dems["wgs84"], outputs, Options(method=method, edge_order=2),
                 run=RunOptions(tile_size=tile, threads=2))
    for kind, path in outputs.items():
        data, _, descriptions = read_file(path)
        assert descriptions == EXTRA_KINDS[kind]
        assert_bitwise_equal(data, expected_bands(dems["wgs84"], kind, method, 2), kind)


@pytest.mark.parametrize("edge_order", [1, 2])
@pytest.mark.parametrize("tile", [1, 3, 16])
def test_central_stream_is_numpy_gradient(tile, edge_order, tmp_path):
    """Independent truth for the streamed numbers: numpy.gradient on a void-free DEM."""
    dem = make_dem(tmp_path / "dem.tif", "utm", nodata_cells=False, dtype=np.float64)
    with rasterio.open(dem) as ds:
        z = ds.read(1)
        dx, dy = ds.transform.a, -ds.transform.e
    out = tmp_path / "g.tif"
    process_file(dem, {"gradient": out},
                 Options(method="central", edge_order=edge_order, geometry="planar"),
                 run=RunOptions(tile_size=tile, threads=2))
    gy, gx = np.gradient(z, dy, dx, edge_order=edge_order)
    with rasterio.open(out) as ds:
        np.testing.assert_allclose(ds.read(1), gx.astype(np.float32), rtol=2e-6, atol=1e-7)
        np.testing.assert_allclose(ds.read(2), (-gy).astype(np.float32), rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("tile", [4, 1024])
def test_one_read_pass_for_all_products(tile, threads, dems, tmp_path, monkeypatch):
    """Four output files from one process_file call: each window is read exactly once."""
    calls = []
    real = terrain.stream.read_padded

    def counting(ds, info, row0, row1, col0, col1, halo):
        calls.append((row0, row1, col0, col1))
        return real(ds, info, row0, row1, col0, col1, halo)

    monkeypatch.setattr(terrain.stream, "read_padded", counting)
    outputs = {k: tmp_path / f"{k}.tif" for k in ("slope", "aspect", "gradient", "hillshade")}
    process_file(dems["utm"], outputs, Options(method="horn"),
                 run=RunOptions(tile_size=tile, threads=threads))
    rows, cols = SHAPE
    expected = [(r, min(r + tile, rows), c, min(c + tile, cols))
                for r in range(0, rows, tile) for c in range(0, cols, tile)]
    assert sorted(calls) == sorted(expected)  # every window once, none twice
    assert all(p.exists() for p in outputs.values())


def test_output_georeferencing_is_the_input(dems, tmp_path):
    out = tmp_path / "slope.tif"
    process_file(dems["wgs84"], {"slope": out}, run=RunOptions(tile_size=5, threads=2))
    with rasterio.open(dems["wgs84"]) as src, rasterio.open(out) as dst:
        assert dst.crs == src.crs
        assert dst.transform == src.transform
        assert (dst.height, dst.width) == (src.height, src.width)
        assert dst.dtypes[0] == "float32"


# --------------------------------------------------------------------------------------
# Display rasters accumulated while streaming (maps from the same pass, issue 11)
# --------------------------------------------------------------------------------------

def block_means(a, dshape):
    """Mean of the finite cells of each display cell, by brute force (NaN where none)."""
    rows, cols = a.shape
    rc = np.arange(rows) * dshape[0] // rows
    cc = np.arange(cols) * dshape[1] // cols
    out = np.full(dshape, np.nan)
    for i in range(dshape[0]):
        for j in range(dshape[1]):
            cell = a[rc == i][:, cc == j]
            if np.isfinite(cell).any():
                out[i, j] = np.nanmean(cell)
    return out


@pytest.mark.parametrize("shape, dshape, tile", [((37, 53), (10, 7), (6, 11)),
                                                 ((40, 30), (40, 30), (7, 7)),
                                                 ((64, 64), (16, 16), (16, 16)),
                                                 ((100, 30), (33, 29), (9, 30))])
def test_display_grid_block_means_and_centre_cells(shape, dshape, tile):
    rng = np.random.default_rng(3)
    z = rng.random(shape).astype(np.float32) * 50
    z[rng.random(shape) < 0.3] = np.nan
    z[: shape[0] // 3, : shape[1] // 3] = np.nan  # whole display cells without data
    grid = terrain.stream.DisplayGrid(shape, dshape, {"avg": "average", "pick": "nearest"})
    # Windows in an odd order, each cut by the tiles: seams fall inside display cells.
    wins = [(r, min(r + tile[0], shape[0]), c, min(c + tile[1], shape[1]))
            for r in range(0, shape[0], tile[0]) for c in range(0, shape[1], tile[1])]
    for r0, r1, c0, c1 in wins[::-1]:
        block = z[r0:r1, c0:c1].copy()
        grid.add(r0, r1, c0, c1, {"avg": block, "pick": block})
    np.testing.assert_allclose(grid.result("avg"), block_means(z.astype(np.float64), dshape),
                               rtol=1e-6)
    assert np.isnan(grid.result("avg")).any()
    # Nearest: GDAL's own decimation of the same array is the truth.
    with rasterio.MemoryFile() as mem:
        with mem.open(driver="GTiff", width=shape[1], height=shape[0], count=1,
                      dtype="float32", crs="EPSG:32616",
                      transform=Affine(10, 0, 0, 0, -10, 0)) as ds:
            ds.write(z, 1)
        with mem.open() as ds:
            gdal = ds.read(1, out_shape=dshape, resampling=rasterio.enums.Resampling.nearest)
    np.testing.assert_array_equal(grid.result("pick"), gdal)


def test_display_grid_long_runs_and_windows_without_nodata():
    # A display cell over more than 255 rows (the valid-cell counts outgrow bytes), and
    # windows with no NaN at all next to windows with some (two ways of counting).
    rng = np.random.default_rng(5)
    shape, dshape = (620, 45), (2, 4)
    z = rng.random(shape).astype(np.float32) * 50
    z[400:, 30:][rng.random((220, 15)) < 0.5] = np.nan
    grid = terrain.stream.DisplayGrid(shape, dshape, {"avg": "average"})
    for c0 in range(0, shape[1], 15):
        block = z[:, c0:c0 + 15].copy()
        grid.add(0, shape[0], c0, c0 + 15, {"avg": block})
    np.testing.assert_allclose(grid.result("avg"), block_means(z.astype(np.float64), dshape),
                               rtol=1e-6)


def written(path):
    """Band 1 of a product file, NaN for its nodata."""
    with rasterio.open(path) as ds:
        return ds.read(1, masked=True).astype(np.float64).filled(np.nan)


def test_display_from_the_same_pass_is_the_written_product_averaged(tmp_path):
    dem = make_dem(tmp_path / "dem.tif", "utm")
    dshape = (9, 7)  # 23 x 19 cells: uneven display cells, tiles of 4 cut through them
    display = terrain.stream.DisplayGrid(SHAPE, dshape, {"slope": "average", "aspect": "nearest",
                                                         "hillshade": "average"})
    horn = Options(method="horn")
    process_file(dem, {"slope": tmp_path / "s.tif", "aspect": tmp_path / "a.tif"}, Options(),
                 display=display, product_opts={"hillshade": horn},
                 run=RunOptions(tile_size=4, threads=2))
    # The hillshade was computed for the display (no file holds it), with its own options.
    process_file(dem, {"hillshade": tmp_path / "h.tif"}, horn)
    np.testing.assert_allclose(display.result("slope"),
                               block_means(written(tmp_path / "s.tif"), dshape), rtol=1e-6)
    # The file holds the hillshade rounded to bytes: half a grey level at most.
    np.testing.assert_allclose(display.result("hillshade"),
                               block_means(written(tmp_path / "h.tif"), dshape), atol=0.5)
    with rasterio.open(tmp_path / "a.tif") as ds:
        aspect = ds.read(1, out_shape=dshape, resampling=rasterio.enums.Resampling.nearest,
                         masked=True).astype(np.float64).filled(np.nan)
    np.testing.assert_array_equal(display.result("aspect"), aspect)


def test_product_opts_give_the_hillshade_its_own_method_from_one_read(tmp_path):
    dem = make_dem(tmp_path / "dem.tif", "wgs84")
    central = Options(method="central", edge_order=2)  # halo 2; Horn's is 1
    process_file(dem, {"slope": tmp_path / "s.tif", "hillshade": tmp_path / "h.tif"}, central,
                 product_opts={"hillshade": Options(method="horn")},
                 run=RunOptions(tile_size=7, threads=2))
    process_file(dem, {"hillshade": tmp_path / "h_horn.tif"}, Options(method="horn"))
    process_file(dem, {"slope": tmp_path / "s_central.tif"}, central)
    assert_bitwise_equal(read_file(tmp_path / "h.tif")[0], read_file(tmp_path / "h_horn.tif")[0])
    assert_bitwise_equal(read_file(tmp_path / "s.tif")[0],
                         read_file(tmp_path / "s_central.tif")[0])
    h_central = tmp_path / "h_central.tif"
    process_file(dem, {"hillshade": h_central}, central)
    assert (read_file(h_central)[0] != read_file(tmp_path / "h.tif")[0]).any()
    with rasterio.open(tmp_path / "h.tif") as ds:
        assert ds.tags()["method"] == "horn"
    with rasterio.open(tmp_path / "s.tif") as ds:
        assert ds.tags()["method"] == "central"


# Issue 9 row 6: GDAL errors belong to the run that caused them
# --------------------------------------------------------------------------------------

def _logger_state():
    import logging

    return [(lg.level, lg.propagate, list(lg.handlers))
            for lg in (logging.getLogger("rasterio._env"), logging.getLogger("rasterio"))]


def _corrupt(path, tmp_path):
    """A real GeoTIFF whose data bytes are overwritten: GDAL fails decoding its blocks."""
    from pathlib import Path

    data = bytearray(Path(path).read_bytes())
    data[len(data) // 2:] = bytes(len(data) - len(data) // 2)
    bad = tmp_path / "corrupt.tif"
    bad.write_bytes(bytes(data))
    return str(bad)


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["bad src_crs", "corrupt input"])
def test_gdal_error_in_one_run_does_not_fail_another(fault, tmp_path):
    """Two process_file runs in threads of one process: the failing one gets its error,
    the healthy one succeeds, 5 rounds; rasterio's loggers are as they were. (Before,
    with a bad src_crs: the healthy run failed with "is the disk full?" in 5 of 5
    rounds. The corrupt input is a guard: before, it only left the logger muted in
    some runs, depending on which run ended last.)"""
    import threading

    import terrain.stream
    from conftest import write_tif

    rng = np.random.default_rng(1)
    good = write_tif(tmp_path / "good.tif", (rng.random((500, 500)) * 100).astype(np.float32),
                     nodata=-9999.0)
    seed = str(tmp_path / "seed.tif")
    with rasterio.open(seed, "w", driver="GTiff", width=300, height=300, count=1,
                       dtype="float32", crs="EPSG:32616", compress="deflate", tiled=True,
                       blockxsize=16, blockysize=16,
                       transform=rasterio.transform.from_origin(5e5, 4e6, 30, 30)) as ds:
        ds.write((rng.random((300, 300)) * 100).astype(np.float32), 1)
    bad = good if fault == "bad src_crs" else _corrupt(seed, tmp_path)
    before = _logger_state()
    failures = []
    for round_ in range(5):
        done = threading.Event()
        errors = []

        def healthy():
            try:
                terrain.stream.process_file(good, {"slope": tmp_path / f"ok{round_}.tif"},
                                            run=RunOptions(tile_size=32, threads=2))
            except Exception as exc:  # noqa: BLE001 - recorded and asserted below
                failures.append(f"round {round_}: {exc}")
            finally:
                done.set()

        def failing():
            k = 0
            while not done.is_set() or k < 5:
                out = {"slope": tmp_path / f"bad{round_}_{k}.tif"}
                try:
                    if fault == "bad src_crs":
                        terrain.stream.process_file(bad, out,
                                                    read=ReadOptions(src_crs="EPSG:999999"),
                                                    run=RunOptions(threads=2))
                    else:
                        terrain.stream.process_file(bad, out,
                                                    run=RunOptions(tile_size=16, threads=2))
                except terrain.TerrainError as exc:
                    errors.append(str(exc))
                k += 1

        threads = [threading.Thread(target=healthy), threading.Thread(target=failing)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors and all(bad in e or "999999" in e for e in errors), errors[:3]
    assert failures == []
    assert _logger_state() == before


@pytest.mark.parametrize("threads", [1, 2])
def test_gdal_error_logged_during_a_workers_read_fails_the_run(threads, tmp_path, monkeypatch):
    """GDAL may only log an error while a worker reads (e.g. flushing the output's dirty
    cached blocks to a full disk from the read's cache eviction): it belongs to the run,
    which fails with it and leaves nothing, whichever thread read."""
    import logging

    from terrain.errors import OutputError

    rng = np.random.default_rng(3)
    dem = write_tif(tmp_path / "dem.tif", (rng.random((40, 37)) * 100).astype(np.float32),
                    nodata=-9999.0)
    real = terrain.stream.read_window
    calls = []

    def read_logging_an_error(*args, **kwargs):
        out = real(*args, **kwargs)
        if not calls:  # once, as rasterio logs what GDAL only signalled
            logging.getLogger("rasterio._env").info(
                "GDAL signalled an error: err_no=%r, msg=%r", 1,
                "injected: TIFFWriteEncodedTile failed flushing a dirty block")
        calls.append(1)
        return out

    monkeypatch.setattr(terrain.stream, "read_window", read_logging_an_error)
    out = tmp_path / "slope.tif"
    with pytest.raises(OutputError, match="injected"):
        process_file(dem, {"slope": out}, run=RunOptions(tile_size=16, threads=threads))
    assert len(calls) == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dem.tif"]
