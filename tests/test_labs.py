"""Graded labs (python -m tools.labs): release, then grade instructor, blank, partial, hanging and broken submissions.

The grading runs use the three fastest notebooks (00, 03, 04) and one `grade` call for all of them, so that a
hanging and a broken submission are graded beside the good ones.
"""

from __future__ import annotations

import ast
import copy
import csv
import json
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

from tools import labs

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ("00", "03", "04")
CELL_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    out = tmp_path_factory.mktemp("lab")
    lab = labs.release(out, NOTEBOOKS)
    return out, lab


def _read(out: Path, folder: str, number: str):
    (path,) = (out / folder).glob(f"{number}_*.ipynb")
    return path, nbformat.read(path, as_version=4)


def test_release_writes_student_instructor_and_autograder(released):
    out, lab = released
    assert sorted(p.name[:2] for p in (out / "student").glob("*.ipynb")) == list(NOTEBOOKS)
    assert sorted(p.name[:2] for p in (out / "instructor").glob("*.ipynb")) == list(NOTEBOOKS)
    assert (out / "autograder" / "lab.json").is_file()
    assert (out / "autograder" / "camtutor_lab" / "solutions" / "gap_cam.py").is_file()
    assert lab["notebooks"]["03_target_function"]["max_points"] == 6


@pytest.mark.parametrize("number", NOTEBOOKS)
def test_student_and_instructor_differ_only_in_the_answer_cells(released, number):
    out, lab = released
    path, student = _read(out, "student", number)
    _, instructor = _read(out, "instructor", number)
    course = nbformat.read(ROOT / "notebooks" / path.name, as_version=4)
    answers = {q["cell"] for q in lab["notebooks"][path.stem]["questions"]}
    assert len(student.cells) == len(instructor.cells) == len(course.cells)
    for index, (s, i, c) in enumerate(zip(student.cells, instructor.cells, course.cells)):
        assert s.id == i.id == c.id and s.cell_type == i.cell_type
        assert s.source == c.source                     # the student's cells are the course's
        assert (s.source != i.source) == (index in answers), index
        if s.cell_type == "code":
            assert s.outputs == [] and i.outputs == [] and s.execution_count is None
    for question in lab["notebooks"][path.stem]["questions"]:
        assert "# YOUR CODE HERE" in student.cells[question["cell"]].source
        assert "# YOUR CODE HERE" not in instructor.cells[question["cell"]].source
    assert student.metadata["camtutor_lab"]["notebook"] == path.stem


