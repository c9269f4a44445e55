"""Tests of camtutor.data: synthetic shapes, faces, image loading."""

from __future__ import annotations

import camtutor  # noqa: F401  (sets TF_CPP_MIN_LOG_LEVEL first)

import cv2
import numpy as np
import pytest

from camtutor import data
from camtutor.errors import ImageError


@pytest.fixture(scope="module")
def sh():
    return data.shapes(90, seed=3)


@pytest.fixture(scope="module")
def two():
    return data.two_shapes(60, seed=4)


def test_shapes_deterministic():
    a, b = data.shapes(12, seed=7), data.shapes(12, seed=7)
    for f in ("images", "labels", "boxes", "masks"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    c = data.shapes(12, seed=8)
    assert not np.array_equal(a.images, c.images)


def test_shapes_types_and_ranges(sh):
    assert len(sh) == 90
    assert sh.images.shape == (90, 64, 64, 3) and sh.images.dtype == np.float32
    assert 0.0 <= sh.images.min() and sh.images.max() <= 1.0
    assert sh.labels.shape == (90,) and sh.labels.dtype == np.int64
    assert sh.boxes.shape == (90, 4) and np.issubdtype(sh.boxes.dtype, np.integer)
    assert sh.masks.shape == (90, 64, 64) and sh.masks.dtype == bool
    assert sh.class_names == data.SHAPE_CLASSES == ("circle", "square", "triangle")
    assert data.shapes(2, size=48).images.shape == (2, 48, 48, 3)


def test_shapes_frozen(sh):
    with pytest.raises(Exception):
        sh.labels = None  # type: ignore[misc]


def test_shapes_balanced(sh):
    counts = np.bincount(sh.labels, minlength=3)
    assert counts.max() - counts.min() <= 1
    counts = np.bincount(data.shapes(10).labels, minlength=3)
    assert counts.max() - counts.min() <= 1


def _check_tight(box, mask):
    x0, y0, x1, y1 = (int(v) for v in box)
    assert mask.any()
    inside = np.zeros_like(mask)
    inside[y0:y1, x0:x1] = True
    assert not (mask & ~inside).any(), "box misses mask pixels"
    # tight: every border row/column of the box touches the mask
    assert mask[y0, x0:x1].any() and mask[y1 - 1, x0:x1].any()
    assert mask[y0:y1, x0].any() and mask[y0:y1, x1 - 1].any()


def test_shapes_boxes_tight(sh):
    for box, mask in zip(sh.boxes, sh.masks):
        _check_tight(box, mask)


def _luma(img):
    return img @ np.array([0.299, 0.587, 0.114], np.float32)


def _object_minus_background(images, masks):
    """Luma of each object minus the median luma of the rest of its image (mostly background)."""
    return np.array([_luma(img)[m].mean() - np.median(_luma(img)[~m]) for img, m in zip(images, masks)])


def test_object_differs_from_background(sh):
    # the painted object really is visible: its luma differs from the background's
    assert np.all(np.abs(_object_minus_background(sh.images, sh.masks)) > 0.15)


def test_objects_are_brighter_or_darker_than_the_background(sh):
    diff = _object_minus_background(sh.images, sh.masks)
    assert 0.3 <= np.mean(diff > 0) <= 0.7, "contrast='both' should give both polarities about equally often"
    bright = data.shapes(30, seed=3, contrast="bright")
    dark = data.shapes(30, seed=3, contrast="dark")
    assert np.all(_object_minus_background(bright.images, bright.masks) > 0.15)
    assert np.all(_object_minus_background(dark.images, dark.masks) < -0.15)


def _pointing(maps, masks):
    """Share of images whose map argmax falls inside the mask."""
    b, h, w = maps.shape
    idx = maps.reshape(b, -1).argmax(axis=1)
    return float(masks[np.arange(b), idx // w, idx % w].mean())


def test_brightness_does_not_give_the_object_away():
    from camtutor import baselines

    sh = data.shapes(150, seed=21)
    # with bright-only objects and no distractors, the brightest spot is the object ...
    easy = data.shapes(150, seed=21, contrast="bright", clutter=0)
    assert _pointing(baselines.brightness(easy.images), easy.masks) >= 0.9
    # ... but on the default data it is not: dark objects never win, bright ones compete with
    # as many distractors of the same colours (measured 0.22 on 300 images; chance by area 0.10)
    assert _pointing(baselines.brightness(sh.images), sh.masks) <= 0.35
    assert _pointing(baselines.local_contrast(sh.images), sh.masks) <= 0.25
    two = data.two_shapes(150, seed=22)
    for k in range(2):
        assert _pointing(baselines.brightness(two.images), two.masks[:, k]) <= 0.35


def test_clutter_adds_distractors():
    plain = data.shapes(20, seed=5, clutter=0)
    busy = data.shapes(20, seed=5, clutter=8)

    def strong(ds):  # share of non-object pixels far from the background level
        return np.mean([
            np.mean(np.abs(_luma(img)[~m] - np.median(_luma(img)[~m])) > 0.2) for img, m in zip(ds.images, ds.masks)
        ])

    assert strong(busy) > strong(plain) + 0.05


def test_two_shapes(two):
    assert two.images.shape == (60, 64, 64, 3) and two.images.dtype == np.float32
    assert two.labels.shape == (60, 2) and two.boxes.shape == (60, 2, 4)
    assert two.masks.shape == (60, 2, 64, 64) and two.masks.dtype == bool
    assert len(two) == 60
    assert np.all(two.labels[:, 0] != two.labels[:, 1])
    assert not np.any(two.masks[:, 0] & two.masks[:, 1])
    for i in range(len(two)):
        for k in range(2):
            _check_tight(two.boxes[i, k], two.masks[i, k])
    counts = np.bincount(two.labels.ravel(), minlength=3)
    assert counts.min() >= 30
    again = data.two_shapes(60, seed=4)
    np.testing.assert_array_equal(again.images, two.images)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n=0),
        dict(n=2.5),
        dict(n=3, size=16),
        dict(n=3, size="64"),
        dict(n=3, seed="a"),
        dict(n=3, contrast="light"),
        dict(n=3, clutter=-1),
        dict(n=3, clutter=9),
        dict(n=3, clutter=True),
    ],
)
@pytest.mark.parametrize("fn", [data.shapes, data.two_shapes])
def test_bad_arguments(fn, kwargs):
    kwargs = dict(kwargs)
    n = kwargs.pop("n")
    with pytest.raises(ValueError):
        fn(n, **kwargs)


