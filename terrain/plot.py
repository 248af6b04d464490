"""Maps of DEMs and their products: PNG, PDF or SVG, written atomically.

Slope, aspect, hillshade and elevation drawn over a grey hillshade, in map
coordinates (longitude / latitude in degrees for geographic DEMs, easting /
northing in the CRS's unit otherwise), with a labelled colorbar and a legend
for cells without data (and for flat cells on aspect maps).

matplotlib is imported inside the functions only (``import terrain`` and the
streaming command line never pay for it), and only through
:class:`matplotlib.figure.Figure` with the Agg canvas: no pyplot, no global
state, safe in threads and on headless machines.

A DEM larger than ``max_pixels`` on its long side is never decimated before
the computation: the product is computed at full resolution by the streaming
runner into a temporary folder beside the map, then read back at display
resolution (``average`` resampling; ``nearest`` for aspect, whose values are
angles). Only the grey hillshade backdrop is computed on the DEM read at
display resolution, which is what a shaded relief at that scale should show.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import tempfile
import threading
from dataclasses import dataclass

import numpy as np

from . import _ckernels
from .errors import InputError, OutputError, TerrainError
from .registry import BACKDROP, DEFAULT_MAP, PRODUCTS as _DECLARED

FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
# Products with a map (a style in the registry), and the DEM itself.
FILE_PRODUCTS = tuple(name for name, p in _DECLARED.items() if p.style is not None)
ELEVATION = "elevation"
PRODUCTS = FILE_PRODUCTS + (ELEVATION,)

FIG_WIDTH = 8.0  # inches: 1200 px at the default 150 dpi
MIN_SHORT_PX = 48  # a map's short side is never drawn thinner (stretched, with a warning)
MAX_DISPLAY_PIXELS = 2048  # a display raster's longest side by default, at any dpi
FLAT_COLOUR = "#bdbdbd"
NODATA_HATCH_COLOUR = "#b0b0b0"
ELEVATION_SHADE_ALPHA = 0.6
_LINEAR_UNITS = {
    "metre": "m", "meter": "m", "m": "m", "kilometre": "km", "kilometer": "km",
    "foot": "ft", "ft": "ft", "us survey foot": "US survey ft", "us-ft": "US survey ft",
    "foot_us": "US survey ft",
}


class MapWarning(UserWarning):
    """A map was drawn, but not quite as asked (all nodata, stretched to stay readable).

    The command line prints these as ``warning: ...`` lines.
    """


@dataclass
class MapData:
    """What :func:`render` draws: arrays north-up (row 0 north, column 0 west)."""

    values: np.ndarray
    shade: np.ndarray | None
    extent: tuple[float, float, float, float]  # west, east, south, north
    geographic: bool
    axis_unit: str
    units: str
    method: str | None
    flat_value: float = -1.0
    source: str = ""  # the DEM's file name, for the title


_preload_lock = threading.Lock()
_preload_thread = None


def preload() -> None:
    """Import matplotlib's drawing modules and load its font on a background thread, once.

    matplotlib's import and font loading take about a second: started while a DEM
    streams or a product file is read (work that mostly runs outside the GIL), they
    are done when the map is drawn. Returns at once; :func:`render` waits for it.
    """
    global _preload_thread
    with _preload_lock:
        if _preload_thread is None:
            _preload_thread = threading.Thread(target=_import_drawing, name="terrain-preload",
                                               daemon=True)
            _preload_thread.start()


def _import_drawing():
    try:
        import matplotlib.backends.backend_agg  # noqa: F401
        import matplotlib.colors  # noqa: F401
        import matplotlib.figure  # noqa: F401
        import matplotlib.patches  # noqa: F401
        import matplotlib.ticker  # noqa: F401
        from matplotlib import colormaps  # noqa: F401
        from matplotlib.font_manager import FontProperties, findfont, get_font

        get_font(findfont(FontProperties()))
    except Exception:  # noqa: BLE001 - the draw itself imports them again and reports
        pass


def _wait_preload() -> None:
    """Let a preload in progress finish: one thread imports matplotlib at a time."""
    thread = _preload_thread
    if thread is not None and thread is not threading.current_thread():
        thread.join()


# --------------------------------------------------------------------------- public API


def plot_dem(src, out_png, *, product: str = DEFAULT_MAP, opts=None, band: int = 1, src_crs=None,
             dpi: int = 150, overwrite: bool = False,
             max_pixels: int = MAX_DISPLAY_PIXELS) -> str:
    """Draw a map of a DEM's slope, aspect, hillshade or elevation.

    Parameters
    ----------
    src : str or os.PathLike
        The DEM (any raster :func:`terrain.open_dem` reads).
    out_png : str or os.PathLike
        Map to write: ``.png``, ``.pdf`` or ``.svg``. Missing folders are created.
    product : str
        A product with a map in :data:`terrain.registry.PRODUCTS` (slope, aspect,
        hillshade ...) or ``"elevation"``.
    opts : terrain.engine.Options, optional
        Method, units, flat value, light ... (default ``Options()``).
    band, src_crs
        As for :func:`terrain.open_dem`.
    dpi : int
        Resolution; the map is 8 inches wide (1200 px at 150 dpi).
    overwrite : bool
        Replace an existing map (the DEM itself is never overwritten).
    max_pixels : int
        Longest side drawn. A larger DEM is processed at full resolution by
        streaming and the result is read back averaged (nearest for aspect).

    Returns
    -------
    str
        The absolute path written.
    """
    from .engine import Options
    from .raster import raster_info
    from .writer import check_target

    opts = opts if opts is not None else Options()
    _check_product(product, PRODUCTS)
    _check_max_pixels(max_pixels)
    _output_format(out_png)
    src = os.fspath(src)
    info = raster_info(src, band=band, src_crs=src_crs)
    out = check_target(out_png, inputs=[src], overwrite=overwrite)
    preload()  # matplotlib loads while the DEM is read and computed
    data = _dem_map_data(src, info, product, opts, max_pixels, os.path.dirname(out))
    if not np.isfinite(data.values).any():
        # The GeoTIFF commands' warning, word for word.
        _warn(f"{src}: no valid elevation; outputs are all nodata")
    render(out, product, data.values, extent=data.extent, geographic=data.geographic,
           units=data.units, title=_title(product, data.source, data.method, opts),
           shade=data.shade, flat_value=data.flat_value, dpi=dpi, axis_unit=data.axis_unit,
           overwrite=overwrite)
    return out


def plot_product_file(product_tif, out_png, *, product: str, dem=None, band: int = 1,
                      src_crs=None, dpi: int = 150, overwrite: bool = False, method=None,
                      max_pixels: int | None = None) -> str:
    """Draw a map of a slope, aspect (or hillshade) GeoTIFF written by terrain.

    Parameters
    ----------
    product_tif : str or os.PathLike
        The product file (band 1; nodata declared; units in the band's unit or
        its ``units`` tag; method in the dataset tag ``method``).
    out_png : str or os.PathLike
        Map to write: ``.png``, ``.pdf`` or ``.svg``.
    product : str
        The product the file holds (slope, aspect, hillshade ...).
    dem : str, os.PathLike or terrain.raster.RasterInfo, optional
        The DEM the product was computed from (or its description, already opened);
        gives the grey hillshade backdrop, computed on the DEM read at display
        resolution. Without it, no backdrop.
    band, src_crs
        Band of ``dem`` (a path) and CRS for files without one.
    method : str, optional
        Method named in the title (default: the file's ``method`` tag).
    dpi, overwrite
        As for :func:`plot_dem`.
    max_pixels : int, optional
        Longest side read (default: the map's own pixels at ``dpi``,
        :func:`map_pixels`).

    Returns
    -------
    str
        The absolute path written.
    """
    from .raster import ReadOptions, described, raster_info
    from .writer import check_target

    _check_product(product, FILE_PRODUCTS)
    if max_pixels is not None:
        _check_max_pixels(max_pixels)
    _output_format(out_png)
    product_tif = os.fspath(product_tif)
    # Refuse bad inputs before touching the output's folder; each is opened once here
    # and its description passed down.
    inputs = [raster_info(product_tif, band=1, src_crs=src_crs)]
    if max_pixels is None:
        max_pixels = map_pixels(inputs[0], dpi)
    dem_info = None if dem is None else described(dem, ReadOptions(band=band, src_crs=src_crs))
    inputs += [] if dem_info is None else [dem_info]
    out = check_target(out_png, inputs=inputs, overwrite=overwrite)
    preload()  # matplotlib loads while the file is read
    data = _product_map_data(product_tif, product, dem_info=dem_info, src_crs=src_crs,
                             method=method, max_pixels=max_pixels)
    if not np.isfinite(data.values).any():
        _warn(f"{product_tif}: no valid {product} values; the map is all nodata")
    render(out, product, data.values, extent=data.extent, geographic=data.geographic,
           units=data.units, title=_title(product, data.source, data.method, None),
           shade=data.shade, flat_value=data.flat_value, dpi=dpi, axis_unit=data.axis_unit,
           overwrite=overwrite)
    return out


def picture_pixels(dpi) -> int:
    """The map's width in pixels at ``dpi``: more display cells than that are never seen."""
    return max(2, int(round(FIG_WIDTH * float(dpi))))


# Inches a map itself may span (see _figure), measured on laid-out figures: beside its
# colorbar at most MAP_WIDTH_IN wide (5.3-6.2 in), and as tall as that times its
# height / width ratio up to the whole picture (8 in, tall maps); a wide, short map
# (ratio under WIDE_RATIO) has its colorbar underneath and up to WIDE_MAP_WIDTH_IN.
MAP_WIDTH_IN, WIDE_MAP_WIDTH_IN, WIDE_RATIO = 6.3, 7.4, 0.6


def map_pixels(info, dpi) -> int:
    """The most pixels the map of ``info``'s grid spans along its long side at ``dpi``.

    Display rasters with more cells than that are never seen: matplotlib shrinks
    them to the map's pixels. At most :func:`picture_pixels` and
    :data:`MAX_DISPLAY_PIXELS`; a square map gets 945 cells a side at 150 dpi (it is
    drawn 770-870 px wide), a tall one 1200.
    """
    geographic, _ = _crs_kind(info.crs)
    _, ratio = _aspect_ratio(_extent(info.transform, info.shape), geographic)
    inches = WIDE_MAP_WIDTH_IN if ratio < WIDE_RATIO else MAP_WIDTH_IN * max(ratio, 1.0)
    return max(2, min(picture_pixels(dpi), MAX_DISPLAY_PIXELS, math.ceil(inches * float(dpi))))


def _aspect_ratio(extent, geographic) -> tuple[float, float]:
    """(display aspect, map height / width) of ``extent`` (west, east, south, north)."""
    west, east, south, north = extent
    # A degree of longitude is cos(latitude) of a degree of latitude.
    aspect = 1.0 / max(math.cos(math.radians(0.5 * (south + north))), 1e-6) if geographic else 1.0
    return aspect, abs(north - south) * aspect / max(abs(east - west), 1e-300)


def display_grid(info, products, *, max_pixels: int = MAX_DISPLAY_PIXELS):
    """What to accumulate while streaming to draw maps of ``products`` afterwards.

    A :class:`terrain.stream.DisplayGrid` for ``process_file(display=...)``: the
    products at display resolution (block averages; nearest for aspect) and the
    full-resolution hillshade averaged, the maps' grey backdrop. Compute that
    hillshade with :func:`backdrop_options` (``product_opts={BACKDROP: ...}``).
    """
    from .stream import DisplayGrid

    for product in products:
        _check_product(product, FILE_PRODUCTS)
    _check_max_pixels(max_pixels)
    how = {p: _DECLARED[p].resampling for p in (*products, BACKDROP)}
    grid = DisplayGrid(info.shape, _display_shape(info.shape, max_pixels), how)
    preload()  # matplotlib loads while the DEM streams
    return grid


def backdrop_options(opts):
    """The grey backdrop's options: the map's light and the one hillshade method."""
    return dataclasses.replace(opts, method=_DECLARED[BACKDROP].default_method)


def render_display(out_png, product, display, info, opts, *, source, method=None,
                   dpi: int = 150, overwrite: bool = True) -> str:
    """Draw the map of ``product`` from a filled :func:`display_grid` (no file read back).

    ``info`` is the DEM's :class:`terrain.raster.RasterInfo`, ``opts`` the Options
    the product was computed with (units, flat value, light), ``source`` the DEM
    named in the title. The caller checked the output (``check_target``);
    ``overwrite`` as for :func:`render`.
    """
    return render_displays({product: out_png}, display, info, opts, source=source,
                           method=method, dpi=dpi, overwrite=overwrite)[0]


def render_displays(maps: dict, display, info, opts, *, source, method=None, dpi: int = 150,
                    overwrite: bool = True, processes: bool = False) -> list:
    """:func:`render_display` for several maps of one display grid ``{product: out}``,
    drawn at once: each figure in its own thread, then the files are written in
    order, from this thread. Returns the paths written. In threads, matplotlib draws
    one figure at a time (``Figure.draw`` holds a class-wide lock) and lays figures
    out under the GIL; what overlaps is the layers' colouring and the PNG encoding.

    With ``processes`` (the command line's choice; Linux only) the maps are shared
    between this process and forked children instead. A child only draws into
    memory and hands the image back; this process writes every file. Measured on
    the 8192^2 benchmark DEM (slope and aspect maps, display rasters of 945^2):
    analyze 3.17 -> 3.0 s (median of 4 alternating runs); the parent's peak RSS
    436 -> 388 MB and the child's own (private) memory 92 MB, about 480 MB in all
    against 436 MB in threads (gdaldem's peak: 563 MB).

    An error or an interrupt writes none of the maps not yet written. Warnings
    (:class:`MapWarning`) come in the maps' order.
    """
    import warnings

    for product, out in maps.items():
        _check_product(product, FILE_PRODUCTS)
        _output_format(out)
    shade = None
    if any(p != BACKDROP for p in maps):
        shade = _north_up(display.result(BACKDROP), info.transform)
    geographic, axis_unit = _crs_kind(info.crs)

    def draw(product, out):
        _drawing.warnings = []
        try:
            return draw_one(product, out), _drawing.warnings
        finally:
            _drawing.warnings = None

    def draw_one(product, out):
        values = _north_up(display.result(product), info.transform)
        fig = _render_figure(
            out, product, values, extent=_extent(info.transform, info.shape),
            geographic=geographic, units=_units(product, opts, info),
            title=_title(product, source, method or opts.method, opts),
            shade=shade if product != BACKDROP else None, flat_value=float(opts.flat_value),
            dpi=dpi, axis_unit=axis_unit)
        image = io.BytesIO()
        _savefig(fig, image, _output_format(out), dpi)
        return image.getvalue()

    jobs = list(maps.items())
    workers = min(len(jobs), len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                  else os.cpu_count() or 1)
    if workers < 2:
        images = [draw(*job) for job in jobs]
    elif processes and _can_fork():
        images = _draw_forked(draw, jobs, workers)
    else:
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(workers, thread_name_prefix="terrain-map")
        try:
            futures = [pool.submit(draw, *job) for job in jobs]
            images = [f.result() for f in futures]
        finally:
            # After an error or an interrupt the other figures finish unseen.
            pool.shutdown(wait=False, cancel_futures=True)
    written = []
    for (_, out), (image, warned) in zip(jobs, images):
        for message in warned:
            warnings.warn(MapWarning(message), stacklevel=2)
        written.append(_write_atomic(out, image, overwrite=overwrite))
    return written


def _can_fork() -> bool:
    """Whether maps may be drawn in forked children: Linux (elsewhere fork is absent or
    unsafe with the system's frameworks)."""
    import sys

    return sys.platform.startswith("linux") and hasattr(os, "fork")


def _draw_forked(draw, jobs: list, workers: int) -> list:
    """``[draw(*job) for job in jobs]``, job i drawn by process i % workers: process 0
    is this one, the others forked children (:class:`_DrawingChild`).

    A child that ends without an answer, or has not answered well after this process
    finished its own share, is stopped and its maps are drawn here: forking is only
    ever a speed-up, never a way to lose or hang a map.
    """
    import time

    _wait_preload()  # no import in progress in another thread when the process forks
    children = []
    try:
        for k in range(1, workers):
            children.append(_DrawingChild(draw, jobs[k::workers]))
        results = [None] * len(jobs)
        began = time.monotonic()
        results[::workers] = [draw(*job) for job in jobs[::workers]]
        patience = max(CHILD_PATIENCE, 4 * (time.monotonic() - began))
        for k, child in enumerate(children, start=1):
            drawn = child.result(timeout=patience)
            results[k::workers] = drawn if drawn is not None else [
                draw(*job) for job in jobs[k::workers]]
        return results
    finally:
        for child in children:
            child.close()


# Seconds a forked child may take beyond this process's own share before its maps
# are drawn here instead (at least; 4 x this process's drawing time if longer).
CHILD_PATIENCE = 20.0


class _DrawingChild:
    """Figures drawn in a forked child process, sent back as their images.

    The child inherits the display rasters and matplotlib, already imported; it
    draws into memory only (no file, no GDAL), sends the images (or the error)
    through a pipe and ends with ``os._exit``: never returning into the caller's
    code, running no exit handler, flushing none of the parent's buffers.
    """

    def __init__(self, draw, jobs):
        import gc
        import pickle
        import signal

        from matplotlib.figure import Figure

        read_fd, write_fd = os.pipe()
        # matplotlib draws every figure under one class-wide lock: held by another
        # thread at the fork, the child would wait for it forever. Taken here, no
        # other thread is mid-draw, and each process lets go of its own copy.
        with Figure._render_lock:
            pid = os.fork()
        if pid == 0:  # the child
            try:
                # No garbage collection here: the parent's unreachable objects are the
                # parent's to finalize (a finalizer may talk over an inherited pipe or
                # socket, which then hears from two processes).
                gc.disable()
                os.close(read_fd)
                # Interrupted, the child just ends: the parent stops it and cleans up.
                for signum in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(signum, signal.SIG_DFL)
                try:
                    reply = ("ok", [draw(*job) for job in jobs])
                except BaseException as exc:  # sent to the parent, raised there
                    reply = ("error", _sendable(exc))
                with os.fdopen(write_fd, "wb") as pipe:
                    pipe.write(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))
            finally:
                os._exit(0)
        os.close(write_fd)
        self.pid, self.read_fd = pid, read_fd

    def result(self, *, timeout: float) -> list | None:
        """The child's drawings; ``None`` when it ended without an answer (killed: out
        of memory) or gave none within ``timeout`` seconds; the child's error raised."""
        import pickle
        import select

        ready, _, _ = select.select([self.read_fd], [], [], timeout)
        if not ready:
            self.close()
            return None
        with os.fdopen(self.read_fd, "rb") as pipe:
            self.read_fd = None
            data = pipe.read()
        os.waitpid(self.pid, 0)
        self.pid = None
        if not data:
            return None
        status, value = pickle.loads(data)
        if status == "error":
            raise value
        return value

    def close(self) -> None:
        """The child, if still there, is stopped and reaped."""
        import signal

        if self.read_fd is not None:
            os.close(self.read_fd)
            self.read_fd = None
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self.pid, 0)
            self.pid = None


