"""One self-contained HTML report of a DEM's slope: maps, histogram, class and zone tables, facts.

Everything is in the one file (images embedded as base64 PNG, CSS inline, no
script, no network), so it opens from a USB stick or an e-mail attachment.
"""

from __future__ import annotations

import base64
import datetime
import html
import math
import os
import shutil
import tempfile

import numpy as np

from .errors import OutputError
from .registry import ASPECT, SLOPE


def _img(path) -> str:
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
    return f'<img alt="{html.escape(os.path.basename(path))}" src="data:image/png;base64,{data}">'


def _fmt(v, digits=2):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "&ndash;"
    if isinstance(v, (float, np.floating)):
        return f"{v:,.{digits}f}"
    return html.escape(str(v))


def _histogram_png(hist, path, units_label, dpi=110):
    """Area-weighted slope histogram (ha per 1-degree bin) from the 0.01-degree one."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    coarse = np.asarray(hist).reshape(90, -1).sum(axis=1) / 1e4
    top = max(1, int(np.nonzero(coarse)[0].max()) + 2) if coarse.any() else 90
    fig = Figure(figsize=(8, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    ax.bar(np.arange(90) + 0.5, coarse, width=1.0, color="#c0504d", edgecolor="white", lw=0.3)
    ax.set_xlim(0, min(90, top))
    ax.set_xlabel("slope (degrees, 1-degree bins)")
    ax.set_ylabel("ground area (ha)")
    ax.set_title("Area-weighted slope distribution")
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)


def _table(df, columns, headers, digits=2) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r[c], digits)}</td>" for c in columns) + "</tr>"
                   for _, r in df.iterrows())
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pixel_size(info, grid) -> str:
    t = info.transform
    if info.crs is not None and info.crs.is_geographic:
        xs = np.abs(t.a) * grid.xscale
        dy = np.abs(np.diff(grid.ypos))
        return (f"{xs.min():.2f}-{xs.max():.2f} m (east) x {dy.min():.2f}-{dy.max():.2f} m (north), "
                "on the ellipsoid")
    if grid.ground is not None:
        g = grid.ground
        return (f"{g.dx_m[0]:.3f}-{g.dx_m[1]:.3f} m x {g.dy_m[0]:.3f}-{g.dy_m[1]:.3f} m on the "
                "ground (projection's scale applied)")
    f = grid.xscale[0]
    return f"{abs(t.a) * f:.3f} m x {abs(t.e) * f:.3f} m (CRS units)"


CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px auto;
max-width:1150px;color:#222;background:#fff}
h1{font-size:1.6em;margin-bottom:0.2em}h2{font-size:1.2em;border-bottom:1px solid #ccc;
padding-bottom:3px;margin-top:1.6em}
table{border-collapse:collapse;font-size:0.85em;margin:8px 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f0f0f0}
td:first-child,th:first-child{text-align:left}
img{max-width:100%;height:auto;border:1px solid #ddd}
.maps{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.facts td{text-align:left}.note{color:#555;font-size:0.85em}
"""


