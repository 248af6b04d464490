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
from click.testing import CliRunner

from cli.main import cli
from conftest import WGS84_SAMPLE, write_tif

KINDS = ("slope", "aspect", "gradient", "hillshade")
FAST = ("--dpi", "40")  # small maps where their size is not what is tested


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


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
