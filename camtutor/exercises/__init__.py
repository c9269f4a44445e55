"""Self-check exercises for the notebooks: instant feedback, staged hints, a solution on request.

Each notebook's exercises live in a submodule and are :class:`Exercise`
objects. A student writes a function, then::

    from camtutor.exercises import gap_cam as ex
    ex.gap.check(my_gap)      # friendly feedback, never the answer
    ex.gap.hint()             # the next hint, one more per call
    ex.gap.solution()         # the reference solution, only when asked

The reference solutions are ordinary functions, tested in tests/.
"""

from camtutor.exercises._framework import Exercise, Feedback

__all__ = ["Exercise", "Feedback"]
