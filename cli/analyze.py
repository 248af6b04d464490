"""``terrain analyze DEM... -d DIR``: owns the batch command: the chosen products and their
maps per DEM, from one read pass each, a failing DEM reported and skipped."""

from __future__ import annotations

import os
import sys

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
@o.verbosity_options
def command(dem, out_dir, products, method, edge_order, z_factor, geometry, read, write, dpi,
            no_maps, run, **settings):
    """Slope, aspect, gradient and hillshade GeoTIFFs and slope and aspect maps
    for each DEM, from one read pass per file.

    \b
    Writes DIR/<stem>_slope.tif, _aspect.tif, _gradient.tif (dzdx, dzdy),
    _hillshade.tif, _slope.png and _aspect.png. Units and conventions are those
    of the single-product commands (see `terrain slope --help` ...): without
    --method, the hillshade is Horn's like `terrain hillshade`'s. A DEM that
    fails is reported in one line and skipped; the exit status is 1 if any did.
    """
    from . import state
    from .common import build_options, describe_error, status, want_file_bar

    dems = list(dem)
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
    quiet = state.get().quiet

    from tqdm import tqdm

    from terrain.errors import Interrupted

    failed, done = [], []
    several = len(dems) > 1
    before = {}
    try:
        with tqdm(dems, desc="analyze", unit="file", file=sys.stderr,
                  disable=not want_file_bar(len(dems), quiet=quiet), dynamic_ncols=True,
                  leave=False) as files:
            for path in files:
                tifs, maps = targets(path, out_dir, products)
                before = {p: _identity(p) for p in [*tifs.values(), *maps.values()]}
                try:
                    written = _analyze_one(path, out_dir, opts, several, read=read,
                                           write=write, run=run, dpi=dpi,
                                           draw_maps=not no_maps,
                                           explicit_method=explicit_method,
                                           products=products)
                except (KeyboardInterrupt, Interrupted):
                    raise  # the whole run stops, not just this file
                except Exception as exc:  # noqa: BLE001 - one bad file never stops the rest
                    if state.get().signalled:
                        # Whatever unwinds after a signal is the interruption itself.
                        raise KeyboardInterrupt from None
                    if not several:
                        raise
                    failed.append(path)
                    _log_error(exc, describe_error(exc, path))
                    continue
                done.append(path)
                before = {}  # finished: a signal from here on must not delete its outputs
                status(f"{path}: wrote {_brief(written)}")
    except (KeyboardInterrupt, Interrupted):
        # All or nothing per DEM: what the interrupted DEM had already written goes too.
        for p, was in before.items():
            if was is None and _identity(p) is not None:
                try:
                    os.unlink(p)
                except OSError:
                    pass
        if not done:
            raise
        click.echo(f"terrain: interrupted; finished before it, with complete outputs: "
                   f"{', '.join(done)}; nothing else written", err=True)
        raise click.exceptions.Exit(130) from None
    if failed:
        click.echo(f"terrain: {len(failed)} of {len(dems)} DEMs failed: {', '.join(failed)}",
                   err=True)
        raise click.exceptions.Exit(1)


def _identity(path):
    """(inode, mtime) of an existing file, None if there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _analyze_one(path, out_dir, opts, several, *, read, write, run, dpi, draw_maps=True,
                 explicit_method=False, products=registry.ANALYZE_FILES) -> list:
    """All products and maps of one DEM; the files written.

    The maps are drawn from display rasters accumulated during the one streaming
    pass (no product is read back); their backdrop is the hillshade GeoTIFF's
    own values, averaged.
    """
    import dataclasses

    from terrain.raster import raster_info

    from .common import compute_to_files, draw_display_map, map_display, warn

    # The DEM is validated once, here, and passed down opened.
    info = raster_info(path, band=read.band, src_crs=read.src_crs)
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
                              product_opts=product_opts)
    written = list(tifs.values())
    if not result["valid"]:
        warn(f"{path}: no map drawn, there is nothing to show")
        return written
    for product, out_map in maps.items():
        draw_display_map(display, out_map, product=product, info=info, opts=opts, dpi=dpi,
                         overwrite=write.overwrite)
        written.append(out_map)
    return written


def _brief(paths) -> str:
    """out/dem_slope.tif, out/dem_aspect.tif ... as out/dem_{slope,aspect}.tif ..."""
    groups = {}
    for p in paths:
        folder, name = os.path.split(p)
        stem, kind = os.path.splitext(name)[0].rsplit("_", 1)
        groups.setdefault((folder, stem, os.path.splitext(name)[1]), []).append(kind)
    return " and ".join(f"{os.path.join(folder, stem)}_{{{','.join(kinds)}}}{ext}"
                        for (folder, stem, ext), kinds in groups.items())


def _log_error(exc, message):
    from tqdm import tqdm

    from . import state

    if state.get().verbose:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    tqdm.write(f"terrain: error: {message}", file=sys.stderr)
