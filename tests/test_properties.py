"""Property tests (issue 5): random grids, orientations, CRS kinds and nodata masks.

Hypothesis draws the raster: 2..40 x 2..40 cells, pixel sizes 0.5..1000 m (not
square), north-up or south-up, a projected metre CRS (EPSG:32616), a US-foot one
(EPSG:2264) or geographic EPSG:4326 at latitudes within +-80, and a random nodata
mask (NaN without a tag, or a -9999 tag). Truths are independent of the library:

- planes z = z0 + a E + b N with E, N the metres east and north, computed from the
  transform and the CRS unit (projected: CRS metres, so those tests run with
  ``geometry="planar"``; ground planes on projected grids are in test_spacing.py),
  or from ``pyproj.Geod`` distances (geographic: E along each row's parallel, N
  along the meridian);
- exact rotations of the plane's coefficients and of the raster (np.rot90);
- the raster flipped upside down with its transform;
- the in-memory library result for the tiled, multi-threaded file runner.

Planes must be exact (to 1e-6 of the gradient's magnitude, float64 files) at every
valid cell that has a valid neighbour along each axis; other cells are NaN or exact.

Geographic exactness: on the ellipsoid the meridians converge, so the surface
z = a E + b N (E measured along each parallel) is not a plane when a != 0: its
northward derivative at a column away from the origin is b + a dE/dN, not b, and
a three-point difference of it is not exact. dzdx of that surface *is* exactly a
(each row is linear in E, and every stencil uses each row's own spacing), and the
xscale-independent surface z = z0 + b N has dzdx = 0 and dzdy = b exactly. Those
are what the geographic examples check.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass

import numpy as np
import pyproj
import rasterio
from affine import Affine
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import terrain
from conftest import METHODS, write_tif
from terrain.engine import Options, RunOptions
from terrain.stream import process_file

FTUS = 1200.0 / 3937.0  # metres per US survey foot (definition)
GEOD = pyproj.Geod(ellps="WGS84")
CRS = {"utm": "EPSG:32616", "ftUS": "EPSG:2264", "wgs84": "EPSG:4326"}
PRODUCTS = ("dzdx", "dzdy", "slope", "aspect", "hillshade")

SETTINGS = settings(max_examples=40, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Grid:
    kind: str
    shape: tuple
    transform: Affine

    @property
    def crs(self):
        return CRS[self.kind]


@st.composite
def grids(draw, kinds=tuple(CRS), square=False):
    rows, cols = draw(st.integers(2, 40)), draw(st.integers(2, 40))
    kind = draw(st.sampled_from(kinds))
    south_up = draw(st.booleans())
    if kind == "wgs84":
        dx = draw(st.floats(1e-4, 1e-2))  # degrees: about 11 m .. 1.1 km (less in longitude)
        dy = dx if square else draw(st.floats(1e-4, 1e-2))
        x0 = draw(st.floats(-179.0, 170.0))
        top = draw(st.floats(-80.0, 80.0)) + rows * dy / 2
    else:
        unit = 1.0 if kind == "utm" else FTUS
        dxm = draw(st.floats(0.5, 1000.0))
        dym = dxm if square else draw(st.floats(0.5, 1000.0))
        dx, dy = dxm / unit, dym / unit
        x0, top = (731000.0, 4069000.0) if kind == "utm" else (2000000.0, 700000.0)
    if south_up:
        transform = Affine(dx, 0, x0, 0, dy, top - rows * dy)
    else:
        transform = Affine(dx, 0, x0, 0, -dy, top)
    return Grid(kind, (rows, cols), transform)


def centres(g: Grid):
    rows, cols = g.shape
    t = g.transform
    return t.c + (np.arange(cols) + 0.5) * t.a, t.f + (np.arange(rows) + 0.5) * t.e


def ground(g: Grid):
    """(E, N): ground metres east and north of the first pixel centre, per cell."""
    x, y = centres(g)
    rows, cols = g.shape
    if g.kind != "wgs84":
        unit = 1.0 if g.kind == "utm" else FTUS
        east, north = np.meshgrid((x - x[0]) * unit, (y - y[0]) * unit)
        return east, north
    east = np.zeros(g.shape)
    for i in range(rows):
        lat = np.full(cols - 1, y[i])
        steps = GEOD.inv(x[:-1], lat, x[1:], lat)[2]
        east[i, 1:] = np.cumsum(steps)
    d = GEOD.inv(np.full(rows, x[0]), np.full(rows, y[0]), np.full(rows, x[0]), y)[2]
    north = np.repeat((np.sign(y - y[0]) * d)[:, None], cols, axis=1)
    return east, north


@st.composite
def masks(draw, shape):
    seed = draw(st.integers(0, 2**32 - 1))
    density = draw(st.sampled_from([0.0, 0.05, 0.2, 0.5]))
    return np.random.default_rng(seed).random(shape) < density


def write(folder, name, z, g: Grid, void, encoding):
    z = np.array(z, np.float64)
    if encoding == "nan":
        z[void] = np.nan
        return write_tif(os.path.join(folder, name), z, transform=g.transform, crs=g.crs)
    z[void] = -9999.0
    return write_tif(os.path.join(folder, name), z, transform=g.transform, crs=g.crs,
                     nodata=-9999.0)


def neighbours_both_axes(valid):
    pad = np.pad(valid, 1, constant_values=False)
    return valid & (pad[1:-1, :-2] | pad[1:-1, 2:]) & (pad[:-2, 1:-1] | pad[2:, 1:-1])


def check_exact(v, truth, valid, tol, what):
    v = np.asarray(v, np.float64)
    must = neighbours_both_axes(valid)
    err = np.abs(v - truth)
    assert np.isnan(v[~valid]).all(), f"{what}: a value on a nodata cell"
    assert np.isfinite(v[must]).all(), f"{what}: NaN at a cell with neighbours on both axes"
    assert (err[must] <= tol).all(), f"{what}: max error {err[must].max()} > {tol}"
    extra = valid & ~must & ~np.isnan(v)
    assert (err[extra] <= tol).all(), f"{what}: a fallback value is wrong"


def angular_diff(a, b):
    d = np.abs(np.asarray(a) - np.asarray(b)) % 360.0
    return np.minimum(d, 360.0 - d)


def assert_same_products(expected, actual, names):
    """``actual`` equals ``expected`` (both {name: array} on the same cells) up to the
    round-off of pixel-centre coordinates: near 4e6 m they carry ~1e-9 m of rounding,
    which moves a difference by up to ~1e-7 of the largest gradient, propagated to the
    products (|d slope| <= |d gradient| in radians; hillshade is float32)."""
    g = np.hypot(expected["dzdx"], expected["dzdy"])
    eps = 1e-7 * (np.nanmax(g) if np.isfinite(g).any() else 1.0) + 1e-12
    for name in names:
        v0, v1 = np.asarray(expected[name]), np.asarray(actual[name])
        assert np.array_equal(np.isnan(v0), np.isnan(v1)), f"{name}: nodata differs"
        if name == "aspect":
            ok = np.isfinite(v0) & (g > 1e3 * eps)
            allowed = np.degrees(2 * eps / g[ok]) + 1e-6
            assert (angular_diff(v0[ok], v1[ok]) <= allowed).all(), name
        else:
            atol = {"dzdx": eps, "dzdy": eps, "slope": math.degrees(eps),
                    "hillshade": 3e-5 + 254 * eps}[name]
            np.testing.assert_allclose(v1, v0, rtol=0, atol=atol, err_msg=name)


coefficient = st.floats(-3.0, 3.0, allow_subnormal=False)


# --------------------------------------------------------------------------------------
# Planes are exact
# --------------------------------------------------------------------------------------

@SETTINGS
@given(data=st.data(), g=grids(), a=coefficient, b=coefficient,
       method=st.sampled_from(METHODS), edge_order=st.sampled_from([1, 2]),
       encoding=st.sampled_from(["nan", "tag"]))
def test_plane_exact(data, g, a, b, method, edge_order, encoding):
    void = data.draw(masks(g.shape), "mask")
    east, north = ground(g)
    tol = 1e-6 * math.hypot(a, b) + 1e-9
    with tempfile.TemporaryDirectory() as tmp:
        src = write(tmp, "plane.tif", 300.0 + a * east + b * north, g, void, encoding)
        res = terrain.compute(terrain.open_dem(src), ("dzdx", "dzdy"), method=method,
                              edge_order=edge_order, geometry="planar")
        check_exact(res["dzdx"].values, a, ~void, tol, "dzdx")
        if g.kind != "wgs84":
            check_exact(res["dzdy"].values, b, ~void, tol, "dzdy")
            return
        # Geographic: the xscale-independent surface z = z0 + b N (see the module docstring).
        src = write(tmp, "north.tif", 300.0 + b * north, g, void, encoding)
        res = terrain.compute(terrain.open_dem(src), ("dzdx", "dzdy"), method=method,
                              edge_order=edge_order, geometry="planar")
        check_exact(res["dzdx"].values, 0.0, ~void, tol, "dzdx (north-only surface)")
        check_exact(res["dzdy"].values, b, ~void, tol, "dzdy (north-only surface)")


# --------------------------------------------------------------------------------------
# Aspect rotates with the surface
# --------------------------------------------------------------------------------------

@SETTINGS
@given(data=st.data(), g=grids(kinds=("utm", "ftUS")), a=coefficient, b=coefficient,
       theta=st.floats(0.0, 360.0, exclude_max=True), method=st.sampled_from(METHODS),
       edge_order=st.sampled_from([1, 2]))
def test_aspect_rotates_with_plane(data, g, a, b, theta, method, edge_order):
    """Rotating the plane's gradient by theta (clockwise) adds theta to its aspect.

    Projected grids only: on geographic grids a != 0 is not a plane (module docstring).
    """
    assume(math.hypot(a, b) >= 0.01)
    void = data.draw(masks(g.shape), "mask")
    t = math.radians(theta)
    a2, b2 = a * math.cos(t) + b * math.sin(t), b * math.cos(t) - a * math.sin(t)
    east, north = ground(g)
    must = neighbours_both_axes(~void)
    allowed = math.degrees(2e-6) + 1e-6
    with tempfile.TemporaryDirectory() as tmp:
        aspects = []
        for k, (p, q) in enumerate(((a, b), (a2, b2))):
            src = write(tmp, f"p{k}.tif", 300.0 + p * east + q * north, g, void, "nan")
            asp = terrain.aspect(terrain.open_dem(src), method=method, edge_order=edge_order,
                                 geometry="planar")
            asp = asp.values
            truth = (math.degrees(math.atan2(-p, -q)) + 360.0) % 360.0
            assert (angular_diff(asp[must], truth) <= allowed).all()
            assert ((asp[must] >= 0) & (asp[must] < 360)).all()
            aspects.append(asp)
    rotated = (aspects[0] + theta) % 360.0
    assert (angular_diff(aspects[1][must], rotated[must]) <= 2 * allowed).all()


@SETTINGS
@given(data=st.data(), g=grids(kinds=("utm", "ftUS"), square=True),
       method=st.sampled_from(METHODS), edge_order=st.sampled_from([1, 2]))
def test_rot90_rotates_aspect_of_any_surface(data, g, method, edge_order):
    """np.rot90 of a random surface (square pixels, voids rotated too) turns the terrain by
    90 degrees: anticlockwise on a north-up grid (row 0 north), clockwise on a south-up
    one. Aspect turns with it (-90 or +90), slope is unchanged, and (dzdx, dzdy) becomes
    (-dzdy, dzdx) (anticlockwise) or (dzdy, -dzdx) (clockwise) of the original."""
    void = data.draw(masks(g.shape), "mask")
    seed = data.draw(st.integers(0, 2**32 - 1), "surface")
    z = 300.0 + np.random.default_rng(seed).normal(0, 20.0, g.shape)
    rows, cols = g.shape
    rot = Grid(g.kind, (cols, rows), g.transform)
    with tempfile.TemporaryDirectory() as tmp:
        r0 = terrain.compute(terrain.open_dem(write(tmp, "z.tif", z, g, void, "nan")), PRODUCTS,
                             method=method, edge_order=edge_order, geometry="planar")
        r1 = terrain.compute(terrain.open_dem(write(tmp, "r.tif", np.rot90(z), rot,
                                                    np.rot90(void), "nan")),
                             PRODUCTS, method=method, edge_order=edge_order, geometry="planar")
    turn = -1.0 if g.transform.e < 0 else 1.0  # compass sense of the ground rotation
    p0, q0 = np.rot90(r0["dzdx"].values), np.rot90(r0["dzdy"].values)
    expected = {"dzdx": turn * q0, "dzdy": -turn * p0, "slope": np.rot90(r0["slope"].values),
                "aspect": (np.rot90(r0["aspect"].values) + turn * 90.0) % 360.0}
    actual = {name: r1[name].values for name in expected}
    # Hillshade is left out: the light does not turn with the terrain.
    assert_same_products(expected, actual, ("dzdx", "dzdy", "slope", "aspect"))


# --------------------------------------------------------------------------------------
# North-up <-> south-up: the same ground, the same answers
# --------------------------------------------------------------------------------------

@SETTINGS
@given(data=st.data(), g=grids(), method=st.sampled_from(METHODS),
       edge_order=st.sampled_from([1, 2]))
def test_flip_with_transform_changes_nothing(data, g, method, edge_order):
    void = data.draw(masks(g.shape), "mask")
    seed = data.draw(st.integers(0, 2**32 - 1), "surface")
    z = 300.0 + np.random.default_rng(seed).normal(0, 20.0, g.shape)
    rows = g.shape[0]
    t = g.transform
    flipped = Grid(g.kind, g.shape, Affine(t.a, 0, t.c, 0, -t.e, t.f + rows * t.e))
    with tempfile.TemporaryDirectory() as tmp:
        r0 = terrain.compute(terrain.open_dem(write(tmp, "z.tif", z, g, void, "nan")), PRODUCTS,
                             method=method, edge_order=edge_order)
        r1 = terrain.compute(terrain.open_dem(write(tmp, "f.tif", z[::-1], flipped, void[::-1],
                                                    "tag")),
                             PRODUCTS, method=method, edge_order=edge_order)
    # The two files cover the same ground: same centres, row order reversed.
    assert np.allclose(r1["dzdx"].y.values[::-1], r0["dzdx"].y.values, rtol=1e-12,
                       atol=1e-6 * abs(t.e))
    assert_same_products({n: r0[n].values for n in PRODUCTS},
                         {n: r1[n].values[::-1] for n in PRODUCTS}, PRODUCTS)


# --------------------------------------------------------------------------------------
# Tiled equals whole
# --------------------------------------------------------------------------------------

@settings(SETTINGS, max_examples=25)
@given(data=st.data(), g=grids(), method=st.sampled_from(METHODS),
       edge_order=st.sampled_from([1, 2]), threads=st.sampled_from([1, 2]))
def test_tiled_equals_whole(data, g, method, edge_order, threads):
    void = data.draw(masks(g.shape), "mask")
    seed = data.draw(st.integers(0, 2**32 - 1), "surface")
    tile = data.draw(st.integers(1, max(g.shape) + 3), "tile")
    z = 300.0 + np.random.default_rng(seed).normal(0, 20.0, g.shape)
    with tempfile.TemporaryDirectory() as tmp:
        src = write(tmp, "z.tif", z, g, void, "tag")
        whole = terrain.compute(terrain.open_dem(src), PRODUCTS, method=method,
                                edge_order=edge_order)
        outputs = {k: os.path.join(tmp, f"{k}.tif")
                   for k in ("slope", "aspect", "gradient", "hillshade")}
        process_file(src, outputs, Options(method=method, edge_order=edge_order),
                     run=RunOptions(tile_size=tile, threads=threads))
        files = {}
        for kind, path in outputs.items():
            with rasterio.open(path) as ds:
                files[kind] = ds.read()
    for kind, names in (("slope", ("slope",)), ("aspect", ("aspect",)),
                        ("gradient", ("dzdx", "dzdy"))):
        for k, name in enumerate(names):
            v = whole[name].values
            expected = np.where(np.isnan(v), np.float32(-9999), v.astype(np.float32))
            assert np.array_equal(files[kind][k].view(np.uint32), expected.view(np.uint32)), \
                f"{name}, tile {tile}"
    h = whole["hillshade"].values
    expected = np.where(np.isnan(h), 0, np.floor(h + 0.5)).astype(np.uint8)
    assert np.array_equal(files["hillshade"][0], expected)
