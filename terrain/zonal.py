"""Slope statistics of a DEM, whole or per zone, area-weighted on true ground, in one streamed pass.

Zones are polygons from any vector file OGR reads (GeoPackage, Shapefile,
GeoJSON, FlatGeobuf ... through fiona), reprojected to the DEM's CRS, each cell
weighted by the fraction of it the polygon covers (exactextract's coverage
fractions, computed window by window); or a zone raster on the DEM's grid
(integer codes, its nodata outside every zone). Every statistic is weighted by
the cell's ground area (:mod:`terrain.areas`) times its coverage.

The DEM streams window by window (gradient, slope, classes and cell areas of one
window at a time); each zone keeps running sums (area, valid area, sum and sum
of squares of the slope, min, max, class areas) and an area-weighted histogram of
slope in bins of 0.01 degree, so that the median and percentiles come out to
0.01 degree (converted into the chosen unit, which commutes with quantiles since
every slope unit is a monotonic function of degrees) in one pass and bounded
memory (72 kB per zone).
"""

from __future__ import annotations

import math
import os
import threading

import numpy as np

from .errors import InputError, TerrainError
from .registry import SLOPE_UNITS

BINS_PER_DEGREE = 100
NBINS = 90 * BINS_PER_DEGREE
STAT_COLUMNS = ("zone", "cells", "area_ha", "valid_pct", "slope_mean", "slope_median", "slope_min",
                "slope_max", "slope_std", "slope_p10", "slope_p90")
VECTOR_SUFFIXES = (".gpkg", ".shp", ".geojson", ".json", ".fgb", ".kml", ".gml", ".sqlite",
                   ".gdb", ".geojsonl", ".geojsons", ".csv", ".tab", ".mif", ".zip")


def _from_tan(t, units):
    if units == "degrees":
        return np.degrees(np.arctan(t))
    if units == "percent":
        return 100.0 * t
    if units == "radians":
        return np.arctan(t)
    return t


def _deg_to_units(d, units):
    return float(_from_tan(np.tan(np.radians(d)), units))


class _Zone:
    """Running sums of one zone."""

    __slots__ = ("cells", "area", "valid", "s1", "s2", "vmin", "vmax", "dmin", "dmax", "hist",
                 "classes")

    def __init__(self, k):
        self.cells = 0
        self.area = self.valid = self.s1 = self.s2 = 0.0
        self.vmin = self.dmin = math.inf
        self.vmax = self.dmax = -math.inf
        self.hist = np.zeros(NBINS)
        self.classes = np.zeros(k + 1)

    def add(self, part):
        cells, area, valid, s1, s2, vmin, vmax, dmin, dmax, hist, classes = part
        self.cells += cells
        self.area += area
        self.valid += valid
        self.s1 += s1
        self.s2 += s2
        self.vmin, self.vmax = min(self.vmin, vmin), max(self.vmax, vmax)
        self.dmin, self.dmax = min(self.dmin, dmin), max(self.dmax, dmax)
        if hist is not None:
            self.hist += hist
        self.classes += classes


def _part(w, sel, win, k):
    """Sums of one zone over one window: ``w`` coverage x area of the cells ``sel``
    (flat indices into the window, or None for all)."""
    v, deg, bins, codes, valid = win
    if sel is not None:
        v, deg, bins, codes, valid = v[sel], deg[sel], bins[sel], codes[sel], valid[sel]
    cells = int(np.count_nonzero(w > 0))
    area = float(w.sum())
    wv = w[valid]
    if wv.size == 0:
        return cells, area, 0.0, 0.0, 0.0, math.inf, -math.inf, math.inf, -math.inf, None, \
            np.zeros(k + 1)
    vv, dv = v[valid], deg[valid]
    touched = wv > 0
    hist = np.bincount(bins[valid], weights=wv, minlength=NBINS)
    classes = np.bincount(codes[valid], weights=wv, minlength=k + 1)
    if touched.any():
        vmin, vmax = float(vv[touched].min()), float(vv[touched].max())
        dmin, dmax = float(dv[touched].min()), float(dv[touched].max())
    else:
        vmin = dmin = math.inf
        vmax = dmax = -math.inf
    return (cells, area, float(wv.sum()), float((wv * vv).sum()), float((wv * vv * vv).sum()),
            vmin, vmax, dmin, dmax, hist, classes)


