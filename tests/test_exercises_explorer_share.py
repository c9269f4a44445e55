"""The notebook 06 exercise `own_object_share`: the reference passes, typical mistakes get their own message."""

from __future__ import annotations

import numpy as np

import camtutor as ct
from camtutor.exercises import explorer as ex
from labs.solutions import explorer as ref


def _message(function) -> tuple[bool, str]:
    return ex.own_object_share.evaluate(function)


def test_reference_passes_and_handles_an_empty_map():
    assert _message(ref.my_own_object_share)[0]
    maps = -np.ones((1, 4, 4), np.float32)
    own = np.zeros((1, 8, 8), bool); own[0, :4] = True
    assert ref.my_own_object_share(maps, own, ~own)[0] == 0.5


def test_reference_prefers_the_object_under_the_heat():
    maps = np.zeros((1, 4, 4), np.float32); maps[0, 0, 0] = 5.0
    own = np.zeros((1, 16, 16), bool); own[0, :4, :4] = True
    other = np.zeros((1, 16, 16), bool); other[0, 12:, 12:] = True
    assert ref.my_own_object_share(maps, own, other)[0] > 0.9
    assert ref.my_own_object_share(maps, other, own)[0] < 0.1


def test_none_and_typical_mistakes_get_specific_feedback():
    passed, message = _message(lambda m, o, t: None)
    assert not passed and "returned None" in message

    def no_upsample(maps, own, other):
        return (np.maximum(maps, 0) * own).sum(axis=(1, 2))
    passed, message = _message(no_upsample)
    assert not passed and "upsample" in message

    def no_relu(maps, own, other):
        big = np.asarray(ct.upsample(maps, own.shape[1:]))
        a, b = (big * own).sum(axis=(1, 2)), (big * other).sum(axis=(1, 2))
        return np.where(a + b != 0, a / np.where(a + b != 0, a + b, 1), 0.5)
    passed, message = _message(no_relu)
    assert not passed and "ReLU" in message

    def nan_on_empty(maps, own, other):
        big = np.maximum(np.asarray(ct.upsample(np.maximum(maps, 0), own.shape[1:])), 0)
        a, b = (big * own).sum(axis=(1, 2)), (big * other).sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            return a / (a + b)
    passed, message = _message(nan_on_empty)
    assert not passed and "0.5" in message


def test_hints_are_staged_and_the_last_is_not_the_solution():
    hints = ex.own_object_share.hints
    assert len(hints) == 3
    assert "np.where" not in hints[-1] and "return" not in hints[-1]


def test_solutions_can_be_hidden_for_a_graded_lab(monkeypatch, capsys):
    monkeypatch.setenv("CAMTUTOR_HIDE_SOLUTIONS", "1")
    ex.own_object_share.solution()
    out = capsys.readouterr().out
    assert "hidden" in out and "np.maximum" not in out
    monkeypatch.setenv("CAMTUTOR_HIDE_SOLUTIONS", "0")
    ex.own_object_share.solution()
    assert "np.maximum" in capsys.readouterr().out
