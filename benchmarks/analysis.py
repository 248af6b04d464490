"""Benchmark the slope analysis (issue 12): `terrain stats` with zone polygons vs `terrain slope`.

Run from the repository root with the venv's python:

    python benchmarks/analysis.py [--size 8192] [--polygons 1000] [--repeat 2] [--workdir DIR]

Makes (or reuses) bench.py's SIZE x SIZE synthetic DEM (EPSG:32616, 10 m) and a
GeoPackage of POLYGONS random convex polygons (6 vertices, 100 m - 2 km across,
seed 12) over it, then times as separate processes (GNU time: wall s, peak RSS):

* ``terrain slope DEM -o slope.tif`` (the reference: one streamed pass, one GeoTIFF);
* ``terrain stats DEM -o all.csv`` (whole DEM: statistics, classes, ground areas);
* ``terrain stats DEM --zones polygons.gpkg -o zones.csv`` (per polygon, exactextract coverage);
* ``terrain classify DEM -o classes.tif``.

Goal (issue 12): stats with 1000 polygons <= 2 x terrain slope. Prints a markdown
table and PASS/FAIL.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import PIXEL, make_dem, terrain_exe, timed  # noqa: E402


def make_polygons(path: Path, size: int, n: int, seed: int = 12) -> str:
    import fiona

    if path.exists():
        path.unlink()
    rng = np.random.default_rng(seed)
    x0, y1 = 400_000.0, 4_500_000.0
    extent = size * PIXEL
    schema = {"geometry": "Polygon", "properties": {"name": "str"}}
    with fiona.open(path, "w", driver="GPKG", crs="EPSG:32616", schema=schema) as dst:
        for i in range(n):
            r = rng.uniform(50, 1000)
            cx = x0 + rng.uniform(r, extent - r)
            cy = y1 - rng.uniform(r, extent - r)
            ang = np.sort(rng.uniform(0, 2 * np.pi, 6))
            ring = [(float(cx + r * np.cos(a)), float(cy + r * np.sin(a))) for a in ang]
            dst.write({"geometry": {"type": "Polygon", "coordinates": [ring + [ring[0]]]},
                       "properties": {"name": f"p{i:04d}"}})
    return f"wrote {n} polygons to {path}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--polygons", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path(__file__).parent / "data")
    args = parser.parse_args()
    work = args.workdir
    dem = work / f"dem_{args.size}.tif"
    print(make_dem(dem, args.size))
    polys = work / f"polygons_{args.polygons}.gpkg"
    print(make_polygons(polys, args.size, args.polygons))
    t = terrain_exe()
    out = work / "analysis_out"
    out.mkdir(exist_ok=True)
    cases = {
        "terrain slope": [t, "slope", str(dem), "-o", str(out / "slope.tif"), "--overwrite"],
        "terrain stats (whole DEM)": [t, "stats", str(dem), "-o", str(out / "all.csv"),
                                      "--overwrite"],
        f"terrain stats ({args.polygons} polygons)": [
            t, "stats", str(dem), "--zones", str(polys), "--zone-field", "name",
            "-o", str(out / "zones.csv"), "--overwrite"],
        "terrain classify": [t, "classify", str(dem), "-o", str(out / "classes.tif"),
                             "--overwrite"],
    }
    for cmd in cases.values():  # warm-up: page cache
        timed(cmd)
    results = {name: [] for name in cases}
    for _ in range(args.repeat):
        for name, cmd in cases.items():
            results[name].append(timed(cmd))
    print(f"\n{args.size} x {args.size} DEM, {args.polygons} polygons, median of {args.repeat}\n")
    print("| case | wall s | peak RSS MB |\n| --- | --- | --- |")
    med = {}
    for name, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        rss = max(r[1] for r in runs)
        med[name] = wall
        print(f"| {name} | {wall:.2f} | {rss:.0f} |")
    ratio = med[f"terrain stats ({args.polygons} polygons)"] / med["terrain slope"]
    print(f"\nstats with polygons / slope = {ratio:.2f} (goal <= 2): "
          f"{'PASS' if ratio <= 2 else 'FAIL'}")


if __name__ == "__main__":
    main()
