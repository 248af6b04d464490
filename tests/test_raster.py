"""Opening and describing raster files: every failure is a TerrainError naming the file."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.errors import RasterioError

import terrain
from conftest import UTM_SAMPLE, WGS84_SAMPLE
from terrain.raster import parse_crs, raster_info


def test_bad_files_refused(bad_raster):
    kind, path, kwargs, word = bad_raster
    with pytest.raises(terrain.TerrainError) as err:
        raster_info(path, **kwargs)
    assert path in str(err.value)
    assert word in str(err.value).lower()
    assert not isinstance(err.value, RasterioError)
    assert "\n" not in str(err.value)


def test_missing_crs_given_by_caller(make_tif):
    path = make_tif(np.ones((3, 4), np.float32), crs=None)
    info = raster_info(path, src_crs="EPSG:32616")
    assert info.crs == rasterio.crs.CRS.from_epsg(32616)


@pytest.mark.parametrize("src_crs", ["EPSG:99999999", "not a crs"])
def test_bad_src_crs(src_crs, make_tif):
    path = make_tif(np.ones((3, 4), np.float32), crs=None)
    with pytest.raises(terrain.TerrainError):
        raster_info(path, src_crs=src_crs)
    with pytest.raises(terrain.TerrainError):
        parse_crs(src_crs)


def test_complex_band_refused(make_tif):
    path = make_tif(np.ones((3, 4), np.complex64))
    with pytest.raises(terrain.TerrainError, match="complex"):
        raster_info(path)


@pytest.mark.parametrize("path", [UTM_SAMPLE, WGS84_SAMPLE])
def test_describe_sample(path):
    info = raster_info(path)
    with rasterio.open(path) as ds:
        assert info.shape == (ds.height, ds.width)
        assert info.dtype == ds.dtypes[0]
        assert info.nodata == ds.nodata
        assert info.crs == ds.crs
        assert info.transform == ds.transform
        assert info.block_shape == tuple(ds.block_shapes[0])
    assert info.path == str(path)