def _quantile_deg(hist, q, dmin, dmax):
    """Area-weighted quantile (degrees) from the histogram, linear within a bin."""
    cum = np.cumsum(hist)
    total = cum[-1]
    if total <= 0:
        return math.nan
    target = q * total
    i = int(np.searchsorted(cum, target, side="left"))
    i = min(i, NBINS - 1)
    before = cum[i - 1] if i else 0.0
    frac = (target - before) / hist[i] if hist[i] > 0 else 0.0
    d = (i + frac) / BINS_PER_DEGREE
    return min(max(d, dmin), dmax)


# --- zones --------------------------------------------------------------------------------

def _is_vector(path: str) -> bool:
    if os.path.splitext(path)[1].lower() in VECTOR_SUFFIXES or os.path.isdir(path):
        return True
    return False


def _transform_geom(geom, transformer):
    def ring(coords):
        xy = np.asarray([c[:2] for c in coords], np.float64)
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return list(zip(np.asarray(x).tolist(), np.asarray(y).tolist()))

    t = geom["type"]
    if t == "Polygon":
        return {"type": t, "coordinates": [ring(r) for r in geom["coordinates"]]}
    if t == "MultiPolygon":
        return {"type": t, "coordinates": [[ring(r) for r in p] for p in geom["coordinates"]]}
    return None


def read_zones(path, info, zone_field=None):
    """Polygons of ``path`` in the DEM's CRS: (features, zone labels, field name).

    Features are GeoJSON-like dicts with ``id`` (index into the labels) and their
    bounds; features sharing a field value form one zone.
    """
    try:
        import fiona
    except ImportError:  # pragma: no cover - a dependency
        raise TerrainError("reading zone polygons needs fiona (pip install fiona)") from None
    import pyproj

    try:
        src = fiona.open(path)
    except Exception as exc:  # noqa: BLE001 - fiona's DriverError and friends
        raise InputError(f"{path}: cannot read the zones as a vector file ({exc}); give a "
                         "GeoPackage, Shapefile, GeoJSON or FlatGeobuf, or a zone raster") from None
    with src:
        fields = list(src.schema["properties"])
        if zone_field is not None and zone_field not in fields:
            raise InputError(f"{path}: no field {zone_field!r}; fields are: "
                             f"{', '.join(fields) or '(none)'} (--zone-field NAME)")
        crs_wkt = src.crs_wkt
        if not crs_wkt:
            raise InputError(f"{path}: the zones have no CRS; assign one (ogr2ogr -a_srs EPSG:XXXX)")
        transformer = pyproj.Transformer.from_crs(pyproj.CRS.from_wkt(crs_wkt),
                                                  pyproj.CRS.from_wkt(info.crs.to_wkt()),
                                                  always_xy=True)
        labels, index, features = [], {}, []
        for n, feat in enumerate(src):
            geom = feat.geometry
            if geom is None:
                continue
            gj = {"type": geom["type"], "coordinates": geom["coordinates"]}
            g = _transform_geom(gj, transformer)
            if g is None:
                raise InputError(f"{path}: feature {n} is a {geom['type']}, not a polygon; "
                                 "zones must be polygons")
            key = feat.properties[zone_field] if zone_field is not None else n
            if key not in index:
                index[key] = len(labels)
                labels.append(key)
            xy = np.array([c for ring in (g["coordinates"] if g["type"] == "Polygon"
                                          else [r for p in g["coordinates"] for r in p])
                           for c in ring])
            if not np.isfinite(xy).all():
                raise InputError(f"{path}: feature {n} cannot be reprojected to the DEM's CRS")
            features.append({"type": "Feature", "id": len(features), "properties": {},
                             "geometry": g, "zone": index[key],
                             "bounds": (xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(),
                                        xy[:, 1].max())})
    if not features:
        raise InputError(f"{path}: no polygon in the zones file")
    return features, labels, zone_field


class _ZoneRaster:
    def __init__(self, path, info):
        import rasterio

        from .raster import open_raster

        self.path = path
        with open_raster(path) as ds:
            if (ds.height, ds.width) != info.shape or not ds.transform.almost_equals(info.transform) \
                    or (ds.crs and info.crs and ds.crs != info.crs):
                raise InputError(f"{path}: a zone raster must be on the DEM's grid (same size, "
                                 "transform and CRS); resample it with gdalwarp, or give polygons")
            self.nodata = ds.nodata
        self.local = threading.local()
        self.handles = []
        self._rasterio = rasterio

    def read(self, row0, row1, col0, col1):
        from rasterio.windows import Window

        from .raster import open_raster

        ds = getattr(self.local, "ds", None)
        if ds is None:
            ds = self.local.ds = open_raster(self.path)
            self.handles.append(ds)
        z = ds.read(1, window=Window(col0, row0, col1 - col0, row1 - row0), masked=True)
        return z

    def close(self):
        for ds in self.handles:
            ds.close()


