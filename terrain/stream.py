"""File to file: stream a DEM through the kernels in windows, on all cores.

Each worker thread reads a window plus the method's halo with its own dataset
handle, turns nodata into NaN, runs :func:`terrain.engine.compute_block` and
writes every requested product (one read pass for all of them). Reads, the C
kernels and writes release the GIL, so threads overlap I/O and compute; memory
is bounded by the window size and the thread count, not by the raster. The
outputs are committed only when every window is written.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import numpy as np
import rasterio
from rasterio.windows import Window

from .engine import (Options, as_elevation, compute_block, default_threads, halo_bounds,
                     output_dtype, pad_block, product_description, product_units, windows)
from .errors import Interrupted, OutputError, TerrainError
from .raster import GDAL_ENV, GdalErrors, open_raster, raster_info, read_band
from .writer import GeoTIFFWriter, check_target

# What each file kind holds: its bands, and its overview resampling for --cog.
FILE_KINDS = {
    "slope": (("slope",), "average"),
    "aspect": (("aspect",), "nearest"),
    "gradient": (("dzdx", "dzdy"), "average"),
    "hillshade": (("hillshade",), "average"),
    "dzdx": (("dzdx",), "average"),
    "dzdy": (("dzdy",), "average"),
}


def _check_kinds(outputs):
    """Known output kinds, and file names whose extension is GeoTIFF's."""
    from .writer import check_geotiff_name

    for kind in outputs:
        if kind not in FILE_KINDS:
            raise TerrainError(f"unknown output {kind!r}; choose from {', '.join(FILE_KINDS)}")
    for path in outputs.values():
        check_geotiff_name(path)


def read_padded(ds, info, row0, row1, col0, col1, halo):
    """Window plus halo of the elevation band, NaN for nodata and beyond the raster."""
    r0, r1, c0, c1 = halo_bounds(info.shape, row0, row1, col0, col1, halo)
    raw = read_band(ds, info.path, info.band, ((r0, r1), (c0, c1)))
    return pad_block(as_elevation(raw, info.nodata), row0, row1, col0, col1, halo, info.shape)