def _sendable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a TerrainError with its message."""
    import pickle

    try:
        return pickle.loads(pickle.dumps(exc))
    except Exception:
        return TerrainError(f"{type(exc).__name__}: {exc}")


def render(out_png, product, values, *, extent, geographic, units, title, shade=None,
           flat_value=-1.0, dpi=150, axis_unit="m", overwrite: bool = True) -> str:
    """Draw one map and write it atomically.

    With ``overwrite`` (the default) an existing regular file is replaced; without,
    the name is claimed exclusively: a map that appeared meanwhile (another run)
    makes this one fail with "already exists" instead of being replaced.

    Parameters
    ----------
    out_png : str or os.PathLike
        ``.png``, ``.pdf`` or ``.svg``; written through a temporary file in the
        same folder, renamed into place.
    product : str
        A product with a map style in the registry, or ``"elevation"``.
    values : 2-D array
        North-up (row 0 north, column 0 west); NaN where there is no data.
    extent : (west, east, south, north)
        Outer edges of the grid in map coordinates.
    geographic : bool
        Longitude / latitude in degrees (the axes get aspect 1/cos(mean latitude)).
    units : str
        Units of ``values``: slope units (``degrees`` ...), ``m`` for elevation.
    title : str
    shade : 2-D array, optional
        Hillshade (0..255) on the same grid, drawn grey underneath.
    flat_value : float
        Aspect value of flat cells (drawn in a neutral grey).
    dpi : int
    axis_unit : str
        Unit of projected map coordinates for the axis labels (``m``, ``ft`` ...).
    """
    fig = _render_figure(out_png, product, values, extent=extent, geographic=geographic,
                         units=units, title=title, shade=shade, flat_value=flat_value, dpi=dpi,
                         axis_unit=axis_unit)
    return _save_atomic(fig, out_png, _output_format(out_png), dpi, overwrite=overwrite)


def _render_figure(out_png, product, values, *, extent, geographic, units, title, shade,
                   flat_value, dpi, axis_unit):
    """:func:`render`'s checked inputs and figure, not yet saved."""
    _output_format(out_png)
    _check_product(product, PRODUCTS)
    _wait_preload()
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise TerrainError(f"render: values must be a 2-D array, got shape {values.shape}")
    if shade is not None:
        shade = np.asarray(shade, dtype=np.float64)
        if shade.shape != values.shape:
            raise TerrainError(f"render: shade shape {shade.shape} != values shape {values.shape}")
    west, east, south, north = (float(v) for v in extent)
    return _figure(product, values, (west, east, south, north), geographic=geographic,
                   units=units, title=title, shade=shade, flat_value=flat_value, dpi=dpi,
                   axis_unit=axis_unit, name=os.fspath(out_png))


