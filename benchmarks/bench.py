"""Benchmark terrain against gdaldem (issues 4 and 11): wall time, peak memory, output size.

Run from the repository root with the venv's python:

    python benchmarks/bench.py [--size 8192] [--repeat 3] [--big] [--workdir DIR] [--keep]
                               [--defaults-only]

It makes (or reuses) a SIZE x SIZE float32 GeoTIFF DEM (tiled 512, uncompressed,
EPSG:32616, 10 m pixels, nodata -9999, deterministic synthetic relief) under
--workdir (default benchmarks/data/, git-ignored), warms every command up once
(the page cache), then runs each case --repeat times as
separate processes, alternating the cases round by round so that machine drift
hits them alike. Each process is measured with ``/usr/bin/time -f "%e %M"``:
wall seconds, peak resident memory and CPU seconds (user + sys), and the size of
what the command wrote. Cases, first table (issue 11: defaults against defaults,
what a user types):

* ``terrain slope DEM -o s.tif`` vs ``gdaldem slope DEM g.tif``;
* ``terrain analyze DEM -d out`` (four GeoTIFFs and the slope and aspect maps) vs
  ``gdaldem`` slope + aspect + hillshade run one after the other (walls and CPU
  summed, peak RSS the max);
* ``terrain plot s.tif -o map.png`` of the 8192^2 slope GeoTIFF terrain wrote.

Second table, the fastest options (issue 4): ``--method horn --geometry planar --co
COMPRESS=NONE`` (planar: CRS units, gdaldem's own geometry)
(and ``analyze --no-maps``) vs ``gdaldem -co TILED=YES``; the same four GeoTIFFs from
the library's ``process_file``; read + ``numpy.gradient`` (float64) + write.

It checks terrain's Horn slope against gdaldem's (max abs difference, degrees,
where gdaldem has a value), and with --big slopes a 24000 x 24000 DEM (2.3 GB)
with both tools once (goal: terrain's peak RSS under 1 GB). It prints markdown
tables, the machine (with the load average before and after: other work on the
machine distorts the walls, CPU seconds much less), and PASS/FAIL for each goal.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

PIXEL = 10.0
NODATA = -9999.0
BLOCK = 512
BIG_SIZE = 24000
BIG_MIN_FREE = 12 * 1024**3
GB_MB = 1024  # peak RSS goal for the big DEM, MB (MiB, as GNU time's KiB / 1024)

NUMPY_SCRIPT = """
import sys, numpy as np, rasterio
src, dst = sys.argv[1:3]
with rasterio.open(src) as ds:
    z = ds.read(1).astype('float64')
    profile, nodata, (xres, yres) = ds.profile, ds.nodata, ds.res
z[z == nodata] = np.nan
dzdy, dzdx = np.gradient(z, yres, xres)
slope = np.degrees(np.arctan(np.hypot(dzdx, dzdy))).astype('float32')
slope[np.isnan(slope)] = nodata
profile.update(dtype='float32', tiled=True, blockxsize=512, blockysize=512, compress=None)
with rasterio.open(dst, 'w', **profile) as out:
    out.write(slope, 1)
"""

LIBRARY_SCRIPT = """
import sys
from terrain.engine import Options
from terrain.stream import process_file
from terrain.writer import WriteOptions
src, out = sys.argv[1:3]
kinds = ('slope', 'aspect', 'gradient', 'hillshade')
process_file(src, {k: f'{out}/lib_{k}.tif' for k in kinds},
             Options(method='horn', geometry='planar'),
             write=WriteOptions(creation_options={'COMPRESS': 'NONE'}, overwrite=True))
