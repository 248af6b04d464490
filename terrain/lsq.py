"""Local polynomial fits: Evans-Young, Florinsky, and second derivatives.

Each method fits a polynomial in ground metres to the window around a cell by
least squares and reads the derivatives at the centre off its coefficients:

- ``evans`` (Evans-Young): quadratic, 3x3 window (reach 1);
- ``florinsky`` (Florinsky 2009): cubic, 5x5 window (reach 2);
- ``zevenbergen-thorne`` (second derivatives only): the 9-term biquadratic that
  interpolates the 3x3 window, i.e. Zevenbergen and Thorne's classic formulas
  on a uniform grid: r = 2D = (d + f - 2e)/L^2, t = 2E = (b + h - 2e)/L^2,
  s = F = (c + g - a - i)/(4 L^2) (a b c / d e f / g h i the window, north row first).

The fit uses the TRUE position of every cell of the window, as the other
kernels do (see :mod:`terrain.kernels` and :mod:`terrain.spacing`): for the cell
at row offset dr and column offset dc, x = (xpos[j + dc] - xpos[j]) * xscale[i + dr]
(each window row at its own ground scale, so lat/lon grids are exact) and
y = ypos[i + dr] - ypos[i] (north). The weights are those of the pseudo-inverse
of the design matrix, applied to the differences from the centre cell (a flat
window gives exactly 0), so each is exact for every polynomial its fit contains,
on projected and lat/lon grids alike. Positions are rounded to 32 significant bits
before the weights are built (offsets a few ulps apart share one set of weights,
which keeps the number of distinct sets small; the effect is below 3e-10 relative).

Weights depend only on a cell's own geometry (and, in the fallback, on which of
its window's cells are valid): they are computed by a modified Gram-Schmidt QR
in plain element-wise float64 numpy with a fixed order of operations, cached by
geometry, and applied by ``terrain/_clsq.c`` (GIL released) in one fixed order,
so results are identical bit for bit for any block size or runner.

Fallback where the window has missing cells (NaN: nodata, beyond the raster):
the same polynomial is fitted to the valid cells when they determine it, else a
quadratic, else a plane (exact planes at edges and next to holes, as the other
methods), else (valid cells on the centre's row or column only) a line fit along
it for that axis's derivative, else NaN. A fit counts as determined when its
scaled design matrix's singular values are within 1e-3 of each other in ratio. Second derivatives need at least a quadratic: where only a
plane is determined they are NaN (a plane would claim zero curvature without
measuring any). A NaN centre stays NaN.
"""

from __future__ import annotations

import threading

import numpy as np

from . import _clsq

# Terms x^a y^b of each polynomial, as (a, b).
PLANE = ((0, 0), (1, 0), (0, 1))
QUADRATIC = PLANE + ((2, 0), (1, 1), (0, 2))
CUBIC = QUADRATIC + ((3, 0), (2, 1), (1, 2), (0, 3))
BIQUADRATIC = QUADRATIC + ((2, 1), (1, 2), (2, 2))

# method: (reach in cells, polynomial)
FITS = {
    "evans": (1, QUADRATIC),
    "florinsky": (2, CUBIC),
    "zevenbergen-thorne": (1, BIQUADRATIC),
}
# Outputs, in the weight arrays' order: p = dz/dx, q = dz/dy, r = d2z/dx2,
# t = d2z/dy2, s = d2z/dxdy (x east, y north before any ground map).
OUTPUTS = ("p", "q", "r", "t", "s")
_GEOMETRY_BITS = 32
# A fit is determined when the smallest singular value of its (scaled) design matrix
# is at least this fraction of the largest: windows that fix the polynomial give
# 0.02 or more (5x5 cubic: 0.07, with random holes >= 0.02), undetermined ones
# 1e-16 (a 3 x 2 edge window of a lat/lon grid, whose rows differ in scale, too).
# Singular values do not depend on the terms' order: a rotated raster makes the
# same choice (the fit, not a rotated one).
_RANK_TOLERANCE = 1e-3
# Below this a Gram-Schmidt column is taken as zero (numerical safety only).
_GS_TOLERANCE = 1e-12
_CACHE_LIMIT = 50_000  # weight sets (up to 1 kB each) kept; then cleared
_cache: dict = {}
_cache_lock = threading.Lock()


# ---------------------------------------------------------------------------------------
# Kernels (the contract of terrain.kernels)
# ---------------------------------------------------------------------------------------

