"""Options, elevation decoding, padding and the in-memory tiled runner."""

from __future__ import annotations

import numpy as np
import pytest

import terrain
from conftest import METHODS
from terrain.engine import (Options, as_elevation, compute_block, pad_from_array,
                            products_from_gradient, run_in_memory)
from terrain.errors import TerrainError
from terrain.spacing import grid_from_coords, grid_from_spacing

ALL = ("dzdx", "dzdy", "slope", "aspect", "hillshade")


@pytest.mark.parametrize("bad", [
    {"method": "sobel"}, {"edge_order": 0}, {"edge_order": 3}, {"units": "grads"},
    {"z_factor": 0.0}, {"z_factor": float("nan")}, {"z_factor": float("inf")},
    {"altitude": -1.0}, {"altitude": 91.0},
])
def test_options_refused(bad):
    with pytest.raises(terrain.TerrainError):
        Options(**bad)


@pytest.mark.parametrize("bad", [{"method": "sobel"}, {"edge_order": 3}, {"units": "grads"}])
def test_public_functions_refuse_bad_options(bad):
    z = np.arange(12.0).reshape(3, 4)
    with pytest.raises(terrain.TerrainError):
        terrain.slope(z, spacing=(1.0, 1.0), **bad)


@pytest.mark.parametrize("raw, nodata, expected_dtype, nan_at", [
    (np.array([[1, -32768], [3, 4]], np.int16), -32768.0, np.float32, [(0, 1)]),
    (np.array([[1, 255], [3, 4]], np.uint8), 255.0, np.float32, [(0, 1)]),
    (np.array([[1.5, -9999.0], [np.inf, -np.inf]], np.float32), -9999.0, np.float32,
     [(0, 1), (1, 0), (1, 1)]),
    (np.array([[1.5, np.nan], [2.0, 3.0]], np.float64), None, np.float64, [(0, 1)]),
    (np.array([[1.5, np.nan], [2.0, 3.0]], np.float64), float("nan"), np.float64, [(0, 1)]),
    # An integer nodata is compared as an integer: 16777217 is not 16777216 (both are
    # 16777216.0 in float32). 32-bit integers are computed in float64 (issue 8).
    (np.array([[16777216, 16777217], [0, 1]], np.int32), 16777217.0, np.float64, [(0, 1)]),
])
def test_as_elevation(raw, nodata, expected_dtype, nan_at):
    z = as_elevation(raw.copy(), nodata)
    assert z.dtype == expected_dtype
    expected = np.zeros(raw.shape, bool)
    for ij in nan_at:
        expected[ij] = True
    np.testing.assert_array_equal(np.isnan(z), expected)
    np.testing.assert_array_equal(z[~expected], raw[~expected].astype(expected_dtype))


@pytest.mark.parametrize("window", [(0, 3, 0, 4), (2, 6, 3, 7), (4, 7, 5, 8), (0, 7, 0, 8)])
@pytest.mark.parametrize("halo", [1, 2])
def test_pad_from_array(window, halo):
    z = np.arange(56.0).reshape(7, 8)
    r0, r1, c0, c1 = window
    ref = np.pad(z, halo, constant_values=np.nan)[r0:r1 + 2 * halo, c0:c1 + 2 * halo]
    np.testing.assert_array_equal(pad_from_array(z, r0, r1, c0, c1, halo), ref)


@pytest.fixture
def holey():
    rng = np.random.default_rng(4)
    z = rng.normal(200.0, 30.0, (17, 23))
    z[4, 4:7] = np.nan
    z[8:10, 10] = np.nan
    z[0, 0] = z[16, 22] = np.nan
    y = 5000.0 - np.cumsum(rng.uniform(20, 40, 17))
    x = np.cumsum(rng.uniform(20, 40, 23))
    return z, grid_from_coords(x, y), x, y


@pytest.mark.parametrize("edge_order", [1, 2])
@pytest.mark.parametrize("method", METHODS)
def test_tiles_and_threads_do_not_change_results(method, edge_order, holey):
    z, grid, _, _ = holey
    opts = Options(method=method, edge_order=edge_order)
    ref = run_in_memory(z, grid, opts, ALL, tile=512, threads=1)
    for tile, threads in [(1, 1), (2, 2), (3, 2), (5, 1), (7, 2)]:
        out = run_in_memory(z, grid, opts, ALL, tile=tile, threads=threads)
        for name in ALL:
            np.testing.assert_array_equal(out[name], ref[name], err_msg=f"{name} tile={tile}")


