"""Exceptions raised by terrain for bad input.

Every failure the library meets on a user's input is a :class:`TerrainError`;
rasterio / GDAL errors are wrapped, never leaked. Messages name the file and
say what to do, in one line, so the CLI can print them as they are.
"""

from __future__ import annotations


class TerrainError(Exception):
    """Root of every error terrain raises for bad input."""


class InputError(TerrainError):
    """The input cannot be read as an elevation raster."""


class CRSMissingError(InputError):
    """The raster has no CRS and none was given."""


class GeometryError(InputError):
    """The raster's grid cannot be used as it is (rotated, too small ...)."""


class OutputError(TerrainError):
    """An output cannot be written where asked."""


class Interrupted(TerrainError):
    """The run was interrupted by a signal; nothing was left behind."""
