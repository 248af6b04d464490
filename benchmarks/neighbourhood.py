"""Benchmark terrain's TRI / TPI / roughness kernels against gdaldem (issue 13).

Run from the repository root with the venv's python:

    python benchmarks/neighbourhood.py [--dem benchmarks/data/dem_8192.tif] [--repeat 3]
                                        [--threads 2] [--strip 512]

The DEM defaults to bench.py's 8192 x 8192 float32 one (``python benchmarks/bench.py``
makes it). For each index (TRI Riley, TRI Wilson, TPI, roughness) it runs, as separate
processes measured by ``/usr/bin/time -f "%e %M %U %S"`` (wall s, peak RSS, CPU s):

* ``gdaldem MODE DEM out.tif -q`` (its defaults: GTiff, striped, uncompressed);
* ``terrain tri|tpi|roughness DEM -o out.tif`` (the product commands, their defaults:
  ZSTD-compressed tiled GeoTIFF, all cores) and the same with ``--co COMPRESS=NONE``;
* "kernel only": the same file -> file job without the engine, in bounded memory:
  strips of ``--strip`` rows read with a one-row halo (NaN beyond the raster, nodata ->
  NaN), the compiled kernel (``terrain.neighbourhood``) on ``--threads`` threads (it
  releases the GIL), written in order to an uncompressed float32 GeoTIFF with gdaldem's
  nodata (-9999): what the kernels cost without the runner's extras.

Every command is warmed up once (page cache); the cases alternate round by round and
the median of ``--repeat`` runs is printed as a markdown table, with the machine's
load average before and after (other work on the machine distorts walls, CPU seconds
much less). It also checks terrain's output against gdaldem's where gdaldem has a
value (largest absolute difference) and counts the cells only terrain fills.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio

ROOT = Path(__file__).resolve().parent.parent
INDICES = [("TRI Riley", "TRI", ["-alg", "Riley"], "tri", "riley"),
           ("TRI Wilson", "TRI", ["-alg", "Wilson"], "tri", "wilson"),
           ("TPI", "TPI", [], "tpi", None),
           ("roughness", "roughness", [], "roughness", None)]

TERRAIN_SCRIPT = r"""
import sys
from concurrent.futures import ThreadPoolExecutor
import numpy as np, rasterio
from rasterio.windows import Window
from terrain import neighbourhood

src, dst, index, algorithm, threads, strip = sys.argv[1:7]
threads, strip = int(threads), int(strip)
NODATA = -9999.0
with rasterio.open(src) as ds:
    rows, cols, nodata = ds.height, ds.width, ds.nodata
    profile = dict(driver="GTiff", width=cols, height=rows, count=1, dtype="float32",
                   crs=ds.crs, transform=ds.transform, nodata=NODATA)

    def read(r0, r1):
        lo, hi = max(r0 - 1, 0), min(r1 + 1, rows)
        z = ds.read(1, window=Window(0, lo, cols, hi - lo))
        if nodata is not None:
            z[z == nodata] = np.nan
        return np.pad(z, ((1 - (r0 - lo), 1 - (hi - r1)), (1, 1)), constant_values=np.nan)

    def compute(z):
        out = np.empty((z.shape[0] - 2, z.shape[1] - 2), z.dtype)
        if index == "tri":
            neighbourhood.tri(z, 1, 1.0, out, algorithm=algorithm)
        else:
            getattr(neighbourhood, index)(z, 1, 1.0, out)
        out[np.isnan(out)] = NODATA
        return out

    strips = [(r0, min(r0 + strip, rows)) for r0 in range(0, rows, strip)]
    with rasterio.open(dst, "w", **profile) as out_ds, ThreadPoolExecutor(threads) as pool:
        # reads stay on this thread (one dataset handle); at most `threads` strips in flight
        pending = []
        for r0, r1 in strips:
            pending.append((r0, r1, pool.submit(compute, read(r0, r1))))
            if len(pending) >= threads:
                a0, a1, fut = pending.pop(0)
                out_ds.write(fut.result(), 1, window=Window(0, a0, cols, a1 - a0))
        for a0, a1, fut in pending:
            out_ds.write(fut.result(), 1, window=Window(0, a0, cols, a1 - a0))
