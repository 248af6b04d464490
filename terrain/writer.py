"""GeoTIFF outputs: float32, tiled, compressed, georeferenced like the input, atomic.

Every output is written to a hidden temporary file beside its target and renamed
into place only when complete, so a failed or interrupted run leaves nothing
behind; the input is never overwritten, an existing output only when asked.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import rasterio
from rasterio.errors import RasterioError

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
}


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


def check_target(path, *, inputs=(), overwrite: bool = False) -> str:
    """Refuse an output that is an input or exists without ``overwrite``; make its folder."""
    path = os.path.abspath(os.fspath(path))
    for src in inputs:
        src = os.path.abspath(os.fspath(src))
        if path == src or (os.path.exists(path) and os.path.exists(src) and os.path.samefile(path, src)):
            raise OutputError(f"{path}: is the input file; choose another output (the input is never overwritten)")
    if os.path.isdir(path):
        raise OutputError(f"{path}: is a directory; give a file name for the output")
    if os.path.exists(path) and not overwrite:
        raise OutputError(f"{path}: already exists; use --overwrite (library: overwrite=True) to replace it")
    parent = os.path.dirname(path)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create the folder {parent} ({exc.strerror})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: folder {parent} is not writable; choose another output")
    return path


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
    """

    def __init__(self, path, info, bands, *, byte=False, creation_options=None, cog=False,
                 resampling="average", tags=None):
        self.path = os.path.abspath(os.fspath(path))
        self.bands = list(bands)
        self.byte = byte
        self.cog = cog
        self.resampling = resampling
        opts = dict(DEFAULT_CREATION_OPTIONS)
        opts["PREDICTOR"] = "2" if byte else "3"
        opts.update(creation_options or {})
        if opts.get("COMPRESS", "").upper() == "NONE":
            opts.pop("PREDICTOR", None)
        if opts.get("TILED", "YES").upper() in ("NO", "FALSE"):
            opts.pop("BLOCKXSIZE", None)
        self.creation_options = opts
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
        rows, cols = info.shape
        try:
            self.ds = rasterio.open(
                self.tmp, "w", driver="GTiff", width=cols, height=rows, count=len(self.bands),
                dtype="uint8" if byte else "float32", crs=info.crs, transform=info.transform,
                nodata=self.nodata, **{k.lower(): v for k, v in opts.items()},
            )
            for k, (name, units, description) in enumerate(self.bands, start=1):
                self.ds.set_band_description(k, name)
                self.ds.set_band_unit(k, units)
                self.ds.update_tags(k, description=description, units=units)
            self.ds.update_tags(**(tags or {}))
        except (RasterioError, ValueError, TypeError) as exc:
            self.abort()
            raise OutputError(f"{self.path}: cannot create the GeoTIFF ({exc}); check --co options") from None
        except BaseException:  # Ctrl-C while creating: leave no temporary file
            self.abort()
            raise

    def encode(self, block: np.ndarray) -> np.ndarray:
        """The block in the file's type, NaN replaced by its nodata value.

        A float32 block is converted in place (the caller hands it over). Needs no
        lock, so worker threads do it before queueing for :meth:`write`.
        """
        if self.byte:
            return np.where(np.isnan(block), BYTE_NODATA, np.floor(block + 0.5)).astype(np.uint8)
        data = block if block.dtype == np.float32 else block.astype(np.float32)
        np.copyto(data, np.float32(FLOAT_NODATA), where=np.isnan(data))
        return data

    def write(self, band: int, data: np.ndarray, window) -> None:
        """Write one band's block already passed through :meth:`encode`."""
        try:
            self.ds.write(data, band, window=window)
        except RasterioError as exc:
            raise OutputError(f"{self.path}: write failed ({exc}); is the disk full?") from None

    def finish(self, gdal_errors=None) -> None:
        """Close and convert to COG if asked; the result stays in the temporary file.

        ``gdal_errors``, a :class:`terrain.raster.GdalErrors` that watched the run,
        turns errors GDAL only logged (a block flushed to a full disk ...) into a
        failure instead of a silently short file.
        """
        try:
            self.ds.close()
            if gdal_errors is not None:
                gdal_errors.check(self.path)
            if self.cog:
                self._to_cog()
        except (RasterioError, OSError) as exc:
            self.abort()
            raise OutputError(f"{self.path}: could not finish writing ({exc})") from None
        except BaseException:
            self.abort()
            raise

    def publish(self) -> None:
        """Rename the finished temporary file into place."""
        try:
            os.replace(self.tmp, self.path)
        except OSError as exc:
            self.abort()
            raise OutputError(f"{self.path}: could not move the finished file into place "
                              f"({exc.strerror})") from None

    def _to_cog(self) -> None:
        from rasterio.shutil import copy as gdal_copy

        opts = {k: v for k, v in self.creation_options.items()
                if k not in ("TILED", "BLOCKXSIZE", "BLOCKYSIZE")}
        opts["BLOCKSIZE"] = self.creation_options.get("BLOCKXSIZE", "512")
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
        for p in (self.tmp, self.tmp + ".cog.tif"):
            if os.path.exists(p):
                os.unlink(p)
