"""Options shared by the terrain commands, each defined once as a decorator.

Only click is imported here: the library is imported inside the callbacks that
need it, when the option is actually given.
"""

from __future__ import annotations

import math
import os
import warnings

import click

# Mirrors terrain.engine.METHODS / terrain.kernels.SLOPE_UNITS / terrain.spacing.GEOMETRIES (kept light: `--help` need
# not import numpy and the kernels); tests/test_cli.py checks they stay equal.
METHODS = ("central", "horn", "zevenbergen-thorne")
SLOPE_UNITS = ("degrees", "percent", "radians", "ratio")
GEOMETRIES = ("geodesic", "planar")
PLOT_PRODUCTS = ("slope", "aspect", "hillshade", "elevation")
PLOT_SUFFIXES = (".png", ".pdf", ".svg")
# Picture names refused for a GeoTIFF -o (a likely mix-up with --plot).
MAP_SUFFIXES = PLOT_SUFFIXES + (".jpg", ".jpeg", ".gif", ".bmp", ".webp")
DEFAULT_TILE_SIZE = 1024


def _compose(*decorators):
    def apply(f):
        for d in reversed(decorators):
            f = d(f)
        return f
    return apply


# --- verbosity (on the group, and accepted after a command too) ---------------------

def _state(ctx: click.Context) -> dict:
    ctx.ensure_object(dict)
    ctx.obj.setdefault("verbose", 0)
    ctx.obj.setdefault("quiet", False)
    return ctx.obj


def _set_verbose(ctx, param, value):
    if value:
        state = _state(ctx)
        state["verbose"] += value
        if state.get("warnings_guarded"):  # -v after the command: inside catch_warnings()
            warnings.simplefilter("default")
    return value


def _set_quiet(ctx, param, value):
    if value:
        _state(ctx)["quiet"] = True
    return value


verbose_option = click.option(
    "-v", "--verbose", count=True, expose_value=False, callback=_set_verbose,
    help="More messages; show the Python traceback of an error.")
quiet_option = click.option(
    "-q", "--quiet", is_flag=True, expose_value=False, callback=_set_quiet,
    help="No progress bar and no status messages (warnings and errors still show).")
verbosity_options = _compose(verbose_option, quiet_option)


# --- input ------------------------------------------------------------------------

def _remember_inputs(ctx, param, value):
    # Kept for the error line of an unexpected failure (cli.main names the input).
    _state(ctx)["inputs"] = (value,) if isinstance(value, str) else tuple(value or ())
    return value


def dem_argument(nargs: int = 1):
    return click.argument("dem", metavar="DEM..." if nargs != 1 else "DEM", nargs=nargs,
                          required=True, type=click.Path(path_type=str),
                          callback=_remember_inputs)


band_option = click.option(
    "--band", type=click.IntRange(min=1), default=1, show_default=True,
    help="Elevation band of the DEM (1-based).")


def _check_crs(ctx, param, value):
    if value is None:
        return None
    import rasterio

    from terrain import TerrainError
    from terrain.raster import parse_crs

    try:
        with rasterio.Env():  # GDAL's own message goes to logging, not straight to stderr
            parse_crs(value)
    except TerrainError as exc:
        raise click.BadParameter(str(exc).split(": ", 1)[-1]) from None
    return value


src_crs_option = click.option(
    "--src-crs", metavar="CRS", callback=_check_crs,
    help="CRS to use for a DEM whose file has none (or overriding it), "
         "e.g. EPSG:32616, a WKT or a PROJ string.")
input_options = _compose(band_option, src_crs_option)


# --- gradient -----------------------------------------------------------------------

def method_option(default: str | None = "central", note: str = ""):
    return click.option(
        "--method", type=click.Choice(METHODS), default=default,
        show_default=default is not None,
        help="Gradient stencil: central (numpy.gradient's), horn (gdaldem's / ArcGIS's 3x3) "
             "or zevenbergen-thorne." + (f" {note}" if note else ""))


edge_order_option = click.option(
    "--edge-order", type=click.Choice(["1", "2"]), default="1", show_default=True,
    callback=lambda ctx, param, value: int(value),
    help="Order of the one-sided differences used at edges and next to nodata.")
