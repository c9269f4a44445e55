"""Hidden tests of the graded questions: one function per test case, one point each.

A case is a function ``case(student_function)`` decorated with ``@case("question")``; it raises
``AssertionError`` (or anything else) when the student's function gets it wrong. The cases use other
inputs than the notebooks' self-checks (``ex.<name>.check``) and compare with ``labs/solutions``.
They run in the submission's kernel (``labs/runner.py``), each under the grader's time limit.
"""

from __future__ import annotations

import numpy as np


def case(question: str):
    """Mark a function as one test case (one point) of ``question``."""

    def mark(function):
        function.question = question
        return function

    return mark


def as_array(result, dtype=np.float64) -> np.ndarray:
    """The student's result as a numpy array (tensors included); AssertionError for None."""
    assert result is not None, "returned None"
    if hasattr(result, "numpy"):
        result = result.numpy()
    return np.asarray(result, dtype=dtype)


def assert_close(result, expected, *, atol: float = 1e-5, relative: bool = False) -> None:
    """Same shape and values as ``expected`` (tolerance ``atol``, relative to its largest value if asked)."""
    got, want = as_array(result), as_array(expected)
    assert got.shape == want.shape, f"shape {got.shape}, expected {want.shape}"
    scale = max(float(np.abs(want).max(initial=0.0)), 1e-12) if relative else 1.0
    assert np.allclose(got / scale, want / scale, rtol=1e-4, atol=atol), \
        f"values differ (largest difference {float(np.nanmax(np.abs(got - want))):.3g})"


def assert_same(result, expected) -> None:
    """Exactly equal integers or booleans, same shape."""
    got, want = np.asarray(result).ravel() if result is not None else None, np.asarray(expected).ravel()
    assert got is not None, "returned None"
    assert got.shape == want.shape and np.array_equal(got.astype(want.dtype), want), f"{got.tolist()} != expected"
