"""Tests of camtutor.baselines: model-free maps, checked on small hand-computed images."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from camtutor import baselines as bl
from camtutor.errors import CamTutorError


def _grey(img2d: np.ndarray) -> np.ndarray:
    """(H, W) -> (1, H, W, 3) RGB batch with equal channels (luma == the value)."""
    return np.repeat(np.asarray(img2d, np.float32)[None, ..., None], 3, axis=-1)


def _argmax2d(m: np.ndarray) -> tuple[int, int]:
    y, x = np.unravel_index(int(np.argmax(m)), m.shape)
    return int(y), int(x)


@pytest.mark.parametrize("name", list(bl.BASELINES))
def test_registry_shapes_and_dtypes(name):
    assert list(bl.BASELINES) == ["random", "centre", "brightness", "contrast", "edges", "deviation"]
    images = np.random.default_rng(0).uniform(0, 1, (3, 20, 24, 3)).astype(np.float32)
    maps = bl.BASELINES[name](images)
    assert maps.shape == (3, 20, 24) and maps.dtype == np.float32
    assert np.isfinite(maps).all()
    grey = bl.BASELINES[name](images[..., :1])  # one grey channel works too
    assert grey.shape == (3, 20, 24)


def test_colour_deviation_finds_a_dark_object_on_a_light_background():
    # A dark 4x4 square on a light textured background: brightness peaks on the background,
    # the deviation from the median (background) colour peaks on the square.
    rng = np.random.default_rng(1)
    img = np.clip(0.8 + 0.05 * rng.standard_normal((32, 32, 3)), 0, 1).astype(np.float32)
    img[20:24, 4:8] = (0.1, 0.2, 0.6)
    dev = bl.colour_deviation(img[None], blur=1.0)[0]
    y, x = _argmax2d(dev)
    assert 20 <= y < 24 and 4 <= x < 8
    assert not (20 <= _argmax2d(bl.brightness(img[None])[0])[0] < 24 and 4 <= _argmax2d(bl.brightness(img[None])[0])[1] < 8)


def test_colour_deviation_values_unblurred():
    img = np.zeros((1, 3, 3, 3), np.float32)  # median colour black
    img[0, 1, 1] = (1.0, 1.0, 1.0)
    dev = bl.colour_deviation(img, blur=0)[0]
    expected = np.zeros((3, 3), np.float32)
    expected[1, 1] = np.sqrt(3.0)
    np.testing.assert_allclose(dev, expected, rtol=1e-6)
    with pytest.raises(ValueError):
        bl.colour_deviation(img, blur=-1)


def test_brightness_one_bright_pixel():
    img = np.zeros((5, 5), np.float32)
    img[1, 3] = 1.0
    m = bl.brightness(_grey(img), blur=0)[0]
    np.testing.assert_array_equal(m, img)
    img = np.zeros((9, 9), np.float32)
    img[3, 5] = 1.0  # >= 3 sigma from every border, so mirrored copies do not matter
    blurred = bl.brightness(_grey(img), blur=1.0)[0]
    assert _argmax2d(blurred) == (3, 5)
    # the 2-D Gaussian of sigma 1 (sampled by OpenCV's kernel): peak ~ 1 / (2 pi) ~ 0.16, neighbour ratio e^-1/2
    assert blurred[3, 5] == pytest.approx(1 / (2 * np.pi), rel=0.15)
    assert blurred[3, 6] / blurred[3, 5] == pytest.approx(np.exp(-0.5), rel=0.05)
    assert blurred[3, 4] > blurred[6, 1] > 0  # nearer the pixel is brighter


def test_brightness_uses_bt601_luma():
    rgb = np.zeros((1, 2, 2, 3), np.float32)
    rgb[0, 0, 0] = (1, 0, 0)
    rgb[0, 0, 1] = (0, 1, 0)
    rgb[0, 1, 0] = (0, 0, 1)
    m = bl.brightness(rgb, blur=0)[0]
    np.testing.assert_allclose(m, [[0.299, 0.587], [0.114, 0.0]], atol=1e-6)


def test_local_contrast_flat_is_zero_and_polarity_blind():
    flat = bl.local_contrast(_grey(np.full((9, 9), 0.4)))[0]
    np.testing.assert_allclose(flat, 0.0, atol=1e-6)
    bright = np.full((9, 9), 0.5, np.float32)
    bright[4, 4] = 0.9
    dark = np.full((9, 9), 0.5, np.float32)
    dark[4, 4] = 0.1
    mb = bl.local_contrast(_grey(bright), radius=1.0)[0]
    md = bl.local_contrast(_grey(dark), radius=1.0)[0]
    np.testing.assert_allclose(mb, md, atol=1e-6)  # a darker spot scores like a brighter one
    assert _argmax2d(mb) == (4, 4) and mb.max() > 0.05


def test_local_contrast_of_a_step_is_half_its_height_far_inside_the_window():
    # a 0/1 step seen through a huge window: mean 0.5, std 0.5 at the centre
    img = np.zeros((4, 4), np.float32)
    img[:, 2:] = 1.0
    m = bl.local_contrast(_grey(img), radius=50.0)[0]
    np.testing.assert_allclose(m[1:3, 1:3], 0.5, atol=0.01)
    assert m.max() <= 0.5 + 1e-6


def test_sobel_unit_step_edge():
    img = np.zeros((5, 6), np.float32)
    img[:, 3:] = 1.0  # vertical step between columns 2 and 3
    m = bl.sobel_edges(_grey(img))[0]
    # Sobel Gx = [1 2 1]^T x [-1 0 1]: 4 on the two columns next to the step, 0 elsewhere; /4 -> 1
    expected = np.zeros_like(img)
    expected[:, 2:4] = 1.0
    np.testing.assert_allclose(m, expected, atol=1e-6)
    # the same step turned by 90 degrees gives the transposed map
    mt = bl.sobel_edges(_grey(img.T.copy()))[0]
    np.testing.assert_allclose(mt, expected.T, atol=1e-6)


def test_sobel_constant_image_has_no_edges():
    np.testing.assert_allclose(bl.sobel_edges(_grey(np.full((7, 7), 0.3)), blur=1.0), 0.0, atol=1e-6)


def test_random_map_reproducible_and_seeded():
    images = np.zeros((2, 8, 10, 3), np.float32)
    a, b = bl.random_map(images, seed=3), bl.random_map(images, seed=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, bl.random_map(images, seed=4))
    assert not np.array_equal(a[0], a[1])  # each image gets its own noise
    assert a.shape == (2, 8, 10) and a.dtype == np.float32 and 0 <= a.min() and a.max() < 1
    assert bl.random_map(images, size=4).shape == (2, 4, 4)
    assert bl.random_map(images, size=(3, 5)).shape == (2, 3, 5)
    with pytest.raises(ValueError):
        bl.random_map(images, size=(0, 5))
    with pytest.raises(ValueError):
        bl.random_map(images, seed=1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("hw,centre", [((5, 5), [(2, 2)]), ((4, 6), [(1, 2), (1, 3), (2, 2), (2, 3)])])
def test_centre_prior_peaks_at_the_centre(hw, centre):
    m = bl.centre_prior(np.zeros((2, *hw, 3), np.float32), sigma=0.3)
    assert m.shape == (2, *hw)
    np.testing.assert_array_equal(m[0], m[1])  # the same for every image
    top = {(int(y), int(x)) for y, x in zip(*np.nonzero(np.isclose(m[0], m[0].max())))}
    assert top == set(centre)
    assert 0 < m.min() and m.max() <= 1.0


def test_centre_prior_value_by_hand():
    m = bl.centre_prior(np.zeros((1, 5, 5, 3), np.float32), sigma=0.2)[0]  # sigma = 0.2 * 5 = 1 pixel
    assert m[2, 2] == pytest.approx(1.0)
    assert m[2, 3] == pytest.approx(np.exp(-0.5), rel=1e-6)
    assert m[0, 0] == pytest.approx(np.exp(-4.0), rel=1e-6)  # distance^2 = 8


@pytest.mark.parametrize("name", list(bl.BASELINES))
def test_bad_images_are_refused(name):
    f = bl.BASELINES[name]
    with pytest.raises(CamTutorError):
        f(np.zeros((8, 8, 3), np.float32))  # one image without the batch axis
    with pytest.raises(CamTutorError):
        f(np.zeros((0, 8, 8, 3), np.float32))
    with pytest.raises(CamTutorError):
        f(np.zeros((1, 8, 8, 2), np.float32))
    bad = np.zeros((1, 8, 8, 3), np.float32)
    bad[0, 1, 1, 0] = np.nan
    with pytest.raises(CamTutorError):
        f(bad)


@pytest.mark.parametrize("fn,kw", [(bl.brightness, "blur"), (bl.local_contrast, "radius"), (bl.centre_prior, "sigma")])
def test_bad_settings(fn, kw):
    with pytest.raises(ValueError, match=kw):
        fn(np.zeros((1, 8, 8, 3), np.float32), **{kw: -1.0})


def test_baselines_module_does_not_import_tensorflow():
    src = open(bl.__file__).read()
    assert "tensorflow" not in src.split('"""', 2)[2] and "import keras" not in src
    code = (
        "import sys, types; pkg = types.ModuleType('camtutor'); "
        f"pkg.__path__ = [{str(__import__('pathlib').Path(bl.__file__).parent)!r}]; sys.modules['camtutor'] = pkg; "
        "import camtutor.baselines; print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("call", [
    lambda x: bl.local_contrast(x, radius=1e6),
    lambda x: bl.brightness(x, blur=1e9),
    lambda x: bl.sobel_edges(x, blur=1e9),
    lambda x: bl.colour_deviation(x, blur=1e4),
])
def test_an_absurd_blur_is_refused_before_opencv_allocates(call):
    images = np.zeros((1, 32, 24, 3), np.float32)
    with pytest.raises(CamTutorError, match="far wider than the images"):
        call(images)
    assert bl.colour_deviation(images, blur=990).shape == (1, 32, 24)  # within the budget: computed