def evans(z, xpos, xscale, ypos, halo, edge_order, z_factor, dzdx, dzdy):
    """Evans-Young: gradient of the least-squares quadratic over the 3x3 window.

    On a uniform grid dzdx = ((c + f + i) - (a + d + g)) / (6 dx) and
    dzdy = ((a + b + c) - (g + h + i)) / (6 dy). ``edge_order`` is ignored (the
    fallbacks are fits too); ``halo`` must be at least 1.
    """
    _fit("evans", z, xpos, xscale, ypos, halo, z_factor, {0: dzdx, 1: dzdy})


def florinsky(z, xpos, xscale, ypos, halo, edge_order, z_factor, dzdx, dzdy):
    """Florinsky (2009): gradient of the least-squares cubic over the 5x5 window.

    ``edge_order`` is ignored; ``halo`` must be at least 2.
    """
    _fit("florinsky", z, xpos, xscale, ypos, halo, z_factor, {0: dzdx, 1: dzdy})


def second_derivatives(method, z, xpos, xscale, ypos, halo, z_factor, r, t, s):
    """r = d2z/dx2, t = d2z/dy2, s = d2z/dxdy (x east, y north; 1/m) into ``r, t, s``.

    ``method``: ``"zevenbergen-thorne"``, ``"evans"`` or ``"florinsky"``; same
    padded-block contract as the gradient kernels. On a projected grid these are
    in CRS metres: :func:`second_to_ground` carries them onto the ground.
    """
    _fit(_method(method), z, xpos, xscale, ypos, halo, z_factor, {2: r, 3: t, 4: s})


def derivatives(method, z, xpos, xscale, ypos, halo, z_factor, p, q, r, t, s):
    """p, q, r, t, s of one fit in one pass (what curvatures need)."""
    _fit(_method(method), z, xpos, xscale, ypos, halo, z_factor,
         {0: p, 1: q, 2: r, 3: t, 4: s})


def reach(method: str) -> int:
    """Cells the method's window reaches on each side (the halo it needs)."""
    return FITS[_method(method)][0]


def second_to_ground(r, t, s, ground) -> None:
    """Carry second derivatives from CRS metres to true east / north, in place.

    With M the ground map's matrix (``(dz/dE, dz/dN) = M (dz/dX, dz/dY)``), the
    Hessian becomes H_ground = M H M^T: :func:`terrain.spacing.to_ground` applied to
    H's columns, then to the rows of the result. ``ground`` is
    :meth:`terrain.spacing.Grid.ground_window`'s ``(GroundMap, window)``; None does
    nothing. (The projection's own second derivatives, of order slope / Earth
    radius, are neglected.)
    """
    if ground is None:
        return
    from .spacing import to_ground

    a1, b1 = np.empty_like(r), np.empty_like(r)
    a2, b2 = np.empty_like(r), np.empty_like(r)
    to_ground(r, s, ground, "ground", a1, b1)   # M @ first column of H
    to_ground(s, t, ground, "ground", a2, b2)   # M @ second column
    # M H = [[a1, a2], [b1, b2]]; (M H) M^T has rows M @ (a1, a2) and M @ (b1, b2).
    s1 = np.empty_like(r)
    s2 = np.empty_like(r)
    to_ground(a1, a2, ground, "ground", r, s1)
    to_ground(b1, b2, ground, "ground", s2, t)
    np.add(s1, s2, out=s)
    s *= 0.5


# ---------------------------------------------------------------------------------------
# Implementation
# ---------------------------------------------------------------------------------------

def _method(method: str) -> str:
    if method not in FITS:
        raise ValueError(f"no least-squares fit for method {method!r}; choose one of "
                         f"{', '.join(FITS)}")
    return method


def _storage(a) -> np.ndarray:
    a = np.asarray(a)
    dtype = np.float32 if a.dtype == np.float32 else np.float64
    return np.ascontiguousarray(a, dtype=dtype)


def _round(v: np.ndarray) -> np.ndarray:
    """``v`` rounded to :data:`_GEOMETRY_BITS` significant bits (0 stays 0)."""
    m, e = np.frexp(v)
    return np.ldexp(np.round(m * 2.0 ** _GEOMETRY_BITS) / 2.0 ** _GEOMETRY_BITS, e)


