"""The authors' re-execution tool (selection, problem detection) and the shape every notebook must have.

Notebooks are not executed here: nbval runs them. These tests read the committed files.
"""

from __future__ import annotations

import re
import sys
import urllib.parse
from pathlib import Path

import nbformat
import pytest

from tools import notebooks as tool

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
BINDER = re.compile(r"https://mybinder\.org/v2/gh/camtutor/camtutor/HEAD\?labpath=([^)\s\"]+)")
COLAB = re.compile(r"https://colab\.research\.google\.com/github/camtutor/camtutor/blob/main/([^)\s\"]+)")


# --------------------------------------------------------------------------- the tool
@pytest.fixture
def folder(tmp_path):
    for name in ("00_start.ipynb", "01_gap.ipynb", "02_cam.ipynb", "10_extra.ipynb", ".hidden.ipynb", "notes.md"):
        (tmp_path / name).write_text("{}")
    return tmp_path


def test_select_all_sorted_without_hidden_files(folder):
    assert [p.name for p in tool.select(folder)] == ["00_start.ipynb", "01_gap.ipynb", "02_cam.ipynb", "10_extra.ipynb"]


@pytest.mark.parametrize(
    "names, expected",
    [
        (["01"], ["01_gap.ipynb"]),
        (["02_cam"], ["02_cam.ipynb"]),
        (["00_start.ipynb"], ["00_start.ipynb"]),
        (["1"], ["10_extra.ipynb"]),
        (["02", "00", "02_cam.ipynb"], ["00_start.ipynb", "02_cam.ipynb"]),
        (["0"], ["00_start.ipynb", "01_gap.ipynb", "02_cam.ipynb"]),
    ],
)
def test_select_by_number_prefix_stem_or_file(folder, names, expected):
    assert [p.name for p in tool.select(folder, names)] == expected


def test_select_accepts_a_path_elsewhere(folder, tmp_path_factory):
    other = tmp_path_factory.mktemp("other") / "99_mine.ipynb"
    other.write_text("{}")
    assert tool.select(folder, [str(other)]) == [other]


def test_select_unknown_name_lists_what_exists(folder):
    with pytest.raises(ValueError, match=r"no notebook matches '7'.*01_gap\.ipynb"):
        tool.select(folder, ["7"])


def test_main_exit_codes_and_list(folder, capsys):
    assert tool.main(["--dir", str(folder), "nope"]) == 2
    assert "no notebook matches" in capsys.readouterr().err
    assert tool.main(["--dir", str(folder), "--list", "01", "02"]) == 0
    assert capsys.readouterr().out.split() == [str(folder / "01_gap.ipynb"), str(folder / "02_cam.ipynb")]
    empty = folder / "empty"
    empty.mkdir()
    assert tool.main(["--dir", str(empty)]) == 2


@pytest.mark.parametrize(
    "result, code, shown",
    [
        ((1.0, 1_000, 5e8, []), 0, "01_gap.ipynb: 1.0 s, peak RSS 0.50 GB, 1 kB, ok"),
        ((1.0, 1_600_000, 5e8, []), 1, "over the 1.50 MB limit"),
        ((1.0, 1_000, 5e8, ["cell 3: writes to stderr: 'W careful'"]), 1, "cell 3: writes to stderr"),
        ((1.0, 1_000, 5e8, ["execution failed: ZeroDivisionError"]), 1, "execution failed"),
        ((121.0, 1_000, 5e8, []), 1, "over the course's 120 s budget"),
        ((1.0, 1_000, 1.9e9, []), 1, "peak RSS 1.90 GB is over the course's 1.8 GB budget"),
    ],
)
def test_main_reports_time_size_and_fails_on_problems(folder, monkeypatch, capsys, result, code, shown):
    ran = []
    monkeypatch.setattr(tool, "execute", lambda path, timeout: ran.append(path.name) or (*result[:3], list(result[3])))
    monkeypatch.setattr(tool.os, "environ", {"MPLBACKEND": "Agg"})
    assert tool.main(["--dir", str(folder), "01"]) == code
    assert ran == ["01_gap.ipynb"]
    assert shown in capsys.readouterr().out
    assert tool.os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3" and "MPLBACKEND" not in tool.os.environ


def test_main_defaults():
    args = tool._parser().parse_args([])
    assert args.names == [] and args.dir == ROOT / "notebooks"
    assert args.max_mb == pytest.approx(1.5) and args.timeout > 0


def test_problems_finds_stderr_and_errors_only():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("print(1)", outputs=[nbformat.v4.new_output("stream", name="stdout", text="1\n")]),
        nbformat.v4.new_code_cell("warn", outputs=[nbformat.v4.new_output("stream", name="stderr", text="W0000 careful\n")]),
        nbformat.v4.new_code_cell("1/0", outputs=[nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="division by zero", traceback=[])]),
        nbformat.v4.new_markdown_cell("# text"),
    ]
    found = tool.problems(nb)
    assert found == ["cell 1: writes to stderr: 'W0000 careful'", "cell 2: error ZeroDivisionError: division by zero"]


def test_kernel_environment_is_quiet_and_deterministic():
    assert tool.KERNEL_ENV["TF_CPP_MIN_LOG_LEVEL"] == "3"
    assert tool.KERNEL_ENV["TF_ENABLE_ONEDNN_OPTS"] == "0"
    assert tool.KERNEL_ENV["PYTHONHASHSEED"] == "0"


