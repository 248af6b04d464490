"""Maps: formats, sizes, atomic writes, protection of existing files, and the data drawn."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import Resampling

import terrain
from terrain import plot
from terrain.engine import Options
from terrain.errors import OutputError, TerrainError
from terrain.raster import raster_info
from terrain.stream import process_file

ROOT = Path(__file__).resolve().parents[1]
WGS84 = ROOT / "sample_data" / "jacksboro_wgs84.tif"
UTM = ROOT / "sample_data" / "jacksboro_utm16n.tif"


def image_size(path):
    from PIL import Image

    with Image.open(path) as im:
        return im.size  # (width, height)


@pytest.fixture
def captured(monkeypatch):
    """Replace render with a recorder of what it would draw."""
    calls = []

    def fake_render(out_png, product, values, **kw):
        calls.append(dict(out_png=out_png, product=product, values=np.array(values), **kw))
        return out_png

    monkeypatch.setattr(plot, "render", fake_render)
    return calls


def full_resolution_then_decimated(product_da, shape, resampling, folder):
    """The reference: a full-resolution product, decimated as GDAL does on read."""
    ref = folder / "reference.tif"
    with rasterio.open(WGS84) as ds:
        profile = dict(driver="GTiff", width=ds.width, height=ds.height, count=1,
                       dtype="float32", crs=ds.crs, transform=ds.transform, nodata=-9999.0)
    data = np.asarray(product_da.values, dtype=np.float32).copy()
    data[np.isnan(data)] = -9999.0
    with rasterio.open(ref, "w", **profile) as dst:
        dst.write(data, 1)
    with rasterio.open(ref) as ds:
        arr = ds.read(1, out_shape=shape, resampling=resampling, masked=True, out_dtype="float64")
    return arr.filled(np.nan)


# --------------------------------------------------------------------------- imports


def test_import_terrain_does_not_import_matplotlib():
    code = ("import sys, terrain, terrain.api, terrain.stream, terrain.writer, terrain.plot; "
            "terrain.open_dem; print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_preload_imports_the_drawing_modules_on_a_thread():
    # Maps start matplotlib's import while the DEM streams (terrain.plot.preload); the
    # main thread has imported nothing of it when preload returns.
    code = ("import sys, threading, terrain.plot as p; p.preload(); "
            "t = [t for t in threading.enumerate() if t.name == 'terrain-preload']; "
            "p._wait_preload(); "
            "print(len(t), all(m in sys.modules for m in "
            "('matplotlib.figure', 'matplotlib.backends.backend_agg', 'matplotlib.ticker')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "True"]


# --------------------------------------------------------------------------- files written


@pytest.mark.parametrize("product", ["slope", "aspect", "hillshade", "elevation"])
def test_each_product_writes_a_png_wide_enough(tmp_path, product):
    out = tmp_path / "maps" / f"{product}.png"  # the folder does not exist yet
    written = plot.plot_dem(WGS84, out, product=product)
    assert written == str(out.resolve())
    width, height = image_size(out)
    assert width >= 1000
    assert 0.6 * width < height < 1.3 * width  # a squarish area stays squarish
    assert os.listdir(out.parent) == [out.name]  # no temporary file left


def test_projected_dem_with_nodata_outside(tmp_path):
    out = plot.plot_dem(UTM, tmp_path / "utm.png", product="slope", dpi=100)
    width, _ = image_size(out)
    assert width == 800  # 8 inches at the dpi asked for
    assert os.listdir(tmp_path) == ["utm.png"]


@pytest.mark.parametrize("ext, magic", [(".pdf", b"%PDF"), (".svg", b"<svg")])
def test_pdf_and_svg_by_extension(tmp_path, ext, magic):
    out = tmp_path / f"map{ext}"
    plot.plot_dem(WGS84, out, product="aspect")
    head = out.read_bytes()[:4096]
    assert magic in head
    assert os.listdir(tmp_path) == [out.name]


@pytest.mark.parametrize("name", ["map.jpg", "map.tif", "map"])
def test_unsupported_extension_raises_and_creates_nothing(tmp_path, name):
    out = tmp_path / "sub" / name
    with pytest.raises(OutputError, match=r"\.png, \.pdf or \.svg"):
        plot.plot_dem(WGS84, out)
    assert not (tmp_path / "sub").exists()


def test_existing_output_needs_overwrite(tmp_path):
    out = tmp_path / "map.png"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="already exists"):
        plot.plot_dem(WGS84, out)
    assert out.read_bytes() == b"keep me"
    assert os.listdir(tmp_path) == ["map.png"]
    plot.plot_dem(WGS84, out, overwrite=True)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["map.png"]


@pytest.mark.parametrize("fmt", ["png", "pdf"])
def test_failed_write_leaves_nothing(tmp_path, monkeypatch, fmt):
    # PNGs are encoded by terrain.png, other formats by matplotlib's savefig: a
    # write failing half-way through either leaves nothing.
    from matplotlib.figure import Figure

    import terrain.png

    def broken_save(self, fname, **kw):
        Path(fname).write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    def broken_encode(*args, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", broken_save)
    monkeypatch.setattr(terrain.png, "encode_png", broken_encode)
    out = tmp_path / f"map.{fmt}"
    with pytest.raises(OutputError, match="No space left"):
        plot.plot_dem(WGS84, out, product="hillshade")
    assert os.listdir(tmp_path) == []


def test_bad_product_and_bad_input(tmp_path):
    with pytest.raises(TerrainError, match="unknown map product"):
        plot.plot_dem(WGS84, tmp_path / "m.png", product="sobel-magnitude")  # no such product
    with pytest.raises(TerrainError, match="no such file"):
        plot.plot_dem(tmp_path / "missing.tif", tmp_path / "out" / "m.png")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- data drawn


def test_small_dem_draws_the_in_memory_product(captured, tmp_path):
    plot.plot_dem(WGS84, tmp_path / "m.png", product="slope", opts=Options(units="percent"))
    (call,) = captured
    expected = terrain.slope(terrain.open_dem(WGS84), units="percent").values
    np.testing.assert_allclose(call["values"], expected, rtol=1e-6)
    assert call["units"] == "percent"
    assert call["geographic"] is True
    assert call["shade"].shape == expected.shape
    with rasterio.open(WGS84) as ds:
        b = ds.bounds
    np.testing.assert_allclose(call["extent"], (b.left, b.right, b.bottom, b.top))
    assert "jacksboro_wgs84.tif" in call["title"] and "central" in call["title"]


@pytest.mark.parametrize("product, resampling", [("slope", Resampling.average),
                                                 ("aspect", Resampling.nearest)])
def test_large_dem_is_computed_at_full_resolution(captured, tmp_path, product, resampling):
    out_dir = tmp_path / "out"
    plot.plot_dem(WGS84, out_dir / "m.png", product=product, max_pixels=64)
    (call,) = captured
    values = call["values"]
    assert values.shape == (55, 64)  # 344 x 403 scaled to a long side of 64
    dem = terrain.open_dem(WGS84)
    full = terrain.slope(dem) if product == "slope" else terrain.aspect(dem)
    expected = full_resolution_then_decimated(full, values.shape, resampling, tmp_path)
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-4)
    assert call["shade"].shape == values.shape
    assert os.listdir(out_dir) == []  # the streaming folder is gone
    if product == "slope":
        # Slope of a decimated DEM would be much gentler: make sure that is not what is shown.
        with rasterio.open(WGS84) as ds:
            z = ds.read(1, out_shape=values.shape, resampling=Resampling.average,
                        out_dtype="float64")
        dx = ds.transform.a * 403 / 64
        dy = ds.transform.e * 344 / 55
        import xarray as xr

        coarse = xr.DataArray(
            z, dims=("y", "x"),
            coords={"y": ds.transform.f + (np.arange(55) + 0.5) * dy,
                    "x": ds.transform.c + (np.arange(64) + 0.5) * dx},
        ).rio.write_crs("EPSG:4326")
        on_decimated = terrain.slope(coarse).values
        assert np.nanmean(values) > 1.2 * np.nanmean(on_decimated)


def test_south_up_dem_is_drawn_north_up(captured, tmp_path):
    with rasterio.open(WGS84) as ds:
        z = ds.read(1)
        profile = ds.profile
        t = ds.transform
    flipped = tmp_path / "south_up.tif"
    profile.update(transform=Affine(t.a, 0, t.c, 0, -t.e, t.f + ds.height * t.e))
    with rasterio.open(flipped, "w", **profile) as dst:
        dst.write(z[::-1], 1)
    plot.plot_dem(WGS84, tmp_path / "a.png", product="elevation")
    plot.plot_dem(flipped, tmp_path / "b.png", product="elevation")
    a, b = captured
    np.testing.assert_array_equal(a["values"], b["values"])
    np.testing.assert_allclose(a["extent"], b["extent"])
    np.testing.assert_allclose(a["shade"], b["shade"], atol=1e-3)


def test_product_file_map(captured, tmp_path):
    slope_tif = tmp_path / "s.tif"
    aspect_tif = tmp_path / "a.tif"
    process_file(UTM, {"slope": slope_tif, "aspect": aspect_tif},
                 Options(method="horn", units="percent", flat_value=-2))
    plot.plot_product_file(slope_tif, tmp_path / "s.png", product="slope", dem=UTM,
                           max_pixels=2048)
    plot.plot_product_file(aspect_tif, tmp_path / "a.png", product="aspect", dem=UTM,
                           method="my method", max_pixels=100)
    plot.plot_product_file(slope_tif, tmp_path / "d.png", product="slope")
    s, a, d = captured
    with rasterio.open(slope_tif) as ds:
        expected = ds.read(1, masked=True).filled(np.nan)
    np.testing.assert_array_equal(s["values"], expected)
    assert np.isnan(s["values"]).any()  # outside the UTM footprint
    assert s["units"] == "percent" and s["geographic"] is False and s["axis_unit"] == "m"
    assert "horn" in s["title"] and "jacksboro_utm16n.tif" in s["title"]
    assert s["shade"].shape == expected.shape
    assert a["values"].shape == (100, 95) and a["shade"].shape == (100, 95)
    assert a["flat_value"] == -2.0 and "my method" in a["title"]
    # By default the file is read at the map's own pixels (map_pixels), fewer than its own.
    from test_stream import block_means

    with rasterio.open(slope_tif) as ds:
        full = ds.read(1, masked=True).astype(np.float64).filled(np.nan)
        assert max(d["values"].shape) == plot.map_pixels(raster_info(slope_tif), 150) < max(ds.shape)
    np.testing.assert_allclose(d["values"], block_means(full, d["values"].shape), rtol=1e-6)


@pytest.mark.parametrize("shape", [(400, 400), (300, 260), (150, 600), (600, 150), (420, 380),
                                   (80, 400), (239, 400), (480, 400), (520, 400)])
@pytest.mark.parametrize("product", ["slope", "aspect"])
def test_map_pixels_cover_the_map_drawn(tmp_path, shape, product):
    """Display rasters are sized to the map's pixels (map_pixels): the map's axes, as
    matplotlib lays the figure out, never span more pixels than that, and a square map
    takes well under the picture's width (1200 px at 150 dpi)."""
    rows, cols = shape
    path = tmp_path / "dem.tif"
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=1,
                       dtype="float32", crs="EPSG:32616",
                       transform=Affine(10, 0, 500000, 0, -10, 4e6)) as ds:
        ds.write(np.zeros(shape, np.float32), 1)
    info = raster_info(path)
    values = np.random.default_rng(rows).random(shape) * 40
    fig = plot._render_figure("m.png", product, values, extent=plot._extent(info.transform, shape),
                              geographic=False, units="degrees", title="A title", shade=None,
                              flat_value=-1.0, dpi=150, axis_unit="m")
    box = fig.axes[0].get_window_extent()
    drawn = max(box.width, box.height)
    limit = plot.map_pixels(info, 150)
    assert drawn <= limit + 1  # + its anti-aliased edge
    assert limit <= plot.picture_pixels(150)
    if rows == cols:
        assert limit < 0.8 * plot.picture_pixels(150) and drawn > 0.8 * limit


