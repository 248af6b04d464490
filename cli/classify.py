"""``terrain classify DEM -o CLASSES.tif``: owns the slope-class command (a scheme or
--breaks in any unit; a class GeoTIFF with colours and names, and its map)."""

from __future__ import annotations

import click

from . import options as o

SCHEME_NAMES = ("usda", "fao", "soter", "nz-luc", "planning")  # terrain.classify.SCHEMES


def _check_breaks(ctx, param, value):
    if value is None:
        return None
    from terrain import TerrainError
    from terrain.classify import parse_breaks

    try:
        return parse_breaks(value)
    except TerrainError as exc:
        raise click.BadParameter(str(exc)) from None


def class_options(f):
    """--scheme / --breaks / --break-units, shared by classify, stats and report."""
    f = click.option("--units", "break_units", type=click.Choice(["degrees", "percent"]),
                     default="degrees", show_default=True,
                     help="Unit of --breaks (a --scheme has its own).")(f)
    f = click.option("--breaks", metavar="0,5,15,30", callback=_check_breaks,
                     help="Class breaks, comma-separated, starting at 0 (inf allowed last); "
                          "classes are [lo, hi), the last closed, and one open-ended class is "
                          "added above a finite last break.")(f)
    f = click.option("--scheme", type=click.Choice(SCHEME_NAMES), default=None,
                     help="Named slope classes: usda, fao, soter (percent), nz-luc (degrees), "
                          "planning (0-5-15-30 %, the default).")(f)
    return f


def resolve(scheme, breaks, break_units):
    if scheme and breaks:
        raise click.UsageError("give either --scheme or --breaks, not both")
    from terrain.classify import resolve_classes
    from terrain import TerrainError

    try:
        return resolve_classes(breaks=breaks, scheme=scheme, units=break_units)
    except TerrainError as exc:
        raise click.UsageError(str(exc)) from None


@click.command("classify", short_help="Slope class GeoTIFF (uint8 codes, colours, names).")
@o.dem_argument()
@o.output_option()
@class_options
@o.analysis_options(o.co_option, o.plot_option, o.dpi_option)
@o.collected("write", ("overwrite", "creation_options"), "terrain.writer:WriteOptions")
def command(dem, output, scheme, breaks, break_units, method, edge_order, z_factor, geometry,
            read, write, plot, dpi, run):
    """Slope classes of DEM into a uint8 GeoTIFF: codes 1..K, 0 = nodata.

    The breaks are in the scheme's own unit (percent or degrees) whatever unit the
    slope is computed in. The file has a colour table, the class names as GDAL
    category names and a raster attribute table (in OUT.tif.aux.xml, read by GDAL,
    QGIS and ArcGIS), and the breaks in its tags. --plot draws the class map with
    each class's share of the true ground area.
    """
    from . import state
    from .common import build_options, status, warn
    from terrain.classify import classify_file

    resolve(scheme, breaks, break_units)  # usage errors (exit 2) before any work
    opts = build_options(method=method, edge_order=edge_order, z_factor=z_factor, geometry=geometry)
    result = classify_file(dem, output, breaks=breaks, scheme=scheme, units=break_units,
                           opts=opts, read=read, write=write, run=run, plot=plot, dpi=dpi,
                           stop_event=state.get().stop_event)
    status(f"wrote {output}")
    if result["valid_m2"] == 0:
        warn(f"{dem}: no valid elevation; the classes are all nodata")
    elif plot:
        status(f"wrote {plot}")
