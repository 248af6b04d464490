"""Corrupted files (issue 5, faults): never a crash, a hang or a non-TerrainError.

Two small real GeoTIFFs (crops of the bundled samples: a tiled DEFLATE float32 UTM
DEM and a striped uncompressed int16 lat/lon DEM, both with nodata cells) are
damaged in a few hundred reproducible ways: random bytes flipped in the header
(the first KB: TIFF header, IFD, tag arrays, GeoKeys), random bytes flipped in the
data, and truncations at random lengths. For every variant, ``terrain.open_dem``
and ``terrain.stream.process_file`` must succeed or raise ``terrain.TerrainError``.

The library calls run in one subprocess with a time limit and a memory limit, so
that a segfault, a hang or a runaway allocation is a test failure (naming the
variant) rather than the end of the test session.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window

from conftest import UTM_SAMPLE, WGS84_SAMPLE

pytestmark = pytest.mark.slow  # a subprocess fuzzing hundreds of files

TERRAIN = str(Path(sys.executable).with_name("terrain"))
SEED = 20240605
N_HEADER, N_DATA, N_TRUNC = 110, 50, 40  # per base file
RUNNER_TIMEOUT = 240  # seconds for the whole loop (a few hundred variants)
MEMORY_LIMIT = 6 * 2**30  # address space of the runner

RUNNER = r'''
import json, os, shutil, sys, time, traceback
import terrain, terrain.stream
from terrain.engine import Options, RunOptions
from terrain.writer import WriteOptions

variants, out_dir, progress, report = sys.argv[1:5]
# "extended" (issue 9): every output kind as COGs, replacing an old output that has a
# statistics sidecar: a failure keeps the old output and its sidecar as they were.
extended = sys.argv[5:] == ["extended"]
NAMES = {"slope": "slope.tif", "hillshade": "hs.tif", "gradient": "g.tif", "aspect": "a.tif"}
results = []
for name in sorted(os.listdir(variants)):
    path = os.path.join(variants, name)
    entry = {"name": name}
    for op in ("open_dem", "process_file"):
        with open(progress, "w") as f:
            f.write(f"{name} {op}")
        out = os.path.join(out_dir, name)
        t0 = time.monotonic()
        try:
            if op == "open_dem":
                terrain.open_dem(path).values
            elif extended:
                os.makedirs(out, exist_ok=True)
                with open(os.path.join(out, "slope.tif"), "wb") as f:
                    f.write(b"old")
                with open(os.path.join(out, "slope.tif.aux.xml"), "wb") as f:
                    f.write(b"<PAMDataset/>")
                terrain.stream.process_file(path, {k: os.path.join(out, n) for k, n in NAMES.items()},
                                            Options(method="horn"),
                                            run=RunOptions(tile_size=16, threads=2),
                                            write=WriteOptions(cog=True, overwrite=True))
            else:
                terrain.stream.process_file(path, {"slope": os.path.join(out, "slope.tif")},
                                            Options(method="horn"),
                                            run=RunOptions(tile_size=16, threads=2))
            kind = "ok"
        except terrain.TerrainError as exc:
            kind = "TerrainError"
            entry[op + "_message"] = str(exc)
        except BaseException as exc:
            kind = "other"
            entry[op + "_message"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:])
        entry[op] = kind
        entry[op + "_seconds"] = time.monotonic() - t0
        if op == "process_file":
            left = sorted(os.listdir(out)) if os.path.isdir(out) else []
            if extended:
                old = ["slope.tif", "slope.tif.aux.xml"]
                expected = sorted(NAMES.values()) if kind == "ok" else old
                entry["left"] = [n for n in left if n not in expected] + [
                    f"missing {n}" for n in expected if n not in left]
                if kind != "ok" and "slope.tif" in left:
                    with open(os.path.join(out, "slope.tif"), "rb") as f:
                        if f.read() != b"old":
                            entry["left"].append("old slope.tif changed")
            else:
                entry["left"] = left if kind != "ok" else [n for n in left if n != "slope.tif"]
            shutil.rmtree(out, ignore_errors=True)
    results.append(entry)
with open(report, "w") as f:
    json.dump(results, f)
'''


def crop(src, window, path, **profile):
    with rasterio.open(src) as ds:
        z = ds.read(1, window=Window(*window))
        transform = ds.transform @ Affine.translation(window[0], window[1])
        crs, nodata = ds.crs, ds.nodata
    z[3:5, 7:9] = nodata  # a void, so that nodata handling is exercised too
    z[-1, 0] = nodata
    with rasterio.open(path, "w", driver="GTiff", width=z.shape[1], height=z.shape[0], count=1,
                       dtype=z.dtype, crs=crs, transform=transform, nodata=nodata,
                       **profile) as ds:
        ds.write(z, 1)
    return Path(path)


def make_variants(base: Path, folder: Path, rng) -> list[Path]:
    data = base.read_bytes()
    n = len(data)
    header = min(1024, n // 2)
    made = []

    def put(kind, k, blob):
        p = folder / f"{base.stem}-{kind}-{k:03d}.tif"
        p.write_bytes(blob)
        made.append(p)

    for k in range(N_HEADER):
        blob = bytearray(data)
        for pos in rng.choice(header, size=int(rng.integers(1, 5)), replace=False):
            blob[pos] ^= int(rng.integers(1, 256))
        put("header", k, bytes(blob))
    for k in range(N_DATA):
        blob = bytearray(data)
        for pos in rng.choice(np.arange(header, n), size=int(rng.integers(1, 17)), replace=False):
            blob[pos] ^= int(rng.integers(1, 256))
        put("data", k, bytes(blob))
    for k, length in enumerate(sorted(rng.choice(np.arange(1, n), size=N_TRUNC, replace=False))):
        put("trunc", k, data[:int(length)])
    return made


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    bases = [
        crop(UTM_SAMPLE, (300, 400, 40, 48), root / "utm_tiled_deflate.tif",
             tiled=True, blockxsize=16, blockysize=16, compress="deflate", predictor=3),
        crop(WGS84_SAMPLE, (100, 100, 40, 30), root / "wgs84_int16_striped.tif"),
    ]
    folder = root / "variants"
    folder.mkdir()
    rng = np.random.default_rng(SEED)
    variants = [v for b in bases for v in make_variants(b, folder, rng)]
    return root, bases, folder, variants


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_fuzz(corpus, *extra):
    """Run RUNNER on a corpus in a memory- and time-limited subprocess; its report."""
    root, bases, folder, variants = corpus
    progress, report = root / "progress.txt", root / "report.json"
    out = root / "out"
    out.mkdir()
    try:
        proc = subprocess.run([sys.executable, "-c", RUNNER, str(folder), str(out), str(progress),
                               str(report), *extra], capture_output=True, text=True,
                              timeout=RUNNER_TIMEOUT, preexec_fn=_limit_memory)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hang: the runner did not finish in {RUNNER_TIMEOUT} s; "
                    f"it was at {progress.read_text()!r}")
    if proc.returncode != 0:
        at = progress.read_text() if progress.exists() else "?"
        pytest.fail(f"the interpreter died (exit {proc.returncode}) at {at!r}; "
                    f"stderr tail: {proc.stderr[-2000:]}")
    return json.loads(report.read_text())


@pytest.fixture(scope="module")
def fuzz_results(corpus):
    return run_fuzz(corpus)


def test_bases_are_valid(corpus):
    import terrain

    for base in corpus[1]:
        assert np.isfinite(terrain.slope(terrain.open_dem(base))).sum() > 1000


def test_corrupted_files_never_crash_hang_or_leak(fuzz_results, corpus):
    variants = corpus[3]
    assert len(fuzz_results) == len(variants) >= 400
    counts = {}
    for e in fuzz_results:
        kind = e["name"].rsplit("-", 2)[-2]
        for op in ("open_dem", "process_file"):
            key = (kind, op)
            counts.setdefault(key, {"ok": 0, "TerrainError": 0, "other": 0})
            counts[key][e[op]] += 1
    print("\ncorrupted-file outcomes (variant kind, call): counts")
    for key, c in sorted(counts.items()):
        print(f"  {key[0]:6s} {key[1]:12s} {c}")
    # Every kind of damage did make the library refuse some files (the test has teeth).
    for kind in ("header", "data", "trunc"):
        assert counts[(kind, "process_file")]["TerrainError"] > 0, kind
    other = [(e["name"], op, e[op + "_message"]) for e in fuzz_results
             for op in ("open_dem", "process_file") if e[op] == "other"]
    left = [(e["name"], e["left"]) for e in fuzz_results if e["left"]]
    slow = [(e["name"], op, round(e[op + "_seconds"], 1)) for e in fuzz_results
            for op in ("open_dem", "process_file") if e[op + "_seconds"] > 10]
    assert not other, f"{len(other)} non-TerrainError exceptions, e.g. {other[:3]}"
    assert not left, f"files left behind after a failed run: {left[:5]}"
    assert not slow, f"calls slower than 10 s on a 40 x 48 raster: {slow[:5]}"


def test_error_messages_name_the_file(fuzz_results):
    for e in fuzz_results:
        for op in ("open_dem", "process_file"):
            if e[op] == "TerrainError":
                assert e["name"] in e[op + "_message"], (e["name"], op, e[op + "_message"])


def _pick_for_cli(fuzz_results):
    """A handful: refused and accepted ones of each damage kind."""
    picked = {}
    for e in fuzz_results:
        key = (e["name"].rsplit("-", 2)[-2], e["process_file"])
        if key not in picked and e["process_file"] in ("ok", "TerrainError"):
            picked[key] = e["name"]
    return sorted(picked.items())


def test_cli_on_corrupted_files(fuzz_results, corpus, tmp_path):
    folder = corpus[2]
    picked = _pick_for_cli(fuzz_results)
    assert len(picked) >= 4
    for (kind, outcome), name in picked:
        src = folder / name
        before = src.read_bytes()
        out = tmp_path / name
        res = subprocess.run([TERRAIN, "slope", str(src), "-o", str(out / "slope.tif")],
                             capture_output=True, text=True, timeout=60)
        lines = res.stderr.strip().splitlines()
        assert res.returncode in (0, 1), (name, res.returncode, res.stderr)
        assert "Traceback" not in res.stderr, (name, res.stderr)
        assert src.read_bytes() == before
        if res.returncode == 1:
            assert 1 <= len(lines) <= 2 and lines[-1].startswith("terrain: error:"), \
                (name, res.stderr)
            assert not out.exists() or os.listdir(out) == [], name
        else:
            assert os.listdir(out) == ["slope.tif"], name


def _set_dimensions(data: bytes, width: int, height: int) -> bytes:
    """Rewrite ImageWidth / ImageLength of a little-endian classic TIFF's first IFD as LONGs."""
    import struct

    blob = bytearray(data)
    assert blob[:4] == b"II*\x00"
    ifd = struct.unpack("<I", blob[4:8])[0]
    for k in range(struct.unpack("<H", blob[ifd:ifd + 2])[0]):
        entry = ifd + 2 + 12 * k
        tag = struct.unpack("<H", blob[entry:entry + 2])[0]
        if tag in (256, 257):
            blob[entry + 2:entry + 8] = struct.pack("<HI", 4, 1)
            blob[entry + 8:entry + 12] = struct.pack("<I", width if tag == 256 else height)
    return bytes(blob)


