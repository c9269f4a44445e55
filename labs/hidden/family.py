"""Hidden tests of notebook 11 (xgradcam)."""

import numpy as np

from ..solutions import family as ref
from . import assert_close, case


def _pair(seed, shape, dead=()):
    rng = np.random.default_rng(seed)
    A = np.maximum(rng.normal(size=shape), 0.0)
    for b, k in dead:
        A[b, :, :, k] = 0.0
    return A, rng.normal(size=shape)


@case("xgradcam")
def xgradcam_plain(f):
    A, g = _pair(601, (2, 4, 6, 3))
    assert_close(f(A.copy(), g.copy()), ref.my_xgradcam_weights(A, g), atol=1e-6)


@case("xgradcam")
def xgradcam_dead_channels(f):
    A, g = _pair(602, (3, 5, 5, 4), dead=((0, 1), (2, 3)))
    assert_close(f(A.copy(), g.copy()), ref.my_xgradcam_weights(A, g), atol=1e-6)


@case("xgradcam")
def xgradcam_one_image(f):
    A, g = _pair(603, (1, 7, 3, 8), dead=((0, 0),))
    assert_close(f(A.copy(), g.copy()), ref.my_xgradcam_weights(A, g), atol=1e-6)
