"""The notebook 12 exercise cells_that_see: the reference passes and agrees with a brute force; mistakes are named."""

from __future__ import annotations

import numpy as np

from camtutor.exercises import limits as ex
from labs.solutions import limits as ref


def _evaluate(function):
    return ex.cells_that_see.evaluate(function)


def test_reference_passes_and_matches_a_brute_force():
    passed, message = _evaluate(ref.my_cells_that_see)
    assert passed, message
    for pixel in range(-3, 70):
        brute = [i for i in range(16) if pixel in range(-11 + 4 * i, -11 + 4 * i + 26)]
        np.testing.assert_array_equal(ref.my_cells_that_see(pixel, 16, 26, 4, -11), brute)
    assert ref.my_cells_that_see(30, 16, 26, 4, -11).tolist() == [4, 5, 6, 7, 8, 9, 10]
    assert ref.my_cells_that_see(100, 16, 26, 4, -11).size == 0


def test_a_student_version_with_a_list_passes():
    def student(pixel, n_cells, size, jump, start):
        return [i for i in range(n_cells) if start + i * jump <= pixel < start + i * jump + size]
    passed, message = _evaluate(student)
    assert passed, message


def test_typical_mistakes_get_specific_feedback():
    assert "returned None" in _evaluate(lambda *args: None)[1]

    def inclusive(pixel, n, size, jump, start):
        return [i for i in range(n) if start + i * jump <= pixel <= start + i * jump + size]

    def no_start(pixel, n, size, jump, start):
        return [i for i in range(n) if i * jump <= pixel < i * jump + size]

    def unclipped(pixel, n, size, jump, start):
        return [i for i in range(-10, n + 10) if start + i * jump <= pixel < start + i * jump + size]

    def reversed_order(pixel, n, size, jump, start):
        return ref.my_cells_that_see(pixel, n, size, jump, start)[::-1]

    assert "use <, not <=" in _evaluate(inclusive)[1]
    assert "starts at `start`" in _evaluate(no_start)[1]
    assert "0 <= i < n_cells" in _evaluate(unclipped)[1]
    assert "increasing order" in _evaluate(reversed_order)[1]
    passed, message = _evaluate(lambda pixel, n, size, jump, start: [5])
    assert not passed and "expected" in message


def test_hints_do_not_give_the_answer():
    assert all("flatnonzero((" not in hint for hint in ex.cells_that_see.hints)