# --------------------------------------------------------------------------- drawing


def _figure(product, values, extent, *, geographic, units, title, shade, flat_value, dpi,
            axis_unit, name="the map"):
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Rectangle
    from matplotlib.ticker import FuncFormatter, StrMethodFormatter

    west, east, south, north = extent
    nodata = ~np.isfinite(values)
    flat = np.zeros(values.shape, bool)
    style = _DECLARED[product].style if product != ELEVATION else None
    kind = style.kind if style is not None else ELEVATION
    if kind == "cyclic" and np.isfinite(flat_value) and not 0 <= flat_value < 360:
        flat = values == flat_value
    # Copies only where cells are hidden (the arrays are a few million cells; fresh
    # memory costs page faults): otherwise the arrays themselves, never modified.
    hidden = nodata | flat
    any_hidden = bool(hidden.any())
    shown = np.where(hidden, np.nan, values) if any_hidden else values
    if shade is not None and nodata.any():
        # A cell without a value shows as no data, not as bare relief.
        shade = np.where(nodata, np.nan, shade)

    aspect, ratio = _readable(*_aspect_ratio(extent, geographic), dpi, name)
    # A first guess of the height; _fit_height trims what the map does not use.
    map_h = min(5.6 * ratio, 6.8)
    fig_h = min(max(map_h + 2.0, 4.0), 9.5)

    fig = Figure(figsize=(FIG_WIDTH, fig_h), dpi=dpi, layout="constrained")
    fig.get_layout_engine().set(w_pad=0.1, h_pad=0.1)
    # Attach the Agg canvas explicitly: no pyplot, no backend switching.
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_facecolor("white")
    # No-data cells are transparent: a light hatch underneath shows through.
    ax.add_patch(Rectangle((west, south), east - west, north - south, facecolor="white",
                           edgecolor=NODATA_HATCH_COLOUR, hatch="////", linewidth=0, zorder=0))
    imkw = dict(extent=(west, east, south, north), origin="upper", aspect=aspect,
                interpolation="antialiased", interpolation_stage="rgba")
    if shade is not None and product != BACKDROP:
        _layer(ax, shade, "gray", 0, 255, zorder=1, **imkw)
    alpha = 1.0
    if shade is not None:
        alpha = style.shade_alpha if style is not None else ELEVATION_SHADE_ALPHA
    handles = []
    finite = shown[np.isfinite(shown)] if any_hidden else shown.ravel()
    # A wide, short map gets its colorbar underneath, where it has room.
    horizontal = ratio < 0.6
    cbkw = dict(ax=ax, shrink=0.85, pad=0.02,
                orientation="horizontal" if horizontal else "vertical",
                aspect=30 if horizontal else 20)

    if kind == "sequential":
        vmax = _nice_max(finite)
        scale = _layer(ax, shown, style.cmap, 0, vmax, alpha=alpha, zorder=2, **imkw)
        extend = "max" if finite.size and finite.max() > vmax else "neither"
        cb = fig.colorbar(scale, extend=extend, **cbkw)
        cb.set_label(style.label(units))
    elif kind == "diverging":
        # Centred on 0; the 2nd-98th percentile of |value| keeps a few spikes from
        # washing the map out.
        vmax = float(np.percentile(np.abs(finite), 98)) if finite.size else 1.0
        vmax = vmax if vmax > 0 else 1.0
        scale = _layer(ax, shown, style.cmap, -vmax, vmax, alpha=alpha, zorder=2, **imkw)
        extend = "both" if finite.size and np.abs(finite).max() > vmax else "neither"
        cb = fig.colorbar(scale, extend=extend, **cbkw)
        cb.set_label(style.label(units))
    elif kind == "cyclic":
        scale = _layer(ax, shown, style.cmap, 0, 360, alpha=alpha, zorder=2, **imkw)
        if flat.any():
            # Flat cells have no direction: a neutral grey, outside the colour wheel.
            _layer(ax, np.where(flat, np.float32(1), np.float32(np.nan)),
                   ListedColormap([FLAT_COLOUR]), 0, 1, zorder=3, **imkw)
            handles.append(Patch(facecolor=FLAT_COLOUR, edgecolor="0.4", linewidth=0.6,
                                 label="Flat (no downslope direction)"))
        cb = fig.colorbar(scale, ticks=[0, 90, 180, 270, 360], **cbkw)
        cb.set_ticklabels(["N  0°", "E  90°", "S  180°", "W  270°", "N  360°"])
        cb.set_label(style.label(units))
    elif kind == "grey":
        scale = _layer(ax, shown, style.cmap, 0, 255, zorder=2, **imkw)
        cb = fig.colorbar(scale, ticks=[0, 64, 128, 192, 255], **cbkw)
        cb.set_label(style.label(units))
    else:  # elevation
        base = colormaps["terrain"]
        cmap = ListedColormap(base(np.linspace(0.25, 1.0, 256)), name="terrain_land")
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if hi <= lo:
            hi = lo + 1.0
        scale = _layer(ax, shown, cmap, lo, hi, alpha=alpha, zorder=2, **imkw)
        cb = fig.colorbar(scale, **cbkw)
        cb.set_label(f"Elevation ({units})")

    if nodata.any():
        handles.append(Patch(facecolor="white", edgecolor=NODATA_HATCH_COLOUR, hatch="////",
                             label="No data"))
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles),
                   frameon=False, fontsize="small")

    ax.set_xlim(west, east)
    ax.set_ylim(south, north)
    if geographic:
        ax.set_xlabel("Longitude (°)")
        ax.set_ylabel("Latitude (°)")
        ax.xaxis.set_major_formatter(FuncFormatter(_degree_formatter(abs(east - west))))
        ax.yaxis.set_major_formatter(FuncFormatter(_degree_formatter(abs(north - south))))
    else:
        ax.set_xlabel(f"Easting ({axis_unit})")
        ax.set_ylabel(f"Northing ({axis_unit})")
        ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        ax.tick_params(axis="y", labelrotation=90)
    ax.tick_params(labelsize="small")
    ax.set_title(title, fontsize="medium")
    _set_ticks(fig, ax, geographic)
    _fit_height(fig, ax)
    # The layout is final: freeze it, or savefig would render the figure twice
    # (matplotlib prints a throw-away PNG to lay a constrained figure out).
    _layout(fig, ax)
    fig.set_layout_engine("none")
    # "none" after a constrained layout leaves a placeholder engine, which savefig
    # still lays out with a full throw-away draw; no engine at all is what we mean.
    fig._layout_engine = None
    return fig


