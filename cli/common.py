"""What the streaming commands share: building Options, running the streaming engine
with a progress bar, maps from the same pass, warnings and status lines.

The library is imported inside the functions, when a command runs.
"""

from __future__ import annotations

import os
import re
import sys
from contextlib import contextmanager

import click

from . import state

# A pixel progress bar for one file: on a terminal from this many cells, and in
# any case (logs) from the second threshold, where runs take minutes.
BAR_MIN_CELLS_TTY = 4_000_000
BAR_MIN_CELLS = 200_000_000


def status(message: str) -> None:
    """A status line on stderr, unless -q."""
    if not state.get().quiet:
        _echo(message)


def warn(message: str) -> None:
    """A warning line on stderr (shown even with -q)."""
    _echo(f"warning: {message}")


def _echo(message: str) -> None:
    from tqdm import tqdm

    # tqdm.write clears and redraws any bar being shown.
    tqdm.write(message, file=sys.stderr)


def _one_line(text: str) -> str:
    # The library's messages also say how to fix things from Python, e.g.
    # "use --overwrite (library: overwrite=True)"; on the command line only the option matters.
    text = re.sub(r" \(library: [^)]*\)", "", str(text))
    return " ".join(text.split())


def describe_error(exc: BaseException, path=None) -> str:
    """The user-facing line for an exception escaping a command on the input ``path``."""
    from terrain.errors import TerrainError

    if isinstance(exc, TerrainError):
        return _one_line(exc)
    if isinstance(exc, OSError):
        # Raw OS errors should be wrapped by the library; still say them plainly.
        where = f"{exc.filename}: " if exc.filename else (f"{path}: " if path else "")
        return _one_line(f"{where}{exc.strerror or exc}")
    where = f"{path}: " if path else ""
    return _one_line(f"{where}unexpected {type(exc).__name__}: {exc} "
                     "(rerun with -v for the traceback, and please report it)")


def build_options(**kwargs):
    """terrain.engine.Options; its validation errors are usage errors (exit 2)."""
    from terrain import TerrainError
    from terrain.engine import Options

    try:
        return Options(**kwargs)
    except TerrainError as exc:
        raise click.UsageError(str(exc)) from None


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def want_pixel_bar(cells: int, *, quiet: bool, stream=None) -> bool:
    """Whether a single file deserves a pixel progress bar."""
    if quiet:
        return False
    stream = sys.stderr if stream is None else stream
    return cells >= BAR_MIN_CELLS or (_isatty(stream) and cells >= BAR_MIN_CELLS_TTY)


def want_file_bar(n_files: int, *, quiet: bool, stream=None) -> bool:
    """Whether a multi-file run shows a bar over files (on a terminal only: in a log,
    the one status line per file is the progress report)."""
    stream = sys.stderr if stream is None else stream
    return n_files > 1 and not quiet and _isatty(stream)


@contextmanager
def pixel_bar(total: int, label: str, enabled: bool):
    """A callback for process_file's ``progress``, drawing a tqdm bar when enabled."""
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=label, unit="px", unit_scale=True, file=sys.stderr,
              leave=False, dynamic_ncols=True, mininterval=0.5) as bar:
        yield bar.update