def _geometry(xpos, xscale, ypos, halo, k, rows, cols):
    """Unique row geometries (xscale, y offsets of the window rows) and column
    geometries (x offsets of the window columns), with each row's / column's index."""
    n = 2 * k + 1
    off = np.arange(-k, k + 1)
    i = np.arange(rows)[:, None] + halo + off
    j = np.arange(cols)[:, None] + halo + off
    rowgeo = np.concatenate([_round(xscale[i]), _round(ypos[i] - ypos[i[:, k:k + 1]])], axis=1)
    colgeo = _round(xpos[j] - xpos[j[:, k:k + 1]])
    ru, rinv = _unique_rows(rowgeo)
    cu, cinv = _unique_rows(colgeo)
    assert ru.shape[1] == 2 * n and cu.shape[1] == n
    return ru, rinv, cu, cinv


def _unique_rows(a: np.ndarray):
    """(unique rows, index of each row): one comparison when all rows are equal (a
    projected grid's usual case), else numpy.unique."""
    if (a == a[0]).all():
        return a[:1], np.zeros(len(a), np.intp)
    u, inv = np.unique(a, axis=0, return_inverse=True)
    return u, inv.reshape(-1).astype(np.intp)


def _positions(rowgeo: np.ndarray, colgeo: np.ndarray, k: int):
    """x, y (m, ncells) of the window cells, north row first, west to east."""
    n = 2 * k + 1
    xs, yo = rowgeo[:, :n], rowgeo[:, n:]
    x = (colgeo[:, None, :] * xs[:, :, None]).reshape(len(rowgeo), n * n)
    y = np.repeat(yo, n, axis=1)
    return x, y


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products of (m, n) arrays, summed in index order (reproducible)."""
    s = a[:, 0] * b[:, 0]
    for c in range(1, a.shape[1]):
        s = s + a[:, c] * b[:, c]
    return s


def _pinv_rows(A: np.ndarray):
    """(X, ok): X (m, nterms, ncells) the pseudo-inverse of each full-rank A (m, ncells,
    nterms), by modified Gram-Schmidt with re-orthogonalisation; ok False where A's
    columns are (numerically) dependent."""
    m, ncells, nterms = A.shape
    Q = np.zeros((m, ncells, nterms))
    R = np.zeros((m, nterms, nterms))
    ok = np.ones(m, bool)
    for jt in range(nterms):
        v = A[:, :, jt].copy()
        norm0 = np.sqrt(_dot(v, v))
        for _ in range(2):
            for it in range(jt):
                rij = _dot(Q[:, :, it], v)
                R[:, it, jt] += rij
                v = v - rij[:, None] * Q[:, :, it]
        rjj = np.sqrt(_dot(v, v))
        good = (norm0 > 0) & (rjj > _GS_TOLERANCE * norm0)
        ok &= good
        R[:, jt, jt] = np.where(good, rjj, 1.0)
        Q[:, :, jt] = np.where(good[:, None], v / R[:, jt, jt][:, None], 0.0)
    # X = R^-1 Q^T by back substitution.
    X = np.zeros((m, nterms, ncells))
    for jt in range(nterms - 1, -1, -1):
        acc = Q[:, :, jt].copy()
        for it in range(jt + 1, nterms):
            acc = acc - R[:, jt, it][:, None] * X[:, it, :]
        X[:, jt, :] = acc / R[:, jt, jt][:, None]
    return X, ok


def _weights(method: str, rowgeo: np.ndarray, colgeo: np.ndarray, valid: np.ndarray):
    """Weights (m, 5, ncells) of p, q, r, t, s for m windows (geometries and valid-cell
    masks); NaN rows where no fit is determined (r, t, s: no quadratic)."""
    k, terms = FITS[method]
    x, y = _positions(rowgeo, colgeo, k)
    m, ncells = x.shape
    # Fit in units of the window's reach (a well-conditioned matrix); scale back after.
    hx = np.abs(x).max(axis=1)[:, None] / k
    hy = np.abs(y).max(axis=1)[:, None] / k
    u, v = x / hx, y / hy
    out = np.full((m, len(OUTPUTS), ncells), np.nan)
    todo = np.ones(m, bool)
    chain = [terms] + [t for t in (QUADRATIC, PLANE) if len(t) < len(terms)]
    for level in chain:
        if not todo.any():
            break
        idx = np.nonzero(todo)[0]
        A = np.stack([u[idx] ** a * v[idx] ** b for a, b in level], axis=2)
        A *= valid[idx][:, :, None]
        X, ok = _pinv_rows(A)
        sv = np.linalg.svd(A, compute_uv=False)
        ok &= sv[:, -1] > _RANK_TOLERANCE * sv[:, 0]
        X *= valid[idx][:, None, :]  # exact zeros for the missing cells
        hxi, hyi = hx[idx], hy[idx]
        w = out[idx]
        w[:, 0] = X[:, level.index((1, 0))] / hxi
        w[:, 1] = X[:, level.index((0, 1))] / hyi
        if (2, 0) in level:
            w[:, 2] = 2.0 * X[:, level.index((2, 0))] / (hxi * hxi)
            w[:, 3] = 2.0 * X[:, level.index((0, 2))] / (hyi * hyi)
            w[:, 4] = X[:, level.index((1, 1))] / (hxi * hyi)
        w[~ok] = np.nan
        out[idx] = w
        todo[idx[ok]] = False
    if todo.any():
        # No plane: the valid cells lie on a line. If it is the centre's row (column),
        # dz/dx (dz/dy) from a line fit along it, as a difference method would.
        n = 2 * k + 1
        idx = np.nonzero(todo)[0]
        on_row = (np.arange(ncells) // n) == k
        on_col = (np.arange(ncells) % n) == k
        for o, along, coord, h in ((0, on_row, u, hx), (1, on_col, v, hy)):
            vl = valid[idx] & along
            A = np.stack([np.ones((len(idx), ncells)), coord[idx]], axis=2) * vl[:, :, None]
            X, ok = _pinv_rows(A)
            ok &= vl.sum(axis=1) >= 2
            line = X[:, 1] * vl / h[idx]
            line[~ok] = np.nan
            out[idx, o] = line
    return out


def _cached_weights(method, rowgeo, colgeo, masks, valid):
    """Weights of each (row geometry, column geometry, mask) triple, from the cache."""
    keys = [method.encode() + rg.tobytes() + cg.tobytes() + int(mk).to_bytes(8, "little")
            for rg, cg, mk in zip(rowgeo, colgeo, masks)]
    with _cache_lock:
        found = [_cache.get(key) for key in keys]
    miss = [n for n, w in enumerate(found) if w is None]
    if miss:
        new = _weights(method, rowgeo[miss], colgeo[miss], valid[miss])
        with _cache_lock:
            if len(_cache) > _CACHE_LIMIT:
                _cache.clear()
            for n, w in zip(miss, new):
                _cache[keys[n]] = w
                found[n] = w
    return np.stack(found)


def _fit(method, z, xpos, xscale, ypos, halo, z_factor, outs: dict):
    """Fill ``outs`` ({output index: array}) with the fit's derivatives of block ``z``."""
    k, _ = FITS[method]
    z = _storage(z)
    nz, mz = z.shape
    halo = int(halo)
    if halo < k:
        raise ValueError(f"method {method!r} needs a halo of at least {k}, got {halo}")
    rows, cols = nz - 2 * halo, mz - 2 * halo
    sel = sorted(outs)
    arrays = [outs[o] for o in sel]
    if any(a.shape != (rows, cols) for a in arrays):
        raise ValueError("outputs must be the padded block's shape less the halo")
    vec = [np.ascontiguousarray(v, dtype=np.float64) for v in (xpos, xscale, ypos)]
    if vec[0].size != mz or vec[1].size != nz or vec[2].size != nz:
        raise ValueError("spacing vectors must match the padded block")
    direct = [a.flags.c_contiguous and a.flags.writeable and a.dtype == z.dtype for a in arrays]
    tmp = [a if ok else np.empty(a.shape, z.dtype) for a, ok in zip(arrays, direct)]
    if rows > 0 and cols > 0:
        _fill(method, z, *vec, halo, k, float(z_factor), sel, tmp)
    for a, t_, ok in zip(arrays, tmp, direct):
        if not ok:
            a[...] = t_


