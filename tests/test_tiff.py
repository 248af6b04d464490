"""terrain.tiff: shared tag templates (issue 14: a tile set's outputs as cheap as one file's).

Truth: GDAL itself. The same outputs are written twice, once sharing the set's tag
templates (GDAL writes one per kind of output, the others are moved copies) and once
with GDAL writing every file's own template; the two must say the same: every TIFF tag
but the tiles' offsets and byte counts byte for byte, and what GDAL and rasterio read
back (``gdalinfo -json``, profile, tags, descriptions, units, values).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from conftest import UTM_SAMPLE
from terrain import tiff, tiles
from terrain.engine import Options, RunOptions
from terrain.raster import raster_info
from terrain.writer import GeoTIFFWriter

KINDS = ("slope", "aspect", "gradient", "hillshade")
GDALINFO = shutil.which("gdalinfo") or "/usr/bin/gdalinfo"


def cut(src, folder, n, name="t{i}{j}.tif"):
    """``src`` cut into n x n GeoTIFF tiles (uneven sizes: 344 / 3 ...)."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    with rasterio.open(src) as ds:
        rb = np.linspace(0, ds.height, n + 1).astype(int)
        cb = np.linspace(0, ds.width, n + 1).astype(int)
        for i in range(n):
            for j in range(n):
                win = Window(cb[j], rb[i], cb[j + 1] - cb[j], rb[i + 1] - rb[i])
                path = os.path.join(folder, name.format(i=i, j=j))
                with rasterio.open(path, "w", driver="GTiff", width=int(win.width),
                                   height=int(win.height), count=1, dtype=ds.dtypes[0],
                                   crs=ds.crs, nodata=ds.nodata,
                                   transform=ds.window_transform(win)) as out:
                    out.write(ds.read(1, window=win), 1)
                paths.append(path)
    return paths


def gdalinfo(path):
    out = json.loads(subprocess.run([GDALINFO, "-json", "-stats", "-mdd", "all", "--config",
                                     "GDAL_PAM_ENABLED", "NO", str(path)],
                                    check=True, capture_output=True, text=True).stdout)
    for key in ("description", "files"):  # the file's own name
        out.pop(key, None)
    out.get("metadata", {}).pop("DERIVED_SUBDATASETS", None)  # names it too
    return out


def read_back(path):
    with rasterio.open(path) as ds:
        return dict(profile=dict(ds.profile), tags=ds.tags(), band_tags=[ds.tags(k) for k in ds.indexes],
                    descriptions=ds.descriptions, units=ds.units, values=ds.read())


def assert_same_file(shared, own):
    """``shared`` (moved template) says what ``own`` (GDAL's own template) says."""
    big_a, tags_a = tiff.read_first_ifd(shared)
    big_b, tags_b = tiff.read_first_ifd(own)
    assert big_a == big_b
    strip = lambda tags: [e for e in tags if e[0] not in (tiff.TILE_OFFSETS, tiff.TILE_BYTE_COUNTS)]  # noqa: E731
    assert strip(tags_a) == strip(tags_b), shared
    a, b = read_back(shared), read_back(own)
    assert np.array_equal(a.pop("values"), b.pop("values"), equal_nan=True)
    assert a == b
    assert gdalinfo(shared) == gdalinfo(own)


@contextlib.contextmanager
def counting_lookups():
    """How many files got a moved template (a list filled while the block runs)."""
    hits = []
    real = tiff.TagTemplates.lookup

    def spy(self, *args):
        got = real(self, *args)
        hits.append(got is not None)
        return got

    tiff.TagTemplates.lookup = spy
    try:
        yield hits
    finally:
        tiff.TagTemplates.lookup = real


