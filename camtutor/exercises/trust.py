"""Exercise for notebook 09: write the pointing game, checked against ``camtutor.metrics.pointing_game``.

::

    from camtutor.exercises import trust as ex_trust
    ex_trust.pointing_game.check(my_pointing_game)
    # my_pointing_game(maps, masks) -> (B,) bool: is each map's maximum on its object?

``maps`` is (B, h, w) float at any resolution (a layer's 16x16, say), ``masks`` (B, H, W) bool. Each map is
resized to its mask's size (``camtutor.metrics.resize_maps``, bilinear), and image i is a hit when the first
maximal pixel of map i (``np.argmax`` order) lies on an object pixel of mask i. A constant map points nowhere:
a miss. No tolerance (Zhang et al.'s 15 px margin is left out). The checker runs hand-made cases (a map whose
peak is off the diagonal, a constant map, maps at the layer's resolution) and real shapes masks, and names the
likely mistake.

Exercise for notebook 10: ``spearman.check(my_spearman)`` where ``my_spearman(maps_a, maps_b)`` -> (B,) Spearman rank
correlation of ``maps_a[i]`` and ``maps_b[i]`` (same shape (B, h, w)), average ranks for ties, as
``camtutor.metrics.similarity(...)["spearman"]``. Constant maps are not in the checker's cases.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from camtutor.exercises._framework import Exercise, Feedback

__all__ = ["pointing_game", "spearman"]


# --------------------------------------------------------------------------- typical mistakes, for feedback
def _variant(maps, masks, *, swap=False, resize=True, constant_is_miss=True):
    """metrics.pointing_game with one typical mistake switched on."""
    from camtutor.metrics import resize_maps

    big = resize_maps(np.asarray(maps, dtype=np.float32), masks.shape[1:]) if resize else np.asarray(maps)
    pixels = big.reshape(big.shape[0], -1)
    rows, cols = np.unravel_index(pixels.argmax(axis=1), big.shape[1:])
    hits = masks[np.arange(len(masks)), cols, rows] if swap else masks[np.arange(len(masks)), rows, cols]
    return hits & (pixels.max(axis=1) > pixels.min(axis=1)) if constant_is_miss else hits


_MISTAKES = (
    ({"swap": True}, "you read the peak's (row, column) as (x, y): np.unravel_index gives (row, column), "
                     "and a mask is indexed mask[row, column]."),
    ({"resize": False}, "the maps are smaller than the masks: resize each map to the mask's size first "
                        "(camtutor.metrics.resize_maps), or the peak's coordinates are in the wrong units."),
    ({"constant_is_miss": False}, "a constant map has no peak: its argmax is just the first pixel. Count it as a miss."),
)


@functools.lru_cache(maxsize=1)
def _cases():
    from camtutor import data
    from camtutor.metrics import pointing_game as truth

    cases = []
    # 1. hand-made 8x8: a peak at (row 1, col 6) on an object in the top-right corner, off the diagonal
    masks = np.zeros((3, 8, 8), bool)
    masks[:2, 0:3, 5:8] = True
    masks[2, 0:3, 0:3] = True      # the top-left object, under the first pixel
    maps = np.zeros((3, 8, 8), np.float32)
    maps[0, 1, 6] = 1.0            # hit (the object's row 1, column 6)
    maps[1, 6, 1] = 1.0            # miss (bottom-left); read as (x, y) it would be a hit
    maps[2] = 0.5                  # constant: a miss, though its argmax (0, 0) is on the object
    cases.append(("the hand-made 8x8 case", maps, masks))
    # 2. real masks (64x64) and smooth 16x16 maps, some peaked on the object
    shapes = data.shapes(12, seed=77)
    rng = np.random.default_rng(3)
    low = rng.random((12, 16, 16)).astype(np.float32)
    for i in range(0, 12, 2):
        ys, xs = np.nonzero(shapes.masks[i])
        low[i, ys[len(ys) // 2] // 4, xs[len(xs) // 2] // 4] = 2.0   # the cell over an object pixel
    cases.append(("16x16 maps with 64x64 shapes masks", low, shapes.masks))
    return tuple((where, maps, masks, truth(maps, masks)) for where, maps, masks in cases)


def _check(function: Callable) -> None:
    if not callable(function):
        raise Feedback("pass your function itself, e.g. check(my_pointing_game), without calling it.")
    for where, maps, masks, expected in _cases():
        result = function(maps.copy(), masks.copy())
        if result is None:
            raise Feedback("your function returned None: replace `return None` with your code, which returns "
                           "one True/False per image.")
        got = np.asarray(result)
        if got.ndim == 0:
            raise Feedback(f"on {where}: you returned one number ({got}); return one hit per image, shape "
                           f"{expected.shape}: the rate is hits.mean(), taken later.")
        if got.shape != expected.shape:
            raise Feedback(f"on {where}: expected shape {expected.shape} (one hit per image), got {got.shape}.")
        if not np.array_equal(got.astype(bool), expected):
            for mistake, message in _MISTAKES:
                typical = np.asarray(_variant(maps, masks, **mistake)).astype(bool)
                if not np.array_equal(typical, expected) and np.array_equal(typical, got.astype(bool)):
                    raise Feedback(f"on {where}: {message}")
            wrong = np.flatnonzero(got.astype(bool) != expected)
            raise Feedback(f"on {where}: images {wrong.tolist()} are scored wrongly. Take each map's own maximum "
                           "(not the batch's), after resizing it to its mask's size.")


pointing_game = Exercise(
    "The pointing game",
    _check,
    hints=[
        "Three steps per image: bring the map to the mask's size; find the map's maximal pixel; ask the mask "
        "whether that pixel is on the object. camtutor.metrics.resize_maps(maps, size) does the first step.",
        "np.argmax on each map flattened to (B, H*W) gives the first maximum per image; np.unravel_index turns "
        "it into (row, column). Index the masks with an image index, a row and a column at once.",
        "One image in the checker has a constant map. Where is its argmax, and should that count as pointing?",
    ],
    solution="trust.my_pointing_game",
    success="Your pointing game gives the same hits as camtutor.metrics.pointing_game (with tolerance=0).",
)


# --------------------------------------------------------------------------- notebook 10: Spearman
def _pearson(a, b):
    a, b = a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)
    return (a * b).sum(axis=1) / np.sqrt((a ** 2).sum(axis=1) * (b ** 2).sum(axis=1))


@functools.lru_cache(maxsize=1)
def _spearman_cases():
    from camtutor.metrics import similarity

    rng = np.random.default_rng(5)
    a = rng.random((4, 6, 6))
    b = np.stack([a[0] ** 3, -a[1], rng.random((6, 6)), np.round(a[3] * 3) / 3])   # monotone, reversed, unrelated, ties
    b[2, 0, 0] = 50.0                                                             # one outlier: Pearson is fooled
    a = a.copy()
    a[3] = np.round(a[3] * 2) / 2                                                 # ties in both maps
    return a, b, similarity(a, b)["spearman"]


def _check_spearman(function: Callable) -> None:
    if not callable(function):
        raise Feedback("pass your function itself, e.g. check(my_spearman), without calling it.")
    a, b, expected = _spearman_cases()
    result = function(a.copy(), b.copy())
    if result is None:
        raise Feedback("your function returned None: replace `return None` with your code, which returns one "
                       "correlation per image.")
    got = np.asarray(result, dtype=np.float64)
    if got.shape != expected.shape:
        raise Feedback(f"expected shape {expected.shape} (one value per image), got {got.shape}.")
    if np.allclose(got, expected, atol=1e-6):
        return
    flat_a, flat_b = a.reshape(4, -1), b.reshape(4, -1)
    if np.allclose(got, _pearson(flat_a, flat_b), atol=1e-6):
        raise Feedback("you computed Pearson's correlation of the values. Spearman's is Pearson's of the *ranks*.")
    if np.allclose(got[:3], expected[:3], atol=1e-6):
        raise Feedback("image 3 has tied values: give tied values the average of their ranks "
                       "(scipy.stats.rankdata does), not an order that depends on where they sit.")
    raise Feedback("the correlations differ from metrics.similarity(...)['spearman']. Rank each image's pixels "
                   "on their own (not the whole batch at once), then correlate the two rank vectors.")


spearman = Exercise(
    "Spearman rank correlation of two maps",
    _check_spearman,
    hints=[
        "Flatten each map to a vector of h*w pixels. Spearman's correlation is Pearson's correlation of the ranks "
        "of those values, not of the values themselves.",
        "scipy.stats.rankdata(x, axis=1) ranks every row on its own, and gives tied values their average rank.",
        "Pearson of two vectors: subtract each one's mean, then sum of products / sqrt(product of sums of squares).",
    ],
    solution="trust.my_spearman",
    success="Your Spearman matches metrics.similarity: a monotone change of a map (x -> x**3) keeps it at 1.",
)
