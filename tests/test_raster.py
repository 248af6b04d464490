"""Opening and describing raster files: every failure is a TerrainError naming the file."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.errors import RasterioError

import terrain
from conftest import UTM_SAMPLE, WGS84_SAMPLE
from terrain.raster import parse_crs, raster_info


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


# --------------------------------------------------------------------------------------
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


@pytest.mark.parametrize("fault", ["bad src_crs", "corrupt input"])
def test_gdal_error_in_one_run_does_not_fail_another(fault, tmp_path):
    """Two process_file runs in threads of one process: the failing one gets its error,
    the healthy one succeeds, 5 rounds of 5; rasterio's loggers are as they were.
    (Before: the healthy run failed with "is the disk full?" in 5 of 5 rounds.)"""
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
                                            tile_size=32, threads=2)
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
                        terrain.stream.process_file(bad, out, src_crs="EPSG:999999", threads=2)
                    else:
                        terrain.stream.process_file(bad, out, tile_size=16, threads=2)
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
