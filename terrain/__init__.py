"""terrain: slope, aspect, gradient and hillshade from DEMs in true physical units.

>>> import terrain
>>> dem = terrain.open_dem("sample_data/jacksboro_wgs84.tif")
>>> s = terrain.slope(dem, units="degrees")

Heavy modules (xarray, rioxarray, dask, matplotlib) are imported on first
use, so that ``terrain --help`` and the streaming command line start fast.
"""

from __future__ import annotations

import importlib

from .errors import TerrainError

__version__ = "0.1.0"

_LAZY = {
    "open_dem": "terrain.dem",
    "gradient": "terrain.api",
    "slope": "terrain.api",
    "aspect": "terrain.api",
    "hillshade": "terrain.api",
    "tri": "terrain.api",
    "tpi": "terrain.api",
    "roughness": "terrain.api",
    "curvature": "terrain.api",
    "compute": "terrain.api",
    "Options": "terrain.engine",
    "classify": "terrain.classify",
    "slope_stats": "terrain.zonal",
    "cell_areas": "terrain.areas",
    "make_report": "terrain.report",
}

__all__ = ["TerrainError", "__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'terrain' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
