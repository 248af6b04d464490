"""GeoTIFF outputs: float32, tiled, compressed, georeferenced like the input, atomic.

Every output is written to a hidden temporary file beside its target and renamed
into place only when complete, so a failed or interrupted run leaves nothing
behind; the input is never overwritten, an existing output only when asked.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.errors import RasterioError

try:  # GDAL's own errors, raised (not wrapped) by e.g. rasterio.shutil.copy
    from rasterio._err import CPLE_BaseError
except ImportError:  # pragma: no cover - rasterio moved it
    CPLE_BaseError = RasterioError

from . import _ckernels
from .errors import OutputError

FLOAT_NODATA = -9999.0
# The process's umask, read once (reading it means setting it, which is not thread-safe).
_UMASK = os.umask(0o022)
os.umask(_UMASK)
BYTE_NODATA = 0

DEFAULT_CREATION_OPTIONS = {
    "TILED": "YES",
    "BLOCKXSIZE": "512",
    "BLOCKYSIZE": "512",
    "COMPRESS": "ZSTD",
    "ZSTD_LEVEL": "1",
    "BIGTIFF": "IF_SAFER",
    # A two-band file (gradient) stores each band's blocks apart: a window's band goes into
    # its blocks contiguously, not interleaved with the other's (analyze of the 8192^2
    # benchmark: ~0.15 s less CPU, the same size), and reading dzdx alone reads half.
    "INTERLEAVE": "BAND",
}
# The default predictor of float32 files and of Byte files (hillshade, classes), chosen
# by measurement (benchmarks/tile_codecs.py; issue 11): for floats, horizontal differencing
# (2) encodes in 42 % of the floating-point predictor's (3) CPU for files 10 % larger
# (slope of the 8192^2 benchmark DEM: 234 MB against 213 MB; gdaldem's uncompressed: 268 MB).
FLOAT_PREDICTOR = "2"
BYTE_PREDICTOR = "2"


# The default blocks: as many as 512 x 512 ones would take, each fitted to the raster
# (:func:`fitted_block_edge`). TIFF wants edges in multiples of 16.
LARGEST_BLOCK = 512


def fitted_block_edge(shape) -> int:
    """The square block edge of a ``(rows, cols)`` raster's default GeoTIFF.

    As many blocks as :data:`LARGEST_BLOCK` (512) would need, each the smallest
    multiple of 16 that still covers the raster with that many. A GeoTIFF stores its
    edge blocks whole, and the padding is encoded like any other cell: an 819-pixel
    tile in 512 blocks is 1024 x 1024 cells stored (1.56 x its own), in 416 blocks
    832 x 832 (1.03 x), with the same 2 x 2 blocks for a reader to decode.

    Examples
    --------
    >>> fitted_block_edge((8192, 8192)), fitted_block_edge((819, 820)), fitted_block_edge((100, 40))
    (512, 416, 112)
    """
    edge = 16
    for size in (int(v) for v in shape):
        blocks = max(1, -(-size // LARGEST_BLOCK))
        edge = max(edge, 16 * -(-size // (16 * blocks)))
    return edge


def parse_creation_options(items) -> dict:
    """``["NAME=VALUE", ...]`` (or a dict) into an upper-case-keyed dict."""
    if isinstance(items, dict):
        return {str(k).upper(): str(v) for k, v in items.items()}
    out = {}
    for item in items or ():
        name, sep, value = str(item).partition("=")
        if not sep or not name.strip():
            raise OutputError(f"creation option {item!r} is not NAME=VALUE (e.g. COMPRESS=DEFLATE)")
        out[name.strip().upper()] = value.strip()
    return out


# The only output format: GeoTIFF, chosen by the name's extension.
GEOTIFF_SUFFIXES = (".tif", ".tiff")
# Files GDAL reads beside a raster NAME as part of it: statistics and georeferencing
# (PAM), external overviews and masks, and theirs. A replaced output loses them with
# its old content; an input's count as the input.
SIDECAR_SUFFIXES = (".aux.xml", ".ovr", ".ovr.aux.xml", ".msk", ".msk.aux.xml", ".msk.ovr")
# Beside STEM (NAME without its extension): HFA/PAM .aux and world files.
_STEM_SIDECARS = (".aux", ".aux.xml", ".wld", ".WLD")
# Compressions GDAL's GTiff driver cannot apply to float32 data.
_BYTE_ONLY_CODECS = {"JPEG": "Byte/UInt16", "WEBP": "Byte"}

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _world_file_suffixes(path: str) -> tuple:
    """.tfw / .tifw (and upper case) for .tif: GDAL's world-file names for an extension."""
    ext = os.path.splitext(path)[1][1:]
    if not ext:
        return ()
    names = {f".{ext[0]}{ext[-1]}w", f".{ext}w"}
    return tuple(sorted(names | {n.upper() for n in names}))


