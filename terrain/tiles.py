"""Tile sets: many adjacent DEM files computed as one surface, with per-tile outputs.

Real DEMs come as tiles (SRTM, Copernicus GLO-30, 3DEP, national LiDAR grids).
Computed file by file, every tile's border sees one side only. Here the inputs
(paths, globs, folders, list files, VRTs: :func:`expand_inputs`) are grouped by
grid (:func:`plan_tiles`): tiles sharing CRS, pixel size, pixel alignment, data
type, nodata, scale, offset and vertical unit form a set, and a VRT of each set
is written (:func:`write_vrt`, the XML written here, into a folder that lives for
the run). Each tile is then computed on the mosaic's grid (its ground map and
spacing) for the tile's window only, its halo read from the neighbours, and
written cropped to the tile with the tile's own transform
(:func:`process_tile`, :func:`terrain.stream.process_file` with ``window=``):
its outputs equal the whole mosaic's on its cells, bit for bit.

Tiles that repeat their edge row / column (SRTM ``.hgt``: a one-pixel overlap)
are fine: the overlapping cells hold the same values, so they come out the
same in both tiles. Gaps between tiles and missing neighbours are the VRT's
nodata, handled like any hole. Tiles on another grid (or overlapping the set
by more than :data:`MAX_OVERLAP` cells, or with a GDAL mask band) are computed
on their own.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import math
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError, TerrainError
from .raster import GDAL_ENV, ReadOptions, is_gdal_path, open_described, raster_info

# Extensions of the files a folder given as input contributes (sidecars excluded).
RASTER_SUFFIXES = (".tif", ".tiff", ".hgt", ".vrt", ".img", ".asc", ".dem", ".bil", ".flt",
                   ".jp2", ".dt0", ".dt1", ".dt2", ".nc", ".grd", ".ter", ".bt")
# A text file listing one raster per line ('#' starts a comment).
LIST_SUFFIXES = (".txt", ".lst", ".list")
# Tiles may share this many edge rows / columns (SRTM repeats one); more is not a tile set.
MAX_OVERLAP = 2
# Tiles of one set computed at once (one thread each, its windows on the set's shared
# worker threads): the workers stay busy while a finished tile's files are closed and
# the next tile's created; one set of output files is open per tile running.
TILE_LANES = 3
# Pixel offsets between tiles within this many pixels of a whole number are aligned.
ALIGN_TOLERANCE = 1e-4
_GLOB_CHARS = ("*", "?", "[")

_VRT_TYPES = {"uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16",
              "uint32": "UInt32", "int32": "Int32", "uint64": "UInt64", "int64": "Int64",
              "float32": "Float32", "float64": "Float64"}


# --------------------------------------------------------------------------- inputs

def expand_inputs(args, *, expand_vrt: bool = True) -> list[str]:
    """The raster files named by ``args``, in order (a file named twice comes twice).

    Each argument is a path, a glob pattern (``tiles/*.tif``; one matching
    nothing is an error), a folder (its raster files, sorted, not recursive), a
    text file (``.txt``, ``.lst``, ``.list``) with one path per line (relative to
    the list's folder; blank lines and ``#`` comments skipped), or a VRT, which
    stands for its source files when ``expand_vrt`` (a mosaic of tiles).
    """
    out = [path for arg in args for path in _expand_one(os.fspath(arg), expand_vrt)]
    if not out:
        raise InputError("no input raster given; name files, a folder, a list file or a glob")
    return out


def _expand_one(arg: str, expand_vrt: bool) -> list[str]:
    if is_gdal_path(arg):
        return [arg]
    if not os.path.exists(arg) and any(c in arg for c in _GLOB_CHARS):
        found = sorted(p for p in glob.glob(arg) if os.path.isfile(p))
        if not found:
            raise InputError(f"{arg}: the pattern matches no file; check the pattern "
                             "(quote it to let terrain expand it)")
        return [p for f in found for p in _expand_one(f, expand_vrt)]
    if os.path.isdir(arg):
        found = sorted(os.path.join(arg, n) for n in os.listdir(arg)
                       if n.lower().endswith(RASTER_SUFFIXES) and not n.startswith(".")
                       and os.path.isfile(os.path.join(arg, n)))
        if not found:
            raise InputError(f"{arg}: is a directory holding no raster file ({', '.join(RASTER_SUFFIXES[:4])} "
                             "...); check the folder")
        return [p for f in found for p in _expand_one(f, expand_vrt)]
    lower = arg.lower()
    if lower.endswith(LIST_SUFFIXES) and os.path.isfile(arg):
        return _read_list(arg, expand_vrt)
    if expand_vrt and lower.endswith(".vrt") and os.path.isfile(arg):
        return _vrt_sources(arg)
    return [arg]


def _read_list(path: str, expand_vrt: bool) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the list of rasters ({exc}); "
                         "give a UTF-8 text file with one path per line") from None
    base = os.path.dirname(path)
    out = []
    for number, line in enumerate(lines, start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if not is_gdal_path(entry) and not os.path.isabs(entry):
            entry = os.path.join(base, entry)
        if not is_gdal_path(entry) and not any(c in entry for c in _GLOB_CHARS):
            if not os.path.isfile(entry) or not os.access(entry, os.R_OK):
                why = "no such file" if not os.path.exists(entry) else "not a readable file"
                raise InputError(f"{path}: line {number}: {entry}: {why}; fix the list")
        out.extend(_expand_one(entry, expand_vrt))
    if not out:
        raise InputError(f"{path}: the list names no raster; give one path per line")
    return out


def _vrt_sources(path: str) -> list[str]:
    """The files a VRT mosaics (itself if it reads none, e.g. a VRT of a VRT's band)."""
    import rasterio

    from .raster import open_raster

    with rasterio.Env(**GDAL_ENV), open_raster(path) as ds:
        files = [os.path.abspath(f) for f in ds.files]
    me = os.path.abspath(path)
    sources = [f for f in files if f != me and f.lower().endswith(RASTER_SUFFIXES)]
    return sources or [path]


# --------------------------------------------------------------------------- grouping

@dataclass(frozen=True)
class Tile:
    """One input file of a tile set: where it sits in the mosaic."""

    path: str
    info: object  # terrain.raster.RasterInfo of the file
    window: tuple  # (row0, row1, col0, col1) in the mosaic


@dataclass
class TileSet:
    """Tiles on one grid, and the VRT mosaicking them (``vrt`` once written)."""

    tiles: list
    shape: tuple
    transform: object  # affine.Affine of the mosaic
    vrt: str | None = None
    _protected: frozenset | None = None
    _grids: dict = field(default_factory=dict)

    _pools: dict = field(default_factory=dict)
    _info: object = None
    band: int = 1  # the tiles' band the VRT reads
    _direct: bool | None = None
    _overlapping: set | None = None
    tile_threads: int | None = None  # threads of each tile's windows (see :func:`schedule`)
    _templates: object = None
    _strips: object = None
    # {path: dataset} opened when the set was planned (see :func:`plan_tiles`'s
    # ``keep_open``), not yet read for the tile's own windows (:meth:`SetExecutor.dataset`).
    _opened: dict = field(default_factory=dict)
    _once: object = field(default_factory=threading.RLock, repr=False)

    def strips(self):
        """The set's :class:`HaloStrips` (its tiles' edge rows and columns, read once)."""
        if self._strips is None:
            self._strips = HaloStrips()
        return self._strips

    def templates(self):
        """The set's :class:`terrain.tiff.TagTemplates`: its tiles' outputs share GDAL's tag
        templates (see :func:`writing`)."""
        if self._templates is None:
            from .tiff import TagTemplates

            self._templates = TagTemplates()
        return self._templates

    def direct_reads(self) -> bool:
        """Whether the mosaic's windows can be read from the tiles without the VRT: no two
        tiles with a nodata value overlap (the VRT then skips nodata cells of one)."""
        if self._direct is None:
            self._direct = self.tiles[0].info.nodata is None or not self.overlapping()
        return self._direct

    def overlapping(self) -> set:
        """Paths of the tiles sharing cells with another (:func:`_overlapping`), once."""
        if self._overlapping is None:
            self._overlapping = _overlapping(self.tiles)
        return self._overlapping

    def executor(self, threads: int):
        """The set's :class:`SetExecutor` of ``threads`` workers (None for one thread: the
        caller's), shared by its tiles (several of them at once: their windows queue on
        the same threads, which stay busy across tile boundaries); each worker keeps its
        one handle of the VRT (and GDAL the tiles it opened) from tile to tile. Shut
        down by :meth:`close`. Tiles run as lanes of one thread each (``tile_threads`` 1,
        see :func:`schedule`) get one too: their windows run on the lane's own thread,
        read straight from the tiles with the set's :class:`HaloStrips`."""
        if threads <= 1 and self.tile_threads != 1:
            return None
        threads = max(1, int(threads))
        if threads not in self._pools:
            self._pools[threads] = SetExecutor(threads, self)
        return self._pools[threads]

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=True, cancel_futures=True)
        self._pools.clear()
        opened, self._opened = self._opened, {}
        for ds in opened.values():
            ds.close()

    def info(self):
        """The mosaic VRT's RasterInfo, read once for all tiles."""
        with self._once:  # the first tiles start together: one reads it, the others wait
            if self._info is None:
                self._info = raster_info(self.vrt)
        return self._info

    def grid(self, geometry: str):
        """The mosaic's Grid (spacing, ground map) for ``geometry``, computed once."""
        with self._once:  # (12 ms for the benchmark's mosaic, under the GIL)
            if geometry not in self._grids:
                self._grids[geometry] = self.info().grid(geometry)
        return self._grids[geometry]

    def protected(self) -> frozenset:
        """(device, inode) of every file the set reads (tiles, their sidecars), once."""
        if self._protected is None:
            from .writer import input_files

            ids = set()
            for f in input_files([t.path for t in self.tiles]):
                try:
                    st = os.stat(f)
                except OSError:
                    continue
                ids.add((st.st_dev, st.st_ino))
            self._protected = frozenset(ids)
        return self._protected

    def tile(self, path: str) -> Tile | None:
        for t in self.tiles:
            if t.path == path:
                return t
        return None


class SetExecutor:
    """A tile set's worker threads: a ThreadPoolExecutor (none for one thread: the windows
    then run on the caller's thread, a lane of tiles) reading the mosaic's windows straight
    from the tiles (:meth:`read_padded`). The open tile handles are the set's, shared by
    its threads (:meth:`dataset`: a read takes an idle one of its file or opens one, and
    gives it back), so that whichever thread runs the next tile finds its neighbours
    open; the most recently used :data:`OPEN_PER_THREAD` stay open, closed with the pool
    (:meth:`shutdown`)."""

    def __init__(self, threads: int, tile_set: "TileSet | None" = None):
        import threading
        from collections import OrderedDict
        from concurrent.futures import ThreadPoolExecutor

        # One thread: no pool, the windows run on the calling thread (:meth:`submit`).
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="tiles") \
            if threads > 1 else None
        self._set = tile_set
        self._idle = OrderedDict()  # path: [idle datasets], least recently used first
        self._count = 0  # idle datasets
        # A lane reads its tile once and its neighbours' strips once (HaloStrips): GDAL's
        # cached blocks of an idle handle are not read again, only kept (RSS).
        self._keep = OPEN_PER_THREAD if threads > 1 else OPEN_PER_LANE
        self._handles = [self._idle]  # what shutdown closes
        self._lock = threading.Lock()

    def submit(self, fn, *args, **kwargs):
        if self._pool is None:  # one thread: the caller's, run now
            from concurrent.futures import Future

            future = Future()
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - raised by result(), as a pool's
                future.set_exception(exc)
            return future
        return self._pool.submit(fn, *args, **kwargs)

    @contextlib.contextmanager
    def dataset(self, path: str, *, edge: bool = False, last: bool = False):
        """An open dataset of ``path`` for this thread alone while the block runs: an idle
        one of the set's if there is (whichever thread opened it), else the one opened
        when the set was planned (:attr:`TileSet._opened`), else a new one; idle again
        after it (the most recently used :data:`OPEN_PER_THREAD` stay open).
        ``edge``: the read is a neighbour's edge strip or halo: a handle from the planning
        goes back there, for the tile's own read to come, instead of among the idle ones
        (where it would be closed before that; the blocks GDAL decoded for the strip stay
        in its cache until then, which GDAL_CACHEMAX bounds). ``last``: no read of
        ``path`` is to come (the tile read whole, its edges kept in the set's
        :class:`HaloStrips`): closed after the block, GDAL's cached blocks of it freed."""
        import rasterio

        from .raster import open_raster

        planned = False
        with self._lock:
            free = self._idle.get(path)
            ds = free.pop() if free else None
            if ds is not None:
                self._count -= 1
            if free is not None and not free:
                del self._idle[path]
            if ds is None and self._set is not None and self._handles:
                ds = self._set._opened.pop(path, None)
                planned = ds is not None
        if ds is None:
            # A worker's window runs in terrain's GDAL environment already (leaving a
            # nested one costs rasterio a new default environment: half the open's time).
            with contextlib.nullcontext() if rasterio.env.hasenv() else rasterio.Env(**GDAL_ENV):
                ds = open_raster(path)
        closing = []
        try:
            yield ds
        finally:
            with self._lock:
                if not self._handles or last:  # shut down meanwhile, or done with
                    closing.append(ds)
                elif planned and edge:
                    self._set._opened[path] = ds
                else:
                    self._idle.setdefault(path, []).append(ds)
                    self._idle.move_to_end(path)
                    self._count += 1
                    while self._count > self._keep:
                        old = next(iter(self._idle))
                        closing.append(self._idle[old].pop(0))
                        self._count -= 1
                        if not self._idle[old]:
                            del self._idle[old]
            for old in closing:  # (not under the lock: closing frees GDAL's cached blocks)
                old.close()

    def read_padded(self, info, row0, row1, col0, col1, halo):
        """:func:`terrain.stream.read_padded` of ``info`` (the set's VRT, or any raster)
        with this thread's handles. The VRT's windows are read from the tiles it
        mosaics, placed as the VRT places them (a later tile over an earlier one; the
        VRT's nodata, in its type, where no tile is), so the values are the VRT's; a
        set whose overlapping tiles have a nodata value (the VRT skips their nodata
        cells) is read through the VRT."""
        from .engine import file_elevation, halo_bounds, pad_block
        from .raster import read_band
        from .stream import read_padded

        ts = self._set
        if ts is None or info.path != ts.vrt or not ts.direct_reads() or info.mask is not None:
            with self.dataset(info.path) as ds:
                return read_padded(ds, info, row0, row1, col0, col1, halo)
        r0, r1, c0, c1 = halo_bounds(info.shape, row0, row1, col0, col1, halo)
        strips = ts.strips() if self._pool is None else None
        pieces = []  # (tile number, tile, its part, where it goes), in the VRT's order
        for k, tile in enumerate(ts.tiles):
            t0, t1, u0, u1 = tile.window
            a0, a1, b0, b1 = max(r0, t0), min(r1, t1), max(c0, u0), min(c1, u1)
            if a0 < a1 and b0 < b1:
                pieces.append((k, tile, ((a0 - t0, a1 - t0), (b0 - u0, b1 - u0)),
                               (slice(a0 - r0, a1 - r0), slice(b0 - c0, b1 - c0))))
        # The VRT's nodata where no tile is; a window the tiles cover whole (they do not
        # overlap and their parts add up to it) is not filled first.
        shape, dtype = (r1 - r0, c1 - c0), np.dtype(info.dtype)
        covered = not ts.overlapping() and sum(_area(p[2]) for p in pieces) == shape[0] * shape[1]
        nodata = np.nan if info.nodata is None else info.nodata
        raw = np.empty(shape, dtype) if covered else np.full(shape, nodata, dtype)

        # A neighbour's edge strip or halo is at most STRIP rows or columns; a tile read
        # whole by a lane (its edges then in the strips) is closed at once.
        def read(part, tile):
            (a0, a1), (b0, b1) = part
            edge = min(a1 - a0, b1 - b0) <= STRIP
            whole = strips is not None and a0 == b0 == 0 and (a1, b1) == tile.info.shape
            with self.dataset(tile.path, edge=edge, last=whole) as ds:
                return read_band(ds, tile.path, ts.band, part)

        if strips is None:
            for k, tile, part, where in pieces:
                raw[where] = read(part, tile)
        else:
            # The window's own tile first: its edge strips are then there for the lane
            # running its neighbour; placed in the VRT's order (a later tile on top).
            got = {}
            for k, tile, part, where in sorted(pieces, key=lambda p: -_area(p[2])):
                t0, t1, u0, u1 = tile.window
                got[k] = strips.read(k, (t1 - t0, u1 - u0), part,
                                     lambda part, tile=tile: read(part, tile))
            for k, tile, part, where in pieces:
                raw[where] = got[k]
        return pad_block(file_elevation(raw, None, info), row0, row1, col0, col1, halo,
                         info.shape)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)
        with self._lock:
            handles, self._handles = self._handles, []
            self._count = 0
        for idle in handles:
            for datasets in idle.values():
                for ds in datasets:
                    ds.close()
            idle.clear()


# Idle tile handles a set keeps open, shared by its threads (the least recently used is
# closed, and GDAL's cached blocks of it freed): a window's neighbours stay open, memory
# does not grow with the number of tiles (100 tiles of 820^2, slope: peak RSS 175 MB with
# 8 per thread, 245 MB with 128, on a loaded machine).
OPEN_PER_THREAD = 8
# Idle tile handles kept by the lanes of one thread (see SetExecutor): 100 tiles of 819^2,
# slope, 2 lanes: ~300 opens with 2, 4 or 8 kept, peak RSS 181, 204 and 226 MB (loaded).
OPEN_PER_LANE = 2


def _area(part) -> int:
    (a0, a1), (b0, b1) = part
    return (a1 - a0) * (b1 - b0)


class HaloStrips:
    """Each tile's edge rows and columns (:data:`STRIP` of each side), read once for all
    its neighbours' halos.

    A tile's window needs a row or two of the tiles around it; GDAL decodes whole
    blocks for them (a 256-row block for one row), once per neighbouring window. Here
    a read of a tile that lies within one of its edge strips is served from the strip,
    read whole the first time (or kept from the read of the whole tile, which comes
    first for the tiles before it); the same values, so the same mosaic. The most
    recently used strips are kept, at most :data:`STRIP_BYTES` of them (the tiles
    around the ones running): memory does not grow with the number of tiles.
    """

    def __init__(self, max_bytes: int | None = None):
        import threading
        from collections import OrderedDict

        self._strips = OrderedDict()  # (tile number, side): raw values
        self._loading = {}  # (tile number, side): Event set once read (by another thread)
        self._bytes = 0
        self._max = STRIP_BYTES if max_bytes is None else max_bytes
        self._lock = threading.Lock()

    @staticmethod
    def _sides(shape):
        rows, cols = shape
        w = STRIP
        # side: the strip's part of the tile, ((row0, row1), (col0, col1))
        return {"top": ((0, min(w, rows)), (0, cols)),
                "bottom": ((max(0, rows - w), rows), (0, cols)),
                "left": ((0, rows), (0, min(w, cols))),
                "right": ((0, rows), (max(0, cols - w), cols))}

    def read(self, k: int, shape, part, read):
        """Raw values of ``part`` ((row0, row1), (col0, col1)) of tile number ``k`` (of
        ``shape``): from a strip holding it, else ``read(part)`` (whose result fills the
        tile's strips it covers). A strip another thread is reading is waited for, not
        read twice."""
        (a0, a1), (b0, b1) = part
        sides = self._sides(shape)
        for side, ((s0, s1), (v0, v1)) in sides.items():
            if s0 <= a0 and a1 <= s1 and v0 <= b0 and b1 <= v1 and (s1 - s0) * (v1 - v0) < \
                    shape[0] * shape[1]:
                key = (k, side)
                strip = self._claim([key]).get(key)
                if strip is None:  # this thread reads it
                    try:
                        strip = read(((s0, s1), (v0, v1)))
                        self._put(key, strip)
                    finally:
                        self._release([key])
                return strip[a0 - s0:a1 - s0, b0 - v0:b1 - v0]
        covered = [(k, side) for side, ((s0, s1), (v0, v1)) in sides.items()
                   if a0 <= s0 and s1 <= a1 and b0 <= v0 and v1 <= b1]
        mine = self._claim(covered, wait=False)
        try:
            values = read(part)
            for key in mine:
                (s0, s1), (v0, v1) = sides[key[1]]
                self._put(key, values[s0 - a0:s1 - a0, v0 - b0:v1 - b0].copy())
        finally:
            self._release(mine)
        return values

    def _claim(self, keys, wait=True):
        """With ``wait``: {key: strip} of the strips there (waiting for those another
        thread is reading), the others claimed by this thread (absent from the result,
        to be read and released). Without: the keys neither there nor being read,
        claimed."""
        import threading

        got, mine = {}, []
        for key in keys:
            while True:
                with self._lock:
                    strip = self._strips.get(key)
                    if strip is not None:
                        self._strips.move_to_end(key)
                        got[key] = strip
                        break
                    event = self._loading.get(key)
                    if event is None:
                        self._loading[key] = threading.Event()
                        mine.append(key)
                        break
                if not wait:
                    break
                event.wait()  # read by another thread: there now (or failed: retry)
        return got if wait else mine

    def _release(self, keys) -> None:
        with self._lock:
            events = [self._loading.pop(key) for key in keys if key in self._loading]
        for event in events:
            event.set()

    def _get(self, key):
        with self._lock:
            strip = self._strips.get(key)
            if strip is not None:
                self._strips.move_to_end(key)
            return strip

    def _put(self, key, strip) -> None:
        with self._lock:
            if key in self._strips:
                return
            self._strips[key] = strip
            self._bytes += strip.nbytes
            while self._bytes > self._max and len(self._strips) > 1:
                self._bytes -= self._strips.popitem(last=False)[1].nbytes

    def __len__(self):
        return len(self._strips)


# Rows / columns of each tile edge kept (the widest halo: Florinsky's 5 x 5 needs 2).
STRIP = 2
# Strips kept at most (bytes): 32 MB, the edges of ~1,000 tiles of 1,000^2 float32.
STRIP_BYTES = 32 * 2**20


@dataclass
class TilePlan:
    """What to do with each input: ``sets`` (two tiles or more), and the rest alone."""

    inputs: list
    sets: list = field(default_factory=list)
    alone: list = field(default_factory=list)  # readable, not in a set (other grid ...)
    unreadable: list = field(default_factory=list)  # raster_info failed: reported when run
    off_grid: list = field(default_factory=list)  # readable tiles left out of a set: warn

    def job(self, path: str):
        """(TileSet, Tile) of ``path`` when it belongs to a set, else None."""
        for s in self.sets:
            t = s.tile(path)
            if t is not None:
                return s, t
        return None

    def warning(self) -> str | None:
        """The one warning naming the tiles processed on their own, if a set left some out."""
        if not self.sets or not self.off_grid:
            return None
        return (f"{', '.join(self.off_grid)}: not on the grid of the other tiles (CRS, pixel size, "
                "alignment, type, nodata or overlap differ); processed on their own, with "
                "their borders from one side only")


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a)
                      and math.isnan(b))


def _key_equal(a, b) -> bool:
    """Whether two RasterInfo describe values of the same kind on a parallel grid."""
    ta, tb = a.transform, b.transform
    return (a.crs == b.crs and a.dtype == b.dtype and _same(a.nodata, b.nodata)
            and a.scale == b.scale and a.offset == b.offset and a.z_factor == b.z_factor
            and a.vertical_unit == b.vertical_unit and a.mask is None and b.mask is None
            and math.isclose(ta.a, tb.a, rel_tol=1e-9) and math.isclose(ta.e, tb.e, rel_tol=1e-9))


def _offset(ref, info) -> tuple[int, int] | None:
    """(row, col) of ``info``'s first pixel on ``ref``'s grid, None if between pixels."""
    col = (info.transform.c - ref.transform.c) / ref.transform.a
    row = (info.transform.f - ref.transform.f) / ref.transform.e
    rc, cc = round(row), round(col)
    if abs(row - rc) > ALIGN_TOLERANCE or abs(col - cc) > ALIGN_TOLERANCE:
        return None
    return int(rc), int(cc)


def _overlap_too_wide(w, others) -> bool:
    r0, r1, c0, c1 = w
    for o0, o1, p0, p1 in others:
        h = min(r1, o1) - max(r0, o0)
        wd = min(c1, p1) - max(c0, p0)
        if h > 0 and wd > 0 and min(h, wd) > MAX_OVERLAP:
            return True
    return False


def plan_tiles(paths, *, band: int = 1, src_crs=None, keep_open: bool = False) -> TilePlan:
    """Group ``paths`` (files) into tile sets; the others are to be processed alone.

    A set is the tiles sharing the first member's CRS, pixel size, pixel alignment,
    type, nodata, scale, offset and vertical unit, no two overlapping by more than
    :data:`MAX_OVERLAP` rows or columns; a set needs two tiles. Files that cannot
    be read are kept apart (``unreadable``): processing them alone reports why.
    ``keep_open``: the sets keep their tiles open from here (the first
    :func:`keep_open_limit` of them) for the runs to read (:meth:`SetExecutor.dataset`):
    each tile is then opened once, not for its header, then its neighbours' halos, then
    its own windows (rasterio's open holds the GIL); closed by :meth:`TileSet.close`.
    """
    plan = TilePlan(inputs=list(paths))
    infos = {}
    opened = {}
    limit = keep_open_limit() if keep_open else 0
    try:
        for p in dict.fromkeys(plan.inputs):  # a file named twice is read once
            try:
                if len(opened) < limit:
                    opened[p], infos[p] = open_described(p, band=band, src_crs=src_crs)
                else:
                    infos[p] = raster_info(p, band=band, src_crs=src_crs)
            except TerrainError:
                plan.unreadable.append(p)
    except BaseException:  # Ctrl-C: nothing left open
        for ds in opened.values():
            ds.close()
        raise
    groups: list[tuple[object, dict]] = []  # (reference info, {path: (row, col)})
    left = []
    for p, info in infos.items():
        for ref, members in groups:
            if not _key_equal(ref, info):
                continue
            off = _offset(ref, info)
            if off is None:
                continue
            w = (off[0], off[0] + info.shape[0], off[1], off[1] + info.shape[1])
            if _overlap_too_wide(w, members.values()):
                continue
            members[p] = w
            break
        else:
            if info.mask is None:
                groups.append((info, {p: (0, info.shape[0], 0, info.shape[1])}))
            else:
                left.append(p)
    sets = []
    for ref, members in groups:
        if len(members) < 2:
            left.extend(members)
            continue
        sets.append(_tile_set(ref, members, infos))
        sets[-1]._opened = {p: opened.pop(p) for p in members if p in opened}
    for ds in opened.values():  # files processed alone: opened again then
        ds.close()
    plan.sets = sets
    in_set = {t.path for s in sets for t in s.tiles}
    plan.alone = [p for p in dict.fromkeys(plan.inputs) if p in infos and p not in in_set]
    plan.off_grid = list(plan.alone) if sets else []
    return plan


def keep_open_limit() -> int:
    """Tiles :func:`plan_tiles` keeps open at most (``keep_open``): :data:`KEEP_OPEN`, and
    no more than a quarter of the process's file descriptors."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft == resource.RLIM_INFINITY:
            soft = 4 * KEEP_OPEN
    except (ImportError, OSError, ValueError):  # pragma: no cover - not POSIX
        soft = 1024
    return max(0, min(KEEP_OPEN, soft // 4))


# Tiles a run keeps open from the planning at most (an idle GeoTIFF handle: ~20 kB).
KEEP_OPEN = 512


def _tile_set(ref, members: dict, infos: dict) -> TileSet:
    from affine import Affine

    rmin = min(w[0] for w in members.values())
    cmin = min(w[2] for w in members.values())
    rows = max(w[1] for w in members.values()) - rmin
    cols = max(w[3] for w in members.values()) - cmin
    # The mosaic's origin from the tiles' own numbers (exact), not recomputed.
    west = next(infos[p] for p, w in members.items() if w[2] == cmin).transform.c
    north = next(infos[p] for p, w in members.items() if w[0] == rmin).transform.f
    t = ref.transform
    transform = Affine(t.a, 0.0, west, 0.0, t.e, north)
    tiles = [Tile(p, infos[p], (w[0] - rmin, w[1] - rmin, w[2] - cmin, w[3] - cmin))
             for p, w in members.items()]
    return TileSet(tiles=tiles, shape=(rows, cols), transform=transform)


# --------------------------------------------------------------------------- VRT

def _num(v: float) -> str:
    return repr(float(v))


def write_vrt(tile_set: TileSet, path: str, *, band: int = 1) -> str:
    """Write the VRT of ``tile_set`` to ``path`` (the XML written here); return ``path``.

    Integer tiles without a nodata value get a floating-point VRT (Float32, or
    Float64 for 32-bit and wider integers: the type terrain computes them in)
    with NaN as nodata, so that gaps have a value no elevation has. Sources with
    a nodata value are ComplexSources with it, so an overlapping tile's holes do
    not cover its neighbour's values.
    """
    ref = tile_set.tiles[0].info
    dtype = np.dtype(ref.dtype)
    nodata = ref.nodata
    vrt_type = _VRT_TYPES.get(str(dtype))
    if vrt_type is None:
        raise InputError(f"{ref.path}: {dtype} tiles cannot be mosaicked; convert them "
                         "(gdal_translate -ot Float32)")
    if nodata is None and dtype.kind in "iu":
        vrt_type = "Float32" if dtype.itemsize < 4 else "Float64"
        nodata = float("nan")
    elif nodata is None:
        nodata = float("nan")
    t = tile_set.transform
    rows, cols = tile_set.shape
    nd_text = "nan" if math.isnan(nodata) else _num(nodata) if dtype.kind == "f" else str(int(nodata))
    lines = [f'<VRTDataset rasterXSize="{cols}" rasterYSize="{rows}">']
    mapping = _axis_mapping(ref.crs)
    from xml.sax.saxutils import escape  # here: it imports urllib (16 ms of every start)

    lines.append(f"  <SRS{mapping}>{escape(ref.crs.to_wkt())}</SRS>")
    lines.append(f"  <GeoTransform>{_num(t.c)}, {_num(t.a)}, 0.0, {_num(t.f)}, 0.0, "
                 f"{_num(t.e)}</GeoTransform>")
    lines.append(f'  <VRTRasterBand dataType="{vrt_type}" band="1">')
    lines.append(f"    <NoDataValue>{nd_text}</NoDataValue>")
    if ref.vertical_unit:
        lines.append(f"    <UnitType>{escape(ref.vertical_unit)}</UnitType>")
    if ref.offset != 0.0:
        lines.append(f"    <Offset>{_num(ref.offset)}</Offset>")
    if ref.scale != 1.0:
        lines.append(f"    <Scale>{_num(ref.scale)}</Scale>")
    overlapping = tile_set.overlapping()
    for tile in tile_set.tiles:
        # A ComplexSource skips its nodata cells (an overlapping tile's holes must not
        # cover its neighbour's values) but GDAL reads it 3x slower: only where needed.
        kind = "ComplexSource" if ref.nodata is not None and tile.path in overlapping \
            else "SimpleSource"
        r0, r1, c0, c1 = tile.window
        info = tile.info
        by, bx = info.block_shape
        lines += [
            f"    <{kind}>",
            f'      <SourceFilename relativeToVRT="0">{escape(_abs(tile.path))}</SourceFilename>',
            f"      <SourceBand>{band}</SourceBand>",
            f'      <SourceProperties RasterXSize="{info.shape[1]}" RasterYSize="{info.shape[0]}" '
            f'DataType="{_VRT_TYPES[str(dtype)]}" BlockXSize="{bx}" BlockYSize="{by}" />',
            f'      <SrcRect xOff="0" yOff="0" xSize="{c1 - c0}" ySize="{r1 - r0}" />',
            f'      <DstRect xOff="{c0}" yOff="{r0}" xSize="{c1 - c0}" ySize="{r1 - r0}" />',
        ]
        if kind == "ComplexSource":
            lines.append(f"      <NODATA>{nd_text}</NODATA>")
        lines.append(f"    </{kind}>")
    lines += ["  </VRTRasterBand>", "</VRTDataset>", ""]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    tile_set.vrt = path
    tile_set.band = band
    return path


def _overlapping(tiles) -> set:
    """Paths of the tiles sharing cells with another tile."""
    out = set()
    rows = sorted(tiles, key=lambda t: t.window[0])
    for k, a in enumerate(rows):
        for b in rows[k + 1:]:
            if b.window[0] >= a.window[1]:
                break
            if min(a.window[3], b.window[3]) > max(a.window[2], b.window[2]):
                out.update((a.path, b.path))
    return out


def _abs(path: str) -> str:
    return path if is_gdal_path(path) else os.path.abspath(path)


def _axis_mapping(crs) -> str:
    """GDAL's data axis to CRS axis mapping for traditional GIS order (x = east / lon)."""
    try:
        import pyproj

        axes = pyproj.CRS.from_wkt(crs.to_wkt()).axis_info
    except Exception:  # noqa: BLE001 - no axis information: GDAL's default
        return ""
    if len(axes) >= 2 and axes[0].direction.lower() in ("north", "south"):
        return ' dataAxisToSRSAxisMapping="2,1"'
    return ' dataAxisToSRSAxisMapping="1,2"' if len(axes) >= 2 else ""


class TileWorkdir:
    """A temporary folder for a run's VRTs, removed on exit (a context manager)."""

    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="terrain-tiles-")
        self.sets = []

    def vrt_for(self, tile_set: TileSet, k: int, *, band: int = 1) -> str:
        self.sets.append(tile_set)
        return write_vrt(tile_set, os.path.join(self.path, f"mosaic{k}.vrt"), band=band)

    def close(self):
        for s in self.sets:
            s.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def prepare(args, *, band: int = 1, src_crs=None, workdir: TileWorkdir) -> TilePlan:
    """Expand ``args``, group them and write each set's VRT into ``workdir``."""
    plan = plan_tiles(expand_inputs(args), band=band, src_crs=src_crs, keep_open=True)
    try:
        for k, s in enumerate(plan.sets):
            workdir.vrt_for(s, k, band=band)
    except BaseException:
        for s in plan.sets:  # the tiles it keeps open
            s.close()
        raise
    return plan


# --------------------------------------------------------------------------- running

def check_outputs(tile_set: TileSet, paths) -> None:
    """Refuse an output that is one of the set's tiles (or a file they read), as
    :func:`terrain.writer.check_target` does for one input; the set is listed once."""
    from .errors import OutputError

    for path in paths:
        try:
            st = os.stat(os.path.realpath(os.fspath(path)))
        except OSError:
            continue  # not there: not an input
        if (st.st_dev, st.st_ino) in tile_set.protected():
            raise OutputError(f"{os.path.abspath(os.fspath(path))}: is one of the input tiles (or "
                              "a file they read); choose another output (the input is never "
                              "overwritten)")


def process_tile(tile_set: TileSet, tile: Tile, outputs: dict, opts=None, *, run=None,
                 **kwargs) -> dict:
    """:func:`terrain.stream.process_file` of one tile of a set, on the mosaic's grid.

    ``outputs`` are the tile's ({kind: path}); the other keywords are process_file's
    (not ``read``: the VRT holds the band and CRS). The files have the tile's shape
    and transform and equal the whole mosaic's outputs on its cells.
    """
    from .stream import process_file

    if tile_set.vrt is None:
        raise TerrainError("write the tile set's VRT first (terrain.tiles.write_vrt)")
    from .engine import Options

    check_outputs(tile_set, outputs.values())
    with writing(tile_set):
        return process_file(tile_set.info(), outputs, opts,
                            **tile_keywords(tile_set, tile, (opts or Options()).geometry, run),
                            **kwargs)


@contextlib.contextmanager
def writing(tile_set: TileSet):
    """A context in which the outputs written (in this thread) share the set's tag
    templates: GDAL writes one per kind of output, not one per file (each file's tags
    are still GDAL's, moved to the tile; :class:`terrain.tiff.TagTemplates`). A tile
    run as a lane (``tile_threads`` 1, see :func:`schedule`) also compresses its files'
    blocks on its own thread (:func:`terrain.tiff.inline_encoding`): the lanes keep the
    cores busy, instead of each waiting at its files' close for the encoding threads."""
    from .tiff import inline_encoding, shared_templates

    with shared_templates(tile_set.templates()) as templates, \
            inline_encoding(tile_set.tile_threads == 1):
        yield templates


def schedule(tile_set: TileSet, threads: int) -> int:
    """How many tiles of ``tile_set`` run at once (one job at a time asked) on ``threads``
    worker threads, and on how many threads each tile's windows run (set on the set).

    A set of ``2 * threads`` tiles or more: ``threads`` tiles at once, each computing its
    own windows on its one thread (no hand-over to other threads; a tile finishing its
    files leaves the others computing). Fewer tiles: :data:`TILE_LANES` at once, their
    windows on the set's ``threads`` shared workers. Results never depend on it."""
    if threads <= 1:
        return 1
    if len(tile_set.tiles) >= 2 * threads:
        tile_set.tile_threads = 1
        return threads
    tile_set.tile_threads = None
    return TILE_LANES


def tile_keywords(tile_set: TileSet, tile: Tile, geometry: str, run=None) -> dict:
    """process_file's keywords (with the set's VRT as ``src``) computing ``tile`` with
    ``run`` (RunOptions; default threads: all cores). The outputs are checked against
    the set's files by :func:`check_outputs` (once for all tiles), not by process_file."""
    import dataclasses

    from .engine import RunOptions, default_threads
    from .stream import Crop

    run = run or RunOptions()
    run = dataclasses.replace(run, threads=tile_set.tile_threads or run.threads
                              or default_threads())
    return dict(crop=Crop(tile.window, transform=tile.info.transform, source_name=tile.path,
                          inputs=[]),
                grid=tile_set.grid(geometry), run=run, executor=tile_set.executor(run.threads))


def process_tiles(args, outputs_of, opts=None, *, read=None, jobs: int = 1, **kwargs) -> dict:
    """Every input of ``args`` (see :func:`expand_inputs`) into its own outputs, tile sets seamless.

    ``outputs_of(path) -> {kind: path}`` names each input's outputs; ``read``
    (ReadOptions) says how to read them, the other keywords are process_file's. ``jobs``
    tiles run at once (each on its ``run``'s threads); with ``jobs`` 1 and several
    threads, several tiles of a set run at once (:func:`schedule`).
    Returns ``{path: process_file's result}``; inputs on another grid are processed
    alone, with one :class:`TilesWarning` naming them.
    """
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    from .engine import RunOptions, default_threads
    from .stream import process_file

    with TileWorkdir() as work:
        read = read or ReadOptions()
        plan = prepare(args, band=read.band, src_crs=read.src_crs, workdir=work)
        message = plan.warning()
        if message:
            warnings.warn(message, TilesWarning, stacklevel=2)

        def run(path):
            job = plan.job(path)
            if job is None:
                return process_file(path, outputs_of(path), opts, read=read, **kwargs)
            return process_tile(*job, outputs_of(path), opts, **kwargs)

        def run_all(paths, lanes):
            if lanes <= 1:
                return {p: run(p) for p in paths}
            pool = ThreadPoolExecutor(lanes)
            try:
                return dict(zip(paths, pool.map(run, paths)))
            finally:  # a failure: the tiles not started are not
                pool.shutdown(wait=True, cancel_futures=True)

        threads = (kwargs.get("run") or RunOptions()).threads or default_threads()
        if jobs > 1:
            if threads == 1:
                for s in plan.sets:  # jobs of one thread: lanes (halos from the set's strips)
                    s.tile_threads = 1
            return run_all(plan.inputs, jobs)
        results = run_all([p for p in plan.inputs if plan.job(p) is None], 1)
        for s in plan.sets:
            mine = [p for p in plan.inputs if s.tile(p) is not None]
            results.update(run_all(mine, schedule(s, threads)))
        return {p: results[p] for p in plan.inputs}


class TilesWarning(UserWarning):
    """Inputs not on the tile set's grid, processed on their own."""


# --------------------------------------------------------------------------- Python

_KEEP: list = []


def mosaic_vrt(paths, *, band: int = 1, src_crs=None) -> tuple:
    """(path, band, src_crs) to open for the tiles ``paths`` (see :func:`expand_inputs`):
    their VRT (band 1, its CRS inside), kept until the process ends; a lone file itself.

    Every readable tile must be on one grid (else an error naming those that are not).
    """
    plan = plan_tiles(expand_inputs(paths), band=band, src_crs=src_crs)
    if plan.unreadable:
        raster_info(plan.unreadable[0], band=band, src_crs=src_crs)  # raises its own error
    if len(plan.inputs) == 1:
        return plan.inputs[0], band, src_crs
    if not plan.sets:
        raise InputError(f"{', '.join(plan.inputs)}: no two of them are tiles of one grid "
                         "(CRS, pixel size and alignment); open them one by one")
    if len(plan.sets) > 1 or plan.alone:
        others = [t.path for s in plan.sets[1:] for t in s.tiles] + plan.alone
        raise InputError(f"{', '.join(others)}: not on the grid of {plan.sets[0].tiles[0].path} "
                         "(CRS, pixel size, alignment, type or nodata differ); open them apart")
    if not _KEEP:
        _KEEP.append(TileWorkdir())
        atexit.register(_KEEP[0].close)
    vrt = _KEEP[0].vrt_for(plan.sets[0], len(os.listdir(_KEEP[0].path)), band=band)
    return vrt, 1, None