def compute_to_files(info, outputs: dict, opts, *, write, run, maps=(), bar=None, display=None,
                     product_opts=None, tile=None, stop_event=None) -> dict:
    """Check everything, then stream the DEM ``info`` (its opened, validated
    :class:`terrain.raster.RasterInfo`) into the GeoTIFFs ``outputs`` ({kind: path}),
    with ``write`` / ``run`` (WriteOptions, RunOptions).

    ``maps`` are the map paths that will be drawn afterwards: they are checked
    here too, so that every bad input or output is reported before any work.
    ``bar``: True/False to force the pixel progress bar, None to decide by size.
    ``display`` / ``product_opts``: passed to process_file (maps from the same pass).
    ``tile``: (TileSet, Tile) when the DEM is a tile of a set (see :func:`tile_inputs`):
    computed on the mosaic, written cropped to the tile. ``stop_event``: this run's own
    (parallel runs, ``--jobs``) instead of the command's.
    Returns process_file's ``{"valid", "cells"}``; warns when nothing is valid.
    """
    from terrain.stream import process_file
    from terrain.writer import check_target

    src = info.path
    for path in maps:  # map names end in .png/.pdf/.svg, GeoTIFF names cannot: no clash
        check_target(path, inputs=[info], overwrite=write.overwrite)
    source, where = info, {"run": run}
    if tile is not None:
        from terrain.tiles import check_outputs, tile_keywords

        # Outputs checked against every tile of the set, once; read from its mosaic.
        check_outputs(tile[0], [*outputs.values(), *maps])
        source, where = tile[0].info(), tile_keywords(*tile, opts.geometry, run)
    cells = info.shape[0] * info.shape[1]
    if bar is None:
        bar = want_pixel_bar(cells, quiet=state.get().quiet)
    run_state = state.get()
    stop = run_state.stop_event if stop_event is None else stop_event
    if stop is not None and stop.is_set() and not run_state.signalled:
        stop.clear()  # set by the previous file's failed run (analyze), not by a signal
    import contextlib

    from terrain.tiles import writing

    # A tile's outputs share the set's tag templates (GDAL writes one per kind of output).
    shared = writing(tile[0]) if tile is not None else contextlib.nullcontext()
    with pixel_bar(cells, os.path.basename(src), bar) as progress, shared:
        # process_file watches the stop event: signals only set it meanwhile.
        run_state.stop_watched = stop is not None
        try:
            result = process_file(source, outputs, opts, write=write, progress=progress,
                                  stop_event=stop, display=display, product_opts=product_opts,
                                  **where)
        finally:
            run_state.stop_watched = False
    if run_state.signalled:
        raise KeyboardInterrupt  # arrived as the files were renamed into place
    if not result["valid"]:
        warn(f"{src}: no valid elevation; outputs are all nodata")
    return result


@contextmanager
def tile_inputs(args, *, independent=False, read=None):
    """(input files, plan) for the DEM arguments of a multi-input command.

    The arguments are expanded (globs, folders, list files, and VRTs into their
    tiles unless ``independent``); without ``independent`` tiles on one grid are
    grouped into sets, each with its VRT in a temporary folder that lives as long
    as this context, and the inputs left out of a set are named in one warning.
    ``plan.job(path)`` is the ``tile=`` of :func:`compute_to_files` (None: alone).
    """
    from terrain.tiles import TilePlan, TileWorkdir, expand_inputs, prepare

    if independent:
        yield expand_inputs(args, expand_vrt=False), TilePlan(inputs=[])
        return
    with TileWorkdir() as work:
        plan = prepare(args, band=read.band if read else 1, src_crs=read.src_crs if read else None,
                       workdir=work)
        if plan.warning():
            warn(plan.warning())
        yield plan.inputs, plan


