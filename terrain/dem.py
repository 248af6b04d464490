"""Elevation rasters as xarray DataArrays, and their ground geometry."""

from __future__ import annotations

import os

import numpy as np
import rasterio
import xarray as xr

from .engine import Z_FACTOR_DEFAULT, as_elevation, file_elevation
from .errors import GeometryError, TerrainError
from .raster import GDAL_ENV, describe, open_raster, read_window, unit_factor, vertical_crs_unit
from .spacing import Grid, grid_from_coords, grid_from_spacing, pixel_centres


def open_dem(path, *, band: int = 1, src_crs=None, chunks=None) -> xr.DataArray:
    """Read an elevation band into a DataArray with true pixel-centre coordinates.

    Parameters
    ----------
    path : str or os.PathLike, or a list of them
        Any raster GDAL reads (GeoTIFF, ASCII grid, SRTM .hgt, VRT ...), also
        ``/vsizip/...``, ``/vsicurl/...`` or http(s) URLs and subdatasets such as
        ``NETCDF:"f.nc":elevation``. A list (or tuple) of tiles on one grid (paths,
        globs, folders, list files: see :func:`terrain.tiles.expand_inputs`) gives
        their mosaic, lazily (dask, ``chunks`` default 1024), gaps as NaN; its
        products equal the per-tile outputs of ``terrain analyze TILE... -d``.
    band : int, optional
        1-based band number.
    src_crs : str or CRS, optional
        CRS to assign to a file that has none (e.g. ``"EPSG:32616"``).
    chunks : int, tuple or dict, optional
        Return a lazy dask-backed array with these chunks instead of reading now.

    Returns
    -------
    xarray.DataArray
        Named ``elevation``, dims ``("y", "x")``, float32 (float64 kept, and for
        32- and 64-bit integers), the band's scale and offset applied, NaN where the
        file has no data (its nodata value, GDAL mask or alpha band, NaN, +-inf),
        with rioxarray georeferencing and the file's nodata kept as
        ``encoded_nodata``. Elevations stay in the file's vertical unit: attrs
        ``units``, ``z_factor`` (metres per unit, used by the compute functions
        unless ``z_factor=`` is given) and ``z_factor_source`` say which.

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

    if isinstance(path, (list, tuple)):
        path, band, src_crs, chunks = _tile_mosaic(path, band, src_crs, chunks)
    path = os.fspath(path)
    with rasterio.Env(**GDAL_ENV):
        with open_raster(path) as ds:
            info = describe(ds, path, band, src_crs)
            if chunks is None:
                data = file_elevation(*read_window(ds, info), info)
    if chunks is not None:
        from .dask_runner import lazy_elevation

        data = lazy_elevation(info, chunks)
    x, y = pixel_centres(info.transform, info.shape)
    dem = xr.DataArray(data, dims=("y", "x"), coords={"y": y, "x": x}, name="elevation")
    dem = dem.rio.write_crs(info.crs)
    dem = dem.rio.write_transform(info.transform)
    dem.attrs["units"] = info.vertical_unit or "m"
    dem.attrs["z_factor"] = info.z_factor
    dem.attrs["z_factor_source"] = info.z_factor_source
    dem.attrs["source"] = path
    if info.nodata is not None:
        dem.encoding["_FillValue"] = info.nodata
        dem.rio.update_encoding({"_FillValue": info.nodata}, inplace=True)
    if info.scale != 1.0 or info.offset != 0.0:
        # Decoded as xarray does: the file's raw values were scaled (see _fill_value).
        dem.encoding["scale_factor"] = info.scale
        dem.encoding["add_offset"] = info.offset
    return dem


def _tile_mosaic(paths, band, src_crs, chunks):
    """(path, band, src_crs, chunks) to open for a list of tiles: their mosaic VRT, lazily."""
    from .tiles import mosaic_vrt

    path, band, src_crs = mosaic_vrt(paths, band=band, src_crs=src_crs)
    return path, band, src_crs, 1024 if chunks is None else chunks


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
        nodata = _fill_value(da2)
        scale = float(da2.attrs.get("scale_factor", 1.0))
        offset = float(da2.attrs.get("add_offset", 0.0))
        kw = dict(scale=scale, offset=offset, name=label)
        data = da2.data
        if not _is_dask(data):
            if isinstance(data, np.ma.MaskedArray):
                kw["mask"] = ~np.ma.getmaskarray(data)
                data = np.ma.getdata(data)
            data = as_elevation(np.array(data), nodata, **kw)
        else:
            # Copy: a block may be a view of the caller's own array.
            from .engine import elevation_dtype

            dtype = elevation_dtype(data.dtype)
            data = data.map_blocks(
                lambda block: as_elevation(np.array(block), nodata, dtype=dtype, **kw), dtype=dtype)
        return data, grid, da2
    if isinstance(dem, xr.Dataset):
        raise TerrainError("a gradient Dataset is only accepted by slope, aspect and hillshade")
    label = name or "the array"
    mask = None
    if isinstance(dem, np.ma.MaskedArray):
        # ds.read(masked=True) and friends: the mask marks the holes.
        mask = ~np.ma.getmaskarray(dem)
        dem = np.ma.getdata(dem)
    arr = np.asarray(dem)
    if spacing is None:
        raise GeometryError(f"{label}: a bare array needs spacing=(dy, dx) in metres")
    grid = grid_from_spacing(arr.shape, spacing, name=label)
    return as_elevation(np.array(arr), mask=mask, name=label), grid, None


def _fill_value(da2):
    """The nodata value of a DataArray: rioxarray's (encoded) nodata or a ``_FillValue``.

    Data decoded with a scale or offset (``encoding`` has them, as after ``open_dem``
    or rioxarray's ``mask_and_scale``) already has NaN holes: its encoded nodata is a
    raw value that a decoded elevation may equal by chance, so it is not compared.
    """
    enc = da2.encoding
    decoded = enc.get("scale_factor", 1.0) != 1.0 or enc.get("add_offset", 0.0) != 0.0
    if decoded:
        candidates = (da2.attrs.get("_FillValue"), da2.attrs.get("nodata"))
    else:
        candidates = (da2.rio.encoded_nodata, da2.rio.nodata, da2.attrs.get("_FillValue"),
                      enc.get("_FillValue"), da2.attrs.get("nodata"))
    for value in candidates:
        if value is not None:
            try:
                value = float(np.asarray(value).ravel()[0])
            except (TypeError, ValueError, IndexError):
                continue
            if not np.isnan(value):
                return value
    return None


def z_factor_of(dem) -> tuple[float, str]:
    """(metres per elevation unit, where that comes from) for an input of the compute functions.

    :func:`open_dem`'s ``z_factor`` attr; else a recognised ``units`` attr (metre, ft,
    US survey foot ...) or the vertical part of a compound CRS; else 1.0, "default (metres)".
    """
    if not isinstance(dem, xr.DataArray):
        return 1.0, Z_FACTOR_DEFAULT
    factor = dem.attrs.get("z_factor")
    if factor is not None:
        try:
            factor = float(factor)
        except (TypeError, ValueError):
            factor = None
        if factor is not None and np.isfinite(factor) and factor != 0:
            return factor, str(dem.attrs.get("z_factor_source", "the DataArray's z_factor attr"))
    unit = dem.attrs.get("units")
    if isinstance(unit, str) and unit.strip():
        factor = unit_factor(unit)
        if factor is not None:
            return factor, f"units attr '{unit.strip()}'"
    import rioxarray  # noqa: F401  (the .rio accessor)

    try:
        vertical = vertical_crs_unit(dem.rio.crs)
    except Exception:  # noqa: BLE001 - no usable CRS: nothing to say about heights
        vertical = None
    if vertical is not None:
        name, unit_name, factor = vertical
        return factor, f"vertical CRS '{name}', {unit_name}"
    return 1.0, Z_FACTOR_DEFAULT


def _spatial_dims(da2) -> tuple[str, str]:
    dims = da2.dims
    for ydim, xdim in (("y", "x"), ("lat", "lon"), ("latitude", "longitude")):
        if ydim in dims and xdim in dims:
            return ydim, xdim
    return dims[0], dims[1]


def _is_dask(data) -> bool:
    return type(data).__module__.startswith("dask")


__all__ = ["open_dem", "elevation_of", "z_factor_of", "Grid"]
