"""Graded labs: release the course notebooks for students, then grade their submissions offline.

Command line (from the repository root)::

    python -m tools.labs release OUT [NN ...]       # every notebook with graded questions, or name some
    python -m tools.labs grade OUT/autograder SUB.ipynb [...] --csv grades.csv
    python -m tools.labs grade OUT/autograder OUT/instructor/*.ipynb --require-full-marks   # check a release

``release`` writes three folders:

* ``OUT/student/NN_*.ipynb``: the course notebooks, outputs cleared, each answer cell as in the course
  (``def my_peak(...): # YOUR CODE HERE / return None``). Hints work (``ex.peak.hint()``); ``ex.peak.check``
  gives the notebook's self-check feedback. No solution and no hidden test is in this folder.
* ``OUT/instructor/NN_*.ipynb``: the same notebooks, cell for cell (same cell ids), with the answer cells'
  functions replaced by the reference solutions of ``labs/solutions/``.
* ``OUT/autograder/``: ``lab.json`` (notebooks, questions, points) and ``camtutor_lab/`` (a copy of the
  repository's ``labs/``: solutions, hidden cases, the in-kernel runner). The instructor keeps it.

``grade`` runs each submission top to bottom in a fresh ``python3`` kernel (no Docker, no network: the
kernel's HTTP(S) proxy is an address where nothing listens), each cell under a time limit (a cell over it is
interrupted and the next cell runs), then one cell per question that runs the hidden cases (one point
each, so partial credit within a question) on the student's function. One CSV row per submission:
``submission, notebook, points, max_points``, one column per question, ``note`` (why points were lost: a
timeout, an exception, a missing function, an invalid notebook). A bad submission never stops the others.
"""

from __future__ import annotations

import argparse
import ast
import copy
import csv
import datetime as dt
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from tools.notebooks import KERNEL_ENV, NOTEBOOK_DIR, select

__all__ = ["LABS_DIR", "STUB", "release", "grade", "grade_one", "answer_cells", "main"]