def test_product_file_written_and_protected(tmp_path):
    slope_tif = tmp_path / "s.tif"
    process_file(WGS84, {"slope": slope_tif})
    out = plot.plot_product_file(slope_tif, tmp_path / "maps" / "s.png", product="slope",
                                 dem=WGS84)
    assert image_size(out)[0] >= 1000
    with pytest.raises(OutputError, match="already exists"):
        plot.plot_product_file(slope_tif, out, product="slope")
    assert sorted(os.listdir(tmp_path)) == ["maps", "s.tif"]
    assert os.listdir(tmp_path / "maps") == ["s.png"]


def test_dem_of_another_grid_is_refused(tmp_path):
    slope_tif = tmp_path / "s.tif"
    process_file(WGS84, {"slope": slope_tif})
    with pytest.raises(TerrainError, match="not the grid"):
        plot.plot_product_file(slope_tif, tmp_path / "s.png", product="slope", dem=UTM)


# --------------------------------------------------------------------------- the figure


def _figure(product, values, extent, geographic, **kw):
    kw.setdefault("units", "degrees")
    return plot._figure(product, np.asarray(values, float), extent, geographic=geographic,
                        title="t", shade=None, flat_value=-1.0, dpi=50,
                        axis_unit=kw.pop("axis_unit", "m"), **kw)


