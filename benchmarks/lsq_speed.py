"""Speed of the least-squares methods (issue 13): Florinsky slope vs gdaldem's Horn slope.

    python benchmarks/lsq_speed.py [--dem benchmarks/data/dem_8192.tif] [--repeat 3]

The DEM is bench.py's 8192 x 8192 float32 GeoTIFF (make it with
``python benchmarks/bench.py --size 8192 --repeat 1`` if it is missing). Measured:

1. whole processes (wall and CPU, median of --repeat after one warm-up, the cases
   alternating round by round): ``gdaldem slope DEM out.tif`` (Horn, its defaults),
   and ``terrain slope DEM -o out.tif --method M`` (all cores) with florinsky,
   evans and horn, with terrain's defaults and with ``--geometry planar --co
   COMPRESS=NONE``;
2. the kernels alone on the whole array in memory, one thread, one call
   (florinsky, evans and terrain.kernels.horn), and the time to build the weights
   (first call, empty cache).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DEM = ROOT / "benchmarks" / "data" / "dem_8192.tif"

TERRAIN = str(Path(sys.executable).with_name("terrain"))


def wall(cmd):
    """(wall, CPU user + sys) seconds of one run of ``cmd``."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    w = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return w, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def processes(dem: str, repeat: int):
    tmp = tempfile.mkdtemp(prefix="lsq_speed_")
    cases = {"gdaldem slope (Horn, defaults)":
             ["gdaldem", "slope", dem, f"{tmp}/g.tif", "-q"]}
    for fast in ("0", "1"):
        for method in ("florinsky", "evans", "horn"):
            label = f"terrain {method} slope" + (" (planar, uncompressed)" if fast == "1"
                                                  else " (defaults)")
            cases[label] = [TERRAIN, "slope", dem, "-o", f"{tmp}/t.tif", "--overwrite",
                            "--method", method] + (["--geometry", "planar", "--co",
                                                    "COMPRESS=NONE"] if fast == "1" else [])
    times = {k: [] for k in cases}
    try:
        for cmd in cases.values():
            wall(cmd)  # warm-up: page cache, imports
        for _ in range(repeat):
            for label, cmd in cases.items():
                times[label].append(wall(cmd))
    finally:
        for f in Path(tmp).iterdir():
            f.unlink()
        os.rmdir(tmp)
    return {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
            for k, v in times.items()}


def kernels_alone(dem: str):
    import rasterio

    from terrain import kernels, lsq

    with rasterio.open(dem) as ds:
        z = ds.read(1).astype(np.float32)
    h = 2
    zpad = np.pad(z, h, constant_values=np.nan)
    n = zpad.shape
    xpos, ypos, xscale = np.arange(n[1]) * 10.0, -np.arange(n[0]) * 10.0, np.ones(n[0])
    p = np.empty(z.shape, np.float32)
    q = np.empty_like(p)
    out = {}
    lsq._cache.clear()
    t = time.perf_counter()
    lsq.florinsky(zpad[:8, :8], xpos[:8], xscale[:8], ypos[:8], h, 2, 1.0,
                  p[:4, :4].copy(), q[:4, :4].copy())
    out["florinsky weights (first call, 8 x 8 block)"] = time.perf_counter() - t
    for name, fn in (("florinsky", lsq.florinsky), ("evans", lsq.evans),
                     ("horn", kernels.horn)):
        best = []
        for _ in range(2):
            t0, c0 = time.perf_counter(), time.process_time()
            fn(zpad, xpos, xscale, ypos, h, 2, 1.0, p, q)
            best.append((time.perf_counter() - t0, time.process_time() - c0))
        out[f"{name} kernel, whole 8192^2 array, 1 thread"] = min(best)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dem", default=str(DEFAULT_DEM))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    load0 = os.getloadavg()
    walls = processes(args.dem, args.repeat)
    alone = kernels_alone(args.dem)
    load1 = os.getloadavg()
    print(f"{args.dem}; {os.cpu_count()} CPUs; load average {load0[0]:.1f} before, "
          f"{load1[0]:.1f} after\n")
    print("| whole process | wall (s), median | CPU (s), median |\n| --- | ---: | ---: |")
    for k, (w, c) in walls.items():
        print(f"| {k} | {w:.2f} | {c:.2f} |")
    print("\n| kernel | wall (s) | CPU (s) |\n| --- | ---: | ---: |")
    for k, v in alone.items():
        if isinstance(v, tuple):
            print(f"| {k} | {v[0]:.2f} | {v[1]:.2f} |")
        else:
            print(f"| {k} | {v:.3f} | |")
    g = walls["gdaldem slope (Horn, defaults)"][0]
    f = walls["terrain florinsky slope (defaults)"][0]
    print(f"\n- florinsky slope (terrain defaults) {f:.2f} s vs gdaldem Horn slope {g:.2f} s: "
          f"{'PASS' if f <= g else 'FAIL'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
