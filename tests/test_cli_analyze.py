"""terrain analyze (every product and both maps per DEM), terrain plot and --plot."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from conftest import WGS84_SAMPLE, invoke, write_tif

KINDS = ("slope", "aspect", "gradient", "hillshade")
FAST = ("--dpi", "40")  # small maps where their size is not what is tested


def png_size(path) -> tuple[int, int]:
    data = Path(path).read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def small_dem(path, shape=(40, 50)):
    rows, cols = shape
    y, x = np.mgrid[0:rows, 0:cols]
    z = 200 + 30 * np.sin(x / 7.0) * np.cos(y / 9.0) + 0.5 * x
    return write_tif(path, z.astype(np.float32), transform=Affine(30, 0, 500000, 0, -30, 4e6))


def expected_files(stem):
    return sorted([f"{stem}_{k}.tif" for k in KINDS] + [f"{stem}_slope.png", f"{stem}_aspect.png"])


def read_all(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.profile["dtype"], ds.descriptions, ds.units, ds.tags()


# --------------------------------------------------------------------------- analyze


def test_analyze_writes_every_product_and_both_maps(tmp_path):
    dem = tmp_path / "jacksboro.tif"
    shutil.copy(WGS84_SAMPLE, dem)
    out = tmp_path / "out" / "nested"
    result = invoke("analyze", dem, "-d", out, "--method", "horn")
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(out)) == expected_files("jacksboro")
    assert result.stderr.splitlines() == [
        f"{dem}: wrote {out}/jacksboro_{{slope,aspect,gradient,hillshade}}.tif "
        f"and {out}/jacksboro_{{slope,aspect}}.png"]
    # One read pass gives the same files as the single-product commands.
    for kind in KINDS:
        single = tmp_path / f"{kind}.tif"
        assert invoke("-q", kind, dem, "-o", single, "--method", "horn").exit_code == 0
        mine, theirs = read_all(out / f"jacksboro_{kind}.tif"), read_all(single)
        assert np.array_equal(mine[0], theirs[0])
        assert mine[1:4] == theirs[1:4]
    for product in ("slope", "aspect"):
        width, height = png_size(out / f"jacksboro_{product}.png")
        assert width >= 1000 and height >= 500


def test_analyze_no_maps_writes_the_geotiffs_only(tmp_path):
    dem = small_dem(tmp_path / "small.tif")
    out = tmp_path / "out"
    assert invoke("-q", "analyze", dem, "-d", out, "--no-maps").exit_code == 0
    assert sorted(os.listdir(out)) == sorted(f"small_{k}.tif" for k in KINDS)


def test_analyze_passes_the_product_options(tmp_path):
    dem = small_dem(tmp_path / "dem.tif")
    result = invoke("-q", "analyze", dem, "-d", tmp_path / "out", "--units", "percent",
                    "--flat-value", "-5", "--azimuth", "90", "--cog", *FAST)
    assert result.exit_code == 0, result.output
    with rasterio.open(tmp_path / "out" / "dem_slope.tif") as ds:
        assert ds.units == ("percent",)
    with rasterio.open(tmp_path / "out" / "dem_aspect.tif") as ds:
        assert "-5 where flat" in ds.tags(1)["description"]
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    with rasterio.open(tmp_path / "out" / "dem_hillshade.tif") as ds:
        assert "azimuth 90" in ds.tags(1)["description"]


def test_analyze_skips_a_bad_file_and_fails_at_the_end(tmp_path):
    good1 = small_dem(tmp_path / "a.tif")
    bad = tmp_path / "b.tif"
    bad.write_text("not a raster")
    good2 = small_dem(tmp_path / "c.tif")
    out = tmp_path / "out"
    result = invoke("-q", "analyze", good1, bad, good2, "-d", out, *FAST)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"terrain: error: {bad}: not a raster")
    assert lines[1] == f"terrain: 1 of 3 DEMs failed: {bad}"
    assert len(lines) == 2
    assert sorted(os.listdir(out)) == sorted(expected_files("a") + expected_files("c"))


def test_analyze_refuses_existing_outputs_per_file(tmp_path):
    a, b = small_dem(tmp_path / "a.tif"), small_dem(tmp_path / "b.tif")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_aspect.png").write_bytes(b"precious")
    result = invoke("-q", "analyze", a, b, "-d", out, *FAST)
    assert result.exit_code == 1
    assert "a_aspect.png: already exists" in result.stderr
    assert sorted(os.listdir(out)) == sorted(["a_aspect.png"] + expected_files("b"))
    assert (out / "a_aspect.png").read_bytes() == b"precious"
    assert invoke("-q", "analyze", a, b, "-d", out, "--overwrite", *FAST).exit_code == 0
    assert sorted(os.listdir(out)) == sorted(expected_files("a") + expected_files("b"))


def test_analyze_single_bad_file_is_a_plain_error(tmp_path):
    result = invoke("analyze", tmp_path / "missing.tif", "-d", tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr == f"terrain: error: {tmp_path / 'missing.tif'}: no such file; check the path\n"


def test_analyze_all_nodata_warns_and_draws_no_map(tmp_path):
    dem = write_tif(tmp_path / "void.tif", np.full((20, 30), -32768, np.int16), nodata=-32768)
    result = invoke("-q", "analyze", dem, "-d", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"warning: {dem}: no valid elevation; outputs are all nodata",
        f"warning: {dem}: no map drawn, there is nothing to show"]
    assert sorted(os.listdir(tmp_path / "out")) == sorted(f"void_{k}.tif" for k in KINDS)


@pytest.mark.parametrize("quiet", [False, True])
def test_analyze_file_bar_on_a_terminal(tmp_path, monkeypatch, quiet):
    import cli.common

    monkeypatch.setattr(cli.common, "_isatty", lambda stream: True)
    dems = [small_dem(tmp_path / f"d{i}.tif", shape=(12, 15)) for i in range(2)]
    result = invoke(*(["-q"] if quiet else []), "analyze", *dems, "-d", tmp_path / "out", *FAST)
    assert result.exit_code == 0, result.output
    if quiet:
        assert result.stderr == ""
    else:
        assert "analyze:" in result.stderr and "2/2" in result.stderr
        assert sum("wrote" in line for line in result.stderr.split("\r")) == 2


def test_analyze_no_file_bar_in_a_log(tmp_path):
    dems = [small_dem(tmp_path / f"d{i}.tif", shape=(12, 15)) for i in range(2)]
    result = invoke("analyze", *dems, "-d", tmp_path / "out", *FAST)
    assert result.exit_code == 0
    assert "\r" not in result.stderr
    assert len(result.stderr.splitlines()) == 2


# --------------------------------------------------------------------------- plot and --plot


@pytest.mark.parametrize("product", ["slope", "aspect", "hillshade", "elevation"])
def test_plot_each_product(tmp_path, product):
    dem = small_dem(tmp_path / "dem.tif")
    out = tmp_path / "maps" / f"{product}.png"
    result = invoke("plot", dem, "-o", out, "--product", product)
    assert result.exit_code == 0, result.output
    assert result.stderr == f"wrote {out}\n"
    width, _ = png_size(out)
    assert width >= 1000
    assert [n for n in os.listdir(out.parent) if n.startswith(".")] == []


@pytest.mark.parametrize("suffix, magic", [(".pdf", b"%PDF"), (".svg", b"<?xml")])
def test_plot_vector_formats(tmp_path, suffix, magic):
    dem = small_dem(tmp_path / "dem.tif")
    out = tmp_path / f"map{suffix}"
    assert invoke("-q", "plot", dem, "-o", out).exit_code == 0
    assert out.read_bytes().startswith(magic)


def test_plot_dpi(tmp_path):
    dem = small_dem(tmp_path / "dem.tif")
    assert invoke("-q", "plot", dem, "-o", tmp_path / "a.png", "--dpi", "60").exit_code == 0
    assert invoke("-q", "plot", dem, "-o", tmp_path / "b.png", "--dpi", "120").exit_code == 0
    wa, ha = png_size(tmp_path / "a.png")
    wb, hb = png_size(tmp_path / "b.png")
    assert abs(wb - 2 * wa) <= 2 and abs(hb - 2 * ha) <= 2


@pytest.mark.parametrize("command", ["slope", "aspect", "hillshade"])
def test_plot_option_draws_a_map_next_to_the_geotiff(tmp_path, command):
    dem = small_dem(tmp_path / "dem.tif")
    tif, png = tmp_path / f"{command}.tif", tmp_path / "maps" / f"{command}.png"
    result = invoke(command, dem, "-o", tif, "--plot", png)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [f"wrote {tif}", f"wrote {png}"]
    assert png_size(png)[0] >= 1000
    with rasterio.open(tif) as ds:
        assert ds.descriptions == (command,)


def test_plot_option_on_all_nodata_warns(tmp_path):
    dem = write_tif(tmp_path / "void.tif", np.full((20, 30), np.nan, np.float32))
    result = invoke("-q", "slope", dem, "-o", tmp_path / "s.tif", "--plot", tmp_path / "s.png")
    assert result.exit_code == 0
    assert "no valid elevation" in result.stderr and "no map drawn" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["s.tif", "void.tif"]


# --------------------------------------------------------------------------- issue 11 / issue 9


def map_lines(path, axis=1, min_count=150):
    """Rows (axis=1) or columns (axis=0) of the PNG where the map's own colour (the
    commonest non-grey one) fills ``min_count`` pixels or more: the drawn height
    (width) of a uniformly coloured map."""
    from PIL import Image

    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB")).astype(np.int32)
    grey = (np.abs(rgb[..., 0] - rgb[..., 1]) < 8) & (np.abs(rgb[..., 1] - rgb[..., 2]) < 8)
    code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    values, counts = np.unique(code[~grey], return_counts=True)
    colour = values[np.argmax(counts)]
    return int(((code == colour).sum(axis=axis) >= min_count).sum())


def capture_render(monkeypatch):
    """{product: what its map was drawn from}: every map's figure is made by
    plot._render_figure (maps of one DEM are drawn at once, in threads here)."""
    import terrain.plot

    calls = {}
    real = terrain.plot._render_figure
    # Recorded here: no map drawn in a forked child, whose calls this process never sees.
    monkeypatch.setattr(terrain.plot, "_can_fork", lambda: False)

    def recorder(out_png, product, values, **kw):
        calls[product] = dict(product=product, values=np.array(values), **kw)
        return real(out_png, product, values, **kw)

    monkeypatch.setattr(terrain.plot, "_render_figure", recorder)
    return calls


def test_analyze_hillshade_is_terrain_hillshade(tmp_path):
    """Issue 9 row 9: one default for hillshade; an explicit --method applies to all."""
    dem = small_dem(tmp_path / "dem.tif")
    assert invoke("-q", "analyze", dem, "-d", tmp_path / "a", "--no-maps").exit_code == 0
    assert invoke("-q", "hillshade", dem, "-o", tmp_path / "h.tif").exit_code == 0
    mine, theirs = read_all(tmp_path / "a" / "dem_hillshade.tif"), read_all(tmp_path / "h.tif")
    assert np.array_equal(mine[0], theirs[0])
    assert mine[4]["method"] == theirs[4]["method"] == "horn"
    # The slope keeps analyze's own default, central.
    assert read_all(tmp_path / "a" / "dem_slope.tif")[4]["method"] == "central"
    assert invoke("-q", "analyze", dem, "-d", tmp_path / "c", "--no-maps",
                  "--method", "central").exit_code == 0
    assert invoke("-q", "hillshade", dem, "-o", tmp_path / "hc.tif",
                  "--method", "central").exit_code == 0
    central = read_all(tmp_path / "c" / "dem_hillshade.tif")[0]
    assert np.array_equal(central, read_all(tmp_path / "hc.tif")[0])
    assert not np.array_equal(central, mine[0])


def test_analyze_maps_come_from_the_stream_not_the_files(tmp_path, monkeypatch):
    import terrain.plot

    def no_read_back(*args, **kwargs):
        raise AssertionError("a product was read back from disk")

    monkeypatch.setattr(terrain.plot, "_read_display", no_read_back)
    monkeypatch.setattr(terrain.plot, "_read_resampled", no_read_back)
    calls = capture_render(monkeypatch)
    dem = small_dem(tmp_path / "dem.tif")
    result = invoke("-q", "analyze", dem, "-d", tmp_path / "out", *FAST)
    assert result.exit_code == 0, result.output
    assert sorted(calls) == ["aspect", "slope"]
    slope, aspect = calls["slope"], calls["aspect"]
    with rasterio.open(tmp_path / "out" / "dem_slope.tif") as ds:
        expected = ds.read(1, masked=True).astype(np.float64).filled(np.nan)
    with rasterio.open(tmp_path / "out" / "dem_hillshade.tif") as ds:
        shade = ds.read(1, masked=True).astype(np.float64).filled(np.nan)
    np.testing.assert_allclose(slope["values"], expected, rtol=1e-6)
    # The backdrop is the hillshade GeoTIFF's own values (before rounding to bytes).
    np.testing.assert_allclose(slope["shade"], shade, atol=0.5)
    assert aspect["product"] == "aspect" and aspect["values"].shape == expected.shape


def test_plot_all_nodata_dem_warns_like_the_geotiff_commands(tmp_path):
    """Issue 9 row 10."""
    dem = write_tif(tmp_path / "void.tif", np.full((20, 30), -32768, np.int16), nodata=-32768)
    out = tmp_path / "void.png"
    result = invoke("plot", dem, "-o", out, *FAST)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"warning: {dem}: no valid elevation; outputs are all nodata", f"wrote {out}"]
    assert png_size(out)[0] >= 300


@pytest.mark.parametrize("shape", [(2, 20000), (20000, 2)])
def test_plot_long_thin_strip_stays_readable(tmp_path, shape):
    """Issue 9 row 10: a 2 x 20000 strip was drawn 0 px tall."""
    rows, cols = shape
    y, x = np.mgrid[0:rows, 0:cols]
    dem = write_tif(tmp_path / "strip.tif", (100 + 0.3 * x + 0.2 * y).astype(np.float32),
                    transform=Affine(10, 0, 500000, 0, -10, 4e6))
    out = tmp_path / "strip.png"
    result = invoke("plot", dem, "-o", out)
    assert result.exit_code == 0, result.output
    warning, wrote = result.stderr.splitlines()
    assert warning.startswith(f"warning: {out}: the area is 10000 times longer than wide")
    assert "stretched to 48 px (the map is not to scale)" in warning
    assert wrote == f"wrote {out}"
    # The plane's one slope colour fills the map: its short side is about 48 px.
    if rows < cols:
        assert 40 <= map_lines(out, axis=1) <= 60
        assert map_lines(out, axis=0, min_count=40) >= 600  # and it is long
    else:
        assert 40 <= map_lines(out, axis=0) <= 60
        assert map_lines(out, axis=1, min_count=40) >= 400


@pytest.mark.parametrize("kind", ["slope", "aspect", "hillshade"])
def test_plot_of_a_product_file_draws_the_file(tmp_path, monkeypatch, kind):
    """`terrain plot out_slope.tif` maps the product (found by its tags), not a slope of it."""
    dem = small_dem(tmp_path / "dem.tif", shape=(300, 260))
    tif = tmp_path / f"{kind}.tif"
    assert invoke("-q", kind, dem, "-o", tif, "--method", "horn").exit_code == 0
    calls = capture_render(monkeypatch)
    out = tmp_path / "map.png"
    # At 20 dpi the map (1.15 x taller than wide) is at most 6.3 x 1.15 in = 146 px tall:
    # a decimated read.
    result = invoke("plot", tif, "-o", out, "--dpi", "20")
    assert result.exit_code == 0, result.output
    assert result.stderr == f"wrote {out}\n"
    (call,) = calls.values()
    assert call["product"] == kind and call["values"].shape == (146, 127)
    from test_stream import block_means

    with rasterio.open(tif) as ds:
        full = ds.read(1, masked=True).astype(np.float64).filled(np.nan)
        if kind == "aspect":
            expected = ds.read(1, out_shape=(146, 127), masked=True,
                               resampling=rasterio.enums.Resampling.nearest)
            expected = expected.astype(np.float64).filled(np.nan)
        else:
            expected = block_means(full, (146, 127))
    np.testing.assert_allclose(call["values"], expected, rtol=1e-6)
    result = invoke("plot", tif, "-o", tmp_path / "m2.png", "--product", "elevation")
    assert result.exit_code == 2 and f"is a terrain {kind} GeoTIFF" in result.stderr


@pytest.mark.slow  # starts a local dask cluster; the quick run keeps test_dask_runner's
def test_analyze_on_a_cluster_gives_the_same_files_and_maps(tmp_path):
    """With --scheduler, each group of options (the Horn hillshade apart) is one pass."""
    distributed = pytest.importorskip("distributed")
    from PIL import Image

    dem = small_dem(tmp_path / "dem.tif", shape=(90, 70))
    assert invoke("-q", "analyze", dem, "-d", tmp_path / "local", *FAST).exit_code == 0
    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        result = invoke("-q", "analyze", dem, "-d", tmp_path / "cluster", *FAST,
                        "--scheduler", cluster.scheduler_address, "--tile-size", "32")
    assert result.exit_code == 0, result.output
    for kind in KINDS:
        mine = read_all(tmp_path / "cluster" / f"dem_{kind}.tif")
        theirs = read_all(tmp_path / "local" / f"dem_{kind}.tif")
        assert np.array_equal(mine[0], theirs[0]) and mine[4] == theirs[4]
    for product in ("slope", "aspect"):
        with Image.open(tmp_path / "cluster" / f"dem_{product}.png") as a, \
                Image.open(tmp_path / "local" / f"dem_{product}.png") as b:
            assert np.array_equal(np.asarray(a), np.asarray(b))


def test_analyze_and_plot_option_say_when_a_map_is_stretched(tmp_path):
    y, x = np.mgrid[0:2, 0:20000]
    dem = write_tif(tmp_path / "strip.tif", (100 + 0.3 * x + 0.2 * y).astype(np.float32),
                    transform=Affine(10, 0, 500000, 0, -10, 4e6))
    result = invoke("-q", "analyze", dem, "-d", tmp_path / "out")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert [line.split(":")[1].strip() for line in lines] == [
        str(tmp_path / "out" / "strip_slope.png"), str(tmp_path / "out" / "strip_aspect.png")]
    assert all(line.startswith("warning: ") and "stretched to 48 px" in line for line in lines)
    assert 40 <= map_lines(tmp_path / "out" / "strip_slope.png", axis=1) <= 60
    result = invoke("-q", "slope", dem, "-o", tmp_path / "s.tif", "--plot", tmp_path / "s.png")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"warning: {tmp_path / 's.png'}: the area is 10000 times")


def test_analyze_hillshade_uses_the_files_vertical_unit(tmp_path):
    """The hillshade's own option group gets the z factor of the file's band unit too:
    analyze's hillshade of a DEM in feet equals terrain hillshade's, and differs from the
    same numbers read as metres."""
    dem = small_dem(tmp_path / "dem.tif")
    with rasterio.open(dem, "r+") as ds:
        ds.units = ("ft",)
    assert invoke("-q", "analyze", dem, "-d", tmp_path / "a", "--no-maps").exit_code == 0
    assert invoke("-q", "hillshade", dem, "-o", tmp_path / "h.tif").exit_code == 0
    assert invoke("-q", "hillshade", dem, "-o", tmp_path / "m.tif",
                  "--z-factor", "1").exit_code == 0
    mine = read_all(tmp_path / "a" / "dem_hillshade.tif")
    assert mine[4]["z_factor"] == "0.3048"
    assert np.array_equal(mine[0], read_all(tmp_path / "h.tif")[0])
    assert not np.array_equal(mine[0], read_all(tmp_path / "m.tif")[0])


def test_corrupt_dem_does_not_stop_the_next_one(tmp_path):
    """Issue 9 row 7's other half: a DEM whose blocks cannot be decoded stops its own
    run's threads, not the next DEM (before: "dem.tif: interrupted; no output was written")."""
    seed = tmp_path / "seed.tif"
    rng = np.random.default_rng(2)
    with rasterio.open(seed, "w", driver="GTiff", width=300, height=300, count=1,
                       dtype="float32", crs="EPSG:32616", compress="deflate", tiled=True,
                       blockxsize=16, blockysize=16,
                       transform=Affine(30.0, 0, 5e5, 0, -30.0, 4e6)) as ds:
        ds.write((rng.random((300, 300)) * 100).astype(np.float32), 1)
    data = bytearray(seed.read_bytes())
    data[len(data) // 2:] = bytes(len(data) - len(data) // 2)
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(bytes(data))
    good = small_dem(tmp_path / "good.tif")
    out = tmp_path / "out"
    res = invoke("analyze", str(corrupt), str(good), "-d", str(out), "--no-maps",
                 "--tile-size", "64", "--threads", "2")
    assert res.exit_code == 1, res.output
    assert "interrupted" not in res.output and "1 of 2 DEMs failed" in res.output, res.output
    assert sorted(os.listdir(out)) == sorted(f"good_{k}.tif" for k in
                                             ("slope", "aspect", "gradient", "hillshade"))


def test_analyze_interrupt_after_a_finished_dem_keeps_its_outputs(tmp_path, monkeypatch):
    """Ctrl-C landing right after a DEM is reported finished (here in its status line)
    removes nothing of that DEM: the message lists it as finished, its files stay."""
    import cli.common

    first, second = small_dem(tmp_path / "first.tif"), small_dem(tmp_path / "second.tif")
    out = tmp_path / "out"

    def interrupted(message):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.common, "status", interrupted)
    result = invoke("analyze", first, second, "-d", out, *FAST)
    assert result.exit_code == 130, result.output
    assert sorted(os.listdir(out)) == expected_files("first")
    assert f"finished before it, with complete outputs: {first}" in result.stderr
    for kind in KINDS:
        with rasterio.open(out / f"first_{kind}.tif") as ds:
            assert ds.shape == (40, 50)