def test_geographic_map_is_not_stretched():
    fig = _figure("slope", np.ones((10, 10)), (-84.4, -84.1, 36.4, 36.7), True)
    ax = fig.axes[0]
    assert ax.get_aspect() == pytest.approx(1 / math.cos(math.radians(36.55)))
    assert ax.get_xlabel() == "Longitude (°)" and ax.get_ylabel() == "Latitude (°)"
    assert fig.axes[1].get_ylabel() == "Slope (degrees)"


def test_projected_axes_and_labels():
    fig = _figure("elevation", np.arange(20.0).reshape(4, 5), (0, 500, 0, 400), False,
                  units="m", axis_unit="ft")
    ax = fig.axes[0]
    assert ax.get_aspect() == 1.0
    assert ax.get_xlabel() == "Easting (ft)" and ax.get_ylabel() == "Northing (ft)"
    assert fig.axes[1].get_ylabel() == "Elevation (m)"


def test_aspect_compass_and_legend(tmp_path):
    values = np.array([[0, 90, 180], [270, -1, np.nan], [45, 135, 359.0]])
    fig = _figure("aspect", values, (0, 3, 0, 3), False)
    cbar = fig.axes[1]
    labels = [t.get_text().split()[0] for t in cbar.get_yticklabels()]
    assert labels == ["N", "E", "S", "W", "N"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(t.startswith("Flat") for t in legend) and "No data" in legend
    out = plot.render(tmp_path / "a.png", "aspect", values, extent=(0, 3, 0, 3),
                      geographic=False, units="degrees", title="tiny")
    assert image_size(out)[0] >= 1000


# --------------------------------------------------------------------------- product files (issue 11)


def test_product_file_read_uses_overviews_when_present(tmp_path):
    slope_tif = tmp_path / "s.tif"
    process_file(UTM, {"slope": slope_tif})
    no_overviews = plot._read_display(slope_tif, 1, (136, 129), "average")
    with rasterio.open(slope_tif, "r+") as ds:
        ds.build_overviews([8], Resampling.nearest)  # unlike an average: tells them apart
    with rasterio.open(slope_tif) as ds:
        full = ds.read(1, masked=True).astype(np.float64).filled(np.nan)
        # GDAL reads the overview for a decimated read (average from its cells).
        overview = ds.read(1, out_shape=(136, 129), masked=True, resampling=Resampling.average)
        overview = overview.astype(np.float64).filled(np.nan)
    with_overviews = plot._read_display(slope_tif, 1, (136, 129), "average")
    np.testing.assert_array_equal(with_overviews, overview)
    np.testing.assert_allclose(no_overviews[:, :], _block_mean_8(full), rtol=1e-6)
    assert not np.allclose(np.nan_to_num(no_overviews), np.nan_to_num(with_overviews))


def _block_mean_8(full):
    """Means of the valid cells of 8 x 8 blocks (1088 x 1033 -> 136 x 129), numpy only."""
    rows, cols = full.shape
    rc = np.arange(rows) * 136 // rows
    cc = np.arange(cols) * 129 // cols
    total = np.zeros((136, 129))
    count = np.zeros((136, 129))
    valid = np.isfinite(full)
    np.add.at(total, (rc[:, None].repeat(cols, 1)[valid], cc[None, :].repeat(rows, 0)[valid]),
              full[valid])
    np.add.at(count, (rc[:, None].repeat(cols, 1)[valid], cc[None, :].repeat(rows, 0)[valid]), 1)
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, total / count, np.nan)


