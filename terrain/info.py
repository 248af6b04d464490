"""What ``terrain info`` reports about a DEM file: grid, CRS, ground spacing, elevation range.

:func:`dem_info` opens the file once, validates the band like every other
command does (missing band, too small, rotated transform ...), measures the pixel
size on the ground with the same :class:`terrain.spacing.Grid` the gradient
kernels use, and streams the band window by window for its elevation range, so
memory stays bounded whatever the raster size. A file without a CRS is still
described (its ground spacing is then unknown) with a note saying what to do.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field

import numpy as np
import rasterio

from .errors import CRSMissingError
from .raster import GDAL_ENV, band_semantics, describe, open_raster, parse_crs, read_window
from .spacing import check_transform, grid_from_transform

# Cells read at a time for the elevation range (rounded to whole block rows).
_WINDOW_CELLS = 1 << 22


@dataclass(frozen=True)
class DEMInfo:
    """Description of one elevation band of a raster file.

    Sizes are ``(rows, cols)``; pixel sizes are ``(x, y)``, positive. ``dx_m`` and
    ``dy_m`` are the ``(min, max)`` ground spacing in metres over the raster's rows
    (equal for a projected CRS; varying with latitude for a geographic one), None
    without a CRS. Elevation statistics are None when not computed or when the band
    has no valid cell.
    """

    path: str
    driver: str
    band: int
    count: int
    shape: tuple[int, int]
    dtype: str
    nodata: float | None
    crs: str | None  # "EPSG:32616" or the CRS's WKT / PROJ text
    crs_name: str | None
    kind: str | None  # "projected", "geographic" or None (no CRS)
    crs_units: str | None  # linear unit (projected) or angular unit (geographic)
    pixel_size: tuple[float, float]
    north_up: bool
    bounds: tuple[float, float, float, float]  # west, south, east, north in CRS units
    dx_m: tuple[float, float] | None
    dy_m: tuple[float, float] | None
    elevation_min: float | None = None
    elevation_max: float | None = None
    valid_cells: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    # How values become elevations: raw * scale + offset (GDAL band scale / offset),
    # holes from the nodata value or a GDAL mask ("mask band", "per-dataset mask",
    # "alpha band"), and metres per elevation unit with where that came from.
    scale: float = 1.0
    offset: float = 0.0
    mask: str | None = None
    vertical_unit: str | None = None
    z_factor: float = 1.0
    z_factor_source: str = "default (metres)"

    @property
    def cells(self) -> int:
        return self.shape[0] * self.shape[1]

    def as_dict(self) -> dict:
        """Plain JSON-ready values (lists for tuples; a NaN nodata as the string "nan")."""
        out = asdict(self)
        for k, v in out.items():
            if isinstance(v, tuple):
                out[k] = list(v)
        if self.nodata is not None and math.isnan(self.nodata):
            out["nodata"] = "nan"
        out["cells"] = self.cells
        return out

    def lines(self) -> list[str]:
        """The human-readable report, one item per line."""
        rows, cols = self.shape
        out = [
            ("file", self.path),
            ("format", f"{self.driver}, {self.count} band{'s' if self.count > 1 else ''}; "
                       f"band {self.band}: {self.dtype}"),
            ("size", f"{cols} x {rows} pixels (columns x rows), {self.cells:,} cells"),
        ]
        if self.crs is None:
            out.append(("crs", "none"))
        else:
            out.append(("crs", f"{self.crs} - {self.crs_name} ({self.kind}, {self.crs_units})"))
        px, py = self.pixel_size
        if self.crs is None:
            size = f"{_num(px)} x {_num(py)} (x, y; units unknown without a CRS)"
        else:
            size = f"{_num(px)} x {_num(py)} {self.crs_units} (x, y)"
        if self.kind == "geographic" and self.crs_units == "degree":
            size += f" = {px * 3600:.4g} x {py * 3600:.4g} arc-seconds"
        out.append(("pixel size", size + (", north-up" if self.north_up else ", south-up")))
        if self.dx_m is not None:
            if self.kind == "geographic":
                out.append(("ground pixel", f"dx {_rng(self.dx_m)} m, dy {_rng(self.dy_m)} m "
                                            "(ellipsoidal; dx varies with latitude)"))
            else:
                out.append(("ground pixel", f"dx {_rng(self.dx_m)} m, dy {_rng(self.dy_m)} m "
                                            "(on the ellipsoid, the projection's scale removed)"))
        w, s, e, n = self.bounds
        out.append(("bounds", f"west {_num(w)}, south {_num(s)}, east {_num(e)}, north {_num(n)}"))
        out.append(("nodata", "none" if self.nodata is None else _num(self.nodata)))
        if self.mask is not None:
            out.append(("mask", f"{self.mask} (GDAL): its zero cells are nodata"))
        if self.scale != 1.0 or self.offset != 0.0:
            out.append(("scale/offset", f"elevation = raw x {_num(self.scale)} + "
                                        f"{_num(self.offset)} (band scale and offset, applied)"))
        out.append(("z factor", f"{_num(self.z_factor)} m per elevation unit"
                                + (f" ({self.vertical_unit})" if self.vertical_unit else "")
                                + f", from {self.z_factor_source}"))
        if self.valid_cells is not None:
            pct = 100.0 * self.valid_cells / self.cells
            if self.valid_cells:
                out.append(("elevation", f"{_elev(self.elevation_min)} to {_elev(self.elevation_max)}"
                                         f" ({self.valid_cells:,} valid cells, {pct:.1f} %)"))
            else:
                out.append(("elevation", "no valid cell (all nodata)"))
        out.extend(("note", n) for n in self.notes)
        width = max(len(k) for k, _ in out) + 1
        return [f"{k + ':':<{width}} {v}" for k, v in out]

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _num(v) -> str:
    """A number as short as it stays exact to 9 significant digits."""
    if v is None:
        return "none"
    v = float(v)
    if math.isfinite(v) and v == round(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.9g}"


def _elev(v) -> str:
    """An elevation to the millimetre, without trailing zeros."""
    text = f"{float(v):.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _rng(pair) -> str:
    lo, hi = pair
    if abs(hi - lo) < 0.0005:
        return f"{lo:.3f}"
    return f"{lo:.3f} to {hi:.3f}"


def dem_info(path, *, band: int = 1, src_crs=None, stats: bool = True) -> DEMInfo:
    """Describe the elevation band ``band`` of ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        Any raster GDAL reads.
    band : int
        1-based band number.
    src_crs : str or CRS, optional
        CRS to assume for a file that has none (as for the other commands).
    stats : bool
        Stream the band for its elevation range and valid cell count.

    Raises
    ------
    TerrainError
        For a file terrain cannot use (missing, not a raster, missing band, too
        small, rotated ...). A missing CRS is not an error here: it is reported.
    """
    path = os.fspath(path)
    notes = []
    with rasterio.Env(**GDAL_ENV):
        if src_crs is not None:
            src_crs = parse_crs(src_crs)
        with open_raster(path) as ds:
            try:
                ri = describe(ds, path, band, src_crs)
                crs, transform, shape = ri.crs, ri.transform, ri.shape
            except CRSMissingError as exc:
                ri = None
                crs, transform, shape = None, ds.transform, (ds.height, ds.width)
                check_transform(transform, path)
                notes.append(str(exc).split(": ", 1)[-1])
            dtype = ds.dtypes[band - 1]
            nodata = ds.nodatavals[band - 1]
            rows, cols = shape
            west, north = transform.c, transform.f
            east, south = west + transform.a * cols, north + transform.e * rows
            fields = dict(
                path=path, driver=ds.driver, band=band, count=ds.count, shape=shape,
                dtype=dtype, nodata=None if nodata is None else float(nodata),
                pixel_size=(abs(transform.a), abs(transform.e)), north_up=transform.e < 0,
                bounds=(min(west, east), min(south, north), max(west, east), max(south, north)),
                crs=None, crs_name=None, kind=None, crs_units=None, dx_m=None, dy_m=None,
            )
            if ri is not None:
                fields.update(scale=ri.scale, offset=ri.offset, mask=ri.mask,
                              vertical_unit=ri.vertical_unit, z_factor=ri.z_factor,
                              z_factor_source=ri.z_factor_source)
            else:
                scale, offset, factor, source, unit, mask, _ = band_semantics(ds, band, None, path)
                fields.update(scale=scale, offset=offset, mask=mask, vertical_unit=unit,
                              z_factor=factor, z_factor_source=source)
            if crs is not None:
                fields.update(_crs_fields(crs))
                grid = grid_from_transform(transform, shape, crs, name=path)
                if grid.ground is not None:
                    # Projected: the true ground size of a pixel, wherever it varies.
                    fields["dx_m"], fields["dy_m"] = grid.ground.dx_m, grid.ground.dy_m
                else:
                    dx = grid.xscale * abs(grid.xpos[1] - grid.xpos[0])
                    dy = np.abs(np.diff(grid.ypos))
                    fields["dx_m"] = (float(dx.min()), float(dx.max()))
                    fields["dy_m"] = (float(dy.min()), float(dy.max()))
            if stats:
                lo, hi, n = elevation_range(ds, band, nodata, path, info=ri, scale=fields["scale"],
                                            offset=fields["offset"], mask=fields["mask"])
                fields.update(elevation_min=lo, elevation_max=hi, valid_cells=n)
                if n == 0:
                    notes.append("no valid elevation: every product would be all nodata")
                elif lo <= -1e38 or hi >= 1e38:
                    notes.append("elevations beyond 1e38: an undeclared nodata fill (e.g. "
                                 "-3.4e38); declare it with gdal_edit.py -a_nodata, or every "
                                 "command refuses the file")
    return DEMInfo(notes=tuple(notes), **fields)


def _crs_fields(crs) -> dict:
    """EPSG code (or WKT), name, kind and unit of a rasterio CRS."""
    epsg = crs.to_epsg()
    geographic = bool(crs.is_geographic)
    if geographic:
        kind, unit = "geographic", crs.units_factor[0]
    elif crs.is_projected:
        kind, unit = "projected", crs.linear_units_factor[0]
    else:  # LOCAL_CS / engineering: the grid refuses any unit but metres
        kind, unit = "local", crs.units_factor[0]
    return dict(
        crs=f"EPSG:{epsg}" if epsg else crs.to_wkt(),
        crs_name=_crs_name(crs),
        kind=kind,
        crs_units=unit,
    )


def _crs_name(crs) -> str:
    """The CRS's own name, the first quoted string of its WKT."""
    wkt = crs.to_wkt()
    start = wkt.find('"')
    end = wkt.find('"', start + 1)
    return wkt[start + 1:end] if 0 <= start < end else "unnamed CRS"


