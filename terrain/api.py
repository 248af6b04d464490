"""The public compute functions: one entry point per product, any input kind.

Inputs: an elevation DataArray (numpy- or dask-backed; with a rioxarray CRS, or
without one, when its coordinates are metres), a bare array with
``spacing=(dy, dx)``, or, for slope / aspect / hillshade, the Dataset that
:func:`gradient` returns, so several products can share one gradient.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .dem import _is_dask, _spatial_dims, elevation_of, z_factor_of
from . import registry, runners
from .engine import Z_FACTOR_EXPLICIT, Options, products_from_gradient
from .errors import TerrainError
from .spacing import grid_from_coords


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
        units, flat_value, azimuth, altitude, multidirectional, geometry).

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
    data, grid, template = elevation_of(dem, spacing=spacing, geometry=opts.geometry)
    z_factor, z_source = z_factor_of(dem)
    if opts.z_factor_explicit:
        z_source = Z_FACTOR_EXPLICIT
    opts = opts.with_z_factor(z_factor)
    label = dem.attrs.get("source", "the DEM") if isinstance(dem, xr.DataArray) else "the array"
    results = runners.pick(runners.ARRAY_RUNNERS, data).run(data, grid, opts, products,
                                                             name=label)
    if template is None:
        return results
    out = {name: _wrap(arr, template, name, opts) for name, arr in results.items()}
    for arr in out.values():
        arr.attrs["z_factor"] = opts.z_factor
        arr.attrs["z_factor_source"] = z_source
    return out


def _from_gradient(ds: xr.Dataset, opts: Options, products):
    if "dzdx" not in ds or "dzdy" not in ds:
        raise TerrainError("a gradient Dataset needs dzdx and dzdy variables (from terrain.gradient)")
    if opts.z_factor_explicit and opts.z_factor != 1.0:
        raise TerrainError("z_factor applies to elevations; the gradient Dataset already has it")
    dzdx, dzdy = ds["dzdx"], ds["dzdy"]
    # The geometry the gradient was computed in (a Dataset from gradient() says).
    geometry = ds.attrs.get("geometry", dzdx.attrs.get("geometry", opts.geometry))
    map_axes = any(registry.product(n).map_axes for n in products)
    rotation = _map_rotation(dzdx, geometry) if map_axes else None
    if _is_dask(dzdx.data):
        from .dask_runner import run_dask_gradient

        results = run_dask_gradient(dzdx.data, dzdy.data, opts, products, rotation=rotation)
    else:
        rows, cols = dzdx.shape
        results = products_from_gradient(
            np.asarray(dzdx.values), np.asarray(dzdy.values), opts, products,
            rotation=None if rotation is None else (rotation, (0, rows, 0, cols)))
    method = ds.attrs.get("method", dzdx.attrs.get("method", opts.method))
    return {name: _wrap(arr, dzdx, name, opts, method=method, geometry=geometry)
            for name, arr in results.items()}


def _map_rotation(dzdx: xr.DataArray, geometry):
    """The ground map of a geodesic gradient on a projected CRS, or None.

    Hillshade's light is relative to the map's up: a ground gradient is turned into
    the map's axes first, as :func:`terrain.engine.compute_block` does.
    """
    if geometry != "geodesic" or "spatial_ref" not in dzdx.coords or dzdx.rio.crs is None:
        return None
    ydim, xdim = _spatial_dims(dzdx)
    return grid_from_coords(dzdx[xdim].values, dzdx[ydim].values, dzdx.rio.crs,
                            geometry="geodesic").ground


def _wrap(arr, template: xr.DataArray, name: str, opts: Options, method=None,
          geometry=None) -> xr.DataArray:
    out = xr.DataArray(arr, dims=template.dims, coords=template.coords, name=name)
    out.attrs = {
        "units": registry.PRODUCTS[name].units(opts),
        "long_name": registry.PRODUCTS[name].description(opts),
        "method": method or opts.method,
        "geometry": geometry or opts.geometry,
    }
    if name in ("dzdx", "dzdy"):
        out.attrs["edge_order"] = opts.edge_order
    if "spatial_ref" in template.coords:
        out.rio.write_nodata(np.nan, encoded=False, inplace=True)
    return out


def gradient(dem, *, method: str = "central", edge_order: int = 1, z_factor: float | None = None,
             geometry: str = "geodesic", spacing=None) -> xr.Dataset:
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
    z_factor : float, optional
        Converts elevation units to metres (0.3048 for feet). Default: from the
        input (``open_dem``'s ``z_factor`` attr, a ``units`` attr such as ``ft``
        or ``US survey foot``, or a compound CRS's vertical unit), else 1.0. The
        results' attrs ``z_factor`` and ``z_factor_source`` say which was used.
    geometry : {"geodesic", "planar"}
        On a projected CRS, ``geodesic`` measures the derivatives along true east and
        north on the ground (the projection's scale and meridian convergence
        removed); ``planar`` keeps CRS units and grid north, as gdaldem does. The
        same on lat/lon grids (ellipsoidal spacing) and without CRS.
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
                  edge_order=edge_order, z_factor=z_factor, geometry=geometry)
    if not isinstance(res["dzdx"], xr.DataArray):
        return res["dzdx"], res["dzdy"]
    return xr.Dataset(res, attrs={"method": method, "edge_order": edge_order,
                                  "geometry": geometry})


def slope(dem, *, units: str = "degrees", method: str = "central", edge_order: int = 1,
          z_factor: float | None = None, geometry: str = "geodesic", spacing=None):
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
                z_factor=z_factor, geometry=geometry)


def aspect(dem, *, method: str = "central", edge_order: int = 1, z_factor: float | None = None,
           flat_value: float = -1.0, geometry: str = "geodesic", spacing=None):
    """Compass azimuth of the downslope direction in [0, 360), clockwise from north.

    Flat cells get ``flat_value``; cells without data stay NaN. Right on
    non-square pixels and south-up rasters; with the default
    ``geometry="geodesic"`` a true-north azimuth on projected grids too (grid north
    with ``"planar"``).

    Examples
    --------
    >>> import numpy as np, terrain
    >>> east_rising = np.arange(4.0)[None, :].repeat(3, axis=0)
    >>> float(terrain.aspect(east_rising, spacing=(30.0, 10.0))[1, 1])   # faces west
    270.0
    """
    return _one(dem, "aspect", spacing, method=method, edge_order=edge_order,
                z_factor=z_factor, flat_value=flat_value, geometry=geometry)


def hillshade(dem, *, azimuth: float = 315.0, altitude: float = 45.0,
              method: str = registry.PRODUCTS["hillshade"].default_method,
              multidirectional: bool = False,
              edge_order: int = 1, z_factor: float | None = None, geometry: str = "geodesic",
              spacing=None):
    """gdaldem's hillshade (1..255, NaN where no data) on the true ground spacing.

    ``azimuth`` is the light's direction, clockwise from the map's up, ``altitude``
    its height above the horizon, in degrees; ``multidirectional`` blends gdaldem's
    four lights. The slope it shades is the ground slope (``geometry``).
    """
    return _one(dem, "hillshade", spacing, azimuth=azimuth, altitude=altitude, method=method,
                multidirectional=multidirectional, edge_order=edge_order, z_factor=z_factor,
                geometry=geometry)


def curvature(dem, *, kind: str = "mean",
              method: str = registry.PRODUCTS["curvature"].default_method,
              z_factor: float | None = None, geometry: str = "geodesic", spacing=None):
    """Curvature of the surface in 1/m (gaussian: 1/m^2), positive where it bulges up.

    ``kind``: ``"profile"``, ``"tangential"``, ``"plan"``, ``"mean"`` (default),
    ``"gaussian"``, ``"minimal"`` or ``"maximal"`` (formulas in
    :func:`terrain.curvatures.curvature_from_derivatives`); ``method``: a method with
    second derivatives (``"florinsky"``, ``"evans"``, ``"zevenbergen-thorne"``).

    Examples
    --------
    >>> import numpy as np, terrain
    >>> x = np.arange(-5, 6) * 30.0                    # a dome of radius 3 km
    >>> dome = np.sqrt(3000.0**2 - x[None, :]**2 - x[:, None]**2)
    >>> h = terrain.curvature(dome, spacing=(30.0, 30.0))   # mean curvature, 1/m
    >>> round(1 / float(h[5, 5]), -1)                    # the radius, to the fit's 1e-4
    3000.0
    """
    return _one(dem, "curvature", spacing, kind=kind, method=method, z_factor=z_factor,
                geometry=geometry)


def _one(dem, name, spacing, **options):
    return compute(dem, (name,), spacing=spacing, **options)[name]


def tri(dem, *, algorithm: str = "riley", z_factor: float | None = None, spacing=None):
    """Terrain Ruggedness Index in metres: gdaldem's ``TRI -alg Riley|Wilson``.

    Riley (default): sqrt of the summed squared differences to the 8 neighbours;
    Wilson: their mean absolute difference. Edges and holes: see
    :mod:`terrain.neighbourhood`.

    Examples
    --------
    >>> import numpy as np, terrain
    >>> spike = np.zeros((5, 5)); spike[2, 2] = 3.0
    >>> float(terrain.tri(spike, algorithm="wilson", spacing=(1.0, 1.0))[2, 2])
    3.0
    """
    return _one(dem, "tri", spacing, tri_algorithm=algorithm, z_factor=z_factor)


def tpi(dem, *, z_factor: float | None = None, spacing=None):
    """Topographic Position Index in metres: the centre minus the mean of its 8 neighbours
    (gdaldem's ``TPI``); edges and holes: see :mod:`terrain.neighbourhood`.

    Examples
    --------
    >>> import numpy as np, terrain
    >>> spike = np.zeros((5, 5)); spike[2, 2] = 3.0
    >>> float(terrain.tpi(spike, spacing=(1.0, 1.0))[2, 2]), float(terrain.tpi(spike, spacing=(1.0, 1.0))[1, 2])
    (3.0, -0.375)
    """
    return _one(dem, "tpi", spacing, z_factor=z_factor)


def roughness(dem, *, z_factor: float | None = None, spacing=None):
    """Roughness in metres: max - min of each cell's 3x3 window (gdaldem's ``roughness``);
    edges and holes: see :mod:`terrain.neighbourhood`."""
    return _one(dem, "roughness", spacing, z_factor=z_factor)