def make_report(dem, output, *, zones=None, zone_field=None, breaks=None, scheme=None,
                break_units="degrees", opts=None, read=None, run=None, overwrite=False,
                stop_event=None) -> str:
    """Write the HTML report of the DEM file ``dem`` to ``output``; returns its path.

    ``dem`` is a path or a :class:`terrain.raster.RasterInfo` already opened; it is
    validated once and passed down opened. ``read`` (band, CRS) and ``run`` (threads,
    window size) are :class:`terrain.raster.ReadOptions` and
    :class:`terrain.engine.RunOptions`.
    """
    from . import __version__
    from .areas import CellAreas
    from .classify import classify_file, resolve_classes
    from .engine import Options, RunOptions
    from .plot import plot_product_file
    from .raster import ReadOptions, described
    from .stream import process_file
    from .writer import atomic_file, check_target
    from .zonal import slope_stats

    opts, read, run = opts or Options(), read or ReadOptions(), run or RunOptions()
    if os.path.splitext(os.fspath(output))[1].lower() not in (".html", ".htm"):
        raise OutputError(f"{output}: the report is an HTML file; name it .html")
    info = described(dem, read)
    dem = info.path
    target = check_target(output, inputs=[info], overwrite=overwrite)
    classes = resolve_classes(breaks, scheme, break_units)
    grid = info.grid(opts.geometry)
    work = tempfile.mkdtemp(prefix="terrain-report-")
    passes = dict(opts=opts, run=run, stop_event=stop_event)
    try:
        slope_tif, aspect_tif = os.path.join(work, "slope.tif"), os.path.join(work, "aspect.tif")
        res = process_file(info, {SLOPE: slope_tif, ASPECT: aspect_tif}, opts, run=run,
                           stop_event=stop_event)
        maps = {}
        if res["valid"]:
            for kind, tif in ((SLOPE, slope_tif), (ASPECT, aspect_tif)):
                png = os.path.join(work, f"{kind}.png")
                plot_product_file(tif, png, product=kind, dem=info, src_crs=read.src_crs,
                                  dpi=100, method=opts.method)
                maps[kind] = png
        class_tif, class_png = os.path.join(work, "classes.tif"), os.path.join(work, "classes.png")
        classify_file(info, class_tif, breaks=breaks, scheme=scheme, units=break_units,
                      plot=class_png, dpi=100, **passes)
        if os.path.exists(class_png):
            maps["classes"] = class_png
        hists = {}
        whole = slope_stats(info, breaks=breaks, scheme=scheme, break_units=break_units,
                            histograms=hists, **passes)
        per_zone = None
        if zones is not None:
            per_zone = slope_stats(info, zones=zones, zone_field=zone_field, breaks=breaks,
                                   scheme=scheme, break_units=break_units, **passes)
        hist_png = os.path.join(work, "hist.png")
        _histogram_png(hists["all"], hist_png, "degrees")
        row = whole.iloc[0]
        areas = CellAreas.from_info(info, opts.geometry, grid=grid)
        z_source = "explicit" if opts.z_factor_explicit else info.z_factor_source
        z_factor = opts.z_factor if opts.z_factor_explicit else info.z_factor
        facts = [
            ("DEM", os.path.basename(dem)),
            ("Size", f"{info.shape[1]:,} x {info.shape[0]:,} cells"),
            ("CRS", info.crs.to_string() if info.crs else "none"),
            ("Ground pixel size", _pixel_size(info, grid)),
            ("Gradient method", f"{opts.method} (edge order {opts.edge_order}), "
                                f"geometry {opts.geometry}"),
            ("Slope units", "degrees"),
            ("Z factor", f"{z_factor:g} ({z_source})"),
            ("Ground area", f"{row.area_ha:,.2f} ha; cell areas: {areas.method}"),
            ("Nodata share", f"{100 - row.valid_pct:.2f} % of the area"
                             if not math.isnan(row.valid_pct) else "100 %"),
            ("Slope classes", f"{classes.name} ({classes.units}); [lo, hi), the last closed"),
            ("Software", f"terrain {__version__}"),
            ("Made", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ]
        parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                 f"<title>Slope report: {html.escape(os.path.basename(dem))}</title>"
                 f"<style>{CSS}</style></head><body>",
                 f"<h1>Slope report: {html.escape(os.path.basename(dem))}</h1>",
                 "<h2>Facts</h2><table class=\"facts\">"
                 + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                           for k, v in facts) + "</table>"]
        stat_cols = ["slope_mean", "slope_median", "slope_min", "slope_max", "slope_std",
                     "slope_p10", "slope_p90"]
        parts.append("<h2>Slope statistics (area-weighted, degrees)</h2>" + _table(
            whole, ["zone", "area_ha", "valid_pct"] + stat_cols,
            ["zone", "area (ha)", "valid %", "mean", "median", "min", "max", "std", "p10", "p90"]))
        parts.append('<div class="maps">')
        for kind, title in ((SLOPE, "Slope"), ("classes", "Slope classes"), (ASPECT, "Aspect")):
            if kind in maps:
                parts.append(f"<div><h2>{title}</h2>{_img(maps[kind])}</div>")
        parts.append(f"<div><h2>Histogram</h2>{_img(hist_png)}</div></div>")
        ctab = "<h2>Class areas</h2><table><thead><tr><th>code</th><th>class</th>" \
               "<th>area (ha)</th><th>share of valid area (%)</th></tr></thead><tbody>"
        for c in classes.classes:
            ctab += (f"<tr><td>{c.code}</td><td>{html.escape(c.label)}</td>"
                     f"<td>{_fmt(row[f'class{c.code}_ha'])}</td>"
                     f"<td>{_fmt(row[f'class{c.code}_pct'])}</td></tr>")
        parts.append(ctab + "</tbody></table>")
        if per_zone is not None:
            parts.append(f"<h2>Zones ({len(per_zone)})</h2>" + _table(
                per_zone, ["zone", "area_ha", "valid_pct"] + stat_cols,
                ["zone", "area (ha)", "valid %", "mean", "median", "min", "max", "std", "p10",
                 "p90"]))
            cc = [f"class{c.code}_pct" for c in classes.classes]
            parts.append("<h3>Class shares per zone (% of valid area)</h3>" + _table(
                per_zone, ["zone"] + cc, ["zone"] + classes.labels(), digits=1))
        parts.append('<p class="note">Areas are true ground areas (ellipsoidal per row on '
                     "lat/lon grids, the projection's areal scale on projected ones). Medians and "
                     "percentiles come from 0.01-degree area-weighted histograms.</p>")
        parts.append("</body></html>")
        with atomic_file(target, overwrite=overwrite, what="the report") as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write("\n".join(parts))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