def test_render_draws_the_figure_once(tmp_path, monkeypatch):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    draws = []
    real = FigureCanvasAgg.draw

    def counting(self, *a, **k):
        draws.append(1)
        return real(self, *a, **k)

    monkeypatch.setattr(FigureCanvasAgg, "draw", counting)
    values = np.arange(120.0).reshape(10, 12)
    out = plot.render(tmp_path / "m.png", "slope", values, extent=(0, 12, 0, 10),
                      geographic=False, units="degrees", title="once", shade=values)
    assert len(draws) == 1 and image_size(out)[0] >= 1000


def test_a_map_never_replaces_one_that_appeared_meanwhile(tmp_path, monkeypatch):
    """Issue 9 row 8 for maps: without overwrite the map's name is claimed exclusively; a
    file created by another run after the checks is left as it is and this run fails."""
    import terrain.plot as plot_module

    from conftest import write_tif

    dem = write_tif(tmp_path / "dem.tif", np.arange(64, dtype=np.float32).reshape(8, 8))
    out = tmp_path / "map.png"
    real = plot_module._dem_map_data

    def another_run_writes_first(*args, **kwargs):
        out.write_bytes(b"the other run's map")
        return real(*args, **kwargs)

    monkeypatch.setattr(plot_module, "_dem_map_data", another_run_writes_first)
    with pytest.raises(TerrainError, match="already exists"):
        plot_module.plot_dem(dem, out)
    assert out.read_bytes() == b"the other run's map"
    assert sorted(os.listdir(tmp_path)) == ["dem.tif", "map.png"]
    # With overwrite, the last run wins with a complete map.
    plot_module.plot_dem(dem, out, overwrite=True)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- display decoding


