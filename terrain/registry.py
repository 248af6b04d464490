"""The one declaration of every gradient method and every product.

A :class:`Method` says which stencil computes the gradient (and the second
derivatives, if it can), how far it reaches and so how wide a halo every runner
reads. A :class:`Product` says what it needs (the gradient, second derivatives
or the elevations around each cell), how it is computed from them, how it is
stored (float of the elevations' type, or hillshade's bytes), its units and
description, how overviews and maps resample it, how its map is drawn, its own
options and its command-line command. The engine, the runners, the writers,
the maps, the CLI and the tests read these tables; nothing else lists methods
or products. See CONTRIBUTING.md, "How to add a method or a product".

This module stays light (no numpy at import) so that ``terrain --help`` reads it
without paying for the kernels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Method:
    """A gradient method.

    ``gradient`` fills dzdx / dzdy of a padded block (the contract of
    :mod:`terrain.kernels`); ``second``, if the method has second derivatives,
    fills r = d2z/dx2, t = d2z/dy2, s = d2z/dxdy the same way. ``reach`` is how
    many cells the interior stencil reaches (1 for 3x3, 2 for 5x5): the halo is
    the larger of it and the edge order (a one-sided second-order difference
    reaches two cells).
    """

    name: str
    summary: str
    gradient: Callable
    reach: int = 1
    second: Callable | None = None

    def halo(self, edge_order: int) -> int:
        return max(self.reach, edge_order)


@dataclass(frozen=True)
class Parameter:
    """A product's own option: an :class:`terrain.engine.Options` field and its CLI option."""

    field: str
    default: Any
    help: str
    choices: tuple | None = None
    type: type = float
    minimum: float | None = None
    maximum: float | None = None

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")


@dataclass(frozen=True)
class MapStyle:
    """How a product's map is drawn.

    ``kind``: "sequential" (0 to a rounded maximum), "cyclic" (0-360 degrees,
    flat cells grey), "grey" (0-255 brightness) or "diverging" (centred on 0).
    ``label`` gives the colour bar's label from the map's units (the product's
    units, or the file's band unit); ``shade_alpha`` is
    the colour layer's opacity over the hillshade backdrop; ``details`` adds the
    product's own options to the title.
    """

    kind: str
    cmap: str
    title: str
    label: Callable
    shade_alpha: float = 1.0
    details: Callable | None = None


@dataclass(frozen=True)
class Product:
    """An output of the engine.

    ``bands``: for a file of several products (``gradient``: dzdx and dzdy),
    their names; a product computed itself has ``compute(surface, opts, dtype)``
    returning its block from a :class:`terrain.engine.Surface`. ``needs``:
    "first" (the gradient), "second" (second derivatives too) or "elevation"
    (the padded block itself). ``storage``: "float" (the elevations' float type) or "byte"
    (float32 in memory, Byte 1-255 with 0 as nodata on disk). ``resampling``:
    "average" or "nearest" (angles), for overviews and display maps.
    ``command``: whether ``terrain NAME`` exists, with ``summary`` as its short
    help and ``help`` as its text. ``default_method``: the method used when none
    is given. ``map_axes``: computed on the gradient turned into the map's axes
    (hillshade, whose light is relative to the map's up). ``float32_limit(opts)``:
    whether the product can exceed float32's range with these options (tan slope),
    so the engine checks it as it checks the gradient.
    """

    name: str
    summary: str
    help: str
    units: Callable | None
    description: Callable | None
    compute: Callable | None = None
    bands: tuple = ()
    needs: str = "first"
    float32_limit: Callable | None = None
    storage: str = "float"
    resampling: str = "average"
    style: MapStyle | None = None
    parameters: tuple = ()
    default_method: str = "central"
    command: bool = True
    map_axes: bool = False

    @property
    def uses_method(self) -> bool:
        """Whether a gradient method computes it (else the elevations alone do)."""
        return any(PRODUCTS[a].needs in ("first", "second") for a in self.arrays)

    @property
    def arrays(self) -> tuple:
        """The computed products this one's file holds (itself, or its bands)."""
        return self.bands or (self.name,)


# --- methods ---------------------------------------------------------------------------

def _kernel(name):
    def call(*args):
        from . import kernels

        return getattr(kernels, name)(*args)

    call.__name__ = name
    return call


def _lsq(name):
    def call(*args):
        from . import lsq

        return getattr(lsq, name)(*args)

    call.__name__ = name
    return call


