"""Hidden tests of notebook 06 (predicted_maps, own_object_share) and 08 (own_object_share)."""

import numpy as np

from ..solutions import explorer as ref
from . import assert_close, case


def _predicted_case(seed, batch, classes):
    rng = np.random.default_rng(seed)
    maps = rng.normal(size=(batch, classes, 4, 5)).astype(np.float32)
    probabilities = rng.dirichlet(np.ones(classes), size=batch).astype(np.float32)
    return maps, probabilities


@case("predicted_maps")
def predicted_more_images_than_classes(f):
    maps, probabilities = _predicted_case(301, 7, 3)
    assert_close(f(maps.copy(), probabilities.copy()), ref.my_predicted_maps(maps, probabilities))


@case("predicted_maps")
def predicted_more_classes_than_images(f):
    maps, probabilities = _predicted_case(302, 2, 6)
    assert_close(f(maps.copy(), probabilities.copy()), ref.my_predicted_maps(maps, probabilities))


@case("predicted_maps")
def predicted_one_image(f):
    maps, probabilities = _predicted_case(303, 1, 4)
    assert_close(f(maps.copy(), probabilities.copy()), ref.my_predicted_maps(maps, probabilities))


def _share_case(seed, batch=3, cells=4, pixels=16):
    rng = np.random.default_rng(seed)
    maps = rng.normal(0.2, 1.0, (batch, cells, cells)).astype(np.float32)
    own = np.zeros((batch, pixels, pixels), bool)
    other = np.zeros((batch, pixels, pixels), bool)
    own[:, 8:15, 1:7] = True
    other[:, 0:5, 9:16] = True
    return maps, own, other


@case("own_object_share")
def share_random_maps(f):
    maps, own, other = _share_case(311)
    assert_close(f(maps.copy(), own.copy(), other.copy()), ref.my_own_object_share(maps, own, other), atol=1e-4)


@case("own_object_share")
def share_map_without_positive_mass(f):
    maps, own, other = _share_case(312)
    maps[1] = -np.abs(maps[1])
    assert_close(f(maps.copy(), own.copy(), other.copy()), ref.my_own_object_share(maps, own, other), atol=1e-4)


@case("own_object_share")
def share_larger_masks(f):
    maps, own, other = _share_case(313, batch=2, cells=8, pixels=32)
    assert_close(f(maps.copy(), own.copy(), other.copy()), ref.my_own_object_share(maps, own, other), atol=1e-4)
