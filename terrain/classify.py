"""Slope classes: named schemes, classification in the scheme's own unit, class GeoTIFFs and maps.

Named schemes (breaks in the scheme's own unit; ``inf``: open-ended):

- ``usda``: 0-2-6-12-18-25-35-100 % -- USDA NRCS, Soil Survey Manual (Agriculture
  Handbook 18, 2017), slope classes A-G (nearly level ... very steep).
- ``fao``: 0-2-5-8-16-30-45-inf % -- FAO, Guidelines for soil description, 4th ed.
  (2006), table 5 (flat ... very steep).
- ``soter``: 0-2-5-8-15-30-60-inf % -- ISRIC/FAO SOTER procedures manual (van
  Engelen & Dijkshoorn, 2013), slope gradient classes.
- ``nz-luc``: 0-3-7-15-20-25-35-90 degrees -- Lynn et al., Land Use Capability
  Survey Handbook, 3rd ed. (2009), slope groups A-G.
- ``planning``: 0-5-15-30-inf % -- the common planning thresholds (buildable,
  moderate, steep, very steep).

Classes are half-open ``[lo, hi)``, the last one closed ``[lo, hi]``; breaks
start at 0. When the last break is finite and below the largest possible slope
(90 degrees / unbounded percent), one more class ``[last, inf)`` is appended, so
that every valid cell has a class and the class areas add up to the valid area
(USDA's 100 % ends at 45 degrees: steeper cells get class 8, "above 100 %").
Slopes are converted into the breaks' unit (percent = 100 tan, degrees =
atan in degrees, from the same ground gradient) before they are compared, so a
15 % threshold is 15 % whatever unit the slope was computed in.

Class rasters are uint8, codes 1..K, 0 = nodata, with a colour table, the class
names as GDAL category names and a raster attribute table (both in the
``.aux.xml`` beside the GeoTIFF: GDAL, QGIS and ArcGIS read them), and the
breaks and units in the tags.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from xml.sax.saxutils import escape

import numpy as np

from .errors import TerrainError
from .registry import GRADIENT_BANDS, SLOPE, SLOPE_UNITS

INF = math.inf

SCHEMES = {
    "usda": ((0, 2, 6, 12, 18, 25, 35, 100), "percent"),
    "fao": ((0, 2, 5, 8, 16, 30, 45, INF), "percent"),
    "soter": ((0, 2, 5, 8, 15, 30, 60, INF), "percent"),
    "nz-luc": ((0, 3, 7, 15, 20, 25, 35, 90), "degrees"),
    "planning": ((0, 5, 15, 30, INF), "percent"),
}
BREAK_UNITS = ("degrees", "percent")
_SYMBOL = {"degrees": "deg", "percent": "%"}
# Colour anchors, flat (green) to steep (dark red).
_ANCHORS = np.array([(26, 150, 65), (166, 217, 106), (255, 255, 191), (253, 174, 97),
                     (215, 25, 28), (103, 0, 31)], float)


@dataclass(frozen=True)
class SlopeClass:
    code: int
    lo: float
    hi: float
    units: str

    @property
    def label(self) -> str:
        s = _SYMBOL[self.units]
        if math.isinf(self.hi):
            return f">= {self.lo:g} {s}"
        return f"{self.lo:g}-{self.hi:g} {s}"

    def as_dict(self) -> dict:
        return {"code": self.code, "label": self.label, "lo": self.lo,
                "hi": None if math.isinf(self.hi) else self.hi, "units": self.units}


@dataclass(frozen=True)
class Classes:
    """The classes of a scheme or of explicit breaks (see the module docstring)."""

    classes: tuple
    units: str
    name: str

    def __len__(self):
        return len(self.classes)

    @property
    def breaks(self) -> tuple:
        return tuple(c.lo for c in self.classes) + (self.classes[-1].hi,)

    def labels(self) -> list:
        return [c.label for c in self.classes]

    def colours(self) -> list:
        """One (r, g, b) per class, interpolated along the anchors."""
        k = len(self.classes)
        pos = np.linspace(0, len(_ANCHORS) - 1, k) if k > 1 else np.zeros(1)
        out = []
        for p in pos:
            i = min(int(p), len(_ANCHORS) - 2)
            f = p - i
            out.append(tuple(int(round(v)) for v in _ANCHORS[i] * (1 - f) + _ANCHORS[i + 1] * f))
        return out

    def values(self, tan_slope: np.ndarray) -> np.ndarray:
        """tan(slope) in this scheme's unit (float64)."""
        t = np.asarray(tan_slope, np.float64)
        return 100.0 * t if self.units == "percent" else np.degrees(np.arctan(t))

    def codes(self, tan_slope: np.ndarray) -> np.ndarray:
        """uint8 codes 1..K, 0 where tan_slope is NaN."""
        v = self.values(tan_slope)
        inner = np.array(self.breaks[1:-1], np.float64)
        codes = np.searchsorted(inner, v, side="right").astype(np.uint8) + 1
        codes[~np.isfinite(v)] = 0
        return codes


