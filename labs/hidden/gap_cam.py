"""Hidden tests of notebooks 00 (peak), 01 (gap) and 02 (cam, box)."""

import numpy as np

from ..solutions import gap_cam as ref
from . import assert_close, assert_same, case


def _heat(seed, shape):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@case("peak")
def peak_square(f):
    heat = _heat(101, (16, 16))
    assert_same(f(heat.copy(), 64), ref.my_peak(heat, 64))


@case("peak")
def peak_non_square(f):
    heat = _heat(102, (6, 10))
    assert_same(f(heat.copy(), 120), ref.my_peak(heat, 120))


@case("peak")
def peak_fractional_cells(f):
    heat = _heat(103, (5, 5))
    assert_same(f(heat.copy(), 64), ref.my_peak(heat, 64))


@case("peak")
def peak_in_the_last_cell(f):
    heat = np.zeros((8, 4), np.float32)
    heat[7, 3] = 1.0
    assert_same(f(heat.copy(), 256), ref.my_peak(heat, 256))


def _maps(seed, shape):
    return np.maximum(np.random.default_rng(seed).normal(0.3, 1.0, shape), 0).astype(np.float32)


@case("gap")
def gap_non_square(f):
    maps = _maps(111, (2, 5, 7, 3))
    assert_close(f(maps.copy()), ref.my_gap(maps))


@case("gap")
def gap_one_row(f):
    maps = _maps(112, (3, 1, 9, 4))
    assert_close(f(maps.copy()), ref.my_gap(maps))


@case("gap")
def gap_layer_sized(f):
    maps = _maps(113, (1, 16, 16, 32))
    assert_close(f(maps.copy()), ref.my_gap(maps))


def _cam_case(seed, shape, classes):
    rng = np.random.default_rng(seed)
    return _maps(seed, shape), rng.normal(size=(shape[-1], classes)).astype(np.float32)


@case("cam")
def cam_first_class(f):
    maps, kernel = _cam_case(121, (2, 4, 6, 5), 3)
    assert_close(f(maps.copy(), kernel.copy(), 0), ref.my_cam(maps, kernel, 0), atol=1e-4)


@case("cam")
def cam_last_class(f):
    maps, kernel = _cam_case(122, (3, 8, 8, 16), 4)
    assert_close(f(maps.copy(), kernel.copy(), 3), ref.my_cam(maps, kernel, 3), atol=1e-4)


@case("cam")
def cam_negative_values_kept(f):
    maps, kernel = _cam_case(123, (1, 5, 3, 7), 2)
    kernel[:, 1] = -np.abs(kernel[:, 1])
    assert_close(f(maps.copy(), kernel.copy(), 1), ref.my_cam(maps, kernel, 1), atol=1e-4)


def _blob(seed, height, width):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    bump = np.exp(-0.5 * (((yy - cy) / (0.2 * height)) ** 2 + ((xx - cx) / (0.15 * width)) ** 2))
    return (3.0 * (bump - bump.min())).astype(np.float32)


@case("box")
def box_square_map(f):
    heat = _blob(131, 16, 16)
    assert_same(f(heat.copy()), ref.my_box(heat))


@case("box")
def box_wide_map(f):
    heat = _blob(132, 10, 22)
    assert_same(f(heat.copy()), ref.my_box(heat))


@case("box")
def box_around_two_blobs(f):
    heat = _blob(133, 20, 20) + np.roll(_blob(134, 20, 20), 8, axis=1)
    assert_same(f(heat.copy()), ref.my_box(heat))
