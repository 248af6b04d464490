"""File to file: stream a DEM through the kernels in windows, on all cores.

Each worker thread reads a window plus the method's halo with its own dataset
handle, turns nodata into NaN, runs :func:`terrain.engine.compute_block` and
writes every requested product (one read pass for all of them). Reads, the C
kernels and writes release the GIL, so threads overlap I/O and compute; memory
is bounded by the window size and the thread count, not by the raster. The
outputs are committed only when every window is written.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
import os
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import numpy as np
import rasterio
from rasterio.windows import Window

from . import _ckernels, registry, runners
from .engine import (Z_FACTOR_EXPLICIT, Options, RunOptions, compute_block, file_elevation,
                     halo_bounds, output_dtype, pad_block, windows)
from .errors import Interrupted, OutputError, TerrainError
from .raster import (GDAL_ENV, GdalErrors, ReadOptions, described, open_raster,
                     read_window)
from .writer import GeoTIFFWriter, WriteOptions, check_target

class DisplayGrid:
    """Display-resolution rasters of some products, accumulated while the windows stream.

    A map of a large DEM needs its products at a few thousand pixels, not the
    full raster: each worker adds its finished window here (before encoding),
    so no product is read back from disk. ``average`` products (slope,
    hillshade ...) get the mean of the valid full-resolution cells in each
    display cell (NaN where none is valid); ``nearest`` products (aspect, whose
    values are angles) get the full-resolution cell at each display cell's
    centre, as GDAL's nearest resampling picks it.

    Parameters
    ----------
    shape : (rows, cols)
        The full-resolution grid.
    display_shape : (rows, cols)
        The display grid (each side at most the full one).
    products : dict
        ``{product: "average" | "nearest"}``.
    """

    def __init__(self, shape, display_shape, products: dict):
        self.shape = (int(shape[0]), int(shape[1]))
        self.display_shape = (int(display_shape[0]), int(display_shape[1]))
        if not all(0 < d <= s for d, s in zip(self.display_shape, self.shape)):
            raise TerrainError(f"display grid {self.display_shape} must be within {self.shape}")
        for name, how in products.items():
            if how not in ("average", "nearest"):
                raise TerrainError(f"{name}: resampling must be average or nearest, got {how!r}")
        self.products = dict(products)
        (rows, cols), (drows, dcols) = self.shape, self.display_shape
        # Display cell of each full-resolution row / column (block averages) ...
        self._row_cell = (np.arange(rows, dtype=np.int64) * drows) // rows
        self._col_cell = (np.arange(cols, dtype=np.int64) * dcols) // cols
        # ... and the full-resolution row / column at each display cell's centre (nearest).
        self._row_pick = np.minimum(((2 * np.arange(drows) + 1) * rows) // (2 * drows), rows - 1)
        self._col_pick = np.minimum(((2 * np.arange(dcols) + 1) * cols) // (2 * dcols), cols - 1)
        self._sum, self._count, self._pick = {}, {}, {}
        for name, how in self.products.items():
            if how == "average":
                self._sum[name] = np.zeros(self.display_shape, np.float64)
                self._count[name] = np.zeros(self.display_shape, np.int32)
            else:
                self._pick[name] = np.full(self.display_shape, np.nan, np.float64)
        self._lock = threading.Lock()

    def add(self, row0, row1, col0, col1, res) -> None:
        """Fold one window (``{product: block}``, NaN for nodata) in; any thread."""
        rc, cc = self._row_cell[row0:row1], self._col_cell[col0:col1]
        # Bounds of the runs of rows falling in one display row, and each column's
        # display column, both relative to the window.
        bounds = np.flatnonzero(np.r_[True, rc[1:] != rc[:-1], True])
        cell = cc - cc[0]
        rsl = slice(int(rc[0]), int(rc[-1]) + 1)
        csl = slice(int(cc[0]), int(cc[-1]) + 1)
        rp = np.flatnonzero((self._row_pick >= row0) & (self._row_pick < row1))
        cp = np.flatnonzero((self._col_pick >= col0) & (self._col_pick < col1))
        partial = {}
        for name, how in self.products.items():
            if name not in res:  # computed in another pass (per-product options)
                continue
            block = res[name]
            if how == "average":
                # Sums (float64) and valid cells of each display cell the window touches:
                # one pass in C (numpy's run-by-run reductions took 2 ms a 1024^2 window).
                sums = np.zeros((bounds.size - 1, int(cell[-1]) + 1), np.float64)
                counts = np.zeros(sums.shape, np.int32)
                _ckernels.block_sums(np.ascontiguousarray(block), bounds, cell, sums, counts)
                partial[name] = (sums, counts)
            elif rp.size and cp.size:
                partial[name] = block[np.ix_(self._row_pick[rp] - row0,
                                             self._col_pick[cp] - col0)]
        # Display cells on a window's edge get parts from two windows: add under a lock.
        with self._lock:
            for name, part in partial.items():
                if self.products[name] == "average":
                    self._sum[name][rsl, csl] += part[0]
                    self._count[name][rsl, csl] += part[1]
                else:
                    self._pick[name][np.ix_(rp, cp)] = part

    def result(self, name) -> np.ndarray:
        """The display raster of ``name`` (float64, NaN where no value), as the file is oriented."""
        if name in self._pick:
            return self._pick[name].copy()
        with np.errstate(invalid="ignore", divide="ignore"):
            out = self._sum[name] / self._count[name]
        out[self._count[name] == 0] = np.nan
        return out


def _check_kinds(outputs):
    """Known output kinds, and file names whose extension is GeoTIFF's."""
    from .writer import check_geotiff_name

    for kind in outputs:
        if kind not in registry.PRODUCTS:
            raise TerrainError(
                f"unknown output {kind!r}; choose from {', '.join(registry.PRODUCTS)}")
    for path in outputs.values():
        check_geotiff_name(path)