def _readable(aspect, ratio, dpi, name):
    """(aspect, ratio) stretched so that the map's short side gets MIN_SHORT_PX at least.

    To scale, a map 5.6 inches wide (6.8 tall at most) of a long thin strip
    would be a line or nothing (a 2 x 20000 strip: 0 px); such a map is
    stretched across its short side, and a :class:`MapWarning` says so.
    """
    min_in = MIN_SHORT_PX / float(dpi)
    short_in = min(5.6 * ratio, 5.6) if ratio <= 6.8 / 5.6 else min(6.8 / ratio, 6.8)
    if short_in >= min_in:
        return aspect, ratio
    # Wide maps: width 5.6 in, height 5.6 ratio; tall maps: height 6.8 in, width 6.8 / ratio.
    new_ratio = min_in / 5.6 if ratio <= 6.8 / 5.6 else 6.8 / min_in
    stretch = new_ratio / ratio
    _warn(f"{name}: the area is {max(ratio, 1 / ratio):.0f} times longer than wide; to scale "
          f"its short side would be {short_in * dpi:.1f} px, so it is stretched to "
          f"{MIN_SHORT_PX} px (the map is not to scale)")
    return aspect * stretch, new_ratio


# A thread drawing one of several maps keeps its warnings here, said in the maps' order.
_drawing = threading.local()