def _lsq_second(method_name):
    def call(*args):
        from . import lsq

        return lsq.second_derivatives(method_name, *args)

    call.__name__ = f"second_derivatives_{method_name}"
    return call


METHODS = {m.name: m for m in (
    Method("central", "numpy.gradient's: second-order central inside, one-sided at edges",
           _kernel("central")),
    Method("horn", "Horn's 3x3 (gdaldem's and ArcGIS's)", _kernel("horn")),
    Method("zevenbergen-thorne", "Zevenbergen-Thorne's 3x3 (the four edge neighbours)",
           _kernel("zevenbergen_thorne"), second=_lsq_second("zevenbergen-thorne")),
    Method("evans", "Evans-Young's 3x3 quadratic least squares (robust to noise)",
           _lsq("evans"), reach=1, second=_lsq_second("evans")),
    Method("florinsky", "Florinsky's 5x5 cubic least squares (the most accurate on smooth "
           "relief)", _lsq("florinsky"), reach=2, second=_lsq_second("florinsky")),
)}
DEFAULT_METHOD = "central"

# --- products --------------------------------------------------------------------------

SLOPE_UNITS = ("degrees", "percent", "radians", "ratio")


def _slope(surface, opts, dtype):
    import numpy as np

    from . import kernels

    out = np.empty(surface.dzdx.shape, dtype)
    kernels.slope(surface.dzdx, surface.dzdy, kernels.SLOPE_UNITS[opts.units], out)
    return out


def _aspect(surface, opts, dtype):
    import numpy as np

    from . import kernels

    out = np.empty(surface.dzdx.shape, dtype)
    kernels.aspect(surface.dzdx, surface.dzdy, float(opts.flat_value), out)
    return out


def _hillshade(surface, opts, dtype):
    import numpy as np

    from . import kernels

    px, py = surface.map_gradient()
    out = np.empty(px.shape, dtype)
    kernels.hillshade(px, py, float(opts.azimuth), float(opts.altitude),
                      bool(opts.multidirectional), out)
    return out


TRI_ALGORITHMS = ("riley", "wilson")


def _neighbourhood(index):
    """compute() of a 3x3 neighbourhood index (terrain.neighbourhood) on the padded elevations."""
    def compute(surface, opts, dtype):
        import numpy as np

        from . import neighbourhood

        out = np.empty((surface.zpad.shape[0] - 2 * surface.halo,
                        surface.zpad.shape[1] - 2 * surface.halo), dtype)
        kwargs = {"algorithm": opts.tri_algorithm} if index == "tri" else {}
        return getattr(neighbourhood, index)(surface.zpad, surface.halo, surface.z_factor, out,
                                             **kwargs)

    compute.__name__ = f"_{index}"
    return compute


_NEIGHBOURHOOD_EDGES = """Equal to gdaldem's on the interior; at the raster edge and next
    to nodata, where gdaldem writes nodata, a missing neighbour is extrapolated
    linearly through the centre from its opposite (exact on a plane), and a pair
    missing both cells drops out (see terrain.neighbourhood). Nodata cells stay
    nodata (-9999). Metres: elevations times the z factor."""


def _curvature(surface, opts, dtype):
    import numpy as np

    from .curvatures import curvature_from_derivatives

    out = np.empty(surface.dzdx.shape, dtype)
    curvature_from_derivatives(opts.kind, surface.dzdx, surface.dzdy, surface.r, surface.t,
                               surface.s, out)
    return out


# terrain.curvatures.KINDS, spelled here too so that the CLI needs no numpy.
CURVATURE_KINDS = ("profile", "tangential", "plan", "mean", "gaussian", "minimal", "maximal")

_SLOPE_LABELS = {"degrees": "Slope (degrees)", "percent": "Slope (%)",
                 "radians": "Slope (radians)", "ratio": "Slope (rise / run, m/m)"}