def test_header_claiming_a_huge_raster(tmp_path):
    """A flipped size field (40 x 48 -> 1 000 000 x 1 000 000): open_dem cannot hold 3.6 TiB;
    it must say so as a TerrainError, not leak numpy's MemoryError."""
    from conftest import write_tif

    import terrain

    base = write_tif(tmp_path / "base.tif", np.ones((48, 40), np.float32))
    bad = tmp_path / "huge.tif"
    bad.write_bytes(_set_dimensions(Path(base).read_bytes(), 1_000_000, 1_000_000))
    with rasterio.open(bad) as ds:
        assert (ds.width, ds.height) == (1_000_000, 1_000_000)  # GDAL believes it
    with pytest.raises(terrain.TerrainError) as err:
        terrain.open_dem(bad)
    assert str(bad) in str(err.value)


# --------------------------------------------------------------------------------------
# Issue 9: VRT and NetCDF inputs, every output kind as COGs replacing an old output
# --------------------------------------------------------------------------------------
# This rasterio build has GDAL's netCDF driver (read; files made with CreateCopy); the
# corpus below asserts it instead of skipping.

N_VRT_HEADER, N_VRT_TRUNC, N_VRT_SOURCE = 60, 20, 30
N_NC_HEADER, N_NC_DATA, N_NC_TRUNC = 70, 30, 30


