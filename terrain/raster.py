"""Opening raster files: every rasterio / GDAL failure becomes a one-line TerrainError.

Shared by :func:`terrain.open_dem` (in memory / dask) and the streaming runner,
so both refuse the same files with the same words.
"""

from __future__ import annotations

import logging
import math
import os
import re
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
from rasterio._err import CPLE_BaseError  # what a metadata getter raises on a damaged file
from rasterio.errors import RasterioError
from rasterio.windows import Window

from .errors import CRSMissingError, InputError, OutputError
from .spacing import Grid, check_shape, check_transform, grid_from_transform

# GDAL keeps decoded blocks in a cache that defaults to 5 % of RAM; a streamed run
# never revisits a block more than once, so a small cache bounds memory.
# EMPTY_DIR: opening a file does not list its folder (slow in big folders and on
# /vsicurl/); GDAL then also ignores sidecars, so open_raster allows the listing for
# a local file that has one (a .msk mask, a .aux.xml with scale, offset, units ...).
# CPL_VSIL_GZIP_WRITE_PROPERTIES=NO: reading /vsigzip/dem.tif.gz leaves no
# dem.tif.gz.properties next to the input.
GDAL_ENV = {"GDAL_CACHEMAX": 64 * 2**20, "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
            "CPL_VSIL_GZIP_WRITE_PROPERTIES": "NO"}
SIDECARS = (".msk", ".aux.xml")
# NETCDF:"f.nc":var, HDF5:"f.h5"://path, GPKG:f.gpkg:table ...: a driver's subdataset name.
_DRIVER_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_]+:")

# Vertical units a band or a vertical CRS may declare, in metres.
US_SURVEY_FOOT = 1200 / 3937
VERTICAL_UNITS = {
    **dict.fromkeys(("m", "metre", "metres", "meter", "meters"), 1.0),
    **dict.fromkeys(("ft", "foot", "feet", "international foot", "international feet",
                     "foot (international)", "ft (international)", "intl foot"), 0.3048),
    **dict.fromkeys(("us survey foot", "us survey feet", "us-ft", "us_ft", "ftus", "ft_us",
                     "foot_us", "us foot", "us feet", "survey foot", "foot (us survey)",
                     "us survey foot (ftus)"), US_SURVEY_FOOT),
    **dict.fromkeys(("cm", "centimetre", "centimetres", "centimeter", "centimeters"), 0.01),
    **dict.fromkeys(("mm", "millimetre", "millimetres", "millimeter", "millimeters"), 0.001),
    **dict.fromkeys(("km", "kilometre", "kilometres", "kilometer", "kilometers"), 1000.0),
}


@dataclass(frozen=True)
class ReadOptions:
    """How an input is read: its elevation band (1-based) and the CRS to use when the
    file has none (or to override it)."""

    band: int = 1
    src_crs: Any = None


@dataclass(frozen=True)
class RasterInfo:
    """What terrain needs to know about an elevation band of a file."""

    path: str
    band: int
    shape: tuple[int, int]
    dtype: str
    nodata: float | None
    crs: object  # rasterio CRS
    transform: object  # affine.Affine
    block_shape: tuple[int, int]
    # How to read the band's values as elevations (see terrain.engine.file_elevation).
    scale: float = 1.0
    offset: float = 0.0
    mask: str | None = None  # "mask band", "per-dataset mask", "alpha band" or None
    alpha_band: int | None = None  # the alpha band read as the mask (0 = no data)
    elevation_dtype: str = "float32"
    # Metres per elevation unit, and where that came from (band unit, vertical CRS, default).
    z_factor: float = 1.0
    z_factor_source: str = "default (metres)"
    vertical_unit: str | None = None
    # GDAL's ds.files when the file was opened (a VRT's sources...): what an output must
    # not overwrite, known without opening the file again; None: not recorded.
    files: tuple | None = None

    def grid(self, geometry: str = "geodesic") -> Grid:
        return grid_from_transform(self.transform, self.shape, self.crs, geometry=geometry,
                                   name=self.path)


def parse_crs(src_crs, name: str = "--src-crs"):
    """A rasterio CRS from user input (EPSG:XXXX, WKT, PROJ string), or a clear error."""
    from rasterio.crs import CRS

    if src_crs is None or isinstance(src_crs, CRS):
        return src_crs
    try:
        # Inside an Env, PROJ's complaints become the exception, not stderr noise.
        with rasterio.Env():
            return CRS.from_user_input(src_crs)
    except (RasterioError, ValueError, TypeError) as exc:
        raise InputError(f"{name}: {src_crs!r} is not a CRS rasterio understands ({exc})") from None