# --------------------------------------------------------------------------- packaging for Binder / Colab
def test_binder_installs_camtutor():
    lines = [line.split("#")[0].strip() for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines()]
    assert "." in lines


def test_pyproject_declares_every_package():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = set(config["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "camtutor").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert "camtutor" in declared
    assert on_disk <= declared, f"add {sorted(on_disk - declared)} to [tool.setuptools] packages"
    assert any("weights" in pattern for pattern in config["tool"]["setuptools"]["package-data"]["camtutor"])


#: Import name -> distribution name, where they differ.
_DISTRIBUTION = {"cv2": "opencv-python-headless", "skimage": "scikit-image", "PIL": "pillow", "IPython": "ipython"}


def _declared_distributions(config) -> set[str]:
    import re

    names = set()
    for requirement in config["project"]["dependencies"]:
        names.add(re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower())
    return names


def test_pyproject_declares_every_third_party_import():
    import ast

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = _declared_distributions(config)
    imported = set()
    for path in (ROOT / "camtutor").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = {name for name in imported if name not in sys.stdlib_module_names and name != "camtutor"}
    assert "cv2" in third_party and "numpy" in third_party  # the scan sees imports
    missing = {name for name in third_party if _DISTRIBUTION.get(name, name).lower() not in declared}
    assert not missing, f"declare {sorted(missing)} in pyproject's dependencies"


def test_one_version_and_a_license():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in config["project"] and "version" in config["project"]["dynamic"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "camtutor.__version__"}
    license_text = (ROOT / "LICENSE").read_text()
    assert config["project"]["license"] == {"text": "MIT"} and license_text.startswith("MIT License")


# --------------------------------------------------------------------------- every notebook
def test_there_are_notebooks():
    assert {"00_start_here.ipynb", "01_global_average_pooling.ipynb", "02_cam_weights.ipynb"} <= {p.name for p in NOTEBOOKS}


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _markdown(nb) -> str:
    return "\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_badges_point_to_existing_notebooks(path):
    first = _read(path).cells[0]
    assert first.cell_type == "markdown"
    binder = [urllib.parse.unquote(m) for m in BINDER.findall(first.source)]
    colab = COLAB.findall(first.source)
    assert binder, "first cell needs a Binder badge"
    assert colab, "first cell needs a Colab badge"
    for target in binder + colab:
        assert (ROOT / target).is_file(), f"badge points to {target}, which does not exist"
    assert f"notebooks/{path.name}" in binder and f"notebooks/{path.name}" in colab, "badges must open this notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_teaching_structure(path):
    nb = _read(path)
    headings = [line.lstrip("#").strip().lower() for line in _markdown(nb).splitlines() if line.startswith("#")]
    for wanted in ("learning objectives", "summary", "questions"):
        assert any(h.startswith(wanted) for h in headings), f"missing a '{wanted.title()}' heading"
    assert any(".check(" in cell.source for cell in nb.cells if cell.cell_type == "code"), "needs an exercise .check( call"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_outputs_are_clean_and_small(path):
    nb = _read(path)
    assert tool.problems(nb) == []
    assert "widgets" not in nb.metadata, "saved widget state: execute with store_widget_state=False"
    assert path.stat().st_size <= tool.MAX_BYTES


#: Longest code line: a website column at 1366 px shows this many characters without scrolling sideways.
MAX_CODE_LINE = 88
#: A printed number this small is rounding noise (it changes with the CPU or the thread count).
NOISE = re.compile(r"\d\.\d+e-(?:0[5-9]|[1-9]\d)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_lines_fit_the_website_column(path):
    long = [
        (index, len(line))
        for index, cell in enumerate(_read(path).cells)
        if cell.cell_type == "code"
        for line in cell.source.splitlines()
        if len(line) > MAX_CODE_LINE
    ]
    assert not long, f"(cell, length) of code lines over {MAX_CODE_LINE} characters: {long[:10]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_printed_number_below_its_noise_floor(path):
    noisy = []
    for index, cell in enumerate(_read(path).cells):
        for output in cell.get("outputs", []):
            text = str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
            noisy += [(index, found) for found in NOISE.findall(text)]
    assert not noisy, f"(cell, number) printed at the noise level; print a bound such as '< 1e-5': {noisy[:10]}"


def test_the_guide_schedules_every_notebook_in_sessions_that_add_up():
    guide = (ROOT / "docs" / "instructor-guide.md").read_text()
    schedule = guide.split("## Suggested schedule", 1)[1].split("\n## ", 1)[0]
    minutes = {}
    for number, class_time in re.findall(r"^\| (\d\d) · .*\| (\d+) min \|$", schedule, flags=re.M):
        minutes[number] = int(class_time)
    assert sorted(minutes) == [p.name[:2] for p in NOTEBOOKS], "every notebook has one schedule row"
    sessions = re.findall(r"session \d: (\d\d)–(\d\d)\s+\((\d+) min", schedule)
    assert sessions, "the schedule names its sessions"
    covered = []
    for first, last, stated in sessions:
        numbers = [n for n in minutes if first <= n <= last]
        covered += numbers
        assert sum(minutes[n] for n in numbers) == int(stated), (first, last)
        assert int(stated) <= 180, f"session {first}-{last} does not fit 3 hours"
    assert covered == sorted(minutes), "the sessions cover every notebook once, in order"
    assert "notebooks 00–" + max(minutes) in guide
