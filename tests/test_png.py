"""terrain.png: the maps' PNG encoder, checked by decoding with Pillow (an independent
PNG reader) and against matplotlib's own savefig of the same figure."""

import io

import numpy as np
import pytest
from PIL import Image

from terrain.png import encode_png


def _decode(data: bytes):
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (97, 131), (400, 300)])
@pytest.mark.parametrize("opaque", [True, False])
def test_pixels_round_trip(shape, opaque):
    rng = np.random.default_rng(sum(shape))
    rgba = rng.integers(0, 256, (*shape, 4), dtype=np.uint8)
    # Runs and repeated rows too, as a map has (the filter and RLE paths).
    rgba[shape[0] // 2:, : shape[1] // 2] = (12, 200, 34, 255)
    if opaque:
        rgba[..., 3] = 255
    image = _decode(encode_png(rgba))
    assert image.mode == ("RGB" if opaque else "RGBA")
    assert image.size == (shape[1], shape[0])
    expected = rgba[..., :3] if opaque else rgba
    np.testing.assert_array_equal(np.asarray(image), expected)


def test_metadata():
    rgba = np.full((4, 5, 4), 255, np.uint8)
    image = _decode(encode_png(rgba, dpi=150, text={"Software": "terrain"}))
    assert image.info["Software"] == "terrain"
    # pHYs holds whole pixels per metre: 5906 for 150 dpi, as Pillow writes it.
    assert image.info["dpi"] == pytest.approx((150.0, 150.0), abs=0.02)


@pytest.mark.parametrize("bad", [np.zeros((3, 3, 3), np.uint8), np.zeros((3, 3, 4), np.float32),
                                 np.zeros((0, 3, 4), np.uint8), np.zeros((3, 4), np.uint8)])
def test_rejects_what_is_not_rgba_bytes(bad):
    with pytest.raises(ValueError, match="uint8 image"):
        encode_png(bad)


def test_map_equals_matplotlibs_own_save(tmp_path):
    """A map figure saved by terrain.plot (this encoder) has the very pixels
    matplotlib's savefig (through Pillow) gives for it."""
    from terrain import plot

    rng = np.random.default_rng(3)
    values = rng.random((60, 80)) * 40
    values[5:9, 5:9] = np.nan
    fig = plot._render_figure("m.png", "slope", values, extent=(0, 800, 0, 600),
                              geographic=False, units="degrees", title="t", shade=None,
                              flat_value=-1.0, dpi=100, axis_unit="m")
    ours = tmp_path / "ours.png"
    plot._savefig(fig, str(ours), "png", 100)
    reference = io.BytesIO()
    fig.savefig(reference, format="png", dpi=100)
    with Image.open(ours) as a, Image.open(reference) as b:
        assert a.size == b.size
        np.testing.assert_array_equal(np.asarray(a.convert("RGBA")),
                                      np.asarray(b.convert("RGBA")))
        assert a.info["Software"] == "terrain"
        # Written by terrain.png (an opaque map as RGB; Pillow's save keeps RGBA).
        assert (a.mode, b.mode) == ("RGB", "RGBA")
