"""Make tests/data/xdem_florinsky_utm16n.npz: xDEM 0.2's default slope and aspect (Florinsky)
on the bundled UTM sample, an interior 64 x 64 crop, for the `florinsky` cross-check.

xDEM is NOT a dependency of terrain (nor of its tests): this script ran once, in a throwaway
virtual environment outside the repository, and its output is committed. To remake it:

    python3 -m venv /tmp/xdemenv
    /tmp/xdemenv/bin/pip install "xdem==0.2.*"
    /tmp/xdemenv/bin/python benchmarks/make_xdem_reference.py      # from the repository root

What xDEM computes (read from xdem/terrain/surfit.py, 0.2.3, and checked below on planes):

- `xdem.terrain.slope(dem)` / `aspect(dem)` default to `surface_fit="Florinsky"` (Florinsky
  2009, the 5 x 5 third-order polynomial), degrees, engine "scipy", the DEM's own pixel size
  (`dem.res`, here 30 m x 30 m): planar geometry, grid north, no ellipsoid.
- slope = arctan(sqrt(p^2 + q^2)) in degrees.
- aspect: the compass azimuth of the DOWNSLOPE direction (the way the slope faces), 0 = north,
  clockwise (90 = east), in [0, 360): a plane rising to the east gives 270, one rising to the
  north gives 180 -- the same convention as terrain's aspect (DESIGN.md) in planar geometry.
  A flat cell gets 0 in xDEM (its docstring says 180, the code gives 0; terrain gives -1).
- Cells within 2 px of the raster edge or of a nodata cell are NaN in xDEM.

The file holds (all arrays float32 unless said):
  slope, aspect      xDEM's output (float32, as xDEM gives it for this float32 DEM) for rows row0:row0+64, cols col0:col0+64 of the whole raster
                     (computed on the whole raster, so these are interior values); xDEM
                     rounds in float32: its float64 run differs by up to ~5e-6 deg in
                     slope and ~5e-5 deg in aspect (recorded in the metadata);
  elevation          the input window with the 5 x 5 stencil's halo: rows row0-2:row0+66,
                     cols col0-2:col0+66, as xDEM read it (nodata none here);
  row0, col0         int64 offsets of the crop in the sample raster;
  metadata           a JSON string: versions, source file and its SHA-256, call, conventions.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "sample_data" / "jacksboro_utm16n.tif"
OUT = ROOT / "tests" / "data" / "xdem_florinsky_utm16n.npz"
SIZE = 64
HALO = 2  # Florinsky's 5 x 5 stencil


def check_conventions(xdem) -> dict:
    """xDEM's aspect on planes: which way is 0, which way it turns, up- or downslope."""
    ramp = np.tile(np.arange(9.0), (9, 1)) * 30.0      # rises to the east (columns), 45 deg
    rising_east = float(xdem.terrain.aspect(ramp)[4, 4])
    rising_north = float(xdem.terrain.aspect(ramp.T[::-1].copy())[4, 4])   # row 0 is north
    rising_ne = float(xdem.terrain.aspect(ramp + ramp.T[::-1])[4, 4])
    flat = float(xdem.terrain.aspect(np.zeros((9, 9)))[4, 4])
    slope45 = float(xdem.terrain.slope(ramp, resolution=30.0)[4, 4])
    assert rising_east == 270.0 and rising_north == 180.0, (rising_east, rising_north)
    assert abs(rising_ne - 225.0) < 1e-9 and abs(slope45 - 45.0) < 1e-9, (rising_ne, slope45)
    return {"plane rising east": rising_east, "plane rising north": rising_north,
            "plane rising north-east": rising_ne, "flat": flat,
            "slope of a 1:1 ramp at 30 m": slope45}


def main() -> None:
    import geoutils
    import rasterio
    import scipy
    import xdem

    warnings.simplefilter("ignore")
    dem = xdem.DEM(str(SOURCE))
    slope = xdem.terrain.slope(dem)      # the defaults: Florinsky, degrees
    aspect = xdem.terrain.aspect(dem)
    z = np.ma.filled(dem.data.astype(np.float64), np.nan)
    s = np.ma.filled(slope.data.astype(np.float64), np.nan)
    a = np.ma.filled(aspect.data.astype(np.float64), np.nan)

    rows, cols = z.shape
    row0, col0 = (rows - SIZE) // 2, (cols - SIZE) // 2   # the middle of the sample: real relief
    win = (slice(row0, row0 + SIZE), slice(col0, col0 + SIZE))
    zwin = z[row0 - HALO:row0 + SIZE + HALO, col0 - HALO:col0 + SIZE + HALO]
    assert np.isfinite(zwin).all() and np.isfinite(s[win]).all() and np.isfinite(a[win]).all()

    # xDEM computes in the DEM's float32; its own float64 run on the same window shows how far
    # that rounding goes (a float64 implementation cannot agree more closely than this).
    s64 = xdem.terrain.slope(zwin, resolution=dem.res)[HALO:-HALO, HALO:-HALO]
    a64 = xdem.terrain.aspect(zwin)[HALO:-HALO, HALO:-HALO]
    float32_rounding = {"slope_deg": float(np.abs(s64 - s[win]).max()),
                        "aspect_deg": float(np.abs((a64 - a[win] + 180) % 360 - 180).max())}

    metadata = {
        "made_by": "benchmarks/make_xdem_reference.py",
        "call": "xdem.terrain.slope(xdem.DEM(src)), xdem.terrain.aspect(xdem.DEM(src)) "
                "(defaults: surface_fit='Florinsky', degrees=True, engine='scipy')",
        "source": "sample_data/jacksboro_utm16n.tif",
        "source_sha256": hashlib.sha256(SOURCE.read_bytes()).hexdigest(),
        "source_shape": [rows, cols],
        "resolution_m": [float(r) for r in dem.res],
        "crs": str(dem.crs),
        "crop": {"row0": row0, "col0": col0, "size": SIZE, "elevation_halo": HALO},
        "xdem_output_dtype": str(slope.data.dtype),
        "geometry": "planar: the CRS's pixel size, grid north (xDEM has no ellipsoid)",
        "slope_units": "degrees",
        "aspect_convention": "azimuth of the downslope direction, 0 = north, clockwise "
                             "(90 = east), [0, 360); flat cells 0",
        "aspect_checked_on_planes": check_conventions(xdem),
        "nan_border_px": HALO,
        "xdem_float32_vs_its_float64_max_abs_diff": float32_rounding,
        "stats": {"slope_mean_deg": float(s[win].mean()), "slope_max_deg": float(s[win].max()),
                  "aspect_min_deg": float(a[win].min()), "aspect_max_deg": float(a[win].max())},
        "versions": {"xdem": xdem.__version__, "geoutils": geoutils.__version__,
                     "numpy": np.__version__, "scipy": scipy.__version__,
                     "rasterio": rasterio.__version__, "gdal": rasterio.__gdal_version__,
                     "python": sys.version.split()[0], "platform": platform.platform()},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, slope=s[win].astype(np.float32), aspect=a[win].astype(np.float32),
                        elevation=zwin.astype(np.float32), row0=np.int64(row0),
                        col0=np.int64(col0), metadata=np.array(json.dumps(metadata, indent=1)))
    print(json.dumps(metadata, indent=1))
    print(f"wrote {OUT.relative_to(ROOT)}: {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
