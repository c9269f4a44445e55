"""Self-check exercises for the notebooks: instant feedback, staged hints, a solution on request.

Each notebook's exercises live in a submodule and are :class:`Exercise`
objects. A student writes a function, then::

    from camtutor.exercises import gap_cam as ex
    ex.gap.check(my_gap)      # friendly feedback, never the answer
    ex.gap.hint()             # the next hint, one more per call
    ex.gap.solution()         # the reference solution, only when asked

The checkers compare with camtutor's own functions or with expected answers written out. The reference
solutions are not in the package: they are in the course repository's ``labs/solutions/`` (one module per
module here), which ``.solution()`` reads when the repository is at hand (a clone, Binder), and which
``python -m tools.labs release`` puts into the instructor notebooks and the autograder of a graded lab.
"""

from camtutor.exercises._framework import Exercise, Feedback

__all__ = ["Exercise", "Feedback"]
