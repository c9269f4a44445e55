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
    assert models.available() == ["shapes", "shapes-flat", "shapes-random-labels", "shapes-200", "faces", "shapes-vit"]
    assert set(models.BUNDLED) == set(models.available())
    assert models.class_names("shapes") == ("circle", "square", "triangle")
    assert models.class_names("faces") == ("not face", "face")
    assert models.class_names("shapes-random-labels") == models.class_names("shapes")
    assert models.class_names("shapes-200") == models.class_names("shapes")
    with pytest.raises(ModelError, match="shapes-flat"):
        models.load("cats")
    with pytest.raises(ModelError):
        models.class_names("nope")


@pytest.mark.parametrize("name", ["shapes", "shapes-flat", "shapes-random-labels", "shapes-200", "faces"])
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
    assert _acc(m, fresh_shapes.images, fresh_shapes.labels) >= 0.97


def test_random_labels_model_memorised_its_shuffled_labels_and_is_at_chance_on_new_images(fresh_shapes):
    """Adebayo et al.'s label randomisation: the shapes architecture fits permuted labels it cannot generalise from."""
    from camtutor.train import random_label_set

    m = models.load("shapes-random-labels")
    assert [w.shape for w in m.weights] == [w.shape for w in models.build("shapes").weights]
    images, shuffled, true_labels = random_label_set()
    assert images.shape == (200, 64, 64, 3) and sorted(shuffled) == sorted(true_labels)
    assert np.mean(shuffled == true_labels) < 0.5                       # the labels really were shuffled
    np.testing.assert_array_equal(random_label_set()[1], shuffled)      # seeded: the same permutation every time
    assert _acc(m, images, shuffled) >= 0.95                            # memorised
    # about chance on 600 new images (0.37 [0.33, 0.41] here; 0.33 on 2000 others), where the real model scores >= 0.97
    assert abs(_acc(m, fresh_shapes.images, fresh_shapes.labels) - 1 / 3) < 0.1


def test_same_data_control_fits_the_true_labels_of_the_same_images(fresh_shapes):
    """shapes-200: the label randomisation test's control, the same 200 images and recipe with the true labels."""
    from camtutor.train import random_label_set

    m = models.load("shapes-200")
    assert [w.shape for w in m.weights] == [w.shape for w in models.build("shapes").weights]
    images, shuffled, true_labels = random_label_set()
    assert _acc(m, images, true_labels) >= 0.95                         # fits its (true) labels
    assert _acc(m, images, shuffled) < 0.6                              # not the shuffled ones
    # learned a little: above chance on 600 new images, far below the 6000-image shapes model (>= 0.97)
    assert 0.38 < _acc(m, fresh_shapes.images, fresh_shapes.labels) < 0.7
    weights = [np.asarray(w) for w in m.weights]
    other = [np.asarray(w) for w in models.load("shapes-random-labels").weights]
    assert any(not np.allclose(a, b) for a, b in zip(weights, other))


@pytest.mark.parametrize("name, which", [("shapes-random-labels", 1), ("shapes-200", 2)])
def test_small_set_models_train_on_the_same_images_with_their_own_labels(monkeypatch, name, which):
    """shapes-random-labels learns the permuted labels, shapes-200 the true ones, of the same images."""
    from camtutor import train as training

    seen = {}

    def fake_fit(model, x, y, **kwargs):
        seen.update(x=x, y=y, **kwargs)
        return model

    monkeypatch.setattr(training, "_fit_folded", fake_fit)
    training.train(name, None, n_train=30)
    expected = training.random_label_set(30)
    np.testing.assert_array_equal(seen["x"], expected[0])
    np.testing.assert_array_equal(seen["y"], expected[which])
    assert not np.array_equal(expected[1], expected[2])                # the two label sets differ
    assert training.DEFAULTS["shapes-200"] == training.DEFAULTS["shapes-random-labels"]
    assert seen["epochs"] == 100 and seen["fine_tune_epochs"] == 20


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
    model, acc = train("shapes-random-labels", tmp_path, epochs=1, fine_tune_epochs=1, n_train=30)
    assert 0.0 <= acc <= 1.0 and (tmp_path / "shapes-random-labels.weights.h5").is_file()


def _twin_with_statistics(name, *, offset: bool):
    """The BatchNorm training twin of a bundled architecture, with non-trivial BN statistics (a > 0)."""
    from camtutor.train import _with_batch_norm

    plain = models.build(name)
    twin = _with_batch_norm(plain)
    rng = np.random.default_rng(0)
    for layer in twin.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.get_weights()[0].shape
            gamma, mean, var = rng.uniform(0.5, 2, c), rng.normal(0, 0.3, c), rng.uniform(0.2, 3, c)
            a = gamma / np.sqrt(var + layer.epsilon)
            beta = rng.normal(0, 0.3, c) if offset else a * mean  # offset=False: b = beta - a * mean = 0
            layer.set_weights([gamma, beta, mean, var])
    return plain, twin


@pytest.mark.parametrize("name", ["shapes", "shapes-flat"])
def test_batch_norm_twin_folds_into_the_plain_architecture(name):
    """train.py trains a BatchNorm twin and folds it into the plain bundled architecture."""
    from camtutor.train import _fold_batch_norm

    plain, twin = _twin_with_statistics(name, offset=False)
    bns = [l for l in twin.layers if isinstance(l, keras.layers.BatchNormalization)]
    convs = [l for l in plain.layers if isinstance(l, keras.layers.Conv2D)]
    assert len(bns) == len(convs) - 1 >= 3  # after every conv but the last
    assert _fold_batch_norm(twin, plain) == 0
    x = np.random.default_rng(1).uniform(0, 1, (4, 64, 64, 3)).astype(np.float32)
    expected = twin.predict(x, verbose=0)
    np.testing.assert_allclose(plain.predict(x, verbose=0), expected, atol=1e-5)  # pure scale: exact
    assert np.ptp(expected, axis=0).max() > 1e-3  # the outputs depend on the image (not a trivial match)
    assert [l.name for l in plain.layers] == [l.name for l in models.build(name).layers]


def test_batch_norm_offset_folds_exactly_away_from_the_border():
    from camtutor.train import _fold_batch_norm

    plain, twin = _twin_with_statistics("shapes", offset=True)
    _fold_batch_norm(twin, plain)
    x = np.random.default_rng(2).uniform(0, 1, (2, 64, 64, 3)).astype(np.float32)
    feats = [keras.Model(m.inputs, m.get_layer("last_conv").output).predict(x, verbose=0) for m in (twin, plain)]
    # the padding of each folded conv is 0 instead of the BN offset: only cells near the border differ
    np.testing.assert_allclose(feats[1][:, 4:-4, 4:-4], feats[0][:, 4:-4, 4:-4], rtol=1e-4, atol=1e-4)


def test_bundled_files_hold_weights_only_for_the_built_architecture():
    """Weights, not a saved config: loading must not depend on the Keras release that wrote the file."""
    for name in models.available():
        assert models.weights_path(name).name.endswith(".weights.h5")
        built, loaded = models.build(name), models.load(name)
        assert [w.shape for w in built.weights] == [w.shape for w in loaded.weights]