# --------------------------------------------------------------------------- tile sets (issue 14)


def _tile_cells(tile_out, whole_out):
    """(the tile's output, the whole raster's output on the tile's cells), read by GDAL."""
    from rasterio.windows import Window

    with rasterio.open(tile_out) as o, rasterio.open(whole_out) as w:
        col = round((o.transform.c - w.transform.c) / w.transform.a)
        row = round((o.transform.f - w.transform.f) / w.transform.e)
        return o.read(), w.read(window=Window(col, row, o.width, o.height))


@pytest.fixture
def sample_tiles(tmp_path):
    """The UTM sample cut into 3 x 3 tiles with a one-pixel overlap, and its whole analyze."""
    from test_tiles import split

    from conftest import UTM_SAMPLE

    paths = split(UTM_SAMPLE, tmp_path / "tiles", 3, 1)
    whole = tmp_path / "whole"
    result = invoke("-q", "analyze", UTM_SAMPLE, "-d", whole, "--no-maps")
    assert result.exit_code == 0, result.output
    return paths, {k: whole / f"jacksboro_utm16n_{k}.tif" for k in KINDS}


@pytest.mark.parametrize("jobs", ["1", pytest.param("3", marks=pytest.mark.slow)])
def test_analyze_tiles_equal_the_whole_raster(sample_tiles, tmp_path, jobs):
    paths, whole = sample_tiles
    out = tmp_path / "out"
    result = invoke("analyze", *paths, "-d", out, "--jobs", jobs, "--threads", "1", *FAST)
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert sorted(lines) == sorted(
        f"{p}: wrote {out}/{Path(p).stem}_{{slope,aspect,gradient,hillshade}}.tif and "
        f"{out}/{Path(p).stem}_{{slope,aspect}}.png" for p in paths)
    assert sorted(os.listdir(out)) == sorted(n for p in paths for n in expected_files(Path(p).stem))
    for p in paths:
        for kind in KINDS:
            got, expected = _tile_cells(out / f"{Path(p).stem}_{kind}.tif", whole[kind])
            assert got.tobytes() == expected.tobytes(), (p, kind)


