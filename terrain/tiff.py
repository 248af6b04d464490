"""A tiled TIFF written from tiles compressed off the write path (issue 11).

GDAL compresses each block inside ``ds.write``, under the one write lock the
streaming workers share, so compression runs on one core. :class:`TiledTIFF`
takes the windows instead, cuts them into the file's tiles and compresses each
tile on a thread pool as soon as it is complete (the predictor and ZSTD of
imagecodecs, the same byte streams libtiff writes), appending it to the file.
The tags are not ours: GDAL writes them into an empty (sparse) template with the
same profile and metadata, and :func:`read_first_ifd` copies them, so the file
says exactly what GDAL's own would (GeoKeys, transform, nodata, GDAL_METADATA
with band descriptions, units and tags, colour table ...). Only the tile
offsets and byte counts are ours. The IFD goes at the end of the file.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import struct
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

try:
    import imagecodecs
except ImportError:  # pragma: no cover - a dependency; the GDAL path still works
    imagecodecs = None

# TIFF field types: size in bytes of one value.
TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8,
              13: 4, 16: 8, 17: 8, 18: 8}
SHORT, LONG, LONG8 = 3, 4, 16
TILE_OFFSETS, TILE_BYTE_COUNTS = 324, 325
# Compression and predictor codes (TIFF tags 259, 317) this writer can produce.
COMPRESSION_ZSTD = 50000
PREDICTOR_NONE, PREDICTOR_HORIZONTAL, PREDICTOR_FLOAT = 1, 2, 3
# classic TIFF cannot address past 4 GiB.
CLASSIC_LIMIT = 2**32 - 1

_POOL = None
_POOL_LOCK = threading.Lock()


def encoder_pool() -> ThreadPoolExecutor:
    """The process's tile-encoding threads (one per core), shared by every file."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
            _POOL = ThreadPoolExecutor(max(1, n or 1), thread_name_prefix="terrain-encode")
        return _POOL


class TIFFTagError(ValueError):
    """The template is not a TIFF this module can copy tags from."""


def direct_ok(opts: dict) -> bool:
    """Whether :class:`TiledTIFF` can write tiles with these GDAL creation options."""
    return (imagecodecs is not None and opts.get("COMPRESS", "").upper() == "ZSTD"
            and opts.get("TILED", "").upper() == "YES"
            and opts.get("PREDICTOR", "1") in ("1", "2", "3"))


def check_template(tags, tiles, template) -> None:
    """The template GDAL wrote (its IFD ``tags``) describes the tiles ``tiles`` holds."""
    want = {256: (tiles.cols,), 257: (tiles.rows,), 322: (tiles.tw,), 323: (tiles.th,),
            259: (COMPRESSION_ZSTD,), 277: (tiles.bands,),
            284: (2 if tiles.separate else 1,) if tiles.bands > 1 else None,
            317: (tiles.predictor,) if tiles.predictor != 1 else None}
    for code, value in want.items():
        got = tag_value(tags, code)
        if value is not None and got != value:
            raise RuntimeError(f"{template}: GDAL's template has tag {code} = {got}, "
                               f"the tiles were written for {value}")