def run_set(paths, out, monkeypatch=None, *, share=True, threads=1):
    os.makedirs(out, exist_ok=True)
    if not share:
        monkeypatch.setattr(tiles, "writing", lambda tile_set: contextlib.nullcontext())
    tiles.process_tiles(paths, lambda p: {k: os.path.join(out, f"{os.path.basename(p)[:-4]}_{k}.tif")
                                          for k in KINDS}, Options(), run=RunOptions(threads=threads))
    if not share:
        monkeypatch.undo()
    return sorted(os.listdir(out))


def test_tile_set_outputs_say_what_gdal_says(tmp_path, monkeypatch):
    """3 x 3 tiles of three sizes, every product: most files get a moved template, and
    every file equals the one written with GDAL's own template, tag for tag."""
    paths = cut(UTM_SAMPLE, tmp_path / "tiles", 3)
    with counting_lookups() as hits:
        names = run_set(paths, tmp_path / "shared")
    # 9 tiles of 4 shapes (114 or 115 rows, 134 or 135 columns), 4 kinds: 16 templates
    # written by GDAL, 20 moved, one tile at a time.
    assert len(hits) == 36 and sum(hits) == 36 - 16
    assert names == run_set(paths, tmp_path / "own", monkeypatch, share=False)
    assert len(names) == 36
    # Several tiles at once (threads share the templates): the same files.
    assert run_set(paths, tmp_path / "lanes", threads=2) == names
    for name in names:
        assert_same_file(tmp_path / "shared" / name, tmp_path / "own" / name)
        assert_same_file(tmp_path / "lanes" / name, tmp_path / "own" / name)


def test_a_source_name_needing_escapes_gets_gdals_own_template(tmp_path, monkeypatch):
    """A tile named with XML special characters: never moved (GDAL escapes it itself)."""
    paths = cut(UTM_SAMPLE, tmp_path / "tiles", 2, name="a&b<{i}{j}>.tif")
    with counting_lookups() as hits:
        names = run_set(paths, tmp_path / "shared")
    assert not any(hits)
    assert names == run_set(paths, tmp_path / "own", monkeypatch, share=False)
    for name in names:
        assert_same_file(tmp_path / "shared" / name, tmp_path / "own" / name)
    with rasterio.open(tmp_path / "shared" / names[0]) as ds:
        assert ds.tags()["source"] == "a&b<00>.tif"


@pytest.mark.parametrize("south_up", [False, True], ids=["north-up", "south-up"])
@pytest.mark.parametrize("byte", [False, True], ids=["float32", "byte"])
def test_writer_moves_a_template_to_another_origin(tmp_path, south_up, byte):
    """GeoTIFFWriter in a shared_templates block: the second file like the first (its
    origin and source apart) gets the first's tags moved (tie point, or the model
    transformation GDAL writes for a south-up grid), equal to GDAL's own for it."""
    info = raster_info(UTM_SAMPLE)
    t = info.transform
    e = abs(t.e) if south_up else t.e

    def write(path, origin, source, templates):
        import dataclasses

        here = dataclasses.replace(info, transform=Affine(t.a, 0.0, origin[0], 0.0, e, origin[1]))
        with tiff.shared_templates(templates):
            w = GeoTIFFWriter(path, here, [("slope", "degrees", "Slope"), ("aspect", "degrees", "Aspect")],
                              byte=byte, tags={"method": "horn", "source": source})
        z = np.arange(info.shape[0] * info.shape[1], dtype=np.float32).reshape(info.shape) % 251
        w.write(1, w.encode(z.copy()), Window(0, 0, info.shape[1], info.shape[0]))
        w.write(2, w.encode(z[::-1].copy()), Window(0, 0, info.shape[1], info.shape[0]))
        w.finish()
        w.publish()
        return w

    shared = tiff.TagTemplates()
    write(str(tmp_path / "first.tif"), (t.c, t.f), "first.tif", shared)
    with counting_lookups() as hits:
        w = write(str(tmp_path / "second.tif"), (t.c + 3000.5, t.f - 1234.25), "second_1.tif", shared)
    assert hits == [True] and w.template is None
    write(str(tmp_path / "own.tif"), (t.c + 3000.5, t.f - 1234.25), "second_1.tif", None)
    tag_codes = [c for c, *_ in tiff.read_first_ifd(tmp_path / "own.tif")[1]]
    assert (tiff.MODEL_TRANSFORMATION in tag_codes) == south_up
    assert_same_file(tmp_path / "second.tif", tmp_path / "own.tif")


