"""``terrain info DEM``: owns the command describing a DEM (grid, CRS, true ground pixel
size, vertical unit, elevation range), as text or JSON."""

from __future__ import annotations

import json

import click

from .options import dem_argument, input_options, verbosity_options


@click.command("info", short_help="Describe a DEM: CRS, size, ground pixel size, elevation range.")
@dem_argument()
@input_options
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
@click.option("--no-stats", is_flag=True,
              help="Skip the elevation range (it reads the whole band).")
@verbosity_options
def command(dem, band, src_crs, as_json, no_stats):
    """Describe the elevation band of DEM.

    Prints the CRS (geographic or projected), the size, the pixel size in CRS
    units and on the ground in metres (a per-row range for lat/lon DEMs, from
    the ellipsoid), the bounds, the nodata value and the elevation range of the
    valid cells (nodata, NaN and infinities excluded; read window by window).
    """
    from terrain.info import dem_info

    description = dem_info(dem, band=band, src_crs=src_crs, stats=not no_stats)
    if as_json:
        click.echo(json.dumps(description.as_dict(), indent=2))
    else:
        click.echo(str(description))
