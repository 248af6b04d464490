"""open_dem: what a loaded DEM looks like, which files are refused, other accepted inputs."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine
from rasterio.errors import RasterioError

import terrain
from conftest import UTM_SAMPLE, WGS84_SAMPLE


def test_bad_files_refused(bad_raster):
    kind, path, kwargs, word = bad_raster
    with pytest.raises(terrain.TerrainError) as err:
        terrain.open_dem(path, **kwargs)
    assert path in str(err.value)
    assert word in str(err.value).lower()
    assert not isinstance(err.value, RasterioError)


def test_missing_crs_given_by_caller(make_tif):
    z = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = make_tif(z, crs=None)
    dem = terrain.open_dem(path, src_crs="EPSG:32616")
    assert dem.rio.crs == rasterio.crs.CRS.from_epsg(32616)
    np.testing.assert_array_equal(dem.values, z)


@pytest.mark.parametrize("path, dtype", [(UTM_SAMPLE, np.float32), (WGS84_SAMPLE, np.float32)])
def test_sample_as_dataarray(path, dtype):
    dem = terrain.open_dem(path)
    with rasterio.open(path) as ds:
        raw = ds.read(1)
        nodata = ds.nodata
        rows, cols = ds.height, ds.width
        xs, _ = rasterio.transform.xy(ds.transform, np.zeros(cols, int), np.arange(cols))
        _, ys = rasterio.transform.xy(ds.transform, np.arange(rows), np.zeros(rows, int))
        assert dem.rio.crs == ds.crs
        assert dem.rio.transform() == ds.transform
    assert dem.name == "elevation"
    assert dem.dims == ("y", "x")
    assert dem.dtype == dtype
    np.testing.assert_array_equal(dem["x"].values, xs)
    np.testing.assert_array_equal(dem["y"].values, ys)
    assert dem.rio.encoded_nodata == nodata
    nod = raw == nodata
    assert np.all(np.isnan(dem.values[nod]))
    np.testing.assert_array_equal(dem.values[~nod], raw[~nod].astype(dtype))


@pytest.mark.parametrize("dtype, nodata, expected", [
    # 32-bit integers can exceed float32's 24-bit mantissa: float64 (issue 8).
    ("int16", -32768, np.float32), ("uint16", 0, np.float32), ("int32", -9999, np.float64),
    ("float32", -9999.0, np.float32), ("float64", -1e30, np.float64), ("float32", None, np.float32),
])
def test_dtypes_and_nodata(dtype, nodata, expected, make_tif):
    z = np.array([[10, 20, 30], [40, 50, 60], [70, 80, 90]], dtype=dtype)
    hole = np.zeros(z.shape, bool)
    if nodata is not None:
        z[1, 1] = nodata
        hole[1, 1] = True
    if np.dtype(dtype).kind == "f":
        z[0, 2], z[2, 0], z[2, 2] = np.nan, np.inf, -np.inf
        hole[0, 2] = hole[2, 0] = hole[2, 2] = True
    dem = terrain.open_dem(make_tif(z, nodata=nodata))
    assert dem.dtype == expected
    np.testing.assert_array_equal(np.isnan(dem.values), hole)
    np.testing.assert_array_equal(dem.values[~hole], z[~hole].astype(expected))
    assert dem.rio.encoded_nodata == nodata or (nodata is None and dem.rio.encoded_nodata is None)


def test_band_selection(tmp_path):
    z1 = np.ones((3, 4), np.float32)
    path = str(tmp_path / "two.tif")
    with rasterio.open(path, "w", driver="GTiff", width=4, height=3, count=2, dtype="float32",
                       crs="EPSG:32616", transform=Affine(30, 0, 0, 0, -30, 0)) as ds:
        ds.write(z1, 1)
        ds.write(z1 * 7, 2)
    np.testing.assert_array_equal(terrain.open_dem(path, band=2).values, 7.0)


def test_south_up_file(make_tif):
    z = np.arange(12, dtype=np.float32).reshape(3, 4)
    transform = Affine(30.0, 0, 500000.0, 0, 30.0, 4000000.0)
    dem = terrain.open_dem(make_tif(z, transform=transform))
    np.testing.assert_array_equal(dem["y"].values, 4000000.0 + 30.0 * (np.arange(3) + 0.5))
    assert dem.rio.transform() == transform


def test_ascii_grid(tmp_path):
    """Any GDAL raster: an ESRI ASCII grid (no CRS in it: given with src_crs)."""
    path = tmp_path / "dem.asc"
    path.write_text("ncols 4\nnrows 3\nxllcorner 500000\nyllcorner 4000000\ncellsize 30\n"
                    "NODATA_value -9999\n1 2 3 4\n5 -9999 7 8\n9 10 11 12\n")
    dem = terrain.open_dem(path, src_crs="EPSG:32616")
    np.testing.assert_array_equal(np.isnan(dem.values), [[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(dem["x"].values, 500015.0 + 30.0 * np.arange(4))
    np.testing.assert_array_equal(dem["y"].values, 4000075.0 - 30.0 * np.arange(3))


@pytest.mark.parametrize("call", [
    lambda: terrain.gradient(np.ones((3, 3))),                               # no spacing
    lambda: terrain.gradient(xr.DataArray(np.ones((3, 3)), dims=("y", "x"),
                                          coords={"y": [0.0, 1, 2], "x": [0.0, 1, 2]}),
                             spacing=(1.0, 1.0)),                              # spacing + coords
    lambda: terrain.gradient(xr.DataArray(np.ones((3, 3)), dims=("y", "x"))),  # no coordinates
    lambda: terrain.gradient(xr.Dataset({"z": (("y", "x"), np.ones((3, 3)))})),
    lambda: terrain.slope(xr.Dataset({"z": (("y", "x"), np.ones((3, 3)))})),  # no dzdx / dzdy
    lambda: terrain.gradient(np.ones((1, 5)), spacing=(1.0, 1.0)),            # too small
    lambda: terrain.gradient(np.ones((2, 3, 4)), spacing=(1.0, 1.0)),         # 3-D
])
def test_other_inputs_refused(call):
    with pytest.raises(terrain.TerrainError):
        call()


def test_lat_lon_dims_and_band_dim():
    """A (band, lat, lon) DataArray with one band is read as (y, x) on its CRS."""
    lat = 45.0 - np.arange(4) / 1200
    lon = 7.0 + np.arange(5) / 1200
    z = np.random.default_rng(0).normal(500, 10, (1, 4, 5))
    da = xr.DataArray(z, dims=("band", "lat", "lon"),
                      coords={"band": [1], "lat": lat, "lon": lon}).rio.write_crs("EPSG:4326")
    da = da.rio.set_spatial_dims(x_dim="lon", y_dim="lat")
    ref = xr.DataArray(z[0], dims=("y", "x"), coords={"y": lat, "x": lon}).rio.write_crs(
        "EPSG:4326")
    np.testing.assert_array_equal(terrain.slope(da).values, terrain.slope(ref).values)
