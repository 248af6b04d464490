"""terrain slope DEM -o OUT.tif"""

from __future__ import annotations

import click

from . import options as o


@click.command("slope", short_help="Slope GeoTIFF (degrees by default).")
@o.dem_argument()
@o.output_option()
@o.units_option
@o.gradient_options()
@o.input_options
@o.geotiff_options
@o.plot_option
@o.dpi_option
@o.run_options
@o.verbosity_options
def command(dem, output, units, method, edge_order, z_factor, band, src_crs, overwrite,
            creation_options, cog, plot, dpi, threads, tile_size, scheduler):
    """Slope of DEM into a float32 GeoTIFF: the angle of steepest ascent.

    Degrees from 0 (flat) to 90 by default; --units percent is 100 x rise/run,
    ratio is rise/run, both in metres per metre of true ground distance (lat/lon
    DEMs use the ellipsoid's spacing). Nodata cells stay nodata (-9999).
    """
    from .common import build_options, run_product_command

    opts = build_options(method=method, edge_order=edge_order, z_factor=z_factor, units=units)
    run_product_command("slope", dem, output, opts, plot=plot, dpi=dpi, band=band,
                        src_crs=src_crs, creation_options=creation_options, cog=cog,
                        overwrite=overwrite, threads=threads, tile_size=tile_size,
                        scheduler=scheduler)
