"""Options shared by the terrain commands, each defined once as a decorator.

Only click and the light registry (:mod:`terrain.registry`: method and product
names, each product's own options) are imported here: the library is imported
inside the callbacks that need it, when the option is actually given.
"""

from __future__ import annotations

import functools
import importlib
import math
import os
import warnings

import click

from terrain import registry

from . import state

METHODS = tuple(registry.METHODS)
SLOPE_UNITS = registry.SLOPE_UNITS
# Mirrors terrain.spacing.GEOMETRIES (kept light: `--help` need not import numpy and
# pyproj); tests/test_cli.py checks they stay equal.
GEOMETRIES = ("geodesic", "planar")
PLOT_PRODUCTS = tuple(n for n, p in registry.PRODUCTS.items() if p.style) + ("elevation",)
PLOT_SUFFIXES = (".png", ".pdf", ".svg")
# Picture names refused for a GeoTIFF -o (a likely mix-up with --plot).
MAP_SUFFIXES = PLOT_SUFFIXES + (".jpg", ".jpeg", ".gif", ".bmp", ".webp")
DEFAULT_TILE_SIZE = 1024


def collected(name: str, fields: tuple, factory: str):
    """A decorator handing the options ``fields`` to the command as one typed object
    ``name`` (``factory``: "module:Class", imported when the command runs)."""

    def decorate(f):
        @functools.wraps(f)
        def command(*args, **kwargs):
            module, cls = factory.split(":")
            values = {k: kwargs.pop(k) for k in fields}
            kwargs[name] = getattr(importlib.import_module(module), cls)(**values)
            return f(*args, **kwargs)

        return command

    return decorate


def _compose(*decorators):
    def apply(f):
        for d in reversed(decorators):
            f = d(f)
        return f
    return apply


# --- verbosity (on the group, and accepted after a command too) ---------------------

def _set_verbose(ctx, param, value):
    if value:
        run = state.get(ctx)
        run.verbose += value
        if run.warnings_guarded:  # -v after the command: inside catch_warnings()
            warnings.simplefilter("default")
    return value


def _set_quiet(ctx, param, value):
    if value:
        state.get(ctx).quiet = True
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
    state.get(ctx).inputs = (value,) if isinstance(value, str) else tuple(value or ())
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

def method_option(default: str | None = registry.DEFAULT_METHOD, note: str = ""):
    methods = "; ".join(f"{m.name}: {m.summary}" for m in registry.METHODS.values())
    return click.option(
        "--method", type=click.Choice(METHODS), default=default,
        show_default=default is not None,
        help=f"Gradient stencil ({methods})." + (f" {note}" if note else ""))


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


def gradient_options(method_default: str | None = registry.DEFAULT_METHOD,
                     method_note: str = ""):
    return _compose(method_option(method_default, method_note), edge_order_option,
                    z_factor_option, geometry_option)


def parameter_option(param: registry.Parameter):
    """The CLI option of a product's own option (declared in terrain.registry)."""
    if param.type is bool:
        return click.option(param.flag, param.field, is_flag=True, default=param.default,
                            help=param.help)
    if param.choices is not None:
        kind = click.Choice(param.choices)
    elif param.minimum is not None or param.maximum is not None:
        kind = click.FloatRange(param.minimum, param.maximum) if param.type is float else \
            click.IntRange(param.minimum, param.maximum)
    else:
        kind = param.type
    return click.option(param.flag, param.field, type=kind, default=param.default,
                        show_default=True, help=param.help)


def product_parameter_options(*products):
    """The own options of ``products``, each option once."""
    params = {}
    for name in products:
        for param in registry.PRODUCTS[name].parameters:
            params.setdefault(param.field, param)
    return _compose(*(parameter_option(p) for p in params.values()))



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
         "(TILED=YES, 512x512 blocks, COMPRESS=ZSTD, PREDICTOR=2, BIGTIFF=IF_SAFER), "
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


# The same options handed to the command as typed objects (terrain.raster.ReadOptions,
# terrain.writer.WriteOptions, terrain.engine.RunOptions) for the streaming commands.
read_options = _compose(collected("read", ("band", "src_crs"), "terrain.raster:ReadOptions"),
                        input_options)
write_options = _compose(collected("write", ("overwrite", "creation_options", "cog"),
                                    "terrain.writer:WriteOptions"), geotiff_options)
run_options_typed = _compose(collected("run", ("threads", "tile_size", "scheduler"),
                                        "terrain.engine:RunOptions"), run_options)


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


def product_options(*specific, method_default: str | None = registry.DEFAULT_METHOD,
                    maps: bool = True):
    """Everything a single-product command takes (``terrain slope|aspect|...``):
    the DEM (one with -o; several, or tiles, with -d), -o / -d, the product's own
    ``specific`` options, the gradient options (only --z-factor with
    ``method_default=None``: a product of the elevations alone), input, GeoTIFF and
    run options, --plot/--dpi when it has a map, and --independent / --jobs for
    several inputs."""
    gradient = gradient_options(method_default=method_default) if method_default else \
        z_factor_option
    return _compose(dem_argument(nargs=-1), output_option(required=False),
                    out_dir_option(required=False), *specific, gradient, read_options,
                    write_options, *((plot_option, dpi_option) if maps else ()),
                    run_options_typed, tile_set_options, verbosity_options)


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
    (their own), then threads, tile size and verbosity; the command gets ``read``
    (ReadOptions) and ``run`` (RunOptions)."""
    return _compose(gradient_options(), read_options, overwrite_option, *middle,
                    collected("run", ("threads", "tile_size"), "terrain.engine:RunOptions"),
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

