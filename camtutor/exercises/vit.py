"""Exercise for notebook 13: lay a transformer's tokens out on their patch grid.

::

    from camtutor.exercises import vit as ex
    ex.tokens_to_grid.check(my_tokens_to_grid)
    # my_tokens_to_grid(tokens, grid, prefix) -> (B, h, w, D) array

``tokens`` (B, T, D) is a token layer's output: ``prefix`` leading tokens that are not patches (a class token,
register tokens), then ``h * w`` patch tokens in row-major order (token ``prefix + r * w + c`` is the patch in
row r, column c: what ``Reshape((h * w, D))`` of a (B, h, w, D) patch embedding gives). The answer drops the
prefix and reshapes the patches to (B, h, w, D). The checker uses non-square grids, several prefixes and
batches, and names the usual mistakes: the prefix kept or the last tokens dropped, rows and columns swapped.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from camtutor.exercises._framework import Exercise, Feedback

__all__ = ["tokens_to_grid"]


def _expected(tokens, grid, prefix):
    """Cell (r, c) holds token ``prefix + r * w + c``, by index arithmetic (the reference solution, a
    reshape, is in the course repository's labs/solutions/vit.py)."""
    h, w = grid
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return tokens[:, prefix + rows * w + cols, :]


# (batch, grid, prefix, dim): a ViT's 8x8 grid with a class token, non-square grids, no prefix, registers
_CASES = ((2, (8, 8), 1, 3), (1, (2, 3), 1, 2), (3, (3, 2), 0, 4), (2, (2, 5), 4, 1), (1, (1, 4), 1, 2))


def _variants(tokens, grid, prefix):
    h, w = grid
    b, _, d = tokens.shape
    out = []
    if prefix:
        out.append((tokens[:, : h * w].reshape(b, h, w, d),
                    "you dropped the last tokens; the non-patch tokens (the class token) come *first*: "
                    "tokens[:, prefix:]."))
    out.append((tokens[:, prefix:].reshape(b, w, h, d).transpose(0, 2, 1, 3),
                "rows and columns are swapped: token prefix + r * w + c is row r, column c (row-major), so "
                "reshape to (B, h, w, D) directly, with no transpose."))
    return out


def _check(function: Callable) -> None:
    if not callable(function):
        raise Feedback("pass your function itself, e.g. check(my_tokens_to_grid), without calling it.")
    rng = np.random.default_rng(13)
    for batch, grid, prefix, dim in _CASES:
        tokens = rng.normal(size=(batch, prefix + grid[0] * grid[1], dim)).astype(np.float32)
        expected = _expected(tokens, grid, prefix)
        result = function(tokens.copy(), grid, prefix)
        if result is None:
            raise Feedback("your function returned None: replace `return None` with your code, which returns "
                           "the patch tokens as an array (B, h, w, D).")
        got = np.asarray(result)
        where = f"tokens {tokens.shape}, grid={grid}, prefix={prefix}"
        if got.shape != expected.shape:
            if got.size == tokens.size:
                raise Feedback(f"for {where}: the prefix tokens are not patches; drop them before the reshape "
                               f"(expected shape {expected.shape}, got {got.shape}).")
            raise Feedback(f"for {where}: expected shape {expected.shape} (B, h, w, D), got {got.shape}.")
        if np.array_equal(got, expected):
            continue
        for variant, message in _variants(tokens, grid, prefix):
            if np.array_equal(got, variant):
                raise Feedback(f"for {where}: {message}")
        raise Feedback(f"for {where}: the right shape, but the wrong tokens in some cells. Cell (r, c) holds "
                       "token prefix + r * w + c.")


tokens_to_grid = Exercise(
    "Tokens to grid",
    _check,
    hints=[
        "Which tokens are patches? The first `prefix` tokens are not (the class token is token 0).",
        "tokens[:, prefix:, :] keeps the h * w patch tokens, (B, h * w, D).",
        "The patch tokens came from Reshape((h * w, D)) of a (B, h, w, D) map: reshape them back, "
        "patches.reshape(B, h, w, D).",
    ],
    solution="vit.my_tokens_to_grid",
    success="Any CAM method can now work on the (B, h, w, D) grid, as on a convolutional feature map.",
)
