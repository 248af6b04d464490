"""The compiled kernels on bare padded blocks: stencils and cell-wise products."""

from __future__ import annotations

import math

import numpy as np
import pyproj
import pytest

from terrain import kernels
from terrain.spacing import grid_from_coords

KERNELS = {"central": kernels.central, "horn": kernels.horn,
           "zevenbergen-thorne": kernels.zevenbergen_thorne}


def run_kernel(method, z, grid, edge_order, z_factor=1.0, halo=2):
    """The kernel on the whole of ``z`` padded with NaN (the raster's outside)."""
    zpad = np.pad(z, halo, constant_values=np.nan)
    dzdx = np.empty(z.shape)
    dzdy = np.empty(z.shape)
    KERNELS[method](zpad, *grid.window(0, z.shape[0], 0, z.shape[1], halo), halo, edge_order,
                    z_factor, dzdx, dzdy)
    return dzdx, dzdy


@pytest.fixture
def random_grid():
    rng = np.random.default_rng(7)
    z = rng.normal(50.0, 10.0, (11, 13))
    x, y = np.arange(13) * 4.0, 100.0 - np.arange(11) * 2.5  # north-up, metres, no CRS
    return z, x, y


@pytest.mark.parametrize("edge_order", [1, 2])
@pytest.mark.parametrize("method", ["central", "zevenbergen-thorne"])
def test_uniform_grid_is_numpy_gradient(method, edge_order, random_grid):
    """On a uniform grid both central and Zevenbergen-Thorne are numpy.gradient."""
    z, x, y = random_grid
    p, q = run_kernel(method, z, grid_from_coords(x, y), edge_order)
    ref_y, ref_x = np.gradient(z, y, x, edge_order=edge_order)
    np.testing.assert_allclose(p, ref_x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(q, ref_y, rtol=1e-12, atol=1e-12)


def test_horn_interior_is_gdaldem_formula(random_grid):
    """((c + 2f + i) - (a + 2d + g)) / (8 dx) and ((a + 2b + c) - (g + 2h + i)) / (8 dy)."""
    z, x, y = random_grid
    p, q = run_kernel("horn", z, grid_from_coords(x, y), 1)
    w = {k: z[1 + di:z.shape[0] - 1 + di, 1 + dj:z.shape[1] - 1 + dj]
         for k, (di, dj) in zip("abcdefghi", [(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)])}
    dx, dy = 4.0, 2.5
    ref_x = ((w["c"] + 2 * w["f"] + w["i"]) - (w["a"] + 2 * w["d"] + w["g"])) / (8 * dx)
    ref_y = ((w["a"] + 2 * w["b"] + w["c"]) - (w["g"] + 2 * w["h"] + w["i"])) / (8 * dy)
    np.testing.assert_allclose(p[1:-1, 1:-1], ref_x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(q[1:-1, 1:-1], ref_y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("edge_order", [1, 2])
@pytest.mark.parametrize("method", list(KERNELS))
def test_per_row_spacing_plane(method, edge_order):
    """A geographic grid (x in degrees, metres per degree changing per row): a surface rising
    0.25 m per ground metre along every row gives 0.25 at every cell, Horn's three rows each
    on their own scale (dzdy is not checked: the parallels converge, so it is not 0)."""
    lat = 60.0 - 0.01 * np.arange(6)
    lon = 10.0 + 0.01 * np.arange(5)
    grid = grid_from_coords(lon, lat, "EPSG:4326")
    # Metres along each row from pyproj.Geod: sums of the (equal) neighbour-to-neighbour chords.
    geod = pyproj.Geod(ellps="WGS84")
    chord = geod.inv(np.full(6, lon[0]), lat, np.full(6, lon[1]), lat)[2]
    east = np.arange(5)[None, :] * chord[:, None]
    z = 0.25 * east + 7.0
    p, q = run_kernel(method, z, grid, edge_order)
    np.testing.assert_allclose(p, 0.25, rtol=1e-9)


@pytest.mark.parametrize("edge_order", [1, 2])
@pytest.mark.parametrize("method", list(KERNELS))
def test_z_factor(method, edge_order, random_grid):
    z, x, y = random_grid
    grid = grid_from_coords(x, y)
    p1, q1 = run_kernel(method, z, grid, edge_order)
    p3, q3 = run_kernel(method, z, grid, edge_order, z_factor=0.3048)
    np.testing.assert_allclose(p3, 0.3048 * p1, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(q3, 0.3048 * q1, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("edge_order", [1, 2])
@pytest.mark.parametrize("method", list(KERNELS))
def test_block_with_real_halo_equals_whole(method, edge_order, random_grid):
    """A block padded with its true neighbours gives the same numbers as the whole raster."""
    z, x, y = random_grid
    z = z.copy()
    z[3, 4] = z[5, 5] = z[0, 7] = np.nan
    grid = grid_from_coords(x, y)
    p, q = run_kernel(method, z, grid, edge_order)
    halo = 2
    zpad = np.pad(z, halo, constant_values=np.nan)
    r0, r1, c0, c1 = 3, 8, 4, 9
    block = zpad[r0:r1 + 2 * halo, c0:c1 + 2 * halo]
    bp = np.empty((r1 - r0, c1 - c0))
    bq = np.empty_like(bp)
    KERNELS[method](block, *grid.window(r0, r1, c0, c1, halo), halo, edge_order, 1.0, bp, bq)
    np.testing.assert_array_equal(bp, p[r0:r1, c0:c1])
    np.testing.assert_array_equal(bq, q[r0:r1, c0:c1])


def random_gradient(n=400, seed=1):
    rng = np.random.default_rng(seed)
    p = rng.normal(0, 1.0, n) * rng.choice([1e-3, 1.0, 10.0], n)
    q = rng.normal(0, 1.0, n) * rng.choice([1e-3, 1.0, 10.0], n)
    p[:3] = np.nan
    q[3:6] = np.nan
    return p.reshape(20, -1), q.reshape(20, -1)


@pytest.mark.parametrize("units, truth", [
    ("degrees", lambda t: np.degrees(np.arctan(t))),
    ("percent", lambda t: 100 * t),
    ("radians", np.arctan),
    ("ratio", lambda t: t),
])
def test_slope_units(units, truth):
    p, q = random_gradient()
    out = np.empty_like(p)
    kernels.slope(p, q, kernels.SLOPE_UNITS[units], out)
    np.testing.assert_allclose(out, truth(np.hypot(p, q)), rtol=1e-13)
    assert np.array_equal(np.isnan(out), np.isnan(p) | np.isnan(q))


@pytest.mark.parametrize("p, q, expected", [
    (1.0, 0.0, 270.0),    # rises to the east: faces west
    (-1.0, 0.0, 90.0),
    (0.0, 1.0, 180.0),    # rises to the north: faces south
    (0.0, -1.0, 0.0),
    (-1.0, -1.0, 45.0),   # falls to the north-east
    (1.0, -1.0, 315.0),
    (1.0, 1.0, 225.0),
    (-1.0, 1.0, 135.0),
    (1e-300, -1.0, 0.0),  # a hair west of north: 360 - 1e-298 wraps to 0
])
def test_aspect_compass(p, q, expected):
    out = np.empty((1, 1))
    kernels.aspect(np.array([[p]]), np.array([[q]]), -1.0, out)
    assert 0.0 <= out[0, 0] < 360.0
    assert abs(out[0, 0] - expected) < 1e-12


def test_aspect_float32_never_360():
    """An azimuth that rounds to 360.0 in float32 wraps to 0."""
    out = np.empty((1, 1), np.float32)
    kernels.aspect(np.array([[1e-9]]), np.array([[-1.0]]), -1.0, out)
    assert out[0, 0] == 0.0


@pytest.mark.parametrize("flat_value", [-1.0, 999.0])
def test_aspect_random_flat_nan(flat_value):
    p, q = random_gradient(seed=2)
    p[10, 10] = q[10, 10] = 0.0
    out = np.empty_like(p)
    kernels.aspect(p, q, flat_value, out)
    ref = (np.degrees(np.arctan2(-p, -q)) + 360.0) % 360.0
    ok = np.isfinite(ref)
    ok[10, 10] = False
    np.testing.assert_allclose(out[ok], ref[ok], rtol=1e-13, atol=1e-10)
    assert out[10, 10] == flat_value
    assert np.array_equal(np.isnan(out), np.isnan(p) | np.isnan(q))


@pytest.mark.parametrize("azimuth, altitude", [(315.0, 45.0), (0.0, 10.0), (135.0, 80.0)])
def test_hillshade_analytic(azimuth, altitude):
    p, q = random_gradient(seed=3)
    out = np.empty(p.shape, np.float64)
    kernels.hillshade(p, q, azimuth, altitude, False, out)
    slope = np.arctan(np.hypot(p, q))
    aspect = np.arctan2(-p, -q)
    zen = math.radians(90.0 - altitude)
    cos_i = (math.cos(zen) * np.cos(slope)
             + math.sin(zen) * np.sin(slope) * np.cos(math.radians(azimuth) - aspect))
    np.testing.assert_allclose(out, 1.0 + 254.0 * np.maximum(cos_i, 0.0), rtol=1e-12)
    assert np.array_equal(np.isnan(out), np.isnan(p) | np.isnan(q))


@pytest.mark.parametrize("entry", ["central", "horn", "zevenbergen_thorne"])
def test_c_entry_points_check_their_own_sizes(entry):
    """The C kernels refuse arrays whose sizes disagree with the shape they are told
    (a wrong size would read or write out of bounds), whatever the Python wrapper checks."""
    from terrain import _ckernels

    z = np.zeros((6, 7))
    xpos, xscale, ypos = np.arange(7.0), np.ones(6), np.arange(6.0)
    good = (np.empty((4, 5)), np.empty((4, 5)))
    getattr(_ckernels, entry)(z, 6, 7, xpos, xscale, ypos, 1, 1, 1.0, *good)
    assert np.all(good[0] == 0) and np.all(good[1] == 0)
    bad_calls = [
        (z, 7, 7, xpos, xscale, ypos, 1, 1, 1.0, *good),  # rows beyond the buffer
        (z, 6, 7, xpos[:-1], xscale, ypos, 1, 1, 1.0, *good),  # short xpos
        (z, 6, 7, xpos, xscale, ypos, 1, 1, 1.0, np.empty((4, 4)), good[1]),  # short output
        (z, 6, 7, xpos, xscale, ypos, 1, 1, 1.0, np.empty((4, 5), np.float32), good[1]),
        (z, 6, 7, xpos, xscale, ypos, 4, 1, 1.0, *good),  # halo wider than the block
    ]
    for args in bad_calls:
        with pytest.raises(ValueError, match="inconsistent sizes"):
            getattr(_ckernels, entry)(*args)


@pytest.mark.parametrize("entry,settings", [("slope", (0,)), ("aspect", (-1.0,)),
                                            ("hillshade", (315.0, 45.0, 0))])
def test_c_product_entry_points_check_their_own_sizes(entry, settings):
    from terrain import _ckernels

    p = np.ones(10)
    with pytest.raises(ValueError, match="inconsistent sizes"):
        getattr(_ckernels, entry)(p, np.ones(9), *settings, np.empty(10))
    with pytest.raises(ValueError, match="inconsistent sizes"):
        getattr(_ckernels, entry)(p, p, *settings, np.empty(11))
    out = np.empty(10)
    getattr(_ckernels, entry)(p, p, *settings, out)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [0, 1, 7, 33, 4099])
def test_fill_nan_and_has_inf_equal_numpy(dtype, size):
    """The writers' NaN -> nodata and the float32-overflow check, against numpy."""
    from terrain import _ckernels

    rng = np.random.default_rng(size)
    a = (rng.standard_normal(size) * 1e3).astype(dtype)
    for value, share in ((np.nan, 0.2), (np.inf, 0.01), (-np.inf, 0.01)):
        a[rng.random(size) < share] = value
    expected = np.where(np.isnan(a), dtype(-9999.0), a)
    assert _ckernels.has_inf(a) == bool(np.isinf(a).any())
    finite = np.nan_to_num(a, nan=1.0, posinf=2.0, neginf=3.0)
    assert _ckernels.has_inf(finite) is False
    _ckernels.fill_nan(a, -9999.0)
    np.testing.assert_array_equal(a, expected)
    assert _ckernels.has_inf(a) == bool(np.isinf(expected).any())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_byte_equals_numpy_rounding(dtype):
    """A byte product's storage (the hillshade): NaN -> nodata, else floor(v + 0.5) in
    the block's type, as numpy computes it; ties and the ends of 0..255 included."""
    from terrain import _ckernels

    rng = np.random.default_rng(7)
    values = np.concatenate([rng.uniform(0, 255.49, 5000), np.arange(0, 255.5, 0.5),
                             [np.nan, 0.49999997, 254.5, 255.0, np.nan]]).astype(dtype)
    out = np.empty(values.shape, np.uint8)
    _ckernels.to_byte(values, 0, out)
    expected = np.where(np.isnan(values), 0, np.floor(values + dtype(0.5))).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, runs, cells", [((7, 11), [0, 3, 7], 4), ((1, 1), [0, 1], 1),
                                                ((300, 5), [0, 299, 300], 2)])
def test_block_sums_equal_numpy(dtype, shape, runs, cells):
    """A window's display-cell sums and valid counts (DisplayGrid's block means): the
    sums of numpy's own masked reductions, cell by cell; sums and counts are added to."""
    from terrain import _ckernels

    rng = np.random.default_rng(shape[0])
    block = (rng.random(shape) * 100).astype(dtype)
    block[rng.random(shape) < 0.3] = np.nan
    cell = np.sort(rng.integers(0, cells, shape[1]))
    bounds = np.array(runs)
    sums = np.full((len(runs) - 1, cells), 0.5)
    counts = np.full(sums.shape, 2, np.int32)
    _ckernels.block_sums(block, bounds, cell, sums, counts)
    for i in range(len(runs) - 1):
        for j in range(cells):
            part = block[runs[i]:runs[i + 1], cell == j].astype(np.float64)
            assert counts[i, j] == 2 + np.isfinite(part).sum()
            assert sums[i, j] == pytest.approx(0.5 + np.nansum(part), rel=1e-12)


@pytest.mark.parametrize("bad", ["bounds beyond", "bounds backwards", "cell beyond",
                                 "int32 bounds", "float32 sums", "sums shape"])
def test_block_sums_checks_its_arrays(bad):
    from terrain import _ckernels

    block = np.ones((4, 3), np.float32)
    args = {"bounds": np.array([0, 2, 4]), "cell": np.array([0, 1, 1]),
            "sums": np.zeros((2, 2)), "counts": np.zeros((2, 2), np.int32)}
    args.update({"bounds beyond": {"bounds": np.array([0, 2, 5])},
                 "bounds backwards": {"bounds": np.array([0, 3, 2])},
                 "cell beyond": {"cell": np.array([0, 1, 2])},
                 "int32 bounds": {"bounds": np.array([0, 2, 4], np.int32)},
                 "float32 sums": {"sums": np.zeros((2, 2), np.float32)},
                 "sums shape": {"sums": np.zeros((3, 2))}}[bad])
    with pytest.raises(ValueError, match="block_sums"):
        _ckernels.block_sums(block, *args.values())


def test_buffers_with_an_explicit_byte_order_are_accepted():
    """A buffer may say its element format with a byte order ("<f": ctypes, arrays that
    crossed dask's wire); native ones are taken, as numpy's plain "f"."""
    import ctypes

    from terrain import _ckernels

    cells = (ctypes.c_float * 3)(1.0, float("nan"), 2.0)
    assert memoryview(cells).format in ("<f", "=f", "@f")
    assert _ckernels.has_inf(cells) is False
    _ckernels.fill_nan(cells, -9999.0)
    assert list(cells) == [1.0, -9999.0, 2.0]
    with pytest.raises(TypeError, match="float32 or float64"):
        _ckernels.fill_nan(np.array([1.0, np.nan], ">f4"), -9999.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nodata", [None, -9999.0, 0.0])
def test_to_nan_equals_numpy(dtype, nodata):
    """A map's read: non-finite cells and the file's nodata become NaN, in place, in the
    block's type (numpy's comparison of a float32 block with a Python float)."""
    from terrain import _ckernels

    rng = np.random.default_rng(11)
    a = rng.choice(np.array([-9999.0, 0.0, 1.5, np.nan, np.inf, -np.inf, 250.25]), 3001)
    a = (a + rng.random(3001) * (rng.random(3001) < 0.3)).astype(dtype)
    bad = ~np.isfinite(a)
    if nodata is not None:
        bad |= a == nodata
    expected = np.where(bad, np.nan, a).astype(dtype)
    assert _ckernels.to_nan(a, nodata) == bool(bad.any())
    np.testing.assert_array_equal(a, expected)
    clean = np.array([1.0, 2.0], dtype)
    assert _ckernels.to_nan(clean, nodata) is False
