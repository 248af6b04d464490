"""terrain hillshade DEM -o OUT.tif"""

from __future__ import annotations

import click

from . import options as o


@click.command("hillshade", short_help="Hillshade GeoTIFF (bytes 1-255, gdaldem's formula).")
@o.dem_argument()
@o.output_option()
@o.hillshade_options
@o.gradient_options(method_default="horn")
@o.input_options
@o.geotiff_options
@o.plot_option
@o.dpi_option
@o.run_options
@o.verbosity_options
def command(dem, output, azimuth, altitude, multidirectional, method, edge_order, z_factor,
            band, src_crs, overwrite, creation_options, cog, plot, dpi, threads, tile_size, scheduler):
    """Hillshade of DEM into a Byte GeoTIFF, with gdaldem's formula.

    1 (no light) to 255 (facing the light), 0 = nodata; the light comes from
    --azimuth degrees clockwise from north, --altitude degrees above the
    horizon. The gradient is the true ground gradient (Horn by default).
    """
    from .common import build_options, run_product_command

    opts = build_options(method=method, edge_order=edge_order, z_factor=z_factor,
                         azimuth=azimuth, altitude=altitude, multidirectional=multidirectional)
    run_product_command("hillshade", dem, output, opts, plot=plot, dpi=dpi, band=band,
                        src_crs=src_crs, creation_options=creation_options, cog=cog,
                        overwrite=overwrite, threads=threads, tile_size=tile_size,
                        scheduler=scheduler)