# --- the statistics ---------------------------------------------------------------------------

def slope_stats(dem, zones=None, zone_field=None, breaks=None, scheme=None, units="degrees", *,
                break_units=None, opts=None, read=None, run=None, stop_event=None, histograms=None):
    """Area-weighted slope statistics and class areas of the DEM file ``dem``, per zone.

    Parameters
    ----------
    dem : path of the DEM, or its :class:`terrain.raster.RasterInfo` already opened.
    zones : path of polygons (any OGR vector file) or of a zone raster on the DEM's
        grid; None: one zone ``all``.
    zone_field : the polygons' field naming the zones (default: feature number).
    breaks, scheme : the slope classes (:func:`terrain.classify.resolve_classes`);
        default the ``planning`` scheme.
    units : slope units of the statistics (degrees, percent, radians, ratio).
    break_units : unit of ``breaks`` (degrees or percent; default ``units`` when it is
        one of them, else degrees).
    opts, read, run : terrain.engine.Options, terrain.raster.ReadOptions, terrain.engine.RunOptions
        Method and geometry; band and CRS of ``dem``; threads and window size.
    histograms : dict, optional
        Filled with ``{zone: area-weighted histogram}``: m^2 of valid ground per
        0.01-degree bin of slope (9000 bins from 0 to 90 degrees).

    Returns
    -------
    pandas.DataFrame
        One row per zone: zone, cells, area_ha, valid_pct, slope_mean, slope_median,
        slope_min, slope_max, slope_std, slope_p10, slope_p90, class{i}_ha,
        class{i}_pct. ``df.attrs`` holds ``classes`` (list of dicts), ``units``,
        ``areas`` (how cell areas were measured) and ``method``.
    """
    import pandas as pd

    from .areas import CellAreas
    from .classify import resolve_classes, stream_tan_slope
    from .engine import Options
    from .raster import described

    if units not in SLOPE_UNITS:
        raise TerrainError(f"slope units must be one of {', '.join(SLOPE_UNITS)}, got {units!r}")
    if break_units is None:
        break_units = units if units in ("degrees", "percent") else "degrees"
    classes = resolve_classes(breaks, scheme, break_units)
    k = len(classes)
    opts = opts or Options()
    info = described(dem, read)
    dem = info.path
    grid = info.grid(opts.geometry)
    areas = CellAreas.from_info(info, opts.geometry, grid=grid)
    lock = threading.Lock()

    features = zone_raster = None
    if zones is None:
        labels = ["all"]
    elif _is_vector(os.fspath(zones)):
        features, labels, _ = read_zones(os.fspath(zones), info, zone_field)
        fb = np.array([f["bounds"] for f in features])
    else:
        zone_raster = _ZoneRaster(os.fspath(zones), info)
        labels = []
    acc = {}
    t = info.transform

    def window_arrays(tan):
        deg = np.degrees(np.arctan(tan)).ravel()
        v = deg if units == "degrees" else _from_tan(tan, units).ravel()
        valid = np.isfinite(deg)
        bins = np.clip((np.nan_to_num(deg) * BINS_PER_DEGREE).astype(np.intp), 0, NBINS - 1)
        codes = classes.codes(tan).ravel()
        return v, deg, bins, codes, valid

    def on_window(row0, row1, col0, col1, tan):
        win = window_arrays(tan)
        area = areas.window(row0, row1, col0, col1).ravel()
        parts = []
        if features is None and zone_raster is None:
            parts.append(("all", _part(area, None, win, k)))
        elif zone_raster is not None:
            z = zone_raster.read(row0, row1, col0, col1)
            zv = np.asarray(z.filled(0)).ravel()
            mask = ~np.ma.getmaskarray(z).ravel()
            if zone_raster.nodata is not None:
                mask &= zv != zone_raster.nodata
            for code in np.unique(zv[mask]):
                sel = np.nonzero(mask & (zv == code))[0]
                key = code.item()
                parts.append((key, _part(area[sel], sel, win, k)))
        else:
            x0, x1 = t.c + col0 * t.a, t.c + col1 * t.a
            y0, y1 = t.f + row0 * t.e, t.f + row1 * t.e
            xmin, xmax, ymin, ymax = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
            hit = np.nonzero((fb[:, 0] < xmax) & (fb[:, 2] > xmin) &
                             (fb[:, 1] < ymax) & (fb[:, 3] > ymin))[0]
            if hit.size:
                from exactextract import exact_extract
                from exactextract.raster import NumPyRasterSource

                cols = col1 - col0
                src = NumPyRasterSource(np.zeros((row1 - row0, cols), np.uint8),
                                        xmin, ymin, xmax, ymax)
                # exactextract's rows run from ymax down, as a north-up raster's do;
                # a south-up raster (t.e > 0) has its rows the other way.
                flip = t.e > 0
                feats = [{"type": "Feature", "id": int(i), "properties": {},
                          "geometry": features[i]["geometry"]} for i in hit]
                res = exact_extract(src, feats, ["coverage", "cell_id"])
                for i, r in zip(hit, res):
                    cid = np.asarray(r["properties"]["cell_id"], np.intp)
                    cov = np.asarray(r["properties"]["coverage"], np.float64)
                    if cid.size == 0:
                        continue
                    if flip:
                        rr, cc = np.divmod(cid, cols)
                        cid = (row1 - row0 - 1 - rr) * cols + cc
                    parts.append((labels[features[i]["zone"]], _part(cov * area[cid], cid, win, k)))
        with lock:
            for key, part in parts:
                if key not in acc:
                    acc[key] = _Zone(k)
                acc[key].add(part)

    try:
        stream_tan_slope(info, opts, on_window, run=run, stop_event=stop_event)
    finally:
        if zone_raster is not None:
            zone_raster.close()
    if zone_raster is not None:
        labels = sorted(acc)
    rows = []
    for key in labels:
        zs = acc.get(key) or _Zone(k)
        row = {"zone": key, "cells": zs.cells, "area_ha": zs.area / 1e4,
               "valid_pct": 100.0 * zs.valid / zs.area if zs.area > 0 else math.nan}
        if zs.valid > 0:
            mean = zs.s1 / zs.valid
            row.update(slope_mean=mean,
                       slope_median=_deg_to_units(_quantile_deg(zs.hist, 0.5, zs.dmin, zs.dmax), units),
                       slope_min=zs.vmin, slope_max=zs.vmax,
                       slope_std=math.sqrt(max(zs.s2 / zs.valid - mean * mean, 0.0)),
                       slope_p10=_deg_to_units(_quantile_deg(zs.hist, 0.1, zs.dmin, zs.dmax), units),
                       slope_p90=_deg_to_units(_quantile_deg(zs.hist, 0.9, zs.dmin, zs.dmax), units))
        else:
            row.update({c: math.nan for c in STAT_COLUMNS[4:]})
        for c in classes.classes:
            a = zs.classes[c.code]
            row[f"class{c.code}_ha"] = a / 1e4
            row[f"class{c.code}_pct"] = 100.0 * a / zs.valid if zs.valid > 0 else math.nan
        rows.append(row)
        if histograms is not None:
            histograms[key] = zs.hist
    columns = list(STAT_COLUMNS) + [f"class{c.code}_{s}" for c in classes.classes
                                    for s in ("ha", "pct")]
    df = pd.DataFrame(rows, columns=columns)
    df.attrs = {"classes": [c.as_dict() for c in classes.classes], "units": units,
                "scheme": classes.name, "areas": areas.method, "method": opts.method,
                "geometry": opts.geometry, "dem": dem}
    return df


def write_table(df, path, *, overwrite=False, dem=None) -> str:
    """Write ``df`` (from :func:`slope_stats`) as CSV or JSON (by extension), atomically.

    The JSON holds ``{"dem", "units", "scheme", "areas", "classes": [...], "rows": [...]}``.
    """
    import json

    from .errors import OutputError
    from .writer import atomic_file, check_target

    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in (".csv", ".json"):
        raise OutputError(f"{path}: the table's format comes from its extension: .csv or .json")
    target = check_target(path, inputs=[dem] if dem else [], overwrite=overwrite)
    with atomic_file(target, overwrite=overwrite, what="the table") as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            if ext == ".csv":
                df.to_csv(f, index=False, float_format="%.6g")
            else:
                rows = json.loads(df.to_json(orient="records", double_precision=10))
                doc = {k: df.attrs.get(k) for k in ("dem", "units", "scheme", "method",
                                                    "geometry", "areas")}
                doc["classes"] = df.attrs.get("classes", [])
                doc["rows"] = rows
                json.dump(doc, f, indent=1)
    return target