def sidecar_candidates(path: str) -> list[str]:
    """Every name beside ``path`` that GDAL may read as part of it."""
    stem = os.path.splitext(path)[0]
    return ([path + s for s in SIDECAR_SUFFIXES]
            + [stem + s for s in _STEM_SIDECARS + _world_file_suffixes(path)])


def _input_name(given) -> str:
    """The name of an input given as a path or as a :class:`terrain.raster.RasterInfo`."""
    return given.path if hasattr(given, "files") else os.fspath(given)


def input_files(inputs) -> list[str]:
    """Absolute names of every file the rasters ``inputs`` read: themselves, the files
    GDAL lists for them (a VRT's sources, recursively) and their sidecars that exist.

    An input is a path or a :class:`terrain.raster.RasterInfo`, whose recorded
    ``files`` spare opening it again (a round trip for a remote file).
    ``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR`` (see :mod:`terrain.raster`) hides
    sidecars from ``ds.files``, so the candidate names are checked one by one.
    """
    from .raster import GDAL_ENV, is_gdal_path, open_raster

    seen: dict[str, None] = {}
    # Opened: the inputs themselves and nested VRTs (a GeoTIFF's ds.files is itself
    # only, so the tiles of a mosaic are not opened one by one).
    todo = []
    for given in inputs:
        p = _input_name(given)
        known = getattr(given, "files", None)
        if known is not None:
            files = list(known)
        elif not is_gdal_path(p):
            todo.append((os.path.abspath(p), True))
            continue
        else:
            # GTIFF_DIR:1:FILE, NETCDF:"f.nc":var, /vsizip/...: not a file name; GDAL
            # says which files it reads (an archive's own name is the archive file).
            try:
                with rasterio.Env(**GDAL_ENV), open_raster(p) as ds:
                    files = list(ds.files)
            except Exception:  # noqa: BLE001 - unreadable: nothing local to protect
                files = []
        if known is not None and not is_gdal_path(p):
            # As an opened plain name's files would be (below), but the input itself is
            # not opened again: pushed last, it is seen first. Nested VRTs still are.
            name = os.path.abspath(p)
            todo.extend((os.path.abspath(f), f.lower().endswith(".vrt")) for f in files
                        if not f.startswith("/vsi") and os.path.abspath(f) != name)
            todo.append((name, False))
            continue
        for f in [p, *files]:
            local = _archive_file(f) if f.startswith("/vsi") else f
            if local is not None and not is_gdal_path(local):
                todo.append((os.path.abspath(local), local.lower().endswith(".vrt")))
    while todo:
        name, open_it = todo.pop()
        if name in seen:
            continue
        seen[name] = None
        for car in sidecar_candidates(name):
            if car not in seen and os.path.lexists(car):
                seen[car] = None
        if not open_it or not os.path.isfile(name):
            continue
        try:
            with rasterio.Env(**GDAL_ENV), rasterio.open(name) as ds:
                files = list(ds.files)
        except Exception:  # noqa: BLE001 - not a raster (a map's input, say): itself only
            continue
        todo.extend((os.path.abspath(f), f.lower().endswith(".vrt"))
                    for f in files if not f.startswith("/vsi"))
    return list(seen)


