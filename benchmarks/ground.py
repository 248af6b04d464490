"""True ground on projected grids (issue 8): accuracy per CRS, and what geodesic costs.

Run from the repository root with the venv's python:

    python benchmarks/ground.py [--size 8192] [--repeat 5] [--workdir DIR] [--no-speed]

Accuracy: for each CRS of tests/test_spacing.py (Web Mercator at 0/45/60/75 N, polar
stereographic north and south, LAEA Europe far from its centre, a US-feet state
plane, UTM 4 degrees off its meridian), a plane z = 500 + 0.12 E - 0.2 N with (E, N)
geodesic offsets from the raster's centre is drawn on a 201 x 201 grid (float64),
and the slope and aspect of terrain (Horn, geodesic and planar) and of `gdaldem
slope` / `gdaldem aspect` (same file) are compared with the plane's true slope and
aspect at each cell (pyproj.Geod steps of 1 m east and north). Errors in degrees,
mean and max over the cells each tool gives a value to.

Speed: `terrain slope DEM -o s.tif` with --geometry geodesic (the default) and
--geometry planar on the 8192 x 8192 UTM benchmark DEM of bench.py, alternating,
median wall time of --repeat runs after a warm-up (the goal: geodesic <= 1.15 x
planar).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from test_spacing import (GROUND_CASES, _write, angle_between, ground_plane,  # noqa: E402
                          ground_slope_aspect)


def read(path):
    with rasterio.open(path) as ds:
        a = ds.read(1).astype(np.float64)
        if ds.nodata is not None:
            a[a == ds.nodata] = np.nan
    return a


def accuracy_rows(tmp: Path) -> list[str]:
    import terrain

    rows = ["| CRS, place | terrain geodesic: slope / aspect error (mean, max) "
            "| terrain planar | gdaldem |", "| --- | --- | --- | --- |"]
    for case in GROUND_CASES:
        z, transform, crs, truth = ground_plane(case, shape=(201, 201))
        src = _write(tmp / f"{case}.tif", z, transform, crs)
        true_slope, true_aspect = ground_slope_aspect(truth["dzdx"], truth["dzdy"])
        cells = []
        dem = terrain.open_dem(src)
        for geometry in ("geodesic", "planar"):
            g = terrain.gradient(dem, method="horn", geometry=geometry)
            cells.append((terrain.slope(g).values, terrain.aspect(g).values))
        for mode in ("slope", "aspect"):
            subprocess.run(["gdaldem", mode, src, str(tmp / f"{case}_{mode}.tif"), "-q"],
                           check=True)
        cells.append((read(tmp / f"{case}_slope.tif"), read(tmp / f"{case}_aspect.tif")))
        texts = []
        for slope, aspect in cells:
            ds = np.abs(slope - true_slope)
            da = angle_between(aspect, true_aspect)
            texts.append(f"{np.nanmean(ds):.2g}, {np.nanmax(ds):.2g} / "
                         f"{np.nanmean(da):.2g}, {np.nanmax(da):.2g}")
        rows.append(f"| {case} ({crs}) | " + " | ".join(texts) + " |")
    return rows


def speed(size: int, repeat: int, workdir: Path) -> list[str]:
    from bench import make_dem

    workdir.mkdir(parents=True, exist_ok=True)
    dem = workdir / f"dem_{size}.tif"
    make_dem(dem, size)
    dem = str(dem)
    exe = str(Path(sys.executable).with_name("terrain"))
    times = {"geodesic": [], "planar": []}
    with tempfile.TemporaryDirectory(dir=workdir) as out:
        for k in range(repeat + 1):
            for geometry in times:
                start = time.perf_counter()
                subprocess.run([exe, "-q", "slope", dem, "-o", f"{out}/{geometry}.tif",
                                "--overwrite", "--geometry", geometry], check=True)
                if k:  # the first round warms the page cache
                    times[geometry].append(time.perf_counter() - start)
    med = {g: statistics.median(t) for g, t in times.items()}
    ratio = med["geodesic"] / med["planar"]
    return [f"| `terrain slope` {size} x {size} UTM, --geometry | median wall (s) | runs |",
            "| --- | ---: | --- |",
            *(f"| {g} | {med[g]:.2f} | {', '.join(f'{t:.2f}' for t in times[g])} |"
              for g in times),
            "", f"geodesic / planar: {ratio:.3f} ({'PASS' if ratio <= 1.15 else 'FAIL'}: "
                "goal <= 1.15)"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=HERE / "data")
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        print("\n".join(accuracy_rows(Path(tmp))))
    if not args.no_speed:
        print()
        print("\n".join(speed(args.size, args.repeat, args.workdir)))


if __name__ == "__main__":
    main()
