"""terrain plot DEM -o OUT.png"""

from __future__ import annotations

import click

from . import options as o


@click.command("plot", short_help="Map of slope, aspect, hillshade or elevation (PNG/PDF/SVG).")
@o.dem_argument()
@o.output_option(map_file=True)
@click.option("--product", type=click.Choice(o.PLOT_PRODUCTS), default="slope",
              show_default=True, help="What to map.")
@o.units_option
@o.flat_value_option
@o.hillshade_options
@o.gradient_options(method_default=None, method_note="[default: central; horn for hillshade]")
@o.input_options
@o.overwrite_option
@o.dpi_option
@o.verbosity_options
def command(dem, output, product, units, flat_value, azimuth, altitude, multidirectional,
            method, edge_order, z_factor, band, src_crs, overwrite, dpi):
    """Draw a map of DEM with matplotlib.

    Slope (in --units) with a sequential colormap over a hillshade, aspect with
    a cyclic colormap and a compass legend (flat cells apart), hillshade or
    elevation; axes in map units (lon/lat degrees for geographic DEMs). A DEM
    larger than the picture is computed at full resolution, then drawn averaged.
    """
    from terrain.plot import plot_dem

    from .common import build_options, status

    if method is None:
        from terrain.engine import HILLSHADE_METHOD

        method = HILLSHADE_METHOD if product == "hillshade" else "central"
    opts = build_options(method=method, edge_order=edge_order, z_factor=z_factor, units=units,
                         flat_value=flat_value, azimuth=azimuth, altitude=altitude,
                         multidirectional=multidirectional)
    plot_dem(dem, output, product=product, opts=opts, band=band, src_crs=src_crs, dpi=dpi,
             overwrite=overwrite)
    status(f"wrote {output}")