def _solution_lines() -> set[str]:
    """Every line of a reference solution's body that says something (no docstring, comment, import or stub)."""
    lines = set()
    for path in (ROOT / "labs" / "solutions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        for node in ast.parse(text).body:
            if not isinstance(node, ast.FunctionDef):
                continue
            body = node.body[1:] if isinstance(node.body[0], ast.Expr) else node.body   # without the docstring
            for line in text.splitlines()[body[0].lineno - 1:node.end_lineno]:
                code = line.split("#")[0].strip()
                if len(code) >= 12 and not code.startswith(("import ", "from ", "return None")) and code not in TAUGHT:
                    lines.add(code)
    return lines


#: Solution lines that are also what the course teaches in the open: the library's own implementation (the
#: exercises re-implement camtutor functions, and their success messages say so) or a teaching cell of a notebook.
TAUGHT = {
    "with tf.GradientTape() as tape:": "notebooks 03 and 04 teach the tape; camtutor/course.py uses one",
    "predicted = probabilities.argmax(axis=1)": "notebook 00 predicts classes",
    "heat = np.maximum(heat, 0.0)": "camtutor/metrics.py",
    "ra, rb = rankdata(a, axis=1), rankdata(b, axis=1)": "camtutor/metrics.py, the library's Spearman",
    "return target": "camtutor/targets.py, ct.contrast",
    "masks = np.asarray(masks, dtype=bool)": "camtutor/trust.py",
}


def _code_lines(path: Path) -> set[str]:
    if path.suffix == ".ipynb":
        text = "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells)
    else:
        text = path.read_text(encoding="utf-8")
    return {line.split("#")[0].strip() for line in text.splitlines()}


def test_no_solution_line_in_the_student_folder_or_the_package(released):
    out, _ = released
    solution = _solution_lines()
    assert len(solution) > 40                         # the scan has something to look for
    instructor = set().union(*(_code_lines(p) for p in (out / "instructor").glob("*.ipynb")))
    assert solution & instructor                      # ... and finds it where it belongs
    scanned = [*sorted((out / "student").rglob("*")), *sorted((ROOT / "camtutor").rglob("*.py"))]
    leaks = {str(p.relative_to(p.parents[1])): sorted(solution & _code_lines(p)) for p in scanned if p.is_file()}
    assert not {name: found for name, found in leaks.items() if found}
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert not any(name.startswith("labs") for name in packages)


def test_self_study_solution_reads_the_repository_or_says_where_it_is(capsys, monkeypatch):
    from camtutor.exercises import _framework, gap_cam as ex

    monkeypatch.delenv("CAMTUTOR_HIDE_SOLUTIONS", raising=False)
    ex.peak.solution()
    shown = capsys.readouterr().out
    assert shown.startswith("def my_peak(heatmap, image_size):") and "np.unravel_index" in shown
    monkeypatch.setattr(_framework, "labs_folder", lambda: None)
    ex.peak.solution()
    shown = capsys.readouterr().out
    assert "not part of the installed camtutor package" in shown and "labs/solutions/gap_cam.py" in shown
    assert "unravel_index" not in shown
    monkeypatch.setenv("CAMTUTOR_HIDE_SOLUTIONS", "1")
    ex.peak.solution()
    assert "hidden" in capsys.readouterr().out


def test_every_solution_passes_its_self_check_and_its_hidden_cases(tmp_path):
    import importlib

    from labs import runner
    from labs.questions import QUESTIONS

    for number, questions in QUESTIONS.items():
        for question, module, function in questions:
            reference = getattr(importlib.import_module(f"labs.solutions.{module}"), function)
            exercise = getattr(importlib.import_module(f"camtutor.exercises.{module}"), question)
            assert exercise.function == function and exercise.module == module
            if module != "tape":                       # the tape's self-check is in test_exercises_tape
                assert exercise.evaluate(reference)[0], (number, question)
            results = runner.grade({function: reference}, module, question, function, str(tmp_path / "r.json"), 60)
            assert len(results) >= 3 and all(passed for _, passed, _ in results), results


def test_the_runner_stops_a_hanging_case_and_names_failures(tmp_path):
    from labs import runner

    def hangs(heatmap, image_size):
        time.sleep(30)

    start = time.perf_counter()
    results = runner.grade({"my_peak": hangs}, "gap_cam", "peak", "my_peak", str(tmp_path / "r.json"), 1)
    assert time.perf_counter() - start < 10
    assert results[0][2] == "timed out after 1 s" and all(not passed for _, passed, _ in results)
    assert "not run" in results[1][2]
    assert json.loads((tmp_path / "r.json").read_text()) == results
    wrong = runner.grade({"my_gap": lambda maps: np.asarray(maps).max(axis=(1, 2))}, "gap_cam", "gap", "my_gap",
                         str(tmp_path / "r.json"), 5)
    assert not any(passed for _, passed, _ in wrong) and "values differ" in wrong[0][2]
    missing = runner.grade({}, "gap_cam", "gap", "my_gap", str(tmp_path / "r.json"), 5)
    assert missing[0][2] == "my_gap is not defined"


@pytest.fixture(scope="module")
def graded(released, tmp_path_factory):
    out, lab = released
    submissions = tmp_path_factory.mktemp("submissions")
    paths = []
    for number in NOTEBOOKS:                                         # full marks expected
        path, notebook = _read(out, "instructor", number)
        nbformat.write(notebook, submissions / f"instructor_{path.name}")
        paths.append(submissions / f"instructor_{path.name}")
    for number in NOTEBOOKS:                                         # blank: 0 expected
        path, notebook = _read(out, "student", number)
        nbformat.write(notebook, submissions / f"blank_{path.name}")
        paths.append(submissions / f"blank_{path.name}")
    path, student = _read(out, "student", "03")                      # one of two questions answered
    _, instructor = _read(out, "instructor", "03")
    target = lab["notebooks"][path.stem]["questions"][0]["cell"]
    student.cells[target] = copy.deepcopy(instructor.cells[target])
    nbformat.write(student, submissions / "partial.ipynb")
    path, hanging = _read(out, "instructor", "00")                   # loops for ever before its answer
    hanging.cells.insert(5, nbformat.v4.new_code_cell("while True:\n    pass"))
    nbformat.write(hanging, submissions / "hanging.ipynb")
    (submissions / "broken_04_gradients.ipynb").write_text('{"cells": [', encoding="utf-8")
    paths += [submissions / "partial.ipynb", submissions / "broken_04_gradients.ipynb", submissions / "hanging.ipynb"]
    printed = []
    start = time.perf_counter()
    rows = labs.grade(out / "autograder", paths, submissions / "grades.csv", cell_timeout=CELL_TIMEOUT,
                      echo=lambda *a, **k: printed.append(" ".join(map(str, a))))
    with open(submissions / "grades.csv", newline="", encoding="utf-8") as file:
        table = list(csv.DictReader(file))
    return {Path(row["submission"]).stem: row for row in table}, rows, printed, time.perf_counter() - start


def test_instructor_notebooks_score_full_marks(graded):
    table, *_ = graded
    for name in ("instructor_00_start_here", "instructor_03_target_function", "instructor_04_gradients"):
        assert table[name]["points"] == table[name]["max_points"] != "0", table[name]
        assert table[name]["note"] == ""


def test_blank_student_notebooks_score_zero_and_say_why(graded):
    table, *_ = graded
    for name in ("blank_00_start_here", "blank_03_target_function", "blank_04_gradients"):
        assert table[name]["points"] == "0" and int(table[name]["max_points"]) > 0
        assert "cases failed (returned None" in table[name]["note"]


def test_one_answered_question_scores_partial_credit(graded):
    row = graded[0]["partial"]
    assert (row["notebook"], row["points"], row["max_points"]) == ("03_target_function", "3", "6")
    assert (row["target"], row["contrast"]) == ("3", "0")
    assert row["peak"] == "" and "contrast: 3 of 3 cases failed" in row["note"]


def test_hanging_and_broken_submissions_beside_good_ones(graded):
    table, rows, printed, seconds = graded
    assert [Path(r["submission"]).stem for r in rows][-3:] == ["partial", "broken_04_gradients", "hanging"]
    broken, hanging = table["broken_04_gradients"], table["hanging"]
    assert broken["note"].startswith("invalid notebook: NotJSONError")
    assert (broken["notebook"], broken["points"], broken["max_points"], broken["weights"]) == ("04_gradients", "0", "3", "0")
    assert "cell 5 timed out after 60 s" in hanging["note"]
    assert hanging["points"] == hanging["max_points"] == "4"          # its answer, after the loop, still counts
    assert len(printed) == 2 * len(rows) and printed[0].startswith("[1/") and "points" in printed[-1]
    assert list(table["broken_04_gradients"]) == ["submission", "notebook", "points", "max_points", "peak", "target",
                                     "contrast", "weights", "note"]
    print(f"graded {len(rows)} submissions in {seconds:.0f} s")


def test_command_line_refuses_a_folder_without_lab_json(tmp_path, capsys):
    assert labs.main(["grade", str(tmp_path), str(tmp_path / "x.ipynb")]) == 2
    assert "run release first" in capsys.readouterr().err


def test_late_days_count_started_days_after_the_deadline(tmp_path):
    import datetime as dt
    import os

    path = tmp_path / "late.ipynb"
    path.write_text("{}")
    deadline = dt.datetime(2027, 1, 15, 23, 59)
    for hours, days in ((-5, 0), (0.5, 1), (24, 1), (30, 2)):
        moment = (deadline + dt.timedelta(hours=hours)).timestamp()
        os.utime(path, (moment, moment))
        assert labs._late_days(path, deadline) == days, hours
    assert labs._late_days(path, None) == 0
