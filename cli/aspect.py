"""terrain aspect DEM -o OUT.tif"""

from __future__ import annotations

import click

from . import options as o


@click.command("aspect", short_help="Aspect GeoTIFF (downslope azimuth, degrees from north).")
@o.product_options(o.flat_value_option)
def command(flat_value, **shared):
    """Aspect of DEM into a float32 GeoTIFF: the compass direction the slope faces.

    Degrees in [0, 360), clockwise from north, of the downslope direction
    (0 = faces north, 90 = faces east). Flat cells get --flat-value (-1);
    nodata cells stay nodata (-9999). Computed on the true ground spacing
    (ellipsoidal for lat/lon DEMs); COG overviews use nearest resampling.
    """
    from .common import run_product_command

    run_product_command("aspect", dict(flat_value=flat_value), **shared)
