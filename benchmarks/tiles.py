"""Benchmark tile sets (issue 14): a 100-tile set against the same area as one file.

Run from the repository root with the venv's python:

    python benchmarks/tiles.py [--dem DEM] [--tiles 10] [--repeat 3] [--workdir DIR]

It cuts the DEM (default: bench.py's 8192 x 8192 float32 DEM under --workdir, made
if missing) into --tiles x --tiles GeoTIFF tiles with rasterio windows (the same
format: float32, tiled 256, uncompressed), then runs, alternating round by round,
as separate processes measured by ``/usr/bin/time`` (wall, peak RSS, CPU):

* ``terrain slope DEM -o s.tif`` against ``terrain slope TILES/ -d out`` (the tile
  set seamless: every tile on the mosaic's grid, halo from its neighbours);
* ``terrain analyze DEM -d out --no-maps`` against ``terrain analyze TILES/ -d out
  --no-maps``.

It checks that the tiles' slopes equal the one file's on their cells (bit for bit)
and prints a markdown table, the ratios and PASS/FAIL for the issue's goals (the
tile set's wall <= 1.2 x the one file's, its peak RSS <= the one file's).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import machine, make_dem, terrain_exe, timed  # noqa: E402


def split(dem: Path, folder: Path, n: int) -> list[Path]:
    """Cut ``dem`` into n x n tiles t{row:02d}_{col:02d}.tif (reused when complete)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    with rasterio.open(dem) as ds:
        rows, cols = ds.shape
        rb = np.linspace(0, rows, n + 1).astype(int)
        cb = np.linspace(0, cols, n + 1).astype(int)
        for i in range(n):
            for j in range(n):
                path = folder / f"t{i:02d}_{j:02d}.tif"
                paths.append(path)
                win = Window(cb[j], rb[i], cb[j + 1] - cb[j], rb[i + 1] - rb[i])
                if path.exists():
                    continue
                profile = dict(driver="GTiff", width=int(win.width), height=int(win.height),
                               count=1, dtype=ds.dtypes[0], crs=ds.crs, nodata=ds.nodata,
                               transform=ds.window_transform(win), tiled=True,
                               blockxsize=256, blockysize=256, compress="none")
                tmp = path.with_suffix(".part.tif")
                with rasterio.open(tmp, "w", **profile) as out:
                    out.write(ds.read(1, window=win), 1)
                tmp.replace(path)
    return paths


def check_equal(one: Path, out: Path, tiles: list[Path]) -> int:
    """Cells where a tile's slope differs from the one file's (0 = seamless)."""
    bad = 0
    with rasterio.open(one) as w:
        for tile in tiles:
            with rasterio.open(out / f"{tile.stem}_slope.tif") as o:
                col = round((o.transform.c - w.transform.c) / w.transform.a)
                row = round((o.transform.f - w.transform.f) / w.transform.e)
                bad += int((o.read(1) != w.read(1, window=Window(col, row, o.width, o.height))).sum())
    return bad


