"""The public compute functions: one entry point per product, any input kind.

Inputs: an elevation DataArray (numpy- or dask-backed; with a rioxarray CRS, or
without one, when its coordinates are metres), a bare array with
``spacing=(dy, dx)``, or, for slope / aspect / hillshade, the Dataset that
:func:`gradient` returns, so several products can share one gradient.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .dem import _is_dask, elevation_of
from .engine import HILLSHADE_METHOD, Options, product_description, product_units, products_from_gradient, run_in_memory
from .errors import TerrainError


def compute(dem, products, *, spacing=None, **options):
    """Several products from one pass over ``dem``.

    Parameters
    ----------
    dem : xarray.DataArray, xarray.Dataset or array_like
        Elevations (or a gradient Dataset with ``dzdx`` and ``dzdy``).
    products : sequence of str
        Any of ``"dzdx"``, ``"dzdy"``, ``"slope"``, ``"aspect"``, ``"hillshade"``.
    spacing : (float, float), optional
        ``(dy, dx)`` in metres, for a bare array only (row 0 is north).
    **options
        Fields of :class:`terrain.engine.Options` (method, edge_order, z_factor,
        units, flat_value, azimuth, altitude, multidirectional).

    Returns
    -------
    dict
        ``{name: DataArray}`` on the input's grid, or ``{name: ndarray}`` for a
        bare array.
    """
    opts = Options(**options)
    products = tuple(products)
    if isinstance(dem, xr.Dataset):
        return _from_gradient(dem, opts, products)
    data, grid, template = elevation_of(dem, spacing=spacing)
    if _is_dask(data):
        from .dask_runner import run_dask

        results = run_dask(data, grid, opts, products)
    else:
        label = dem.attrs.get("source", "the DEM") if isinstance(dem, xr.DataArray) else "the array"
        results = run_in_memory(data, grid, opts, products, name=label)
    if template is None:
        return results
    return {name: _wrap(arr, template, name, opts) for name, arr in results.items()}


def _from_gradient(ds: xr.Dataset, opts: Options, products):
    if "dzdx" not in ds or "dzdy" not in ds:
        raise TerrainError("a gradient Dataset needs dzdx and dzdy variables (from terrain.gradient)")
    if opts.z_factor != 1.0:
        raise TerrainError("z_factor applies to elevations; the gradient Dataset already has it")
    dzdx, dzdy = ds["dzdx"], ds["dzdy"]
    if _is_dask(dzdx.data):
        from .dask_runner import run_dask_gradient

        results = run_dask_gradient(dzdx.data, dzdy.data, opts, products)
    else:
        results = products_from_gradient(np.asarray(dzdx.values), np.asarray(dzdy.values), opts, products)
    method = ds.attrs.get("method", dzdx.attrs.get("method", opts.method))
    return {name: _wrap(arr, dzdx, name, opts, method=method) for name, arr in results.items()}


def _wrap(arr, template: xr.DataArray, name: str, opts: Options, method=None) -> xr.DataArray:
    out = xr.DataArray(arr, dims=template.dims, coords=template.coords, name=name)
    out.attrs = {
        "units": product_units(name, opts),
        "long_name": product_description(name, opts),
        "method": method or opts.method,
    }
    if name in ("dzdx", "dzdy"):
        out.attrs["edge_order"] = opts.edge_order
    if "spatial_ref" in template.coords:
        out.rio.write_nodata(np.nan, encoded=False, inplace=True)
    return out


def gradient(dem, *, method: str = "central", edge_order: int = 1, z_factor: float = 1.0,
             spacing=None) -> xr.Dataset:
    """dz/dx (towards east) and dz/dy (towards north) in metres per metre.

    Parameters
    ----------
    dem : xarray.DataArray or array_like
        Elevations: from :func:`terrain.open_dem`, a DataArray with a rioxarray
        CRS, a DataArray without CRS whose ``x`` / ``y`` coordinates are metres
        (uniform or not), or a bare array with ``spacing``.
    method : {"central", "horn", "zevenbergen-thorne"}
        ``central`` reproduces numpy.gradient; ``horn`` is gdaldem's default.
    edge_order : {1, 2}
        Order of the one-sided differences at edges and next to nodata.
    z_factor : float
        Converts elevation units to metres (0.3048 for feet).
    spacing : (float, float), optional
        ``(dy, dx)`` in metres, for a bare array only (row 0 is north).

    Returns
    -------
    xarray.Dataset or tuple of ndarray
        ``dzdx`` and ``dzdy`` on the input's grid (a ``(dzdx, dzdy)`` tuple for a
        bare array). NaN where the input has no data.

    Examples
    --------
    >>> import numpy as np, xarray as xr, terrain
    >>> dem = xr.DataArray([[2.0, 4, 5, 6, 7, 8]] * 2, dims=("y", "x"),
    ...                    coords={"y": [0.0, 1.0], "x": np.arange(6.0)})
    >>> terrain.gradient(dem)["dzdx"].values[0].tolist()
    [2.0, 1.5, 1.0, 1.0, 1.0, 1.0]
    """
    res = compute(dem, ("dzdx", "dzdy"), spacing=spacing, method=method,
                  edge_order=edge_order, z_factor=z_factor)
    if not isinstance(res["dzdx"], xr.DataArray):
        return res["dzdx"], res["dzdy"]
    return xr.Dataset(res, attrs={"method": method, "edge_order": edge_order})


def slope(dem, *, units: str = "degrees", method: str = "central", edge_order: int = 1,
          z_factor: float = 1.0, spacing=None):
    """Slope of the surface: degrees (default), percent (100 tan), radians or ratio (tan).

    ``dem`` is anything :func:`gradient` accepts, or the Dataset it returns.

    Examples
    --------
    >>> import numpy as np, terrain
    >>> plane = 0.1 * np.arange(4.0)[None, :].repeat(3, axis=0)   # 0.1 m per 1 m column
    >>> terrain.slope(plane, units="percent", spacing=(1.0, 1.0))[1, 1].round(6)
    np.float64(10.0)
    """
    return _one(dem, "slope", spacing, units=units, method=method, edge_order=edge_order,
                z_factor=z_factor)


def aspect(dem, *, method: str = "central", edge_order: int = 1, z_factor: float = 1.0,
           flat_value: float = -1.0, spacing=None):
    """Compass azimuth of the downslope direction in [0, 360), clockwise from north.

    Flat cells get ``flat_value``; cells without data stay NaN. Right on
    non-square pixels and south-up rasters.

    Examples
    --------
    >>> import numpy as np, terrain
    >>> east_rising = np.arange(4.0)[None, :].repeat(3, axis=0)
    >>> float(terrain.aspect(east_rising, spacing=(30.0, 10.0))[1, 1])   # faces west
    270.0
    """
    return _one(dem, "aspect", spacing, method=method, edge_order=edge_order,
                z_factor=z_factor, flat_value=flat_value)


def hillshade(dem, *, azimuth: float = 315.0, altitude: float = 45.0,
              method: str = HILLSHADE_METHOD,
              multidirectional: bool = False, edge_order: int = 1, z_factor: float = 1.0,
              spacing=None):
    """gdaldem's hillshade (1..255, NaN where no data) on the true ground spacing.

    ``azimuth`` is the light's compass direction, ``altitude`` its height above the
    horizon, in degrees; ``multidirectional`` blends gdaldem's four lights.
    """
    return _one(dem, "hillshade", spacing, azimuth=azimuth, altitude=altitude, method=method,
                multidirectional=multidirectional, edge_order=edge_order, z_factor=z_factor)


def _one(dem, name, spacing, **options):
    return compute(dem, (name,), spacing=spacing, **options)[name]
