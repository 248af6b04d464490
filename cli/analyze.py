"""``terrain analyze DEM... -d DIR``: owns the batch command: the chosen products and their
maps per DEM, from one read pass each, a failing DEM reported and skipped."""

from __future__ import annotations

import os

import click

from terrain import registry

from . import options as o

# Every product with a command can be written; each chosen product with a map
# (but the hillshade, which is every map's backdrop) gets one.
CHOICES = tuple(n for n, p in registry.PRODUCTS.items() if p.command)


def maps_of(products) -> tuple:
    """The maps analyze draws for ``products``."""
    return tuple(p for p in products
                 if registry.PRODUCTS[p].style is not None and p != registry.BACKDROP)


def targets(dem: str, out_dir: str, products=registry.ANALYZE_FILES) -> tuple[dict, dict]:
    """({kind: tif}, {product: map}) for one input: DIR/<stem>_<kind>.tif / .png."""
    from terrain.raster import dataset_stem

    stem = dataset_stem(dem)
    tifs = {k: os.path.join(out_dir, f"{stem}_{k}.tif") for k in products}
    maps = {k: os.path.join(out_dir, f"{stem}_{k}.png") for k in maps_of(products)}
    return tifs, maps


def _parse_products(ctx, param, value):
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in CHOICES]
    if unknown or not names:
        raise click.BadParameter(f"{value!r}: choose from {', '.join(CHOICES)} "
                                 "(comma-separated)")
    return tuple(dict.fromkeys(names))


@click.command("analyze", short_help="Every product and the slope and aspect maps, per DEM.")
@o.dem_argument(nargs=-1)
@click.option("-d", "--out-dir", required=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=str),
              help="Folder for the outputs (created if missing).")
@click.option("--products", "products", metavar="LIST", callback=_parse_products,
              default=",".join(registry.ANALYZE_FILES), show_default=True,
              help=f"Comma-separated products to write, of: {', '.join(CHOICES)}.")
@o.product_parameter_options(*CHOICES)
@o.gradient_options(method_default=None,
                    method_note="[default: each product's own: central; horn for the "
                                "hillshade]")
@o.read_options
@o.write_options
@o.dpi_option
@click.option("--no-maps", is_flag=True,
              help="GeoTIFFs only: skip the slope and aspect maps (faster for batches).")
@o.run_options_typed
@o.tile_set_options
@o.verbosity_options
def command(dem, out_dir, products, method, edge_order, z_factor, geometry, read, write, dpi,
            no_maps, run, independent, jobs, **settings):
    """Slope, aspect, gradient and hillshade GeoTIFFs and slope and aspect maps
    for each DEM, from one read pass per file.

    \b
    Writes DIR/<stem>_slope.tif, _aspect.tif, _gradient.tif (dzdx, dzdy),
    _hillshade.tif, _slope.png and _aspect.png. Units and conventions are those
    of the single-product commands (see `terrain slope --help` ...): without
    --method, the hillshade is Horn's like `terrain hillshade`'s. A DEM that
    fails is reported in one line and skipped; the exit status is 1 if any did.

    \b
    DEM... may be files, globs, folders, text files listing one path per line
    and VRTs (their tiles). Tiles sharing CRS and pixel grid are one surface:
    each tile is computed with its halo read from its neighbours and gets its own
    outputs, seamless (equal to the whole mosaic's on its cells); gaps and missing
    neighbours are nodata; tiles on another grid are processed on their own, with
    a warning. --independent processes every file on its own.
    """
    from .common import tile_inputs

    with tile_inputs(dem, independent=independent, read=read) as (dems, plan):
        _run(dems, plan, out_dir, products, method, edge_order, z_factor, geometry, read, write,
             dpi, no_maps, run, jobs, settings)


def _run(dems, plan, out_dir, products, method, edge_order, z_factor, geometry, read, write,
         dpi, no_maps, run, jobs, settings):
    from .common import _threads, build_options, run_inputs

    stems = {}
    from terrain.raster import dataset_stem

    for path in dems:
        stem = dataset_stem(path)
        if stem in stems:
            raise click.UsageError(
                f"{stems[stem]} and {path} would write the same outputs "
                f"(DIR/{stem}_*); run them into different folders")
        stems[stem] = path
    opts = build_options(method=method or registry.DEFAULT_METHOD, edge_order=edge_order,
                         z_factor=z_factor, geometry=geometry, **settings)
    # Each product's own default method (the hillshade's is Horn's, as everywhere);
    # an explicit --method applies to every product.
    explicit_method = method is not None
    several = len(dems) > 1

    def outputs_of(path):
        tifs, maps = targets(path, out_dir, products)
        return [*tifs.values(), *(maps.values() if not no_maps else ())]

    def work(path, event):
        return _analyze_one(path, out_dir, opts, several, read=read, write=write, run=run,
                            dpi=dpi, draw_maps=not no_maps, explicit_method=explicit_method,
                            products=products, tile=plan.job(path), stop_event=event)

    # A failing DEM is reported and skipped; Ctrl-C stops the run (all or nothing per DEM).
    run_inputs(dems, work, outputs_of, jobs=jobs if several else 1, several=several,
               plan=plan, threads=_threads(run), bar_label="analyze")


def _analyze_one(path, out_dir, opts, several, *, read, write, run, dpi, draw_maps=True,
                 explicit_method=False, products=registry.ANALYZE_FILES, tile=None,
                 stop_event=None) -> list:
    """All products and maps of one DEM; the files written.

    The maps are drawn from display rasters accumulated during the one streaming
    pass (no product is read back); their backdrop is the hillshade GeoTIFF's
    own values, averaged.
    """
    import dataclasses

    from terrain.raster import described

    from .common import compute_to_files, draw_display_maps, map_display, warn

    # The DEM is validated once, here (a tile of a set: when the set was planned), and
    # passed down opened.
    info = tile[1].info if tile else described(path, read)
    tifs, maps = targets(path, out_dir, products)
    if not draw_maps:
        maps = {}
    # Products whose own default method differs (the hillshade GeoTIFF and the maps'
    # backdrop: Horn's), unless --method was given.
    product_opts = None
    if not explicit_method:
        arrays = {a for p in tifs for a in registry.PRODUCTS[p].arrays}
        if maps:
            arrays.add(registry.BACKDROP)
        product_opts = {
            a: dataclasses.replace(opts, method=registry.PRODUCTS[a].default_method)
            for a in sorted(arrays) if registry.PRODUCTS[a].default_method != opts.method}
    display = None
    if maps:
        display = map_display(info, list(maps), dpi=dpi)
    result = compute_to_files(info, tifs, opts, write=write, run=run, maps=list(maps.values()),
                              bar=False if several else None, display=display,
                              product_opts=product_opts, tile=tile, stop_event=stop_event)
    written = list(tifs.values())
    if not result["valid"]:
        warn(f"{path}: no map drawn, there is nothing to show")
        return written
    if maps:
        draw_display_maps(display, maps, info=info, opts=opts, dpi=dpi, overwrite=write.overwrite)
        written.extend(maps.values())
    return written