def clean(*paths: Path) -> None:
    for p in paths:
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dem", type=Path, default=None,
                        help="the one-file DEM (default: bench.py's 8192^2 DEM in --workdir)")
    parser.add_argument("--tiles", type=int, default=10, help="tiles per side (10: 100 tiles)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each case (3)")
    parser.add_argument("--only", choices=("slope", "analyze"), default=None,
                        help="run only this command's cases (default: both)")
    parser.add_argument("--workdir", type=Path, default=Path(__file__).resolve().parent / "data",
                        help="where the tiles and outputs go (benchmarks/data/)")
    args = parser.parse_args(argv)
    import bench

    bench.LOAD_AT_START = " ".join(f"{x:.2f}" for x in os.getloadavg())
    work = args.workdir
    dem = args.dem
    if dem is None:
        dem = work / "dem_8192.tif"
        print(make_dem(dem, 8192))
    n = args.tiles
    tiles = split(dem, work / f"tiles_{n}x{n}", n)
    tile_dir = tiles[0].parent
    terrain = terrain_exe()
    print(bench.compile_bytecode(), flush=True)
    one_s, set_s, set_j = work / "one_slope.tif", work / "tiles_slope", work / "tiles_slope_jobs"
    one_a, set_a, set_aj = work / "one_analyze", work / "tiles_analyze", work / "tiles_analyze_jobs"
    cases = {
        "terrain slope DEM -o s.tif": ([terrain, "-q", "slope", str(dem), "-o", str(one_s)], one_s),
        f"terrain slope TILES/ -d out ({n * n} tiles)":
            ([terrain, "-q", "slope", str(tile_dir), "-d", str(set_s)], set_s),
        f"terrain slope TILES/ -d out --jobs 2 --threads 1 ({n * n} tiles)":
            ([terrain, "-q", "slope", str(tile_dir), "-d", str(set_j), "--jobs", "2",
              "--threads", "1"], set_j),
        "terrain analyze DEM -d out --no-maps":
            ([terrain, "-q", "analyze", str(dem), "-d", str(one_a), "--no-maps"], one_a),
        f"terrain analyze TILES/ -d out --no-maps ({n * n} tiles)":
            ([terrain, "-q", "analyze", str(tile_dir), "-d", str(set_a), "--no-maps"], set_a),
        f"terrain analyze TILES/ -d out --no-maps --jobs 2 --threads 1 ({n * n} tiles)":
            ([terrain, "-q", "analyze", str(tile_dir), "-d", str(set_aj), "--no-maps", "--jobs",
              "2", "--threads", "1"], set_aj),
    }
    if args.only:
        cases = {name: case for name, case in cases.items()
                 if name.startswith(f"terrain {args.only} ")}
    results = {name: [] for name in cases}
    for round_ in range(args.repeat + 1):  # round 0 warms the page cache up, untimed
        for name, (cmd, out) in cases.items():
            clean(out)
            measured = timed(cmd)
            if round_:
                results[name].append(measured)
    bad = 0
    if args.only != "analyze":
        bad = check_equal(one_s, set_s, tiles) + check_equal(one_s, set_j, tiles)
    else:  # the analyze runs' slopes (the last round's, kept until here)
        one_slope = one_a / f"{dem.stem}_slope.tif"
        bad = check_equal(one_slope, set_a, tiles) + check_equal(one_slope, set_aj, tiles)
    stats = {name: (statistics.median(r[0] for r in runs), max(r[1] for r in runs),
                    statistics.median(r[2] for r in runs)) for name, runs in results.items()}
    print(f"\n#### {n * n} tiles of {dem.name} against the one file, {args.repeat} timed run(s) "
          "each, after one warm-up (whole process, `/usr/bin/time`)\n")
    print("| command | median wall (s) | median CPU (s) | peak RSS (MB) | wall ratio | RSS ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    names = list(cases)
    goals = []
    pairs = ((names[0], names[1]), (names[0], names[2]))
    if len(names) == 6:
        pairs += ((names[3], names[4]), (names[3], names[5]))
    for base, tiled in pairs:
        (bw, br, bc), (tw, tr, tc) = stats[base], stats[tiled]
        if tiled == pairs[0][1] or tiled == pairs[-2][1]:
            print(f"| {base} | {bw:.2f} | {bc:.2f} | {br:.0f} | 1.00 | 1.00 |")
        print(f"| {tiled} | {tw:.2f} | {tc:.2f} | {tr:.0f} | {tw / bw:.2f} | {tr / br:.2f} |")
        what = tiled.split(" (")[0].replace("TILES/ -d out", "tiles")
        goals.append(f"- {'PASS' if tw <= 1.2 * bw else 'FAIL'}: {what}: wall <= 1.2 x the one "
                     f"file's ({tw:.2f} s vs {bw:.2f} s; ratio {tw / bw:.2f})")
        goals.append(f"- {'PASS' if tr <= br else 'FAIL'}: {what}: peak RSS <= the one "
                     f"file's ({tr:.0f} MB vs {br:.0f} MB)")
    print(f"\nTile slopes vs the one file's on the same cells: {bad} cells differ "
          f"({'seamless, bit for bit' if bad == 0 else 'NOT seamless'})\n")
    print("\n".join(goals))
    print("\n" + machine(terrain))
    for _, out in cases.values():
        clean(out)
    if bad:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