PRODUCTS = {p.name: p for p in (
    Product(
        "dzdx", "dz/dx (east) GeoTIFF.", "The elevation derivative towards east, m/m.",
        units=lambda opts: "metres per metre",
        description=lambda opts: "elevation derivative towards east",
        compute=lambda surface, opts, dtype: surface.dzdx, command=False),
    Product(
        "dzdy", "dz/dy (north) GeoTIFF.", "The elevation derivative towards north, m/m.",
        units=lambda opts: "metres per metre",
        description=lambda opts: "elevation derivative towards north",
        compute=lambda surface, opts, dtype: surface.dzdy, command=False),
    Product(
        "slope", "Slope GeoTIFF (degrees by default).",
        """Slope of DEM into a float32 GeoTIFF: the angle of steepest ascent.

    Degrees from 0 (flat) to 90 by default; --units percent is 100 x rise/run,
    ratio is rise/run, both in metres per metre of true ground distance (lat/lon
    DEMs use the ellipsoid's spacing). Nodata cells stay nodata (-9999).
    """,
        units=lambda opts: opts.units,
        description=lambda opts: f"slope in {opts.units}",
        compute=_slope, float32_limit=lambda opts: opts.units in ("percent", "ratio"),
        style=MapStyle("sequential", "magma_r", "Slope",
                       lambda units: _SLOPE_LABELS.get(units, f"Slope ({units})"),
                       shade_alpha=0.65),
        parameters=(Parameter(
            "units", "degrees", "Slope units: degrees, percent (100 x rise/run), radians or "
            "ratio (rise/run).", choices=SLOPE_UNITS, type=str),)),
    Product(
        "aspect", "Aspect GeoTIFF (downslope azimuth, degrees from north).",
        """Aspect of DEM into a float32 GeoTIFF: the compass direction the slope faces.

    Degrees in [0, 360), clockwise from north, of the downslope direction
    (0 = faces north, 90 = faces east). Flat cells get --flat-value (-1);
    nodata cells stay nodata (-9999). Computed on the true ground spacing
    (ellipsoidal for lat/lon DEMs); COG overviews use nearest resampling.
    """,
        units=lambda opts: "degrees",
        description=lambda opts: "downslope azimuth, clockwise from north; "
                                 f"{opts.flat_value:g} where flat",
        compute=_aspect, resampling="nearest",
        style=MapStyle("cyclic", "twilight", "Aspect",
                       lambda units: "Aspect: downslope direction (clockwise from north)",
                       shade_alpha=0.8),
        parameters=(Parameter(
            "flat_value", -1.0,
            "Aspect written on flat cells (no downslope direction); distinct from nodata."),)),
    Product(
        "gradient", "Two-band GeoTIFF: dz/dx (east) and dz/dy (north).",
        """Gradient of DEM into a two-band float32 GeoTIFF.

    Band 1 dzdx: rise per metre towards east; band 2 dzdy: rise per metre
    towards north (metres per metre of true ground distance, whatever the
    raster's orientation; lat/lon DEMs use the ellipsoid's spacing).
    """,
        units=None, description=None,
        bands=("dzdx", "dzdy")),
    Product(
        "hillshade", "Hillshade GeoTIFF (bytes 1-255, gdaldem's formula).",
        """Hillshade of DEM into a Byte GeoTIFF, with gdaldem's formula.

    1 (no light) to 255 (facing the light), 0 = nodata; the light comes from
    --azimuth degrees clockwise from north as the map shows it (grid north,
    the map's up, as gdaldem), --altitude degrees above the horizon. The gradient is the true ground
    gradient (--method: Horn by default).
    """,
        units=lambda opts: "brightness 1-255",
        description=lambda opts: f"hillshade, azimuth {opts.azimuth:g}, altitude "
                                 f"{opts.altitude:g}"
                                 + (", multidirectional" if opts.multidirectional else ""),
        compute=_hillshade, storage="byte", map_axes=True,
        style=MapStyle("grey", "gray", "Hillshade",
                       lambda units: "Hillshade brightness (0 = shadow, 255 = lit)",
                       details=lambda opts: ("multidirectional" if opts.multidirectional
                                             else f"azimuth {opts.azimuth:g}°")
                       + f", altitude {opts.altitude:g}°"),
        parameters=(
            Parameter("azimuth", 315.0, "Direction the light comes from, degrees clockwise "
                      "from the map's up (grid north)."),
            Parameter("altitude", 45.0, "Height of the light above the horizon, degrees.",
                      minimum=0, maximum=90),
            Parameter("multidirectional", False, "Blend gdaldem's four lights (225, 270, 315, "
                      "360 degrees) instead of one.", type=bool)),
        # The one default gradient method of hillshades (issue 9 row 9): `terrain
        # hillshade`, analyze's hillshade, plots and every map's grey backdrop.
        default_method="horn"),
    Product(
        "tri", "Terrain Ruggedness Index GeoTIFF (gdaldem TRI), metres.",
        f"""Terrain Ruggedness Index of DEM into a float32 GeoTIFF, in metres.

    --tri-algorithm riley (default, gdaldem's): the root of the summed squared
    elevation differences between a cell and its 8 neighbours; wilson: their
    mean absolute difference (for bathymetry). {_NEIGHBOURHOOD_EDGES}
    """,
        units=lambda opts: "metres",
        description=lambda opts: f"terrain ruggedness index ({opts.tri_algorithm.title()})",
        compute=_neighbourhood("tri"), needs="elevation",
        style=MapStyle("sequential", "viridis", "Terrain Ruggedness Index",
                       lambda units: f"TRI ({units})", shade_alpha=0.7,
                       details=lambda opts: opts.tri_algorithm.title()),
        parameters=(Parameter(
            "tri_algorithm", "riley", "TRI formula: riley (root of summed squared differences "
            "to the 8 neighbours, gdaldem's default) or wilson (mean absolute difference).",
            choices=TRI_ALGORITHMS, type=str),)),
    Product(
        "tpi", "Topographic Position Index GeoTIFF (gdaldem TPI), metres.",
        f"""Topographic Position Index of DEM into a float32 GeoTIFF, in metres.

    A cell's elevation minus the mean of its 8 neighbours: positive on crests,
    negative in hollows, 0 on planes. {_NEIGHBOURHOOD_EDGES}
    """,
        units=lambda opts: "metres",
        description=lambda opts: "topographic position index (centre minus the mean of the "
                                 "8 neighbours)",
        compute=_neighbourhood("tpi"), needs="elevation",
        style=MapStyle("diverging", "RdBu_r", "Topographic Position Index",
                       lambda units: f"TPI ({units}): above (+) or below (-) the neighbours",
                       shade_alpha=0.7)),
    Product(
        "roughness", "Roughness GeoTIFF (gdaldem roughness), metres.",
        f"""Roughness of DEM into a float32 GeoTIFF, in metres.

    The largest minus the smallest elevation of each cell's 3x3 window.
    {_NEIGHBOURHOOD_EDGES}
    """,
        units=lambda opts: "metres",
        description=lambda opts: "roughness (max - min of the 3x3 window)",
        compute=_neighbourhood("roughness"), needs="elevation",
        style=MapStyle("sequential", "cividis", "Roughness",
                       lambda units: f"Roughness ({units})", shade_alpha=0.7)),
    Product(
        "curvature", "Curvature GeoTIFF (1/m, positive where the surface bulges up).",
        """Curvature of DEM into a float32 GeoTIFF, in 1/m.

    Positive where the surface bulges up (hilltops, ridges, convex slopes),
    negative in hollows and valleys. --kind: profile (along the slope line),
    tangential (normal curvature along the contour), plan (of the contour line),
    mean (default), gaussian (1/m^2), minimal, maximal. Profile, tangential and
    plan are 0 on flat cells. From the second derivatives of a local fit
    (--method florinsky by default; evans, zevenbergen-thorne), on the true ground.
    """,
        units=lambda opts: "1/m^2" if opts.kind == "gaussian" else "1/m",
        description=lambda opts: f"{opts.kind} curvature, positive where the surface bulges up",
        compute=_curvature, needs="second",
        style=MapStyle("diverging", "RdBu_r", "Curvature",
                       lambda units: f"Curvature ({units}; > 0 convex, < 0 concave)",
                       shade_alpha=0.75, details=lambda opts: f"{opts.kind}"),
        parameters=(Parameter(
            "kind", "mean", "Which curvature: profile, tangential, plan, mean, gaussian, "
            "minimal or maximal.", choices=CURVATURE_KINDS, type=str),),
        default_method="florinsky"),
)}

# The grey relief under every map.
BACKDROP = "hillshade"
# The files `terrain analyze` writes by default, and what maps and the slope
# analyses (classify, stats, report) are made of.
ANALYZE_FILES = ("slope", "aspect", "gradient", "hillshade")
SLOPE, ASPECT = "slope", "aspect"
GRADIENT_BANDS = PRODUCTS["gradient"].bands
DEFAULT_MAP = SLOPE


def product(name: str) -> Product:
    """The declaration of ``name``; a TerrainError lists the choices."""
    try:
        return PRODUCTS[name]
    except KeyError:
        from .errors import TerrainError

        raise TerrainError(f"unknown product {name!r}; choose from {', '.join(PRODUCTS)}") \
            from None


def method(name: str) -> Method:
    """The declaration of ``name``; a TerrainError lists the choices."""
    try:
        return METHODS[name]
    except KeyError:
        from .errors import TerrainError

        raise TerrainError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") \
            from None


__all__ = ["Method", "Product", "Parameter", "MapStyle", "METHODS", "PRODUCTS", "product",
           "method"]