def test_analyze_independent_keeps_the_per_file_behaviour(sample_tiles, tmp_path):
    paths, whole = sample_tiles
    out, alone = tmp_path / "out", tmp_path / "alone"
    assert invoke("-q", "analyze", *paths[:2], "-d", out, "--independent", "--no-maps").exit_code == 0
    assert invoke("-q", "analyze", paths[0], "-d", alone, "--no-maps").exit_code == 0
    stem = Path(paths[0]).stem
    with rasterio.open(out / f"{stem}_slope.tif") as a, rasterio.open(alone / f"{stem}_slope.tif") as b:
        assert a.read().tobytes() == b.read().tobytes()
    got, expected = _tile_cells(out / f"{stem}_slope.tif", whole["slope"])
    assert not np.array_equal(got, expected)  # the seam, computed from one side


@pytest.mark.parametrize("form", ["glob", "folder", "list", "vrt"])
def test_analyze_tile_inputs(sample_tiles, tmp_path, form):
    import subprocess

    paths, whole = sample_tiles
    folder = Path(paths[0]).parent
    if form == "glob":
        arg = str(folder / "t*.tif")
    elif form == "folder":
        arg = str(folder)
    elif form == "list":
        arg = tmp_path / "tiles.txt"
        arg.write_text("\n".join(paths) + "\n")
    else:
        arg = tmp_path / "mosaic.vrt"
        exe = shutil.which("gdalbuildvrt") or "/usr/bin/gdalbuildvrt"
        subprocess.run([exe, str(arg), *paths], check=True, capture_output=True)
    out = tmp_path / "out"
    result = invoke("-q", "analyze", arg, "-d", out, "--no-maps")
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(out)) == sorted(f"{Path(p).stem}_{k}.tif" for p in paths for k in KINDS)
    got, expected = _tile_cells(out / "t11_aspect.tif", whole["aspect"])
    assert got.tobytes() == expected.tobytes()


