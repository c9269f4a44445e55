"""Installing camtutor beside an existing TensorFlow (Colab's first cell, a user's own environment).

Colab, and anyone who already debugs a Keras classifier, has the distribution ``tensorflow``. Had camtutor
asked for ``tensorflow-cpu``, pip would install a second TensorFlow into the same ``site-packages/tensorflow``
folder. These tests ask pip's own resolver (``--dry-run``, offline) what the notebooks' install cell would
install into an environment that holds only ``tensorflow`` and ``keras``, as Colab does.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import venv
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
COLAB_CELL = re.compile(r"!pip install (?:-q )?(\S+)")
TENSORFLOW_FAMILY = {"tensorflow", "tensorflow-cpu", "tensorflow-intel", "keras"}


def _config() -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower()


def _colab_installs() -> set[str]:
    found = set()
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code" and "google.colab" in cell.source:
                found |= set(COLAB_CELL.findall(cell.source))
    return found


def test_every_colab_cell_installs_camtutor_alone():
    """Nothing else on the line: what the cell installs is what pyproject declares."""
    assert _colab_installs() == {"git+https://github.com/camtutor/camtutor"}


def _fake_environment(folder: Path, installed: dict[str, str]) -> Path:
    """A virtual environment without pip whose site-packages holds only metadata for ``installed``."""
    venv.EnvBuilder(with_pip=False).create(folder)
    (site,) = {path.resolve() for pattern in ("lib*/python3*/site-packages", "Lib/site-packages")
               for path in folder.glob(pattern)}                   # lib64 may be a link to lib
    for name, version in installed.items():
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "INSTALLER").write_text("pip\n")
        (info / "RECORD").write_text("")
    return folder / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def _dry_run(python: Path, requirements: list[str], report: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pip", "--python", str(python), "--isolated", "install", "--dry-run", "--no-index",
               "--quiet", "--report", str(report), *requirements]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("colab", [{"tensorflow": "2.19.0", "keras": "3.10.0"},
                                   {"tensorflow": "2.16.1", "keras": "3.3.3"}])
def test_the_install_leaves_an_existing_tensorflow_alone(tmp_path, colab):
    """pip's resolver, offline (``--isolated``: no configured wheel folders): TensorFlow and Keras as Colab has them satisfy camtutor's TensorFlow family.

    ``--no-index`` makes any package pip would want to add an error, so an empty install list is the proof.
    """
    family = [r for r in _config()["project"]["dependencies"] if _name(r) in TENSORFLOW_FAMILY]
    assert {_name(r) for r in family} >= {"tensorflow", "keras"}, family
    report = tmp_path / "report.json"
    done = _dry_run(_fake_environment(tmp_path / "colab", colab), family, report)
    assert done.returncode == 0, f"pip would install something beside {colab}:\n{done.stderr[-2000:]}"
    assert json.loads(report.read_text())["install"] == []


def test_the_dry_run_sees_a_tensorflow_cpu_requirement_as_a_second_tensorflow(tmp_path):
    """The control: the same resolver, asked for tensorflow-cpu beside Colab's tensorflow, wants to add it."""
    python = _fake_environment(tmp_path / "colab", {"tensorflow": "2.19.0", "keras": "3.10.0"})
    done = _dry_run(python, ["tensorflow-cpu>=2.16.1,<2.22", "keras>=3.3.3,<3.16"], tmp_path / "report.json")
    assert done.returncode != 0 and "tensorflow-cpu" in done.stderr


def test_the_environment_check_asks_for_what_pyproject_declares():
    """``ct.environment.report()`` (notebook 00) names the same minimums and pip requirements as pyproject."""
    from camtutor import environment

    declared = {_name(r): r.split(";")[0].replace(" ", "") for r in _config()["project"]["dependencies"]}
    for requirement in environment.REQUIREMENTS:
        name = _name(requirement.pip)
        assert requirement.pip == declared[name], (requirement, declared[name])
        assert f">={requirement.minimum}" in declared[name], (requirement, declared[name])
