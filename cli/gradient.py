"""terrain gradient DEM -o OUT.tif"""

from __future__ import annotations

import click

from . import options as o


@click.command("gradient", short_help="Two-band GeoTIFF: dz/dx (east) and dz/dy (north).")
@o.product_options(maps=False)
def command(**shared):
    """Gradient of DEM into a two-band float32 GeoTIFF.

    Band 1 dzdx: rise per metre towards east; band 2 dzdy: rise per metre
    towards north (metres per metre of true ground distance, whatever the
    raster's orientation; lat/lon DEMs use the ellipsoid's spacing).
    """
    from .common import run_product_command

    run_product_command("gradient", {}, **shared)
