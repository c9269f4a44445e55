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


# --------------------------------------------------------------------------- the shortcut lab's recipe (notebook 12)
def test_squares_and_triangles_keeps_two_classes_with_their_masks():
    images, labels, masks = course.squares_and_triangles(30, seed=3, size=32)
    assert images.shape[1:] == (32, 32, 3) and images.dtype == np.float32
    assert set(labels.tolist()) == {0, 1} and len(labels) == len(images) == len(masks) < 30
    assert masks.dtype == bool and masks.any(axis=(1, 2)).all()
    again = course.squares_and_triangles(30, seed=3, size=32)
    np.testing.assert_array_equal(images, again[0])


def test_plant_mark_paints_a_checkerboard_on_the_chosen_images_only():
    images = np.full((3, 12, 12, 3), 0.5, np.float32)
    out = course.plant_mark(images, np.array([True, False, True]))
    assert np.all(images == 0.5), "the input must not change"
    np.testing.assert_array_equal(out[1], images[1])
    corner = out[0, 1:6, 1:6, 0]
    assert set(np.unique(corner).tolist()) == {0.0, 1.0} and corner[0, 0] == 0.0 and corner[0, 1] == 1.0
    assert np.all(out[0, 6:, :] == 0.5) and np.all(out[0, 0, :] == 0.5)
    with pytest.raises(ValueError, match="H, W >= 6"):
        course.plant_mark(np.zeros((1, 4, 4, 3)), [0])


def test_train_small_gap_is_a_seeded_gap_classifier():
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(0)
    images = rng.random((40, 16, 16, 3)).astype(np.float32)
    labels = (images[:, :8].mean(axis=(1, 2, 3)) > images[:, 8:].mean(axis=(1, 2, 3))).astype("int64")
    a = course.train_small_gap(images, labels, epochs=1)
    b = course.train_small_gap(images, labels, epochs=1)
    assert [layer.name for layer in a.layers][-3:] == ["last_conv", "gap", "predictions"]
    assert a.output.shape[-1] == 2 and a.get_layer("last_conv").output.shape[1:3] == (4, 4)
    np.testing.assert_allclose(a.predict(images, verbose=0), b.predict(images, verbose=0), atol=1e-6)
    with pytest.raises(ValueError, match="labels"):
        course.train_small_gap(images, labels[:3])
