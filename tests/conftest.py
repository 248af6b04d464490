"""Shared helpers: small GeoTIFFs in tmp_path, gdaldem runs, the bundled samples."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from terrain import registry

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"
UTM_SAMPLE = SAMPLES / "jacksboro_utm16n.tif"
WGS84_SAMPLE = SAMPLES / "jacksboro_wgs84.tif"
# Every declared method: the generic suites (planes, tile sizes, runners, holes, CLI) run each.
METHODS = tuple(registry.METHODS)
# The least-squares fits (terrain/lsq.py): exact on planes to round-off, not bit for bit,
# and a plane through valid cells off the centre's row / column gives both derivatives.
LSQ_METHODS = ("evans", "florinsky")
# The difference stencils: a plane's integer differences give the exact slope, and dz/dx
# (dz/dy) exists exactly where the cell's row (column) has a difference.
DIFFERENCE_METHODS = tuple(m for m in METHODS if m not in LSQ_METHODS)


def invoke(*args):
    """Run the ``terrain`` CLI in-process on ``args`` (anything str() takes); the click Result."""
    from click.testing import CliRunner

    from cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def crashed(result) -> bool:
    """Whether an exception escaped an ``invoke`` (in a shell, the user would see a traceback)."""
    return result.exception is not None and not isinstance(result.exception, SystemExit)


def sha256(path) -> str | None:
    """The SHA-256 of a file's bytes, read in chunks; None when there is no such file."""
    if not Path(path).is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def plane_slope(p, q, units="degrees"):
    """The slope of a plane of gradient (p, q) = (dz/dx, dz/dy) in ``units``: the analytic truth."""
    t = np.hypot(p, q)
    return {"degrees": np.degrees(np.arctan(t)), "percent": 100.0 * t,
            "radians": np.arctan(t), "ratio": t}[units]


def plane_aspect(p, q):
    """Compass azimuth (degrees clockwise from north) of a plane's downslope direction
    -(p, q) = (east, north): the analytic truth."""
    return (np.degrees(np.arctan2(-p, -q)) + 360.0) % 360.0


def write_tif(path, z, transform=Affine(30.0, 0, 500000.0, 0, -30.0, 4000000.0), crs="EPSG:32616",
              nodata=None, count=1):
    """Write the 2-D array ``z`` (in every band) to a GeoTIFF and return its path as str."""
    z = np.asarray(z)
    profile = dict(driver="GTiff", width=z.shape[1], height=z.shape[0], count=count,
                   dtype=z.dtype, transform=transform)
    if crs is not None:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as ds:
        for b in range(1, count + 1):
            ds.write(z, b)
    return str(path)


@pytest.fixture
def make_tif(tmp_path):
    """``make_tif(z, name="dem.tif", **write_tif_kwargs)`` -> path of a GeoTIFF in tmp_path."""

    def make(z, name="dem.tif", **kwargs):
        return write_tif(tmp_path / name, z, **kwargs)

    return make


@pytest.fixture(scope="session")
def gdaldem(tmp_path_factory):
    """``gdaldem(mode, src, *options)`` -> (array, nodata) of gdaldem's output, run in the test."""
    exe = shutil.which("gdaldem") or "/usr/bin/gdaldem"
    assert Path(exe).exists(), "gdaldem (gdal-bin) is required for these tests"
    out_dir = tmp_path_factory.mktemp("gdaldem")
    counter = iter(range(10**6))

    def run(mode, src, *options):
        out = out_dir / f"{mode}_{next(counter)}.tif"
        subprocess.run([exe, mode, str(src), str(out), "-q", *options], check=True,
                       capture_output=True)
        with rasterio.open(out) as ds:
            return ds.read(1), ds.nodata

    return run


def _bad(kind, tmp_path):
    """(path, open_dem keyword arguments, a word the error must say) for a refused file."""
    z = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = tmp_path / f"{kind}.tif"
    if kind == "missing":
        pass
    elif kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not a GeoTIFF\n")
    elif kind == "no-crs":
        write_tif(path, z, crs=None)
    elif kind == "rotated":
        write_tif(path, z, transform=Affine(30.0, 5.0, 500000.0, 5.0, -30.0, 4e6))
    elif kind in ("1x1", "1xN", "Nx1"):
        write_tif(path, {"1x1": z[:1, :1], "1xN": z[:1], "Nx1": z[:, :1]}[kind])
    elif kind == "band":
        write_tif(path, z, count=2)
        return str(path), {"band": 3}, "band 3"
    return str(path), {}, BAD_KINDS[kind]


BAD_KINDS = {"missing": "no such file", "directory": "directory", "empty": "empty",
             "text": "not a raster", "no-crs": "crs", "rotated": "rotated", "1x1": "2 x 2",
             "1xN": "2 x 2", "Nx1": "2 x 2", "band": "band 3"}


@pytest.fixture(params=list(BAD_KINDS))
def bad_raster(request, tmp_path):
    """Each kind of file open_dem must refuse: (kind, path, keyword arguments, word)."""
    return (request.param, *_bad(request.param, tmp_path))


def pytest_collection_modifyitems(items):
    """Tests that run gdaldem (through the fixture) carry the ``gdaldem`` marker."""
    for item in items:
        if "gdaldem" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.gdaldem)

