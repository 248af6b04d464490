"""Lazy products of a dask-backed elevation array, with the same kernels.

The array is overlapped by the method's halo with NaN beyond the raster (the
same padding the in-memory runner builds), each chunk goes through
:func:`terrain.engine.compute_block`, and the products come back stacked on a
leading axis so that one pass of the kernel serves them all.
"""

from __future__ import annotations

import numpy as np

from .engine import Options, compute_block, output_dtype, products_from_gradient


def run_dask(z, grid, opts: Options, products):
    """``{name: dask array}`` for a dask elevation array ``z`` (NaN = no data)."""
    import dask.array as da

    h = opts.halo
    # Overlap needs every chunk at least as deep as the halo.
    if min(min(c) for c in z.chunks) < h:
        z = z.rechunk({0: max(h, max(z.chunks[0])), 1: max(h, max(z.chunks[1]))})
    dtype = output_dtype(z.dtype)
    padded = da.overlap.overlap(z, depth={0: h, 1: h}, boundary=np.nan)
    names = tuple(products)

    def block(zpad, block_info=None):
        (row0, row1), (col0, col1) = block_info[None]["array-location"][1:]
        res = compute_block(zpad, *grid.window(row0, row1, col0, col1, h), opts, names, dtype)
        return np.stack([res[n].astype(dtype, copy=False) for n in names])

    stacked = da.map_blocks(
        block, padded, new_axis=0, chunks=((len(names),),) + z.chunks, dtype=dtype,
        meta=np.empty((0, 0, 0), dtype),
    )
    return {n: stacked[k] if n != "hillshade" else stacked[k].astype(np.float32)
            for k, n in enumerate(names)}


def run_dask_gradient(dzdx, dzdy, opts: Options, products):
    """Products of a dask gradient: cell by cell, no halo needed."""
    import dask.array as da

    names = tuple(products)
    dtype = output_dtype(dzdx.dtype)

    def block(p, q):
        res = products_from_gradient(p, q, opts, names)
        return np.stack([res[n].astype(dtype, copy=False) for n in names])

    stacked = da.map_blocks(block, dzdx, dzdy.rechunk(dzdx.chunks), new_axis=0,
                            chunks=((len(names),),) + dzdx.chunks, dtype=dtype,
                            meta=np.empty((0, 0, 0), dtype))
    return {n: stacked[k] if n != "hillshade" else stacked[k].astype(np.float32)
            for k, n in enumerate(names)}
