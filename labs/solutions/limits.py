"""Notebook 12: which cells of a map can see a pixel?"""

import numpy as np


def my_cells_that_see(pixel, n_cells, size, jump, start):
    """Indices i in [0, n_cells) with start + i * jump <= pixel < start + i * jump + size, increasing."""
    first = start + jump * np.arange(n_cells)            # where each cell's window begins
    return np.flatnonzero((first <= pixel) & (pixel < first + size))