def process_file(src, outputs: dict, opts: Options | None = None, *, band: int = 1,
                 src_crs=None, tile_size: int = 1024, threads: int | None = None,
                 creation_options=None, cog: bool = False, overwrite: bool = False,
                 progress=None, stop_event: threading.Event | None = None,
                 scheduler: str | None = None) -> dict:
    """Compute products of the DEM ``src`` straight into GeoTIFF files.

    Parameters
    ----------
    src : str or os.PathLike
        Elevation raster.
    outputs : dict
        ``{kind: path}`` with kinds ``slope``, ``aspect``, ``gradient`` (two bands,
        dzdx then dzdy), ``hillshade``, ``dzdx``, ``dzdy``.
    opts : terrain.engine.Options
        Method, edge order, z factor, units and the products' settings.
    tile_size : int
        Window edge in pixels (the dask chunk with ``scheduler``); results do not
        depend on it.
    threads : int, optional
        Worker threads (default: all cores).
    progress : callable, optional
        Called with the number of pixels of each finished window.
    stop_event : threading.Event, optional
        Set it (e.g. from a signal handler) to stop: nothing is left behind.
    scheduler : str, optional
        Address of a dask.distributed scheduler: the windows are computed by its
        workers (which must see ``src`` at the same path) and written here.

    Returns
    -------
    dict
        ``{"valid": True if any cell has a value (False: all nodata), "cells": total cells}``.
    """
    opts = opts or Options()
    _check_kinds(outputs)
    if not outputs:
        raise TerrainError("no output asked for")
    if tile_size < 1:
        raise TerrainError(f"tile size must be a positive number of pixels, got {tile_size}")
    src = os.fspath(src)
    info = raster_info(src, band=band, src_crs=src_crs)
    grid = info.grid()
    targets = {kind: check_target(path, inputs=[src], overwrite=overwrite)
               for kind, path in outputs.items()}
    if len(set(targets.values())) != len(targets):
        raise OutputError("two outputs have the same file name; give each product its own")
    products = tuple(dict.fromkeys(p for kind in outputs for p in FILE_KINDS[kind][0]))
    tags = {"method": opts.method, "edge_order": str(opts.edge_order),
            "z_factor": repr(opts.z_factor), "source": os.path.basename(src),
            "software": "terrain"}
    if "aspect" in products:
        tags["flat_value"] = repr(float(opts.flat_value))
    stop_event = stop_event or threading.Event()
    writers = []
    write_lock = threading.Lock()
    valid = [False]

    def emit(row0, row1, col0, col1, res):
        """Write one finished window of every product (any thread)."""
        window = Window(col0, row0, col1 - col0, row1 - row0)
        # Only "is there any valid cell at all" is needed (the all-nodata warning).
        if not valid[0] and not np.isnan(res[products[0]]).all():
            valid[0] = True
        encoded = [(writer, k, writer.encode(res[name]))
                   for writer, names in writers for k, name in enumerate(names, start=1)]
        with write_lock, gdal_errors.watching():
            if stop_event.is_set():
                return
            for writer, k, data in encoded:
                writer.write(k, data, window)
        if progress is not None:
            progress((row1 - row0) * (col1 - col0))

    with rasterio.Env(**GDAL_ENV), GdalErrors() as gdal_errors:
        try:
            for kind, path in targets.items():
                names, resampling = FILE_KINDS[kind]
                writer = GeoTIFFWriter(
                    path, info,
                    [(n, product_units(n, opts), product_description(n, opts)) for n in names],
                    byte=(kind == "hillshade"), creation_options=creation_options, cog=cog,
                    resampling=resampling, tags=tags, overwrite=overwrite)
                writers.append((writer, names))
            if scheduler is None:
                _run_threads(info, grid, opts, products, tile_size, threads or default_threads(),
                             emit, stop_event)
            else:
                from .dask_runner import run_distributed

                run_distributed(info, grid, opts, products, tile_size, scheduler, emit, stop_event)
            if stop_event.is_set():
                raise Interrupted(f"{src}: interrupted; no output was written")
            # All or nothing: every file is finished before any is renamed into place.
            for writer, _ in writers:
                writer.finish(gdal_errors)
            if stop_event.is_set():
                raise Interrupted(f"{src}: interrupted; no output was written")
            published = []
            try:
                for writer, _ in writers:
                    writer.publish()
                    published.append(writer)
            except BaseException:
                # All or nothing: a name taken meanwhile by another run (no --overwrite)
                # takes back the files this run has just published.
                if not overwrite:
                    for writer in published:
                        writer.withdraw()
                raise
            writers.clear()
        finally:
            for writer, _ in writers:
                writer.abort()
    return {"valid": valid[0], "cells": info.shape[0] * info.shape[1]}


def _run_threads(info, grid, opts, products, tile_size, threads, emit, stop_event):
    """Read, compute and emit every window on a pool of threads, one dataset handle each."""
    local = threading.local()
    handles = []
    handles_lock = threading.Lock()
    out_dtype = output_dtype(info.dtype)

    def reader():
        ds = getattr(local, "ds", None)
        if ds is None:
            with rasterio.Env(**GDAL_ENV):
                ds = local.ds = open_raster(info.path)
            with handles_lock:
                handles.append(ds)
        return ds

    def work(win):
        if stop_event.is_set():
            return
        row0, row1, col0, col1 = win
        # GDAL's error handler is per thread: inside an Env its messages reach
        # Python logging (and GdalErrors), not stderr.
        with rasterio.Env(**GDAL_ENV):
            zpad = read_padded(reader(), info, row0, row1, col0, col1, opts.halo)
            res = compute_block(zpad, *grid.window(row0, row1, col0, col1, opts.halo), opts,
                                products, out_dtype, name=info.path)
            emit(row0, row1, col0, col1, res)

    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    pending = set()
    try:
        for win in windows(info.shape, tile_size):
            if stop_event.is_set():
                break
            if pool is None:
                work(win)
                continue
            pending.add(pool.submit(work, win))
            # A short queue: memory stays bounded and a stop takes effect at once.
            if len(pending) >= 2 * threads:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    f.result()
        done, pending = wait(pending)
        for f in done:
            f.result()
    except BaseException:
        stop_event.set()
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        for ds in handles:
            ds.close()