@pytest.mark.parametrize("edge_order", [1, 2])
def test_small_tiles_central_is_numpy_gradient(edge_order):
    rng = np.random.default_rng(9)
    z = rng.normal(0.0, 1.0, (12, 9))
    y, x = -np.cumsum(rng.uniform(1, 2, 12)), np.cumsum(rng.uniform(1, 2, 9))
    out = run_in_memory(z, grid_from_coords(x, y), Options(edge_order=edge_order),
                        ("dzdx", "dzdy"), tile=4, threads=2)
    ref_y, ref_x = np.gradient(z, y, x, edge_order=edge_order)
    np.testing.assert_allclose(out["dzdx"], ref_x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out["dzdy"], ref_y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype, out_dtype", [(np.float32, np.float32), (np.float64, np.float64)])
def test_output_dtypes(dtype, out_dtype):
    z = np.arange(20, dtype=dtype).reshape(4, 5)
    out = run_in_memory(z, grid_from_spacing(z.shape, (1.0, 1.0)), Options(), ALL)
    for name in ALL:
        assert out[name].dtype == (np.float32 if name == "hillshade" else out_dtype), name


def test_compute_block_products_from_gradient_agree(holey):
    z, grid, _, _ = holey
    opts = Options(method="horn", edge_order=2, units="percent")
    h = opts.halo
    zpad = np.pad(z, h, constant_values=np.nan)
    res = compute_block(zpad, grid, (0, z.shape[0], 0, z.shape[1]), opts, ALL)
    again = products_from_gradient(res["dzdx"], res["dzdy"], opts, ("slope", "aspect", "hillshade"))
    for name in again:
        np.testing.assert_array_equal(again[name], res[name])
    np.testing.assert_allclose(res["slope"], 100 * np.hypot(res["dzdx"], res["dzdy"]), rtol=1e-13)


def test_unknown_product():
    p = np.zeros((2, 2))
    with pytest.raises(terrain.TerrainError):
        products_from_gradient(p, p, Options(), ("curvature",))


def test_as_elevation_scale_offset_mask_and_wide_integers():
    raw = np.array([[1000, 11000], [2000, 0]], np.uint16)
    z = as_elevation(raw, 1000, mask=np.array([[255, 255], [255, 0]], np.uint8), scale=0.1,
                     offset=-100.0)
    assert z.dtype == np.float32
    # Nodata compared in raw counts (1000), not in metres (11000 -> 1000 m stays valid).
    np.testing.assert_array_equal(np.isnan(z), [[True, False], [False, True]])
    np.testing.assert_allclose(z[~np.isnan(z)], [1000.0, 100.0], rtol=1e-7)
    # 32- and 64-bit integers are float64 and exact, whatever their values; 16-bit float32.
    wide = np.array([[2 ** 31 - 1, 16777217], [-5, 0]], np.int32)
    assert as_elevation(wide).dtype == np.float64
    np.testing.assert_array_equal(as_elevation(wide), wide.astype(np.float64))
    assert as_elevation(np.array([[16777216, 3]], np.int64)).dtype == np.float64
    assert as_elevation(np.array([[2 ** 40, 3]], np.uint64)).dtype == np.float64
    assert as_elevation(np.array([[65535, 3]], np.uint16)).dtype == np.float32


def test_as_elevation_refuses_an_undeclared_fill():
    z = np.array([[1.0, -np.finfo(np.float32).max], [2.0, 3.0]], np.float32)
    with pytest.raises(TerrainError, match="dem.tif: elevation -3.40282e\\+38 is an undeclared"):
        as_elevation(z.copy(), name="dem.tif")
    # Declared, it is a hole; 1e30 is still an elevation.
    assert np.isnan(as_elevation(z.copy(), float(z[0, 1]))[0, 1])
    assert as_elevation(np.array([[1e30, 2.0]], np.float32))[0, 0] == np.float32(1e30)


def test_z_factor_default_is_from_the_file():
    opts = Options()
    assert not opts.z_factor_explicit and opts.z_factor is None
    assert Options(z_factor=None) == opts
    assert opts.with_z_factor(0.3048).z_factor == 0.3048
    assert Options(z_factor=2.0).with_z_factor(0.3048).z_factor == 2.0
    assert Options(z_factor=2.0).z_factor_explicit