#: The repository's labs/ folder: questions, reference solutions, hidden cases, runner.
LABS_DIR: Path = Path(__file__).resolve().parent.parent / "labs"
#: The body of an unanswered function in a course notebook's answer cell.
STUB = ("# YOUR CODE HERE", "return None")
#: Package name of the labs/ copy inside the autograder folder.
PACKAGE = "camtutor_lab"
#: Kernel environment while grading: the course's (tools.notebooks) and no network.
OFFLINE = {name: "http://127.0.0.1:9" for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")}


# --------------------------------------------------------------------------- release
def _questions() -> dict:
    sys.path.insert(0, str(LABS_DIR.parent))
    try:
        from labs.questions import QUESTIONS
    finally:
        sys.path.pop(0)
    return QUESTIONS


def _case_count(module: str, question: str) -> int:
    sys.path.insert(0, str(LABS_DIR.parent))
    try:
        from labs.runner import cases

        return len(cases(module, question))
    finally:
        sys.path.pop(0)


def _function_node(source: str, name: str) -> ast.FunctionDef:
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise ValueError(f"no function {name} in the cell or file")


def answer_cells(notebook, function: str) -> list[int]:
    """Indices of the code cells that define ``function`` (the answer cell of a question)."""
    found = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and re.search(rf"^def {re.escape(function)}\(", cell.source, re.M):
            found.append(index)
    return found


def _solution_source(module: str, function: str) -> str:
    text = (LABS_DIR / "solutions" / f"{module}.py").read_text(encoding="utf-8")
    node = _function_node(text, function)
    return "\n".join(text.split("\n")[node.lineno - 1:node.end_lineno])  # whole lines: end-of-line comments too


def _with_solution(source: str, function: str, solution: str) -> str:
    """The answer cell's source with the stub of ``function`` replaced by ``solution`` (a whole ``def``)."""
    node = _function_node(source, function)
    lines = source.split("\n")
    body = "\n".join(lines[node.lineno:node.end_lineno])  # after the (one-line) signature
    if [line.strip() for line in body.splitlines() if line.strip()] != list(STUB):
        raise ValueError(f"{function} is not an unanswered stub ({' / '.join(STUB)}) in the course notebook")
    return "\n".join(lines[:node.lineno - 1] + solution.split("\n") + lines[node.end_lineno:])


def _cleared(notebook):
    out = copy.deepcopy(notebook)
    out.metadata.pop("widgets", None)
    for cell in out.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("execution", None)
    return out


def release(out: Path, names: Sequence[str] = (), notebook_dir: Path = NOTEBOOK_DIR) -> dict:
    """Write ``out/student``, ``out/instructor`` and ``out/autograder`` (see the module docstring); return lab.json."""
    import nbformat

    questions = _questions()
    paths = [p for p in select(notebook_dir, names) if p.name[:2] in questions]
    if not paths:
        raise ValueError("none of the selected notebooks has graded questions (labs/questions.py)")
    out = Path(out)
    for folder in ("student", "instructor", "autograder"):
        shutil.rmtree(out / folder, ignore_errors=True)
        (out / folder).mkdir(parents=True)
    lab = {"released": dt.date.today().isoformat(), "package": PACKAGE, "notebooks": {}}
    for path in paths:
        course = nbformat.read(path, as_version=4)
        student = _cleared(course)
        student.metadata["camtutor_lab"] = {"notebook": path.stem}
        instructor = copy.deepcopy(student)
        entries = []
        for question, module, function in questions[path.name[:2]]:
            cells = answer_cells(course, function)
            if len(cells) != 1:
                raise ValueError(f"{path.name}: expected one cell defining {function}, found {len(cells)}")
            cell = instructor.cells[cells[0]]
            cell.source = _with_solution(cell.source, function, _solution_source(module, function))
            entries.append({"question": question, "module": module, "function": function,
                            "cell": cells[0], "points": _case_count(module, question)})
        lab["notebooks"][path.stem] = {"questions": entries, "max_points": sum(e["points"] for e in entries)}
        nbformat.write(student, out / "student" / path.name)
        nbformat.write(instructor, out / "instructor" / path.name)
    shutil.copytree(LABS_DIR, out / "autograder" / PACKAGE, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (out / "autograder" / "lab.json").write_text(json.dumps(lab, indent=1) + "\n", encoding="utf-8")
    return lab


# --------------------------------------------------------------------------- grade
def _which_notebook(notebook, path: Path, lab: dict) -> str | None:
    named = (notebook.metadata.get("camtutor_lab") or {}).get("notebook") if notebook is not None else None
    if named in lab["notebooks"]:
        return named
    for stem in lab["notebooks"]:  # a renamed or re-saved copy: its file name holds the stem, or starts with the number
        if stem in path.name or path.name[:3] == stem[:3]:
            return stem
    return None


def _kernel_env() -> dict:
    env = {**os.environ, **KERNEL_ENV, **OFFLINE, "NO_PROXY": "", "no_proxy": ""}
    env.pop("MPLBACKEND", None)
    return env


def _error_of(cell) -> str | None:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return f"{output.get('ename')}: {str(output.get('evalue', '')).splitlines()[0] if output.get('evalue') else ''}"
    return None


def _responsive(client, seconds: float = 20.0) -> bool:
    """Interrupt the kernel; whether it then answers a trivial cell within ``seconds``."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    from nbclient.util import run_sync

    run_sync(client.km.interrupt_kernel)()
    saved, client.timeout = client.timeout, seconds
    try:
        _run_extra(client, "pass")
        return True
    except (CellTimeoutError, DeadKernelError, RuntimeError):
        return False
    finally:
        client.timeout = saved


def _run_extra(client, source: str) -> None:
    """Execute a cell appended to the client's notebook (nbclient stores each cell at its index)."""
    import nbformat

    client.nb.cells.append(nbformat.v4.new_code_cell(source))
    client.execute_cell(client.nb.cells[-1], len(client.nb.cells) - 1)


def grade_one(path: Path, autograder: Path, lab: dict, cell_timeout: float = 120.0) -> dict:
    """Grade one submission: a row ``{submission, notebook, points, max_points, <question>..., note}``."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    path = Path(path)
    row = {"submission": str(path), "notebook": "", "points": 0, "max_points": 0, "note": ""}
    try:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
    except Exception as error:  # not JSON, not a notebook, an invalid notebook
        row["note"] = f"invalid notebook: {type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else ''}"
        stem = _which_notebook(None, path, lab)
        if stem is not None:  # known from its file name: zero for each of its questions
            row.update(notebook=stem, max_points=lab["notebooks"][stem]["max_points"])
            row.update({q["question"]: 0 for q in lab["notebooks"][stem]["questions"]})
        return row
    stem = _which_notebook(notebook, path, lab)
    if stem is None:
        row["note"] = "not a notebook of this lab (no camtutor_lab metadata, no known number in the file name)"
        return row
    entry = lab["notebooks"][stem]
    row.update(notebook=stem, max_points=entry["max_points"])
    for question in entry["questions"]:
        row[question["question"]] = 0
    notes: list[str] = []
    notebook = _cleared(notebook)
    # The kernel works in one empty folder; the results go to another, which the student's cells never learn.
    with tempfile.TemporaryDirectory(prefix="camtutor-grade-") as work, \
            tempfile.TemporaryDirectory(prefix="camtutor-results-") as results:
        client = NotebookClient(notebook, timeout=cell_timeout, allow_errors=True, kernel_name="python3",
                                record_timing=False, store_widget_state=False,
                                resources={"metadata": {"path": work}})
        # The kernel process's own stderr (its start-up warnings, TensorFlow's C++ log) is not the notebook's.
        with client.setup_kernel(env=_kernel_env(), stderr=subprocess.DEVNULL):
            alive = True
            for index, cell in enumerate(list(notebook.cells)):
                if cell.cell_type != "code" or not cell.source.strip():
                    continue
                try:
                    client.execute_cell(cell, index)
                except CellTimeoutError:
                    notes.append(f"cell {index} timed out after {cell_timeout:g} s")
                    if not _responsive(client):
                        notes.append("the kernel did not stop: the rest was not run")
                        alive = False
                        break
                    continue
                except DeadKernelError:
                    notes.append(f"the kernel died in cell {index}")
                    alive = False
                    break
                error = _error_of(cell)
                if error and len([n for n in notes if " raised " in n]) < 3:
                    notes.append(f"cell {index} raised {error[:100]}")
            for question in entry["questions"]:
                name, error = question["question"], None
                result = Path(results) / f"{name}.json"
                if alive:
                    source = (f"import sys as _lab_sys\n_lab_sys.path.insert(0, {str(Path(autograder).resolve())!r})\n"
                              f"from {lab.get('package', PACKAGE)}.runner import grade as _lab_grade\n"
                              f"_lab_grade(globals(), {question['module']!r}, {name!r}, {question['function']!r}, "
                              f"{str(result)!r}, {cell_timeout!r})")
                    client.timeout = cell_timeout * (question["points"] + 1)
                    try:
                        _run_extra(client, source)
                    except CellTimeoutError:
                        alive = _responsive(client)
                    except DeadKernelError:
                        alive = False
                    error = _error_of(client.nb.cells[-1])
                if not result.is_file():
                    why = f"its grading cell raised {error[:100]}" if alive and error else "the kernel stopped"
                    notes.append(f"{name}: not graded ({why})")
                    continue
                cases = json.loads(result.read_text(encoding="utf-8"))
                row[name] = sum(1 for _, passed, _ in cases if passed)
                failed = [reason for _, passed, reason in cases if not passed]
                if failed:
                    reason = failed[0] if len(set(failed)) == 1 else "; ".join(dict.fromkeys(failed))
                    notes.append(f"{name}: {len(failed)} of {len(cases)} cases failed ({reason[:160]})")
    row["points"] = sum(row[q["question"]] for q in entry["questions"])
    row["note"] = "; ".join(notes)
    return row


def _late_days(path: Path, deadline: dt.datetime | None) -> int:
    if deadline is None:
        return 0
    submitted = dt.datetime.fromtimestamp(Path(path).stat().st_mtime, tz=deadline.tzinfo)
    return max(0, math.ceil((submitted - deadline).total_seconds() / 86400))


def grade(autograder: Path, submissions: Sequence[Path], csv_path: Path | None = None, cell_timeout: float = 120.0,
          deadline: dt.datetime | None = None, late_penalty: float = 1.0, echo=print) -> list[dict]:
    """Grade every submission in turn (progress on ``echo``); write the CSV when asked; return the rows.

    ``deadline`` and ``late_penalty``: a submission whose file was last modified after the deadline loses
    ``late_penalty`` of its points per started day late (1.0: a late submission scores 0).
    """
    import logging

    logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # nbclient's output poller, cancelled by a timeout
    autograder = Path(autograder)
    lab = json.loads((autograder / "lab.json").read_text(encoding="utf-8"))
    rows = []
    for number, path in enumerate(submissions, 1):
        echo(f"[{number}/{len(submissions)}] {path} ...", end=" ", flush=True)
        start = time.perf_counter()
        try:
            row = grade_one(Path(path), autograder, lab, cell_timeout)
        except Exception as error:  # never let one submission stop the others
            row = {"submission": str(path), "notebook": "", "points": 0, "max_points": 0,
                   "note": f"grader error: {type(error).__name__}: {error}"}
        late = _late_days(Path(path), deadline) if Path(path).exists() else 0
        if late:
            kept = max(0.0, 1.0 - late_penalty * late)
            row["note"] = "; ".join(filter(None, [f"late by {late} day(s): {row['points']} -> "
                                                  f"{round(row['points'] * kept, 2):g} points", row["note"]]))
            row["points"] = round(row["points"] * kept, 2)
        echo(f"{row['notebook'] or '?'}: {row['points']:g}/{row['max_points']} points "
             f"({time.perf_counter() - start:.0f} s){'; ' + row['note'] if row['note'] else ''}")
        rows.append(row)
    if csv_path is not None:
        write_csv(rows, lab, Path(csv_path))
    return rows


def write_csv(rows: list[dict], lab: dict, path: Path) -> None:
    """One row per submission: submission, notebook, points, max_points, the questions (lab order), note."""
    questions = list(dict.fromkeys(q["question"] for entry in lab["notebooks"].values() for q in entry["questions"]))
    asked = [q for q in questions if any(q in row for row in rows)]
    fields = ["submission", "notebook", "points", "max_points", *asked, "note"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)


# --------------------------------------------------------------------------- command line
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.labs", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    out = commands.add_parser("release", help="write OUT/student, OUT/instructor and OUT/autograder")
    out.add_argument("out", type=Path)
    out.add_argument("names", nargs="*", help="notebooks (number, prefix or stem); default every graded one")
    marks = commands.add_parser("grade", help="grade submissions with an autograder folder")
    marks.add_argument("autograder", type=Path, help="the OUT/autograder folder written by release")
    marks.add_argument("submissions", type=Path, nargs="+")
    marks.add_argument("--csv", type=Path, help="write the grades here")
    marks.add_argument("--cell-timeout", type=float, default=120.0,
                       help="seconds allowed per cell and per hidden case (default: %(default)s)")
    marks.add_argument("--deadline", type=dt.datetime.fromisoformat,
                       help="ISO date and time, e.g. 2027-01-15T23:59; files modified later are late")
    marks.add_argument("--late-penalty", type=float, default=1.0,
                       help="share of the points lost per started day late (default: %(default)s, late scores 0)")
    marks.add_argument("--require-full-marks", action="store_true",
                       help="exit 1 unless every submission scores full marks (check the instructor notebooks)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    args = _parser().parse_args(argv)
    if args.command == "release":
        try:
            lab = release(args.out, args.names)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        for stem, entry in lab["notebooks"].items():
            listed = ", ".join(f"{q['question']} ({q['points']})" for q in entry["questions"])
            print(f"{stem}: {entry['max_points']} points: {listed}")
        print(f"wrote {args.out / 'student'}, {args.out / 'instructor'} and {args.out / 'autograder'} "
              "(keep the autograder folder: it holds the solutions and hidden tests)")
        return 0
    if not (args.autograder / "lab.json").is_file():
        print(f"error: {args.autograder} is not an autograder folder (no lab.json): run release first", file=sys.stderr)
        return 2
    rows = grade(args.autograder, args.submissions, args.csv, args.cell_timeout, args.deadline, args.late_penalty,
                 echo=lambda *a, **k: print(*a, **k))
    total = sum(r["points"] for r in rows)
    print(f"graded {len(rows)} submission(s), {total:g} points in all" + (f"; wrote {args.csv}" if args.csv else ""))
    short = [r["submission"] for r in rows if not r["max_points"] or r["points"] < r["max_points"]]
    if args.require_full_marks and short:
        print(f"error: not full marks: {', '.join(short)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
