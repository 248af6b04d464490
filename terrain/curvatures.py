"""Curvatures of the land surface from its first and second derivatives.

``terrain.curvature()`` is the API function; this module is plural so that the
package attribute keeps that name.

Inputs are p = dz/dE, q = dz/dN, r = d2z/dE2, t = d2z/dN2, s = d2z/dEdN in true
east / north metres (see :mod:`terrain.lsq`); results are in 1/m, positive where
the surface bulges up (hilltops, ridges, convex slopes), negative in hollows.
"""

from __future__ import annotations

import numpy as np

KINDS = ("profile", "tangential", "plan", "mean", "gaussian", "minimal", "maximal")


def curvature_from_derivatives(kind, p, q, r, t, s, out):
    """The ``kind`` curvature of every cell into ``out`` (any float type; float64 arithmetic).

    With w = 1 + p^2 + q^2:

    - ``profile`` (normal curvature along the slope line) =
      -(r p^2 + 2 s p q + t q^2) / ((p^2 + q^2) w^1.5)
    - ``tangential`` (normal curvature along the contour) =
      -(r q^2 - 2 s p q + t p^2) / ((p^2 + q^2) w^0.5)
    - ``plan`` (curvature of the contour line in the horizontal plane) =
      -(r q^2 - 2 s p q + t p^2) / (p^2 + q^2)^1.5
    - ``mean`` H = -((1 + q^2) r - 2 p q s + (1 + p^2) t) / (2 w^1.5)
    - ``gaussian`` K = (r t - s^2) / w^2
    - ``minimal`` H - sqrt(H^2 - K), ``maximal`` H + sqrt(H^2 - K) (H^2 - K, never
      negative in exact arithmetic, is clipped at 0 against rounding)

    A dome of radius R has H = minimal = maximal = profile = tangential = 1/R and
    K = 1/R^2; its contours, circles of radius rho, have plan curvature 1/rho.

    Flat cells (p = q = 0 exactly) have no slope line and no contour: profile,
    tangential and plan curvature are 0 there (the choice of WhiteboxTools-style
    tools, which return 0 where p^2 + q^2 is ~0; a flat cell is neither convex nor
    concave along a direction it does not have). Cells only nearly flat keep the
    formula's value, however large (plan curvature grows as 1/gradient near a summit).
    NaN in any input gives NaN.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown curvature {kind!r}; choose one of {', '.join(KINDS)}")
    p, q, r, t, s = (np.asarray(a, dtype=np.float64) for a in (p, q, r, t, s))
    g2 = p * p + q * q
    w = 1.0 + g2
    flat = g2 == 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "profile":
            v = -(r * p * p + 2.0 * s * p * q + t * q * q) / (g2 * w ** 1.5)
        elif kind == "tangential":
            v = -(r * q * q - 2.0 * s * p * q + t * p * p) / (g2 * np.sqrt(w))
        elif kind == "plan":
            v = -(r * q * q - 2.0 * s * p * q + t * p * p) / g2 ** 1.5
        else:
            h = -((1.0 + q * q) * r - 2.0 * p * q * s + (1.0 + p * p) * t) / (2.0 * w ** 1.5)
            k = (r * t - s * s) / (w * w)
            if kind == "mean":
                v = h
            elif kind == "gaussian":
                v = k
            else:
                root = np.sqrt(np.maximum(h * h - k, 0.0))
                v = h - root if kind == "minimal" else h + root
            flat = None
    if flat is not None:
        # 0 on flat cells whose second derivatives exist (NaN stays NaN).
        v = np.where(flat & ~np.isnan(r + t + s), 0.0, v)
    out[...] = v
    return out