# GDAL's virtual file systems reading an archive or compressed file on the local disk.
_ARCHIVE_PREFIXES = ("/vsizip/", "/vsitar/", "/vsigzip/", "/vsi7z/", "/vsirar/")


def _archive_file(name: str) -> str | None:
    """The local file a ``/vsizip/ARCHIVE/member`` name reads (ARCHIVE), else None."""
    prefix = next((p for p in _ARCHIVE_PREFIXES if name.startswith(p)), None)
    if prefix is None:
        return None
    rest = name[len(prefix):]
    if rest.startswith("{") and "}" in rest:  # /vsizip/{ARCHIVE}/member
        rest = rest[1:rest.index("}")]
    if rest.startswith("/vsi"):  # nested: /vsizip//vsigzip/...
        return _archive_file(rest)
    # The longest leading part of the name that is a file: the archive.
    parts = rest.split("/")
    for k in range(len(parts), 0, -1):
        cand = "/".join(parts[:k])
        if cand and os.path.isfile(cand):
            return cand
    return None


def _same_file(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _not_regular(path: str, real: str) -> str | None:
    """What ``real`` (``path`` or the file it links to) is, if it exists and is not a
    regular file; None otherwise."""
    try:
        mode = os.lstat(real).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot be examined ({exc.strerror})"
    if stat.S_ISREG(mode):
        return None
    kind = "a directory" if stat.S_ISDIR(mode) else next(
        (k for test, k in _KINDS if test(mode)), "not a regular file")
    link = f"a link to {real}, " if real != path else ""
    return f"is {link}{kind}"


def check_geotiff_name(path, suffixes=GEOTIFF_SUFFIXES) -> None:
    """Refuse an output name whose extension is not GeoTIFF's: the name decides the format."""
    path = os.path.abspath(os.fspath(path))
    ext = os.path.splitext(path)[1]
    if ext.lower() not in suffixes:
        stem = os.path.splitext(os.path.basename(path))[0] if ext else os.path.basename(path)
        raise OutputError(
            f"{path}: terrain writes GeoTIFF only, named {' or '.join(suffixes)} "
            f"(not {ext or 'a name without extension'}); use e.g. {stem}.tif and convert "
            "with gdal_translate -of FORMAT if needed")


def release_cache(path) -> None:
    """Ask the kernel to drop the cached pages of ``path``, a file about to be replaced
    (if it is there): its content stays on disk, untouched, until the new file takes
    its name; only memory is given back, for the new file's pages.

    On a VM that hands free memory back to its host (this project's benchmark
    machine), fresh pages cost ~30 us each at first touch and pages freed a moment
    ago 0.5 us: analyze run again over its own outputs 8 s after the run before took
    7.1-7.6 s, and 3.9-4.3 s with their cache dropped first. Elsewhere it costs a
    system call a file."""
    if not hasattr(os, "posix_fadvise"):  # pragma: no cover - not on macOS / Windows
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return  # not there (or not ours to read): nothing cached to give back
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_target(path, *, inputs=(), overwrite: bool = False, suffixes=None) -> str:
    """Refuse an output that is (part of) an input, is anything but a regular file, or
    exists without ``overwrite``; make its folder. Returns the name to write.

    Every file an input reads counts as the input (:func:`input_files`). A symbolic
    link to a regular file is written through, as a shell redirection would: the file
    it points to is replaced and the link kept (the name returned is that file's).
    ``suffixes``: the extensions the output's format allows (e.g. ``GEOTIFF_SUFFIXES``).
    """
    path = os.path.abspath(os.fspath(path))
    if suffixes is not None:
        check_geotiff_name(path, suffixes)
    real = os.path.realpath(path) if os.path.islink(path) else path
    for given in inputs:
        for src in input_files([given]):
            if not (_same_file(path, src) or _same_file(real, src)):
                continue
            if src == os.path.abspath(_input_name(given)):
                raise OutputError(f"{path}: is the input file; choose another output (the input is never overwritten)")
            raise OutputError(f"{path}: is part of the input {_input_name(given)} (GDAL reads it with "
                              "it); choose another output (the input is never overwritten)")
    what = _not_regular(path, real)
    if what is not None:
        if what.endswith("a directory"):
            raise OutputError(f"{path}: {what}; give a file name for the output")
        raise OutputError(f"{path}: {what}; only regular files are ever replaced, "
                          "choose another output")
    if os.path.lexists(path) and not overwrite:
        raise OutputError(f"{path}: already exists; use --overwrite (library: overwrite=True) to replace it")
    parent = os.path.dirname(real)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create the folder {parent} ({exc.strerror})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: folder {parent} is not writable; choose another output")
    return real


def _exists_error(path: str) -> OutputError:
    return OutputError(f"{path}: already exists (another run wrote it meanwhile); "
                       "use --overwrite (library: overwrite=True) to replace it")


def _claim(tmp: str, path: str) -> None:
    """Give the finished ``tmp`` the name ``path`` only if nothing has it: os.link fails
    when the name exists, so two runs can never both take it. ``tmp`` is kept."""
    try:
        os.link(tmp, path)
        return
    except FileExistsError:
        raise _exists_error(path) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS,
                             errno.EMLINK, errno.EACCES):
            raise
    # A file system without hard links: claim the name with O_EXCL, then fill it.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 & ~_UMASK)
    except FileExistsError:
        raise _exists_error(path) from None
    os.close(fd)
    try:
        shutil.copyfile(tmp, path)
    except BaseException:
        os.unlink(path)
        raise


