"""terrain.tiff: the tiled TIFF written from tiles encoded off the write path."""

from __future__ import annotations

import os

import numpy as np
import rasterio

from terrain.tiff import PREDICTOR_HORIZONTAL, TiledTIFF, read_first_ifd


def _template(path, shape, tile):
    """An empty tiled ZSTD GeoTIFF that GDAL writes itself: the tags TiledTIFF copies."""
    profile = dict(driver="GTiff", width=shape[1], height=shape[0], count=1, dtype="float32",
                   tiled=True, blockxsize=tile, blockysize=tile, compress="zstd",
                   predictor=2, nodata=-9999.0, sparse_ok=True)
    with rasterio.open(path, "w", **profile):
        pass
    return read_first_ifd(path)


def test_written_over_a_longer_file_ends_at_its_own_end(tmp_path):
    """The file is not opened with O_TRUNC (ext4 flushes a file truncated to zero when
    it is closed): what a longer file held before is cut at close, and GDAL reads
    exactly the windows written."""
    shape, tile = (300, 200), 128
    bigtiff, tags = _template(tmp_path / "template.tif", shape, tile)
    values = np.random.default_rng(0).random(shape).astype(np.float32)
    out = tmp_path / "out.tif"
    junk = 4 * values.nbytes  # far longer than the compressed tiles
    out.write_bytes(b"\xff" * junk)
    tiff = TiledTIFF(str(out), shape, (tile, tile), 1, np.float32, -9999.0,
                     predictor=PREDICTOR_HORIZONTAL)
    tiff.write(1, values[:150], 0, 0)
    tiff.write(1, values[150:], 150, 0)
    tiff.close(tags, bigtiff=bigtiff)
    assert os.path.getsize(out) < junk
    with open(out, "rb") as f:
        assert b"\xff" * 64 not in f.read()
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(1), values)


def test_the_file_is_not_truncated_on_open(tmp_path, monkeypatch):
    """O_TRUNC makes ext4 write the whole file back when it is closed (a 0.2-0.5 s
    stall per 8192^2 output, measured): the file is opened without it."""
    flags = []
    real_open = os.open

    def recording_open(path, flag, *args, **kwargs):
        flags.append(flag)
        return real_open(path, flag, *args, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    tiff = TiledTIFF(str(tmp_path / "out.tif"), (10, 10), (16, 16), 1, np.float32, -9999.0)
    tiff.abort()
    assert flags and not any(f & os.O_TRUNC for f in flags)
