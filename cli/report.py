"""``terrain report DEM -o REPORT.html``: owns the command writing the HTML slope report."""

from __future__ import annotations

import click

from . import options as o
from .classify import class_options, resolve


@click.command("report", short_help="Self-contained HTML slope report (maps, classes, zones).")
@o.dem_argument()
@o.suffix_output_option((".html", ".htm"), "REPORT.html",
                        "The HTML report (one file, images embedded).",
                        "the report is an HTML file; name it .html")
@o.zone_options
@class_options
@o.analysis_options()
def command(dem, output, zones, zone_field, scheme, breaks, break_units, method, edge_order,
            z_factor, geometry, read, overwrite, run):
    """One self-contained HTML report of DEM's slope: slope, class and aspect maps, an
    area-weighted histogram, class areas, per-zone tables and the facts a reviewer
    needs (CRS, ground pixel size, method, units, z factor, nodata share, version).
    No network: it opens from a USB stick.
    """
    from . import state
    from .common import build_options, status
    from terrain.report import make_report

    resolve(scheme, breaks, break_units)
    opts = build_options(method=method, edge_order=edge_order, z_factor=z_factor, geometry=geometry)
    make_report(dem, output, zones=zones, zone_field=zone_field, breaks=breaks, scheme=scheme,
                break_units=break_units, opts=opts, read=read, run=run, overwrite=overwrite,
                stop_event=state.get().stop_event)
    status(f"wrote {output}")