def _check_z_factor(ctx, param, value):
    if value is None:
        return None
    if not (math.isfinite(value) and value != 0):
        raise click.BadParameter(f"{value} is not a finite, non-zero number")
    return value


z_factor_option = click.option(
    "--z-factor", type=float, default=None, callback=_check_z_factor,
    help="Multiplier turning elevation units into metres (0.3048 for feet). "
         "Default: from the file (band unit or vertical CRS: ft, US survey foot ...), "
         "else 1; `terrain info` shows it.")


geometry_option = click.option(
    "--geometry", type=click.Choice(GEOMETRIES), default="geodesic", show_default=True,
    help="geodesic: derivatives along true east and north on the ground, whatever the "
         "projection (Web Mercator, polar stereographic ...); planar: in the projected CRS's "
         "units and grid north, as gdaldem and ArcGIS do. The same on lat/lon DEMs.")


def gradient_options(method_default: str | None = "central", method_note: str = ""):
    return _compose(method_option(method_default, method_note), edge_order_option,
                    z_factor_option, geometry_option)


units_option = click.option(
    "--units", type=click.Choice(SLOPE_UNITS), default="degrees", show_default=True,
    help="Slope units: degrees, percent (100 x rise/run), radians or ratio (rise/run).")
flat_value_option = click.option(
    "--flat-value", type=float, default=-1.0, show_default=True,
    help="Aspect written on flat cells (no downslope direction); distinct from nodata.")
azimuth_option = click.option(
    "--azimuth", type=float, default=315.0, show_default=True,
    help="Direction the light comes from, degrees clockwise from the map's up (grid north).")
altitude_option = click.option(
    "--altitude", type=click.FloatRange(0, 90), default=45.0, show_default=True,
    help="Height of the light above the horizon, degrees.")
multidirectional_option = click.option(
    "--multidirectional", is_flag=True,
    help="Blend gdaldem's four lights (225, 270, 315, 360 degrees) instead of one.")
hillshade_options = _compose(azimuth_option, altitude_option, multidirectional_option)


# --- outputs ------------------------------------------------------------------------

def _check_geotiff_path(ctx, param, value):
    if value is not None and os.path.splitext(value)[1].lower() in MAP_SUFFIXES:
        raise click.BadParameter(
            f"{value!r}: -o writes a GeoTIFF; for a picture use --plot {value} "
            "(or `terrain plot`) and give -o a .tif name")
    return value


def _check_map_path(ctx, param, value):
    if value is not None and os.path.splitext(value)[1].lower() not in PLOT_SUFFIXES:
        raise click.BadParameter(
            f"{value!r}: the map's format comes from its extension; use one of "
            f"{', '.join(PLOT_SUFFIXES)}")
    return value


def output_option(map_file: bool = False, required: bool = True):
    """-o/--output: a GeoTIFF, or for `terrain plot` a map."""
    if map_file:
        return click.option("-o", "--output", required=True, metavar="MAP.png",
                            type=click.Path(dir_okay=False, path_type=str),
                            callback=_check_map_path,
                            help="Output map: PNG, PDF or SVG by extension. "
                                 "Missing folders are created.")
    return click.option("-o", "--output", required=required, metavar="OUT.tif",
                        type=click.Path(dir_okay=False, path_type=str),
                        callback=_check_geotiff_path,
                        help="Output GeoTIFF. Missing folders are created.")


overwrite_option = click.option(
    "--overwrite", is_flag=True,
    help="Replace existing outputs (the input is never overwritten).")


def _parse_co(ctx, param, value):
    if not value:
        return {}
    from terrain import TerrainError
    from terrain.writer import parse_creation_options

    try:
        return parse_creation_options(value)
    except TerrainError as exc:
        raise click.BadParameter(str(exc)) from None


co_option = click.option(
    "--co", "creation_options", metavar="NAME=VALUE", multiple=True, callback=_parse_co,
    help="GDAL GeoTIFF creation option, repeatable; overrides the defaults "
         "(TILED=YES, 512x512 blocks, COMPRESS=ZSTD, PREDICTOR=3, BIGTIFF=IF_SAFER), "
         "e.g. --co COMPRESS=DEFLATE.")
cog_option = click.option(
    "--cog", is_flag=True,
    help="Write Cloud Optimized GeoTIFFs with overviews (nearest for aspect, average otherwise).")
geotiff_options = _compose(overwrite_option, co_option, cog_option)