def _move_aside(path: str, tmp: str) -> list:
    """Rename the sidecars of ``path`` (the old file's statistics, pyramids, mask) to
    hidden names beside ``tmp``; [(sidecar, hidden)]."""
    aside = []
    for suffix in SIDECAR_SUFFIXES:
        car = path + suffix
        if os.path.isfile(car) and not os.path.islink(car):
            hold = f"{tmp}{suffix}.old"
            os.replace(car, hold)
            aside.append((car, hold))
    return aside


def commit(tmp: str, path: str, *, overwrite: bool, sidecars=None) -> None:
    """Put the finished temporary file ``tmp`` in place as ``path``: the one way an output
    lands on disk (GeoTIFFs and maps).

    Without ``overwrite`` the name is claimed exclusively (a run that finds it taken,
    by another run meanwhile, fails with "already exists"); with it, only a regular
    file is ever replaced, atomically. The old file's sidecars (.aux.xml, .ovr,
    .msk ...) go with it: a reader never sees the new file with the old statistics or
    pyramids. ``sidecars`` ``{suffix: finished temporary file}`` are the new file's
    own (a .aux.xml with category names ...), put in place right after it. On failure
    ``tmp`` and every old file are left as they were.
    """
    what = _not_regular(path, path)
    if what is not None:
        raise OutputError(f"{path}: {what}; only regular files are ever replaced, "
                          "choose another output")
    aside = []
    if overwrite:
        aside = _move_aside(path, tmp)
        try:
            # A rename, though ext4 writes a file renamed over another out before it
            # returns (0.15-0.28 s per 256 MB output). Swapping the two names instead
            # (renameat2 RENAME_EXCHANGE) saved 0.3 s of an 8192^2 analyze run again in
            # simple loops, but the benchmark's ", run again" rows vary 3.4-9 s with
            # either (system time in the stream), so the gain is not shown there.
            os.replace(tmp, path)
        except BaseException:
            for car, hold in aside:
                if not os.path.lexists(car):
                    os.replace(hold, car)
            raise
    else:
        # Claim first: a name another run took meanwhile keeps its sidecars in view.
        _claim(tmp, path)
        try:
            # Nothing had the name: sidecars beside it are a deleted file's, nobody's.
            for suffix in SIDECAR_SUFFIXES:
                car = path + suffix
                if os.path.isfile(car) and not os.path.islink(car):
                    os.unlink(car)
        except BaseException:
            os.unlink(path)  # the name just claimed; tmp is kept
            raise
        os.unlink(tmp)
    for suffix, new in (sidecars or {}).items():
        os.replace(new, path + suffix)
    for _, hold in aside:
        try:
            os.unlink(hold)
        except FileNotFoundError:
            pass