def resolve_classes(breaks=None, scheme=None, units="degrees") -> Classes:
    """:class:`Classes` from a scheme name or explicit breaks (in ``units``).

    >>> resolve_classes(scheme="planning").labels()
    ['0-5 %', '5-15 %', '15-30 %', '>= 30 %']
    >>> resolve_classes(breaks=[0, 10, 20], units="degrees").labels()
    ['0-10 deg', '10-20 deg', '>= 20 deg']
    """
    if scheme is not None and breaks is not None:
        raise TerrainError("give either a scheme or breaks, not both")
    if scheme is not None:
        key = str(scheme).lower()
        if key not in SCHEMES:
            raise TerrainError(f"unknown slope class scheme {scheme!r}; choose from {', '.join(SCHEMES)}")
        breaks, units = SCHEMES[key]
        name = key
    elif breaks is not None:
        if isinstance(breaks, str):
            breaks = parse_breaks(breaks)
        name = "custom"
    else:
        breaks, units = SCHEMES["planning"]
        name = "planning"
    if units not in BREAK_UNITS:
        raise TerrainError(f"break units must be one of {', '.join(BREAK_UNITS)}, got {units!r}")
    try:
        b = [float(x) for x in breaks]
    except (TypeError, ValueError):
        raise TerrainError(f"slope breaks must be numbers, got {breaks!r}") from None
    if len(b) < 2:
        raise TerrainError("give at least two slope breaks, e.g. 0,5,15,30")
    if b[0] != 0:
        raise TerrainError(f"slope breaks must start at 0, got {b[0]:g}")
    if any(math.isnan(x) for x in b) or any(y <= x for x, y in zip(b, b[1:])):
        raise TerrainError(f"slope breaks must increase strictly, got {','.join(f'{x:g}' for x in b)}")
    if any(math.isinf(x) for x in b[:-1]):
        raise TerrainError("only the last slope break may be infinite")
    top = 90.0 if units == "degrees" else INF
    if units == "degrees" and b[-1] > 90:
        raise TerrainError(f"slope breaks in degrees cannot exceed 90, got {b[-1]:g}")
    if b[-1] < top:
        b.append(INF)
    if len(b) - 1 > 254:
        raise TerrainError("at most 254 slope classes")
    classes = tuple(SlopeClass(i + 1, lo, hi, units) for i, (lo, hi) in enumerate(zip(b, b[1:])))
    return Classes(classes, units, name)


def parse_breaks(text: str) -> list:
    """``"0,5,15,30"`` (``inf`` allowed) into floats."""
    try:
        return [float(x) for x in str(text).replace(" ", "").split(",") if x]
    except ValueError:
        raise TerrainError(f"slope breaks {text!r} are not comma-separated numbers "
                           "(e.g. 0,5,15,30)") from None