def test_analyze_tile_on_another_grid_warns_once(sample_tiles, tmp_path):
    paths, whole = sample_tiles
    with rasterio.open(paths[0]) as ds:
        z, t = ds.read(1), ds.transform
    from conftest import write_tif

    odd = tmp_path / "odd.tif"
    write_tif(odd, z, transform=t @ Affine.translation(0.5, 0.5), nodata=-9999.0)
    out, alone = tmp_path / "out", tmp_path / "alone"
    result = invoke("analyze", *paths, odd, "-d", out, "--no-maps")
    assert result.exit_code == 0, result.output
    warnings = [ln for ln in result.stderr.splitlines() if ln.startswith("warning:")]
    assert warnings == [f"warning: {odd}: not on the grid of the other tiles (CRS, pixel size, "
                        "alignment, type, nodata or overlap differ); processed on their own, "
                        "with their borders from one side only"]
    assert invoke("-q", "analyze", odd, "-d", alone, "--no-maps").exit_code == 0
    for kind in KINDS:
        with rasterio.open(out / f"odd_{kind}.tif") as a, rasterio.open(alone / f"odd_{kind}.tif") as b:
            assert a.read().tobytes() == b.read().tobytes()
    got, expected = _tile_cells(out / "t22_hillshade.tif", whole["hillshade"])
    assert got.tobytes() == expected.tobytes()