def _warn(message):
    import warnings

    kept = getattr(_drawing, "warnings", None)
    if kept is not None:
        kept.append(message)
    else:
        warnings.warn(MapWarning(message), stacklevel=3)


def _set_ticks(fig, ax, geographic):
    """As many ticks as the map's sides have room for (long easting labels need more)."""
    from matplotlib.ticker import MaxNLocator

    _layout(fig, ax)
    pos = ax.get_position(original=False)
    per_tick = 0.9 if geographic else 1.2  # inches per label
    for axis, length in ((ax.xaxis, pos.width * fig.get_figwidth()),
                         (ax.yaxis, pos.height * fig.get_figheight())):
        axis.set_major_locator(MaxNLocator(nbins=int(min(max(length / per_tick, 1), 6)),
                                           steps=[1, 2, 2.5, 5, 10]))


def _layout(fig, ax):
    """Place the axes as a draw would, without drawing (the images are the costly part).

    The constrained layout only needs text extents from the renderer; the map's
    fixed aspect then shrinks its box as ``Axes.draw`` does. The figure is
    drawn once, when it is saved.
    """
    fig.get_layout_engine().execute(fig)
    ax.apply_aspect()


def _layer(ax, values, cmap, vmin, vmax, **imshow):
    """Draw ``values`` (NaN: transparent) coloured by ``cmap`` from ``vmin`` to ``vmax``;
    return the colour scale for a colorbar (the colormap and norm, without the alpha).

    The cells are coloured here, as bytes: matplotlib would colour them as float64
    RGBA (32 bytes a cell, several fresh copies per layer: page faults were most of
    a map's time). Its resampling then blends those colours; a pixel differs from
    the float64 path's by at most one level in 255.
    """
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    cmap = colormaps[cmap] if isinstance(cmap, str) else cmap
    norm = Normalize(vmin, vmax)
    # As float32 in 0..1, the very values matplotlib would divide bytes into, but
    # here on a plain array: imshow masks what it is given, and its division of a
    # masked byte array goes through float64 (a tenth of a second a layer).
    ax.imshow(np.divide(cmap(norm(values), bytes=True), 255, dtype=np.float32), **imshow)
    return ScalarMappable(norm=norm, cmap=cmap)