# --- in memory ----------------------------------------------------------------------------

def _tan_of(slope_or_dem):
    """tan(slope) of a slope DataArray (its ``units`` attribute) or of a DEM, and the template."""
    import xarray as xr

    if not isinstance(slope_or_dem, xr.DataArray):
        raise TerrainError("classify() takes a DataArray: a DEM (terrain.open_dem) or a slope "
                           "with its units attribute (terrain.slope)")
    units = slope_or_dem.attrs.get("units")
    if slope_or_dem.name == SLOPE or (units in SLOPE_UNITS
                                      and slope_or_dem.name != "elevation"):
        if units not in SLOPE_UNITS:
            raise TerrainError("the slope DataArray has no units attribute (degrees, percent, "
                               "radians or ratio); set slope.attrs['units']")
        v = np.asarray(slope_or_dem.values, np.float64)
        t = {"degrees": lambda a: np.tan(np.radians(a)), "radians": np.tan,
             "percent": lambda a: a / 100.0, "ratio": lambda a: a}[units](v)
        return t, slope_or_dem
    from .api import gradient

    g = gradient(slope_or_dem)
    dzdx, dzdy = GRADIENT_BANDS
    return np.hypot(np.asarray(g[dzdx].values, np.float64),
                    np.asarray(g[dzdy].values, np.float64)), g[dzdx]


def classify(slope_or_dem, breaks=None, scheme=None, units="degrees"):
    """Slope classes of a DEM or slope DataArray: a uint8 DataArray, codes 1..K, 0 = nodata.

    ``breaks`` (a list or ``"0,5,15,30"``) are in ``units`` (degrees or percent); a
    ``scheme`` (``usda``, ``fao``, ``soter``, ``nz-luc``, ``planning``) brings its own
    breaks and unit. A slope is converted into the breaks' unit first. The result's
    attrs hold the classes (``flag_values``, ``flag_meanings``, ``breaks``, ``units``).

    >>> import numpy as np, xarray as xr
    >>> s = xr.DataArray(np.array([[0.0, 4.0, 10.0, 45.0]]), dims=("y", "x"), name="slope",
    ...                  attrs={"units": "degrees"})
    >>> classify(s, scheme="planning").values.tolist()  # 4 deg = 7 %, 10 deg = 17.6 %
    [[1, 2, 3, 4]]
    """
    import xarray as xr

    classes = resolve_classes(breaks, scheme, units)
    tan, template = _tan_of(slope_or_dem)
    codes = classes.codes(tan)
    out = xr.DataArray(codes, dims=template.dims, coords=template.coords, name="slope_class")
    out.attrs = {"units": "class code", "scheme": classes.name, "breaks": list(classes.breaks),
                 "break_units": classes.units, "flag_values": list(range(1, len(classes) + 1)),
                 "flag_meanings": " ".join(l.replace(" ", "_") for l in classes.labels()),
                 "nodata": 0}
    return out


# --- streaming ------------------------------------------------------------------------------

def stream_tan_slope(info, opts, on_window, *, run=None, stop_event=None):
    """Stream the DEM ``info`` window by window on a thread pool, calling
    ``on_window(row0, row1, col0, col1, tan_slope)`` (float64, NaN = nodata) from the
    worker threads. Bounded memory: a few windows per thread."""
    from .engine import RunOptions, default_threads
    from .raster import GDAL_ENV, GdalErrors
    from .stream import _run_threads

    import rasterio

    run = run or RunOptions()
    opts = opts.with_z_factor(info.z_factor)
    grid = info.grid(opts.geometry)
    stop_event = stop_event or threading.Event()

    def emit(row0, row1, col0, col1, res):
        dzdx, dzdy = GRADIENT_BANDS
        t = np.hypot(res[dzdx].astype(np.float64), res[dzdy].astype(np.float64))
        on_window(row0, row1, col0, col1, t)

    with rasterio.Env(**GDAL_ENV), GdalErrors():
        _run_threads(info, grid, [(opts, GRADIENT_BANDS)], run.tile_size,
                     run.threads or default_threads(), emit, stop_event)
    if stop_event.is_set():
        from .errors import Interrupted

        raise Interrupted(f"{info.path}: interrupted; no output was written")
    return grid


