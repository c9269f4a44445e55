"""Runs one question's hidden cases inside a submission's kernel and writes the results as JSON.

The grader (``python -m tools.labs grade``) appends one cell per question to the submission::

    from camtutor_lab.runner import grade
    grade(globals(), "gap_cam", "peak", "my_peak", "/tmp/.../peak.json", 60)

Each case runs under its own time limit (SIGALRM where the platform has it; the grader's per-cell limit
stops the rest); after a timeout the question's remaining cases fail without running. A case passes when it returns; any exception, a timeout or a missing function fails it,
with a short reason. The results go to a file, not to the cell's output, which the student's code can print to.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import signal


class CaseTimeout(BaseException):
    """A case ran over its time limit (a BaseException, so that ``except Exception`` in student code lets it pass)."""


@contextlib.contextmanager
def _time_limit(seconds: float):
    if not hasattr(signal, "setitimer") or seconds <= 0:
        yield
        return

    def stop(signum, frame):
        raise CaseTimeout()

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def cases(module: str, question: str) -> list:
    """The hidden cases of ``question``, in the order they are written in ``hidden/<module>.py``."""
    hidden = importlib.import_module(f"{__package__}.hidden.{module}")
    return [value for value in vars(hidden).values() if callable(value) and getattr(value, "question", None) == question]


def grade(namespace: dict, module: str, question: str, function: str, result_path: str, seconds: float) -> list:
    """Run every case of ``question`` on ``namespace[function]``; write [[case, passed, reason], ...] to ``result_path``."""
    student = namespace.get(function)
    results = []
    for case in cases(module, question):
        reason = ""
        if not callable(student):
            reason = f"{function} is not defined"
        elif any(previous[2].startswith("timed out") for previous in results):
            reason = "not run: an earlier case timed out"
        else:
            try:
                with _time_limit(seconds):
                    case(student)
            except CaseTimeout:
                reason = f"timed out after {seconds:g} s"
            except AssertionError as error:
                reason = str(error).splitlines()[0] if str(error) else "wrong answer"
            except KeyboardInterrupt:  # the grader's interrupt: stop here, write nothing
                raise
            except BaseException as error:  # the student's code raised (SystemExit included)
                reason = f"raised {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}".rstrip(": ")
        results.append([case.__name__, not reason, reason[:200]])
    with open(result_path, "w", encoding="utf-8") as file:
        json.dump(results, file)
    return results
