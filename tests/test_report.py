"""terrain.report / `terrain report`: one self-contained HTML file, rendered in headless Chromium."""

import base64
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import cli

SAMPLE = "sample_data/jacksboro_wgs84.tif"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    import fiona

    d = tmp_path_factory.mktemp("report")
    zones = d / "zones.geojson"
    schema = {"geometry": "Polygon", "properties": {"name": "str"}}
    with fiona.open(zones, "w", driver="GeoJSON", crs="EPSG:4326", schema=schema) as dst:
        for name, (x0, y0) in {"north": (-84.3, 36.6), "south": (-84.2, 36.47)}.items():
            ring = [(x0, y0), (x0 + 0.1, y0), (x0 + 0.1, y0 + 0.08), (x0, y0 + 0.08), (x0, y0)]
            dst.write({"geometry": {"type": "Polygon", "coordinates": [ring]},
                       "properties": {"name": name}})
    out = d / "report.html"
    r = CliRunner().invoke(cli, ["report", SAMPLE, "-o", str(out), "--zones", str(zones),
                                 "--zone-field", "name", "--scheme", "fao"])
    assert r.exit_code == 0, r.output
    return out


def test_self_contained(report):
    text = report.read_text(encoding="utf-8")
    # nothing fetched from anywhere: no URL in any src/href, no script
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", text, re.I)
    assert "<script" not in text.lower()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 4  # slope, classes, aspect, histogram
    for b64 in images:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    for fact in ("EPSG:4326", "Ground pixel size", "Z factor", "Nodata share", "terrain 0.",
                 "ellipsoidal area", "0-2 %", "north", "south"):
        assert fact in text, fact
    # no temporary file left beside the report
    assert [p for p in os.listdir(report.parent) if p.startswith(".")] == []


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (CI installs it: .ci/run)")
def test_renders_in_headless_chromium(report, tmp_path):
    import matplotlib.image as mpimg

    shot = tmp_path / "shot.png"
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        proc = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
             "--window-size=1280,2400", f"--screenshot={shot}", report.as_uri()],
            capture_output=True, text=True, timeout=180)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = proc.stdout + proc.stderr
    assert "Uncaught" not in log
    assert not re.search(r"CONSOLE\(\d+\)", log), log[-2000:]
    assert not re.search(r"Failed to load resource|net::ERR_", log)
    img = mpimg.imread(str(shot))
    assert img.shape[0] >= 2000 and img.shape[1] >= 1200
    rgb = img[..., :3]
    # not blank: many distinct colours (maps) and plenty of non-white pixels
    assert rgb.std() > 0.1
    assert (rgb.mean(axis=-1) < 0.9).mean() > 0.1  # a blank page: 0
    assert len(np.unique((rgb[::4, ::4] * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 500


def test_bad_name_and_existing_output(tmp_path, report):
    r = CliRunner().invoke(cli, ["report", SAMPLE, "-o", str(tmp_path / "r.pdf")])
    assert r.exit_code == 2
    r = CliRunner().invoke(cli, ["report", SAMPLE, "-o", str(report)])
    assert r.exit_code == 1 and "already exists" in r.output
