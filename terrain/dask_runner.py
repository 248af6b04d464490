"""Lazy products of a dask-backed elevation array, with the same kernels.

The array is overlapped by the method's halo with NaN beyond the raster (the
same padding the in-memory runner builds), each chunk goes through
:func:`terrain.engine.compute_block`, and the products come back stacked on a
leading axis so that one pass of the kernel serves them all.
"""

from __future__ import annotations

import numpy as np

from . import registry
from .engine import Options, compute_block, file_elevation, output_dtype, products_from_gradient


def _stacked(z, grid, opts: Options, products):
    """One lazy (products, y, x) array: each chunk runs the kernel once for all products."""
    import dask.array as da

    h = opts.halo
    # Overlap needs every chunk at least as deep as the halo; rechunk here, not
    # inside overlap(), so that the output's chunks are the ones computed.
    from dask.array.overlap import ensure_minimum_chunksize

    z = z.rechunk(tuple(ensure_minimum_chunksize(h, c) for c in z.chunks))
    dtype = output_dtype(z.dtype)
    padded = da.overlap.overlap(z, depth={0: h, 1: h}, boundary=np.nan)
    names = tuple(products)

    def block(zpad, block_info=None):
        (row0, row1), (col0, col1) = block_info[None]["array-location"][1:]
        res = compute_block(zpad, grid, (row0, row1, col0, col1), opts, names, dtype)
        return np.stack([res[n].astype(dtype, copy=False) for n in names])

    stacked = da.map_blocks(
        block, padded, new_axis=0, chunks=((len(names),),) + z.chunks, dtype=dtype,
        meta=np.empty((0, 0, 0), dtype),
    )
    return stacked, names


def run_dask(z, grid, opts: Options, products):
    """``{name: dask array}`` for a dask elevation array ``z`` (NaN = no data)."""
    return _split(*_stacked(z, grid, opts, products))


def _split(stacked, names):
    """``{name: lazy 2-D array}`` from a stacked result (byte products as float32)."""
    return {n: stacked[k] if registry.PRODUCTS[n].storage != "byte"
            else stacked[k].astype(np.float32) for k, n in enumerate(names)}


def run_dask_gradient(dzdx, dzdy, opts: Options, products, *, rotation=None):
    """Products of a dask gradient: cell by cell, no halo needed.

    ``rotation``: the raster's GroundMap (hillshade in the map's axes), or None.
    """
    import dask.array as da

    names = tuple(products)
    dtype = output_dtype(dzdx.dtype)

    def block(p, q, block_info=None):
        rot = None
        if rotation is not None:
            (row0, row1), (col0, col1) = block_info[0]["array-location"]
            rot = (rotation, (row0, row1, col0, col1))
        res = products_from_gradient(p, q, opts, names, rotation=rot)
        return np.stack([res[n].astype(dtype, copy=False) for n in names])

    stacked = da.map_blocks(block, dzdx, dzdy.rechunk(dzdx.chunks), new_axis=0,
                            chunks=((len(names),),) + dzdx.chunks, dtype=dtype,
                            meta=np.empty((0, 0, 0), dtype))
    return _split(stacked, names)


def lazy_elevation(info, chunks):
    """A dask array reading windows of ``info.path`` on demand, nodata already NaN.

    Each chunk reads the band (and its GDAL mask, if any) with scale and offset applied.
    """
    import dask.array as da
    import rasterio

    from .raster import GDAL_ENV, open_raster, read_window

    dtype = output_dtype(info.elevation_dtype)
    if isinstance(chunks, dict):
        chunks = (chunks.get("y", "auto"), chunks.get("x", "auto"))
    template = da.empty(info.shape, chunks=chunks, dtype=dtype)

    def read(block_info=None):
        (r0, r1), (c0, c1) = block_info[None]["array-location"]
        with rasterio.Env(**GDAL_ENV), open_raster(info.path) as ds:
            raw, mask = read_window(ds, info, ((r0, r1), (c0, c1)))
        return file_elevation(raw, mask, info).astype(dtype, copy=False)

    return da.map_blocks(read, dtype=dtype, chunks=template.chunks,
                         meta=np.empty((0, 0), dtype))


def run_distributed(info, grid, opts: Options, products, chunk: int, scheduler: str, emit,
                    stop_event):
    """Compute a file's windows on a dask.distributed cluster; ``emit`` writes them here.

    The workers read the DEM themselves (they must see the same path); only the
    finished windows travel back, and the single writer stays in this process.
    """
    from dask.distributed import Client, as_completed

    from .errors import TerrainError

    z = lazy_elevation(info, (chunk, chunk))
    stacked, names = _stacked(z, grid, opts, products)
    try:
        client = Client(scheduler, timeout="10s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise TerrainError(f"cannot reach the dask scheduler at {scheduler} ({exc}); "
                           "start one with `dask scheduler` and `dask worker ADDRESS`") from None
    try:
        blocks = stacked.to_delayed()[0]
        row_starts = np.cumsum((0,) + stacked.chunks[1])
        col_starts = np.cumsum((0,) + stacked.chunks[2])
        where = {}
        futures = []
        for bi in range(blocks.shape[0]):
            for bj in range(blocks.shape[1]):
                fut = client.compute(blocks[bi, bj])
                where[fut.key] = (row_starts[bi], row_starts[bi + 1], col_starts[bj], col_starts[bj + 1])
                futures.append(fut)
        for fut in as_completed(futures, loop=client.loop):
            if stop_event.is_set():
                break
            block = fut.result()
            fut.release()
            r0, r1, c0, c1 = where[fut.key]
            emit(r0, r1, c0, c1, {n: block[k] for k, n in enumerate(names)})
    finally:
        client.close()
