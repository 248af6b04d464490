"""Dask-backed DEMs: lazy, and the same numbers as in memory whatever the chunks."""

from __future__ import annotations

import os

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from affine import Affine

import terrain
from conftest import DIFFERENCE_METHODS, METHODS, UTM_SAMPLE
from terrain.engine import RunOptions


TRANSFORMS = {
    "utm": ("EPSG:32616", Affine(30.0, 0, 500000.0, 0, -20.0, 4000000.0)),  # non-square
    "wgs84": ("EPSG:4326", Affine(1 / 1200, 0, -84.0, 0, -1 / 1200, 60.0)),  # per-row spacing
}


def rough_file(make_tif, shape, crs="utm"):
    """A rough float32 surface with nodata on the seams of (7, 5) chunks and a nodata row."""
    rng = np.random.default_rng(1)
    z = rng.normal(300.0, 15.0, shape).astype(np.float32)
    for i, j in [(6, 4), (7, 5), (6, 9), (13, 3), (14, 10), (0, 4), (shape[0] - 1, 5), (3, 0)]:
        if i < shape[0] and j < shape[1]:
            z[i, j] = -9999
    z[min(9, shape[0] - 2), :] = -9999
    epsg, transform = TRANSFORMS[crs]
    return make_tif(z, nodata=-9999, crs=epsg, transform=transform)


def check_same(pairs):
    """Each lazy result equals its eager twin, computed whole and through lazy slices of the
    last row and column (which only come out right if the declared chunks are the computed
    ones). ``pairs``: {name: (lazy DataArray, eager DataArray)}; one dask.compute for all."""
    lazy = []
    for name, (lz, eg) in pairs.items():
        assert isinstance(lz.data, da.Array), name
        assert lz.dtype == eg.dtype, name
        assert lz.rio.crs == eg.rio.crs, name
        lazy += [lz.data, lz.data[-1:, :], lz.data[:, -1:]]
    computed = iter(dask.compute(*lazy))
    for name, (_, eg) in pairs.items():
        for part, ref in zip(("whole", "last row", "last column"),
                             (eg.values, eg.values[-1:, :], eg.values[:, -1:])):
            np.testing.assert_array_equal(next(computed), ref, err_msg=f"{name}: {part}")


# 22 x 16 in (7, 5) chunks leaves a last chunk of one row and one column; 23 x 19 of 2 and 4.
# The least-squares fits barely use the edge order: the quick run keeps them at edge order 1.
@pytest.mark.parametrize("method, edge_order", [
    pytest.param(m, e, marks=[pytest.mark.slow] if m not in DIFFERENCE_METHODS and e == 2 else [])
    for m in METHODS for e in (1, 2)])
@pytest.mark.parametrize("shape, crs", [((23, 19), "utm"), ((22, 16), "utm"), ((22, 16), "wgs84")])
def test_open_dem_chunks_equals_in_memory(shape, crs, method, edge_order, make_tif):
    path = rough_file(make_tif, shape, crs)
    lazy = terrain.open_dem(path, chunks=(7, 5))
    assert isinstance(lazy.data, da.Array)
    eager = terrain.open_dem(path)
    np.testing.assert_array_equal(lazy.compute().values, eager.values)
    kw = dict(method=method, edge_order=edge_order)
    g_lazy, g_eager = terrain.gradient(lazy, **kw), terrain.gradient(eager, **kw)
    pairs = {v: (g_lazy[v], g_eager[v]) for v in ("dzdx", "dzdy")}
    for product in ("slope", "aspect", "hillshade"):
        f = getattr(terrain, product)
        pairs[product] = (f(lazy, **kw), f(eager, **kw))
    check_same(pairs)


@pytest.mark.parametrize("method, edge_order", [
    pytest.param(m, e, marks=[pytest.mark.slow] if m not in DIFFERENCE_METHODS and e == 2 else [])
    for m in METHODS for e in (1, 2)])
