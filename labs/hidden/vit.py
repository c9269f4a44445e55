"""Hidden tests of notebook 13 (tokens_to_grid)."""

import numpy as np

from ..solutions import vit as ref
from . import assert_close, case


def _check(f, batch, grid, prefix, dim, seed):
    tokens = np.random.default_rng(seed).normal(size=(batch, prefix + grid[0] * grid[1], dim))
    tokens = tokens.astype(np.float32)
    assert_close(f(tokens.copy(), grid, prefix), ref.my_tokens_to_grid(tokens, grid, prefix))


@case("tokens_to_grid")
def grid_of_the_bundled_vit(f):
    _check(f, 3, (8, 8), 1, 32, 0)


@case("tokens_to_grid")
def grid_non_square(f):
    _check(f, 2, (6, 10), 1, 4, 1)


@case("tokens_to_grid")
def grid_with_register_tokens(f):
    _check(f, 1, (4, 3), 5, 2, 2)


@case("tokens_to_grid")
def grid_without_prefix(f):
    _check(f, 2, (3, 7), 0, 3, 3)