def is_gdal_path(path: str) -> bool:
    """Whether GDAL, not the file system, resolves ``path``: /vsi..., a URL, a subdataset."""
    if path.startswith("/vsi") or "://" in path:
        return True
    return bool(_DRIVER_PREFIX.match(path)) and not os.path.exists(path)


def dataset_stem(path: str) -> str:
    """A file-name stem for outputs named after ``path`` (any GDAL path).

    ``/vsizip/dem.zip/dem.tif`` -> ``dem``; ``http://host/a/dem.tif?x=1`` -> ``dem``;
    ``NETCDF:"f.nc":elevation`` -> ``f_elevation``.
    """
    path = os.fspath(path)
    if not is_gdal_path(path):
        return os.path.splitext(os.path.basename(path))[0]
    if re.match(r"^(/vsi\w+/)*[A-Za-z][\w+.-]*://", path):  # a URL: no query or fragment
        path = path.split("?", 1)[0].split("#", 1)[0]
    elif not path.startswith("/vsi"):
        m = re.match(r'^[A-Za-z][A-Za-z0-9_]+:"([^"]+)":(.+)$', path) or \
            re.match(r"^[A-Za-z][A-Za-z0-9_]+:([^:]+):(.+)$", path)
        if m:  # DRIVER:"file":subdataset
            container = os.path.splitext(os.path.basename(m.group(1)))[0]
            sub = re.sub(r"[^\w.+-]+", "_", m.group(2)).strip("_.")
            return f"{container}_{sub}" if sub else container
    stem, ext = os.path.splitext(os.path.basename(path.rstrip("/")))
    if ext.lower() in (".gz", ".zip", ".bz2", ".xz", ".zst"):  # /vsigzip/dem.tif.gz -> dem
        stem = os.path.splitext(stem)[0]
    return re.sub(r"[^\w.+-]+", "_", stem).strip("_") or "dem"


# Classic netCDF (CDF-1, CDF-2, CDF-5): bytes of each nc_type.
_NC_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 8}


def _classic_netcdf_sizes(f, version: int, file_size: int):
    """Parse a classic netCDF header from ``f`` (after its 4-byte magic); yield each
    variable's (name, bytes per record or in all, begin, is a record variable). Raises
    ValueError where the header is cut short or inconsistent."""
    import struct

    def read(n):
        b = f.read(n)
        if len(b) != n:
            raise ValueError("the header is cut short")
        return b

    count_fmt = ">Q" if version == 5 else ">I"
    count_len = 8 if version == 5 else 4

    def count():
        return struct.unpack(count_fmt, read(count_len))[0]

    def name():
        n = count()
        if n > file_size:
            raise ValueError("a name longer than the file")
        return read(n + (-n % 4))[:n].decode("utf-8", "replace")

    def attributes():
        tag, n = struct.unpack(">I", read(4))[0], count()
        if tag not in (0, 0x0C) or (tag == 0 and n):
            raise ValueError("an attribute list is damaged")
        for _ in range(n):
            name()
            nc_type = struct.unpack(">I", read(4))[0]
            if nc_type not in _NC_TYPE_SIZES:
                raise ValueError(f"an attribute has the unknown type {nc_type}")
            size = count() * _NC_TYPE_SIZES[nc_type]
            if size > file_size:
                raise ValueError("an attribute larger than the file")
            read(size + (-size % 4))

    count()  # numrecs (or STREAMING)
    tag, n = struct.unpack(">I", read(4))[0], count()
    if tag not in (0, 0x0A) or (tag == 0 and n) or n > file_size:
        raise ValueError("the dimension list is damaged")
    dims = [(name(), count()) for _ in range(n)]
    attributes()
    tag, n = struct.unpack(">I", read(4))[0], count()
    if tag not in (0, 0x0B) or (tag == 0 and n) or n > file_size:
        raise ValueError("the variable list is damaged")
    for _ in range(n):
        var = name()
        ids = [count() for _ in range(count())]
        if any(i >= len(dims) for i in ids):
            raise ValueError(f"variable {var!r} names a dimension that does not exist")
        attributes()
        nc_type = struct.unpack(">I", read(4))[0]
        if nc_type not in _NC_TYPE_SIZES:
            raise ValueError(f"variable {var!r} has the unknown type {nc_type}")
        count()  # vsize
        begin = struct.unpack(">I" if version == 1 else ">Q", read(4 if version == 1 else 8))[0]
        record = bool(ids) and dims[ids[0]][1] == 0
        size = _NC_TYPE_SIZES[nc_type]
        for i in ids[1:] if record else ids:
            size *= dims[i][1]
        yield var, size, begin, record