def read_padded(ds, info, row0, row1, col0, col1, halo):
    """Window plus halo of the elevation band, NaN for nodata and beyond the raster.

    Scale and offset applied, the band's GDAL mask (if any) read for the same window.
    """
    r0, r1, c0, c1 = halo_bounds(info.shape, row0, row1, col0, col1, halo)
    raw, mask = read_window(ds, info, ((r0, r1), (c0, c1)))
    return pad_block(file_elevation(raw, mask, info), row0, row1, col0, col1, halo, info.shape)


def process_file(src, outputs: dict, opts: Options | None = None, *,
                 read: ReadOptions | None = None, write: WriteOptions | None = None,
                 run: RunOptions | None = None, progress=None,
                 stop_event: threading.Event | None = None, display: DisplayGrid | None = None,
                 product_opts: dict | None = None, crop: Crop | None = None, grid=None,
                 executor=None) -> dict:
    """Compute products of the DEM ``src`` straight into GeoTIFF files.

    Parameters
    ----------
    src : str, os.PathLike or terrain.raster.RasterInfo
        Elevation raster, or its description already opened and validated
        (:func:`terrain.raster.raster_info`; ``read`` is then not used).
    outputs : dict
        ``{product: path}``, any product of :data:`terrain.registry.PRODUCTS`
        (``gradient`` writes two bands, dzdx then dzdy).
    opts : terrain.engine.Options
        Method, edge order, z factor, units and the products' settings.
    read : terrain.raster.ReadOptions, optional
        Band and CRS override of ``src``.
    write : terrain.writer.WriteOptions, optional
        Creation options, COG, overwrite.
    run : terrain.engine.RunOptions, optional
        Threads, window size (the dask chunk with a scheduler: the windows are
        computed by its workers, which must see ``src`` at the same path, and
        written here); results do not depend on them.
    progress : callable, optional
        Called with the number of pixels of each finished window.
    stop_event : threading.Event, optional
        Set it (e.g. from a signal handler) to stop: nothing is left behind.
    display : DisplayGrid, optional
        Accumulates display-resolution rasters of its products (computed even
        when no file holds them) from the same pass, for maps.
    product_opts : dict, optional
        ``{product: Options}`` for products computed with other options than
        ``opts`` (e.g. the hillshade with its own method), from the same read.
    crop : Crop, optional
        Only this part of ``src`` (one tile of a mosaic VRT, see :mod:`terrain.tiles`),
        computed on ``src``'s whole grid and written cropped to it.
    grid : terrain.spacing.Grid, optional
        ``src``'s grid for ``opts.geometry``, when the caller has it already (a tile
        set computes its mosaic's once, not once per tile).
    executor : concurrent.futures.ThreadPoolExecutor, optional
        Worker threads to run the windows on (``threads`` of them), left running for
        the next call (a tile set's tiles share them).

    Returns
    -------
    dict
        ``{"valid": True if any cell has a value (False: all nodata), "cells": total cells}``.
    """
    opts = opts or Options()
    read, write, run = read or ReadOptions(), write or WriteOptions(), run or RunOptions()
    overwrite = write.overwrite
    _check_kinds(outputs)
    if not outputs:
        raise TerrainError("no output asked for")
    info = described(src, read)
    src = info.path
    z_source = Z_FACTOR_EXPLICIT if opts.z_factor_explicit else info.z_factor_source
    opts = opts.with_z_factor(info.z_factor)
    product_opts = {n: o.with_z_factor(info.z_factor) for n, o in (product_opts or {}).items()}
    if any(o.geometry != opts.geometry for o in product_opts.values()):
        raise TerrainError("product_opts must share opts.geometry (one ground map per run)")
    grid = info.grid(opts.geometry) if grid is None else grid
    read_info, info = info, info if crop is None else crop.of(info)
    if crop is not None and run.scheduler is not None:
        raise TerrainError(f"{src}: a tile of a set runs on local threads only, not with a "
                           "scheduler")
    inputs = [read_info] if crop is None or crop.inputs is None else crop.inputs
    targets = {kind: check_target(path, inputs=inputs, overwrite=overwrite)
               for kind, path in outputs.items()}
    if len(set(targets.values())) != len(targets):
        raise OutputError("two outputs have the same file name; give each product its own")
    products = tuple(dict.fromkeys(p for kind in outputs for p in registry.PRODUCTS[kind].arrays))
    if display is not None:
        if tuple(display.shape) != tuple(info.shape):
            raise TerrainError(f"{src}: display grid made for {display.shape}, not {info.shape}")
        products = tuple(dict.fromkeys(products + tuple(display.products)))
    groups = _option_groups(opts, products, product_opts or {})
    tags = {"method": opts.method, "edge_order": str(opts.edge_order),
            "z_factor": repr(opts.z_factor), "z_factor_source": z_source,
            "geometry": opts.geometry,
            "source": os.path.basename(crop.source_name if crop and crop.source_name else src),
            "software": "terrain"}
    stop_event = stop_event or threading.Event()
    writers = []
    write_lock = threading.Lock()
    valid = [False]

    def emit(row0, row1, col0, col1, res):
        """Write one finished window of every product (any thread)."""
        window = Window(col0, row0, col1 - col0, row1 - row0)
        # Only "is there any valid cell at all" is needed (the all-nodata warning).
        # With several option groups on a cluster, a window comes once per group.
        first = groups[0][1][0] in res
        if first and not valid[0] and _any_value(res[groups[0][1][0]]):
            valid[0] = True
        if display is not None:
            display.add(row0, row1, col0, col1, res)  # before encode() overwrites NaN
        encoded = [(writer, k, writer.encode(res[name]))
                   for writer, names in writers if all(n in res for n in names)
                   for k, name in enumerate(names, start=1)]
        with write_lock, gdal_errors.watching():
            if stop_event.is_set():
                return
            for writer, k, data in encoded:
                writer.write(k, data, window)
        if progress is not None and first:
            progress((row1 - row0) * (col1 - col0))

    with rasterio.Env(**GDAL_ENV), GdalErrors() as gdal_errors:
        try:
            for kind, path in targets.items():
                decl = registry.PRODUCTS[kind]
                names = decl.arrays
                bands = [(n, registry.PRODUCTS[n].units(opts), registry.PRODUCTS[n].description(opts))
                         for n in names]
                writer = GeoTIFFWriter(
                    path, info, bands, byte=decl.storage == "byte",
                    creation_options=write.creation_options, cog=write.cog,
                    resampling=decl.resampling,
                    tags=_file_tags(tags, names, opts, product_opts), overwrite=overwrite)
                writers.append((writer, names))
            runners.pick(runners.FILE_RUNNERS, run).run(
                read_info, grid, groups, run, emit, stop_event, gdal_errors,
                window=None if crop is None else crop.window, executor=executor)
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