def _variant(folder, name, kind):
    """The WGS84 sample's elevations written as ``kind``: ``plain`` (float32 metres, no
    band unit), ``scaled`` (uint16 counts, scale 0.1 / offset -100, nodata 0) or ``ft``
    (float32 feet, band unit 'ft')."""
    with rasterio.open(WGS84) as ds:
        z = ds.read(1, masked=True).astype("float64").filled(np.nan)
        profile = dict(driver="GTiff", width=ds.width, height=ds.height, count=1,
                       crs=ds.crs, transform=ds.transform)
    path = folder / name
    if kind == "scaled":
        raw = np.where(np.isnan(z), 0, np.round((z + 100.0) / 0.1)).astype("uint16")
        with rasterio.open(path, "w", dtype="uint16", nodata=0, **profile) as dst:
            dst.write(raw, 1)
            dst.scales = (0.1,)
            dst.offsets = (-100.0,)
    else:
        data = (z / 0.3048 if kind == "ft" else z).astype("float32")
        with rasterio.open(path, "w", dtype="float32", nodata=np.nan, **profile) as dst:
            dst.write(data, 1)
            if kind == "ft":
                dst.units = ("ft",)
    return path


def _map(captured, src, folder, max_pixels, **kw):
    captured.clear()
    plot.plot_dem(src, folder / f"m{len(os.listdir(folder))}.png", max_pixels=max_pixels, **kw)
    (call,) = captured
    return call


