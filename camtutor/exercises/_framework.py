"""The :class:`Exercise` object behind every notebook exercise."""

from __future__ import annotations

import inspect
import textwrap
from typing import Callable, Sequence


class Feedback(Exception):
    """Raised by a checker with a student-facing message explaining what is still wrong."""


class Exercise:
    """One exercise: a checker, staged hints and a reference solution.

    Args:
        title: short name shown in messages.
        checker: ``checker(answer)`` raises :class:`Feedback` (or an
            AssertionError) with a friendly message when the answer is wrong,
            and returns normally when it is right.
        hints: shown one at a time, in order, by :meth:`hint`.
        solution: the reference implementation; its source is shown by
            :meth:`solution` and it must pass ``checker`` (tested).
        success: extra sentence printed when the answer is right.
    """

    def __init__(
        self,
        title: str,
        checker: Callable[[object], None],
        hints: Sequence[str],
        solution: Callable,
        success: str = "",
    ) -> None:
        self.title = title
        self.checker = checker
        self.hints = list(hints)
        self.reference = solution
        self.success = success
        self._hints_shown = 0

    def evaluate(self, answer: object) -> tuple[bool, str]:
        """Run the checker: (passed, message). Never raises for a wrong answer."""
        if answer is None or answer is Ellipsis:
            return False, f"{self.title}: nothing to check yet. Write your answer, then call check(...) again."
        try:
            self.checker(answer)
        except (Feedback, AssertionError) as feedback:
            return False, f"{self.title}: not yet. {feedback}".rstrip()
        except NotImplementedError:
            return False, f"{self.title}: your function still raises NotImplementedError. Replace it with your code."
        except Exception as error:  # the student's code crashed: show the error, not our traceback
            return False, f"{self.title}: your code raised {type(error).__name__}: {error}"
        return True, f"{self.title}: correct! {self.success}".rstrip()

    def check(self, answer: object) -> bool:
        """Print friendly feedback about ``answer`` and return whether it is correct."""
        passed, message = self.evaluate(answer)
        if not passed and self._hints_shown < len(self.hints):
            message += f"\n(Stuck? Call .hint() for hint {self._hints_shown + 1} of {len(self.hints)}.)"
        print(message)
        return passed

    def hint(self) -> None:
        """Print the next hint; after the last one, point to :meth:`solution`."""
        if self._hints_shown < len(self.hints):
            self._hints_shown += 1
            print(f"Hint {self._hints_shown} of {len(self.hints)}: {self.hints[self._hints_shown - 1]}")
        else:
            print("No more hints. Call .solution() to see one correct answer.")

    def solution(self) -> None:
        """Print the reference solution's source code, unless ``CAMTUTOR_HIDE_SOLUTIONS`` is set (graded labs)."""
        import os

        if os.environ.get("CAMTUTOR_HIDE_SOLUTIONS", "").strip() not in ("", "0"):
            print(f"{self.title}: solutions are hidden in this lab (CAMTUTOR_HIDE_SOLUTIONS is set). "
                  "Use .hint() and .check(), or ask your instructor.")
            return
        print(textwrap.dedent(inspect.getsource(self.reference)))

    def __repr__(self) -> str:
        return f"<Exercise {self.title!r}: .check(answer), .hint(), .solution()>"
