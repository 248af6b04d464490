"""Size and encode time of GeoTIFF codecs on terrain's products (issue 11).

Run from the repository root with the venv's python:

    python benchmarks/codecs.py [--size 8192] [--workdir DIR]

It computes slope, aspect, gradient (dzdx, dzdy) and hillshade of the benchmark
DEM (the one bench.py makes, reused) and of sample_data/jacksboro_utm16n.tif
with terrain's Horn defaults, uncompressed, then writes each product again
from memory with every codec configuration below (one process, the whole array
in one ``write``), and prints a markdown table: file size in MB and as a
fraction of the uncompressed file, and the wall time of the write, once with
GDAL compressing on the writing thread and once with ``NUM_THREADS=ALL_CPUS``.
A time is the better of two writes; the page cache holds everything.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import make_dem  # noqa: E402
from terrain.writer import WriteOptions

CONFIGS = [
    ("NONE", {}),
    ("ZSTD 1, no predictor", {"COMPRESS": "ZSTD", "ZSTD_LEVEL": "1"}),
    ("ZSTD 1, PREDICTOR 2", {"COMPRESS": "ZSTD", "ZSTD_LEVEL": "1", "PREDICTOR": "2"}),
    ("ZSTD 1, PREDICTOR 3", {"COMPRESS": "ZSTD", "ZSTD_LEVEL": "1", "PREDICTOR": "3"}),
    ("ZSTD 3, PREDICTOR 3", {"COMPRESS": "ZSTD", "ZSTD_LEVEL": "3", "PREDICTOR": "3"}),
    ("ZSTD 9, PREDICTOR 3 (GDAL's default level)",
     {"COMPRESS": "ZSTD", "ZSTD_LEVEL": "9", "PREDICTOR": "3"}),
    ("DEFLATE 1, PREDICTOR 3", {"COMPRESS": "DEFLATE", "ZLEVEL": "1", "PREDICTOR": "3"}),
    ("DEFLATE 6, PREDICTOR 3", {"COMPRESS": "DEFLATE", "ZLEVEL": "6", "PREDICTOR": "3"}),
    ("LZW, PREDICTOR 3", {"COMPRESS": "LZW", "PREDICTOR": "3"}),
    ("LZW, no predictor", {"COMPRESS": "LZW"}),
]
# Byte hillshade: the floating-point predictor does not apply; PREDICTOR 2 is the analogue.
BYTE_PREDICTOR = {"3": "2"}


def products(dem: str, workdir: str) -> dict:
    """{name: array as written by terrain (float32 with -9999, or uint8)} of one DEM."""
    from terrain.engine import Options
    from terrain.stream import process_file

    kinds = ("slope", "aspect", "gradient", "hillshade")
    paths = {k: os.path.join(workdir, f"p_{k}.tif") for k in kinds}
    process_file(dem, paths, Options(method="horn"),
                 write=WriteOptions(creation_options={"COMPRESS": "NONE"}, overwrite=True))
    out = {}
    for k, p in paths.items():
        with rasterio.open(p) as ds:
            arr = ds.read()
            out[k] = (arr, ds.profile)
        os.unlink(p)
    return out


def write_once(path, arr, profile, opts) -> tuple[float, int]:
    prof = dict(driver="GTiff", width=profile["width"], height=profile["height"],
                count=arr.shape[0], dtype=arr.dtype.name, crs=profile["crs"],
                transform=profile["transform"], nodata=profile["nodata"], tiled=True,
                blockxsize=512, blockysize=512, BIGTIFF="IF_SAFER")
    prof.update({k.lower(): v for k, v in opts.items()})
    start = time.perf_counter()
    with rasterio.open(path, "w", **prof) as ds:
        ds.write(arr)
    wall = time.perf_counter() - start
    size = os.path.getsize(path)
    os.unlink(path)
    return wall, size


def measure(name: str, prods: dict, workdir: str) -> list[str]:
    rows = []
    for kind, (arr, profile) in prods.items():
        base = None
        for label, opts in CONFIGS:
            opts = dict(opts)
            if arr.dtype == np.uint8 and "PREDICTOR" in opts:
                opts["PREDICTOR"] = BYTE_PREDICTOR.get(opts["PREDICTOR"], opts["PREDICTOR"])
            path = os.path.join(workdir, "c.tif")
            t1 = min(write_once(path, arr, profile, opts)[0] for _ in range(2))
            size = write_once(path, arr, profile, opts)[1]
            tn = None
            if opts:
                tn = min(write_once(path, arr, profile, dict(opts, NUM_THREADS="ALL_CPUS"))[0]
                         for _ in range(2))
            base = base or size
            rows.append(f"| {name} | {kind} ({arr.dtype.name}) | {label} | {size / 1e6:.1f} "
                        f"| {size / base:.2f} | {t1:.2f} | "
                        f"{'' if tn is None else f'{tn:.2f}'} |")
            print(rows[-1], flush=True)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--workdir", type=Path,
                        default=Path(__file__).resolve().parent / "data")
    args = parser.parse_args(argv)
    workdir = args.workdir.resolve()
    dem = workdir / f"dem_{args.size}.tif"
    print(make_dem(dem, args.size), flush=True)
    sample = Path(__file__).resolve().parent.parent / "sample_data" / "jacksboro_utm16n.tif"
    print("| DEM | product | codec | size (MB) | size / uncompressed | write (s), 1 thread "
          "| write (s), NUM_THREADS=ALL_CPUS |\n| --- | --- | --- | ---: | ---: | ---: | ---: |",
          flush=True)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for name, path in ((f"{args.size}^2 synthetic", dem), ("jacksboro sample", sample)):
            measure(name, products(str(path), tmp), tmp)


if __name__ == "__main__":
    main()
