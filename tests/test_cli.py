"""The terrain command group: help, light imports, error lines, exit codes, interruptions,
and every bad input of issue 3 / issue 5 through every command.

Each failure must give exit status 1 (2 for usage errors), one line on stderr naming
the file, no traceback, no output and no temporary file, and leave the input intact.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from cli import options
from conftest import UTM_SAMPLE, WGS84_SAMPLE, invoke, sha256, write_tif

TERRAIN = Path(sys.executable).with_name("terrain")
HEAVY = ("xarray", "rioxarray", "matplotlib", "dask", "numba")
COMMANDS = ("info", "slope", "aspect", "gradient", "hillshade", "plot", "analyze")
FILE_COMMANDS = ("slope", "aspect", "gradient", "hillshade")


def plane_dem(path, shape=(12, 14), dtype="float32", **kwargs):
    rows, cols = shape
    z = (0.3 * np.arange(cols)[None, :] + 0.2 * np.arange(rows)[:, None] + 100).astype(dtype)
    return write_tif(path, z, **kwargs)


def command_args(command, dem, out_dir):
    """Arguments of ``command`` on ``dem`` writing into ``out_dir``."""
    out_dir = Path(out_dir)
    if command == "info":
        return ["info", dem]
    if command == "plot":
        return ["plot", dem, "-o", out_dir / "map.png"]
    if command == "analyze":
        return ["analyze", dem, "-d", out_dir]
    return [command, dem, "-o", out_dir / "out.tif"]


def assert_clean_failure(result, out_dir, code=1, names=None):
    """Exit ``code``, one stderr line (naming ``names``), no traceback, nothing written."""
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.output
    if code == 1:
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("terrain: error: "), lines
        if names is not None:
            assert names in lines[0], lines
    else:
        assert lines[-1].startswith("Error: "), result.stderr
    assert result.stdout == ""
    out_dir = Path(out_dir)
    if out_dir.exists():
        assert sorted(os.listdir(out_dir)) == [], os.listdir(out_dir)


# --------------------------------------------------------------------------- help and imports


def test_help_imports_nothing_heavy_and_is_fast():
    code = (
        "import sys, time\n"
        "t = time.perf_counter()\n"
        "from cli.main import cli\n"
        "try:\n"
        "    cli(['--help'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "dt = time.perf_counter() - t\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(dt, ','.join(heavy) or '-', file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    dt, heavy = proc.stderr.split()
    assert "Commands:" in proc.stdout
    assert heavy == "-", f"terrain --help imported {heavy}"
    assert float(dt) < 0.5


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_imports_nothing_heavy(command):
    code = (
        "import sys\n"
        "from cli.main import cli\n"
        "try:\n"
        f"    cli([{command!r}, '--help'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stderr.strip() == ""
    assert f"{command} [OPTIONS]" in proc.stdout


def test_console_script_runs():
    proc = subprocess.run([str(TERRAIN), "--version"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert proc.stdout.startswith("terrain, version ")


@pytest.mark.parametrize("command, phrases", [
    (None, ["metres", "ellipsoid", "--z-factor"]),
    ("slope", ["degrees", "percent", "100 x rise/run"]),
    ("aspect", ["clockwise from north", "downslope", "--flat-value", "nearest"]),
    ("gradient", ["towards east", "towards north", "metres per metre"]),
    ("hillshade", ["--azimuth", "clockwise from north", "above the", "0 = nodata"]),
    ("plot", ["PNG, PDF or SVG", "lon/lat"]),
    ("analyze", ["_slope.tif", "_aspect.png", "exit status is 1"]),
    ("info", ["metres", "ellipsoid", "nodata"]),
])
def test_help_explains_units_and_conventions(command, phrases):
    result = invoke(*([command] if command else []), "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for phrase in phrases:
        assert phrase in text, phrase


def test_cli_choices_mirror_the_library():
    from terrain import engine, kernels, plot, registry, spacing

    assert options.METHODS == tuple(registry.METHODS)
    assert options.SLOPE_UNITS == tuple(kernels.SLOPE_UNITS)
    assert options.GEOMETRIES == spacing.GEOMETRIES
    assert options.DEFAULT_TILE_SIZE == engine.DEFAULT_TILE_SIZE
    assert options.PLOT_PRODUCTS == tuple(plot.PRODUCTS)
    assert options.PLOT_SUFFIXES == tuple(plot.FORMATS)


# --------------------------------------------------------------------------- bad inputs


pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def _rotated(tmp):
    return plane_dem(tmp / "rotated.tif", transform=Affine(30.0, 5.0, 500000, 5.0, -30.0, 4e6))


def _truncated(tmp):
    data = UTM_SAMPLE.read_bytes()
    path = tmp / "truncated.tif"
    path.write_bytes(data[: len(data) // 2])
    return str(path)


def _directory(tmp):
    (tmp / "adir").mkdir()
    return str(tmp / "adir")


def _file(tmp, name, data: bytes):
    (tmp / name).write_bytes(data)
    return str(tmp / name)


BAD_INPUTS = {
    # name: (make(tmp) -> dem path, extra args, text expected in the error line)
    "missing": (lambda tmp: str(tmp / "nowhere.tif"), [], "no such file"),
    "directory": (_directory, [], "directory"),
    "empty": (lambda tmp: _file(tmp, "empty.tif", b""), [], "empty"),
    "text": (lambda tmp: _file(tmp, "text.tif", b"not a raster\n"), [], "not a raster"),
    "truncated": (_truncated, [], "truncated"),
    "no_crs": (lambda tmp: plane_dem(tmp / "nocrs.tif", crs=None), [], "--src-crs"),
    "no_georeferencing": (lambda tmp: plane_dem(tmp / "nogeo.tif", crs=None,
                                                transform=Affine.identity()), [], "georeferencing"),
    "rotated": (_rotated, [], "rotated"),
    "missing_band": (lambda tmp: plane_dem(tmp / "dem.tif"), ["--band", "2"], "band 2"),
    "1x1": (lambda tmp: plane_dem(tmp / "one.tif", shape=(1, 1)), [], "2 x 2"),
    "1xN": (lambda tmp: plane_dem(tmp / "row.tif", shape=(1, 30)), [], "2 x 2"),
    "Nx1": (lambda tmp: plane_dem(tmp / "col.tif", shape=(30, 1)), [], "2 x 2"),
}


@pytest.mark.parametrize("command, case", [
    (command, case) for command in COMMANDS for case in BAD_INPUTS
    # info describes a file without CRS (tests/test_info.py)
    if not (command == "info" and case in ("no_crs", "no_georeferencing"))
])
def test_bad_input_fails_cleanly(tmp_path, command, case):
    make, extra, expected = BAD_INPUTS[case]
    dem = make(tmp_path)
    before = sha256(dem) if os.path.isfile(dem) else None
    out_dir = tmp_path / "out"
    result = invoke(*command_args(command, dem, out_dir), *extra)
    assert_clean_failure(result, out_dir, names=dem)
    assert expected in result.stderr
    if before is not None:
        assert sha256(dem) == before


@pytest.mark.parametrize("command", FILE_COMMANDS + ("plot", "analyze"))
def test_no_crs_works_with_src_crs(tmp_path, command):
    dem = plane_dem(tmp_path / "nocrs.tif", crs=None)
    out_dir = tmp_path / "out"
    result = invoke(*command_args(command, dem, out_dir), "--src-crs", "EPSG:32616")
    assert result.exit_code == 0, result.output
    tifs = sorted(out_dir.glob("*.tif"))
    assert tifs or command == "plot"
    for tif in tifs:
        with rasterio.open(tif) as ds:
            assert ds.crs.to_epsg() == 32616


def _under_a_file(tmp, name):
    (tmp / "afile").write_text("x")
    return tmp / "afile" / name


@pytest.mark.parametrize("command", FILE_COMMANDS + ("plot",))
@pytest.mark.parametrize("where", ["under_a_file", "proc"])
def test_unwritable_output(tmp_path, command, where):
    dem = plane_dem(tmp_path / "dem.tif")
    name = "map.png" if command == "plot" else "out.tif"
    out = _under_a_file(tmp_path, name) if where == "under_a_file" else Path("/proc") / name
    before = set(os.listdir(tmp_path))
    result = invoke(command, dem, "-o", out)
    assert_clean_failure(result, tmp_path / "nothing-here", names=None)
    assert str(out) in result.stderr or str(out.parent) in result.stderr
    assert set(os.listdir(tmp_path)) == before
    assert not out.exists()


def test_unwritable_out_dir_for_analyze(tmp_path):
    dem = plane_dem(tmp_path / "dem.tif")
    out_dir = _under_a_file(tmp_path, "out")
    result = invoke("analyze", dem, "-d", out_dir)
    assert_clean_failure(result, tmp_path / "nothing-here")
    assert "afile" in result.stderr


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
@pytest.mark.parametrize("command", FILE_COMMANDS + ("plot",))
def test_output_equal_to_input_is_refused(tmp_path, command, overwrite):
    dem = plane_dem(tmp_path / ("dem.png" if command == "plot" else "dem.tif"))
    if command == "plot":  # a DEM named .png (GDAL reads by content), for the same path
        os.replace(plane_dem(tmp_path / "dem.tif"), dem)
    before = sha256(dem)
    result = invoke(command, dem, "-o", dem, *overwrite)
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert "is the input file" in result.stderr
    assert sha256(dem) == before
    assert sorted(os.listdir(tmp_path)) == [Path(dem).name]


@pytest.mark.parametrize("command", FILE_COMMANDS + ("plot",))
def test_existing_output_needs_overwrite(tmp_path, command):
    dem = plane_dem(tmp_path / "dem.tif")
    out = tmp_path / ("map.png" if command == "plot" else "out.tif")
    out.write_bytes(b"precious")
    result = invoke(command, dem, "-o", out)
    assert result.exit_code == 1
    assert "already exists" in result.stderr and "--overwrite" in result.stderr
    assert "library:" not in result.stderr  # the Python hint is for library users
    assert out.read_bytes() == b"precious"
    assert sorted(os.listdir(tmp_path)) == ["dem.tif", out.name]
    result = invoke(command, dem, "-o", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert out.read_bytes() != b"precious"
    assert sorted(os.listdir(tmp_path)) == ["dem.tif", out.name]


def test_existing_map_is_refused_before_any_work(tmp_path):
    dem = plane_dem(tmp_path / "dem.tif")
    (tmp_path / "map.png").write_bytes(b"precious")
    result = invoke("slope", dem, "-o", tmp_path / "slope.tif", "--plot", tmp_path / "map.png")
    assert result.exit_code == 1
    assert "map.png: already exists" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["dem.tif", "map.png"]


def test_missing_parent_folders_are_created(tmp_path):
    dem = plane_dem(tmp_path / "dem.tif")
    out = tmp_path / "a" / "b" / "c" / "slope.tif"
    result = invoke("slope", dem, "-o", out)
    assert result.exit_code == 0, result.output
    assert out.is_file()


def test_every_command_leaves_the_input_untouched(tmp_path):
    dem = str(tmp_path / "dem.tif")
    shutil.copy(WGS84_SAMPLE, dem)
    before = sha256(dem)
    for command in COMMANDS:
        assert invoke(*command_args(command, dem, tmp_path / command)).exit_code == 0
    assert sha256(dem) == before


# --------------------------------------------------------------------------- usage errors


@pytest.mark.parametrize("args", [
    ["slope", "{dem}"],                                     # no -o
    ["slope", "{dem}", "-o", "{out}", "--method", "sobel"],
    ["slope", "{dem}", "-o", "{out}", "--units", "grads"],
    ["slope", "{dem}", "-o", "{out}", "--edge-order", "3"],
    ["slope", "{dem}", "-o", "{out}", "--z-factor", "0"],
    ["slope", "{dem}", "-o", "{out}", "--z-factor", "nan"],
    ["slope", "{dem}", "-o", "{out}", "--band", "0"],
    ["slope", "{dem}", "-o", "{out}", "--co", "COMPRESS"],
    ["slope", "{dem}", "-o", "{out}", "--src-crs", "EPSG:99999"],
    ["slope", "{dem}", "-o", "{out}", "--src-crs", "not a crs"],
    ["slope", "{dem}", "-o", "{out}", "--plot", "{dir}/map.jpg"],
    ["slope", "{dem}", "-o", "{dir}/out/slope.png"],           # a picture name for a GeoTIFF
    ["slope", "{dem}", "-o", "{out}", "--tile-size", "0"],
    ["slope", "{dem}", "-o", "{out}", "--threads", "0"],
    ["hillshade", "{dem}", "-o", "{out}", "--altitude", "91"],
    ["plot", "{dem}", "-o", "{dir}/map.jpg"],
    ["plot", "{dem}", "-o", "{dir}/map.png", "--product", "sobel-magnitude"],  # no such product
    ["analyze", "-d", "{dir}/out"],                          # no DEM
    ["analyze", "{dem}", "{dem}", "-d", "{dir}/out"],         # same stem twice
    ["frobnicate"],
])
def test_usage_errors_exit_2(tmp_path, args):
    dem = plane_dem(tmp_path / "dem.tif")
    fill = {"dem": dem, "out": tmp_path / "out" / "o.tif", "dir": tmp_path}
    result = invoke(*[a.format(**fill) for a in args])
    assert_clean_failure(result, tmp_path / "out", code=2)
    assert sorted(os.listdir(tmp_path)) == ["dem.tif"]
    if "slope.png" in args[-1]:
        assert "--plot" in result.stderr


# --------------------------------------------------------------------------- messages, -q, -v


def test_success_reports_on_stderr_and_quiet_silences(tmp_path):
    dem = plane_dem(tmp_path / "dem.tif")
    result = invoke("slope", dem, "-o", tmp_path / "s.tif")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == f"wrote {tmp_path / 's.tif'}\n"
    for args in (["-q", "slope", dem, "-o", tmp_path / "s2.tif"],
                 ["slope", dem, "-o", tmp_path / "s3.tif", "-q"]):
        result = invoke(*args)
        assert result.exit_code == 0
        assert result.output == ""


@pytest.mark.parametrize("where", ["group", "command"])
def test_verbose_shows_the_traceback(tmp_path, where):
    args = ["slope", tmp_path / "nowhere.tif", "-o", tmp_path / "o.tif"]
    result = invoke(*(["-v", *args] if where == "group" else [*args, "-v"]))
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("terrain: error: ")
    assert "nowhere.tif: no such file" in result.stderr.splitlines()[-1]


def test_all_nodata_dem_warns_and_exits_0(tmp_path):
    dem = write_tif(tmp_path / "void.tif", np.full((20, 30), -9999, np.float32), nodata=-9999)
    out = tmp_path / "slope.tif"
    result = invoke("-q", "slope", dem, "-o", out)
    assert result.exit_code == 0, result.output
    assert result.stderr == f"warning: {dem}: no valid elevation; outputs are all nodata\n"
    with rasterio.open(out) as ds:
        assert ds.nodata == -9999
        assert (ds.read(1) == -9999).all()


@pytest.mark.parametrize("exc", ["KeyboardInterrupt", "Interrupted"])
def test_interruption_message_and_status(tmp_path, monkeypatch, exc):
    import terrain.stream
    from terrain.errors import Interrupted

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt if exc == "KeyboardInterrupt" else Interrupted("stopped")

    monkeypatch.setattr(terrain.stream, "process_file", interrupted)
    dem = plane_dem(tmp_path / "dem.tif")
    result = invoke("slope", dem, "-o", tmp_path / "out" / "s.tif")
    assert result.exit_code == 130
    assert result.stderr == "terrain: interrupted; no output written\n"


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_sets_the_runners_stop_event(tmp_path, monkeypatch, signum):
    """The handler stops the worker threads (queued windows are dropped), not only the
    main thread, then the command reports the interruption."""
    import terrain.stream

    seen = {}

    def run(*args, stop_event=None, **kwargs):
        seen["before"] = stop_event.is_set()
        try:
            os.kill(os.getpid(), signum)
            time.sleep(5)  # the handler raises KeyboardInterrupt here
        finally:
            seen["after"] = stop_event.is_set()

    monkeypatch.setattr(terrain.stream, "process_file", run)
    result = invoke("slope", plane_dem(tmp_path / "dem.tif"), "-o", tmp_path / "s.tif")
    assert seen == {"before": False, "after": True}
    assert result.exit_code == 130
    assert result.stderr == "terrain: interrupted; no output written\n"


def test_signal_handlers_are_restored_after_a_run(tmp_path):
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    invoke("info", plane_dem(tmp_path / "dem.tif"))
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


@pytest.fixture(scope="module")
def slow_dem(tmp_path_factory):
    """A DEM that takes seconds with --tile-size 16 --threads 1 (many small windows)."""
    rng = np.random.default_rng(1)
    z = (rng.random((2400, 2400)) * 100).astype(np.float32)
    return write_tif(tmp_path_factory.mktemp("slow") / "big.tif", z,
                     transform=Affine(10.0, 0, 500000.0, 0, -10.0, 4e6))


@pytest.mark.parametrize("threads", ["1", "2"])  # 2: thousands of windows still queued
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_a_run_leaves_nothing(tmp_path, slow_dem, signum, threads):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    before = sha256(slow_dem)
    proc = subprocess.Popen(
        [str(TERRAIN), "-q", "slope", slow_dem, "-o", out_dir / "slope.tif", "--cog",
         "--tile-size", "16", "--threads", threads],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not any(n.endswith(".part.tif") for n in os.listdir(out_dir)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.1)
    assert proc.poll() is None, "the run ended before the signal; make slow_dem slower"
    sent = time.monotonic()
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=20)
    assert time.monotonic() - sent < 5
    assert proc.returncode == 130, stderr
    assert stderr == "terrain: interrupted; no output written\n"
    assert os.listdir(out_dir) == []
    assert sha256(slow_dem) == before


# --------------------------------------------------------------------------- progress


def test_pixel_bar_decision():
    from cli.common import BAR_MIN_CELLS, BAR_MIN_CELLS_TTY, want_pixel_bar

    class Tty:
        def isatty(self):
            return True

    class Pipe:
        def isatty(self):
            return False

    assert not want_pixel_bar(BAR_MIN_CELLS_TTY - 1, quiet=False, stream=Tty())
    assert want_pixel_bar(BAR_MIN_CELLS_TTY, quiet=False, stream=Tty())
    assert not want_pixel_bar(BAR_MIN_CELLS_TTY, quiet=False, stream=Pipe())
    assert want_pixel_bar(BAR_MIN_CELLS, quiet=False, stream=Pipe())
    assert not want_pixel_bar(BAR_MIN_CELLS, quiet=True, stream=Tty())


@pytest.mark.parametrize("quiet", [False, True])
def test_pixel_bar_counts_every_pixel(tmp_path, monkeypatch, quiet):
    import tqdm

    import cli.common

    closed = []
    close = tqdm.tqdm.close

    def spy(bar):
        if not bar.disable:  # a closed bar is disabled; tqdm may close it twice
            closed.append((bar.n, bar.total))
        close(bar)

    monkeypatch.setattr(tqdm.tqdm, "close", spy)
    monkeypatch.setattr(cli.common, "BAR_MIN_CELLS", 0)
    dem = plane_dem(tmp_path / "dem.tif", shape=(50, 70))
    result = invoke(*(["-q"] if quiet else []), "slope", dem, "-o", tmp_path / "s.tif",
                    "--tile-size", "16")
    assert result.exit_code == 0
    if quiet:
        assert result.stderr == ""
        assert closed == []
    else:
        assert "px/s" in result.stderr
        assert closed == [(50 * 70, 50 * 70)]


def test_python_warnings_only_with_verbose(tmp_path):
    """rasterio warns (NotGeoreferencedWarning) before the library's own one-line error.
    In a subprocess: pytest records warnings instead of printing them."""
    dem = str(tmp_path / "picture.png")
    with rasterio.open(dem, "w", driver="PNG", width=8, height=6, count=1, dtype="uint8") as ds:
        ds.write(np.zeros((6, 8), np.uint8), 1)
    quiet = subprocess.run([str(TERRAIN), "slope", dem, "-o", tmp_path / "o.tif"],
                           capture_output=True, text=True)
    assert quiet.returncode == 1
    assert quiet.stderr.startswith(f"terrain: error: {dem}: raster has no georeferencing")
    assert len(quiet.stderr.splitlines()) == 1
    for verbose in (["-v", "slope", dem], ["slope", dem, "-v"]):
        loud = subprocess.run([str(TERRAIN), *verbose, "-o", tmp_path / "o.tif"],
                              capture_output=True, text=True)
        assert loud.returncode == 1 and "NotGeoreferencedWarning" in loud.stderr


def test_unexpected_error_names_the_input(tmp_path, monkeypatch):
    import terrain.stream

    def broken(*args, **kwargs):
        raise UnicodeDecodeError("utf-8", b"\xe9", 0, 1, "invalid continuation byte")

    monkeypatch.setattr(terrain.stream, "process_file", broken)
    dem = plane_dem(tmp_path / "dem.tif")
    result = invoke("slope", dem, "-o", tmp_path / "s.tif")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"terrain: error: {dem}: unexpected UnicodeDecodeError")
    assert len(result.stderr.splitlines()) == 1


def test_logging_levels_are_restored_after_a_run(tmp_path):
    import logging

    root, rio = logging.getLogger(), logging.getLogger("rasterio")
    before = (root.level, rio.level, list(root.handlers))
    rio_before = (rio.propagate, list(rio.handlers))
    assert invoke("-v", "info", plane_dem(tmp_path / "dem.tif")).exit_code == 0
    assert invoke("-q", "info", plane_dem(tmp_path / "dem.tif")).exit_code == 0
    assert (root.level, rio.level, list(root.handlers)) == before
    assert (rio.propagate, list(rio.handlers)) == rio_before


def test_gdal_warnings_are_shown_after_success_only(tmp_path):
    dem = plane_dem(tmp_path / "dem.tif")
    result = invoke("-q", "slope", dem, "-o", tmp_path / "s.tif", "--co", "COMPRESS=BOGUS")
    assert result.exit_code == 0
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith("warning: GDAL: ") for line in lines)
    assert any("COMPRESS=BOGUS value not recognised" in line for line in lines)
    # A failing run says one line, whatever GDAL said before.
    result = invoke("slope", dem, "-o", tmp_path / "s.tif", "--co", "COMPRESS=BOGUS")
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1 and "already exists" in result.stderr


def test_any_error_unwinding_after_a_signal_is_the_interruption(tmp_path, monkeypatch):
    """A signal can land inside library clean-up (rasterio raised EnvError when a second
    Ctrl-C hit an Env's exit): once a signal arrived, the CLI reports the interruption."""
    import terrain.stream

    def interrupted_then_broken(*args, stop_event=None, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # the handler only sets the stop event here
        assert stop_event.is_set()
        raise RuntimeError("No GDAL environment exists")

    monkeypatch.setattr(terrain.stream, "process_file", interrupted_then_broken)
    result = invoke("slope", UTM_SAMPLE, "-o", tmp_path / "s.tif")
    assert result.exit_code == 130
    assert result.stderr.splitlines() == ["terrain: interrupted; no output written"]


def test_a_failing_window_is_an_error_not_an_interruption(tmp_path, monkeypatch):
    """The runner sets its stop event when a window fails, to stop the others; that is
    not a signal, and the CLI must report the error itself."""
    import terrain.stream
    from terrain.errors import InputError

    def failing(*args, **kwargs):
        raise InputError("dem.tif: cannot read band 1 rows 0-16 (corrupt)")

    monkeypatch.setattr(terrain.stream, "compute_block", failing)
    result = invoke("slope", UTM_SAMPLE, "-o", tmp_path / "s.tif")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "terrain: error: dem.tif: cannot read band 1 rows 0-16 (corrupt)"]
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- issue 9 (rows 2-5, 8)

def _one_error_line(res, *words):
    assert res.exit_code == 1, (res.exit_code, res.output)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("terrain: error: "), res.stderr
    assert "Traceback" not in res.output
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


@pytest.mark.parametrize("kind", ["fifo", "link to /dev/null"])
def test_cli_never_replaces_a_fifo_or_a_device(kind, tmp_path):
    dem = plane_dem(tmp_path / "dem.tif")
    target = tmp_path / "target.tif"
    if kind == "fifo":
        os.mkfifo(target)
    else:
        target.symlink_to("/dev/null")
    res = invoke("slope", dem, "-o", target, "--overwrite")
    _one_error_line(res, str(target), "regular file")
    if kind == "fifo":
        assert os.path.exists(target) and not target.is_symlink()
        assert __import__("stat").S_ISFIFO(os.lstat(target).st_mode)
    else:
        assert os.readlink(target) == "/dev/null"
    assert sorted(os.listdir(tmp_path)) == ["dem.tif", "target.tif"]


def test_cli_vrt_source_is_never_an_output(tmp_path):
    """Row 3: `terrain slope mosaic.vrt -o t00.tif --overwrite` with t00.tif a source tile."""
    exe = shutil.which("gdalbuildvrt") or "/usr/bin/gdalbuildvrt"
    assert Path(exe).exists(), "gdalbuildvrt (gdal-bin) is required"
    t00 = plane_dem(tmp_path / "t00.tif")
    t01 = plane_dem(tmp_path / "t01.tif", transform=Affine(30.0, 0, 500000.0 + 14 * 30, 0, -30.0,
                                                                 4e6))
    vrt = tmp_path / "mosaic.vrt"
    subprocess.run([exe, str(vrt), t00, t01], check=True, capture_output=True)
    before = {p: sha256(p) for p in (t00, t01, vrt)}
    res = invoke("slope", vrt, "-o", t00, "--overwrite")
    _one_error_line(res, t00, "input")
    assert {p: sha256(p) for p in (t00, t01, vrt)} == before
    assert sorted(os.listdir(tmp_path)) == ["mosaic.vrt", "t00.tif", "t01.tif"]


@pytest.mark.parametrize("name", ["out.vrt", "out.asc"])
def test_cli_output_extension_decides(name, tmp_path):
    """Row 4: -o out.vrt / out.asc is refused with the supported names, nothing written."""
    dem = plane_dem(tmp_path / "dem.tif")
    res = invoke("slope", dem, "-o", tmp_path / "out" / name)
    _one_error_line(res, name, ".tif")
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []
    res = invoke("slope", dem, "-o", tmp_path / "out.png")  # the picture hint stays
    assert res.exit_code == 2 and "--plot" in res.output


@pytest.mark.parametrize("codec", ["JPEG", "WEBP"])
def test_cli_lossy_codec_on_float32(codec, tmp_path):
    """Row 5: the real cause and the output, not 'is the disk full?'."""
    dem = plane_dem(tmp_path / "dem.tif")
    out = tmp_path / "out.tif"
    line = _one_error_line(invoke("slope", dem, "-o", out, "--co", f"COMPRESS={codec}"),
                           str(out), codec, "ZSTD")
    assert "disk" not in line
    assert sorted(os.listdir(tmp_path)) == ["dem.tif"]


@pytest.mark.slow  # a concurrency loop; tests/test_writer.py races in one process in the quick run
def test_cli_two_concurrent_runs_onto_one_name(tmp_path):
    """Row 8: two `terrain slope ... -o same.tif` at once, no --overwrite: one writes, the
    other says the file already exists; 3 rounds (before: both succeeded every time)."""
    rng = np.random.default_rng(8)
    dems = [write_tif(tmp_path / f"d{k}.tif", (rng.random((1500, 1500)) * 100).astype(np.float32))
            for k in (0, 1)]
    for round_ in range(3):
        out = tmp_path / f"same{round_}.tif"
        procs = [subprocess.Popen([str(TERRAIN), "slope", d, "-o", str(out), "--tile-size", "128"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for d in dems]
        results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
        for p in procs:
            p.stdout.close()
            p.stderr.close()
        codes = sorted(code for code, _ in results)
        assert codes == [0, 1], results
        err = next(e for code, e in results if code == 1)
        assert err.startswith(f"terrain: error: {out}: already exists") and \
            len(err.strip().splitlines()) == 1, err
        with rasterio.open(out) as ds:
            assert ds.read(1).shape == (1500, 1500)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


@pytest.mark.parametrize("preset", [None, "1"])
def test_the_command_line_sets_its_process_policy_before_numpy_loads(preset):
    """numpy's transparent huge pages off and OpenBLAS on one thread (cli/__init__.py),
    set before numpy is imported, so numpy takes them; a value the user set wins."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMPY_MADVISE_HUGEPAGE", "OPENBLAS_NUM_THREADS")}
    if preset is not None:
        env["NUMPY_MADVISE_HUGEPAGE"] = env["OPENBLAS_NUM_THREADS"] = preset
    code = ("import os, cli, numpy; from numpy._core import multiarray as m; "
            "print(os.environ['NUMPY_MADVISE_HUGEPAGE'], os.environ['OPENBLAS_NUM_THREADS'], "
            "m._get_madvise_hugepage())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == (["0", "1", "False"] if preset is None else ["1", "1", "True"])
