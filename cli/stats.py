"""``terrain stats DEM -o TABLE.csv``: owns the slope statistics command (whole DEM or per
zone, area-weighted)."""

from __future__ import annotations

import click

from . import options as o
from .classify import class_options, resolve


@click.command("stats", short_help="Slope statistics and class areas, whole DEM or per zone.")
@o.dem_argument()
@o.suffix_output_option((".csv", ".json"), "TABLE.csv",
                        "Output table: CSV or JSON (with the class list) by extension.",
                        "the table's format comes from its extension: .csv or .json")
@o.zone_options
@click.option("--slope-units", type=click.Choice(o.SLOPE_UNITS), default="degrees",
              show_default=True, help="Units of the slope statistics.")
@class_options
@o.analysis_options()
def command(dem, output, zones, zone_field, slope_units, scheme, breaks, break_units, method,
            edge_order, z_factor, geometry, read, overwrite, run):
    """Area-weighted slope statistics of DEM, whole or per zone, into a CSV or JSON table.

    One row per zone: cells, area_ha (true ground area), valid_pct, slope mean,
    median, min, max, std, p10, p90 (area-weighted; quantiles to 0.01 degree), then
    each class's hectares and share of the valid area. One streamed pass in bounded
    memory.
    """
    from . import state
    from .common import build_options, status
    from terrain.writer import check_target
    from terrain.zonal import slope_stats, write_table

    resolve(scheme, breaks, break_units)
    opts = build_options(method=method, edge_order=edge_order, z_factor=z_factor, geometry=geometry)
    check_target(output, inputs=[dem] + ([zones] if zones else []), overwrite=overwrite)
    df = slope_stats(dem, zones=zones, zone_field=zone_field, breaks=breaks, scheme=scheme,
                     units=slope_units, break_units=break_units, opts=opts, read=read, run=run,
                     stop_event=state.get().stop_event)
    write_table(df, output, overwrite=overwrite, dem=dem)
    status(f"wrote {output} ({len(df)} zone{'s' if len(df) != 1 else ''})")