@pytest.mark.parametrize("kind", ["scaled", "ft"])
def test_elevation_map_does_not_depend_on_raster_size(captured, tmp_path, kind):
    src = _variant(tmp_path, f"{kind}.tif", kind)
    plain = _variant(tmp_path, "plain.tif", "plain")
    out = tmp_path / "maps"
    out.mkdir()
    small = _map(captured, src, out, 64, product="elevation")  # decimated read
    big = _map(captured, src, out, 4096, product="elevation")  # whole raster in memory
    z = terrain.open_dem(src).values  # GDAL decoding, independent of the map code
    assert small["values"].shape == (55, 64) and big["values"].shape == z.shape
    np.testing.assert_array_equal(big["values"], z)
    # Small: the decoded elevations averaged as GDAL averages a float file.
    expected = full_resolution_then_decimated(terrain.open_dem(src), (55, 64),
                                              Resampling.average, tmp_path)
    np.testing.assert_allclose(small["values"], expected, rtol=0, atol=0.1)
    span = np.nanmax(z) - np.nanmin(z)
    assert abs(np.nanmin(small["values"]) - np.nanmin(z)) < 0.1 * span
    assert abs(np.nanmax(small["values"]) - np.nanmax(z)) < 0.1 * span
    # The backdrop's relief is the metre DEM's, whatever the file's encoding.
    ref = _map(captured, plain, out, 64, product="elevation")
    np.testing.assert_allclose(small["shade"], ref["shade"], atol=2.0)
    # And so is the backdrop of a product file's map drawn over this DEM.
    slope = tmp_path / "slope.tif"
    process_file(src, {"slope": slope}, Options())
    plain_slope = tmp_path / "plain_slope.tif"
    process_file(plain, {"slope": plain_slope}, Options())
    got = []
    for tif, dem in ((slope, src), (plain_slope, plain)):
        captured.clear()
        plot.plot_product_file(tif, out / f"p{len(got)}.png", product="slope", dem=dem,
                               max_pixels=64)
        got.append(captured[0]["shade"])
    np.testing.assert_allclose(got[0], got[1], atol=2.0)


