"""Issue 8's input table, measured: what terrain reads from DEMs that declare their elevation
semantics (band unit, scale/offset, GDAL masks, wide integers, fills, GDAL paths, local CRSs).

    python benchmarks/elevation_semantics.py

Each line: the case, the truth in brackets, then what terrain gives (or the error it raises).
"""
import atexit, os, shutil, zipfile, tempfile, warnings
warnings.simplefilter("ignore")
import numpy as np, rasterio
from affine import Affine
import terrain
d = tempfile.mkdtemp(); atexit.register(shutil.rmtree, d, True); T = Affine(10.0, 0, 680070.0, 0, -10.0, 4e6)  # UTM scale factor 1: CRS metres are ground metres
rows, cols = np.indices((16, 20))
def w(name, z, **kw):
    p = os.path.join(d, name)
    prof = dict(driver="GTiff", width=z.shape[1], height=z.shape[0], count=1, dtype=z.dtype, crs=kw.pop("crs", "EPSG:32616"), transform=T)
    prof.update(kw)
    with rasterio.open(p, "w", **prof) as ds: ds.write(z, 1)
    return p
def run(label, f):
    try: print(f"{label}: {f()}")
    except Exception as e: print(f"{label}: {type(e).__name__}: {str(e)[:110]}")
FT = 1200/3937
z = (0.08 * 10 * cols - (-0.06) * 10 * rows) / FT
p = w("ft.tif", z.astype(np.float64))
with rasterio.open(p, "r+") as ds: ds.units = ("US survey foot",)
run("ftUS band unit, median slope (truth 5.71)", lambda: round(float(np.nanmedian(terrain.slope(terrain.open_dem(p)).values)), 2))
raw = (10600 + 22 * cols + 5 * rows).astype(np.uint16); p = w("u16.tif", raw)
with rasterio.open(p, "r+") as ds: ds.scales, ds.offsets = (0.1,), (-100.0,)
run("uint16 scale 0.1 (truth 12.71)", lambda: round(float(np.nanmedian(terrain.slope(terrain.open_dem(p)).values)), 2))
holes = np.zeros(raw.shape, bool); holes[5:8, 6:9] = True
zz = (50 + 3.0 * cols + rows).astype(np.float32); zz[holes] = -5000
p = os.path.join(d, "msk.tif")
with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=False):
    with rasterio.open(p, "w", driver="GTiff", width=20, height=16, count=1, dtype="float32", crs="EPSG:32616", transform=T) as ds:
        ds.write(zz, 1); ds.write_mask(~holes)
run(".msk mask: max slope / NaN cells (truth 17.55 / 9)", lambda: (round(float(np.nanmax(terrain.slope(terrain.open_dem(p)).values)), 2), int(np.isnan(terrain.slope(terrain.open_dem(p)).values).sum())))
with rasterio.open(p) as ds: m = ds.read(1, masked=True)
run("masked array: max slope (truth 17.55)", lambda: round(float(np.nanmax(terrain.slope(m, spacing=(10.0, 10.0)))), 2))
mm = (3_000_000_000 + 10000 * cols).astype(np.uint32); p = w("mm.tif", mm)
run("uint32 mm z_factor=0.001: min/max slope (truth 45/45)", lambda: tuple(round(float(f(terrain.slope(terrain.open_dem(p), z_factor=0.001).values)), 4) for f in (np.nanmin, np.nanmax)))
f = zz.copy(); f[:] = 50 + 3.0 * cols; f[3:5, 3:5] = -np.finfo(np.float32).max; p = w("fill.tif", f)
for prod in ("slope", "aspect"):
    run(f"-3.4e38 fill, {prod} degrees", lambda: float(np.nanmax(terrain.compute(terrain.open_dem(p), (prod,))[prod].values)))
p = w("plain.tif", zz)
with zipfile.ZipFile(os.path.join(d, "dem.zip"), "w") as zf: zf.write(p, "dem.tif")
run("/vsizip/", lambda: terrain.open_dem(f"/vsizip/{d}/dem.zip/dem.tif").shape)
p = w("local.tif", zz, crs=rasterio.crs.CRS.from_wkt('LOCAL_CS["l",UNIT["metre",1]]'))
import terrain.info
run("LOCAL_CS metre info", lambda: terrain.info.dem_info(p).dx_m)