def elevation_range(ds, band: int, nodata, path: str = "the raster", *, info=None,
                    scale: float = 1.0, offset: float = 0.0, mask: str | None = None):
    """(min, max, valid cell count) of a band, read in windows of whole block rows.

    Valid means what the gradient engine uses: not the nodata value, not masked by a
    GDAL mask or alpha band, not NaN, not +-inf; values are scaled (band scale and
    offset). Returns ``(None, None, 0)`` for an all-nodata band.
    """
    from types import SimpleNamespace

    from .engine import as_elevation

    if info is None:
        from .raster import alpha_band

        info = SimpleNamespace(path=path, band=band, mask=mask, alpha_band=alpha_band(ds, band))
    rows, cols = ds.height, ds.width
    block_rows = max(1, ds.block_shapes[band - 1][0])
    step = max(block_rows, (_WINDOW_CELLS // max(cols, 1)) // block_rows * block_rows)
    lo, hi, n = math.inf, -math.inf, 0
    for r0 in range(0, rows, step):
        h = min(step, rows - r0)
        raw, valid_mask = read_window(ds, info, ((r0, r0 + h), (0, cols)))
        # float64 here: the range is reported, huge fills included (not refused).
        z = as_elevation(raw, nodata, mask=valid_mask, scale=scale, offset=offset,
                         dtype=np.float64, check_fill=False)
        valid = z[~np.isnan(z)]
        if valid.size:
            lo = min(lo, float(valid.min()))
            hi = max(hi, float(valid.max()))
            n += int(valid.size)
    if n == 0:
        return None, None, 0
    return lo, hi, n
