"""terrain hillshade DEM -o OUT.tif"""

from __future__ import annotations

import click

from . import options as o


@click.command("hillshade", short_help="Hillshade GeoTIFF (bytes 1-255, gdaldem's formula).")
@o.product_options(o.hillshade_options, method_default=None)
def command(azimuth, altitude, multidirectional, **shared):
    """Hillshade of DEM into a Byte GeoTIFF, with gdaldem's formula.

    1 (no light) to 255 (facing the light), 0 = nodata; the light comes from
    --azimuth degrees clockwise from north as the map shows it (grid north,
    the map's up, as gdaldem), --altitude degrees above the horizon. The gradient is the true ground
    gradient (--method: Horn by default).
    """
    from terrain.engine import HILLSHADE_METHOD

    from .common import run_product_command

    shared["method"] = shared["method"] or HILLSHADE_METHOD  # one default, stated once
    settings = dict(azimuth=azimuth, altitude=altitude, multidirectional=multidirectional)
    run_product_command("hillshade", settings, **shared)