"""


# ---------------------------------------------------------------- the DEM

def relief(rows: np.ndarray, cols: np.ndarray, seed: int = 4) -> np.ndarray:
    """Elevation (m, float32) at the given pixel rows x cols: hills, valleys, ridges, noise.

    Every term is a sum of products of 1-D waves (sin(a+b) = sin a cos b + cos a sin b),
    so a strip costs a few outer products; wavelengths are in metres.
    """
    y = (rows.astype(np.float64) * PIXEL)[:, None]
    x = (cols.astype(np.float64) * PIXEL)[None, :]

    def wave(length_x, length_y, phase):
        # sin(2 pi (x / lx + y / ly) + phase), separably.
        ax, ay = 2 * np.pi * x / length_x + phase, 2 * np.pi * y / length_y
        return (np.sin(ax) * np.cos(ay) + np.cos(ax) * np.sin(ay)).astype(np.float32)

    z = np.full((y.size, x.size), 600.0, np.float32)
    z += 350 * np.sin(2 * np.pi * y / 41_000).astype(np.float32) \
        * np.cos(2 * np.pi * x / 33_000).astype(np.float32)   # the large-scale landscape
    z += 120 * wave(9_000, 13_000, 0.3)                        # hills
    z += 60 * wave(-4_100, 2_900, 1.1)
    z -= 45 * np.abs(wave(2_300, -1_700, 0.7))                # sharp valleys / ridges
    z += 12 * wave(610, 830, 2.0) + 6 * wave(-270, 350, 0.4)   # small features
    rng = np.random.default_rng([seed, int(rows[0])])         # same strip, same noise
    z += rng.standard_normal(z.shape, np.float32) * np.float32(0.3)
    return z


def dem_ok(path: Path, size: int) -> bool:
    try:
        with rasterio.open(path) as ds:
            return (ds.shape == (size, size) and ds.dtypes[0] == "float32"
                    and ds.block_shapes[0] == (BLOCK, BLOCK) and ds.nodata == NODATA
                    and ds.crs is not None and ds.crs.to_epsg() == 32616)
    except rasterio.errors.RasterioIOError:
        return False


def make_dem(path: Path, size: int) -> str:
    """Write (or reuse) the benchmark DEM in strips of BLOCK rows; say which."""
    if dem_ok(path, size):
        return f"reused {path}"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part.tif")
    profile = dict(driver="GTiff", width=size, height=size, count=1, dtype="float32",
                   crs="EPSG:32616", transform=from_origin(400_000, 4_500_000, PIXEL, PIXEL),
                   nodata=NODATA, tiled=True, blockxsize=BLOCK, blockysize=BLOCK,
                   compress="none", BIGTIFF="IF_SAFER")
    start = time.perf_counter()
    cols = np.arange(size)
    with rasterio.open(tmp, "w", **profile) as ds:
        for row0 in range(0, size, BLOCK):
            rows = np.arange(row0, min(row0 + BLOCK, size))
            ds.write(relief(rows, cols), 1, window=Window(0, row0, size, rows.size))
    tmp.replace(path)  # never leave a half-written DEM that a later run would reuse
    return f"made {path} in {time.perf_counter() - start:.1f} s"


# ---------------------------------------------------------------- running and measuring

def timed(cmd: list[str]) -> tuple[float, float, float]:
    """(wall s, peak RSS MB, CPU s) of one process, measured by GNU time.

    What earlier runs wrote is flushed to disk first (``sync``, untimed): each run
    writes up to 1 GB, and the kernel's write-back of one run's files otherwise
    lands in a later run (whichever case comes third in a round paid for it)."""
    os.sync()
    with tempfile.NamedTemporaryFile("r", suffix=".time") as out:
        proc = subprocess.run(["/usr/bin/time", "-f", "%e %M %U %S", "-o", out.name, *cmd],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if proc.returncode:
            raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n"
                             f"{proc.stderr.strip()}")
        # The last line: a signal note may precede it.
        wall, kib, user, system = out.read().split()[-4:]
    return float(wall), int(kib) / 1024, float(user) + float(system)


def size_mb(paths: list[Path]) -> float:
    """Bytes written under the outputs (files, or every file in an output folder), in MB."""
    total = 0
    for path in paths:
        if path.is_dir():
            total += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        elif path.exists():
            total += path.stat().st_size
    return total / 1e6


def run_case(cmds: list[list[str]], outputs: list[Path], *, fresh: bool = True
             ) -> tuple[float, float, float, float]:
    """Run the commands of one case in turn (outputs removed first, unless not ``fresh``:
    the run before's files are there to be replaced): summed wall, max RSS, summed CPU,
    and the MB they wrote."""
    for path in outputs if fresh else ():
        if path.is_dir():
            shutil.rmtree(path)
        path.unlink(missing_ok=True)
    walls, rss, cpu = zip(*(timed(cmd) for cmd in cmds))
    return sum(walls), max(rss), sum(cpu), size_mb(outputs)


def benchmark(cases: dict, repeat: int) -> dict:
    """{name: [(wall, rss, cpu, MB), ...]}: one untimed warm-up each, then alternating rounds."""
    for name, (cmds, outputs) in cases.items():
        run_case(cmds, outputs)
    results = {name: [] for name in cases}
    for _ in range(repeat):
        for name, (cmds, outputs) in cases.items():
            results[name].append(run_case(cmds, outputs, fresh=AGAIN not in name))
    return results


def slope_difference(ours: Path, gdal: Path) -> tuple[float, int]:
    """Max |ours - gdal| over cells where gdaldem has a value, window by window; and their count."""
    worst, cells = 0.0, 0
    with rasterio.open(ours) as a, rasterio.open(gdal) as b:
        for _, win in b.block_windows(1):
            x, y = a.read(1, window=win), b.read(1, window=win)
            has = y != b.nodata
            if has.any():
                worst = max(worst, float(np.abs(x[has].astype(np.float64) - y[has]).max()))
                cells += int(has.sum())
    return worst, cells


# ---------------------------------------------------------------- the cases

def compile_bytecode() -> str:
    """terrain's own modules compiled to bytecode, as pip compiles an installed package.

    Where PYTHONDONTWRITEBYTECODE is set (this machine's shell, some CI and container
    images), an editable checkout would compile them from source at every start:
    about 70 ms of each run that no installed copy pays."""
    import compileall

    root = Path(__file__).resolve().parents[1]
    ok = all(compileall.compile_dir(str(root / d), quiet=1) for d in ("terrain", "cli"))
    return "terrain's modules compiled to bytecode first" + ("" if ok else " (FAILED)")


def terrain_exe() -> str:
    here = Path(sys.executable).with_name("terrain")
    return str(here) if here.exists() else (shutil.which("terrain") or "terrain")


def analyze_flags(terrain: str) -> tuple[list[str], str]:
    """Extra analyze flags to skip its PNG maps, if the CLI has such an option; and a note."""
    text = subprocess.run([terrain, "analyze", "--help"], capture_output=True, text=True).stdout
    for flag in ("--no-maps", "--no-map", "--no-plots"):
        if flag in text:
            return [flag], f"analyze run with {flag} (GeoTIFFs only)"
    return [], ("NOTE: `terrain analyze` has no option to skip its PNG maps: its times include "
                "drawing DIR/dem_slope.png and dem_aspect.png, and it also writes a two-band "
                "gradient GeoTIFF that the gdaldem trio does not")


# A case run again into the files of its run before (which its warm-up wrote): a
# user's second run; each tool replaces its outputs its own way.
AGAIN = ", run again"


def default_cases(terrain: str, dem: Path, out: Path, product: Path) -> dict:
    """Issue 11: what a user types, without options, on both sides; the analyze pair also
    run again over its own outputs."""
    gdal = {p: out / f"gdal_default_{p}.tif" for p in ("slope", "aspect", "hillshade")}
    again = {p: out / f"gdal_again_{p}.tif" for p in ("slope", "aspect", "hillshade")}
    return {
        "terrain slope DEM -o s.tif": (
            [[terrain, "slope", str(dem), "-o", str(out / "default_slope.tif"), "--overwrite",
              "-q"]], [out / "default_slope.tif"]),
        "gdaldem slope DEM g.tif": (
            [["gdaldem", "slope", str(dem), str(out / "gdal_default_slope.tif"), "-q"]],
            [out / "gdal_default_slope.tif"]),
        "terrain analyze DEM -d out (4 GeoTIFFs + 2 maps)": (
            [[terrain, "analyze", str(dem), "-d", str(out / "default_analyze"), "--overwrite",
              "-q"]], [out / "default_analyze"]),
        "gdaldem slope + aspect + hillshade": (
            [["gdaldem", p, str(dem), str(path), "-q"] for p, path in gdal.items()],
            list(gdal.values())),
        f"terrain analyze DEM -d out --overwrite{AGAIN}": (
            [[terrain, "analyze", str(dem), "-d", str(out / "again_analyze"), "--overwrite",
              "-q"]], [out / "again_analyze"]),
        f"gdaldem slope + aspect + hillshade{AGAIN}": (
            [["gdaldem", p, str(dem), str(path), "-q"] for p, path in again.items()],
            list(again.values())),
        "terrain plot s.tif -o map.png (the default slope GeoTIFF)": (
            [[terrain, "plot", str(product), "-o", str(out / "plot_map.png"), "--overwrite",
              "-q"]], [out / "plot_map.png"]),
    }


def slope_cases(terrain: str, dem: Path, out: Path) -> dict:
    return {
        "terrain slope": ([[terrain, "slope", str(dem), "-o", str(out / "terrain_slope.tif"),
                            "--method", "horn", "--geometry", "planar", "--co", "COMPRESS=NONE",
                            "--overwrite", "-q"]],
                          [out / "terrain_slope.tif"]),
        "gdaldem slope": ([["gdaldem", "slope", str(dem), str(out / "gdal_slope.tif"),
                            "-co", "TILED=YES", "-q"]], [out / "gdal_slope.tif"]),
    }


def all_cases(terrain: str, dem: Path, out: Path, skip_maps: list[str]) -> dict:
    gdal = {p: out / f"gdal_{p}.tif" for p in ("slope", "aspect", "hillshade")}
    cases = slope_cases(terrain, dem, out)
    cases.update({
        "terrain analyze": ([[terrain, "analyze", str(dem), "-d", str(out / "analyze"),
                              "--method", "horn", "--geometry", "planar", "--co", "COMPRESS=NONE",
                            "--overwrite", "-q",
                              *skip_maps]], [out / "analyze"]),
        "gdaldem slope+aspect+hillshade": (
            [["gdaldem", p, str(dem), str(path), "-co", "TILED=YES", "-q"]
             for p, path in gdal.items()], list(gdal.values())),
        "process_file 4 GeoTIFFs, no maps (library)": (
            [[sys.executable, "-c", LIBRARY_SCRIPT, str(dem), str(out)]],
            [out / f"lib_{k}.tif" for k in ("slope", "aspect", "gradient", "hillshade")]),
        "read + np.gradient + write": (
            [[sys.executable, "-c", NUMPY_SCRIPT, str(dem), str(out / "numpy_slope.tif")]],
            [out / "numpy_slope.tif"]),
    })
    return cases


DEFAULT_BASELINE = {
    "terrain slope DEM -o s.tif": "gdaldem slope DEM g.tif",
    "gdaldem slope DEM g.tif": "gdaldem slope DEM g.tif",
    "terrain analyze DEM -d out (4 GeoTIFFs + 2 maps)": "gdaldem slope + aspect + hillshade",
    "gdaldem slope + aspect + hillshade": "gdaldem slope + aspect + hillshade",
    f"terrain analyze DEM -d out --overwrite{AGAIN}": f"gdaldem slope + aspect + hillshade{AGAIN}",
    f"gdaldem slope + aspect + hillshade{AGAIN}": f"gdaldem slope + aspect + hillshade{AGAIN}",
    "terrain plot s.tif -o map.png (the default slope GeoTIFF)": None,
}
BASELINE = {"terrain slope": "gdaldem slope", "gdaldem slope": "gdaldem slope",
            "read + np.gradient + write": "gdaldem slope",
            "terrain analyze": "gdaldem slope+aspect+hillshade",
            "process_file 4 GeoTIFFs, no maps (library)": "gdaldem slope+aspect+hillshade",
            "gdaldem slope+aspect+hillshade": "gdaldem slope+aspect+hillshade"}


# ---------------------------------------------------------------- reporting

def summarise(runs: list[tuple[float, float, float, float]]) -> dict:
    walls = [r[0] for r in runs]
    return {"median": statistics.median(walls), "min": min(walls),
            "rss": max(r[1] for r in runs), "cpu": statistics.median(r[2] for r in runs),
            "mb": max(r[3] for r in runs)}


def walls(runs: dict) -> None:
    """Each timed run's wall, in round order: this machine's spread shows in them."""
    print("\nwall of each timed run (s), round by round:")
    for name, case_runs in runs.items():
        print(f"- {name}: {', '.join(f'{r[0]:.2f}' for r in case_runs)}")


def table(stats: dict, baseline: dict) -> str:
    lines = ["| command | median wall (s) | min wall (s) | median CPU (s) | peak RSS (MB) "
             "| output (MB) | wall ratio vs gdaldem | RSS ratio vs gdaldem |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, s in stats.items():
        base = stats[baseline[name]] if baseline.get(name) else None
        ratios = (f"{s['median'] / base['median']:.2f} | {s['rss'] / base['rss']:.2f}"
                  if base else "- | -")
        lines.append(f"| {name} | {s['median']:.2f} | {s['min']:.2f} | {s['cpu']:.2f} "
                     f"| {s['rss']:.0f} | {s['mb']:.0f} | {ratios} |")
    return "\n".join(lines)


def command_output(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def machine(terrain: str) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").open()
                if line.startswith("model name")), platform.processor() or "?")
    mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").open()
                   if line.startswith("MemTotal"))
    return (f"- machine: {os.cpu_count()} cores (nproc), {cpu}, {mem_kib / 1024**2:.1f} GB RAM\n"
            f"- {command_output(['gdalinfo', '--version'])}; Python {platform.python_version()};"
            f" numpy {np.__version__}; rasterio {rasterio.__version__};"
            f" {command_output([terrain, '--version'])}\n"
            f"- date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; load average "
            f"at the start {LOAD_AT_START}, at the end "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def default_goals(stats: dict) -> list[str]:
    """Issue 11's goals, on the first table."""
    ts, gs = stats["terrain slope DEM -o s.tif"], stats["gdaldem slope DEM g.tif"]
    ta = stats["terrain analyze DEM -d out (4 GeoTIFFs + 2 maps)"]
    ga = stats["gdaldem slope + aspect + hillshade"]
    tp = stats["terrain plot s.tif -o map.png (the default slope GeoTIFF)"]
    ratio = ta["median"] / ga["median"]
    analyze = "PASS" if ratio <= 0.5 else "FLOOR ONLY (<= 0.6)" if ratio <= 0.6 else "FAIL"
    plot = ("PASS" if tp["median"] <= 1.0 and tp["rss"] <= 250 else
            "FLOOR ONLY (<= 2 s, <= 300 MB)" if tp["median"] <= 2.0 and tp["rss"] <= 300
            else "FAIL")
    return [
        f"- {verdict(ts['median'] <= 0.5 * gs['median'])}: default slope wall <= 0.5 x default "
        f"gdaldem ({ts['median']:.2f} s vs {0.5 * gs['median']:.2f} s; ratio "
        f"{ts['median'] / gs['median']:.2f}; CPU {ts['cpu']:.2f} s vs {gs['cpu']:.2f} s)",
        f"- {verdict(ts['rss'] <= gs['rss'])}: default slope peak RSS <= gdaldem's "
        f"({ts['rss']:.0f} MB vs {gs['rss']:.0f} MB)",
        f"- {verdict(ts['mb'] <= gs['mb'])}: default slope output <= gdaldem's "
        f"({ts['mb']:.0f} MB vs {gs['mb']:.0f} MB)",
        f"- {analyze}: default analyze with its maps <= 0.5 x the three gdaldem runs "
        f"(floor 0.6; ratio {ratio:.2f}: {ta['median']:.2f} s vs {ga['median']:.2f} s; CPU "
        f"{ta['cpu']:.2f} s vs {ga['cpu']:.2f} s)",
        f"- {verdict(ta['rss'] <= ga['rss'])}: default analyze peak RSS <= gdaldem's "
        f"({ta['rss']:.0f} MB vs {ga['rss']:.0f} MB)",
        f"- {plot}: terrain plot of the 8192^2 slope <= 1 s and <= 250 MB "
        f"({tp['median']:.2f} s, {tp['rss']:.0f} MB)",
    ]


def goals(stats: dict, big: dict | None) -> list[str]:
    ts, gs = stats["terrain slope"], stats["gdaldem slope"]
    ta, ga = stats["terrain analyze"], stats["gdaldem slope+aspect+hillshade"]
    out = [
        f"- {verdict(ts['median'] <= 0.5 * gs['median'])}: slope wall <= 0.5 x gdaldem "
        f"({ts['median']:.2f} s vs {0.5 * gs['median']:.2f} s)",
        f"- {verdict(ts['rss'] <= gs['rss'])}: slope peak RSS <= gdaldem's "
        f"({ts['rss']:.0f} MB vs {gs['rss']:.0f} MB)",
        f"- {verdict(ta['median'] <= 0.5 * ga['median'])}: analyze wall <= 0.5 x the three "
        f"gdaldem runs ({ta['median']:.2f} s vs {0.5 * ga['median']:.2f} s)",
    ]
    if big is None:
        out.append("- not run: 24000 x 24000 slope peak RSS < 1 GB (use --big)")
    elif "skipped" in big:
        out.append(f"- not run: 24000 x 24000 slope peak RSS < 1 GB ({big['skipped']})")
    else:
        rss = big["terrain slope"][1]
        out.append(f"- {verdict(rss < GB_MB)}: 24000 x 24000 slope peak RSS < 1 GB "
                   f"({rss:.0f} MB)")
    return out


# ---------------------------------------------------------------- main

def run_big(terrain: str, workdir: Path, keep: bool) -> dict:
    """Slope a 24000 x 24000 DEM once with each tool: {tool: (wall, rss), 'diff': ...}."""
    workdir.mkdir(parents=True, exist_ok=True)
    dem = workdir / f"dem_{BIG_SIZE}.tif"
    free = shutil.disk_usage(workdir).free
    if free < BIG_MIN_FREE:
        return {"skipped": f"only {free / 1024**3:.1f} GB free in {workdir}, need 12 GB"}
    out = workdir / "out_big"
    out.mkdir(exist_ok=True)
    try:
        print(f"big DEM: {make_dem(dem, BIG_SIZE)}", flush=True)
        cases = slope_cases(terrain, dem, out)
        result = {name: run_case(cmds, outputs) for name, (cmds, outputs) in cases.items()}
        result["diff"] = slope_difference(*(outputs[0] for _, outputs in cases.values()))
        return result
    finally:
        if not keep:
            shutil.rmtree(out, ignore_errors=True)
            dem.unlink(missing_ok=True)


LOAD_AT_START = "?"


def main(argv=None) -> None:
    global LOAD_AT_START
    LOAD_AT_START = " ".join(f"{x:.2f}" for x in os.getloadavg())
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=8192, help="DEM side in pixels (8192)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each case (3)")
    parser.add_argument("--big", action="store_true",
                        help="also slope a 24000 x 24000 DEM (2.3 GB; needs 12 GB free)")
    parser.add_argument("--workdir", type=Path,
                        default=Path(__file__).resolve().parent / "data",
                        help="where the DEMs and outputs go (benchmarks/data/)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the outputs and the big DEM (the small DEM is always kept)")
    parser.add_argument("--defaults-only", action="store_true",
                        help="only the first table (defaults against defaults, issue 11)")
    args = parser.parse_args(argv)
    if args.size < 3 or args.repeat < 1:
        parser.error("--size must be >= 3 and --repeat >= 1")
    terrain = terrain_exe()
    print(compile_bytecode(), flush=True)
    workdir = args.workdir.resolve()
    out = workdir / f"out_{args.size}"
    out.mkdir(parents=True, exist_ok=True)

    dem = workdir / f"dem_{args.size}.tif"
    print(f"DEM {args.size} x {args.size} float32: {make_dem(dem, args.size)}", flush=True)
    skip_maps, maps_note = analyze_flags(terrain)
    print(maps_note, flush=True)
    cases = all_cases(terrain, dem, out, skip_maps)
    # The product `terrain plot` maps: the default slope GeoTIFF, written once here.
    product = out / "plotted_slope.tif"
    run_case([[terrain, "slope", str(dem), "-o", str(product), "--overwrite", "-q"]], [product])
    defaults = default_cases(terrain, dem, out, product)
    print(f"load average at the start {LOAD_AT_START}; one untimed warm-up run of each "
          f"command (page cache), then {args.repeat} timed round(s), the cases alternating ...",
          flush=True)
    try:
        default_runs = benchmark(defaults, args.repeat)
        default_stats = {name: summarise(runs) for name, runs in default_runs.items()}
        stats = diff = cells = None
        if not args.defaults_only:
            fastest_runs = benchmark(cases, args.repeat)
            stats = {name: summarise(runs) for name, runs in fastest_runs.items()}
            diff, cells = slope_difference(out / "terrain_slope.tif", out / "gdal_slope.tif")
        big = run_big(terrain, workdir, args.keep) if args.big else None
    finally:
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)

    print(f"\n## Defaults against defaults: {args.size} x {args.size} float32 DEM, "
          f"{args.repeat} timed run(s) each, after one warm-up (whole process, `/usr/bin/time`)\n")
    print(table(default_stats, DEFAULT_BASELINE))
    walls(default_runs)
    if stats is not None:
        print(f"\n## Fastest options: {args.size} x {args.size} float32 DEM, {args.repeat} "
              "timed run(s) each (terrain --method horn --geometry planar --co COMPRESS=NONE, "
              "gdaldem -co TILED=YES)\n")
        print(table(stats, BASELINE))
        walls(fastest_runs)
        print(f"\nterrain horn slope (planar) vs gdaldem slope: max |difference| {diff:.2e} "
              f"degrees over {cells} cells where gdaldem has a value")
    if big and "skipped" not in big:
        print(f"\n## {BIG_SIZE} x {BIG_SIZE} float32 DEM (2.3 GB), one run each\n")
        print("| tool | wall (s) | peak RSS (MB) |\n| --- | ---: | ---: |")
        for name in ("terrain slope", "gdaldem slope"):
            print(f"| {name} | {big[name][0]:.2f} | {big[name][1]:.0f} |")
        print(f"\nmax |difference| vs gdaldem: {big['diff'][0]:.2e} degrees")
    print("\n## Machine\n")
    print(machine(terrain))
    print("\n## Goals (issue 11: defaults, first table)\n")
    print("\n".join(default_goals(default_stats)))
    if stats is not None:
        print("\n## Goals (issue 4: fastest options, second table)\n")
        print("\n".join(goals(stats, big)))
    if not skip_maps and stats is not None:
        print(f"\n{maps_note}.")


if __name__ == "__main__":
    main()
