"""The ``terrain`` command group: verbosity, signals, and the one place errors are printed.

Every command runs inside :meth:`TerrainGroup.invoke`, which turns a library error
(:class:`terrain.TerrainError`) into one line ``terrain: error: <message>`` on
stderr and exit status 1 (the traceback only with ``-v``), and an interruption
(Ctrl-C, SIGTERM) into ``terrain: interrupted; no output written`` and status 130.
Usage errors are click's: status 2.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import sys
import tempfile
import threading
import traceback
import warnings

import click

from terrain import __version__
from terrain.errors import Interrupted

from . import analyze, info, plot, products, state
from .common import describe_error
from .options import verbosity_options

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


class _OneShotInterrupt:
    """SIGINT / SIGTERM handler: sets ``stop`` (the streaming runner's stop_event, so
    its worker threads drop the windows still queued) and raises KeyboardInterrupt,
    once; repeats are ignored, so a second Ctrl-C cannot break the clean-up.

    While the streaming runner watches ``stop`` itself (``RunState.stop_watched``), no
    exception is raised: an exception landing inside rasterio's dataset creation
    or clean-up can leave GDAL state that crashes the interpreter; the runner
    stops at its next window instead and raises ``Interrupted``."""

    def __init__(self, stop: threading.Event, run: state.RunState):
        self.stop = stop
        self.run = run
        self.fired = False

    def __call__(self, signum, frame):
        self.run.signalled = True  # the stop event is also set by the library's own failures
        self.stop.set()
        if not self.fired and not self.run.stop_watched:
            self.fired = True
            raise KeyboardInterrupt


def keep_freed_memory() -> None:
    """Have glibc's malloc keep freed memory for reuse: blocks under 32 MB come from
    its heap, and 256 MB may stay free before the heap is trimmed (the process's
    policy, so the command line's, not the library's). Elsewhere than glibc, or when
    the user set MALLOC_*_THRESHOLD_ variables, nothing.

    By default glibc hands every freed block over 0.1-32 MB back to the system at
    once, and a run frees and allocates its window arrays, tiles and map layers
    again and again: each new block is fresh pages the kernel must fault in and
    zero. Measured on the benchmark machine under load: 100 tiles of 819^2, analyze:
    851,000 -> 42,000 page faults, system time 1.9 -> 0.65 s (peak RSS 210 -> 218 MB);
    one 8192^2 file, analyze: system time 1.2-2.4 -> 0.8-1.3 s, peak RSS unchanged.
    """
    import platform

    if any(k.startswith("MALLOC_") and k.endswith("THRESHOLD_") for k in os.environ):
        return
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 32 << 20)
        libc.mallopt(m_trim_threshold, 256 << 20)
    except (OSError, AttributeError):  # pragma: no cover - not glibc after all
        pass


def _install_signal_handlers(ctx: click.Context) -> None:
    run = state.get(ctx)
    stop = run.stop_event = threading.Event()
    handler = _OneShotInterrupt(stop, run)
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            previous = signal.getsignal(signum)
            if previous is signal.SIG_IGN:  # e.g. started with nohup: keep it ignored
                continue
            signal.signal(signum, handler)
        except (ValueError, OSError):  # not the main thread (embedded use)
            continue
        ctx.call_on_close(lambda s=signum, p=previous: signal.signal(s, p))


class _GdalWarnings(logging.Handler):
    """Collects GDAL's warnings (e.g. an ignored --co value), shown as
    ``warning: GDAL: ...`` lines when the command succeeds. After a failure the
    one error line says it all (a corrupt file makes GDAL warn again and again);
    GDAL's errors are never shown: the library raises its own error for them."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        if record.levelno == logging.WARNING:
            text = re.sub(r"^CPLE_\w+ in ", "", record.getMessage())
            if text not in self.messages:
                self.messages.append(text)

    def flush_to_stderr(self):
        from .common import warn

        for text in self.messages:
            warn("GDAL: " + text)
        self.messages.clear()


