"""The runners, declared once: what computes an array's products, or a file's windows.

Every runner feeds padded blocks to :func:`terrain.engine.compute_block`, so the
numbers never depend on the runner. Array runners (:func:`terrain.compute`) are
picked by the array's type; file runners (:func:`terrain.stream.process_file`) by
its :class:`terrain.engine.RunOptions`. A new runner is one module and one line
here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Runner:
    """``accepts(what)``: whether this runner takes an array (array runners) or
    RunOptions (file runners); ``run``: the runner itself (signatures below)."""

    name: str
    accepts: Callable
    run: Callable


def _in_memory(z, grid, opts, products, *, name):
    from .engine import run_in_memory

    return run_in_memory(z, grid, opts, products, name=name)


def _dask(z, grid, opts, products, *, name):
    from .dask_runner import run_dask

    return run_dask(z, grid, opts, products)


def _is_dask(z) -> bool:
    from .dem import _is_dask as is_dask

    return is_dask(z)


def _threads(info, grid, groups, run, emit, stop_event, gdal_errors):
    from .engine import default_threads
    from .stream import _run_threads

    _run_threads(info, grid, groups, run.tile_size, run.threads or default_threads(), emit,
                 stop_event, gdal_errors)


def _distributed(info, grid, groups, run, emit, stop_event, gdal_errors):
    from .dask_runner import run_distributed

    for opts, names in groups:
        run_distributed(info, grid, opts, names, run.tile_size, run.scheduler, emit, stop_event)


# run(z, grid, opts, products, *, name) -> {product: array}
ARRAY_RUNNERS = (
    Runner("dask", _is_dask, _dask),
    Runner("numpy", lambda z: True, _in_memory),
)
# run(info, grid, groups, run_options, emit, stop_event, gdal_errors): emit(r0, r1, c0, c1, res)
# for every finished window, from any thread.
FILE_RUNNERS = (
    Runner("distributed", lambda run: run.scheduler is not None, _distributed),
    Runner("threads", lambda run: True, _threads),
)


def pick(runners, what) -> Runner:
    """The first of ``runners`` that accepts ``what``."""
    return next(r for r in runners if r.accepts(what))
