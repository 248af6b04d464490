"""The least-squares methods (terrain/lsq.py): Evans-Young, Florinsky, second derivatives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from terrain import kernels, lsq
from terrain.engine import pad_from_array, to_ground, windows
from terrain.spacing import grid_from_coords, grid_from_transform

from test_spacing import check_ground, ground_plane

GRADIENT = {"evans": lsq.evans, "florinsky": lsq.florinsky}
SECOND = ("zevenbergen-thorne", "evans", "florinsky")
OUT = ("p", "q", "r", "t", "s")


def run(method, z, grid, tile=10_000, z_factor=1.0, ground=True):
    """p, q, r, t, s of the whole of ``z`` (NaN outside), block by block as the runners
    do (padded windows of ``tile`` cells, the grid's ground map applied per block)."""
    halo = lsq.reach(method)
    out = {k: np.full(z.shape, -999.0) for k in OUT}
    for win in windows(z.shape, tile):
        r0, r1, c0, c1 = win
        zpad = pad_from_array(z, r0, r1, c0, c1, halo)
        blk = {k: np.empty((r1 - r0, c1 - c0)) for k in OUT}
        lsq.derivatives(method, zpad, *grid.window(r0, r1, c0, c1, halo), halo, z_factor,
                        *(blk[k] for k in OUT))
        gw = grid.ground_window(*win)
        if ground and gw is not None:
            to_ground(blk["p"], blk["q"], gw, "ground", blk["p"], blk["q"])
            lsq.second_to_ground(blk["r"], blk["t"], blk["s"], gw)
        for k in OUT:
            out[k][r0:r1, c0:c1] = blk[k]
    return out


def gradient(method, z, grid, halo=2):
    """The gradient kernel itself (terrain.kernels' signature) on the whole of ``z``."""
    zpad = np.pad(z, halo, constant_values=np.nan)
    p, q = np.empty(z.shape), np.empty(z.shape)
    GRADIENT[method](zpad, *grid.window(0, z.shape[0], 0, z.shape[1], halo), halo, 1, 1.0, p, q)
    return p, q


def metre_grid(rows, cols, dx=30.0, dy=25.0):
    """A grid in metres without CRS, north-up, and the (x east, y north) of its cells."""
    x, y = 1000.0 + np.arange(cols) * dx, 5000.0 - np.arange(rows) * dy
    X, Y = np.meshgrid(x, y)
    return grid_from_coords(x, y), X, Y


def lstsq_truth(method, z, X, Y, i, j):
    """p, q, r, t, s at cell (i, j) by numpy.linalg.lstsq of the method's polynomial on
    the window's cells (an independent solver on the same positions, in units of 30 m
    for a well-conditioned matrix)."""
    k, terms = lsq.FITS[method]
    xs = (X[i - k:i + k + 1, j - k:j + k + 1] - X[i, j]).ravel() / 30.0
    ys = (Y[i - k:i + k + 1, j - k:j + k + 1] - Y[i, j]).ravel() / 30.0
    A = np.stack([xs ** a * ys ** b for a, b in terms], axis=1)
    c = np.linalg.lstsq(A, z[i - k:i + k + 1, j - k:j + k + 1].ravel(), rcond=None)[0]
    at = {t: c[n] / 30.0 ** (t[0] + t[1]) for n, t in enumerate(terms)}
    return at[(1, 0)], at[(0, 1)], 2 * at[(2, 0)], 2 * at[(0, 2)], at[(1, 1)]


@pytest.mark.parametrize("method", SECOND)
def test_interior_is_the_least_squares_fit(method):
    """Random elevations on a non-uniform grid: every output equals numpy's lstsq fit (to
    1e-8 of each output's range: lsq rounds positions to 32 significant bits)."""
    rng = np.random.default_rng(3)
    x = np.cumsum(rng.uniform(20, 40, 11))
    y = 9000.0 - np.cumsum(rng.uniform(15, 35, 9))
    X, Y = np.meshgrid(x, y)
    z = rng.normal(300.0, 20.0, X.shape)
    got = run(method, z, grid_from_coords(x, y))
    k = lsq.reach(method)
    truth = {name: np.full(z.shape, np.nan) for name in OUT}
    for i in range(k, z.shape[0] - k):
        for j in range(k, z.shape[1] - k):
            for name, v in zip(OUT, lstsq_truth(method, z, X, Y, i, j)):
                truth[name][i, j] = v
    inner = (slice(k, -k), slice(k, -k))
    for name in OUT:
        ref = truth[name][inner]
        np.testing.assert_allclose(got[name][inner], ref, rtol=0,
                                   atol=1e-8 * np.abs(ref).max(), err_msg=name)


def test_evans_and_zt_classic_formulas():
    """Uniform grid: Evans-Young's ((c + f + i) - (a + d + g)) / (6 dx) ... and
    Zevenbergen-Thorne's r = 2D, t = 2E, s = F with D = ((d + f)/2 - e)/L^2,
    E = ((b + h)/2 - e)/L^2, F = (c + g - a - i)/(4 L^2)."""
    rng = np.random.default_rng(5)
    grid, X, Y = metre_grid(9, 10, dx=20.0, dy=20.0)
    z = rng.normal(100.0, 5.0, X.shape)
    w = {key: z[1 + di:z.shape[0] - 1 + di, 1 + dj:z.shape[1] - 1 + dj]
         for key, (di, dj) in zip("abcdefghi", [(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)])}
    L = 20.0
    ev = run("evans", z, grid)
    inner = (slice(1, -1), slice(1, -1))
    np.testing.assert_allclose(ev["p"][inner], ((w["c"] + w["f"] + w["i"])
                                                - (w["a"] + w["d"] + w["g"])) / (6 * L), rtol=1e-10)
    np.testing.assert_allclose(ev["q"][inner], ((w["a"] + w["b"] + w["c"])
                                                - (w["g"] + w["h"] + w["i"])) / (6 * L), rtol=1e-10)
    zt = run("zevenbergen-thorne", z, grid)
    np.testing.assert_allclose(zt["r"][inner], 2 * ((w["d"] + w["f"]) / 2 - w["e"]) / L ** 2,
                               rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(zt["t"][inner], 2 * ((w["b"] + w["h"]) / 2 - w["e"]) / L ** 2,
                               rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(zt["s"][inner], (w["c"] + w["g"] - w["a"] - w["i"]) / (4 * L ** 2),
                               rtol=1e-9, atol=1e-14)
    # ... and its gradient is terrain's zevenbergen-thorne's.
    np.testing.assert_allclose(zt["p"][inner], (w["f"] - w["d"]) / (2 * L), rtol=1e-10)


def plane_with_holes(X, Y):
    z = 250.0 + 0.12 * (X - X.mean()) - 0.2 * (Y - Y.mean())
    z[4, 5] = z[5, 5] = z[9, 2] = np.nan
    z[0, 3] = np.nan  # a hole on the edge
    return z


@pytest.mark.parametrize("method", SECOND)
def test_plane_projected_every_cell(method):
    """A plane on a projected grid (planar geometry): exact at every valid cell, edges,
    corners and the neighbours of holes included; second derivatives 0 (NaN only where a
    plane is all the valid cells determine); holes stay NaN."""
    x, y = 500000.0 + np.arange(12) * 30.0, 4e6 - np.arange(11) * 30.0
    grid = grid_from_coords(x, y, "EPSG:32616", geometry="planar")
    X, Y = np.meshgrid(x, y)
    z = plane_with_holes(X, Y)
    got = run(method, z, grid)
    hole = np.isnan(z)
    np.testing.assert_array_equal(np.isnan(got["p"]), hole)
    np.testing.assert_allclose(got["p"][~hole], 0.12, atol=1e-10)
    np.testing.assert_allclose(got["q"][~hole], -0.2, atol=1e-10)
    for name in "rts":
        v = got[name][~hole]
        assert np.nanmax(np.abs(v)) < 1e-12
    if method == "florinsky":
        # A 5x5 window always keeps a 3x3 quadratic's worth of cells here.
        assert not np.isnan(got["r"][~hole]).any()


@pytest.mark.parametrize("method", list(GRADIENT))
def test_plane_lat_lon_per_row_spacing(method):
    """A lat/lon grid (each row its own metres per degree): z = a E + b N with E the
    ground metres east of lon0 along each parallel. dz/dE is a everywhere; dz/dN is
    b + a (lon - lon0) d(xscale)/dN = b - a (lon - lon0) sin(lat) pi/180 (the parallels
    converge: d(N cos phi)/d phi = -M sin phi, and dN = M d phi)."""
    lat = 60.0 - 0.01 * np.arange(9)
    lon = 10.0 + 0.01 * np.arange(8)
    grid = grid_from_coords(lon, lat, "EPSG:4326")
    lon0 = lon[3]
    E = (lon[None, :] - lon0) * grid.xscale[:, None]
    z = 7.0 + 0.25 * E - 0.1 * grid.ypos[:, None]
    z[4, 4] = np.nan
    got = run(method, z, grid)
    ok = ~np.isnan(z)
    np.testing.assert_allclose(got["p"][ok], 0.25, rtol=1e-9)
    q_true = -0.1 - 0.25 * (lon[None, :] - lon0) * np.sin(np.radians(lat))[:, None] * np.pi / 180
    q_true = np.broadcast_to(q_true, z.shape)
    inner = np.zeros(z.shape, bool)
    inner[1:-1, 1:-1] = True
    np.testing.assert_allclose(got["q"][ok & inner], q_true[ok & inner], rtol=0, atol=1e-10)
    # Edge rows fit one-sided windows to a surface that is not quite a plane in each
    # cell's frame (xscale curves with latitude): off by g'' dy / 2, 8e-9 here.
    np.testing.assert_allclose(got["q"][ok], q_true[ok], rtol=0, atol=1e-8)
    # The kernel itself (kernels' signature) gives the same numbers.
    p, q = gradient(method, z, grid)
    np.testing.assert_array_equal(p, got["p"])
    np.testing.assert_array_equal(q, got["q"])


@pytest.mark.parametrize("method", list(GRADIENT))
def test_plane_on_the_ground_utm_far_off_meridian(method):
    """UTM 16N 4 degrees off its meridian, geodesic geometry: the ground map carries the
    fit's CRS-metre gradient onto true east / north (test_spacing's plane and bounds)."""
    z, transform, crs, truth = ground_plane("utm16-4deg-off")
    grid = grid_from_transform(transform, z.shape, crs)
    assert grid.ground is not None
    got = run(method, z, grid, tile=8)
    slope, aspect = np.empty(z.shape), np.empty(z.shape)
    kernels.slope(got["p"], got["q"], 0, slope)
    kernels.aspect(got["p"], got["q"], -1.0, aspect)
    check_ground(got["p"], got["q"], slope, aspect, truth)


def quadratic(X, Y):
    x, y = X - X.mean(), Y - Y.mean()
    z = 100 + 0.3 * x - 0.2 * y + 1e-3 * x * x + 2e-3 * x * y - 5e-4 * y * y
    return z, (0.3 + 2e-3 * x + 2e-3 * y, -0.2 + 2e-3 * x - 1e-3 * y,
               np.full(x.shape, 2e-3), np.full(x.shape, -1e-3), np.full(x.shape, 2e-3))


def cubic(X, Y):
    x, y = X - X.mean(), Y - Y.mean()
    z = (50 + 0.1 * x + 1e-3 * x * y + 1e-6 * x ** 3 - 2e-6 * x * x * y + 3e-6 * x * y * y
         + 1e-6 * y ** 3)
    return z, (0.1 + 1e-3 * y + 3e-6 * x * x - 4e-6 * x * y + 3e-6 * y * y,
               1e-3 * x - 2e-6 * x * x + 6e-6 * x * y + 3e-6 * y * y,
               6e-6 * x - 4e-6 * y, 6e-6 * x + 6e-6 * y, 1e-3 - 4e-6 * x + 6e-6 * y)


def assert_exact(got, truth, where, rtol=1e-9):
    for name, v in zip(OUT, truth):
        scale = np.abs(v).max()
        np.testing.assert_allclose(got[name][where], v[where], rtol=0, atol=rtol * scale,
                                   err_msg=name)


@pytest.mark.parametrize("method", SECOND)
def test_quadratic_exact(method):
    """Every method's polynomial contains the quadratics: exact p, q, r, t, s inside."""
    grid, X, Y = metre_grid(12, 13)
    z, truth = quadratic(X, Y)
    got = run(method, z, grid)
    k = lsq.reach(method)
    inner = (slice(k, -k), slice(k, -k))
    assert_exact(got, truth, inner)


def test_evans_is_not_exact_on_a_cubic():
    """(The cubic below is not a case Evans' quadratic can fit: the check has teeth.)"""
    grid, X, Y = metre_grid(12, 13)
    z, truth = cubic(X, Y)
    got = run("evans", z, grid)
    assert np.abs(got["p"][1:-1, 1:-1] - truth[0][1:-1, 1:-1]).max() > 1e-4


def test_florinsky_cubic_exact_edges_and_holes():
    """Florinsky on a cubic: exact first and second derivatives inside, and also where
    the valid cells still determine the cubic (one cell from the edge: 4 of 5 rows;
    next to a hole: 24 of 25 cells); on the outer ring the quadratic fallback is exact
    on a quadratic."""
    grid, X, Y = metre_grid(13, 14)
    z, truth = cubic(X, Y)
    z[6, 7] = np.nan
    got = run("florinsky", z, grid)
    ring = np.zeros(z.shape, bool)
    ring[1:-1, 1:-1] = True
    assert_exact(got, truth, ring & ~np.isnan(z))
    assert np.isnan(got["p"][6, 7])
    zq, tq = quadratic(X, Y)
    gq = run("florinsky", zq, grid)
    assert_exact(gq, tq, ~ring)


@pytest.mark.parametrize("method", SECOND)
@pytest.mark.parametrize("geo", ["projected", "latlon"])
def test_block_splits_bit_identical(method, geo):
    """Any tiling (seams inside the data, holes on the seams) gives the same bits."""
    rng = np.random.default_rng(11)
    rows, cols = 23, 27
    if geo == "latlon":
        grid = grid_from_coords(-84.3 + np.arange(cols) / 1200, 36.6 - np.arange(rows) / 1200,
                                "EPSG:4326")
    else:
        grid, _, _ = metre_grid(rows, cols)
    z = rng.normal(400.0, 30.0, (rows, cols)).astype(np.float32)
    z[rng.random(z.shape) < 0.08] = np.nan
    whole = run(method, z, grid)
    for tile in (3, 5, 8):
        split = run(method, z, grid, tile=tile)
        for name in OUT:
            np.testing.assert_array_equal(split[name], whole[name], err_msg=f"{name} {tile}")


@pytest.mark.parametrize("method", SECOND)
def test_float32_z_factor_and_flat(method):
    grid, X, Y = metre_grid(10, 11)
    z, _ = quadratic(X, Y)
    z64 = run(method, z, grid)
    z3 = run(method, z, grid, z_factor=0.3048)
    for name in OUT:
        np.testing.assert_allclose(z3[name], 0.3048 * z64[name], rtol=1e-12, atol=1e-18)
    flat = run(method, np.full(X.shape, 123.25, np.float32), grid)
    for name in OUT:
        v = flat[name][~np.isnan(flat[name])]
        assert v.size and np.all(v == 0)  # differences from the centre: exactly 0
    # float32 storage: float32 outputs from float64 arithmetic
    halo = lsq.reach(method)
    zpad = np.pad(z.astype(np.float32), halo, constant_values=np.nan)
    outs = [np.empty(z.shape, np.float32) for _ in OUT]
    lsq.derivatives(method, zpad, *grid.window(0, z.shape[0], 0, z.shape[1], halo), halo, 1.0,
                    *outs)
    np.testing.assert_allclose(outs[0], z64["p"], rtol=1e-5, atol=1e-6)


def test_second_derivatives_signature_and_halo():
    grid, X, Y = metre_grid(8, 9)
    z, truth = quadratic(X, Y)
    zpad = np.pad(z, 1, constant_values=np.nan)
    r, t, s = (np.empty(z.shape) for _ in range(3))
    lsq.second_derivatives("evans", zpad, *grid.window(0, 8, 0, 9, 1), 1, 1.0, r, t, s)
    np.testing.assert_allclose(r[1:-1, 1:-1], 2e-3, rtol=1e-9)
    with pytest.raises(ValueError, match="halo"):
        lsq.second_derivatives("florinsky", zpad, *grid.window(0, 8, 0, 9, 1), 1, 1.0, r, t, s)
    with pytest.raises(ValueError, match="method"):
        lsq.second_derivatives("horn", zpad, *grid.window(0, 8, 0, 9, 1), 1, 1.0, r, t, s)


def test_second_to_ground_quadratic_on_the_ground():
    """A quadratic of true ground east / north (geodesic offsets, as test_spacing's plane)
    on UTM 4 degrees off its meridian: H_ground = M H M^T recovers its constant Hessian;
    the CRS-metre Hessian, turned by the meridian convergence, does not."""
    import pyproj
    from affine import Affine

    crs = pyproj.CRS("EPSG:32616")
    to_crs = pyproj.Transformer.from_crs(crs.geodetic_crs, crs, always_xy=True)
    to_geo = pyproj.Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True)
    geod = pyproj.Geod(ellps="WGS84")
    lon0, lat0, px, rows, cols = -83.0, 36.0, 30.0, 15, 16
    x0, y0 = to_crs.transform(lon0, lat0)
    transform = Affine(px, 0, x0 - px * cols / 2, 0, -px, y0 + px * rows / 2)
    c, r = np.meshgrid(np.arange(cols) + 0.5, np.arange(rows) + 0.5)
    lon, lat = to_geo.transform(*(transform @ (c, r)))
    az, _, dist = geod.inv(np.full(lon.shape, lon0), np.full(lon.shape, lat0), lon, lat)
    E, N = dist * np.sin(np.radians(az)), dist * np.cos(np.radians(az))
    z = 300.0 + 0.1 * E + 0.05 * N + 2e-3 * E * E + 1.5e-3 * E * N - 1e-3 * N * N
    grid = grid_from_transform(transform, z.shape, "EPSG:32616")
    inner = (slice(2, -2), slice(2, -2))
    ground = run("florinsky", z, grid)
    planar = run("florinsky", z, grid, ground=False)
    for name, v in (("r", 4e-3), ("t", -2e-3), ("s", 1.5e-3)):
        np.testing.assert_allclose(ground[name][inner], v, rtol=0, atol=2e-6, err_msg=name)
    # The convergence here (~2.4 deg) turns the CRS Hessian's s by ~ (r - t) sin(2 gamma) / 2.
    assert np.abs(planar["s"][inner] - 1.5e-3).min() > 5e-5


@pytest.mark.parametrize("method", SECOND)
def test_symmetric_form_equals_the_general_loop(method, monkeypatch):
    """On a uniform grid the C loop sums mirror-image cells first (fewer products): the same
    values, to round-off, as the general loop over every cell (disabled here)."""
    grid, X, Y = metre_grid(14, 21)
    rng = np.random.default_rng(8)
    z = rng.normal(200.0, 10.0, X.shape)
    z[6, 9] = np.nan
    fast = run(method, z, grid, tile=9)
    monkeypatch.setattr(lsq, "_SYMMETRIC_OUTPUTS", set())
    lsq._cache.clear()
    slow = run(method, z, grid, tile=9)
    for name in OUT:
        np.testing.assert_array_equal(np.isnan(fast[name]), np.isnan(slow[name]))
        ok = ~np.isnan(slow[name])
        np.testing.assert_allclose(fast[name][ok], slow[name][ok], rtol=1e-11,
                                   atol=1e-12 * np.abs(slow[name][ok]).max(), err_msg=name)


@pytest.mark.parametrize("method", list(GRADIENT))
@pytest.mark.parametrize("case", ["int16 -32768", "int32 -9999"])
def test_integer_nodata_plane_in_memory_and_streamed(case, method, tmp_path):
    """test_bad_input's integer-nodata plane for the fits (there bit for bit for the
    difference stencils): nodata never enters as an elevation, in memory and streamed in
    4-pixel tiles; every valid cell with a neighbour along each axis is exact (to 1e-12),
    every other value too, holes stay NaN; the two runners agree bit for bit."""
    import terrain
    from test_bad_input import (P_TRUE, Q_TRUE, integer_plane_with_holes, neighbours_both_axes,
                                streamed_gradient)

    src, _, holes = integer_plane_with_holes(case, tmp_path / "dem.tif")
    g = terrain.gradient(terrain.open_dem(src), method=method, geometry="planar")
    p, q = g["dzdx"].values.astype(np.float64), g["dzdy"].values.astype(np.float64)
    sp, sq = streamed_gradient(src, tmp_path, method, 1, tile_size=4, threads=1)
    must = neighbours_both_axes(~holes)
    for v, s_, truth in ((p, sp, P_TRUE), (q, sq, Q_TRUE)):
        assert np.isnan(v[holes]).all()
        np.testing.assert_allclose(v[must], truth, rtol=1e-12)
        ok = ~np.isnan(v)
        np.testing.assert_allclose(v[ok], truth, rtol=1e-12)
        # The GeoTIFF holds float32 (int32 DEMs are computed in float64 in memory).
        np.testing.assert_array_equal(s_, v.astype(np.float32).astype(np.float64))


@pytest.mark.parametrize("method", list(GRADIENT))
def test_line_of_cells_gives_the_derivative_along_it(method):
    """Where the valid cells lie on the centre's row (column) only, no plane is fixed: dz/dx
    (dz/dy) still comes from a line fit along it, the other stays NaN (the difference
    methods' rule: NaN only where no difference along that axis exists)."""
    grid, X, Y = metre_grid(9, 9)
    z = 40.0 + 0.3 * X - 0.1 * Y
    z[:4, :] = np.nan
    z[5:, :] = np.nan          # one valid row
    got = run(method, z, grid)
    np.testing.assert_allclose(got["p"][4], 0.3, rtol=1e-12)
    assert np.isnan(got["q"][4]).all()
    z = 40.0 + 0.3 * X - 0.1 * Y
    z[:, :4] = np.nan
    z[:, 5:] = np.nan          # one valid column
    got = run(method, z, grid)
    np.testing.assert_allclose(got["q"][:, 4], -0.1, rtol=1e-12)
    assert np.isnan(got["p"][:, 4]).all()


def test_florinsky_planar_equals_xdem_on_the_utm_sample():
    """xDEM 0.2.3's default slope and aspect (Florinsky's 5x5 fit, planar) on an interior
    64 x 64 crop of the UTM sample, stored once by benchmarks/make_xdem_reference.py (xDEM
    is not installed here): ours with geometry="planar" agree to 1e-4 degrees."""
    import json

    import terrain
    from conftest import UTM_SAMPLE

    ref = np.load(Path(__file__).parent / "data" / "xdem_florinsky_utm16n.npz")
    meta = json.loads(str(ref["metadata"]))
    assert meta["source_shape"] == [1088, 1033] and meta["crs"] == "EPSG:32616"
    r0, c0 = int(ref["row0"]), int(ref["col0"])
    rows, cols = ref["slope"].shape
    crop = (slice(r0, r0 + rows), slice(c0, c0 + cols))
    dem = terrain.open_dem(UTM_SAMPLE)
    assert np.array_equal(dem.values[r0 - 2:r0 + rows + 2, c0 - 2:c0 + cols + 2],
                          ref["elevation"]), "the reference was made from another sample"
    slope = terrain.slope(dem, method="florinsky", geometry="planar").values[crop]
    aspect = terrain.aspect(dem, method="florinsky", geometry="planar").values[crop]
    assert np.isfinite(ref["slope"]).all() and np.isfinite(slope).all()
    assert np.abs(slope.astype(np.float64) - ref["slope"]).max() < 1e-4
    d = np.abs(aspect.astype(np.float64) - ref["aspect"]) % 360.0
    assert np.minimum(d, 360.0 - d).max() < 1e-4