def _flips(data: bytes, lo: int, hi: int, rng, most: int) -> bytes:
    blob = bytearray(data)
    for pos in rng.choice(np.arange(lo, hi), size=int(rng.integers(1, most + 1)), replace=False):
        blob[pos] ^= int(rng.integers(1, 256))
    return bytes(blob)


def make_vrt_variants(tile: Path, vrt: Path, folder: Path, sources: Path, rng) -> list[Path]:
    """A VRT over ``tile`` damaged in its XML (flips, truncations), and intact VRTs whose
    source tile is damaged (flips in the tile's header or data)."""
    text = vrt.read_bytes()
    tile_data = tile.read_bytes()
    made = []
    for k in range(N_VRT_HEADER):
        p = folder / f"{vrt.stem}-header-{k:03d}.vrt"
        p.write_bytes(_flips(text, 0, len(text), rng, 4))
        made.append(p)
    for k, n in enumerate(sorted(rng.choice(np.arange(1, len(text)), size=N_VRT_TRUNC,
                                            replace=False))):
        p = folder / f"{vrt.stem}-trunc-{k:03d}.vrt"
        p.write_bytes(text[:int(n)])
        made.append(p)
    for k in range(N_VRT_SOURCE):
        src = sources / f"{tile.stem}-{k:03d}.tif"
        lo, hi = (0, 1024) if k % 2 == 0 else (1024, len(tile_data))
        src.write_bytes(_flips(tile_data, lo, hi, rng, 8))
        p = folder / f"{vrt.stem}-source-{k:03d}.vrt"
        p.write_bytes(text.replace(str(tile).encode(), str(src).encode()))
        assert str(src).encode() in p.read_bytes()
        made.append(p)
    return made


