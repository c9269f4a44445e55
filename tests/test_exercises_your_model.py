"""The notebook-07 exercise: the reference and keras' own preprocessing pass; typical mistakes get a hint."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from camtutor.exercises import your_model as ex
from labs.solutions import your_model as ref
from camtutor.loading import preprocess


def _in_place(images):
    images *= 2.0
    images -= 1.0
    return images


def _keras_in_place(images):
    return keras.applications.mobilenet_v2.preprocess_input(images)  # modifies float input in place


@pytest.mark.parametrize(
    "answer",
    [
        ref.my_to_mobilenet,
        lambda images: images * 2.0 - 1.0,
        lambda images: keras.applications.mobilenet_v2.preprocess_input(images * 255.0),
        lambda images: preprocess(images, "mobilenet_v2"),
    ],
)
def test_correct_answers_pass(answer):
    assert ex.mobilenet_input.evaluate(answer)[0]


@pytest.mark.parametrize(
    "answer, fix",
    [
        (lambda images: images / 127.5 - 1.0, "Multiply by 255 first"),
        (_keras_in_place, "in place"),
        (_in_place, "in place"),
        (lambda images: images * 255.0, "not its output"),
        (lambda images: images * 2.0, "subtract 1"),
        (lambda images: images, "unchanged"),
        (lambda images: (images * 2.0 - 1.0)[..., ::-1], "BGR"),
        (lambda images: images[:, :, :2] * 2 - 1, "shape"),
        (lambda images: None, "returned None"),
        (lambda images: images - 0.5, "range from"),
    ],
)
def test_typical_mistakes_get_a_message_naming_the_fix(answer, fix):
    passed, message = ex.mobilenet_input.evaluate(answer)
    assert not passed
    assert fix in message, message


def test_nothing_yet_and_no_answer_in_the_feedback(capsys):
    assert ex.mobilenet_input.evaluate(None) == (False, "MobileNetV2 input: nothing to check yet. Write your answer, "
                                                 "then call check(...) again.")
    ex.mobilenet_input.check(lambda images: images)
    assert "* 2.0 - 1.0" not in capsys.readouterr().out
    ex.mobilenet_input.solution()
    assert "127.5" in capsys.readouterr().out