def test_faces():
    f = data.faces()
    assert f.class_names == ("not face", "face")
    assert f.train_images.shape == (140, 64, 64, 3) and f.test_images.shape == (60, 64, 64, 3)
    for x in (f.train_images, f.test_images):
        assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
        np.testing.assert_array_equal(x[..., 0], x[..., 2])  # grey -> 3 identical channels
    assert np.bincount(f.train_labels).tolist() == [70, 70]
    assert np.bincount(f.test_labels).tolist() == [30, 30]
    g = data.faces()
    np.testing.assert_array_equal(f.test_images, g.test_images)
    np.testing.assert_array_equal(f.train_labels, g.train_labels)
    h = data.faces(seed=1, size=32, test_fraction=0.5)
    assert h.test_images.shape == (100, 32, 32, 3)
    with pytest.raises(ValueError):
        data.faces(test_fraction=1.0)


# ------------------------------------------------------------------------------- load_image


def test_load_red_png_is_rgb(tmp_path):
    bgr = np.zeros((10, 12, 3), np.uint8)
    bgr[..., 2] = 255  # pure red in OpenCV's BGR order
    path = tmp_path / "red.png"
    assert cv2.imwrite(str(path), bgr)
    img = data.load_image(path)
    assert img.shape == (10, 12, 3) and img.dtype == np.float32
    np.testing.assert_allclose(img[..., 0], 1.0)
    np.testing.assert_allclose(img[..., 1:], 0.0)
    assert data.load_image(str(path)).shape == (10, 12, 3)  # str works too