def test_templates_are_shared_only_within_the_block_and_for_equal_files():
    shared = tiff.TagTemplates()
    assert tiff.current_templates() is None
    with tiff.shared_templates(shared):
        assert tiff.current_templates() is shared
    assert tiff.current_templates() is None
    t = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0)
    bands = [("slope", "degrees", "Slope")]
    opts = {"COMPRESS": "ZSTD"}
    key = shared.key((100, 120), np.float32, bands, opts, t, {"source": "a.tif", "method": "horn"})
    assert key == shared.key((100, 120), np.float32, bands, opts, t @ Affine.translation(5, 7),
                             {"source": "b.tif", "method": "horn"})
    for other in [shared.key((100, 121), np.float32, bands, opts, t, {"source": "a.tif", "method": "horn"}),
                  shared.key((100, 120), np.uint8, bands, opts, t, {"source": "a.tif", "method": "horn"}),
                  shared.key((100, 120), np.float32, bands, opts, Affine(20.0, 0.0, 0.0, 0.0, -10.0, 0.0),
                             {"source": "a.tif", "method": "horn"}),
                  shared.key((100, 120), np.float32, bands, opts, t, {"source": "a.tif", "method": "zt"})]:
        assert other != key
    assert shared.key((100, 120), np.float32, bands, opts, t, {"source": "a&b.tif"}) is None
    assert shared.lookup(key, CRS.from_epsg(32616), t, "a.tif") is None  # nothing stored yet

# --------------------------------------------------------------------------------------
# TiledTIFF's file: opened without O_TRUNC, a longer file that was there cut at close.
# --------------------------------------------------------------------------------------

def _gdal_template(path, shape, tile):
    """An empty tiled ZSTD GeoTIFF that GDAL writes itself: the tags TiledTIFF copies."""
    profile = dict(driver="GTiff", width=shape[1], height=shape[0], count=1, dtype="float32",
                   tiled=True, blockxsize=tile, blockysize=tile, compress="zstd",
                   predictor=2, nodata=-9999.0, sparse_ok=True)
    with rasterio.open(path, "w", **profile):
        pass
    return tiff.read_first_ifd(path)


def test_written_over_a_longer_file_ends_at_its_own_end(tmp_path):
    """The file is not opened with O_TRUNC (ext4 flushes a file truncated to zero when
    it is closed): what a longer file held before is cut at close, and GDAL reads
    exactly the windows written."""
    shape, tile = (300, 200), 128
    bigtiff, tags = _gdal_template(tmp_path / "template.tif", shape, tile)
    values = np.random.default_rng(0).random(shape).astype(np.float32)
    out = tmp_path / "out.tif"
    junk = 4 * values.nbytes  # far longer than the compressed tiles
    out.write_bytes(b"\xff" * junk)
    written = tiff.TiledTIFF(str(out), shape, (tile, tile), 1, np.float32, -9999.0,
                             predictor=tiff.PREDICTOR_HORIZONTAL)
    written.write(1, values[:150], 0, 0)
    written.write(1, values[150:], 150, 0)
    written.close(tags, bigtiff=bigtiff)
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
    written = tiff.TiledTIFF(str(tmp_path / "out.tif"), (10, 10), (16, 16), 1, np.float32,
                             -9999.0)
    written.abort()
    assert flags and not any(f & os.O_TRUNC for f in flags)