def _pam_xml(classes: Classes) -> str:
    names = "".join(f"      <Category>{escape(c)}</Category>\n"
                    for c in ["nodata"] + classes.labels())
    fields = [("Value", 0, 5), ("Class", 2, 2), ("Lower", 2, 0), ("Upper", 2, 0),
              ("Units", 2, 0), ("Red", 0, 6), ("Green", 0, 7), ("Blue", 0, 8)]
    defs = "".join(f'      <FieldDefn index="{i}"><Name>{n}</Name><Type>{t}</Type>'
                   f"<Usage>{u}</Usage></FieldDefn>\n" for i, (n, t, u) in enumerate(fields))
    rows = ""
    for i, (c, rgb) in enumerate(zip(classes.classes, classes.colours())):
        hi = "inf" if math.isinf(c.hi) else f"{c.hi:g}"
        cells = [str(c.code), escape(c.label), f"{c.lo:g}", hi, c.units, *map(str, rgb)]
        rows += f'      <Row index="{i}">' + "".join(f"<F>{v}</F>" for v in cells) + "</Row>\n"
    return ("<PAMDataset>\n  <PAMRasterBand band=\"1\">\n    <CategoryNames>\n" + names +
            "    </CategoryNames>\n    <GDALRasterAttributeTable tableType=\"thematic\">\n" + defs +
            rows + "    </GDALRasterAttributeTable>\n  </PAMRasterBand>\n</PAMDataset>\n")


def classify_file(src, output, *, breaks=None, scheme=None, units="degrees", opts=None,
                  read=None, write=None, run=None, plot=None, dpi=150, stop_event=None) -> dict:
    """Stream the DEM ``src`` into a class GeoTIFF ``output`` (one pass, bounded memory).

    ``src`` is a path or a :class:`terrain.raster.RasterInfo` already opened;
    ``read``/``write``/``run`` are :class:`~terrain.raster.ReadOptions`,
    :class:`~terrain.writer.WriteOptions` (creation options, overwrite) and
    :class:`~terrain.engine.RunOptions`, as for :func:`terrain.stream.process_file`.
    Returns ``{"classes": Classes, "area_m2": [per class], "valid_m2", "total_m2",
    "areas": method}``; with ``plot`` also draws the class map there.
    """
    from rasterio.windows import Window

    from .areas import CellAreas
    from .engine import Options
    from .raster import described
    from .writer import GeoTIFFWriter, WriteOptions, check_target

    opts, write = opts or Options(), write or WriteOptions()
    overwrite = write.overwrite
    classes = resolve_classes(breaks, scheme, units)
    info = described(src, read)
    src = info.path
    target = check_target(output, inputs=[info], overwrite=overwrite)
    if plot is not None:
        check_target(plot, inputs=[info], overwrite=overwrite)
    grid = info.grid(opts.geometry)
    areas = CellAreas.from_info(info, opts.geometry, grid=grid)
    k = len(classes)
    sums = np.zeros(k + 1)
    lock = threading.Lock()
    tags = {"scheme": classes.name, "breaks": ",".join(f"{b:g}" for b in classes.breaks),
            "break_units": classes.units,
            "classes": "; ".join(f"{c.code}={c.label}" for c in classes.classes),
            "intervals": "[lo, hi), the last class closed", "method": opts.method,
            "geometry": opts.geometry, "source": os.path.basename(src), "software": "terrain"}
    writer = GeoTIFFWriter(target, info, [("slope_class", "class code",
                                           f"slope class ({classes.name}, {classes.units})")],
                           byte=True, creation_options=write.creation_options, cog=write.cog,
                           resampling="nearest", tags=tags, overwrite=overwrite)
    try:
        cmap = {0: (0, 0, 0, 0)}
        cmap.update({c.code: (*rgb, 255) for c, rgb in zip(classes.classes, classes.colours())})
        writer.ds.write_colormap(1, cmap)

        def on_window(row0, row1, col0, col1, t):
            codes = classes.codes(t)
            part = np.bincount(codes.ravel(), weights=areas.window(row0, row1, col0, col1).ravel(),
                               minlength=k + 1)
            with lock:
                sums[:] += part
                writer.write(1, codes, Window(col0, row0, col1 - col0, row1 - row0))

        stream_tan_slope(info, opts, on_window, run=run, stop_event=stop_event)
        writer.finish()
        # Category names and the attribute table, which rasterio cannot write, in the
        # GDAL .aux.xml published with the file.
        writer.add_sidecar(".aux.xml", _pam_xml(classes))
        writer.publish()
    except BaseException:
        writer.abort()
        raise
    result = {"classes": classes, "area_m2": sums[1:].tolist(), "valid_m2": float(sums[1:].sum()),
              "total_m2": float(sums.sum()), "areas": areas.method}
    if plot is not None and result["valid_m2"] > 0:
        plot_classes(target, plot, classes, result["area_m2"], dpi=dpi, overwrite=overwrite,
                     title=f"{os.path.basename(src)}: slope classes ({classes.name}, {opts.method})")
    return result