def test_large_dem_hillshade_map_uses_the_chosen_method(captured, tmp_path):
    opts = Options(method="central")
    plot.plot_dem(WGS84, tmp_path / "m.png", product="hillshade", opts=opts, max_pixels=64)
    (call,) = captured
    assert "central method" in call["title"]
    # What `terrain hillshade --method central` writes, read back at the map's size.
    ref = tmp_path / "central.tif"
    process_file(WGS84, {"hillshade": ref}, opts)
    with rasterio.open(ref) as ds:
        expected = ds.read(1, out_shape=call["values"].shape, resampling=Resampling.average,
                           masked=True, out_dtype="float64").filled(np.nan)
    np.testing.assert_allclose(call["values"], expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("kind, unit", [("plain", "m"), ("ft", "ft")])
def test_elevation_colorbar_unit_is_the_files(captured, tmp_path, kind, unit):
    src = _variant(tmp_path, f"{kind}.tif", kind)
    with rasterio.open(src) as ds:  # GDAL's own reading of the band unit
        assert (ds.units[0] or "") == ("" if kind == "plain" else "ft")
    for max_pixels in (64, 4096):
        call = _map(captured, src, tmp_path, max_pixels, product="elevation")
        assert call["units"] == unit
    # An explicit z factor other than 1 leaves the values in the file's own unit.
    call = _map(captured, _variant(tmp_path, "p2.tif", "plain"), tmp_path, 64,
                product="elevation", opts=Options(z_factor=0.3048))
    assert call["units"] == "file units"


def _sample_display(tmp_path, products=("slope", "aspect")):
    """The sample's display grid, filled by one streaming pass (as analyze fills it)."""
    from terrain.raster import raster_info

    info = raster_info(WGS84)
    display = plot.display_grid(info, list(products), max_pixels=300)
    process_file(info, {p: tmp_path / f"{p}.tif" for p in products}, Options(),
                 display=display, product_opts={"hillshade": plot.backdrop_options(Options())})
    return info, display


def _pixels(path):
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im)


class _CountingFork:
    """os.fork, counted in the parent; the children's pids kept."""

    def __init__(self):
        self.pids = []

    def __call__(self):
        pid = _real_fork()
        if pid:
            self.pids.append(pid)
        return pid


_real_fork = getattr(os, "fork", None)
needs_fork = pytest.mark.skipif(not plot._can_fork(), reason="maps are forked on Linux only")


@pytest.mark.parametrize("processes", [False, pytest.param(True, marks=needs_fork)])
def test_maps_drawn_at_once_equal_maps_drawn_one_by_one(tmp_path, monkeypatch, processes):
    """render_displays draws the figures in threads, or in this process and a forked
    child: each map is the one drawn alone."""
    info, display = _sample_display(tmp_path)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    forks = _CountingFork()
    monkeypatch.setattr(os, "fork", forks, raising=False)
    together = plot.render_displays(
        {"slope": tmp_path / "slope2.png", "aspect": tmp_path / "aspect2.png"}, display, info,
        Options(), source=str(WGS84), processes=processes)
    assert len(forks.pids) == (1 if processes else 0)
    alone = [plot.render_display(tmp_path / f"{p}1.png", p, display, info, Options(),
                                 source=str(WGS84)) for p in ("slope", "aspect")]
    assert together == [str(tmp_path / "slope2.png"), str(tmp_path / "aspect2.png")]
    for one, both in zip(alone, together):
        np.testing.assert_array_equal(_pixels(one), _pixels(both))
    assert not np.array_equal(_pixels(together[0]), _pixels(together[1]))


@pytest.mark.parametrize("processes", [False, pytest.param(True, marks=needs_fork)])
def test_a_map_failing_among_several_writes_none(tmp_path, monkeypatch, processes):
    """The maps are written once all are drawn: one failing leaves no map at all. In a
    forked child (the second map goes there) the error is the child's own, raised here,
    and the child is gone."""
    info, display = _sample_display(tmp_path)
    real = plot._figure

    def failing_aspect(product, *args, **kwargs):
        if product == "aspect":
            raise OSError(28, "No space left on device")
        return real(product, *args, **kwargs)

    monkeypatch.setattr(plot, "_figure", failing_aspect)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    forks = _CountingFork()
    monkeypatch.setattr(os, "fork", forks, raising=False)
    with pytest.raises(OSError, match="No space left") as raised:
        plot.render_displays({"slope": tmp_path / "s.png", "aspect": tmp_path / "a.png"},
                             display, info, Options(), source=str(WGS84), processes=processes)
    assert raised.value.errno == 28
    assert sorted(os.listdir(tmp_path)) == ["aspect.tif", "slope.tif"]
    assert len(forks.pids) == (1 if processes else 0)
    for pid in forks.pids:  # reaped: not even a zombie is left
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def _drawn_in(monkeypatch, behave):
    """plot._figure counted per process: ``behave(in_child)`` runs first in each."""
    real = plot._figure
    parent = os.getpid()
    drawn_here = []

    def figure(product, *args, **kwargs):
        behave(os.getpid() != parent)
        if os.getpid() == parent:
            drawn_here.append(product)
        return real(product, *args, **kwargs)

    monkeypatch.setattr(plot, "_figure", figure)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    return drawn_here