def test_load_jpeg_colour(tmp_path):
    bgr = np.zeros((16, 16, 3), np.uint8)
    bgr[..., 0] = 255  # pure blue
    path = tmp_path / "blue.jpg"
    cv2.imwrite(str(path), bgr)
    img = data.load_image(path)
    assert img[..., 2].mean() > 0.9 and img[..., 0].mean() < 0.1


def test_load_grey(tmp_path):
    g = np.full((8, 9), 128, np.uint8)
    path = tmp_path / "g.png"
    cv2.imwrite(str(path), g)
    img = data.load_image(path)
    assert img.shape == (8, 9, 3)
    np.testing.assert_allclose(img, 128 / 255, atol=1e-6)


def test_load_rgba_on_white(tmp_path):
    bgra = np.zeros((6, 6, 4), np.uint8)
    bgra[..., 2] = 255  # red
    bgra[:3, :, 3] = 255  # top half opaque, bottom half transparent
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), bgra)
    img = data.load_image(path)
    assert img.shape == (6, 6, 3)
    np.testing.assert_allclose(img[:3], np.broadcast_to([1.0, 0.0, 0.0], (3, 6, 3)), atol=1e-6)
    np.testing.assert_allclose(img[3:], 1.0, atol=1e-6)  # transparent -> white


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_load_16bit(tmp_path, ext):
    bgr = np.zeros((5, 5, 3), np.uint16)
    bgr[..., 2] = 65535
    bgr[..., 1] = 32768
    path = tmp_path / f"x.{ext}"
    assert cv2.imwrite(str(path), bgr)
    img = data.load_image(path)
    np.testing.assert_allclose(img[..., 0], 1.0)
    np.testing.assert_allclose(img[..., 1], 32768 / 65535, atol=1e-6)
    np.testing.assert_allclose(img[..., 2], 0.0)


def test_load_resize(tmp_path):
    path = tmp_path / "r.png"
    cv2.imwrite(str(path), np.full((40, 30, 3), 200, np.uint8))
    assert data.load_image(path, size=20).shape == (20, 20, 3)
    assert data.load_image(path, size=(80, 10)).shape == (80, 10, 3)
    np.testing.assert_allclose(data.load_image(path, size=64), 200 / 255, atol=1e-5)
    with pytest.raises(ImageError):
        data.load_image(path, size=0)
    with pytest.raises(ImageError):
        data.load_image(path, size=(1, 2, 3))


def test_load_images(tmp_path):
    paths = []
    for i, shape in enumerate([(10, 10, 3), (20, 30, 3)]):
        p = tmp_path / f"{i}.png"
        cv2.imwrite(str(p), np.full(shape, 50 * i, np.uint8))
        paths.append(p)
    batch = data.load_images(paths, size=16)
    assert batch.shape == (2, 16, 16, 3) and batch.dtype == np.float32
    with pytest.raises(ImageError, match="size"):
        data.load_images(paths)
    with pytest.raises(ImageError):
        data.load_images([])


def test_load_errors(tmp_path):
    with pytest.raises(ImageError, match="(?i)no such image file"):
        data.load_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="directory"):
        data.load_image(tmp_path)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        data.load_image(empty)
    junk = tmp_path / "notes.png"
    junk.write_text("this is not an image")
    with pytest.raises(ImageError, match="could not decode"):
        data.load_image(junk)
    truncated = tmp_path / "trunc.png"
    ok, buf = cv2.imencode(".png", np.zeros((20, 20, 3), np.uint8))
    truncated.write_bytes(buf.tobytes()[:30])
    with pytest.raises(ImageError):
        data.load_image(truncated)
    with pytest.raises(ImageError):
        data.load_image(123)  # type: ignore[arg-type]
    assert issubclass(ImageError, ValueError)


def test_data_does_not_import_tensorflow():
    import subprocess
    import sys

    code = "import camtutor.data, sys; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # camtutor/__init__ may import other modules; camtutor.data itself must not pull TF in
    src = open(data.__file__).read()
    assert "import tensorflow" not in src and "import keras" not in src
    assert out.returncode == 0