@dataclass(frozen=True)
class Crop:
    """One tile of a mosaic (see :mod:`terrain.tiles`): ``process_file`` computes the
    cells ``window`` (row0, row1, col0, col1) of its source on the source's whole grid
    (its ground map and spacing, the halo read from around the window) and writes
    them cropped to it; memory stays bounded by the tile size, not by the window.

    ``transform``: the outputs' geotransform (default: the window's own, from the
    source's; a tile's own keeps it exactly). ``source_name``: what the files'
    ``source`` tag says. ``inputs``: the files no output may be (a tile set checks
    its tiles once for all, :func:`terrain.tiles.check_outputs`).
    """

    window: tuple
    transform: object = None
    source_name: str | None = None
    inputs: list | None = None

    def of(self, info):
        """``info`` cropped to the window: the outputs' shape and transform."""
        import dataclasses

        from rasterio.windows import transform as window_transform

        row0, row1, col0, col1 = (int(v) for v in self.window)
        rows, cols = info.shape
        if not (0 <= row0 < row1 <= rows and 0 <= col0 < col1 <= cols):
            raise TerrainError(f"{info.path}: window {tuple(self.window)} is not within its "
                               f"{rows} x {cols} grid")
        transform = self.transform if self.transform is not None else window_transform(
            Window(col0, row0, col1 - col0, row1 - row0), info.transform)
        return dataclasses.replace(info, shape=(row1 - row0, col1 - col0), transform=transform)


