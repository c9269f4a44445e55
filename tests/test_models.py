"""Tests of camtutor.models (builders and bundled weights) and a tiny smoke run of camtutor.train."""

from __future__ import annotations

import camtutor  # noqa: F401  (sets TF_CPP_MIN_LOG_LEVEL first)

import keras
import numpy as np
import pytest

from camtutor import data, models
from camtutor.errors import ModelError


def _acc(model, x, y) -> float:
    return float(np.mean(np.argmax(model.predict(x, batch_size=200, verbose=0), axis=1) == y))


def test_gap_classifier_layers():
    m = models.gap_classifier()
    shapes = {l.name: tuple(l.output.shape) for l in m.layers}
    assert shapes["conv1"] == (None, 64, 64, 16)
    assert shapes["pool1"] == (None, 32, 32, 16)
    assert shapes["pool2"] == (None, 16, 16, 32)
    assert shapes["last_conv"] == (None, 16, 16, 32)
    assert shapes["gap"] == (None, 32)
    assert shapes["predictions"] == (None, 3)
    assert m.get_layer("last_conv").activation is keras.activations.relu
    assert m.get_layer("predictions").activation is keras.activations.softmax
    assert 20_000 <= m.count_params() <= 28_000
    assert models.gap_classifier(5, input_shape=(32, 32, 3)).output.shape == (None, 5)


def test_flat_classifier_layers():
    m = models.flat_classifier()
    names = [l.name for l in m.layers]
    assert "gap" not in names and "flatten" in names
    assert tuple(m.get_layer("last_conv").output.shape) == (None, 8, 8, 8)
    assert tuple(m.get_layer("flatten").output.shape) == (None, 512)
    assert m.output.shape == (None, 3)


def test_gap_head_on_freezes_backbone():
    bb = models.small_backbone()
    assert tuple(bb.output.shape) == (None, 16, 16, 32)
    m = models.gap_head_on(bb, 2)
    assert any(isinstance(l, keras.Model) for l in m.layers)
    assert not bb.trainable
    trainable = {w.path for w in m.trainable_weights}
    assert trainable == {w.path for w in m.get_layer("predictions").weights}
    assert m.output.shape == (None, 2)
    with pytest.raises(ModelError):
        models.gap_head_on(models.gap_classifier(), 2)  # output is not a 4-D feature map


def test_registry():
    assert models.available() == ["shapes", "shapes-flat", "faces"]
    assert set(models.BUNDLED) == set(models.available())
    assert models.class_names("shapes") == ("circle", "square", "triangle")
    assert models.class_names("faces") == ("not face", "face")
    with pytest.raises(ModelError, match="shapes-flat"):
        models.load("cats")
    with pytest.raises(ModelError):
        models.class_names("nope")


@pytest.mark.parametrize("name", ["shapes", "shapes-flat", "faces"])
def test_weight_files_small(name):
    p = models.weights_path(name)
    assert p.is_file(), f"missing {p}; run python -m camtutor.train {name}"
    assert p.stat().st_size <= 1_000_000


@pytest.fixture(scope="module")
def fresh_shapes():
    return data.shapes(600, seed=12345)


def test_load_returns_fresh_models():
    a, b = models.load("shapes"), models.load("shapes")
    assert a is not b
    a.get_layer("predictions").kernel.assign(np.zeros((32, 3), np.float32))
    assert np.abs(b.get_layer("predictions").kernel.numpy()).sum() > 0


def test_shapes_accuracy(fresh_shapes):
    m = models.load("shapes")
    assert m.get_layer("last_conv") is not None and m.get_layer("gap") is not None
    assert _acc(m, fresh_shapes.images, fresh_shapes.labels) >= 0.97


def test_shapes_flat_accuracy(fresh_shapes):
    m = models.load("shapes-flat")
    assert _acc(m, fresh_shapes.images, fresh_shapes.labels) >= 0.95


def test_faces_model():
    m = models.load("faces")
    nested = [l for l in m.layers if isinstance(l, keras.Model)]
    assert len(nested) == 1
    bb = nested[0]
    assert not bb.trainable and len(bb.weights) > 0 and not bb.trainable_weights
    assert len(bb.output.shape) == 4
    f = data.faces()
    assert _acc(m, f.test_images, f.test_labels) >= 0.90


def test_train_smoke(tmp_path):
    from camtutor.train import train

    model, acc = train("shapes", tmp_path, epochs=1, n_train=60)
    assert 0.0 <= acc <= 1.0
    assert (tmp_path / "shapes.weights.h5").is_file()
    assert model.output.shape == (None, 3)
    with pytest.raises(ModelError):
        train("cats")


def test_bundled_files_hold_weights_only_for_the_built_architecture():
    """Weights, not a saved config: loading must not depend on the Keras release that wrote the file."""
    for name in models.available():
        assert models.weights_path(name).name.endswith(".weights.h5")
        built, loaded = models.build(name), models.load(name)
        assert [w.shape for w in built.weights] == [w.shape for w in loaded.weights]
