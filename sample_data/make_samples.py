"""Rebuild the sample DEMs in this directory.

Source: ``jacksboro_fault_dem.npz``, the public-domain USGS 3-arc-second DEM of
the Jacksboro Fault area (Tennessee-Kentucky border, USA) that ships with
matplotlib as sample data. The ``.npz`` holds a bare int16 elevation grid
(metres) plus six scalars describing its geographic grid. Two quirks of that
file matter here:

* the key named ``ymin`` holds the *north* edge and ``ymax`` the *south* edge
  (row 0 of ``elevation`` is the northernmost row);
* ``xmin``/``xmax``/``ymin``/``ymax`` are outer pixel *edges*, not pixel
  centres: (xmax - xmin) / dx == ncols exactly.

The file carries no CRS; it is treated as WGS84 geographic (EPSG:4326).

Outputs (written next to this script, overwriting existing files):

* ``jacksboro_wgs84.tif``  - the grid as-is: EPSG:4326, int16, nodata -32768.
* ``jacksboro_utm16n.tif`` - reprojected to EPSG:32616 (UTM 16N) at 30 m,
  bilinear, float32, nodata -9999 outside the source footprint.

Usage::

    python sample_data/make_samples.py
"""

from pathlib import Path

import numpy as np
import rasterio
from matplotlib import cbook
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.warp import calculate_default_transform, reproject

OUT_DIR = Path(__file__).resolve().parent
WGS84_PATH = OUT_DIR / "jacksboro_wgs84.tif"
UTM_PATH = OUT_DIR / "jacksboro_utm16n.tif"

SRC_CRS = CRS.from_epsg(4326)
DST_CRS = CRS.from_epsg(32616)  # WGS 84 / UTM zone 16N
DST_RES = 30.0  # metres

SRC_NODATA = -32768  # int16 minimum; declared though the grid has no holes
DST_NODATA = -9999.0

# Documented facts about the npz, used only to *check* the file's own values.
EXPECTED_SHAPE = (344, 403)
EXPECTED_PIXEL = 1 / 1200  # degrees (3 arc-seconds)
EXPECTED_WEST = -84.41375
EXPECTED_NORTH = 36.73291667

TAGS = {
    "SOURCE": "matplotlib sample data jacksboro_fault_dem.npz "
    "(USGS 3-arc-second DEM, Jacksboro Fault area, TN/KY, USA)",
    "LICENSE": "Public domain (USGS)",
}


def load_dem():
    """Return (elevation, transform) read from matplotlib's sample npz.

    The geotransform is derived from the scalars stored in the file; the
    documented numbers above are only used to sanity-check them.
    """
    path = cbook.get_sample_data("jacksboro_fault_dem.npz", asfileobj=False)
    with np.load(path) as npz:
        print(f"source: {path}")
        for key in npz.files:
            value = npz[key]
            shown = value.item() if value.ndim == 0 else f"array {value.shape}"
            print(f"  {key:9s} {str(value.dtype):8s} {shown!r}")
        elev = npz["elevation"]
        dx, dy = float(npz["dx"]), float(npz["dy"])
        west, east = float(npz["xmin"]), float(npz["xmax"])
        # Mislabelled in the file: "ymin" is the north edge, "ymax" the south.
        north, south = float(npz["ymin"]), float(npz["ymax"])

    nrows, ncols = elev.shape
    assert elev.dtype == np.int16, elev.dtype
    assert elev.shape == EXPECTED_SHAPE, elev.shape
    assert north > south, "expected the 'ymin' key to hold the north edge"
    assert np.isclose(dx, EXPECTED_PIXEL, rtol=0, atol=1e-12), dx
    assert np.isclose(dy, EXPECTED_PIXEL, rtol=0, atol=1e-12), dy
    assert np.isclose(west, EXPECTED_WEST, rtol=0, atol=1e-8), west
    assert np.isclose(north, EXPECTED_NORTH, rtol=0, atol=1e-8), north
    # The bounds are outer edges of a pixel-is-area grid.
    assert np.isclose((east - west) / dx, ncols, rtol=0, atol=1e-6)
    assert np.isclose((north - south) / dy, nrows, rtol=0, atol=1e-6)

    transform = from_origin(west, north, dx, dy)  # north-up: negative height
    return elev, transform


def write_wgs84(elev, transform):
    """Write the grid unchanged as an EPSG:4326 int16 GeoTIFF."""
    profile = dict(
        driver="GTiff",
        width=elev.shape[1],
        height=elev.shape[0],
        count=1,
        dtype="int16",
        crs=SRC_CRS,
        transform=transform,
        nodata=SRC_NODATA,
        compress="deflate",
        predictor=2,  # horizontal differencing, for integer data
        tiled=True,
        blockxsize=256,
        blockysize=256,
    )
    with rasterio.open(WGS84_PATH, "w", **profile) as dst:
        dst.write(elev, 1)
        _describe(dst)


def write_utm(elev, src_transform):
    """Reproject the grid to UTM 16N at 30 m and write a float32 GeoTIFF."""
    height, width = elev.shape
    bounds = rasterio.transform.array_bounds(height, width, src_transform)
    west, south, east, north = bounds
    dst_transform, dst_width, dst_height = calculate_default_transform(
        SRC_CRS, DST_CRS, width, height,
        left=west, bottom=south, right=east, top=north,
        resolution=DST_RES,
    )
    dst_array = np.full((dst_height, dst_width), DST_NODATA, dtype=np.float32)
    reproject(
        source=elev.astype(np.float32),
        destination=dst_array,
        src_transform=src_transform,
        src_crs=SRC_CRS,
        src_nodata=SRC_NODATA,
        dst_transform=dst_transform,
        dst_crs=DST_CRS,
        dst_nodata=DST_NODATA,
        resampling=Resampling.bilinear,
    )
    profile = dict(
        driver="GTiff",
        width=dst_width,
        height=dst_height,
        count=1,
        dtype="float32",
        crs=DST_CRS,
        transform=dst_transform,
        nodata=DST_NODATA,
        compress="deflate",
        predictor=3,  # floating-point predictor
        tiled=True,
        blockxsize=256,
        blockysize=256,
    )
    with rasterio.open(UTM_PATH, "w", **profile) as dst:
        dst.write(dst_array, 1)
        _describe(dst)


def _describe(dst):
    """Band description, units and provenance tags shared by both outputs."""
    dst.set_band_description(1, "elevation")
    dst.units = ("m",)
    dst.update_tags(AREA_OR_POINT="Area", **TAGS)


def _summary(path):
    with rasterio.open(path) as ds:
        data = ds.read(1, masked=True)
        print(f"{path.name}: {ds.width}x{ds.height} {ds.dtypes[0]} {ds.crs}")
        print(f"  transform: {tuple(ds.transform)[:6]}")
        print(f"  bounds:    {tuple(ds.bounds)}")
        print(f"  elevation: {data.min()} .. {data.max()} m, "
              f"nodata cells: {int(np.ma.count_masked(data))}")
        print(f"  size:      {path.stat().st_size} bytes")


def main():
    elev, transform = load_dem()
    write_wgs84(elev, transform)
    write_utm(elev, transform)
    for path in (WGS84_PATH, UTM_PATH):
        _summary(path)


if __name__ == "__main__":
    main()