def make_nc_variants(nc: Path, folder: Path, rng) -> list[Path]:
    data = nc.read_bytes()
    n = len(data)
    header = n - 40 * 48 * 4  # a classic netCDF file: the header, then the variable's data
    made = []
    for k in range(N_NC_HEADER):
        p = folder / f"{nc.stem}-header-{k:03d}.nc"
        p.write_bytes(_flips(data, 0, header, rng, 4))
        made.append(p)
    for k in range(N_NC_DATA):
        p = folder / f"{nc.stem}-data-{k:03d}.nc"
        p.write_bytes(_flips(data, header, n, rng, 16))
        made.append(p)
    for k, m in enumerate(sorted(rng.choice(np.arange(1, n), size=N_NC_TRUNC, replace=False))):
        p = folder / f"{nc.stem}-trunc-{k:03d}.nc"
        p.write_bytes(data[:int(m)])
        made.append(p)
    return made


@pytest.fixture(scope="module")
def corpus2(tmp_path_factory):
    from rasterio.shutil import copy as gdal_copy

    with rasterio.Env() as env:
        assert "netCDF" in env.drivers(), "this rasterio build has no netCDF driver"
    root = tmp_path_factory.mktemp("fuzz2")
    tile = crop(UTM_SAMPLE, (300, 400, 40, 48), root / "tile.tif",
                tiled=True, blockxsize=16, blockysize=16, compress="deflate", predictor=3)
    vrt = root / "mosaic.vrt"
    gdal_copy(str(tile), str(vrt), driver="VRT")
    # The source by its absolute name, so that variants elsewhere can point at copies.
    xml = vrt.read_text().replace('relativeToVRT="1">tile.tif<', f'relativeToVRT="0">{tile}<')
    vrt.write_text(xml)
    assert str(tile) in xml
    nc = root / "dem.nc"
    gdal_copy(str(tile), str(nc), driver="netCDF")
    folder, sources = root / "variants", root / "sources"
    folder.mkdir()
    sources.mkdir()
    rng = np.random.default_rng(SEED + 9)
    variants = (make_vrt_variants(tile, vrt, folder, sources, rng)
                + make_nc_variants(nc, folder, rng))
    return root, [vrt, nc], folder, variants


