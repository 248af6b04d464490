"""``terrain plot DEM -o MAP.png``: owns the map command, for a DEM or a product GeoTIFF
written by terrain (then drawn as it is)."""

from __future__ import annotations

import click

from terrain import registry

from . import options as o

MAPPED = tuple(p for p in o.PLOT_PRODUCTS if p in registry.PRODUCTS)


@click.command("plot", short_help="Map of slope, aspect, hillshade or elevation (PNG/PDF/SVG).")
@o.dem_argument()
@o.output_option(map_file=True)
@click.option("--product", type=click.Choice(o.PLOT_PRODUCTS), default=None,
              help="What to map.  [default: slope; for a terrain product GeoTIFF, its product]")
@o.product_parameter_options(*MAPPED)
@o.gradient_options(method_default=None,
                    method_note="[default: the product's own: central; horn for hillshade]")
@o.input_options
@o.overwrite_option
@o.dpi_option
@o.verbosity_options
def command(dem, output, product, method, edge_order, z_factor, geometry, band, src_crs,
            overwrite, dpi, **settings):
    """Draw a map of DEM with matplotlib.

    Slope (in --units) with a sequential colormap over a hillshade, aspect with
    a cyclic colormap and a compass legend (flat cells apart), hillshade or
    elevation; axes in map units (lon/lat degrees for geographic DEMs). A DEM
    larger than the picture is computed at full resolution, then drawn averaged.

    \b
    A slope, aspect or hillshade GeoTIFF written by terrain (its tags say so) is
    drawn as it is, not treated as a DEM: `terrain plot out_slope.tif -o map.png`
    reads its overviews if it has some, otherwise it reads the file window by
    window at display resolution (averages; nearest for aspect), in its units.
    """
    from terrain.plot import plot_dem, plot_product_file

    from .common import build_options, map_warnings, status

    kind = _terrain_product(dem)
    if kind is not None and product not in (None, kind):
        raise click.UsageError(f"{dem} is a terrain {kind} GeoTIFF: it maps as {kind} "
                               "(drop --product, or give the DEM)")
    with map_warnings():
        if kind is not None:
            plot_product_file(dem, output, product=kind, src_crs=src_crs, dpi=dpi,
                              overwrite=overwrite, method=method)
        else:
            product = product or registry.DEFAULT_MAP
            if method is None:
                method = registry.PRODUCTS[product].default_method if product in MAPPED \
                    else registry.DEFAULT_METHOD
            opts = build_options(method=method, edge_order=edge_order, z_factor=z_factor,
                                 geometry=geometry, **settings)
            plot_dem(dem, output, product=product, opts=opts, band=band, src_crs=src_crs,
                     dpi=dpi, overwrite=overwrite)
    status(f"wrote {output}")


def _terrain_product(path) -> str | None:
    """The product of a one-band product GeoTIFF terrain wrote (one with a map), else None."""
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(path) as ds:
            if ds.count != 1 or ds.tags().get("software") != "terrain":
                return None
            kind = ds.descriptions[0]
    except (RasterioError, OSError):
        return None  # not readable: plot_dem says why, in the usual words
    return kind if kind in MAPPED else None