def _fit_height(fig, ax, min_height: float = 3.0):
    """Trim the empty bands above and below a map whose width sets its size.

    A fixed-aspect map is centred in the box the layout gives it; shrink the
    figure by the height of that box the map does not use.
    """
    for _ in range(3):
        _layout(fig, ax)
        box = ax.get_position(original=True)
        used = ax.get_position(original=False)
        slack = (box.height - used.height) * fig.get_figheight()
        if slack < 0.05:
            break
        fig.set_figheight(max(fig.get_figheight() - slack + 0.02, min_height))


def _nice_max(finite: np.ndarray) -> float:
    """Top of the slope colour scale: the 99.5th percentile rounded up to a round number."""
    if not finite.size:
        return 1.0
    top = float(np.percentile(finite, 99.5))
    if not top > 0:
        top = float(finite.max())
    if not top > 0:
        return 1.0
    step = 10 ** math.floor(math.log10(top)) / 2
    return math.ceil(top / step * (1 - 1e-9)) * step


def _degree_formatter(span: float):
    decimals = 0 if span >= 20 else 1 if span >= 2 else 2 if span >= 0.2 else 3

    def fmt(value, _pos=None):
        return f"{value:.{decimals}f}".replace("-", "\u2212")

    return fmt


def _savefig(fig, target, fmt: str, dpi, **savefig) -> None:
    """``fig`` saved into ``target`` (a file name or a binary file object)."""
    metadata = {"Software": "terrain"} if fmt == "png" else None
    if fmt == "png" and not savefig and _drawn_as_is(fig, dpi):
        # The figure's own pixels (what savefig would draw), encoded by terrain.png.
        from .png import encode_png

        fig.canvas.draw()
        image = encode_png(np.asarray(fig.canvas.buffer_rgba()), dpi=dpi, text=metadata)
        if isinstance(target, (str, os.PathLike)):
            with open(target, "wb") as f:
                f.write(image)
        else:
            target.write(image)
        return
    if fmt == "png":
        # zlib's fastest level: the same pixels, twice as fast, ~10 % larger.
        savefig.setdefault("pil_kwargs", {"compress_level": 1})
    fig.savefig(target, format=fmt, dpi=dpi, metadata=metadata, **savefig)


def _drawn_as_is(fig, dpi) -> bool:
    """Whether ``fig.savefig(dpi=dpi)`` would give the canvas's own drawing: the
    figure's dpi, its own colours (matplotlib's savefig.* settings at their defaults),
    no cropping and an Agg canvas."""
    from matplotlib import rcParams
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    return (isinstance(fig.canvas, FigureCanvasAgg) and float(fig.dpi) == float(dpi)
            and rcParams["savefig.facecolor"] == "auto"
            and rcParams["savefig.edgecolor"] == "auto"
            and not rcParams["savefig.transparent"] and rcParams["savefig.bbox"] is None)


def _save_atomic(fig, out, fmt: str, dpi, *, overwrite: bool, **savefig) -> str:
    """Save ``fig`` as ``out`` through :func:`terrain.writer.atomic_file` (the one
    commit path of every output; ``savefig``: more keywords for Figure.savefig)."""
    from .writer import atomic_file

    out = os.path.abspath(os.fspath(out))
    with atomic_file(out, overwrite=overwrite, what="the map") as tmp:
        _savefig(fig, tmp, fmt, dpi, **savefig)
    return out


def _write_atomic(out, image: bytes, *, overwrite: bool) -> str:
    """A map already drawn into ``image`` (its file's bytes), written as ``out``."""
    from .writer import atomic_file

    out = os.path.abspath(os.fspath(out))
    with atomic_file(out, overwrite=overwrite, what="the map") as tmp:
        with open(tmp, "wb") as f:
            f.write(image)
    return out


# --------------------------------------------------------------------------- data


def _dem_map_data(src, info, product, opts, max_pixels, workdir) -> MapData:
    """Values (full-resolution computation, displayed at <= max_pixels) and backdrop."""
    shape = _display_shape(info.shape, max_pixels)
    geographic, axis_unit = _crs_kind(info.crs)
    extent = _extent(info.transform, info.shape)
    units = _units(product, opts, info)
    if shape == tuple(info.shape):
        from .api import compute
        from .dem import open_dem

        dem = open_dem(src, band=info.band, src_crs=info.crs)
        values = dem.values if product == ELEVATION else \
            compute(dem, (product,), **dataclasses.asdict(opts))[product].values
        shade = None
        if product != BACKDROP:
            shade = compute(dem, (BACKDROP,),
                            **dataclasses.asdict(backdrop_options(opts)))[BACKDROP].values
    else:
        from rasterio.enums import Resampling

        if product == ELEVATION:
            values = _read_elevations(src, info, shape)
            shade = _display_hillshade(src, info, shape, opts)
        else:
            values, shade = _stream_then_read(src, info, product, opts, shape, workdir)
    values = _north_up(np.asarray(values, dtype=np.float64), info.transform)
    shade = None if shade is None else _north_up(np.asarray(shade, np.float64), info.transform)
    return MapData(values=values, shade=shade, extent=extent, geographic=geographic,
                   axis_unit=axis_unit, units=units,
                   method=None if product == ELEVATION else opts.method,
                   flat_value=float(opts.flat_value), source=src)