@pytest.fixture(scope="module")
def fuzz_results2(corpus2):
    return run_fuzz(corpus2, "extended")


def test_vrt_and_netcdf_bases_are_valid(corpus2, tmp_path):
    import terrain
    import terrain.stream
    from terrain.writer import WriteOptions

    truth = terrain.slope(terrain.open_dem(corpus2[1][0])).values
    assert np.isfinite(truth).sum() > 1000
    for base in corpus2[1]:
        assert np.array_equal(terrain.slope(terrain.open_dem(base)).values, truth, equal_nan=True)
        out = tmp_path / f"{base.suffix[1:]}.tif"
        terrain.stream.process_file(base, {"slope": out}, write=WriteOptions(cog=True))
        with rasterio.open(out) as ds:
            assert ds.driver == "GTiff" and ds.read(1).shape == truth.shape


def test_corrupted_vrt_and_netcdf_never_crash_hang_or_leak(fuzz_results2, corpus2):
    """Corrupted VRTs (XML flips, truncations, damaged source tiles) and netCDF files
    (header and data flips, truncations), each computed into all four output kinds as
    COGs over an old output: a TerrainError naming the file or a result; never a crash, a
    hang, another exception, a file left behind or the old output touched."""
    assert len(fuzz_results2) == len(corpus2[3]) >= 240
    counts = {}
    for e in fuzz_results2:
        stem, kind, _ = e["name"].rsplit("-", 2)
        ext = os.path.splitext(e["name"])[1]
        key = (ext, kind)
        counts.setdefault(key, {"ok": 0, "TerrainError": 0, "other": 0})
        counts[key][e["process_file"]] += 1
    print("\ncorrupted VRT / netCDF outcomes of process_file (format, damage): counts")
    for key, c in sorted(counts.items()):
        print(f"  {key[0]:4s} {key[1]:6s} {c}")
    for key in [(".vrt", k) for k in ("header", "trunc", "source")] + \
               [(".nc", k) for k in ("header", "trunc")]:  # raw float data: flips are values
        assert counts[key]["TerrainError"] > 0, key
    other = [(e["name"], op, e[op + "_message"]) for e in fuzz_results2
             for op in ("open_dem", "process_file") if e[op] == "other"]
    left = [(e["name"], e["left"]) for e in fuzz_results2 if e["left"]]
    slow = [(e["name"], op, round(e[op + "_seconds"], 1)) for e in fuzz_results2
            for op in ("open_dem", "process_file") if e[op + "_seconds"] > 10]
    unnamed = [(e["name"], op, e[op + "_message"]) for e in fuzz_results2
               for op in ("open_dem", "process_file")
               if e[op] == "TerrainError" and e["name"] not in e[op + "_message"]]
    assert not other, f"{len(other)} non-TerrainError exceptions, e.g. {other[:3]}"
    assert not left, f"wrong files after a run: {left[:5]}"
    assert not slow, f"calls slower than 10 s on a 40 x 48 raster: {slow[:5]}"
    assert not unnamed, f"messages not naming the file: {unnamed[:3]}"