plot_option = click.option(
    "--plot", metavar="MAP.png", type=click.Path(dir_okay=False, path_type=str),
    callback=_check_map_path,
    help="Also draw a map of the result (PNG, PDF or SVG by extension).")
dpi_option = click.option(
    "--dpi", type=click.IntRange(min=10, max=2400), default=150, show_default=True,
    help="Resolution of PNG maps.")


# --- execution ----------------------------------------------------------------------

threads_option = click.option(
    "--threads", type=click.IntRange(min=1), default=None, metavar="N",
    help="Worker threads (default: all cores).")
tile_size_option = click.option(
    "--tile-size", type=click.IntRange(min=16), default=DEFAULT_TILE_SIZE, show_default=True,
    metavar="N", help="Pixels per side of the windows processed at once; "
                      "bounds memory, never changes the results.")
scheduler_option = click.option(
    "--scheduler", metavar="ADDRESS", default=None,
    help="Compute on a dask.distributed cluster (e.g. tcp://host:8786); the workers must "
         "see the DEM at the same path. Outputs are written here.")
run_options = _compose(threads_option, tile_size_option, scheduler_option)


# --- tile sets (several inputs) -----------------------------------------------------

independent_option = click.option(
    "--independent", is_flag=True,
    help="Process each input file on its own, borders from one side only (no mosaic of "
         "adjacent tiles); a VRT is then one input, not its tiles.")
jobs_option = click.option(
    "--jobs", type=click.IntRange(min=1), default=1, show_default=True, metavar="N",
    help="Input files (tiles) processed at once, each on --threads threads.")
tile_set_options = _compose(independent_option, jobs_option)


def out_dir_option(required: bool = True):
    """-d/--out-dir: the folder of per-input outputs named DIR/<stem>_<product>.tif."""
    return click.option("-d", "--out-dir", required=required, metavar="DIR",
                        type=click.Path(file_okay=False, path_type=str),
                        help="Folder for the outputs (created if missing)."
                             + ("" if required else " With several DEMs or tiles, instead "
                                "of -o: DIR/<stem>_<product>.tif for each."))


def product_options(*specific, method_default: str = "central", maps: bool = True):
    """Everything a single-product command takes (``terrain slope|aspect|...``):
    the DEM (one with -o; several, or tiles, with -d), -o / -d, the product's own
    ``specific`` options, the gradient, input, GeoTIFF and run options, --plot/--dpi
    when the product has a map, and --independent / --jobs for several inputs."""
    return _compose(dem_argument(nargs=-1), output_option(required=False),
                    out_dir_option(required=False), *specific,
                    gradient_options(method_default=method_default), input_options,
                    geotiff_options, *((plot_option, dpi_option) if maps else ()), run_options,
                    tile_set_options, verbosity_options)


# --- slope analysis (classify, stats, report) ----------------------------------------

zones_option = click.option(
    "--zones", metavar="FILE", type=click.Path(path_type=str),
    help="Zone polygons (GeoPackage, Shapefile, GeoJSON, FlatGeobuf ...; reprojected to the "
         "DEM's CRS, partial cells weighted by coverage) or a zone raster on the DEM's grid. "
         "Default: the whole DEM as one zone 'all'.")
zone_field_option = click.option(
    "--zone-field", metavar="NAME",
    help="Field of the polygons naming the zones (features sharing a value form one zone). "
         "Default: the feature number.")
zone_options = _compose(zones_option, zone_field_option)


def analysis_options(*middle):
    """The gradient, input and overwrite options of the analysis commands, ``middle``
    (their own), then threads, tile size and verbosity."""
    return _compose(gradient_options(), input_options, overwrite_option, *middle,
                    threads_option, tile_size_option, verbosity_options)


def suffix_output_option(suffixes, metavar: str, help: str, refusal: str):
    """-o/--output for a file whose format its extension decides (a table, a report):
    any other extension is a usage error saying ``refusal``."""

    def check(ctx, param, value):
        if value is not None and os.path.splitext(value)[1].lower() not in suffixes:
            raise click.BadParameter(f"{value!r}: {refusal}")
        return value

    return click.option("-o", "--output", required=True, metavar=metavar,
                        type=click.Path(dir_okay=False, path_type=str), callback=check,
                        help=help)

