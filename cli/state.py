"""The state of one ``terrain`` run, typed and set in one place (the group's context).

Options (-v, -q, the DEM argument), the signal handlers and the streaming runner's
watch share it through :func:`get`; nothing else travels on ``ctx.obj``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import click


@dataclass
class RunState:
    verbose: int = 0
    quiet: bool = False
    # The DEM arguments, for the error line of an unexpected failure.
    inputs: tuple = ()
    # Set by SIGINT / SIGTERM (and by a runner's own failure): workers stop at their next window.
    stop_event: threading.Event | None = None
    # A signal arrived (the stop event alone may be a failed run's).
    signalled: bool = False
    # The streaming runner is watching stop_event itself: the handler must not raise.
    stop_watched: bool = False
    # Inside the group's catch_warnings(): -v given after the command re-enables warnings.
    warnings_guarded: bool = False
    # GDAL warnings held back to print after the command (a logging handler).
    gdal_warnings: object = field(default=None, repr=False)


def get(ctx: click.Context | None = None) -> RunState:
    """The run's state (created on first use, on the root context)."""
    ctx = ctx or click.get_current_context()
    return ctx.find_root().ensure_object(RunState)
