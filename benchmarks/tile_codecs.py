"""Choose the default predictor and ZSTD level by measurement (issue 11).

Run from the repository root with the venv's python:

    python benchmarks/tile_codecs.py [--size 8192] [--workdir DIR] [--e2e N]

Part 1: it computes slope, aspect, gradient (two bands, pixel-interleaved) and
hillshade of the benchmark DEM (the one bench.py makes, reused) and of
sample_data/jacksboro_utm16n.tif with terrain's defaults, then encodes every
512 x 512 tile of each product as terrain.tiff does (predictor, then ZSTD) for
each configuration below, on one thread, and prints a markdown table: bytes of
tiles (MB), the fraction of the uncompressed size, and the CPU seconds of
encoding (one thread; the writer spreads them over all cores).

Part 2 (``--e2e N``): ``terrain slope DEM -o s.tif`` and ``terrain analyze DEM -d
out`` on the benchmark DEM as a user runs them, with each float default patched
in (a fresh process each), N alternating rounds: median wall, median CPU and
the output size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import make_dem, timed  # noqa: E402

# (predictor, ZSTD level) for float32 products; Byte products get predictor 2 or 1.
FLOAT_CONFIGS = [(1, 1), (2, 1), (3, 1), (2, 3), (3, 3), (3, 9)]
BYTE_CONFIGS = [(1, 1), (2, 1), (2, 3)]
TILE = 512


def products(dem: str, workdir: str) -> dict:
    """{name: array (bands, rows, cols) as terrain writes it} of one DEM."""
    from terrain.stream import process_file
    from terrain.writer import WriteOptions

    kinds = ("slope", "aspect", "gradient", "hillshade")
    paths = {k: os.path.join(workdir, f"p_{k}.tif") for k in kinds}
    process_file(dem, paths, write=WriteOptions(creation_options={"COMPRESS": "NONE"},
                                                overwrite=True))
    out = {}
    for k, p in paths.items():
        with rasterio.open(p) as ds:
            out[k] = (ds.read(), ds.nodata)
        os.unlink(p)
    return out


def tiles(arr: np.ndarray, nodata):
    """Every 512 x 512 tile (rows, cols, bands), edge tiles padded with nodata."""
    bands, rows, cols = arr.shape
    for r in range(0, rows, TILE):
        for c in range(0, cols, TILE):
            t = np.full((TILE, TILE, bands), nodata, arr.dtype)
            part = arr[:, r:r + TILE, c:c + TILE]
            t[:part.shape[1], :part.shape[2]] = np.moveaxis(part, 0, -1)
            yield t


def measure(name: str, prods: dict) -> None:
    from terrain.tiff import encode_tile

    for kind, (arr, nodata) in prods.items():
        configs = BYTE_CONFIGS if arr.dtype == np.uint8 else FLOAT_CONFIGS
        raw = arr.nbytes
        all_tiles = list(tiles(arr, nodata))
        for predictor, level in configs:
            start = time.process_time()
            size = sum(len(encode_tile(t, predictor, level)) for t in all_tiles)
            cpu = time.process_time() - start
            print(f"| {name} | {kind} ({arr.dtype.name}) | {predictor} | {level} "
                  f"| {size / 1e6:.1f} | {size / raw:.3f} | {cpu:.2f} |", flush=True)


PATCHED = """
import sys
import terrain.writer as w
w.FLOAT_PREDICTOR = sys.argv[1]
w.DEFAULT_CREATION_OPTIONS["ZSTD_LEVEL"] = sys.argv[2]
from cli.main import cli
cli(sys.argv[3:])
"""


def e2e(dem: Path, out: Path, rounds: int) -> None:
    terrain = [sys.executable, "-c", PATCHED]
    cases = {}
    for predictor, level in ((3, 1), (2, 1), (3, 3), (2, 3)):
        cases[f"slope, predictor {predictor}, level {level}"] = (
            terrain + [str(predictor), str(level), "slope", str(dem), "-o",
                       str(out / "s.tif"), "--overwrite", "-q"], out / "s.tif")
    for predictor, level in ((3, 1), (2, 1)):
        cases[f"analyze, predictor {predictor}, level {level}"] = (
            terrain + [str(predictor), str(level), "analyze", str(dem), "-d",
                       str(out / "a"), "--overwrite", "-q"], out / "a")
    runs = {name: [] for name in cases}
    for k in range(rounds + 1):  # the first round warms up, untimed
        for name, (cmd, target) in cases.items():
            if target.is_dir():
                shutil.rmtree(target)
            wall, rss, cpu = timed(cmd)
            size = (sum(p.stat().st_size for p in target.glob("*.tif")) if target.is_dir()
                    else target.stat().st_size)
            if k:
                runs[name].append((wall, cpu, size))
    print("\n| command | median wall (s) | median CPU (s) | GeoTIFF bytes (MB) |\n"
          "| --- | ---: | ---: | ---: |")
    for name, r in runs.items():
        print(f"| {name} | {statistics.median(x[0] for x in r):.2f} "
              f"| {statistics.median(x[1] for x in r):.2f} | {r[0][2] / 1e6:.1f} |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--workdir", type=Path,
                        default=Path(__file__).resolve().parent / "data")
    parser.add_argument("--e2e", type=int, default=0, metavar="N",
                        help="also time the CLI with each default, N rounds (0: skip)")
    parser.add_argument("--no-tiles", action="store_true", help="skip part 1")
    args = parser.parse_args(argv)
    workdir = args.workdir.resolve()
    dem = workdir / f"dem_{args.size}.tif"
    print(make_dem(dem, args.size), flush=True)
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    sample = Path(__file__).resolve().parent.parent / "sample_data" / "jacksboro_utm16n.tif"
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        if not args.no_tiles:
            print("| DEM | product | predictor | ZSTD level | tiles (MB) | / uncompressed "
                  "| encode CPU (s), 1 thread |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |",
                  flush=True)
            for name, path in ((f"{args.size}^2 synthetic", dem), ("jacksboro sample", sample)):
                measure(name, products(str(path), tmp))
        if args.e2e:
            e2e(dem, Path(tmp), args.e2e)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
