"""Curvatures (terrain/curvatures.py) against closed forms: a dome and a saddle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from terrain import lsq
from terrain.curvatures import KINDS, curvature_from_derivatives
from terrain.spacing import grid_from_coords

R = 3000.0


def curv(kind, p, q, r, t, s):
    out = np.empty(np.shape(p))
    return curvature_from_derivatives(kind, p, q, r, t, s, out)


def sphere(x, y):
    """z of a dome of radius R centred at (0, 0) and its exact derivatives."""
    h = np.sqrt(R * R - x * x - y * y)
    p, q = -x / h, -y / h
    r = -(R * R - y * y) / h ** 3
    t = -(R * R - x * x) / h ** 3
    s = -x * y / h ** 3
    return h, (p, q, r, t, s)


def test_dome_closed_forms_everywhere():
    """Every normal curvature of a sphere is 1/R: profile = tangential = mean = minimal =
    maximal = 1/R, gaussian = 1/R^2; its contours are circles of radius rho, plan = 1/rho.
    (The exact derivatives of the sphere, so this checks the formulas and their signs.)"""
    x, y = np.meshgrid(np.linspace(-2000, 2000, 21), np.linspace(-1500, 1800, 19))
    keep = np.hypot(x, y) > 0
    x, y = x[keep], y[keep]
    _, d = sphere(x, y)
    for kind in ("profile", "tangential", "mean"):
        np.testing.assert_allclose(curv(kind, *d), 1 / R, rtol=1e-9, err_msg=kind)
    # An umbilic (H^2 = K): the root of a difference that is 0 up to rounding, ~1e-8 H.
    for kind in ("minimal", "maximal"):
        np.testing.assert_allclose(curv(kind, *d), 1 / R, rtol=1e-7, err_msg=kind)
    np.testing.assert_allclose(curv("gaussian", *d), 1 / R ** 2, rtol=1e-9)
    np.testing.assert_allclose(curv("plan", *d), 1 / np.hypot(x, y), rtol=1e-9)
    # Upside down (a bowl): every sign flips, gaussian stays positive.
    neg = tuple(-a for a in d)
    np.testing.assert_allclose(curv("mean", *neg), -1 / R, rtol=1e-9)
    np.testing.assert_allclose(curv("plan", *neg), -1 / np.hypot(x, y), rtol=1e-9)
    np.testing.assert_allclose(curv("gaussian", *neg), 1 / R ** 2, rtol=1e-9)


def test_cylinder_profile_and_plan():
    """A ridge z = -x^2 / (2 R) seen along y: convex across (profile along the slope line,
    which runs in x, is negative r / w^1.5 with the sign flipped: positive), straight along
    its contours (plan and tangential 0), gaussian 0, minimal 0."""
    x = np.array([-300.0, -50.0, 80.0, 400.0])
    p, r = -x / R, np.full(x.shape, -1 / R)
    z0 = np.zeros(x.shape)
    w = 1 + p * p
    np.testing.assert_allclose(curv("profile", p, z0, r, z0, z0), 1 / (R * w ** 1.5), rtol=1e-12)
    for kind in ("plan", "tangential", "gaussian", "minimal"):
        np.testing.assert_allclose(curv(kind, p, z0, r, z0, z0), 0, atol=1e-18, err_msg=kind)
    np.testing.assert_allclose(curv("maximal", p, z0, r, z0, z0), 1 / (R * w ** 1.5), rtol=1e-12)


def test_flat_cells_and_nan():
    """p = q = 0: profile, tangential, plan are 0 (documented choice); the others from r, t, s.
    NaN anywhere gives NaN."""
    z = np.zeros(3)
    r, t, s = np.array([1e-3, -2e-3, np.nan]), np.array([2e-3, 1e-3, 0.0]), np.zeros(3)
    for kind in ("profile", "tangential", "plan"):
        v = curv(kind, z, z, r, t, s)
        np.testing.assert_array_equal(v[:2], 0.0)
        assert np.isnan(v[2])
    np.testing.assert_allclose(curv("mean", z, z, r, t, s)[:2], [-1.5e-3, 0.5e-3])
    np.testing.assert_allclose(curv("gaussian", z, z, r, t, s)[:2], [2e-6, -2e-6])
    assert np.isnan(curv("gaussian", z, z, r, t, s)[2])
    with pytest.raises(ValueError, match="curvature"):
        curv("total", z, z, r, t, s)


def fitted(method, z, x, y):
    """p, q, r, t, s of the whole of z on the (x, y) grid by the method."""
    grid = grid_from_coords(x, y)
    k = lsq.reach(method)
    zpad = np.pad(z, k, constant_values=np.nan)
    outs = [np.empty(z.shape) for _ in range(5)]
    lsq.derivatives(method, zpad, *grid.window(0, z.shape[0], 0, z.shape[1], k), k, 1.0, *outs)
    return outs


@pytest.mark.parametrize("method", ["zevenbergen-thorne", "evans", "florinsky"])
def test_sphere_cap_top(method):
    """A 30 m DEM of a dome of radius 3 km, summit on a cell: H = 1/R, K = 1/R^2 at the top
    (to the fit's h^2 / R^2 = 1e-4), minimal = maximal = 1/R."""
    x = np.arange(-10, 11) * 30.0
    y = -x
    X, Y = np.meshgrid(x, y)
    z, _ = sphere(X, Y)
    d = [a[10, 10] for a in fitted(method, z, x, y)]
    assert abs(d[0]) < 1e-12 and abs(d[1]) < 1e-12
    assert curv("mean", *d) == pytest.approx(1 / R, rel=1e-3)
    assert curv("gaussian", *d) == pytest.approx(1 / R ** 2, rel=2e-3)
    assert curv("minimal", *d) == pytest.approx(1 / R, rel=1e-3)
    assert curv("maximal", *d) == pytest.approx(1 / R, rel=1e-3)
    # Off the summit, every cell: mean curvature 1/R, profile 1/R, plan 1/rho.
    dd = fitted(method, z, x, y)
    k = lsq.reach(method)
    inner = (slice(k, -k), slice(k, -k))
    rho = np.hypot(X, Y)[inner]
    np.testing.assert_allclose(curv("mean", *dd)[inner], 1 / R, rtol=2e-3)
    off = rho > 100
    np.testing.assert_allclose(curv("profile", *dd)[inner][off], 1 / R, rtol=5e-3)
    np.testing.assert_allclose(curv("plan", *dd)[inner][off], 1 / rho[off], rtol=5e-3)


@pytest.mark.parametrize("method", ["zevenbergen-thorne", "evans", "florinsky"])
def test_saddle_centre(method):
    """z = (x^2 - y^2) / (2 R): at the centre K = -1/R^2, H = 0, minimal -1/R, maximal 1/R
    (a quadratic: every method is exact there)."""
    x = np.arange(-6, 7) * 30.0
    y = -np.arange(-5, 6) * 25.0
    X, Y = np.meshgrid(x, y)
    z = (X * X - Y * Y) / (2 * R) + 100.0
    d = [a[5, 6] for a in fitted(method, z, x, y)]
    assert curv("gaussian", *d) == pytest.approx(-1 / R ** 2, rel=1e-9)
    assert abs(curv("mean", *d)) < 1e-12
    assert curv("minimal", *d) == pytest.approx(-1 / R, rel=1e-9)
    assert curv("maximal", *d) == pytest.approx(1 / R, rel=1e-9)


def test_every_kind_keeps_nan_and_dtype():
    rng = np.random.default_rng(2)
    d = [rng.normal(0, 0.1, 50) for _ in range(2)] + [rng.normal(0, 1e-3, 50) for _ in range(3)]
    d[2][7] = np.nan
    for kind in KINDS:
        out = np.empty(50, np.float32)
        curvature_from_derivatives(kind, *d, out)
        assert np.isnan(out[7]) and np.isfinite(np.delete(out, 7)).all()
        ref = curv(kind, *d)
        np.testing.assert_allclose(out, ref.astype(np.float32), rtol=1e-6)


def test_curvature_product_through_the_engine_and_cli(tmp_path):
    """terrain.curvature and `terrain curvature` on a dome GeoTIFF (UTM, ground geometry):
    1/R inside, the same numbers for any tile size, the file's unit and description."""
    import subprocess
    import sys

    import rasterio
    from affine import Affine

    import terrain
    from conftest import write_tif
    from terrain import registry
    from terrain.engine import Options, run_in_memory
    from terrain.spacing import grid_from_transform

    x = np.arange(-15, 16) * 30.0
    X, Y = np.meshgrid(x, -x)
    z, _ = sphere(X, Y)
    transform = Affine(30.0, 0, 500000.0, 0, -30.0, 4000000.0)
    src = write_tif(tmp_path / "dome.tif", z.astype(np.float64), transform=transform)
    h = terrain.curvature(terrain.open_dem(src), kind="mean").values
    np.testing.assert_allclose(h[2:-2, 2:-2], 1 / R, rtol=2e-3)
    grid = grid_from_transform(transform, z.shape, "EPSG:32616")
    for method in ("florinsky", "evans", "zevenbergen-thorne"):
        opts = Options(method=method, kind="gaussian")
        whole = run_in_memory(z, grid, opts, ("curvature",), tile=512)["curvature"]
        tiled = run_in_memory(z, grid, opts, ("curvature",), tile=5, threads=2)["curvature"]
        np.testing.assert_array_equal(tiled, whole)
        np.testing.assert_allclose(whole[2:-2, 2:-2], 1 / R ** 2, rtol=5e-3)
    assert registry.CURVATURE_KINDS == KINDS
    out = tmp_path / "plan.tif"
    terrain_exe = str(Path(sys.executable).with_name("terrain"))
    res = subprocess.run([terrain_exe, "curvature", src, "-o", str(out), "--kind", "profile",
                          "--method", "evans"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    with rasterio.open(out) as ds:
        prof = ds.read(1, masked=True)
        assert ds.units[0] == "1/m" and ds.descriptions[0] == "curvature"
    off = (np.hypot(X, Y) > 0)[2:-2, 2:-2]   # the summit is flat: profile 0 there
    np.testing.assert_allclose(prof[2:-2, 2:-2][off], 1 / R, rtol=5e-3)
    assert prof[15, 15] == 0.0
    res = subprocess.run([terrain_exe, "curvature", src, "-o", str(tmp_path / "h.tif"),
                          "--method", "horn"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "no second derivatives" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "h.tif").exists()
