"""Hidden tests of notebook 12 (cells_that_see)."""

from ..solutions import limits as ref
from . import assert_same, case


def _check(f, *args):
    assert_same(f(*args), ref.my_cells_that_see(*args))


@case("cells_that_see")
def cells_middle_of_last_conv(f):
    _check(f, 37, 16, 26, 4, -11)


@case("cells_that_see")
def cells_at_the_border(f):
    _check(f, 63, 16, 26, 4, -11)


@case("cells_that_see")
def cells_other_layer(f):
    _check(f, 12, 8, 10, 2, -4)


@case("cells_that_see")
def cells_outside_every_window(f):
    _check(f, 50, 5, 3, 3, 0)
