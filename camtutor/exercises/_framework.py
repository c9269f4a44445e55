"""The :class:`Exercise` object behind every notebook exercise."""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Callable, Sequence

#: Where the reference solutions are, relative to the course repository (not part of the installed package).
SOLUTIONS = "labs/solutions"
REPOSITORY = "https://github.com/camtutor/camtutor"


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
        solution: where the reference solution is, ``"module.function"`` in the
            course repository's ``labs/solutions/`` (e.g. ``"gap_cam.my_peak"``).
            It is not in the installed package (graded labs, ``python -m
            tools.labs``); :meth:`solution` prints it when the repository is
            at hand (a clone, Binder). It must pass ``checker`` (tested).
        success: extra sentence printed when the answer is right.
    """

    def __init__(
        self,
        title: str,
        checker: Callable[[object], None],
        hints: Sequence[str],
        solution: str,
        success: str = "",
    ) -> None:
        self.title = title
        self.checker = checker
        self.hints = list(hints)
        self.module, _, self.function = solution.partition(".")
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
        """Print the reference solution, read from the course repository's ``labs/solutions/``.

        Nothing is printed but a notice when ``CAMTUTOR_HIDE_SOLUTIONS`` is set (graded labs), or when the
        repository is not at hand (the installed package holds no solutions): the notice says where they are.
        """
        if os.environ.get("CAMTUTOR_HIDE_SOLUTIONS", "").strip() not in ("", "0"):
            print(f"{self.title}: solutions are hidden in this lab (CAMTUTOR_HIDE_SOLUTIONS is set). "
                  "Use .hint() and .check(), or ask your instructor.")
            return
        where = f"{SOLUTIONS}/{self.module}.py"
        source = solution_source(self.module, self.function)
        if source is None:
            print(f"{self.title}: the solutions are not part of the installed camtutor package. They are in the "
                  f"course repository, {where} (function {self.function}): open it in a clone or on Binder, "
                  f"or at {REPOSITORY}/blob/main/{where}. In a graded lab, ask your instructor.")
            return
        print(source)

    def __repr__(self) -> str:
        return f"<Exercise {self.title!r}: .check(answer), .hint(), .solution()>"


def labs_folder() -> Path | None:
    """The course repository's ``labs/`` folder, or None when it is not at hand.

    Looked for in ``CAMTUTOR_LABS`` (a path), beside the ``camtutor`` package (an editable install from a
    clone), then in the working directory and its parents (a notebook in a clone's ``notebooks/``, Binder).
    """
    import camtutor

    candidates = [Path(os.environ["CAMTUTOR_LABS"])] if os.environ.get("CAMTUTOR_LABS") else []
    candidates.append(Path(camtutor.__file__).resolve().parent.parent / "labs")
    here = Path.cwd()
    candidates += [folder / "labs" for folder in (here, *list(here.parents)[:3])]
    for folder in candidates:
        if (folder / "solutions").is_dir():
            return folder
    return None


def solution_source(module: str, function: str) -> str | None:
    """Source of ``function`` in ``labs/solutions/<module>.py``, or None when the repository is not at hand."""
    folder = labs_folder()
    path = folder / "solutions" / f"{module}.py" if folder is not None else None
    if path is None or not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            return "\n".join(text.split("\n")[node.lineno - 1:node.end_lineno])
    return None
