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
                     product_opts=None) -> dict:
    """Check everything, then stream the DEM ``info`` (its opened, validated
    :class:`terrain.raster.RasterInfo`) into the GeoTIFFs ``outputs`` ({kind: path}),
    with ``write`` / ``run`` (WriteOptions, RunOptions).

    ``maps`` are the map paths that will be drawn afterwards: they are checked
    here too, so that every bad input or output is reported before any work.
    ``bar``: True/False to force the pixel progress bar, None to decide by size.
    ``display`` / ``product_opts``: passed to process_file (maps from the same pass).
    Returns process_file's ``{"valid", "cells"}``; warns when nothing is valid.
    """
    from terrain.stream import process_file
    from terrain.writer import check_target

    src = info.path
    for path in maps:  # map names end in .png/.pdf/.svg, GeoTIFF names cannot: no clash
        check_target(path, inputs=[src], overwrite=write.overwrite)
    cells = info.shape[0] * info.shape[1]
    if bar is None:
        bar = want_pixel_bar(cells, quiet=state.get().quiet)
    run_state = state.get()
    stop = run_state.stop_event
    if stop is not None and stop.is_set() and not run_state.signalled:
        stop.clear()  # set by the previous file's failed run (analyze), not by a signal
    with pixel_bar(cells, os.path.basename(src), bar) as progress:
        # process_file watches the stop event: signals only set it meanwhile.
        run_state.stop_watched = stop is not None
        try:
            result = process_file(info, outputs, opts, write=write, run=run, progress=progress,
                                  stop_event=stop, display=display, product_opts=product_opts)
        finally:
            run_state.stop_watched = False
    if run_state.signalled:
        raise KeyboardInterrupt  # arrived as the files were renamed into place
    if not result["valid"]:
        warn(f"{src}: no valid elevation; outputs are all nodata")
    return result


def map_display(info, products, *, dpi=150):
    """The DisplayGrid that collects the maps of ``products`` of the DEM ``info`` (and
    their hillshade backdrop) during its one streaming pass."""
    from terrain.plot import display_grid, picture_pixels

    # No more display cells than the picture has pixels across.
    return display_grid(info, products, max_pixels=min(2048, picture_pixels(dpi)))


def draw_display_map(display, out_map, *, product, info, opts, dpi=150,
                     overwrite=False) -> str:
    """Map of ``product`` from the display rasters accumulated while ``info``'s DEM streamed."""
    from terrain.plot import render_display

    with map_warnings():
        return render_display(out_map, product, display, info, opts, source=info.path,
                              dpi=dpi, overwrite=overwrite)


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


def run_product_command(kind: str, product_settings: dict, *, dem, output, method, edge_order,
                        z_factor, geometry, read, write, run, plot=None, dpi=150) -> None:
    """Body of each product's command (:mod:`cli.products`): one GeoTIFF and an optional map.

    ``product_settings`` are the product's own Options fields (units, flat_value ...);
    the other keywords are the shared options of :func:`cli.options.product_options`
    (``read`` / ``write`` / ``run``: ReadOptions, WriteOptions, RunOptions).
    """
    from terrain.raster import raster_info

    opts = build_options(method=method, edge_order=edge_order, z_factor=z_factor,
                         geometry=geometry, **product_settings)
    # The input is validated once, here, and passed down opened.
    info = raster_info(dem, band=read.band, src_crs=read.src_crs)
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
        draw_display_map(display, plot, product=kind, info=info, opts=opts, dpi=dpi,
                         overwrite=write.overwrite)
        status(f"wrote {plot}")