def _stream_then_read(src, info, product, opts, shape, workdir):
    """Full-resolution product through the streaming runner, read back at ``shape``;
    and the backdrop (None for a hillshade map): the full-resolution hillshade
    averaged onto ``shape`` in the same pass."""
    from rasterio.enums import Resampling

    from .stream import DisplayGrid, process_file
    from .writer import WriteOptions

    display = product_opts = None
    if product != BACKDROP:
        display = DisplayGrid(info.shape, shape, {BACKDROP: _DECLARED[BACKDROP].resampling})
        # Only the backdrop's hillshade takes the one backdrop method.
        product_opts = {BACKDROP: backdrop_options(opts)}
    with tempfile.TemporaryDirectory(prefix=".terrain-plot.", dir=workdir) as tmp:
        path = os.path.join(tmp, f"{product}.tif")
        process_file(info, {product: path}, opts, write=WriteOptions(overwrite=True),
                     display=display, product_opts=product_opts)
        values = _read_resampled(path, 1, shape, Resampling[_DECLARED[product].resampling])
    return values, (None if display is None else display.result(BACKDROP))


def _product_map_data(path, product, *, dem_info, src_crs, method, max_pixels) -> MapData:
    import rasterio
    from rasterio.enums import Resampling

    from .raster import GDAL_ENV, describe, open_raster

    with rasterio.Env(**GDAL_ENV), open_raster(path) as ds:
        info = describe(ds, path, 1, src_crs)
        band_unit = (ds.units[0] or "").strip() if ds.units else ""
        band_tags = ds.tags(1)
        tags = ds.tags()
    units = band_unit or band_tags.get("units", "")
    declared = _DECLARED[product]
    if not units and any(p.field == "units" for p in declared.parameters):
        raise InputError(f"{path}: the {product} file records no units (band unit or 'units' "
                         "tag); it was not written by terrain")
    # The product's own options as the file records them (dataset tags).
    flat_value = float(tags.get("flat_value", -1.0))
    shape = _display_shape(info.shape, max_pixels)
    values = _read_display(path, 1, shape, declared.resampling)
    shade = None
    dem = None if dem_info is None else dem_info.path
    if dem is not None and product != BACKDROP:
        from .engine import Options

        dinfo = dem_info
        if tuple(dinfo.shape) != tuple(info.shape) or not dinfo.transform.almost_equals(info.transform):
            raise InputError(
                f"{dem}: not the grid of {path} ({dinfo.shape[0]} x {dinfo.shape[1]} vs "
                f"{info.shape[0]} x {info.shape[1]} px); give the DEM the product was made from"
            )
        z_factor = float(tags.get("z_factor", "1.0") or 1.0)
        shade = _display_hillshade(dem, dinfo, shape, Options(z_factor=z_factor))
    geographic, axis_unit = _crs_kind(info.crs)
    values = _north_up(values, info.transform)
    shade = None if shade is None else _north_up(shade, info.transform)
    return MapData(values=values, shade=shade, extent=_extent(info.transform, info.shape),
                   geographic=geographic, axis_unit=axis_unit, units=units,
                   method=method or tags.get("method"), flat_value=flat_value,
                   source=dem or tags.get("source") or path)


def _display_dem(path, info, shape):
    """The DEM averaged onto a ``shape`` grid, as a DataArray with that grid's coordinates."""
    import rioxarray  # noqa: F401
    import xarray as xr
    from affine import Affine
    from rasterio.enums import Resampling

    from .spacing import pixel_centres

    rows, cols = info.shape
    t = info.transform
    transform = Affine(t.a * cols / shape[1], 0.0, t.c, 0.0, t.e * rows / shape[0], t.f)
    z = _read_elevations(path, info, shape).astype(np.float32)
    x, y = pixel_centres(transform, shape)
    da = xr.DataArray(z, dims=("y", "x"), coords={"y": y, "x": x}, name="elevation")
    # The file's vertical unit, as open_dem records it (metres per unit for the shading).
    da.attrs["z_factor"] = info.z_factor
    da.attrs["z_factor_source"] = info.z_factor_source
    da = da.rio.write_crs(info.crs)
    return da.rio.write_transform(transform)


def _display_hillshade(path, info, shape, opts):
    """Hillshade of the DEM read at display resolution (the map's backdrop)."""
    from .api import compute

    dem = _display_dem(path, info, shape)
    kw = dataclasses.asdict(backdrop_options(opts))
    return compute(dem, (BACKDROP,), **kw)[BACKDROP].values


