"""terrain aspect DEM -o OUT.tif"""

from __future__ import annotations

import click

from . import options as o


@click.command("aspect", short_help="Aspect GeoTIFF (downslope azimuth, degrees from north).")
@o.dem_argument()
@o.output_option()
@o.flat_value_option
@o.gradient_options()
@o.input_options
@o.geotiff_options
@o.plot_option
@o.dpi_option
@o.run_options
@o.verbosity_options
def command(dem, output, flat_value, method, edge_order, z_factor, band, src_crs, overwrite,
            creation_options, cog, plot, dpi, threads, tile_size, scheduler):
    """Aspect of DEM into a float32 GeoTIFF: the compass direction the slope faces.

    Degrees in [0, 360), clockwise from north, of the downslope direction
    (0 = faces north, 90 = faces east). Flat cells get --flat-value (-1);
    nodata cells stay nodata (-9999). Computed on the true ground spacing
    (ellipsoidal for lat/lon DEMs); COG overviews use nearest resampling.
    """
    from .common import build_options, run_product_command

    opts = build_options(method=method, edge_order=edge_order, z_factor=z_factor,
                         flat_value=flat_value)
    run_product_command("aspect", dem, output, opts, plot=plot, dpi=dpi, band=band,
                        src_crs=src_crs, creation_options=creation_options, cog=cog,
                        overwrite=overwrite, threads=threads, tile_size=tile_size,
                        scheduler=scheduler)