@pytest.mark.parametrize("command", ["slope", "aspect", "gradient", "hillshade"])
def test_product_commands_take_tiles_with_out_dir(sample_tiles, tmp_path, command):
    from conftest import UTM_SAMPLE

    paths, _ = sample_tiles
    out = tmp_path / "out"
    result = invoke(command, *paths, "-d", out, "--jobs", "2")
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(out)) == sorted(f"{Path(p).stem}_{command}.tif" for p in paths)
    assert f"{paths[4]}: wrote {out}/t11_{command}.tif" in result.stderr.splitlines()
    one = tmp_path / "whole.tif"
    assert invoke("-q", command, UTM_SAMPLE, "-o", one).exit_code == 0
    for p in paths:
        got, expected = _tile_cells(out / f"{Path(p).stem}_{command}.tif", one)
        assert got.tobytes() == expected.tobytes(), p


@pytest.mark.parametrize("args, words", [
    (["slope", "{tiles}/t00.tif", "{tiles}/t01.tif", "-o", "{dir}/s.tif"], "-o takes one DEM"),
    (["slope", "{tiles}/t00.tif", "-o", "{dir}/s.tif", "-d", "{dir}/out"], "not both"),
    (["slope", "{tiles}/t00.tif", "{tiles}/t01.tif", "-d", "{dir}/out", "--plot", "{dir}/m.png"],
     "--plot draws one map"),
])
def test_product_commands_usage_errors_with_several_dems(sample_tiles, tmp_path, args, words):
    paths, _ = sample_tiles
    fill = {"tiles": Path(paths[0]).parent, "dir": tmp_path}
    result = invoke(*[a.format(**fill) for a in args])
    assert result.exit_code == 2 and words in result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "s.tif").exists()


@pytest.mark.parametrize("case", ["empty glob", "list with a missing entry"])
def test_bad_tile_inputs_are_one_line_errors(sample_tiles, tmp_path, case):
    paths, _ = sample_tiles
    if case == "empty glob":
        arg = str(Path(paths[0]).parent / "*.hgt")
        words = f"{arg}: the pattern matches no file"
    else:
        arg = tmp_path / "tiles.txt"
        arg.write_text(f"{paths[0]}\n{tmp_path / 'gone.tif'}\n")
        words = f"{arg}: line 2: {tmp_path / 'gone.tif'}: no such file; fix the list"
    out = tmp_path / "out"
    result = invoke("analyze", arg, paths[1], "-d", out)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"terrain: error: {words}"), lines
    assert "Traceback" not in result.output and not out.exists()