def test_inline_encoding_writes_what_gdal_reads_back_without_the_encoding_pool(tmp_path,
                                                                               monkeypatch):
    """Under inline_encoding (a tile set's lanes) each tile is compressed by the thread
    that completes it, never handed to encoder_pool: GDAL reads back exactly the values
    written (partial edge tiles, windows across tiles), and the tiles' compressed bytes
    are those the pool writes for the same values."""
    shape, tile = (300, 200), 128
    bigtiff, tags = _gdal_template(tmp_path / "template.tif", shape, tile)
    values = np.random.default_rng(1).random(shape).astype(np.float32)
    values[10:40, 150:190] = -9999.0  # nodata cells, as the writer stores them

    def write(path):
        written = tiff.TiledTIFF(str(path), shape, (tile, tile), 1, np.float32, -9999.0,
                                 predictor=tiff.PREDICTOR_HORIZONTAL)
        for r0, r1, c0, c1 in [(0, 100, 0, 200), (100, 300, 0, 70), (100, 300, 70, 200)]:
            written.write(1, values[r0:r1, c0:c1], r0, c0)
        written.close(tags, bigtiff=bigtiff)
        with open(path, "rb") as f:
            data = f.read()
        return {int(k): data[int(o):int(o) + int(n)]
                for k, (o, n) in enumerate(zip(written.offsets, written.counts))}

    pooled = write(tmp_path / "pooled.tif")

    def no_pool():
        raise AssertionError("encoder_pool used under inline_encoding")

    monkeypatch.setattr(tiff, "encoder_pool", no_pool)
    with tiff.inline_encoding():
        inline = write(tmp_path / "inline.tif")
    with pytest.raises(AssertionError, match="encoder_pool used"):  # outside: the pool again
        write(tmp_path / "after.tif")
    assert inline == pooled and len(inline) == 6
    for name in ("pooled.tif", "inline.tif"):
        with rasterio.open(tmp_path / name) as ds:
            np.testing.assert_array_equal(ds.read(1), values)


@pytest.mark.parametrize("cols,mirrored", [(200, True), (150, False)])
def test_narrow_right_padding_is_mirrored_and_never_read(tmp_path, cols, mirrored):
    """A last tile column padded by at most 1/8 of a tile (200 columns in 208-wide tiles:
    8) holds the cells left of the edge mirrored, not nodata, so that ZSTD's fast
    match finder is not reset on every row; wider padding (150 in 208: 58) holds nodata.
    GDAL reads back exactly the values written either way, and the bottom padding (rows
    past the raster) is nodata."""
    shape, tile = (100, cols), 208
    bigtiff, tags = _gdal_template(tmp_path / "template.tif", shape, tile)
    values = np.random.default_rng(2).random(shape).astype(np.float32)
    out = tmp_path / "out.tif"
    written = tiff.TiledTIFF(str(out), shape, (tile, tile), 1, np.float32, -9999.0,
                             predictor=tiff.PREDICTOR_HORIZONTAL)
    written.write(1, values[:, :120], 0, 0)
    written.write(1, values[:, 120:], 0, 120)
    written.close(tags, bigtiff=bigtiff)
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(1), values)
    # The stored tile itself, decoded as libtiff stores it (ZSTD, horizontal differencing).
    import imagecodecs

    with open(out, "rb") as f:
        f.seek(int(written.offsets[0]))
        raw = imagecodecs.zstd_decode(f.read(int(written.counts[0])))
    stored = imagecodecs.delta_decode(
        np.frombuffer(raw, "<u4").reshape(tile, tile), axis=-1).view("<f4")
    np.testing.assert_array_equal(stored[:100, :cols], values)
    pad = tile - cols
    expected = values[:, cols - pad:][:, ::-1] if mirrored else np.float32(-9999.0)
    np.testing.assert_array_equal(stored[:100, cols:], np.broadcast_to(expected, (100, pad)))
    assert (stored[100:] == np.float32(-9999.0)).all()