def _check_classic_netcdf(path: str) -> None:
    """Refuse a classic netCDF file whose header is damaged or describes more data than
    the file holds, before GDAL's netCDF driver reads it: a flipped dimension length makes
    it allocate and fill gigabytes for one coordinate variable (seconds to minutes)."""
    with open(path, "rb") as f:
        magic = f.read(4)
        if magic[:3] != b"CDF" or magic[3:] not in (b"\x01", b"\x02", b"\x05"):
            return  # not classic netCDF (netCDF-4 is HDF5): GDAL says what it is
        size = os.fstat(f.fileno()).st_size
        try:
            for var, nbytes, begin, record in _classic_netcdf_sizes(f, magic[3], size):
                if begin + (0 if record else nbytes) > size or nbytes > size:
                    raise ValueError(f"variable {var!r} needs {nbytes:,} bytes from offset "
                                     f"{begin:,}, beyond the file's {size:,}")
        except ValueError as exc:
            raise InputError(f"{path}: damaged or truncated netCDF file ({exc}); check the "
                             "file is a complete DEM") from None


def open_raster(path):
    """``rasterio.open`` with the cause of a failure said in one line.

    Local files, and everything GDAL opens itself: ``/vsizip/``, ``/vsigzip/``,
    ``/vsicurl/`` and http(s) URLs, ``NETCDF:"f.nc":var``, ``HDF5:`` and ``GPKG:``
    subdatasets. A container holding several subdatasets is refused with their list;
    one holding a single one opens it.
    """
    path = os.fspath(path)
    if is_gdal_path(path):
        try:
            ds = rasterio.open(path)
        except (UnicodeError, ValueError, RasterioError) as exc:
            if not path.startswith("/vsi") and "://" not in path:
                # "name:with:colons.tif": a missing local file as much as a bad subdataset.
                raise InputError(f"{path}: no such file, and GDAL cannot open it as a subdataset "
                                 f"({first_line(exc)}); check the path") from None
            raise InputError(f"{path}: GDAL cannot open it ({first_line(exc)}); check the "
                             "archive member, URL or subdataset name") from None
        return _single_dataset(ds, path)
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file; check the path")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, not a raster file")
    if os.path.getsize(path) == 0:
        raise InputError(f"{path}: file is empty; download or copy it again")
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        shown = os.fsencode(path).decode("utf-8", "backslashreplace")
        raise InputError(f"{shown}: file name is not UTF-8, which GDAL "
                         "cannot open; rename the file") from None
    _check_classic_netcdf(path)
    # With EMPTY_DIR GDAL would not see a .msk mask or a .aux.xml: list the folder then.
    sidecar = any(os.path.exists(path + ext) for ext in SIDECARS)
    try:
        with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="FALSE") if sidecar else nullcontext():
            ds = rasterio.open(path)
    except (UnicodeError, ValueError) as exc:
        # A CRS or metadata text that is not UTF-8 (rasterio cannot decode it).
        raise InputError(f"{path}: unreadable georeferencing text ({type(exc).__name__}); "
                         "rewrite the CRS, e.g. with gdal_translate -a_srs EPSG:XXXX") from None
    except RasterioError as exc:
        raise InputError(
            f"{path}: not a raster GDAL can read ({first_line(exc)}); check the file is a complete DEM"
        ) from None
    return _single_dataset(ds, path)