@needs_fork
@pytest.mark.parametrize("how", ["dies", "hangs"])
def test_a_forked_map_that_dies_or_hangs_is_drawn_here(tmp_path, monkeypatch, how):
    """A child that ends without an answer (killed: out of memory) or does not answer
    in time is stopped and reaped, and its map is drawn in this process: the maps are
    the ones drawn alone."""
    info, display = _sample_display(tmp_path)

    def behave(in_child):
        if in_child and how == "dies":
            os._exit(9)
        if in_child:
            time.sleep(3600)

    drawn_here = _drawn_in(monkeypatch, behave)
    monkeypatch.setattr(plot, "CHILD_PATIENCE", 1.0)
    forks = _CountingFork()
    monkeypatch.setattr(os, "fork", forks, raising=False)
    began = time.monotonic()
    together = plot.render_displays(
        {"slope": tmp_path / "s2.png", "aspect": tmp_path / "a2.png"}, display, info,
        Options(), source=str(WGS84), processes=True)
    assert time.monotonic() - began < 60
    assert drawn_here == ["slope", "aspect"]
    (pid,) = forks.pids
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    monkeypatch.undo()
    alone = [plot.render_display(tmp_path / f"{p}1.png", p, display, info, Options(),
                                 source=str(WGS84)) for p in ("slope", "aspect")]
    for a, b in zip(together, alone):
        assert np.array_equal(_pixels(a), _pixels(b))


@needs_fork
def test_a_map_failing_here_stops_the_forked_child(tmp_path, monkeypatch):
    """When this process's own map fails, the child still drawing is stopped and
    reaped, and no map is written."""
    info, display = _sample_display(tmp_path)

    def behave(in_child):
        if in_child:
            time.sleep(3600)
        raise OSError(28, "No space left on device")

    _drawn_in(monkeypatch, behave)
    forks = _CountingFork()
    monkeypatch.setattr(os, "fork", forks, raising=False)
    with pytest.raises(OSError, match="No space"):
        plot.render_displays({"slope": tmp_path / "s.png", "aspect": tmp_path / "a.png"},
                             display, info, Options(), source=str(WGS84), processes=True)
    assert sorted(os.listdir(tmp_path)) == ["aspect.tif", "slope.tif"]
    (pid,) = forks.pids
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


@needs_fork
def test_maps_fork_while_another_thread_draws(tmp_path, monkeypatch):
    """matplotlib draws every figure under one class-wide lock: another thread holding
    it when the process forks must not leave the child waiting for it forever (the
    child answers; this process draws only its own share)."""
    from matplotlib.figure import Figure

    info, display = _sample_display(tmp_path)
    drawn_here = _drawn_in(monkeypatch, lambda in_child: None)
    monkeypatch.setattr(plot, "CHILD_PATIENCE", 5.0)
    holding, release = threading.Event(), threading.Event()

    def another_draw():
        with Figure._render_lock:
            holding.set()
            release.wait(10)

    other = threading.Thread(target=another_draw)
    other.start()
    holding.wait(10)
    threading.Timer(0.5, release.set).start()
    try:
        plot.render_displays({"slope": tmp_path / "s.png", "aspect": tmp_path / "a.png"},
                             display, info, Options(), source=str(WGS84), processes=True)
    finally:
        release.set()
        other.join()
    assert drawn_here == ["slope"]
