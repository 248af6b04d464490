"""Elevation rasters as xarray DataArrays, and their ground geometry."""

from __future__ import annotations

import os

import numpy as np
import rasterio
import xarray as xr

from .engine import as_elevation
from .errors import GeometryError, TerrainError
from .raster import GDAL_ENV, describe, open_raster, read_band
from .spacing import Grid, grid_from_coords, grid_from_spacing, pixel_centres


def open_dem(path, *, band: int = 1, src_crs=None, chunks=None) -> xr.DataArray:
    """Read an elevation band into a DataArray with true pixel-centre coordinates.

    Parameters
    ----------
    path : str or os.PathLike
        Any raster GDAL reads (GeoTIFF, ASCII grid, SRTM .hgt, VRT ...).
    band : int, optional
        1-based band number.
    src_crs : str or CRS, optional
        CRS to assign to a file that has none (e.g. ``"EPSG:32616"``).
    chunks : int, tuple or dict, optional
        Return a lazy dask-backed array with these chunks instead of reading now.

    Returns
    -------
    xarray.DataArray
        Named ``elevation``, dims ``("y", "x")``, float32 (float64 kept), NaN
        where the file has no data (its nodata value, NaN, +-inf), with rioxarray
        georeferencing and the file's nodata kept as ``encoded_nodata``.

    Raises
    ------
    TerrainError
        For anything that makes the file unusable, with a message naming it.

    Examples
    --------
    >>> import terrain
    >>> dem = terrain.open_dem("sample_data/jacksboro_utm16n.tif")
    >>> dem.dims, dem.dtype.name
    (('y', 'x'), 'float32')
    """
    import rioxarray  # noqa: F401  (registers the .rio accessor)

    path = os.fspath(path)
    with rasterio.Env(**GDAL_ENV):
        with open_raster(path) as ds:
            info = describe(ds, path, band, src_crs)
            if chunks is None:
                data = as_elevation(read_band(ds, path, band), info.nodata)
    if chunks is not None:
        from .dask_runner import lazy_elevation

        data = lazy_elevation(info, chunks)
    x, y = pixel_centres(info.transform, info.shape)
    dem = xr.DataArray(data, dims=("y", "x"), coords={"y": y, "x": x}, name="elevation")
    dem = dem.rio.write_crs(info.crs)
    dem = dem.rio.write_transform(info.transform)
    dem.attrs["units"] = "m"
    dem.attrs["source"] = path
    if info.nodata is not None:
        dem.encoding["_FillValue"] = info.nodata
        dem.rio.update_encoding({"_FillValue": info.nodata}, inplace=True)
    return dem


def elevation_of(dem, *, spacing=None, geometry: str = "geodesic", name: str | None = None):
    """(elevation array, Grid, template DataArray or None) for any accepted input.

    A DataArray with a CRS (rioxarray) is measured on its CRS (on the ground, or in
    CRS units with ``geometry="planar"``); without CRS its x / y coordinates are
    metres; a bare array needs ``spacing=(dy, dx)``.
    """
    if isinstance(dem, xr.DataArray):
        import rioxarray  # noqa: F401  (the .rio accessor)

        label = name or dem.attrs.get("source") or f"DataArray {dem.name or ''}".strip()
        da2 = dem.squeeze(drop=True) if dem.ndim > 2 else dem
        if da2.ndim != 2:
            raise GeometryError(f"{label}: expected a 2-D elevation grid, got dims {dem.dims}")
        ydim, xdim = _spatial_dims(da2)
        da2 = da2.transpose(ydim, xdim)
        if spacing is not None:
            raise TerrainError(f"{label}: spacing= is for bare arrays; a DataArray has coordinates")
        crs = da2.rio.crs
        if xdim not in da2.coords or ydim not in da2.coords:
            raise GeometryError(f"{label}: needs {ydim} and {xdim} coordinates to know its spacing")
        grid = grid_from_coords(da2[xdim].values, da2[ydim].values, crs, geometry=geometry,
                                name=label)
        nodata = da2.rio.encoded_nodata if crs is not None else None
        if nodata is None and crs is not None:
            nodata = da2.rio.nodata
        data = da2.data
        if not _is_dask(data):
            data = as_elevation(np.array(data), nodata)
        else:
            # Copy: a block may be a view of the caller's own array.
            data = data.map_blocks(lambda block: as_elevation(np.array(block), nodata),
                                   dtype=np.float64 if data.dtype == np.float64 else np.float32)
        return data, grid, da2
    if isinstance(dem, xr.Dataset):
        raise TerrainError("a gradient Dataset is only accepted by slope, aspect and hillshade")
    arr = np.asarray(dem)
    label = name or "the array"
    if spacing is None:
        raise GeometryError(f"{label}: a bare array needs spacing=(dy, dx) in metres")
    grid = grid_from_spacing(arr.shape, spacing, name=label)
    return as_elevation(np.array(arr)), grid, None


def _spatial_dims(da2) -> tuple[str, str]:
    dims = da2.dims
    for ydim, xdim in (("y", "x"), ("lat", "lon"), ("latitude", "longitude")):
        if ydim in dims and xdim in dims:
            return ydim, xdim
    return dims[0], dims[1]


def _is_dask(data) -> bool:
    return type(data).__module__.startswith("dask")


__all__ = ["open_dem", "elevation_of", "Grid"]
