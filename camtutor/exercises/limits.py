"""Exercise for notebook 12: which cells of a map can see a given pixel?

::

    from camtutor.exercises import limits as ex
    ex.cells_that_see.check(my_cells_that_see)
    # my_cells_that_see(pixel, n_cells, size, jump, start) -> sorted int array of cell indices

Along one axis, cell ``i`` of a layer's map (``0 <= i < n_cells``) depends on the input pixels of its window
``[start + i * jump, start + i * jump + size)`` (``size`` and ``jump`` from
:func:`camtutor.course.receptive_field`; ``start`` is negative when the convolutions pad the border). The
answer is every ``i`` whose window contains ``pixel``, in increasing order (empty if none). The checker runs
hand-made cases (pixels at the border, a window as small as one pixel, windows that fall off the map) and
names the usual mistakes: an end included in the window, the offset ``start`` ignored, indices outside the map.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from camtutor.exercises._framework import Exercise, Feedback

__all__ = ["cells_that_see"]


# (pixel, n_cells, size, jump, start): the shapes model's last_conv (26 px, jump 4, start -11) and others, with the
# cells that see the pixel (the reference solution is in the course repository's labs/solutions/limits.py)
_CASES = {
    (0, 16, 26, 4, -11): (0, 1, 2), (30, 16, 26, 4, -11): (4, 5, 6, 7, 8, 9, 10),
    (63, 16, 26, 4, -11): (13, 14, 15), (14, 16, 26, 4, -11): (0, 1, 2, 3, 4, 5, 6),
    (5, 8, 18, 4, -7): (0, 1, 2, 3), (31, 8, 18, 4, -7): (6, 7), (7, 10, 1, 1, 0): (7,),
    (9, 10, 3, 2, 0): (4,), (40, 4, 5, 2, 0): (),
}


def _variants(pixel, n_cells, size, jump, start):
    begins = np.arange(n_cells) * jump + start
    inclusive = np.flatnonzero((begins <= pixel) & (pixel <= begins + size))   # the end pixel counted in
    no_start = np.flatnonzero((jump * np.arange(n_cells) <= pixel) & (pixel < jump * np.arange(n_cells) + size))
    lo, hi = int(np.ceil((pixel - size + 1 - start) / jump)), int(np.floor((pixel - start) / jump))
    unclipped = np.arange(lo, hi + 1)
    return (
        (inclusive, "a window [first, first + size) holds `size` pixels: the pixel first + size is already "
                    "outside it (use <, not <=)."),
        (no_start, "the window of cell 0 starts at `start` (a negative number: the padding), not at pixel 0; "
                   "cell i's window starts at start + i * jump."),
        (unclipped, "some of your indices are not cells of the map: keep only 0 <= i < n_cells."),
    )


def _check(function: Callable) -> None:
    if not callable(function):
        raise Feedback("pass your function itself, e.g. check(my_cells_that_see), without calling it.")
    for case, cells in _CASES.items():
        expected = np.array(cells, dtype=np.int64)
        result = function(*case)
        if result is None:
            raise Feedback("your function returned None: replace `return None` with your code, which returns "
                           "the indices of the cells whose window holds the pixel.")
        got = np.asarray(result).ravel()
        where = "pixel={}, n_cells={}, size={}, jump={}, start={}".format(*case)
        if got.size and not np.issubdtype(got.dtype, np.integer):
            if not np.array_equal(got, np.round(got)):
                raise Feedback(f"for {where}: return whole cell indices (ints), got {got.tolist()}.")
            got = got.astype(int)
        if np.array_equal(got, expected):
            continue
        if np.array_equal(np.sort(got), expected):
            raise Feedback(f"for {where}: the right cells, but return them in increasing order.")
        for variant, message in _variants(*case):
            if not np.array_equal(variant, expected) and np.array_equal(got, variant):
                raise Feedback(f"for {where}: {message}")
        raise Feedback(f"for {where}: expected {len(expected)} cells, got {got.tolist()}. Cell i sees the "
                       "pixels start + i * jump up to, but not including, start + i * jump + size.")


cells_that_see = Exercise(
    "Cells that see a pixel",
    _check,
    hints=[
        "Write down where the window of cell i begins, as a formula in i, jump and start. Where does it end?",
        "np.arange(n_cells) gives every cell index at once: compute every window's first pixel, then keep the "
        "cells whose window holds `pixel` with a boolean mask and np.flatnonzero.",
        "A window of `size` pixels beginning at `first` holds first, first + 1, ..., first + size - 1.",
    ],
    solution="limits.my_cells_that_see",
    success="Each pixel is seen by about size / jump cells per axis, so a map cell is never about one pixel.",
)
