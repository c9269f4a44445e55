"""camtutor.course: receptive fields by arithmetic and by gradients, and the shared-scale overlay grid."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import keras
import numpy as np
import pytest

from camtutor import course


def _chain():
    inputs = keras.Input((32, 32, 1))
    x = keras.layers.Conv2D(2, 3, padding="same", name="a")(inputs)
    x = keras.layers.MaxPooling2D(2, name="p")(x)
    x = keras.layers.Conv2D(2, 5, padding="same", name="b")(x)
    x = keras.layers.Conv2D(2, 3, padding="same", dilation_rate=2, name="c")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(x))


def test_receptive_field_arithmetic():
    model = _chain()
    # a: 3, stride 1; p: 3 + 1 = 4, jump 2; b: 4 + 4*2 = 12; c: 12 + 2*2*2 = 20
    assert course.receptive_field(model, "a") == (3, 1)
    assert course.receptive_field(model, "p") == (4, 2)
    assert course.receptive_field(model, "b") == (12, 2)
    assert course.receptive_field(model, "c") == (20, 2)


def test_receptive_field_refuses_unknown_layers():
    with pytest.raises(ValueError, match="no layer 'nope'"):
        course.receptive_field(_chain(), "nope")
    with pytest.raises(ValueError, match="not a plain conv chain"):
        course.receptive_field(_chain(), "out")


def test_measured_receptive_field_matches_the_arithmetic_on_a_linear_chain():
    keras.utils.set_random_seed(0)
    model = _chain()  # no ReLU, so every pixel of the window has a non-zero gradient
    images = np.random.default_rng(0).random((2, 32, 32, 1)).astype("float32")
    for layer in ("a", "b"):
        assert course.measured_receptive_field(model, layer, images) == course.receptive_field(model, layer)[0]


def test_show_shared_scale_uses_one_scale_and_one_colorbar():
    rng = np.random.default_rng(1)
    images = rng.random((3, 16, 16, 3)).astype("float32")
    maps = [np.full((4, 4), 1.0), np.full((4, 4), 3.0), rng.random((8, 8))]
    fig = course.show_shared_scale(images, maps, ["a", "b", "c"], ncols=3)
    heat = [ax.images[1] for ax in fig.axes[:3]]
    assert all(h.get_clim() == (0.0, 3.0) for h in heat)
    assert len(fig.axes) == 4  # three panels and one colour bar
    signed = course.show_shared_scale(images[:2], [-np.ones((4, 4)), np.ones((4, 4)) * 0.5], signed=True)
    assert signed.axes[0].images[1].get_clim() == (-1.0, 1.0)
    with pytest.raises(ValueError, match="one map per image"):
        course.show_shared_scale(images, maps[:2])


def test_pretrained_or_random_falls_back_offline(monkeypatch, capsys):
    from camtutor import environment

    calls = []

    def factory(weights):
        calls.append(weights)
        if weights == "imagenet":
            raise OSError("blocked")
        return "model"

    monkeypatch.setattr(environment, "can_reach", lambda host, timeout: False)
    assert environment.pretrained_or_random(factory) == ("model", False) and calls == [None]
    monkeypatch.setattr(environment, "can_reach", lambda host, timeout: True)
    calls.clear()
    assert environment.pretrained_or_random(factory) == ("model", False) and calls == ["imagenet", None]
    assert "could not download" in capsys.readouterr().out
    assert environment.pretrained_or_random(lambda weights: weights) == ("imagenet", True)


def test_can_reach_an_unroutable_port_is_false():
    from camtutor import environment

    assert environment.can_reach("127.0.0.1", port=1, timeout=0.5) is False
