"""Opening raster files: every rasterio / GDAL failure becomes a one-line TerrainError.

Shared by :func:`terrain.open_dem` (in memory / dask) and the streaming runner,
so both refuse the same files with the same words.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window

from .errors import CRSMissingError, InputError, OutputError
from .spacing import Grid, check_shape, check_transform, grid_from_transform

# GDAL keeps decoded blocks in a cache that defaults to 5 % of RAM; a streamed run
# never revisits a block more than once, so a small cache bounds memory.
GDAL_ENV = {"GDAL_CACHEMAX": 64 * 2**20, "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}


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

    def grid(self) -> Grid:
        return grid_from_transform(self.transform, self.shape, self.crs, name=self.path)


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


def open_raster(path):
    """``rasterio.open`` with the cause of a failure said in one line."""
    path = os.fspath(path)
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
    try:
        return rasterio.open(path)
    except (UnicodeError, ValueError) as exc:
        # A CRS or metadata text that is not UTF-8 (rasterio cannot decode it).
        raise InputError(f"{path}: unreadable georeferencing text ({type(exc).__name__}); "
                         "rewrite the CRS, e.g. with gdal_translate -a_srs EPSG:XXXX") from None
    except RasterioError as exc:
        raise InputError(
            f"{path}: not a raster GDAL can read ({first_line(exc)}); check the file is a complete DEM"
        ) from None


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
    return RasterInfo(
        path=path,
        band=band,
        shape=shape,
        dtype=dtype,
        nodata=ds.nodatavals[band - 1],
        crs=crs,
        transform=transform,
        block_shape=tuple(ds.block_shapes[band - 1]),
    )


def raster_info(path, *, band: int = 1, src_crs=None) -> RasterInfo:
    """Open ``path`` just long enough to validate and describe it."""
    path = os.fspath(path)
    with rasterio.Env(**GDAL_ENV):
        with open_raster(path) as ds:
            return describe(ds, path, band, src_crs)



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