def _configure_logging(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Log records on stderr: warnings (errors with -q), INFO with -v, DEBUG with -vv;
    GDAL's (rasterio's) records: warnings only, all of them with -v. The previous
    state is restored when the command ends (embedded or tested use)."""
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else (
        logging.ERROR if quiet else logging.WARNING)
    root = logging.getLogger()
    rio = logging.getLogger("rasterio")
    previous = root.level, rio.level, rio.propagate
    handlers = []
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))
        root.addHandler(handler)
        handlers.append((root, handler))
    root.setLevel(level)
    if verbose:
        rio.setLevel(level)
    else:
        rio.setLevel(logging.WARNING)
        rio.propagate = False
        gdal = state.get(ctx).gdal_warnings = _GdalWarnings()
        rio.addHandler(gdal)
        handlers.append((rio, gdal))

    def restore():
        for logger, handler in handlers:
            logger.removeHandler(handler)
        root.setLevel(previous[0])
        rio.setLevel(previous[1])
        rio.propagate = previous[2]

    ctx.call_on_close(restore)


@contextlib.contextmanager
def _native_stderr_held():
    """Hold back what C libraries print straight to file descriptor 2.

    libtiff reports some write errors (a full disk) there itself, besides the error
    GDAL hands to terrain; held back, a failure stays one line. Python's own stderr
    keeps the real terminal. Yields the held text as a file (None if fd 2 is not
    a real file).
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield None
        return
    held = tempfile.TemporaryFile()
    os.dup2(held.fileno(), 2)
    python_stderr = sys.stderr
    real = None
    if python_stderr is sys.__stderr__:
        real = os.fdopen(os.dup(saved), "w", buffering=1, encoding=python_stderr.encoding,
                         errors="backslashreplace")
        sys.stderr = real
    try:
        yield held
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        if real is not None:
            sys.stderr = python_stderr
            real.close()
        held.seek(0)


class TerrainGroup(click.Group):
    """A click group printing library errors and interruptions the terrain way."""

    def invoke(self, ctx: click.Context):
        # Python warnings (e.g. rasterio's NotGeoreferencedWarning before the library's
        # own error) only with -v; the filter is restored when the command returns.
        run = state.get(ctx)
        with warnings.catch_warnings():
            if not run.verbose:
                warnings.simplefilter("ignore")
            run.warnings_guarded = True
            try:
                result = self._invoke(ctx)
            finally:
                run.warnings_guarded = False
        gdal = run.gdal_warnings
        if gdal is not None:
            gdal.flush_to_stderr()
        return result

    def _invoke(self, ctx: click.Context):
        try:
            if state.get(ctx).verbose:
                return super().invoke(ctx)
            with _native_stderr_held() as held:
                result = super().invoke(ctx)
            # Success: whatever C libraries printed is shown after all.
            sys.stderr.write(held.read().decode("utf-8", "replace") if held else "")
            return result
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except (KeyboardInterrupt, Interrupted):
            self._interrupted(ctx)
        except Exception as exc:  # noqa: BLE001 - the one place errors become messages
            if state.get(ctx).signalled:
                # After a signal, whatever unwinds (e.g. rasterio's EnvError when the
                # interrupt landed inside an Env's exit) is the interruption itself.
                self._interrupted(ctx)
            self._traceback(ctx)
            inputs = state.get(ctx).inputs
            where = inputs[0] if len(inputs) == 1 else None
            click.echo(f"terrain: error: {describe_error(exc, where)}", err=True)
            ctx.exit(EXIT_ERROR)

    def _interrupted(self, ctx: click.Context) -> None:
        self._traceback(ctx)
        click.echo("terrain: interrupted; no output written", err=True)
        ctx.exit(EXIT_INTERRUPTED)

    @staticmethod
    def _traceback(ctx: click.Context) -> None:
        if state.get(ctx).verbose:
            traceback.print_exc(file=sys.stderr)


@click.group(cls=TerrainGroup, context_settings={"help_option_names": ["-h", "--help"]})
@verbosity_options
@click.version_option(__version__, "-V", "--version", prog_name="terrain")
@click.pass_context
def cli(ctx):
    """Slope, aspect, gradient and hillshade GeoTIFFs and maps from DEM files.

    Gradients are true ground derivatives: metres of rise per metre, projected
    CRS units converted to metres, and lat/lon DEMs measured on the ellipsoid at
    each row's latitude (no 111120 rule). Elevations are in the file's vertical
    unit (band unit or compound CRS; metres if it names none); --z-factor
    overrides it. Outputs keep the input's grid, CRS and nodata
    cells, are written atomically (nothing is left behind on error or Ctrl-C) and
    never replace the input.

    \b
    Examples:
      terrain info dem.tif
      terrain slope dem.tif -o slope.tif --plot slope.png
      terrain analyze dems/*.tif -d out
    """
    run = state.get(ctx)
    _install_signal_handlers(ctx)
    _configure_logging(ctx, run.verbose, run.quiet)
    keep_freed_memory()


cli.add_command(info.command)
for _command in products.COMMANDS:
    cli.add_command(_command)
for _module in (plot, analyze):
    cli.add_command(_module.command)

# Slope analysis (issue 12).
from . import classify as _classify  # noqa: E402
cli.add_command(_classify.command)
from . import stats as _stats  # noqa: E402
cli.add_command(_stats.command)
from . import report as _report  # noqa: E402
cli.add_command(_report.command)
