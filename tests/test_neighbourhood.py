"""TRI / TPI / roughness (terrain.neighbourhood): gdaldem, analytic surfaces, edges, holes, blocks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio

from terrain import neighbourhood
from terrain.neighbourhood import on_array

import conftest
from conftest import UTM_SAMPLE, WGS84_SAMPLE

EPS32 = 2.0 ** -23
# (our index, its algorithm, gdaldem's mode and options)
INDICES = [("tri", "riley", "TRI", ("-alg", "Riley")),
           ("tri", "wilson", "TRI", ("-alg", "Wilson")),
           ("tpi", None, "TPI", ()),
           ("roughness", None, "roughness", ())]
IDS = ["riley", "wilson", "tpi", "roughness"]


def read_nan(path):
    """Band 1 of ``path`` as float64 (the file's own type widened), NaN where GDAL masks it."""
    with rasterio.open(path) as ds:
        a = ds.read(1, masked=True)
    return a.astype(np.float64).filled(np.nan), a.dtype


def compute(z, index, algorithm, **kwargs):
    return on_array(z, index, algorithm=algorithm or "riley", **kwargs)


def tolerance(index, algorithm, zwin_max, ref):
    """gdaldem's float32 rounding. Differences of nearby float32 values are exact, so
    Riley and roughness round once (the result); Wilson sums eight float32 terms; TPI
    sums eight float32 elevations, so its error scales with the elevations."""
    if index == "tpi":
        return 16 * EPS32 * zwin_max
    if algorithm == "wilson":
        return 16 * EPS32 * np.abs(ref)
    return 2 * EPS32 * np.abs(ref)


def window_max(z):
    """max |z| over each cell's 3x3 window (NaN-free interior use only)."""
    p = np.pad(np.abs(z), 1, mode="edge")
    return np.max([p[1 + i:p.shape[0] - 1 + i, 1 + j:p.shape[1] - 1 + j]
                   for i in (-1, 0, 1) for j in (-1, 0, 1)], axis=0)


def check_vs_gdaldem(path, gdaldem, index, algorithm, mode, options):
    ref, nodata = gdaldem(mode, path, *options)
    z, dtype = read_nan(path)
    ours = compute(z.astype(dtype) if dtype == np.float32 else z, index, algorithm)
    valid = ref != nodata
    assert valid.sum() > 0.5 * np.isfinite(z).sum()
    assert np.isfinite(ours[valid]).all()
    ref64 = ref[valid].astype(np.float64)
    err = np.abs(ours[valid].astype(np.float64) - ref64)
    tol = tolerance(index, algorithm, window_max(np.nan_to_num(z))[valid], ref64)
    assert (err <= tol).all(), f"max error {err.max()} (tolerance there {tol[err.argmax()]})"
    return ours, ref, valid


@pytest.mark.parametrize("index, algorithm, mode, options", INDICES, ids=IDS)
@pytest.mark.parametrize("sample", [UTM_SAMPLE, WGS84_SAMPLE], ids=["utm-float32", "wgs84-int16"])
def test_samples_equal_gdaldem(sample, index, algorithm, mode, options, gdaldem):
    """On the interior (where gdaldem has a value) ours is gdaldem's, to its float32 rounding."""
    ours, ref, valid = check_vs_gdaldem(sample, gdaldem, index, algorithm, mode, options)
    # ... and we also give a value on gdaldem's border and around the footprint's edge
    z, _ = read_nan(sample)
    assert np.isfinite(ours[np.isfinite(z) & ~valid]).all()
    assert np.isnan(ours[np.isnan(z)]).all()


@pytest.fixture
def holed_float32(make_tif):
    """A rough float32 DEM at ~2000 m (float32 spacing 1/8192 m) with -9999 holes."""
    rng = np.random.default_rng(13)
    rows, cols = 97, 121
    y, x = np.mgrid[0:rows, 0:cols]
    z = 2000 + 40 * np.sin(x / 9.0) * np.cos(y / 13.0) + rng.normal(0, 3, (rows, cols))
    z = z.astype(np.float32)
    z[20:26, 30:41] = -9999          # a block hole
    z[60, 70] = -9999                # a single-cell hole
    z[rng.random((rows, cols)) < 0.01] = -9999
    z[:, 0] = -9999                  # a void column on the west edge
    return make_tif(z, nodata=-9999)


@pytest.mark.parametrize("index, algorithm, mode, options", INDICES, ids=IDS)
def test_generated_float32_with_nodata_equals_gdaldem(holed_float32, index, algorithm, mode,
                                                      options, gdaldem):
    ours, ref, valid = check_vs_gdaldem(holed_float32, gdaldem, index, algorithm, mode, options)
    z, _ = read_nan(holed_float32)
    # gdaldem blanks every neighbour of a hole; ours has a value wherever the centre is valid
    # and a neighbour is (no isolated valid cells here)
    assert (~valid & np.isfinite(z)).sum() > 200
    assert np.isfinite(ours[np.isfinite(z)]).all()
    assert np.isnan(ours[np.isnan(z)]).all()


def test_interior_is_the_formula_in_float64():
    """Where the whole 3x3 window is valid: gdaldem's formulas written with numpy, float64."""
    rng = np.random.default_rng(5)
    z = rng.normal(1500.0, 40.0, (23, 29))
    win = np.stack([z[1 + i:z.shape[0] - 1 + i, 1 + j:z.shape[1] - 1 + j]
                    for i in (-1, 0, 1) for j in (-1, 0, 1)])
    c, nb = win[4], np.delete(win, 4, axis=0)
    truth = {"riley": np.sqrt(((nb - c) ** 2).sum(axis=0)),
             "wilson": np.abs(nb - c).mean(axis=0),
             "tpi": c - nb.mean(axis=0),
             "roughness": win.max(axis=0) - win.min(axis=0)}
    for name, value in run_all(z).items():
        np.testing.assert_allclose(value[1:-1, 1:-1], truth[name], rtol=1e-12, atol=1e-10,
                                   err_msg=name)


# ---- analytic surfaces ---------------------------------------------------------------------

A, B = 0.7, -1.9   # z = A * col + B * row (metres per cell)


def plane(rows=9, cols=11, dtype=np.float64):
    y, x = np.mgrid[0:rows, 0:cols]
    return (100.0 + A * x + B * y).astype(dtype)


def plane_values(pairs):
    """The indices on the plane from the steps of the pairs present (each pair: +-step)."""
    steps = np.array(pairs, dtype=np.float64)
    m = 2 * len(steps)
    return {"riley": math.sqrt(8.0 / m * 2 * np.sum(steps ** 2)),
            "wilson": 2 * np.sum(np.abs(steps)) / m,
            "tpi": 0.0,
            "roughness": 2 * np.max(np.abs(steps))}


ALL_PAIRS = [A, B, A + B, A - B]  # W-E, N-S, NW-SE, NE-SW steps


def run_all(z, **kwargs):
    return {"riley": compute(z, "tri", "riley", **kwargs),
            "wilson": compute(z, "tri", "wilson", **kwargs),
            "tpi": compute(z, "tpi", None, **kwargs),
            "roughness": compute(z, "roughness", None, **kwargs)}


def test_plane_exact_inside_at_edges_and_around_holes():
    """TPI 0, roughness twice the largest step, TRI its closed form: sqrt(6 (A^2 + B^2)) and
    (|A| + |B| + |A + B| + |A - B|) / 4, at every cell but the corners (one pair drops there)."""
    z = plane()
    z[4, 5] = np.nan                      # an isolated hole: its neighbours extrapolate
    out = run_all(z)
    full = plane_values(ALL_PAIRS)
    assert full["riley"] == pytest.approx(math.sqrt(6 * (A * A + B * B)), rel=1e-15)
    assert full["wilson"] == pytest.approx((abs(A) + abs(B) + abs(A + B) + abs(A - B)) / 4)
    assert full["roughness"] == pytest.approx(2 * max(abs(s) for s in ALL_PAIRS))
    not_corner = np.ones(z.shape, bool)
    for r, c in [(0, 0), (0, -1), (-1, 0), (-1, -1)]:
        not_corner[r, c] = False
    cells = not_corner & np.isfinite(z)
    for name, value in out.items():
        np.testing.assert_allclose(value[cells], full[name], rtol=1e-12, atol=1e-12,
                                   err_msg=name)
        assert np.isnan(value[4, 5])
    # corners: NW and SE corners lose the NE-SW pair, NE and SW corners the NW-SE pair
    for (r, c), pairs in [((0, 0), [A, B, A + B]), ((-1, -1), [A, B, A + B]),
                          ((0, -1), [A, B, A - B]), ((-1, 0), [A, B, A - B])]:
        expect = plane_values(pairs)
        for name, value in out.items():
            assert value[r, c] == pytest.approx(expect[name], rel=1e-12, abs=1e-12), (name, r, c)


@pytest.mark.parametrize("index, algorithm, mode, options", INDICES, ids=IDS)
def test_plane_edges_equal_gdaldem_compute_edges(make_tif, index, algorithm, mode, options,
                                                 gdaldem):
    """On a plane gdaldem -compute_edges' border extrapolation and ours agree (not at corners,
    where gdaldem reuses the centre cell as a neighbour)."""
    z = plane(dtype=np.float32)
    ref, _ = gdaldem(mode, make_tif(z), "-compute_edges", *options)
    ours = compute(z, index, algorithm)
    inner_edge = np.zeros(z.shape, bool)
    inner_edge[[0, -1], 1:-1] = True
    inner_edge[1:-1, [0, -1]] = True
    np.testing.assert_allclose(ours[inner_edge], ref[inner_edge], rtol=4e-6, atol=1e-4)


def test_spike():
    """A single spike of height h on flat ground: at the spike TRI Riley sqrt(8) h, Wilson h,
    TPI h, roughness h; at its 8 neighbours Riley h, Wilson h / 8, TPI -h / 8, roughness h."""
    h = 37.5
    z = np.full((7, 7), 12.0)
    z[3, 3] += h
    out = run_all(z)
    at = {"riley": math.sqrt(8) * h, "wilson": h, "tpi": h, "roughness": h}
    near = {"riley": h, "wilson": h / 8, "tpi": -h / 8, "roughness": h}
    ring = np.zeros(z.shape, bool)
    ring[2:5, 2:5] = True
    ring[3, 3] = False
    for name, value in out.items():
        assert value[3, 3] == pytest.approx(at[name], rel=1e-15)
        np.testing.assert_allclose(value[ring], near[name], rtol=1e-15)
        away = np.ones(z.shape, bool)
        away[2:5, 2:5] = False
        assert (value[away] == 0).all() and not np.signbit(value[away]).any()


def test_flat_is_zero_everywhere():
    z = np.full((5, 6), 321.25, dtype=np.float32)
    for name, value in run_all(z).items():
        assert (value == 0).all(), name


def test_holes_and_isolated_cells():
    """A NaN centre stays NaN; a valid cell with no valid neighbour is NaN; one valid
    neighbour is enough (its pair extrapolates)."""
    z = np.full((6, 6), np.nan)
    z[1, 1] = 5.0                          # isolated
    z[3, 3], z[3, 4] = 10.0, 13.0          # a pair of cells
    out = run_all(z)
    for name, value in out.items():
        assert np.isnan(value[1, 1]) and np.isnan(value[0, 0]), name
        assert np.isfinite(value).sum() == 2, name
    # cell (3, 3): only the W-E pair, +3 to the east, -3 extrapolated to the west
    assert out["riley"][3, 3] == pytest.approx(math.sqrt(8.0 / 2 * 18.0))
    assert out["wilson"][3, 3] == pytest.approx(3.0)
    assert out["tpi"][3, 3] == 0.0 and out["tpi"][3, 4] == 0.0
    assert out["roughness"][3, 4] == pytest.approx(6.0)


def test_z_factor_scales_like_the_elevations():
    rng = np.random.default_rng(3)
    z = rng.normal(300.0, 20.0, (15, 17))
    z[5:7, 3:9] = np.nan
    zf = 0.3048
    for name in ("riley", "wilson", "tpi", "roughness"):
        index = "tri" if name in ("riley", "wilson") else name
        scaled = compute(z, index, name if index == "tri" else None, z_factor=zf)
        truth = compute(z * zf, index, name if index == "tri" else None)
        np.testing.assert_allclose(scaled, truth, rtol=1e-12, atol=1e-12, err_msg=name)
    # a negative factor (depths) flips TPI only
    np.testing.assert_allclose(compute(z, "tpi", None, z_factor=-1.0),
                               compute(-z, "tpi", None), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(compute(z, "roughness", None, z_factor=-2.0),
                               compute(2 * z, "roughness", None), rtol=1e-12)


# ---- blocks --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", IDS)
def test_block_splits_give_identical_bits(name, dtype):
    """Tiles of any size with a halo (1 or 2) reassemble to the whole raster's bits."""
    rng = np.random.default_rng(11)
    rows, cols = 37, 41
    z = (500 + np.cumsum(rng.normal(0, 2, (rows, cols)), axis=1)).astype(dtype)
    z[rng.random((rows, cols)) < 0.05] = np.nan
    z[10:14, 20:30] = np.nan
    index = "tri" if name in ("riley", "wilson") else name
    kwargs = {"algorithm": name} if index == "tri" else {}
    fn = getattr(neighbourhood, index)
    whole = compute(z, index, name if index == "tri" else None, z_factor=1.7)
    for halo in (1, 2):
        zpad = np.pad(z, halo, constant_values=np.nan)
        for tile in ((1, 1), (2, 3), (5, 7), (16, 9)):
            out = np.full(z.shape, -1, dtype)
            for r0 in range(0, rows, tile[0]):
                for c0 in range(0, cols, tile[1]):
                    r1, c1 = min(r0 + tile[0], rows), min(c0 + tile[1], cols)
                    block = zpad[r0:r1 + 2 * halo, c0:c1 + 2 * halo]
                    fn(block, halo, 1.7, out[r0:r1, c0:c1], **kwargs)
            assert out.tobytes() == whole.tobytes(), (halo, tile)


def test_storage_types_and_outputs():
    z = plane(dtype=np.float32)
    zpad = np.pad(z, 1, constant_values=np.nan)
    out32 = np.empty(z.shape, np.float32)
    neighbourhood.roughness(zpad, 1, 1.0, out32)
    out64 = np.empty(z.shape, np.float64)            # a float32 block into a float64 array
    neighbourhood.roughness(zpad, 1, 1.0, out64)
    np.testing.assert_array_equal(out64, out32.astype(np.float64))
    strided = np.empty((z.shape[0], 2 * z.shape[1]))[:, ::2]   # a non-contiguous output
    y, x = np.mgrid[0:z.shape[0], 0:z.shape[1]]
    zint = np.pad(3 * x - 2 * y, 1, mode="reflect", reflect_type="odd").astype(np.int32)
    neighbourhood.tpi(zint, 1, 1.0, strided)   # integers compute in float64; a plane: TPI 0
    assert (strided == 0).all()


def test_bad_arguments():
    z = np.zeros((6, 6))
    with pytest.raises(ValueError, match="halo"):
        neighbourhood.tpi(z, 0, 1.0, np.empty((6, 6)))
    with pytest.raises(ValueError, match="shape"):
        neighbourhood.tpi(z, 1, 1.0, np.empty((5, 5)))
    with pytest.raises(ValueError, match="algorithm"):
        neighbourhood.tri(z, 1, 1.0, np.empty((4, 4)), algorithm="sappington")
    with pytest.raises(ValueError, match="index"):
        on_array(z, "slope")


# ---- the products (terrain/registry.py): CLI, API, runners -----------------------------------

PRODUCT_CASES = [("tri", ("--tri-algorithm", "riley"), "riley", "TRI", ("-alg", "Riley")),
                 ("tri", ("--tri-algorithm", "wilson"), "wilson", "TRI", ("-alg", "Wilson")),
                 ("tpi", (), None, "TPI", ()),
                 ("roughness", (), None, "roughness", ())]


def invoke(*args):
    result = conftest.invoke(*args)
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize("name, options, algorithm, mode, gdal_options", PRODUCT_CASES, ids=IDS)
def test_cli_command_equals_gdaldem_and_the_kernel(tmp_path, gdaldem, name, options, algorithm,
                                                    mode, gdal_options):
    """`terrain tri|tpi|roughness DEM -o out.tif` (streamed in 100-px tiles): gdaldem's values
    where gdaldem has one, and bit for bit the kernel on the whole raster."""
    out = tmp_path / f"{name}.tif"
    invoke(name, UTM_SAMPLE, "-o", out, "--tile-size", 100, *options)
    ref, nodata = gdaldem(mode, UTM_SAMPLE, *gdal_options)
    with rasterio.open(out) as ds:
        got, got_nodata, units, desc = ds.read(1), ds.nodata, ds.units[0], ds.descriptions[0]
    assert got.dtype == np.float32 and got_nodata == -9999
    assert units == "metres" and desc == name
    valid = ref != nodata
    z, _ = read_nan(UTM_SAMPLE)
    err = np.abs(got[valid].astype(np.float64) - ref[valid])
    tol = tolerance(name, algorithm, window_max(np.nan_to_num(z))[valid], ref[valid].astype(float))
    assert (err <= tol).all()
    expect = compute(z.astype(np.float32), name, algorithm)
    np.testing.assert_array_equal(got, np.where(np.isnan(expect), np.float32(-9999), expect))


def test_api_in_memory_and_dask_give_the_same_bits():
    import terrain

    dem = terrain.open_dem(UTM_SAMPLE)
    lazy = terrain.open_dem(UTM_SAMPLE, chunks=128)
    z = dem.values
    for name, fn, kwargs in [("riley", terrain.tri, {}), ("wilson", terrain.tri,
                                                          {"algorithm": "wilson"}),
                             ("tpi", terrain.tpi, {}), ("roughness", terrain.roughness, {})]:
        eager = fn(dem, **kwargs)
        assert eager.attrs["units"] == "metres" and eager.dims == dem.dims
        index = "tri" if name in ("riley", "wilson") else name
        np.testing.assert_array_equal(eager.values, compute(z, index, kwargs.get("algorithm")))
        np.testing.assert_array_equal(fn(lazy, **kwargs).compute().values, eager.values)


def test_z_factor_from_the_band_unit(make_tif):
    """Elevations in feet (band unit 'ft'): the indices come out in metres."""
    import terrain

    rng = np.random.default_rng(2)
    z = rng.normal(1000.0, 30.0, (40, 50)).astype(np.float32)
    path = make_tif(z)
    with rasterio.open(path, "r+") as ds:
        ds.set_band_unit(1, "ft")
    metres = z.astype(np.float64) * 0.3048
    dem = terrain.open_dem(path)
    for fn, index in [(terrain.tri, "tri"), (terrain.tpi, "tpi"),
                      (terrain.roughness, "roughness")]:
        got = fn(dem)
        assert got.attrs["z_factor"] == pytest.approx(0.3048)
        np.testing.assert_allclose(got.values, compute(metres, index, None), rtol=1e-6,
                                   atol=1e-3)


def test_analyze_writes_the_indices(tmp_path):
    invoke("analyze", UTM_SAMPLE, "-d", tmp_path, "--products", "tri,tpi,roughness",
           "--tri-algorithm", "wilson", "--dpi", "40")
    z, _ = read_nan(UTM_SAMPLE)
    for name in ("tri", "tpi", "roughness"):
        # analyze draws a map of each (small ones: their size is not what is tested here)
        assert (tmp_path / f"{UTM_SAMPLE.stem}_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with rasterio.open(tmp_path / f"{UTM_SAMPLE.stem}_{name}.tif") as ds:
            got = ds.read(1, masked=True).filled(np.nan)
        np.testing.assert_array_equal(got, compute(z.astype(np.float32), name, "wilson"))


def test_bad_tri_algorithm_is_a_terrain_error():
    import terrain

    with pytest.raises(terrain.TerrainError, match="TRI algorithm 'foo'"):
        terrain.tri(np.zeros((4, 4)), algorithm="foo", spacing=(1.0, 1.0))