def _fill(method, z, xpos, xscale, ypos, halo, k, zf, sel, outs):
    nz, mz = z.shape
    rows, cols = nz - 2 * halo, mz - 2 * halo
    n = 2 * k + 1
    ncells = n * n
    ru, rinv, cu, cinv = _geometry(xpos, xscale, ypos, halo, k, rows, cols)
    a, b = np.meshgrid(np.arange(len(ru)), np.arange(len(cu)), indexing="ij")
    a, b = a.reshape(-1), b.reshape(-1)
    full = (1 << ncells) - 1
    W = _cached_weights(method, ru[a], cu[b], np.full(a.size, full, np.int64),
                        np.ones((a.size, ncells), bool))
    Wsel = np.ascontiguousarray(W[:, sel, :])
    sym = np.zeros(len(Wsel), np.uint8)
    if tuple(sel) in _SYMMETRIC_OUTPUTS:
        # Windows symmetric under x -> -x and y -> -y (uniform projected grids): exact
        # parities for the C loop's quadrant form (see terrain/_clsq.c).
        xs, yo, xo = ru[a][:, :n], ru[a][:, n:], cu[b]
        sym[:] = ((xs == xs[:, ::-1]).all(axis=1) & (yo == -yo[:, ::-1]).all(axis=1)
                  & (xo == -xo[:, ::-1]).all(axis=1))
        if sym.any():
            Wsel[sym == 1] = _symmetrised(Wsel[sym == 1], sel, n)
    nfb = _clsq.apply(z, nz, mz, halo, k, Wsel, Wsel.shape[0], len(sel), rinv, cinv, len(cu),
                      sym, zf, tuple(outs))
    if nfb:
        _fallback(method, z, halo, k, zf, sel, outs, ru, rinv, cu, cinv)


