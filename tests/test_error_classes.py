"""Every error camtutor raises on purpose is a CamTutorError (a ValueError subclass), never a bare builtin.

The scan reads the modules' source (ast) for ``raise ValueError(...)``, ``raise TypeError(...)``,
``raise RuntimeError(...)`` and the like; the behaviour tests call one refused input of each module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import camtutor as ct
from camtutor import data, localize

PACKAGE = Path(ct.__file__).resolve().parent
SCANNED = ["data.py", "course.py", "baselines.py", "localize.py", "metrics.py", "images.py", "keras_internals.py"]
BUILTINS = {"ValueError", "TypeError", "RuntimeError", "KeyError", "IndexError", "Exception", "AssertionError"}


def _bare_raises(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Raise) and node.exc is not None:
            called = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(called, ast.Name) and called.id in BUILTINS:
                found.append(f"{path.name}:{node.lineno} raise {called.id}")
    return sorted(found, key=lambda text: int(text.split(":")[1].split()[0]))


@pytest.mark.parametrize("name", SCANNED)
def test_module_raises_no_bare_builtin_error(name):
    assert _bare_raises(PACKAGE / name) == []


def test_the_scan_finds_a_bare_raise(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(x):\n    if x:\n        raise ValueError('no')\n    raise TypeError\n")
    assert _bare_raises(bad) == ["bad.py:3 raise ValueError", "bad.py:4 raise TypeError"]


@pytest.mark.parametrize("call, fix", [
    (lambda: data.shapes(0), "n must be an integer >= 1"),
    (lambda: data.shapes(4, size=8), "size must be an integer >= 32"),
    (lambda: data.shapes(4, seed="a"), "seed must be an integer"),
    (lambda: data.shapes(4, contrast="loud"), "contrast must be one of"),
    (lambda: data.faces(size=3), "size must be an integer >= 25"),
    (lambda: localize.localization_scores(np.ones((2, 4, 4)), np.array([[0, 0, 2, 2]]), 8), "one true box per map"),
])
def test_refused_input_is_a_camtutor_error_and_still_a_value_error(call, fix):
    with pytest.raises(ct.CamTutorError, match=fix) as caught:
        call()
    assert isinstance(caught.value, ValueError)  # `except ValueError` in users' code keeps working


def test_there_is_one_load_image():
    from camtutor import images

    assert data.load_image is images.load_image and data.load_images is images.load_images
    defined = [p.name for p in PACKAGE.glob("*.py") if "def load_image(" in p.read_text()]
    assert defined == ["images.py"]
