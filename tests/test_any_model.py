"""camtutor on models it did not build: Sequential, Functional, a nested keras.applications backbone,
softmax / one sigmoid unit / plain logits, saved as .keras and reloaded.

On every GAP -> Dense model, theory says Grad-CAM (no ReLU, logit score) is CAM divided by h*w:
dy_c/dA_k(i, j) = w_kc / (h w) for every position, so alpha_kc = w_kc / (h w) (Selvaraju et al. 2017, Sec. 3.1).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import camtutor as ct
from camtutor.compiled import explainer
from camtutor.layers import gap_dense_head, output_info
from camtutor.loading import load_model

SIZE = 32


def _sequential_softmax() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1"),
            keras.layers.MaxPooling2D(2, name="p1"),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="feat"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(3, activation="softmax", name="out"),
        ],
        name="seq_softmax",
    )


def _functional(units: int, activation: str | None, name: str, separate_activation: bool = False) -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(inputs)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="feat")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(0.5, name="drop")(x)
    if separate_activation:
        x = keras.layers.Dense(units, name="out")(x)
        outputs = keras.layers.Activation(activation, name="act")(x)
    else:
        outputs = keras.layers.Dense(units, activation=activation, name="out")(x)
    return keras.Model(inputs, outputs, name=name)


def _nested_mobilenet() -> keras.Model:
    backbone = keras.applications.MobileNetV2(
        alpha=0.35, input_shape=(64, 64, 3), include_top=False, weights=None
    )
    inputs = keras.Input((64, 64, 3))
    x = backbone(inputs, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(4, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="nested_mobilenet")


BUILDERS = {
    "sequential_softmax": _sequential_softmax,
    "functional_logits": lambda: _functional(4, None, "functional_logits"),
    "functional_sigmoid1": lambda: _functional(1, "sigmoid", "functional_sigmoid1"),
    "functional_softmax_layer": lambda: _functional(3, "softmax", "functional_softmax_layer", separate_activation=True),
    "nested_mobilenet_v2": _nested_mobilenet,
}
EXPECTED = {  # name -> (activation, num_classes, CAM feature layer)
    "sequential_softmax": ("softmax", 3, "feat"),
    "functional_logits": ("linear", 4, "feat"),
    "functional_sigmoid1": ("sigmoid", 2, "feat"),
    "functional_softmax_layer": ("softmax", 3, "feat"),
    "nested_mobilenet_v2": ("softmax", 4, "out_relu"),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """name -> (model, reloaded-from-.keras model, images); built once for the module."""
    keras.utils.set_random_seed(0)
    cache: dict[str, tuple] = {}
    folder = tmp_path_factory.mktemp("models")

    def get(name: str):
        if name not in cache:
            model = BUILDERS[name]()
            path = folder / f"{name}.keras"
            model.save(path)
            size = model.inputs[0].shape[1]
            images = np.random.default_rng(1).random((3, size, size, 3), dtype=np.float32)
            cache[name] = (model, load_model(path), images)
        return cache[name]

    return get


def _close(a: np.ndarray, b: np.ndarray) -> None:
    scale = max(float(np.abs(a).max()), float(np.abs(b).max()), 1e-12)
    np.testing.assert_allclose(a / scale, b / scale, atol=2e-5)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_output_and_head_are_read_right(built, name):
    model, reloaded, _ = built(name)
    activation, classes, feature = EXPECTED[name]
    for m in (model, reloaded):
        info = output_info(m)
        assert (info.activation, info.num_classes) == (activation, classes)
        assert gap_dense_head(m).feature_layer.name == feature
        assert ct.conv_layers(m)[-1] == feature


@pytest.mark.parametrize("name", list(BUILDERS))
def test_cam_equals_grad_cam_times_hw_and_model_is_unchanged(built, name):
    model, _, images = built(name)
    final = model.layers[-1]
    activation_before = getattr(final, "activation", None)
    before = model.predict(images, verbose=0)
    num_classes = EXPECTED[name][1]
    for c in range(num_classes):
        cam = ct.cam(model, images, c)
        grad = ct.grad_cam(model, images, c, relu=False)
        h, w = cam.shape[1:]
        _close(cam, grad * h * w)
        _close(np.asarray(ct.normalize(cam)), np.asarray(ct.normalize(grad)))
    after = model.predict(images, verbose=0)
    np.testing.assert_array_equal(before, after)
    assert getattr(final, "activation", None) is activation_before
    assert all("call" not in vars(layer) for layer in model._flatten_layers())  # no hook left behind


def test_sigmoid_unit_is_two_opposite_classes(built):
    model, _, images = built("functional_sigmoid1")
    positive = ct.grad_cam(model, images, 1, relu=False)
    negative = ct.grad_cam(model, images, 0, relu=False)
    assert np.abs(positive).max() > 0
    np.testing.assert_allclose(negative, -positive, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ct.cam(model, images, 0), -ct.cam(model, images, 1), rtol=1e-5, atol=1e-7)
    probabilities = ct.class_probabilities(model, images)
    z = model.predict(images, verbose=0)
    np.testing.assert_allclose(probabilities[:, 1:], z, rtol=1e-6)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    # with the ReLU, each positive pixel belongs to exactly one of the two classes
    both = (ct.grad_cam(model, images, 1) > 0) & (ct.grad_cam(model, images, 0) > 0)
    assert not both.any()


def test_logits_model_scores_are_the_outputs(built):
    model, _, images = built("functional_logits")
    np.testing.assert_allclose(
        ct.class_probabilities(model, images), keras.ops.softmax(model(images)).numpy(), rtol=1e-5, atol=1e-7
    )


@pytest.mark.parametrize("name", ["sequential_softmax", "functional_sigmoid1", "nested_mobilenet_v2"])
def test_reloaded_model_gives_the_same_maps_with_its_own_cache(built, name):
    model, reloaded, images = built(name)
    assert reloaded is not model
    np.testing.assert_allclose(
        ct.grad_cam(reloaded, images, 1), ct.grad_cam(model, images, 1), rtol=1e-4, atol=1e-6
    )
    _close(ct.cam(reloaded, images, 0), ct.cam(model, images, 0))
    assert explainer(reloaded) is not explainer(model)


def test_nested_backbone_layers_are_reachable(built):
    model, _, images = built("nested_mobilenet_v2")
    names = ct.conv_layers(model)
    assert "Conv1" in names and names[-1] == "out_relu"
    early = ct.grad_cam(model, images, 2, layer="block_3_expand_relu")
    late = ct.grad_cam(model, images, 2)
    assert early.shape == (3, 16, 16) and late.shape == (3, 2, 2)
    assert np.isfinite(early).all() and np.isfinite(late).all()


def test_grad_cam_on_a_flatten_head_works_where_cam_refuses():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Conv2D(4, 3, activation="relu", name="feat"),
            keras.layers.Flatten(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    images = np.random.default_rng(2).random((2, SIZE, SIZE, 3), dtype=np.float32)
    maps = ct.grad_cam(model, images, 1)
    assert maps.shape == (2, SIZE - 2, SIZE - 2)
    with pytest.raises(ct.ModelError, match="grad_cam"):
        ct.cam(model, images, 1)