def _single_dataset(ds, path: str):
    """``ds`` itself, its only subdataset, or an error listing the subdatasets to choose from."""
    if ds.count > 0:
        return ds
    # GDAL's own names (rasterio's ds.subdatasets rewrites them as netcdf:/path:var).
    try:
        tags = ds.tags(ns="SUBDATASETS")
    except (RasterioError, CPLE_BaseError):
        tags = {}
    subs = [tags[k] for k in sorted((k for k in tags if re.fullmatch(r"SUBDATASET_\d+_NAME", k)),
                                    key=lambda k: int(k.split("_")[1]))]
    subs = subs or list(ds.subdatasets or ())
    ds.close()
    if len(subs) == 1:
        return open_raster(subs[0])
    if len(subs) > 1:
        raise InputError(f"{path}: holds {len(subs)} subdatasets: {', '.join(subs)}; "
                         "open one of them")
    raise InputError(f"{path}: has no raster band; check it is an elevation raster")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (GDAL's can run over several)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_band(ds, path: str, band: int, window=None, **kwargs):
    """``ds.read(band, window=...)`` with a failure said in one line naming the file.

    ``window`` is ``((row0, row1), (col0, col1))`` or None for the whole band;
    other keywords go to rasterio (``out_shape``, ``resampling`` ...).
    """
    where = ""
    if window is not None:
        (row0, row1), (col0, col1) = window
        where = f" rows {row0}-{row1}"
        window = Window(col0, row0, col1 - col0, row1 - row0)
    try:
        return ds.read(band, window=window, **kwargs)
    except MemoryError:
        raise InputError(
            f"{path}: band {band}{where} does not fit in memory; open it with chunks= (dask) "
            "or use the terrain command line, which streams"
        ) from None
    except RasterioError as exc:
        raise InputError(f"{path}: cannot read band {band}{where} ({first_line(exc)}); "
                         "the file may be truncated or corrupt") from None


def describe(ds, path: str, band: int = 1, src_crs=None) -> RasterInfo:
    """Validate an open dataset as an elevation source and describe it."""
    if not isinstance(band, int) or band < 1 or band > ds.count:
        raise InputError(f"{path}: band {band} does not exist; the file has {ds.count} band(s)")
    shape = (ds.height, ds.width)
    check_shape(shape, path)
    crs = parse_crs(src_crs) if src_crs is not None else ds.crs
    transform = ds.transform
    if transform.is_identity and not ds.crs and src_crs is None:
        raise CRSMissingError(
            f"{path}: raster has no georeferencing (no CRS, no geotransform); "
            "georeference it first, e.g. with gdal_translate -a_srs -a_ullr"
        )
    if crs is None or not crs:
        raise CRSMissingError(
            f"{path}: raster has no CRS; give one with --src-crs (library: src_crs=), e.g. EPSG:32616"
        )
    check_transform(transform, path)
    dtype = ds.dtypes[band - 1]
    if dtype.startswith("complex"):
        raise InputError(f"{path}: band {band} is complex ({dtype}); elevations must be real numbers")
    from .engine import elevation_dtype

    nodata = ds.nodatavals[band - 1]
    scale, offset, z_factor, z_source, unit, mask, alpha = band_semantics(ds, band, crs, path)
    return RasterInfo(
        path=path,
        band=band,
        shape=shape,
        dtype=dtype,
        nodata=nodata,
        crs=crs,
        transform=transform,
        block_shape=tuple(ds.block_shapes[band - 1]),
        files=tuple(ds.files),
        scale=scale,
        offset=offset,
        mask=mask,
        alpha_band=alpha,
        elevation_dtype=str(elevation_dtype(dtype)),
        z_factor=z_factor,
        z_factor_source=z_source,
        vertical_unit=unit,
    )


def band_semantics(ds, band: int, crs, path: str):
    """(scale, offset, z factor, its source, vertical unit, mask kind, alpha band) of a band."""
    try:
        scale = ds.scales[band - 1] if ds.scales else 1.0
        offset = ds.offsets[band - 1] if ds.offsets else 0.0
        z_factor, z_source, unit = vertical_units(ds, band, crs, path)
        mask, alpha = mask_kind(ds, band), alpha_band(ds, band)
    except (RasterioError, CPLE_BaseError) as exc:  # a damaged header: GDAL fails on metadata
        raise InputError(f"{path}: cannot read band {band}'s metadata ({first_line(exc)}); "
                         "the file may be truncated or corrupt") from None
    scale = 1.0 if scale is None else float(scale)
    offset = 0.0 if offset is None else float(offset)
    if not (math.isfinite(scale) and scale != 0 and math.isfinite(offset)):
        raise InputError(f"{path}: band {band} has scale {scale:g} and offset {offset:g}; "
                         "fix them with gdal_edit.py -scale / -offset")
    return scale, offset, z_factor, z_source, unit, mask, alpha


def mask_kind(ds, band: int) -> str | None:
    """Which GDAL mask marks the band's holes, when it is not the nodata value.

    None when every cell is valid or the nodata value (compared by terrain itself)
    is the mask; else the mask must be read with the band. An alpha band counts
    whatever its type (GDAL itself only honours Byte and UInt16 ones; gdalwarp
    -dstalpha writes Float32 ones next to a Float32 DEM).
    """
    from rasterio.enums import MaskFlags

    if alpha_band(ds, band) is not None:
        return "alpha band"
    flags = set(ds.mask_flag_enums[band - 1])
    if MaskFlags.all_valid in flags or MaskFlags.nodata in flags:
        return None
    if MaskFlags.alpha in flags:
        return "alpha band"
    if MaskFlags.per_dataset in flags:
        return "per-dataset mask"
    return "mask band"


def alpha_band(ds, band: int) -> int | None:
    """The 1-based index of the dataset's alpha band (not ``band`` itself), or None."""
    from rasterio.enums import ColorInterp

    for k, ci in enumerate(ds.colorinterp, start=1):
        if ci == ColorInterp.alpha and k != band:
            return k
    return None


def vertical_units(ds, band: int, crs, path: str = "the raster") -> tuple[float, str, str | None]:
    """(metres per elevation unit, where that comes from, unit name) for a band.

    The band's unit type (GDAL ``GetUnitType``) first, then the vertical part of a
    compound CRS; 1.0 ("default (metres)") when the file says nothing.
    """
    unit = (ds.units[band - 1] or "").strip() if ds.units else ""
    if unit:
        factor = unit_factor(unit)
        if factor is not None:
            return factor, f"band unit '{unit}'", unit
    vertical = vertical_crs_unit(crs)
    if vertical is not None:
        name, unit_name, factor = vertical
        return factor, f"vertical CRS '{name}', {unit_name}", unit_name
    if unit:
        return 1.0, f"default (metres; band unit '{unit}' not recognised)", unit
    return 1.0, "default (metres)", None


def unit_factor(unit: str) -> float | None:
    """Metres per ``unit`` (metre, ft, US survey foot, ftUS ...); None for an unknown unit."""
    key = " ".join(unit.strip().lower().split())
    if key.endswith("s") and key not in VERTICAL_UNITS and key[:-1] in VERTICAL_UNITS:
        key = key[:-1]
    return VERTICAL_UNITS.get(key)


def vertical_crs_unit(crs) -> tuple[str, str, float] | None:
    """(name, unit name, metres per unit) of a compound CRS's vertical part, else None."""
    if crs is None or not crs:
        return None
    try:
        wkt = crs.to_wkt()
    except Exception:  # noqa: BLE001 - a CRS rasterio cannot write has no vertical part to use
        return None
    if "VERT" not in wkt.upper():
        return None
    import pyproj

    try:
        parts = pyproj.CRS.from_wkt(wkt).sub_crs_list
    except pyproj.exceptions.CRSError:
        return None
    for part in parts:
        if part.is_vertical and part.axis_info:
            axis = part.axis_info[0]
            return part.name, axis.unit_name, float(axis.unit_conversion_factor)
    return None


def read_window(ds, info: RasterInfo, window=None):
    """(raw values, mask or None) of ``info``'s band in ``window`` ((r0, r1), (c0, c1)).

    The mask (0 = no data) is read only when the file's holes are a GDAL mask band,
    per-dataset mask or alpha band; windowed, like the band.
    """
    raw = read_band(ds, info.path, info.band, window)
    if info.mask is None:
        return raw, None
    if info.alpha_band is not None:
        return raw, read_band(ds, info.path, info.alpha_band, window)
    win = None
    if window is not None:
        (row0, row1), (col0, col1) = window
        win = Window(col0, row0, col1 - col0, row1 - row0)
    try:
        return raw, ds.read_masks(info.band, window=win)
    except (RasterioError, CPLE_BaseError) as exc:
        raise InputError(f"{info.path}: cannot read the {info.mask} of band {info.band} "
                         f"({first_line(exc)}); the file may be truncated or corrupt") from None


def described(src, read: ReadOptions | None = None) -> RasterInfo:
    """``src`` validated and described once: a :class:`RasterInfo` passes through (the
    caller opened it already); a path is opened with ``read``'s band and CRS."""
    if isinstance(src, RasterInfo):
        return src
    read = read or ReadOptions()
    return raster_info(src, band=read.band, src_crs=read.src_crs)


def raster_info(path, *, band: int = 1, src_crs=None) -> RasterInfo:
    """Open ``path`` just long enough to validate and describe it."""
    ds, info = open_described(path, band=band, src_crs=src_crs)
    ds.close()
    return info


def open_described(path, *, band: int = 1, src_crs=None):
    """(open dataset, RasterInfo) of ``path``: :func:`raster_info`'s checks, the dataset
    left open for the caller to read and close (closed here if the checks fail)."""
    path = os.fspath(path)
    with rasterio.Env(**GDAL_ENV):
        ds = open_raster(path)
        try:
            return ds, describe(ds, path, band, src_crs)
        except BaseException:
            ds.close()
            raise



import contextlib  # noqa: E402 - used by the GDAL error collectors below only
import threading  # noqa: E402


class _GdalLogHub(logging.Handler):
    """The one handler on rasterio's GDAL logger while any :class:`GdalErrors` is active.

    GDAL's error handler runs in the thread that caused the error, so every record
    carries that thread (``record.thread``): the hub hands it to the collectors that
    registered the thread, and to no other. The logger's level, propagation and
    handlers are changed when the first collector starts and restored when the last
    one ends, whatever order overlapping runs end in.
    """

    def __init__(self):
        super().__init__(level=logging.INFO)
        self._guard = threading.Lock()
        self.collectors: list = []
        self.saved = None
        self.user_level = logging.WARNING
        self.forward = False

    def emit(self, record):
        with self._guard:
            owners = [c for c in self.collectors if record.thread in c._threads]
        for collector in owners:
            collector.collect(record)
        if self.forward and record.levelno >= self.user_level and GdalErrors._logger.parent:
            # What the user's logging would have seen anyway still reaches it.
            GdalErrors._logger.parent.handle(record)

    def add(self, collector):
        logger = GdalErrors._logger
        with self._guard:
            if not self.collectors:
                self.saved = (logger.level, logger.propagate)
                self.user_level = logger.getEffectiveLevel()
                self.forward = False
                logger.addHandler(self)
                if self.user_level > logging.INFO:
                    # See rasterio's INFO records without passing them on to the user.
                    self.forward = logger.propagate
                    logger.setLevel(logging.INFO)
                    logger.propagate = False
            self.collectors.append(collector)

    def remove(self, collector):
        logger = GdalErrors._logger
        with self._guard:
            if collector in self.collectors:
                self.collectors.remove(collector)
            if not self.collectors and self.saved is not None:
                logger.removeHandler(self)
                logger.setLevel(self.saved[0])
                logger.propagate = self.saved[1]
                self.saved = None


class GdalErrors:
    """Collects the errors GDAL reports through rasterio's logger for one run.

    GDAL only logs some failures (a cached block flushed to a full disk, say:
    rasterio logs "GDAL signalled an error" at INFO); a writer checks this before
    committing a file. Use as a context manager: the thread that enters it is
    watched until it exits; other threads of the run (workers writing blocks) are
    watched inside :meth:`watching`, and must run inside ``rasterio.Env`` for their
    errors to arrive. Errors of other threads (another run in the same process)
    are never collected here.
    """

    _logger = logging.getLogger("rasterio._env")
    _SIGNAL = "GDAL signalled an error"
    _hub = _GdalLogHub()

    def __init__(self):
        self.messages: list[str] = []
        self._threads: dict[int, int] = {}
        self._lock = threading.Lock()

    def collect(self, record):
        text = record.getMessage()
        if record.levelno >= logging.ERROR or text.startswith(self._SIGNAL):
            self.messages.append(text)

    def _watch(self, ident, step):
        with self._lock:
            n = self._threads.get(ident, 0) + step
            if n > 0:
                self._threads[ident] = n
            else:
                self._threads.pop(ident, None)

    @contextlib.contextmanager
    def watching(self):
        """Attribute the current thread's GDAL errors to this run while inside."""
        ident = threading.get_ident()
        self._watch(ident, 1)
        try:
            yield self
        finally:
            self._watch(ident, -1)

    def __enter__(self):
        self._entered = threading.get_ident()
        self._watch(self._entered, 1)
        self._hub.add(self)
        return self

    def __exit__(self, *exc):
        self._hub.remove(self)
        self._watch(self._entered, -1)

    def check(self, path: str) -> None:
        if self.messages:
            first = first_line(self.messages[0])
            raise OutputError(f"{path}: GDAL could not write it ({first}); "
                              "is the disk full or the folder read-only?")