def run_inputs(paths, work, outputs_of, *, jobs=1, several=True, plan=None, threads=1,
               bar_label=None) -> None:
    """``work(path, stop_event) -> files written`` for each input, ``jobs`` at once.

    One input failing is reported in one line and the others go on (exit 1 at the
    end, naming them); Ctrl-C stops every running input, removes what the unfinished
    ones had written (``outputs_of(path)``: their file names) and names the finished
    ones (exit 130). With ``several`` False a failure is raised as it is.

    ``plan`` (a :class:`terrain.tiles.TilePlan`) and ``threads`` (the run's worker
    threads): with ``jobs`` 1 and several threads, several tiles of one set run at once,
    in order (``terrain.tiles.schedule``: no more CPU than ``threads``, which stay busy
    while a finished tile's files are closed and the next tile's created). ``bar_label``: a bar over the
    inputs on a terminal.
    """
    import threading
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    from terrain.errors import Interrupted
    from terrain.tiles import schedule

    ctx = click.get_current_context()
    run_state = state.get()
    shared = run_state.stop_event
    failed, done, running = [], [], {}
    number = {}  # running input: its number in ``paths``
    before = {}
    sets, lanes_of = {}, {}
    if plan is not None and jobs <= 1 and threads > 1:
        sets = {t.path: k for k, s in enumerate(plan.sets) for t in s.tiles}
        lanes_of = {k: schedule(s, threads) for k, s in enumerate(plan.sets)}
    elif plan is not None and jobs > 1 and threads == 1:
        for s in plan.sets:  # jobs of one thread: lanes (their halos from the set's strips)
            s.tile_threads = 1
    lanes = jobs if jobs > 1 else max(lanes_of.values(), default=1)

    def one(path, event):
        click.globals.push_context(ctx)  # state.get(), warnings and -q in this thread too
        try:
            return work(path, event)
        finally:
            click.globals.pop_context()

    def inline(path, k):
        """One input at a time runs here, in the main thread, on the command's stop event."""
        future = Future()
        running[future] = (path, None, None)
        number[future] = k
        try:
            future.set_result(work(path, None))
        except (KeyboardInterrupt, Interrupted):
            # Done for the wait below (a pending Future would block it for ever); its
            # outputs are removed there.
            future.cancel()
            future.set_running_or_notify_cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - reported below like a parallel one's
            future.set_exception(exc)

    def may_start(path):
        # One input more than the pool's threads is queued: a thread that finishes takes
        # the next at once, instead of waiting for this loop to hand it over.
        if not running:
            return True
        if jobs > 1:
            return len(running) < jobs + QUEUED_AHEAD
        group = sets.get(path)  # tiles of the set the running ones belong to
        return group is not None and len(running) < lanes_of[group] + QUEUED_AHEAD and all(
            g == group for _, _, g in running.values())

    from tqdm import tqdm

    bar = tqdm(total=len(paths), desc=bar_label, unit="file", file=sys.stderr, leave=False,
               disable=bar_label is None or not want_file_bar(len(paths), quiet=run_state.quiet),
               dynamic_ncols=True)
    pool = ThreadPoolExecutor(lanes) if lanes > 1 else None
    pending = list(paths)
    ready, reported = {}, [0]  # finished, by input number; inputs reported so far

    def report(future, path):
        """One finished input's line (or error), in input order."""
        bar.update()
        try:
            written = future.result()
        except (KeyboardInterrupt, Interrupted):
            raise
        except Exception as exc:  # noqa: BLE001 - one bad input never stops the rest
            if run_state.signalled:
                raise KeyboardInterrupt from None
            if not several:
                raise
            failed.append(path)
            _report(exc, describe_error(exc, path))
            return
        done.append(path)
        before.pop(path, None)
        status(f"{path}: wrote {brief(written)}")

    try:
        while pending or running or ready:
            while pending and may_start(pending[0]):
                path = pending.pop(0)
                before[path] = {p: _identity(p) for p in outputs_of(path)}
                if pool is None or (jobs <= 1 and path not in sets):
                    inline(path, len(paths) - len(pending) - 1)
                    break  # its result is handled before anything else starts
                event = threading.Event()
                future = pool.submit(one, path, event)
                running[future] = (path, event, sets.get(path))
                number[future] = len(paths) - len(pending) - 1
            finished, _ = wait(list(running), timeout=0.2, return_when=FIRST_COMPLETED)
            if shared is not None and shared.is_set() and run_state.signalled:
                raise KeyboardInterrupt
            for future in finished:
                path, _, _ = running.pop(future)
                ready[number.pop(future)] = (future, path)
            # Lines come in input order: a tile finished before an earlier one waits for it.
            while reported[0] in ready:
                report(*ready.pop(reported[0]))
                reported[0] += 1
    except (KeyboardInterrupt, Interrupted):
        for future, (_, event, _) in running.items():
            future.cancel()  # a queued input does not start
            if event is not None:
                event.set()
        wait(list(running))
        # Finished before the interruption but not yet reported: complete, kept.
        for future, path in ready.values():
            if future.exception() is None:
                done.append(path)
        for path, _, _ in running.values():
            for p, was in before.get(path, {}).items():
                if was is None and _identity(p) is not None:
                    try:
                        os.unlink(p)
                    except OSError:
                        pass
        bar.close()
        if not done:
            raise
        click.echo(f"terrain: interrupted; finished before it, with complete outputs: "
                   f"{', '.join(done)}; nothing else written", err=True)
        raise click.exceptions.Exit(130) from None
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    if failed:
        click.echo(f"terrain: {len(failed)} of {len(paths)} DEMs failed: {', '.join(failed)}",
                   err=True)
        raise click.exceptions.Exit(1)