@contextlib.contextmanager
def atomic_file(path: str, *, overwrite: bool, what: str = "the output"):
    """A temporary file beside ``path`` to write ``what`` (a map, a table, a report) into;
    put in place by :func:`commit` when the block ends, removed if it fails.

    Yields the temporary file's name (same extension as ``path``, the mode a plain
    create would give). OS errors become one OutputError naming ``path``.
    """
    path = os.path.abspath(os.fspath(path))
    folder, base = os.path.split(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=os.path.splitext(base)[1],
                                   dir=folder)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write in {folder} ({exc.strerror})") from None
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
        yield tmp
        commit(tmp, path, overwrite=overwrite)
    except OSError as exc:
        raise OutputError(f"{path}: could not write {what} ({exc.strerror or exc}); "
                          f"{_space_hint(folder)}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _gdal_cause(exc: BaseException) -> str:
    """The first line of the GDAL message behind a rasterio error (rasterio says "See
    previous exception for details" and chains GDAL's own)."""
    seen = exc
    for _ in range(5):
        nxt = seen.__cause__ or seen.__context__
        if nxt is None:
            break
        seen = nxt
    text = str(seen).strip().splitlines()
    return text[0] if text else type(seen).__name__


def _space_hint(folder: str) -> str:
    """"the disk is full (12 kB free in FOLDER)" when it nearly is, else a question."""
    try:
        st = os.statvfs(folder)
        free = st.f_bavail * st.f_frsize
    except (OSError, AttributeError):
        return "is the disk full?"
    if free < 4 * 2**20:
        return f"the disk is full ({free // 1024} kB left in {folder})"
    return "is the disk full?"


@dataclass(frozen=True)
class WriteOptions:
    """How outputs are written: GDAL creation options overriding the defaults, Cloud
    Optimized GeoTIFF with overviews, and whether existing outputs are replaced."""

    creation_options: dict | None = None
    cog: bool = False
    overwrite: bool = False


class GeoTIFFWriter:
    """One output file: bands of products, written window by window, then committed.

    Parameters
    ----------
    path : str
        Final file name (checked with :func:`check_target` by the caller).
    info : terrain.raster.RasterInfo
        Grid, CRS and transform of the input.
    bands : sequence of (name, units, description)
    byte : bool
        Write Byte with nodata 0 (hillshade) instead of float32 with -9999.
    creation_options : dict
        GDAL creation options overriding the defaults.
    cog : bool
        Commit as a Cloud Optimized GeoTIFF with overviews.
    resampling : str
        Overview resampling for ``cog`` (``nearest`` for aspect).
    tags : dict
        Dataset metadata (method, units ...).
    overwrite : bool
        Whether :meth:`publish` may replace an existing file (see :func:`commit`).
    """

    def __init__(self, path, info, bands, *, byte=False, creation_options=None, cog=False,
                 resampling="average", tags=None, overwrite=False):
        self.path = os.path.abspath(os.fspath(path))
        self.overwrite = overwrite
        self.tmp = None
        self.sidecars = {}  # suffix: finished temporary file, published with the file
        self.bands = list(bands)
        self.byte = byte
        self.cog = cog
        self.resampling = resampling
        opts = dict(DEFAULT_CREATION_OPTIONS)
        opts["PREDICTOR"] = BYTE_PREDICTOR if byte else FLOAT_PREDICTOR
        user = parse_creation_options(creation_options or {})  # keys upper-case
        opts.update(user)
        if not cog and "BLOCKXSIZE" not in user and "BLOCKYSIZE" not in user and \
                opts.get("TILED", "YES").upper() not in ("NO", "FALSE"):
            # A COG keeps GDAL's 512 (its overviews halve down to one block).
            opts["BLOCKXSIZE"] = opts["BLOCKYSIZE"] = str(fitted_block_edge(info.shape))
        if opts.get("COMPRESS", "").upper() == "NONE":
            opts.pop("PREDICTOR", None)
        if opts.get("TILED", "YES").upper() in ("NO", "FALSE"):
            opts.pop("BLOCKXSIZE", None)
        self.creation_options = opts
        codec = opts.get("COMPRESS", "").upper()
        if not byte and codec in _BYTE_ONLY_CODECS:
            raise OutputError(f"{self.path}: {codec} compression only supports "
                              f"{_BYTE_ONLY_CODECS[codec]} data, not float32; use "
                              "COMPRESS=ZSTD, DEFLATE or LZW")
        folder, base = os.path.split(self.path)
        try:
            fd, self.tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".part.tif", dir=folder)
            os.close(fd)
            # mkstemp makes the file private; give it the mode a plain create would.
            os.chmod(self.tmp, 0o666 & ~_UMASK)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write in {folder} ({exc.strerror}); "
                              "choose another output") from None
        self.nodata = BYTE_NODATA if byte else FLOAT_NODATA
        if overwrite:
            release_cache(self.path)
        rows, cols = info.shape
        # The default options: tiles compressed on all cores (terrain.tiff), GDAL writing
        # only the tags, into an empty sparse template of the same profile (self.ds:
        # every metadata call, a colour table too, goes to it). Any --co: GDAL does all.
        self.tiles = None
        self.template = None
        from .tiff import current_templates, direct_ok

        direct = not creation_options and direct_ok(opts)
        gdal_opts = dict(opts, SPARSE_OK="TRUE") if direct else opts
        # A tile set's outputs share GDAL's templates (terrain.tiff.TagTemplates): a file
        # like one written before gets its tags, moved, and no GDAL dataset (self.ds None).
        self._shared = self._tags = None
        shared = current_templates() if direct else None
        if shared is not None:
            key = shared.key((rows, cols), np.uint8 if byte else np.float32, self.bands, opts,
                             info.transform, tags)
            source = (tags or {}).get("source")
            self._tags = shared.lookup(key, info.crs, info.transform, source)
            if self._tags is None:
                self._shared = (shared, key, info.crs, info.transform, source)
        if self._tags is not None:
            try:
                from .tiff import TiledTIFF

                self.ds = None
                self.tiles = TiledTIFF(
                    self.tmp, (rows, cols), (int(opts["BLOCKYSIZE"]), int(opts["BLOCKXSIZE"])),
                    len(self.bands), np.uint8 if byte else np.float32, self.nodata,
                    separate=self._tags[2], predictor=int(opts.get("PREDICTOR", "1")),
                    level=int(opts["ZSTD_LEVEL"]))
            except OSError as exc:
                self.abort()
                raise OutputError(f"{self.path}: cannot write in {folder} ({exc.strerror}); "
                                  "choose another output") from None
            except BaseException:
                self.abort()
                raise
            return
        if direct:
            self.template = self.tmp[:-len(".part.tif")] + ".tags.part.tif"
        try:
            self.ds = rasterio.open(
                self.template or self.tmp, "w", driver="GTiff", width=cols, height=rows,
                count=len(self.bands),
                dtype="uint8" if byte else "float32", crs=info.crs, transform=info.transform,
                nodata=self.nodata, **{k.lower(): v for k, v in gdal_opts.items()},
            )
            for k, (name, units, description) in enumerate(self.bands, start=1):
                self.ds.set_band_description(k, name)
                self.ds.set_band_unit(k, units)
                self.ds.update_tags(k, description=description, units=units)
            self.ds.update_tags(**(tags or {}))
            if direct:
                from .tiff import TiledTIFF

                self.tiles = TiledTIFF(
                    self.tmp, (rows, cols), (int(opts["BLOCKYSIZE"]), int(opts["BLOCKXSIZE"])),
                    len(self.bands), np.uint8 if byte else np.float32, self.nodata,
                    separate=self.ds.interleaving is not None
                    and self.ds.interleaving.name.lower() == "band",
                    predictor=int(opts.get("PREDICTOR", "1")), level=int(opts["ZSTD_LEVEL"]))
        except (RasterioError, ValueError, TypeError) as exc:
            self.abort()
            raise OutputError(f"{self.path}: cannot create the GeoTIFF ({exc}); check --co options") from None
        except OSError as exc:  # the tiles' file (the folder was writable a moment ago)
            self.abort()
            raise OutputError(f"{self.path}: cannot write in {folder} ({exc.strerror}); "
                              "choose another output") from None
        except BaseException:  # Ctrl-C while creating: leave no temporary file
            self.abort()
            raise

    def encode(self, block: np.ndarray) -> np.ndarray:
        """The block in the file's type, NaN replaced by its nodata value.

        A float32 block is converted in place (the caller hands it over). Needs no
        lock, so worker threads do it before queueing for :meth:`write`.
        """
        if self.byte:
            data = np.empty(block.shape, np.uint8)
            _ckernels.to_byte(np.ascontiguousarray(block), BYTE_NODATA, data)
            return data
        data = block if block.dtype == np.float32 else block.astype(np.float32)
        if not data.flags.c_contiguous:
            data = np.ascontiguousarray(data)
        _ckernels.fill_nan(data, FLOAT_NODATA)
        return data

    def write(self, band: int, data: np.ndarray, window) -> None:
        """Write one band's block already passed through :meth:`encode`.

        With the default options the block is cut into the file's tiles here and each
        complete tile is compressed on the encoding threads (:mod:`terrain.tiff`), so
        a caller holding a lock holds it only for the copy.
        """
        if self.tiles is not None:
            try:
                self.tiles.write(band, data, int(window.row_off), int(window.col_off))
            except OSError as exc:
                raise OutputError(f"{self.path}: write failed ({exc.strerror or exc}); "
                                  f"{_space_hint(os.path.dirname(self.path))}") from None
            return
        try:
            self.ds.write(data, band, window=window)
        except RasterioError as exc:
            raise OutputError(f"{self.path}: write failed ({_gdal_cause(exc)}); "
                              f"{_space_hint(os.path.dirname(self.path))}") from None

    def finish(self, gdal_errors=None) -> None:
        """Close and convert to COG if asked; the result stays in the temporary file.

        ``gdal_errors``, a :class:`terrain.raster.GdalErrors` that watched the run,
        turns errors GDAL only logged (a block flushed to a full disk ...) into a
        failure instead of a silently short file.
        """
        try:
            if self.ds is not None:
                self.ds.close()
            if gdal_errors is not None:
                gdal_errors.check(self.path)
            if self.tiles is not None:
                self._finish_tiles()
            if self.cog:
                self._to_cog()
        except (RasterioError, OSError, CPLE_BaseError) as exc:
            hint = _space_hint(os.path.dirname(self.path))  # measured before clean-up
            self.abort()
            step = "writing the Cloud Optimized GeoTIFF (COG) failed" if self.cog else \
                "could not finish writing"
            raise OutputError(f"{self.path}: {step}: {_gdal_cause(exc)}; {hint}") from None
        except BaseException:
            self.abort()
            raise

    def add_sidecar(self, suffix: str, text: str) -> None:
        """Publish ``text`` as the file's ``suffix`` sidecar (e.g. ".aux.xml") with it."""
        new = f"{self.tmp}{suffix}.new"
        try:
            with open(new, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(new, 0o666 & ~_UMASK)
        except OSError as exc:
            raise OutputError(f"{self.path}{suffix}: cannot write it ({exc.strerror}); "
                              f"{_space_hint(os.path.dirname(self.path))}") from None
        finally:
            self.sidecars[suffix] = new

    def publish(self) -> None:
        """Put the finished temporary file in place (:func:`commit`)."""
        try:
            commit(self.tmp, self.path, overwrite=self.overwrite, sidecars=self.sidecars)
            self._published = os.stat(self.path).st_ino
        except OutputError:
            self.abort()
            raise
        except OSError as exc:
            self.abort()
            raise OutputError(f"{self.path}: could not move the finished file into place "
                              f"({exc.strerror})") from None
        except BaseException:
            self.abort()
            raise

    def withdraw(self) -> None:
        """Remove a file this writer published (all or nothing across outputs: a later
        output failed to publish). Only the file this run wrote, never another's."""
        ino = getattr(self, "_published", None)
        try:
            if ino is not None and os.stat(self.path).st_ino == ino:
                os.unlink(self.path)
        except OSError:
            pass

    def _finish_tiles(self) -> None:
        """The tiles' file gets the template's tags (GDAL's own) and is closed."""
        from .tiff import TIFFTagError, check_template, read_first_ifd

        if self._tags is not None:  # a tile set's shared template, moved to this file
            bigtiff, tags, _ = self._tags
            check_template(tags, self.tiles, self.path)
            self.tiles.close(tags, bigtiff=bigtiff)
            self.tiles = None
            return
        try:
            bigtiff, tags = read_first_ifd(self.template)
        except TIFFTagError as exc:  # GDAL could not finish it (disk full)
            raise OSError(errno.EIO, f"GDAL left its tag template unfinished ({exc})") from None
        check_template(tags, self.tiles, self.template)
        if self._shared is not None and not os.path.exists(self.template + ".aux.xml"):
            shared, key, crs, transform, source = self._shared
            shared.store(key, crs, transform, source, bigtiff, tags, self.tiles.separate)
        self.tiles.close(tags, bigtiff=bigtiff)
        self.tiles = None
        for p in (self.template, self.template + ".aux.xml"):
            if os.path.exists(p):
                os.unlink(p)

    def _to_cog(self) -> None:
        from rasterio.shutil import copy as gdal_copy

        # The COG driver's names: BLOCKSIZE, and LEVEL for the codec's own level option
        # (GTiff's ZSTD_LEVEL / ZLEVEL); it interleaves by pixel (GDAL < 3.11).
        opts = {k: v for k, v in self.creation_options.items()
                if k not in ("TILED", "BLOCKXSIZE", "BLOCKYSIZE", "INTERLEAVE", "ZSTD_LEVEL",
                             "ZLEVEL")}
        opts["BLOCKSIZE"] = self.creation_options.get("BLOCKXSIZE", "512")
        level = {"ZSTD": "ZSTD_LEVEL", "DEFLATE": "ZLEVEL"}.get(opts.get("COMPRESS", "").upper())
        if level in self.creation_options and "LEVEL" not in opts:
            opts["LEVEL"] = self.creation_options[level]
        opts["OVERVIEW_RESAMPLING"] = self.resampling.upper()
        opts["RESAMPLING"] = self.resampling.upper()
        cog_tmp = self.tmp + ".cog.tif"
        try:
            gdal_copy(self.tmp, cog_tmp, driver="COG", **opts)
            os.replace(cog_tmp, self.tmp)
        finally:
            if os.path.exists(cog_tmp):
                os.unlink(cog_tmp)

    def abort(self) -> None:
        """Close and delete the temporary file; the target is left untouched."""
        ds = getattr(self, "ds", None)
        if ds is not None and not ds.closed:
            try:
                ds.close()
            except RasterioError:
                pass
        tiles = getattr(self, "tiles", None)
        if tiles is not None:
            tiles.abort()
            self.tiles = None
        if self.tmp is None:
            return
        template = getattr(self, "template", None)
        extra = (template, template + ".aux.xml") if template else ()
        for p in (self.tmp, self.tmp + ".cog.tif", *extra, *self.sidecars.values()):
            if os.path.exists(p):
                os.unlink(p)
