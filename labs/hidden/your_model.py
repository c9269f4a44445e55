"""Hidden tests of notebook 07 (to_mobilenet)."""

import numpy as np

from ..solutions import your_model as ref
from . import assert_close, case


def _images(seed, shape):
    images = np.random.default_rng(seed).random(shape, dtype=np.float32)
    images[0, 0, 0] = (0.0, 1.0, 0.25)
    return images


@case("mobilenet_input")
def mobilenet_values(f):
    images = _images(401, (3, 6, 5, 3))
    assert_close(f(images.copy()), ref.my_to_mobilenet(images), atol=1e-4)


@case("mobilenet_input")
def mobilenet_one_image(f):
    images = _images(402, (1, 9, 9, 3))
    assert_close(f(images.copy()), ref.my_to_mobilenet(images), atol=1e-4)


@case("mobilenet_input")
def mobilenet_input_left_unchanged(f):
    images = _images(403, (2, 4, 4, 3))
    given = images.copy()
    f(given)
    assert np.array_equal(given, images), "the function changed its input in place"
