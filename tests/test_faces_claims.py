"""What the README and ``camtutor explain --help`` say of the bundled ``faces`` model, checked by the command.

They say: it calls many photos "face" -- scikit-image's cat 0.85, rocket 0.77, coffee cup 1.00.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import cv2
import skimage.data

from camtutor.cli import main

ROOT = Path(__file__).resolve().parent.parent
CLAIMED = {"chelsea": 0.85, "rocket": 0.77, "coffee": 1.00}


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _explain_help() -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main(["explain", "--help"])
    return out.getvalue()


def test_the_faces_model_calls_a_cat_a_rocket_and_a_cup_face_as_documented(tmp_path, capsys):
    paths = []
    for name in CLAIMED:
        path = tmp_path / f"{name}.png"
        cv2.imwrite(str(path), getattr(skimage.data, name)()[..., ::-1])
        paths.append(str(path))
    assert main(["explain", *paths, "--model", "faces", "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    found = dict(re.findall(r"(\w+)\.png -> .*\n\s+top: 1 'face' ([0-9.]+)", printed))
    assert set(found) == set(CLAIMED), printed
    for name, claimed in CLAIMED.items():
        assert round(float(found[name]), 2) == claimed, (name, found[name])
    for where, text in (("explain --help", _explain_help()), ("README", (ROOT / "README.md").read_text())):
        assert "cat 0.85, rocket 0.77, coffee cup 1.00" in _one_line(text), where
