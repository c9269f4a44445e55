"""Hidden tests of notebooks 09 (pointing_game) and 10 (spearman)."""

import numpy as np

from ..solutions import trust as ref
from . import assert_close, assert_same, case


def _masks(batch, size, seed):
    rng = np.random.default_rng(seed)
    masks = np.zeros((batch, size, size), bool)
    for b in range(batch):
        y, x = rng.integers(0, size // 2, 2)
        masks[b, y:y + size // 3, x:x + size // 3] = True
    return masks


@case("pointing_game")
def pointing_same_size(f):
    masks = _masks(6, 12, 501)
    maps = np.random.default_rng(502).random((6, 12, 12)).astype(np.float32)
    maps[::2] += 3.0 * masks[::2]
    assert_same(f(maps.copy(), masks.copy()), ref.my_pointing_game(maps, masks))


@case("pointing_game")
def pointing_coarse_maps(f):
    masks = _masks(6, 32, 503)
    maps = np.random.default_rng(504).random((6, 8, 8)).astype(np.float32)
    assert_same(f(maps.copy(), masks.copy()), ref.my_pointing_game(maps, masks))


@case("pointing_game")
def pointing_constant_and_off_diagonal(f):
    masks = np.zeros((2, 6, 6), bool)
    masks[:, 0:2, 4:6] = True
    maps = np.zeros((2, 6, 6), np.float32)
    maps[0, 1, 5] = 1.0
    maps[1] = 0.3
    masks[1, 0, 0] = True
    assert_same(f(maps.copy(), masks.copy()), ref.my_pointing_game(maps, masks))


def _spearman_pair(seed, ties=False):
    rng = np.random.default_rng(seed)
    a = rng.random((3, 5, 7))
    b = np.stack([np.exp(a[0]), -a[1] ** 2, rng.random((5, 7))])
    if ties:
        a, b = np.round(a * 3) / 3, np.round(b * 2) / 2
    return a, b


@case("spearman")
def spearman_monotone_and_reversed(f):
    a, b = _spearman_pair(511)
    assert_close(f(a.copy(), b.copy()), ref.my_spearman(a, b), atol=1e-6)


@case("spearman")
def spearman_with_ties(f):
    a, b = _spearman_pair(512, ties=True)
    assert_close(f(a.copy(), b.copy()), ref.my_spearman(a, b), atol=1e-6)


@case("spearman")
def spearman_with_an_outlier(f):
    a, b = _spearman_pair(513)
    b[2, 0, 0] = 100.0
    assert_close(f(a.copy(), b.copy()), ref.my_spearman(a, b), atol=1e-6)
