"""terrain slope DEM -o OUT.tif"""

from __future__ import annotations

import click

from . import options as o


@click.command("slope", short_help="Slope GeoTIFF (degrees by default).")
@o.product_options(o.units_option)
def command(units, **shared):
    """Slope of DEM into a float32 GeoTIFF: the angle of steepest ascent.

    Degrees from 0 (flat) to 90 by default; --units percent is 100 x rise/run,
    ratio is rise/run, both in metres per metre of true ground distance (lat/lon
    DEMs use the ellipsoid's spacing). Nodata cells stay nodata (-9999).
    """
    from .common import run_product_command

    run_product_command("slope", dict(units=units), **shared)
