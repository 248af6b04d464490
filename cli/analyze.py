"""terrain analyze DEM [DEM ...] -d DIR"""

from __future__ import annotations

import os
import sys

import click

from . import options as o

TIFS = ("slope", "aspect", "gradient", "hillshade")
MAPS = ("slope", "aspect")


def targets(dem: str, out_dir: str) -> tuple[dict, dict]:
    """({kind: tif}, {product: map}) for one input: DIR/<stem>_<kind>.tif / .png."""
    from terrain.raster import dataset_stem

    stem = dataset_stem(dem)
    tifs = {k: os.path.join(out_dir, f"{stem}_{k}.tif") for k in TIFS}
    maps = {k: os.path.join(out_dir, f"{stem}_{k}.png") for k in MAPS}
    return tifs, maps


@click.command("analyze", short_help="Every product and the slope and aspect maps, per DEM.")
@o.dem_argument(nargs=-1)
@click.option("-d", "--out-dir", required=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=str),
              help="Folder for the outputs (created if missing).")
@o.units_option
@o.flat_value_option
@o.hillshade_options
@o.gradient_options(method_default=None,
                    method_note="[default: central; horn for the hillshade]")
@o.input_options
@o.geotiff_options
@o.dpi_option
@click.option("--no-maps", is_flag=True,
              help="GeoTIFFs only: skip the slope and aspect maps (faster for batches).")
@o.run_options
@o.tile_set_options
@o.verbosity_options
def command(dem, out_dir, units, flat_value, azimuth, altitude, multidirectional, method,
            edge_order, z_factor, geometry, band, src_crs, overwrite, creation_options, cog, dpi,
            no_maps, threads, tile_size, scheduler, independent, jobs):
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

    with tile_inputs(dem, independent=independent, band=band, src_crs=src_crs) as (dems, plan):
        _run(dems, plan, out_dir, units, flat_value, azimuth, altitude, multidirectional,
             method, edge_order, z_factor, geometry, band, src_crs, overwrite, creation_options,
             cog, dpi, no_maps, threads, tile_size, scheduler, jobs)


def _run(dems, plan, out_dir, units, flat_value, azimuth, altitude, multidirectional, method,
         edge_order, z_factor, geometry, band, src_crs, overwrite, creation_options, cog, dpi,
         no_maps, threads, tile_size, scheduler, jobs):
    from .common import build_options, describe_error, state, status, want_file_bar

    stems = {}
    from terrain.raster import dataset_stem

    for path in dems:
        stem = dataset_stem(path)
        if stem in stems:
            raise click.UsageError(
                f"{stems[stem]} and {path} would write the same outputs "
                f"(DIR/{stem}_*); run them into different folders")
        stems[stem] = path
    opts = build_options(method=method or "central", edge_order=edge_order, z_factor=z_factor,
                         units=units, flat_value=flat_value, azimuth=azimuth, altitude=altitude,
                         multidirectional=multidirectional, geometry=geometry)
    # One default for hillshades everywhere (terrain.engine.HILLSHADE_METHOD); an
    # explicit --method applies to every product.
    explicit_method = method is not None
    quiet = state()["quiet"]
    if jobs > 1 and len(dems) > 1:
        _run_jobs(dems, plan, out_dir, opts, jobs, band=band, src_crs=src_crs,
                  creation_options=creation_options, cog=cog, overwrite=overwrite,
                  threads=threads, tile_size=tile_size, scheduler=scheduler, dpi=dpi,
                  draw_maps=not no_maps, explicit_method=explicit_method)
        return

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
                tifs, maps = targets(path, out_dir)
                before = {p: _identity(p) for p in [*tifs.values(), *maps.values()]}
                try:
                    written = _analyze_one(path, out_dir, opts, several, band=band,
                                           src_crs=src_crs, creation_options=creation_options,
                                           cog=cog, overwrite=overwrite, threads=threads,
                                           tile_size=tile_size, scheduler=scheduler,
                                           dpi=dpi, draw_maps=not no_maps,
                                           explicit_method=explicit_method,
                                           tile=plan.job(path))
                except (KeyboardInterrupt, Interrupted):
                    raise  # the whole run stops, not just this file
                except Exception as exc:  # noqa: BLE001 - one bad file never stops the rest
                    if state().get("signalled"):
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


def _run_jobs(dems, plan, out_dir, opts, jobs, **kwargs):
    """``--jobs N``: N DEMs (tiles) at once, each on its own stop event."""
    from .common import run_inputs

    def outputs_of(path):
        tifs, maps = targets(path, out_dir)
        return [*tifs.values(), *maps.values()]

    def work(path, event):
        return _analyze_one(path, out_dir, opts, True, tile=plan.job(path), stop_event=event,
                            **kwargs)

    run_inputs(dems, work, outputs_of, jobs=jobs)


def _identity(path):
    """(inode, mtime) of an existing file, None if there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _analyze_one(path, out_dir, opts, several, *, band, src_crs, creation_options, cog,
                 overwrite, threads, tile_size, scheduler, dpi, draw_maps=True,
                 explicit_method=False, tile=None, stop_event=None) -> list:
    """All products and maps of one DEM; the files written.

    The maps are drawn from display rasters accumulated during the one streaming
    pass (no product is read back); their backdrop is the hillshade GeoTIFF's
    own values, averaged.
    """
    from terrain.plot import backdrop_options

    from .common import compute_to_files, draw_display_map, map_display, warn

    tifs, maps = targets(path, out_dir)
    if not draw_maps:
        maps = {}
    # The hillshade GeoTIFF (and the maps' backdrop) with the one hillshade default.
    product_opts = None if explicit_method else {"hillshade": backdrop_options(opts)}
    display = None
    if maps:
        display = map_display(path, list(maps), band=band, src_crs=src_crs, dpi=dpi)
    result = compute_to_files(path, tifs, opts, band=band, src_crs=src_crs,
                              creation_options=creation_options, cog=cog, overwrite=overwrite,
                              threads=threads, tile_size=tile_size, scheduler=scheduler,
                              maps=list(maps.values()),
                              bar=False if several else None, display=display,
                              product_opts=product_opts, tile=tile, stop_event=stop_event)
    written = list(tifs.values())
    if not result["valid"]:
        warn(f"{path}: no map drawn, there is nothing to show")
        return written
    for product, out_map in maps.items():
        draw_display_map(display, out_map, product=product, dem=path, opts=opts, band=band,
                         src_crs=src_crs, dpi=dpi, overwrite=overwrite)
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
    from .common import state
    from tqdm import tqdm

    if state()["verbose"]:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    tqdm.write(f"terrain: error: {message}", file=sys.stderr)
