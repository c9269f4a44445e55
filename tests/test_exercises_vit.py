"""The notebook 13 exercise tokens_to_grid: the reference passes and matches a loop; mistakes are named."""

from __future__ import annotations

import numpy as np

from camtutor.exercises import vit as ex
from labs.solutions import vit as ref


def _evaluate(function):
    return ex.tokens_to_grid.evaluate(function)


def test_reference_passes_and_matches_a_loop():
    passed, message = _evaluate(ref.my_tokens_to_grid)
    assert passed, message
    tokens = np.arange(2 * 7 * 3).reshape(2, 7, 3)
    grid = ref.my_tokens_to_grid(tokens, (2, 3), 1)
    for r in range(2):
        for c in range(3):
            np.testing.assert_array_equal(grid[:, r, c], tokens[:, 1 + r * 3 + c])


def test_typical_mistakes_get_specific_feedback():
    assert "returned None" in _evaluate(lambda *args: None)[1]

    def last_dropped(tokens, grid, prefix):
        h, w = grid
        return tokens[:, : h * w].reshape(len(tokens), h, w, -1)

    def swapped(tokens, grid, prefix):
        h, w = grid
        return tokens[:, prefix:].reshape(len(tokens), w, h, -1).transpose(0, 2, 1, 3)

    def kept_prefix(tokens, grid, prefix):
        return tokens

    assert "come *first*" in _evaluate(last_dropped)[1]
    assert "swapped" in _evaluate(swapped)[1]
    assert "drop them" in _evaluate(kept_prefix)[1]
    assert "pass your function itself" in _evaluate(np.zeros(3))[1]