def read_first_ifd(path) -> tuple[bool, list]:
    """``(bigtiff, [(code, type, count, raw value bytes), ...])`` of the first IFD of the
    little-endian TIFF ``path`` (classic or BigTIFF), values read wherever they are."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return _parse_first_ifd(path, data)
    except struct.error as exc:  # cut short
        raise TIFFTagError(f"{path}: truncated TIFF ({exc})") from None


def _parse_first_ifd(path, data) -> tuple[bool, list]:
    if data[:2] != b"II":
        raise TIFFTagError(f"{path}: not a little-endian TIFF")
    magic = struct.unpack_from("<H", data, 2)[0]
    if magic == 42:
        big, (ifd,) = False, struct.unpack_from("<I", data, 4)
        count_fmt, entry_fmt, entry_size, inline = "<H", "<HHI", 12, 4
    elif magic == 43:
        big, (ifd,) = True, struct.unpack_from("<Q", data, 8)
        count_fmt, entry_fmt, entry_size, inline = "<Q", "<HHQ", 20, 8
    else:
        raise TIFFTagError(f"{path}: not a TIFF (magic {magic})")
    (n,) = struct.unpack_from(count_fmt, data, ifd)
    pos = ifd + struct.calcsize(count_fmt)
    entries = []
    for _ in range(n):
        code, typ, count = struct.unpack_from(entry_fmt, data, pos)
        if typ not in TYPE_SIZES:
            raise TIFFTagError(f"{path}: tag {code} has unknown type {typ}")
        size = TYPE_SIZES[typ] * count
        at = pos + 4 + (4 if not big else 8)
        if size > inline:
            (at,) = struct.unpack_from("<I" if not big else "<Q", data, at)
        entries.append((code, typ, count, bytes(data[at:at + size])))
        pos += entry_size
    return big, entries


def tag_value(entries, code):
    """The numbers of tag ``code`` (a tuple), or None."""
    fmt = {1: "B", 3: "H", 4: "I", 16: "Q", 11: "f", 12: "d", 8: "h", 9: "i", 17: "q"}
    for c, typ, count, raw in entries:
        if c == code:
            if typ == 2:
                return raw
            return struct.unpack(f"<{count}{fmt[typ]}", raw)
    return None


def encode_tile(tile: np.ndarray, predictor: int, level: int) -> bytes:
    """One tile (rows, cols, samples), contiguous, as libtiff stores it with ZSTD."""
    if predictor == PREDICTOR_FLOAT:
        tile = imagecodecs.floatpred_encode(tile, axis=-2)
    elif predictor == PREDICTOR_HORIZONTAL:
        # libtiff differences the samples as unsigned integers (floats: their bits).
        if tile.dtype.kind == "f":
            tile = tile.view(f"<u{tile.dtype.itemsize}")
        tile = imagecodecs.delta_encode(tile, axis=-2)
    return imagecodecs.zstd_encode(tile, level=level)


# Padding past the raster's right edge is mirrored when at most 1/8 of a tile's width
# (see TiledTIFF._mirror_padding); wider, it stays nodata.
MIRRORED_PADDING = 8


class TiledTIFF:
    """A tiled, ZSTD-compressed TIFF at ``path``, filled window by window from any thread.

    Parameters
    ----------
    path : str
        The file (created or truncated).
    shape : (rows, cols)
    tile : (rows, cols)
        Tile size (the template's TileLength, TileWidth).
    bands : int
    dtype : numpy dtype
    nodata : number
        What cells no window wrote hold (padding of edge tiles too).
    separate : bool
        PlanarConfiguration 2 (one tile per band) instead of 1 (bands interleaved).
    predictor, level : int
        TIFF predictor (1, 2 or 3) and ZSTD level.
    max_pending : int
        Tiles queued for encoding at most; :meth:`write` waits beyond (bounded memory).

    Windows must not overlap. A tile is encoded as soon as every band of all its
    cells has been written; :meth:`close` encodes what is left (nodata in the tiles
    no window wrote and beyond the raster's edge; the cells a window should have
    written in a partly written tile are undefined), writes the IFD with ``tags`` and
    closes.
    """

    def __init__(self, path, shape, tile, bands, dtype, nodata, *, separate=False,
                 predictor=PREDICTOR_NONE, level=1, max_pending=None):
        if imagecodecs is None:  # pragma: no cover
            raise RuntimeError("imagecodecs is not installed")
        self.path = path
        self.rows, self.cols = map(int, shape)
        self.th, self.tw = map(int, tile)
        self.bands = int(bands)
        self.dtype = np.dtype(dtype)
        self.nodata = nodata
        self.separate = bool(separate) and self.bands > 1
        self.predictor = int(predictor)
        self.level = int(level)
        self.tiles_down = -(-self.rows // self.th)
        self.tiles_across = -(-self.cols // self.tw)
        planes = self.bands if self.separate else 1
        n = planes * self.tiles_down * self.tiles_across
        self.offsets = np.zeros(n, np.uint64)
        self.counts = np.zeros(n, np.uint64)
        self._done = np.zeros(n, bool)
        self._pending = {}  # chunk index: [buffer, cells still to write]
        self._lock = threading.Lock()
        self._error = None
        self._futures = set()
        self._slots = threading.BoundedSemaphore(max_pending or 4 * (os.cpu_count() or 2) + 4)
        # Tiles start after the longer (BigTIFF) header: which one is decided at close.
        self._end = 16
        # No O_TRUNC: ext4 flushes a file truncated to zero when it is closed (its
        # "auto_da_alloc" for replace-via-truncate), which stalled close() for 0.2-0.5 s
        # per 8192^2 output. What an existing file holds past our end is cut at close.
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        self._inline = _INLINE.get()  # see inline_encoding

    # ------------------------------------------------------------------ writing

    def _check(self):
        if self._error is not None:
            raise self._error

    def _chunk(self, plane, ty, tx):
        return (plane * self.tiles_down + ty) * self.tiles_across + tx

    def write(self, band: int, data: np.ndarray, row0: int, col0: int) -> None:
        """Put ``data`` (2-D, the file's type) of band ``band`` (1-based) at ``row0, col0``."""
        self._check()
        rows, cols = data.shape
        if not (0 <= row0 and row0 + rows <= self.rows and 0 <= col0 and col0 + cols <= self.cols
                and 1 <= band <= self.bands):
            raise ValueError(f"window {rows}x{cols} at ({row0}, {col0}) band {band} is outside "
                             f"the {self.rows}x{self.cols}x{self.bands} raster")
        plane, sample = (band - 1, 0) if self.separate else (0, band - 1)
        spp = 1 if self.separate else self.bands
        ready = []
        for ty in range(row0 // self.th, (row0 + rows - 1) // self.th + 1):
            r0, r1 = max(row0, ty * self.th), min(row0 + rows, (ty + 1) * self.th)
            for tx in range(col0 // self.tw, (col0 + cols - 1) // self.tw + 1):
                c0, c1 = max(col0, tx * self.tw), min(col0 + cols, (tx + 1) * self.tw)
                key = self._chunk(plane, ty, tx)
                with self._lock:
                    entry = self._pending.get(key)
                    if entry is None:
                        if self._done[key]:
                            raise ValueError(f"tile {key} written twice (overlapping windows)")
                        # Cells of this tile inside the raster, times the bands it holds.
                        inside = ((min(self.rows, (ty + 1) * self.th) - ty * self.th)
                                  * (min(self.cols, (tx + 1) * self.tw) - tx * self.tw))
                        # Only a tile reaching past the raster's edge keeps cells nobody
                        # writes (nodata: its padding alone is filled); every cell of the
                        # others is written before encoding.
                        buf = np.empty((self.th, self.tw, spp), self.dtype)
                        if inside != self.th * self.tw:
                            rows_in = min(self.rows, (ty + 1) * self.th) - ty * self.th
                            cols_in = min(self.cols, (tx + 1) * self.tw) - tx * self.tw
                            buf[rows_in:] = self.nodata
                            buf[:rows_in, cols_in:] = self.nodata
                        entry = self._pending[key] = [buf, inside * spp]
                    entry[0][r0 - ty * self.th:r1 - ty * self.th,
                             c0 - tx * self.tw:c1 - tx * self.tw, sample] = \
                        data[r0 - row0:r1 - row0, c0 - col0:c1 - col0]
                    entry[1] -= (r1 - r0) * (c1 - c0)
                    if entry[1] == 0:
                        del self._pending[key]
                        self._done[key] = True
                        ready.append((key, entry[0]))
        for key, buf in ready:
            self._mirror_padding(key, buf)
            self._submit(key, buf)

    def _mirror_padding(self, key, buf) -> None:
        """A complete tile of the last column, padded past the raster's right edge by a
        few columns: those columns mirror the cells left of the edge instead of holding
        nodata. Readers never see them; ZSTD's fast match finder does: a short run of
        the same value on every row (a match each row) keeps it from skipping ahead over
        noise-like data, and such a tile took 1.45 x a full one's encoding time (0.95 ms
        against 0.66 for 416 x 416 with 13 padded columns), mirrored 0.62 ms, for 3 %
        more bytes on that tile. Wider padding stays nodata (it compresses to little)."""
        pad = self.tiles_across * self.tw - self.cols
        if not 0 < pad <= self.tw // MIRRORED_PADDING or key % self.tiles_across != \
                self.tiles_across - 1:
            return
        cols_in = self.tw - pad
        rows_in = min(self.rows - (key // self.tiles_across) % self.tiles_down * self.th,
                      self.th)
        buf[:rows_in, cols_in:] = buf[:rows_in, cols_in - pad:cols_in][:, ::-1]

    def _submit(self, key, buf):
        if self._inline:  # encoded here, by the thread that completed the tile
            self._check()
            self._encode(key, buf)
            self._check()
            return
        self._slots.acquire()  # back-pressure: a bounded number of tiles in flight
        try:
            self._check()
            fut = encoder_pool().submit(self._encode, key, buf)
        except BaseException:
            self._slots.release()
            raise
        with self._lock:
            self._futures.add(fut)
        fut.add_done_callback(self._finished)

    def _finished(self, fut):
        with self._lock:
            self._futures.discard(fut)
        self._slots.release()

    def _encode(self, key, buf):
        try:
            if self._error is not None:
                return
            blob = encode_tile(buf, self.predictor, self.level)
            with self._lock:
                at = self._end
                self._end += len(blob) + (len(blob) & 1)  # word-aligned, as libtiff does
            view = memoryview(blob)
            done = 0
            while done < len(blob):
                done += os.pwrite(self.fd, view[done:], at + done)
            self.offsets[key] = at
            self.counts[key] = len(blob)
        except BaseException as exc:  # noqa: BLE001 - handed to the writing thread
            with self._lock:
                if self._error is None:
                    self._error = exc

    def wait(self) -> None:
        """Every tile handed over so far encoded and written; raises the first failure."""
        while True:
            with self._lock:
                futs = list(self._futures)
            if not futs:
                break
            for f in futs:
                f.result()
        self._check()

    # ------------------------------------------------------------------ closing

    def close(self, tags, bigtiff: bool = False) -> None:
        """Encode what is left, write the IFD (``tags``: the template's entries, whose
        tile offsets and byte counts are replaced), as a BigTIFF if ``bigtiff``, and
        close the file."""
        self.wait()
        with self._lock:
            left = sorted(self._pending.items())
            self._pending.clear()
        for key, (buf, _) in left:
            self._done[key] = True
            self._submit(key, buf)
        spp = 1 if self.separate else self.bands
        blank = None
        for key in np.flatnonzero(~self._done):
            if blank is None:
                blank = np.full((self.th, self.tw, spp), self.nodata, self.dtype)
            self._done[key] = True
            self._submit(int(key), blank)
        self.wait()
        self._write_ifd(tags, bigtiff)
        os.close(self.fd)
        self.fd = None

    def _write_ifd(self, tags, big) -> None:
        if not big and self._end > CLASSIC_LIMIT - 65536:
            raise OSError(27, "the file exceeds 4 GB; use --co BIGTIFF=YES")
        off_type = LONG8 if big else LONG
        off_fmt = "<Q" if big else "<I"
        entries = [(c, t, n, raw) for c, t, n, raw in tags
                   if c not in (TILE_OFFSETS, TILE_BYTE_COUNTS)]
        for code, arr in ((TILE_OFFSETS, self.offsets), (TILE_BYTE_COUNTS, self.counts)):
            entries.append((code, off_type, arr.size,
                            arr.astype("<u8" if big else "<u4").tobytes()))
        entries.sort(key=lambda e: e[0])
        inline = 8 if big else 4
        ifd_at = self._end + (self._end & 1)
        head = struct.pack("<Q" if big else "<H", len(entries))
        entry_size = 20 if big else 12
        values_at = ifd_at + len(head) + entry_size * len(entries) + inline  # + next-IFD
        body, extra = [head], []
        for code, typ, count, raw in entries:
            if len(raw) <= inline:
                value = raw.ljust(inline, b"\0")
            else:
                value = struct.pack(off_fmt, values_at)
                extra.append(raw + b"\0" * (len(raw) & 1))
                values_at += len(extra[-1])
            body.append(struct.pack("<HHQ" if big else "<HHI", code, typ, count) + value)
        body.append(b"\0" * inline)  # no next IFD
        blob = b"".join(body + extra)
        if not big and ifd_at + len(blob) > CLASSIC_LIMIT:
            raise OSError(27, "the file exceeds 4 GB; use --co BIGTIFF=YES")
        header = (b"II" + struct.pack("<HHHQ", 43, 8, 0, ifd_at) if big
                  else b"II" + struct.pack("<HI", 42, ifd_at))
        for data, at in ((blob, ifd_at), (header, 0)):
            view, done = memoryview(data), 0
            while done < len(data):
                done += os.pwrite(self.fd, view[done:], at + done)
        end = ifd_at + len(blob)
        if os.fstat(self.fd).st_size > end:  # a file that was there before
            os.ftruncate(self.fd, end)

    def abort(self) -> None:
        """Stop: drop what is pending, wait for the tiles being encoded, close the file
        (the caller deletes it)."""
        with self._lock:
            self._pending.clear()
            if self._error is None:
                self._error = RuntimeError("aborted")
        try:
            self.wait()
        except BaseException:  # noqa: BLE001 - aborting anyway
            pass
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# --------------------------------------------------------------------------- shared templates

# Tags whose values place a file: GeoTIFF's tie point (I, J, K, X, Y, Z) and its
# model transformation (4 x 4, row-major: X offset at 3, Y offset at 7).
MODEL_TIEPOINT, MODEL_TRANSFORMATION, GDAL_METADATA = 33922, 34264, 42112
# A ``source`` tag the template's GDAL_METADATA says without XML escaping (else GDAL is asked).
_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-+=,;:@#%()[]{}~ ")

_SHARED = contextvars.ContextVar("terrain_tag_templates", default=None)
_INLINE = contextvars.ContextVar("terrain_inline_encoding", default=False)


@contextlib.contextmanager
def inline_encoding(on: bool = True):
    """Within the block (this thread), the :class:`TiledTIFF` files created encode each
    tile in the thread that completes it (``on``), not on :func:`encoder_pool`: for
    runs that already keep every core busy with one thread each (a tile set's lanes),
    where waiting at each file's close for the pool cost more than it saved."""
    token = _INLINE.set(bool(on))
    try:
        yield
    finally:
        _INLINE.reset(token)


class TagTemplates:
    """GDAL's tag templates shared by the outputs of one tile set (a tile's outputs are
    like its neighbours' but for where they sit and the ``source`` tag).

    The first file of each kind (same shape, profile, CRS, pixel size, bands and tags
    but ``source``) has GDAL write its template, as :class:`GeoTIFFWriter` does for
    any file; its IFD is kept here. The next ones get those tags with the tie point
    (or model transformation) moved to their own origin and their own ``source`` in
    GDAL_METADATA: what GDAL writes for them (tested tag by tag against GDAL's own).
    Anything else, or a template not laid out as expected: GDAL writes the file's own.
    """

    def __init__(self):
        self._entries = {}  # key: [(crs, transform, source, bigtiff, tags, separate), ...]
        self._lock = threading.Lock()

    @staticmethod
    def key(shape, dtype, bands, creation_options, transform, tags):
        """What must be equal for two files to share a template (None: never shared).
        ``bands``: (name, units, description) per band; ``tags``: the dataset's tags."""
        source = (tags or {}).get("source")
        if source is None or not set(source) <= _PLAIN:
            return None
        t = transform
        return (tuple(shape), str(np.dtype(dtype)), tuple(map(tuple, bands)),
                tuple(sorted(creation_options.items())), (t.a, t.b, t.d, t.e),
                tuple(sorted((k, str(v)) for k, v in tags.items() if k != "source")))

    def lookup(self, key, crs, transform, source):
        """``(bigtiff, tags, separate)`` for a file at ``transform`` with ``source``, from a
        stored template of ``key`` and ``crs``; None if there is none yet."""
        if key is None:
            return None
        with self._lock:
            entries = list(self._entries.get(key, ()))
        for e_crs, e_transform, e_source, bigtiff, tags, separate in entries:
            if e_crs is crs or e_crs == crs:
                tags = _moved(tags, e_transform, transform, e_source, source)
                if tags is not None:
                    return bigtiff, tags, separate
        return None

    def store(self, key, crs, transform, source, bigtiff, tags, separate) -> None:
        """Keep the template GDAL wrote (``tags``, its IFD) for a file at ``transform`` with
        ``source``, if it can be moved (checked by moving it onto itself)."""
        if key is None or _moved(tags, transform, transform, source, source) != list(tags):
            return
        with self._lock:
            entries = self._entries.setdefault(key, [])
            if len(entries) < 4:  # (a few CRS objects at most)
                entries.append((crs, transform, source, bigtiff, list(tags), separate))


def _moved(tags, old_transform, new_transform, old_source, new_source):
    """The template ``tags`` moved from ``old_transform`` / ``old_source`` to the new ones
    (only the origin and the ``source`` item change), or None if the template does not
    say them where and how expected."""
    if not set(new_source) <= _PLAIN or not set(old_source) <= _PLAIN:
        return None
    out, placed, named = [], False, False
    for code, typ, count, raw in tags:
        if code == MODEL_TIEPOINT and typ == 12 and count == 6:
            v = list(struct.unpack("<6d", raw))
            if v[:3] != [0.0, 0.0, 0.0] or (v[3], v[4]) != (old_transform.c, old_transform.f):
                return None
            v[3], v[4] = new_transform.c, new_transform.f
            raw, placed = struct.pack("<6d", *v), True
        elif code == MODEL_TRANSFORMATION and typ == 12 and count == 16:
            v = list(struct.unpack("<16d", raw))
            if (v[3], v[7]) != (old_transform.c, old_transform.f):
                return None
            v[3], v[7] = new_transform.c, new_transform.f
            raw, placed = struct.pack("<16d", *v), True
        elif code == GDAL_METADATA and typ == 2:
            old = f'<Item name="source">{old_source}</Item>'.encode()
            if raw.count(old) != 1:
                return None
            raw = raw.replace(old, f'<Item name="source">{new_source}</Item>'.encode())
            count, named = len(raw), True
        out.append((code, typ, count, raw))
    return out if placed and named else None


@contextlib.contextmanager
def shared_templates(templates: "TagTemplates | None"):
    """Within the block (this thread), :class:`terrain.writer.GeoTIFFWriter` shares tag
    templates through ``templates`` (None: every file has its own)."""
    token = _SHARED.set(templates)
    try:
        yield templates
    finally:
        _SHARED.reset(token)


def current_templates() -> "TagTemplates | None":
    """The :class:`TagTemplates` of :func:`shared_templates` in effect, if any."""
    return _SHARED.get()