"""


def timed(cmd):
    """(wall s, peak RSS MB, CPU s) of ``cmd`` run as its own process."""
    res = subprocess.run(["/usr/bin/time", "-f", "%e %M %U %S", *cmd], capture_output=True,
                         text=True)
    if res.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr}")
    wall, rss, user, sys_ = res.stderr.strip().splitlines()[-1].split()
    return float(wall), int(rss) / 1024, float(user) + float(sys_)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dem", default=str(ROOT / "benchmarks" / "data" / "dem_8192.tif"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--strip", type=int, default=512)
    args = ap.parse_args()
    if not Path(args.dem).exists():
        raise SystemExit(f"{args.dem}: no such DEM; make it with python benchmarks/bench.py")

    here = Path(sys.executable).with_name("terrain")
    terrain = str(here) if here.exists() else (shutil.which("terrain") or "terrain")
    work = Path(tempfile.mkdtemp(prefix="nbh_bench_"))
    cases = []
    for label, mode, opts, index, alg in INDICES:
        g_out, t_out = work / f"gdal_{mode}_{alg}.tif", work / f"terrain_{index}_{alg}.tif"
        cases.append((label, "gdaldem", ["gdaldem", mode, args.dem, str(g_out), "-q", *opts],
                      g_out))
        tri_opt = ["--tri-algorithm", alg] if index == "tri" else []
        for tool, extra in (("terrain", []), ("terrain, --co COMPRESS=NONE",
                                              ["--co", "COMPRESS=NONE"])):
            out = work / f"cli_{index}_{alg}_{len(extra)}.tif"
            cases.append((label, tool, [terrain, index, args.dem, "-o", str(out), "--overwrite",
                                        *tri_opt, *extra], out))
        cases.append((label, "kernel only", [sys.executable, "-c", TERRAIN_SCRIPT, args.dem,
                                             str(t_out), index, str(alg), str(args.threads),
                                             str(args.strip)], t_out))
    load0 = os.getloadavg()
    for _, _, cmd, _ in cases:          # warm-up (page cache, imports)
        timed(cmd)
    runs = {(label, tool): [] for label, tool, _, _ in cases}
    for _ in range(args.repeat):
        for label, tool, cmd, _ in cases:
            runs[(label, tool)].append(timed(cmd))
    load1 = os.getloadavg()

    with rasterio.open(args.dem) as ds:
        shape = (ds.height, ds.width)
    print(f"\n{shape[0]} x {shape[1]} {args.dem}; median of {args.repeat}; "
          f"terrain: {args.threads} threads, strips of {args.strip} rows")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {load0[0]:.2f} before, {load1[0]:.2f} after\n")
    print("| index | tool | wall s | CPU s | peak RSS MB | output MB | max abs diff vs gdaldem | "
          "cells only terrain fills |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, mode, opts, index, alg in INDICES:
        with rasterio.open(work / f"gdal_{mode}_{alg}.tif") as g:
            gv, gnd = g.read(1), g.nodata
        valid = gv != gnd
        for lab, tool, _, path in cases:
            if lab != label:
                continue
            tail = "| "
            if tool != "gdaldem":
                with rasterio.open(path) as t:
                    tv, tnd = t.read(1), t.nodata
                diff = float(np.abs(tv[valid].astype(np.float64) - gv[valid]).max())
                tail = f"{diff:.3g} | {int(((tv != tnd) & ~valid).sum())}"
            r = runs[(label, tool)]
            wall, rss, cpu = (statistics.median(x[i] for x in r) for i in range(3))
            size = path.stat().st_size / 1e6
            print(f"| {label} | {tool} | {wall:.2f} | {cpu:.2f} | {rss:.0f} | {size:.0f} | "
                  f"{tail} |")
    for p in work.iterdir():
        p.unlink()
    work.rmdir()


if __name__ == "__main__":
    main()
