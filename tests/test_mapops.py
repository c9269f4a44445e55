"""camtutor.mapops: numpy-only normalisation and resizing of maps, checked against TensorFlow's resize.

Measured (OpenCV 5.0, TensorFlow 2.21), as a fraction of the maps' largest |value|: enlarging agrees with
``tf.image.resize(..., "bilinear")`` to 1.2e-7 (16 -> 64) and 1.5e-7 (7 -> 224), at most 4.5e-6 over 300
random sizes (float32 rounding; against exact float64 interpolation OpenCV is within 1.9e-6, TensorFlow
4.4e-6). Shrinking is plain bilinear sampling in both (no antialiasing): equal for integer factors
(64 -> 16, 224 -> 7), within 2e-6 for other ratios.

That camtutor.mapops, draw, localize, figures and baselines import no TensorFlow is tested in
test_cli_safety.py (test_import_camtutor_drawing_and_localisation_never_import_tensorflow).
"""

from __future__ import annotations

import numpy as np
import pytest

from camtutor import mapops, maths
from camtutor.errors import CamTutorError, ImageError

tf = pytest.importorskip("tensorflow")


def _tf_resize(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return tf.image.resize(maps[..., None], size, method="bilinear")[..., 0].numpy()


@pytest.mark.parametrize(
    "source, size", [((16, 16), (64, 64)), ((7, 7), (224, 224)), ((5, 9), (33, 17)), ((1, 4), (3, 8)), ((3, 3), (3, 3))]
)
def test_upsample_matches_tensorflow_bilinear_when_enlarging(source, size):
    maps = np.random.default_rng(0).normal(size=(6, *source)).astype(np.float32) * 10.0
    out = mapops.upsample(maps, size)
    assert out.dtype == np.float32 and out.shape == (6, *size)
    scale = np.abs(maps).max()
    np.testing.assert_allclose(out, _tf_resize(maps, size), rtol=0, atol=1e-6 * scale)


@pytest.mark.parametrize(
    "source, size, tolerance",
    [((64, 64), (16, 16), 0.0), ((224, 224), (7, 7), 0.0), ((33, 17), (5, 9), 5e-6), ((10, 10), (7, 7), 5e-6)],
)
def test_upsample_when_shrinking_is_bilinear_sampling_like_tensorflow(source, size, tolerance):
    """No antialiasing in either: integer factors agree exactly, other ratios to float32 rounding."""
    maps = np.random.default_rng(1).normal(size=(4, *source)).astype(np.float32) * 10.0
    difference = np.abs(mapops.upsample(maps, size) - _tf_resize(maps, size)).max()
    assert difference <= tolerance * np.abs(maps).max()


def test_upsample_shapes_batches_and_leading_axes():
    rng = np.random.default_rng(2)
    one = rng.random((4, 5), dtype=np.float32)
    assert mapops.upsample(one, 8).shape == (8, 8)
    np.testing.assert_array_equal(mapops.upsample(one, (8, 10)), mapops.upsample(one[None], (8, 10))[0])
    # more maps than OpenCV takes channels in one call (128 in OpenCV 5): each map is its own call
    many = rng.random((300, 4, 5), dtype=np.float32)
    big = mapops.upsample(many, (8, 10))
    np.testing.assert_allclose(big, _tf_resize(many, (8, 10)), atol=1e-6)
    # leading axes are kept: (B, C, h, w) -> (B, C, H, W)
    np.testing.assert_array_equal(mapops.upsample(many.reshape(3, 100, 4, 5), (8, 10)), big.reshape(3, 100, 8, 10))
    # the last two axes are the map: (h, w, 1) is h maps of w x 1, whatever OpenCV does with a trailing 1
    thin = rng.random((3, 5, 1), dtype=np.float32)
    np.testing.assert_allclose(mapops.upsample(thin, (10, 4)), _tf_resize(thin, (10, 4)), atol=1e-6)
    # not contiguous, float64 and int input
    np.testing.assert_array_equal(mapops.upsample(many.transpose(0, 2, 1), 6), mapops.upsample(many.transpose(0, 2, 1).copy(), 6))
    assert mapops.upsample(one.astype(np.float64), 8).dtype == np.float32
    assert mapops.upsample(np.arange(4).reshape(2, 2), 4).dtype == np.float32


def test_upsample_keeps_values_not_range():
    maps = np.array([[[-3.0, 5.0], [1.0, 2.0]]], np.float32)
    up = mapops.upsample(maps, 7)
    assert up.min() >= -3.0 and up.max() <= 5.0 and up.min() < 0  # no normalisation; bilinear stays in range
    assert up[0, 0, 0] == -3.0 and up[0, 0, -1] == 5.0  # corners are clamped to the corner cells


def test_normalize_per_map_constant_maps_to_zero_float32():
    rng = np.random.default_rng(3)
    maps = rng.normal(size=(3, 4, 5)).astype(np.float64)
    maps[1] = 7.0
    maps[2, 0, 0] = np.float32(1e9)  # large magnitudes stay informative
    out = mapops.normalize(maps)
    assert out.dtype == np.float32 and out.shape == maps.shape
    reference = (maps[0] - maps[0].min()) / (maps[0].max() - maps[0].min())
    np.testing.assert_allclose(out[0], reference, atol=1e-6)
    np.testing.assert_array_equal(out[1], 0.0)
    assert out[2].max() == 1.0 and out[2].min() == 0.0
    np.testing.assert_array_equal(mapops.normalize(maps[0]), out[0])
    np.testing.assert_array_equal(mapops.normalize(np.zeros((2, 2))), 0.0)
    assert not np.isnan(mapops.normalize(np.full((2, 3), 1e-30))).any()


def test_maths_delegates_numpy_to_mapops_and_keeps_its_tensor_path():
    rng = np.random.default_rng(4)
    maps = rng.normal(size=(5, 6, 7)).astype(np.float32)
    # numpy: one implementation
    np.testing.assert_array_equal(maths.normalize(maps), mapops.normalize(maps))
    np.testing.assert_array_equal(maths.upsample(maps, (12, 9)), mapops.upsample(maps, (12, 9)))
    assert isinstance(maths.upsample(maps, 9), np.ndarray) and isinstance(maths.normalize(maps), np.ndarray)
    # tensors: TensorFlow, also inside a compiled function, with the same numbers
    tensor = tf.constant(maps)
    assert isinstance(maths.normalize(tensor), tf.Tensor) and isinstance(maths.upsample(tensor, 9), tf.Tensor)
    np.testing.assert_allclose(maths.normalize(tensor).numpy(), mapops.normalize(maps), atol=1e-6)
    compiled = tf.function(lambda m: maths.normalize(maths.upsample(m, (12, 9))))
    np.testing.assert_allclose(compiled(tensor).numpy(), mapops.normalize(mapops.upsample(maps, (12, 9))), atol=1e-5)
    np.testing.assert_allclose(maths.upsample(tensor[0], 9).numpy(), mapops.upsample(maps[0], 9), atol=1e-5)
    # tensors are checked with the same messages, before TensorFlow computes
    with pytest.raises(CamTutorError, match="normalize takes maps"):
        maths.normalize(tf.ones((3,)))
    with pytest.raises(CamTutorError, match="upsample got an empty array"):
        maths.upsample(tf.ones((0, 3)), 4)


@pytest.mark.parametrize("module", [mapops, maths])
def test_bad_input_is_refused_with_the_fix(module):
    with pytest.raises(CamTutorError, match="needs a size"):
        module.upsample(np.ones((2, 2)), None)
    with pytest.raises(ImageError, match="size must be"):
        module.upsample(np.ones((2, 2)), (0, 3))
    with pytest.raises(ImageError, match="size must be"):
        module.upsample(np.ones((2, 2)), 2.5)
    for function, args in ((module.normalize, ()), (module.upsample, (4,))):
        name = function.__name__
        with pytest.raises(CamTutorError, match=rf"{name} takes maps \(H, W\) or \(B, H, W\).*pass at least one 2-D map"):
            function(np.ones(3), *args)
        with pytest.raises(CamTutorError, match=rf"{name} got an empty array.*at least one cell"):
            function(np.ones((2, 0, 3)), *args)