@pytest.mark.parametrize("chunks", [(1, 1), (2, 3), (3, 1)])
def test_chunks_smaller_than_halo(chunks, method, edge_order, make_tif):
    eager = terrain.open_dem(rough_file(make_tif, (9, 7), "wgs84"))
    lazy = eager.chunk({"y": chunks[0], "x": chunks[1]})
    out = terrain.gradient(lazy, method=method, edge_order=edge_order)
    ref = terrain.gradient(eager, method=method, edge_order=edge_order)
    check_same({v: (out[v], ref[v]) for v in ("dzdx", "dzdy")})


@pytest.mark.parametrize("product", ["slope", "aspect", "hillshade"])
def test_lazy_gradient_dataset(product, make_tif):
    path = rough_file(make_tif, (23, 19), "wgs84")
    g_lazy = terrain.gradient(terrain.open_dem(path, chunks=(7, 5)), method="horn")
    g_eager = terrain.gradient(terrain.open_dem(path), method="horn")
    f = getattr(terrain, product)
    check_same({product: (f(g_lazy), f(g_eager))})


def test_user_array_not_modified():
    """Decoding nodata / inf on a chunked DataArray must not write into the caller's array."""
    z = np.arange(20 * 15, dtype=np.float64).reshape(20, 15)
    z[3, 4], z[9, 9] = -9999.0, np.inf
    before = z.copy()
    dem = xr.DataArray(z, dims=("y", "x"),
                       coords={"y": 1000.0 - 30 * np.arange(20), "x": 30.0 * np.arange(15)})
    dem = dem.rio.write_crs("EPSG:32616").rio.write_nodata(-9999.0, encoded=True)
    out = terrain.slope(dem.chunk({"y": 6, "x": 4})).compute()
    assert np.isnan(out.values[3, 4]) and np.isnan(out.values[9, 9])
    np.testing.assert_array_equal(z, before)


def test_real_sample_chunked():
    eager = terrain.open_dem(UTM_SAMPLE)
    lazy = terrain.open_dem(UTM_SAMPLE, chunks=(300, 257))
    check_same({m: (terrain.slope(lazy, method=m), terrain.slope(eager, method=m))
                for m in ("horn", "central")})


@pytest.fixture(scope="module")
def two_worker_cluster():
    """A dask.distributed cluster of two worker processes on this machine."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        yield cluster


def _read_bands(path):
    import rasterio

    with rasterio.open(path) as ds:
        return ds.read()


@pytest.mark.parametrize("crs", ["utm", "wgs84"])
def test_distributed_process_file_equals_local(crs, two_worker_cluster, make_tif, tmp_path):
    """Windows computed on two worker processes, written here: the same file as the threads."""
    from terrain.engine import Options
    from terrain.stream import process_file

    src = rough_file(make_tif, (37, 29), crs)
    outputs = lambda tag: {k: tmp_path / f"{tag}_{k}.tif" for k in ("gradient", "slope", "aspect")}
    opts = Options(method="horn", edge_order=2)
    process_file(src, outputs("local"), opts, run=RunOptions(tile_size=1024))
    process_file(src, outputs("cluster"), opts,
                 run=RunOptions(tile_size=8, scheduler=two_worker_cluster.scheduler_address))
    for kind in ("gradient", "slope", "aspect"):
        local = _read_bands(tmp_path / f"local_{kind}.tif")
        assert np.array_equal(local, _read_bands(tmp_path / f"cluster_{kind}.tif")), kind
        assert (local != -9999).any()


@pytest.mark.slow
def test_cli_scheduler_on_two_worker_processes(two_worker_cluster, tmp_path):
    """`terrain slope --scheduler ADDRESS` in its own process, as a user would run it."""
    import shutil
    import subprocess
    import sys

    exe = shutil.which("terrain", path=os.path.dirname(sys.executable)) or shutil.which("terrain")
    local, remote = tmp_path / "local.tif", tmp_path / "remote.tif"
    for out, extra in ((local, []), (remote, ["--scheduler", two_worker_cluster.scheduler_address,
                                              "--tile-size", "100"])):
        res = subprocess.run([exe, "-q", "slope", str(UTM_SAMPLE), "-o", str(out),
                              "--method", "horn", *extra], capture_output=True, text=True,
                             timeout=300)
        assert res.returncode == 0, res.stderr
    assert np.array_equal(_read_bands(local), _read_bands(remote))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local.tif", "remote.tif"]