# --- class map ---------------------------------------------------------------------------------

def plot_classes(class_tif, out_map, classes: Classes, area_m2, *, dpi=150, overwrite=False,
                 title=None, max_pixels=2000) -> str:
    """Map of a class GeoTIFF with a legend giving each class's label and share of the
    (ground) area ``area_m2`` (one figure per class). PNG, PDF or SVG by extension."""
    import rasterio
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from .plot import _output_format, _save_atomic
    from .writer import check_target

    _output_format(out_map)
    out_map = check_target(out_map, overwrite=overwrite)
    with rasterio.open(class_tif) as ds:
        step = max(1, math.ceil(max(ds.height, ds.width) / max_pixels))
        shape = (max(1, ds.height // step), max(1, ds.width // step))
        codes = ds.read(1, out_shape=shape)
        b = ds.bounds
        geographic = ds.crs is not None and ds.crs.is_geographic
    k = len(classes)
    colours = [(0, 0, 0, 0)] + [tuple(v / 255 for v in rgb) + (1.0,) for rgb in classes.colours()]
    cmap = ListedColormap(colours)
    norm = BoundaryNorm(np.arange(-0.5, k + 1.5), cmap.N)
    fig = Figure(figsize=(7.5, 8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    ax.imshow(codes, cmap=cmap, norm=norm, extent=(b.left, b.right, b.bottom, b.top),
              interpolation="nearest")
    ax.set_xlabel("longitude (deg)" if geographic else "x (m)")
    ax.set_ylabel("latitude (deg)" if geographic else "y (m)")
    if not geographic:
        ax.ticklabel_format(useOffset=False, style="plain")
    if geographic:
        ax.set_aspect(1 / math.cos(math.radians((b.top + b.bottom) / 2)))
    total = float(sum(area_m2))
    handles = [Patch(facecolor=colours[c.code], edgecolor="0.3",
                     label=f"{c.label}: {100 * a / total if total else 0:.1f} %")
               for c, a in zip(classes.classes, area_m2)]
    ax.legend(handles=handles, title=f"slope class ({classes.name}): share of the ground area",
              loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, fontsize=9,
              title_fontsize=9, frameon=False)
    ax.set_title(title or f"{os.path.basename(class_tif)}: slope classes")
    # Through the maps' one atomic path (a new name claimed exclusively).
    _save_atomic(fig, out_map, _output_format(out_map), dpi, overwrite=overwrite,
                 bbox_inches="tight")
    return out_map