# Inputs queued for the pool beyond its busy threads (see run_inputs): 100 tiles, 2 lanes,
# the lanes waited 13-28 ms each between tiles for the main loop to hand the next over.
QUEUED_AHEAD = 1


def _identity(path):
    """(inode, mtime) of an existing file, None if there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def brief(paths) -> str:
    """out/dem_slope.tif, out/dem_aspect.tif ... as out/dem_{slope,aspect}.tif ..."""
    groups = {}
    for p in paths:
        folder, name = os.path.split(p)
        stem, kind = os.path.splitext(name)[0].rsplit("_", 1)
        groups.setdefault((folder, stem, os.path.splitext(name)[1]), []).append(kind)
    return " and ".join(f"{os.path.join(folder, stem)}_"
                        + (f"{{{','.join(kinds)}}}" if len(kinds) > 1 else kinds[0]) + ext
                        for (folder, stem, ext), kinds in groups.items())


def _report(exc, message):
    from tqdm import tqdm

    if state.get().verbose:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    tqdm.write(f"terrain: error: {message}", file=sys.stderr)


def map_display(info, products, *, dpi=150):
    """The DisplayGrid that collects the maps of ``products`` of the DEM ``info`` (and
    their hillshade backdrop) during its one streaming pass."""
    from terrain.plot import display_grid, map_pixels

    # No more display cells than the map has pixels.
    return display_grid(info, products, max_pixels=map_pixels(info, dpi))


def draw_display_maps(display, maps: dict, *, info, opts, dpi=150, overwrite=False) -> list:
    """The maps ``{product: out}`` from the display rasters accumulated while ``info``'s
    DEM streamed, drawn at once; the paths written."""
    from terrain.plot import render_displays

    with map_warnings():
        return render_displays(maps, display, info, opts, source=info.path, dpi=dpi,
                               overwrite=overwrite, processes=True)


@contextmanager
def map_warnings():
    """Print the maps' warnings (terrain.plot.MapWarning) as warning lines, even with -q."""
    import warnings

    from terrain.plot import MapWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MapWarning)
        try:
            yield
        finally:
            for w in caught:
                if issubclass(w.category, MapWarning):
                    warn(str(w.message))