# Output sets the C loop knows in quadrant form, and each output's parity in x and y.
_SYMMETRIC_OUTPUTS = {(0, 1), (2, 3, 4), (0, 1, 2, 3, 4)}
_PARITY = {0: (-1, 1), 1: (1, -1), 2: (1, 1), 3: (1, 1), 4: (-1, -1)}


def _symmetrised(W: np.ndarray, sel, n: int) -> np.ndarray:
    """Weights (m, len(sel), n * n) of mirror-symmetric windows averaged over the mirror
    group with each output's parity: exactly odd / even (the exact fit's weights are)."""
    w = W.reshape(len(W), len(sel), n, n)
    out = np.empty_like(w)
    for o, name in enumerate(sel):
        sx, sy = _PARITY[name]
        v = w[:, o]
        out[:, o] = ((v + sx * v[:, :, ::-1]) + (sy * v[:, ::-1, :] + sx * sy * v[:, ::-1, ::-1])) / 4
    return out.reshape(W.shape)


def _fallback(method, z, halo, k, zf, sel, outs, ru, rinv, cu, cinv):
    """Cells whose window lacks cells: fits to the valid cells (see the module docstring)."""
    n = 2 * k + 1
    centre = z[halo:z.shape[0] - halo, halo:z.shape[1] - halo]
    ri, ci = np.nonzero(np.isnan(outs[0]) & ~np.isnan(centre))
    if ri.size == 0:
        return
    off = np.arange(-k, k + 1)
    dr, dc = np.repeat(off, n), np.tile(off, n)
    vals = z[ri[:, None] + halo + dr, ci[:, None] + halo + dc].astype(np.float64)
    valid = ~np.isnan(vals)
    masks = valid.astype(np.int64) @ (np.int64(1) << np.arange(n * n, dtype=np.int64))
    keys = np.stack([masks, rinv[ri], cinv[ci]], axis=1)
    if len(ru) < 1 << 19 and len(cu) < 1 << 19:
        # One int64 per key (25 + 19 + 19 bits): a plain sort instead of a row-wise one.
        packed = (keys[:, 0] << 38) | (keys[:, 1] << 19) | keys[:, 2]
        up, inv = np.unique(packed, return_inverse=True)
        uk = np.stack([up >> 38, (up >> 19) & ((1 << 19) - 1), up & ((1 << 19) - 1)], axis=1)
    else:
        uk, inv = np.unique(keys, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    uvalid = (uk[:, :1] >> np.arange(n * n, dtype=np.int64)) & 1 == 1
    W = _cached_weights(method, ru[uk[:, 1]], cu[uk[:, 2]], uk[:, 0], uvalid)
    d = np.where(valid, vals - vals[:, (n * n) // 2][:, None], 0.0)
    for o, out in zip(sel, outs):
        w = W[:, o, :]
        acc = w[:, 0][inv] * d[:, 0]
        for c in range(1, n * n):
            acc = acc + w[:, c][inv] * d[:, c]
        out[ri, ci] = acc * zf
