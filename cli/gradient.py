"""terrain gradient DEM -o OUT.tif"""

from __future__ import annotations

import click

from . import options as o


@click.command("gradient", short_help="Two-band GeoTIFF: dz/dx (east) and dz/dy (north).")
@o.dem_argument()
@o.output_option()
@o.gradient_options()
@o.input_options
@o.geotiff_options
@o.run_options
@o.verbosity_options
def command(dem, output, method, edge_order, z_factor, band, src_crs, overwrite,
            creation_options, cog, threads, tile_size, scheduler):
    """Gradient of DEM into a two-band float32 GeoTIFF.

    Band 1 dzdx: rise per metre towards east; band 2 dzdy: rise per metre
    towards north (metres per metre of true ground distance, whatever the
    raster's orientation; lat/lon DEMs use the ellipsoid's spacing).
    """
    from .common import build_options, run_product_command

    opts = build_options(method=method, edge_order=edge_order, z_factor=z_factor)
    run_product_command("gradient", dem, output, opts, band=band, src_crs=src_crs,
                        creation_options=creation_options, cog=cog, overwrite=overwrite,
                        threads=threads, tile_size=tile_size,
                        scheduler=scheduler)