def run_product_command(kind: str, product_settings: dict, *, dem, output, z_factor, read, write,
                        run, method=None, edge_order=1, geometry="geodesic", plot=None,
                        dpi=150, out_dir=None, independent=False, jobs=1) -> None:
    """Body of each product's command (:mod:`cli.products`): one GeoTIFF and an optional map.

    ``product_settings`` are the product's own Options fields (units, flat_value ...);
    the other keywords are the shared options of :func:`cli.options.product_options`
    (``read`` / ``write`` / ``run``: ReadOptions, WriteOptions, RunOptions).
    With ``out_dir`` (-d), every DEM (or tile) of ``dem`` gets DIR/<stem>_<kind>.tif.
    """
    from terrain.raster import described

    from terrain.registry import DEFAULT_METHOD

    # A product of the elevations alone has no --method: the default's halo serves it.
    opts = build_options(method=method or DEFAULT_METHOD, edge_order=edge_order,
                         z_factor=z_factor, geometry=geometry, **product_settings)
    dem = _one_dem_or_dir(dem, output, out_dir, plot)
    if out_dir is not None:
        _product_to_dir(kind, opts, dem, out_dir, independent=independent, jobs=jobs, read=read,
                        write=write, run=run)
        return
    # The input is validated once, here, and passed down opened.
    info = described(dem, read)
    maps = [plot] if plot else []
    display = product_opts = None
    if plot:
        # The map is drawn from display rasters accumulated in the same pass; a
        # hillshade map is the product itself, computed with the command's options.
        from terrain.plot import backdrop_options
        from terrain.registry import BACKDROP

        display = map_display(info, [kind], dpi=dpi)
        if kind != BACKDROP:
            product_opts = {BACKDROP: backdrop_options(opts)}
    result = compute_to_files(info, {kind: output}, opts, write=write, run=run, maps=maps,
                              display=display, product_opts=product_opts)
    status(f"wrote {output}")
    if plot:
        if not result["valid"]:
            warn(f"{dem}: no map drawn, there is nothing to show")
            return
        draw_display_maps(display, {kind: plot}, info=info, opts=opts, dpi=dpi,
                          overwrite=write.overwrite)
        status(f"wrote {plot}")


def _one_dem_or_dir(dems, output, out_dir, plot):
    """The DEM of ``-o`` (exactly one), or the DEM arguments of ``-d``; usage errors else."""
    dems = (dems,) if isinstance(dems, str) else tuple(dems)
    if (output is None) == (out_dir is None):
        raise click.UsageError("give -o OUT.tif for one DEM, or -d DIR for several DEMs or tiles"
                               + (" (not both)" if output is not None else ""))
    if out_dir is None:
        if len(dems) != 1:
            raise click.UsageError(f"-o takes one DEM, got {len(dems)}; for several DEMs or "
                                   "tiles give -d DIR (outputs DIR/<stem>_<product>.tif)")
        return dems[0]
    if plot:
        raise click.UsageError("--plot draws one map: use it with -o and one DEM "
                               "(terrain analyze -d DIR draws maps of several)")
    return dems


def _product_to_dir(kind, opts, dems, out_dir, *, independent, jobs, read, **kwargs):
    """``terrain slope|... DEM... -d DIR``: DIR/<stem>_<kind>.tif for each, tile sets seamless."""
    from terrain.raster import dataset_stem

    def outputs_of(path):
        return [os.path.join(out_dir, f"{dataset_stem(path)}_{kind}.tif")]

    from terrain.raster import described

    with tile_inputs(dems, independent=independent, read=read) as (paths, plan):
        stems = {}
        for path in paths:
            stem = dataset_stem(path)
            if stem in stems:
                raise click.UsageError(f"{stems[stem]} and {path} would write the same output "
                                       f"(DIR/{stem}_{kind}.tif); run them into different folders")
            stems[stem] = path
        several = len(paths) > 1

        def work(path, event):
            target = outputs_of(path)[0]
            tile = plan.job(path)
            # A tile was read when the set was planned; any other input is validated here.
            info = tile[1].info if tile else described(path, read)
            compute_to_files(info, {kind: target}, opts, bar=False if several else None,
                             tile=tile, stop_event=event, **kwargs)
            return [target]

        run_inputs(paths, work, outputs_of, jobs=jobs, several=several, plan=plan,
                   threads=_threads(kwargs["run"]))


def _threads(run) -> int:
    """The worker threads of ``run`` (RunOptions): its own, else one per core."""
    from terrain.engine import default_threads

    return run.threads or default_threads()