def _read_display(path, band, shape, how, threads=None):
    """Band ``band`` of ``path`` at ``shape`` (NaN for nodata), never holding the full raster.

    The overviews when the file has some fine enough (GDAL picks them); otherwise
    the file is read in block-aligned windows on a few threads and folded into a
    :class:`terrain.stream.DisplayGrid` (``how``: ``average`` of the valid cells,
    or ``nearest``): the same display rasters as a map drawn while streaming.
    """
    from concurrent.futures import ThreadPoolExecutor
    import threading

    import rasterio
    from rasterio.enums import Resampling

    from .engine import default_threads
    from .raster import GDAL_ENV, open_raster, read_band
    from .stream import DisplayGrid

    resampling = Resampling.nearest if how == "nearest" else Resampling.average
    # Each block is read once: GDAL's block cache (sized by the first read of the
    # process) need not hold any.
    env = dict(GDAL_ENV, GDAL_CACHEMAX=8 * 2**20)
    with rasterio.Env(**env), open_raster(path) as ds:
        full = (ds.height, ds.width)
        factors = ds.overviews(band)
        block_rows, block_cols = ds.block_shapes[band - 1]
        nodata = ds.nodatavals[band - 1]
    shape = (int(shape[0]), int(shape[1]))
    finest = min(full[0] / shape[0], full[1] / shape[1])
    if shape == full or any(f <= finest for f in factors):
        return _read_resampled(path, band, shape, resampling)
    grid = DisplayGrid(full, shape, {"v": how})
    # Whole blocks per window (each is decompressed once), a few MB each.
    rows = block_rows * max(1, -(-512 // block_rows))
    cols = full[1] if block_cols >= full[1] else block_cols * max(1, -(-2048 // block_cols))
    local = threading.local()
    handles = []

    def work(win):
        row0, row1, col0, col1 = win
        with rasterio.Env(**env):
            ds = getattr(local, "ds", None)
            if ds is None:
                ds = local.ds = open_raster(path)
                handles.append(ds)
            arr = read_band(ds, path, band, ((row0, row1), (col0, col1)))
        if arr.dtype.kind == "f":
            # Nodata and +-inf become NaN, in place, in one pass (C).
            block = np.ascontiguousarray(arr)
            _ckernels.to_nan(block, None if nodata is None else float(nodata))
        else:
            block = arr.astype(np.float32)
            if nodata is not None:
                block[arr == nodata] = np.nan
        grid.add(row0, row1, col0, col1, {"v": block})

    wins = [(r0, min(r0 + rows, full[0]), c0, min(c0 + cols, full[1]))
            for r0 in range(0, full[0], rows) for c0 in range(0, full[1], cols)]
    try:
        with ThreadPoolExecutor(threads or default_threads()) as pool:
            for f in [pool.submit(work, w) for w in wins]:
                f.result()
    finally:
        for ds in handles:
            ds.close()
    return grid.result("v")


def _read_elevations(path, info, shape):
    """The DEM's elevations averaged onto ``shape``, decoded as every other reader
    decodes them (:func:`terrain.engine.file_elevation`: nodata, the GDAL mask or
    alpha band, scale and offset). GDAL averages the raw values of the valid cells
    (scale and offset are linear); the mask is read nearest."""
    import rasterio
    from rasterio.enums import Resampling

    from .engine import file_elevation
    from .raster import GDAL_ENV, open_raster, read_band

    shape = (int(shape[0]), int(shape[1]))
    with rasterio.Env(**GDAL_ENV), open_raster(path) as ds:
        raw = read_band(ds, path, info.band, out_shape=shape, resampling=Resampling.average,
                        out_dtype="float64")
        mask = None
        if info.alpha_band is not None:
            mask = read_band(ds, path, info.alpha_band, out_shape=shape,
                             resampling=Resampling.nearest)
        elif info.mask is not None:
            mask = ds.read_masks(info.band, out_shape=shape, resampling=Resampling.nearest)
    return np.asarray(file_elevation(raw, mask, info), dtype=np.float64)


def _read_resampled(path, band, shape, resampling):
    """Band ``band`` of ``path`` at ``shape`` (GDAL resampling ignores nodata), NaN for nodata."""
    import rasterio

    from .raster import GDAL_ENV, open_raster, read_band

    with rasterio.Env(**GDAL_ENV), open_raster(path) as ds:
        arr = read_band(ds, path, band, out_shape=shape, resampling=resampling, masked=True,
                        out_dtype="float64")
    out = arr.filled(np.nan)
    out[~np.isfinite(out)] = np.nan
    return out


# --------------------------------------------------------------------------- helpers


def _output_format(path) -> str:
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in FORMATS:
        raise OutputError(
            f"{os.fspath(path)}: cannot write a map as {ext or 'a file without extension'}; "
            "end the name with .png, .pdf or .svg"
        )
    return FORMATS[ext]


def _check_product(product, allowed):
    if product not in allowed:
        raise TerrainError(f"unknown map product {product!r}; choose one of {', '.join(allowed)}")


def _check_max_pixels(max_pixels):
    if not isinstance(max_pixels, (int, np.integer)) or max_pixels < 2:
        raise TerrainError(f"max_pixels must be an integer >= 2, got {max_pixels!r}")


def _display_shape(shape, max_pixels: int) -> tuple[int, int]:
    """``shape`` scaled so that its long side is at most ``max_pixels`` (unchanged if smaller)."""
    rows, cols = int(shape[0]), int(shape[1])
    if max(rows, cols) <= max_pixels:
        return rows, cols
    scale = max_pixels / max(rows, cols)
    return max(2, round(rows * scale)), max(2, round(cols * scale))


def _extent(transform, shape) -> tuple[float, float, float, float]:
    rows, cols = shape
    xs = (transform.c, transform.c + cols * transform.a)
    ys = (transform.f, transform.f + rows * transform.e)
    return min(xs), max(xs), min(ys), max(ys)


def _north_up(arr, transform):
    """Rows north to south and columns west to east, whatever the file's orientation."""
    if transform.e > 0:
        arr = arr[::-1]
    if transform.a < 0:
        arr = arr[:, ::-1]
    return np.ascontiguousarray(arr)


def _crs_kind(crs) -> tuple[bool, str]:
    """(geographic?, short unit of projected coordinates)."""
    if crs is None:
        return False, "m"
    if crs.is_geographic:
        return True, "°"
    unit = ""
    try:
        unit = crs.linear_units or ""
    except Exception:  # noqa: BLE001 (rasterio raises CRSError on odd CRSs)
        unit = ""
    return False, _LINEAR_UNITS.get(unit.strip().lower(), unit or "m")


def _units(product, opts, info) -> str:
    if product != ELEVATION:
        return _DECLARED[product].units(opts)
    if opts.z_factor is None:
        # The file's own vertical unit (band unit or compound CRS); metres when it has none.
        return _short_unit(info.vertical_unit or "") or "m"
    unit = _band_unit(info.path, info.band)
    return unit or ("m" if opts.z_factor == 1 else "file units")


def _band_unit(path, band) -> str:
    import rasterio

    from .raster import GDAL_ENV, open_raster

    with rasterio.Env(**GDAL_ENV), open_raster(path) as ds:
        unit = ds.units[band - 1] if ds.units else ""
    return _short_unit(unit or "")


def _short_unit(unit: str) -> str:
    unit = unit.strip()
    return {"metre": "m", "meter": "m", "metres": "m", "meters": "m",
            "foot": "ft", "feet": "ft"}.get(unit.lower(), unit)


def _title(product, path, method, opts) -> str:
    name = os.path.basename(os.fspath(path))
    if len(name) > 60:
        name = name[:28] + "…" + name[-28:]
    style = _DECLARED[product].style if product != ELEVATION else None
    head = style.title if style is not None else "Elevation"
    details = []
    if method and product != ELEVATION and _DECLARED[product].uses_method:
        details.append(f"{method} method")
    if style is not None and style.details is not None and opts is not None:
        details.append(style.details(opts))
    return f"{head} of {name}" + (f" ({', '.join(details)})" if details else "")


__all__ = ["MapWarning", "plot_dem", "plot_product_file", "render"]