def _any_value(block: np.ndarray) -> bool:
    """Whether any cell of ``block`` is not NaN; most windows answer in their first row."""
    return block.size > 0 and (not np.isnan(block[0]).all() or not np.isnan(block).all())


def _window_tile_size(shape, tile_size, threads) -> int:
    """A window edge giving ``threads`` windows or more over ``shape`` (at most ``tile_size``,
    at least 128): a tile of a set is often smaller than one window. Results never depend
    on it."""
    size = tile_size
    while size > 128 and -(-shape[0] // size) * -(-shape[1] // size) < threads:
        size = max(128, size // 2)
    return size


def _file_tags(tags, names, opts, product_opts) -> dict:
    """A file's dataset tags: the method is that of its bands' options, and each of its
    products' own options (aspect's flat_value, hillshade's light ...) is recorded."""
    own = {(product_opts or {}).get(n, opts).method for n in names}
    tags = dict(tags, method=own.pop()) if len(own) == 1 else dict(tags)
    if not any(registry.PRODUCTS[n].uses_method for n in names):
        # Computed from the elevations alone: no method, no edge order.
        tags.pop("method", None)
        tags.pop("edge_order", None)
    for n in names:
        band_opts = (product_opts or {}).get(n, opts)
        for param in registry.PRODUCTS[n].parameters:
            value = getattr(band_opts, param.field)
            tags[param.field] = repr(float(value)) if param.type is float else str(value)
    return tags


def _option_groups(opts, products, product_opts) -> list:
    """``[(Options, products computed with them), ...]``, ``opts``'s group first."""
    groups = {}
    for name in products:
        groups.setdefault(product_opts.get(name, opts), []).append(name)
    return sorted(((o, tuple(n)) for o, n in groups.items()), key=lambda g: g[0] != opts)


def _run_threads(info, grid, groups, tile_size, threads, emit, stop_event, gdal_errors=None,
                 window=None, executor=None):
    """Read, compute and emit every window on a pool of threads, one dataset handle each.

    ``window``: (row0, row1, col0, col1) of ``info``'s grid to cover (default: all);
    each piece is computed in ``info``'s coordinates and emitted relative to it.
    ``executor``: a ThreadPoolExecutor of ``threads`` workers to use (and leave running)
    instead of a new one: a tile set's runs share one, whose threads keep the tiles GDAL
    has opened (its dataset pool is per thread); one with a ``read_padded`` method
    (:class:`terrain.tiles.SetExecutor`) reads the windows, with each worker's handles.

    ``groups``: ``[(Options, products), ...]``; one read (with the widest halo) serves all.
    ``gdal_errors``: the run's :class:`terrain.raster.GdalErrors`, watching each worker's
    whole window (a read may flush an output's dirty cached blocks, and fail to).
    """
    local = threading.local()
    handles = []
    handles_lock = threading.Lock()
    out_dtype = output_dtype(info.elevation_dtype)
    halo = max(o.halo for o, _ in groups)

    # A tile set's workers keep their handles and read its mosaic from the tiles
    # (every window of this run is then on the executor's threads).
    shared = getattr(executor, "read_padded", None)

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
        watch = gdal_errors.watching() if gdal_errors is not None else contextlib.nullcontext()
        with rasterio.Env(**GDAL_ENV), watch:
            zpad = shared(info, row0, row1, col0, col1, halo) if shared is not None else \
                read_padded(reader(), info, row0, row1, col0, col1, halo)
            res = {}
            for opts, products in groups:
                d = halo - opts.halo  # a narrower halo: the inner part of the same read
                z = np.ascontiguousarray(zpad[d:zpad.shape[0] - d, d:zpad.shape[1] - d]) if d else zpad
                res.update(compute_block(z, grid, win, opts, products, out_dtype, name=info.path))
            emit(row0 - wr, row1 - wr, col0 - wc, col1 - wc, res)

    wr, wr1, wc, wc1 = (0, info.shape[0], 0, info.shape[1]) if window is None else window
    own_pool = executor is None and threads > 1
    pool = ThreadPoolExecutor(threads) if own_pool else executor
    pending = set()
    try:
        for r0, r1, c0, c1 in windows((wr1 - wr, wc1 - wc), tile_size):
            win = (r0 + wr, r1 + wr, c0 + wc, c1 + wc)
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
        if own_pool:
            pool.shutdown(wait=True, cancel_futures=True)
        elif pending:  # a shared executor lives on: drop this run's queued windows only
            for f in pending:
                f.cancel()
            wait(pending)
        for ds in handles:
            ds.close()
