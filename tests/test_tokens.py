"""Vision Transformer token layers (B, T, D) are feature maps on their patch grid (camtutor.feature_maps).

Plain Keras ViTs built here: a patchify Conv2D -> Reshape -> optional class token -> position embedding ->
two blocks (LN -> MultiHeadAttention -> add; LN -> MLP -> add) -> LN -> a head on the class token or on the
token mean -> Dense -> softmax, on a non-square 48 x 80 input with 8-px patches (a 6 x 10 grid).

References: the tokens and dS/dtokens come from a plain Keras call of the model (a GradientTape on the
intermediate output a second, multi-output model returns), reshaped here with numpy; Ablation-CAM's ablated
scores from the model's own layers called eagerly one by one; Score-CAM's masked scores from plain model calls.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_methods import _assert_close, _eigen_reference, _weighting_reference

import camtutor as ct
from camtutor import feature_maps
from camtutor.cli import main
from camtutor.explain import heatmap_all_classes, layer_pass

H, W, P, D, CLASSES = 48, 80, 8, 16, 3
GRID = (H // P, W // P)  # (6, 10)


@keras.saving.register_keras_serializable(package="camtutor_tests")
class ClassToken(keras.layers.Layer):
    """Prepends ``count`` learned tokens (a class token, registers) to (B, T, D)."""

    def __init__(self, count: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.count = count

    def build(self, input_shape):
        self.token = self.add_weight(shape=(1, self.count, input_shape[-1]), initializer="random_normal")

    def call(self, x):
        batch = keras.ops.shape(x)[0]
        token = keras.ops.broadcast_to(keras.ops.cast(self.token, x.dtype), (batch, self.count, x.shape[-1]))
        return keras.ops.concatenate([token, x], axis=1)

    def get_config(self):
        return {**super().get_config(), "count": self.count}


@keras.saving.register_keras_serializable(package="camtutor_tests")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned (1, T, D) position embedding."""

    def build(self, input_shape):
        self.position = self.add_weight(shape=(1, *input_shape[1:]), initializer="random_normal")

    def call(self, x):
        return x + keras.ops.cast(self.position, x.dtype)


@keras.saving.register_keras_serializable(package="camtutor_tests")
class FirstToken(keras.layers.Layer):
    """(B, T, D) -> (B, D): the class token."""

    def call(self, x):
        return x[:, 0]


def _norm(name: str):
    """LayerNormalization with random beta and gamma, as after training (with beta = 0 every token's channels
    sum to 0, and Eigen-CAM's sign rule, the correlation with that sum, is undefined)."""
    return keras.layers.LayerNormalization(beta_initializer=keras.initializers.RandomNormal(0.0, 0.5),
                                           gamma_initializer=keras.initializers.RandomNormal(1.0, 0.5), name=name)


def _block(x, i: int):
    y = _norm(f"b{i}_ln1")(x)
    y = keras.layers.MultiHeadAttention(2, D // 2, name=f"b{i}_mha")(y, y)
    x = keras.layers.Add(name=f"b{i}_add1")([x, y])
    y = _norm(f"b{i}_ln2")(x)
    y = keras.layers.Dense(2 * D, activation="gelu", name=f"b{i}_mlp1")(y)
    y = keras.layers.Dense(D, name=f"b{i}_mlp2")(y)
    return keras.layers.Add(name=f"b{i}_out")([x, y])


def vit(prefix: int = 1, head: str = "token", seed: int = 0, size=(H, W)) -> keras.Model:
    """A two-block ViT; ``prefix`` leading tokens (0: none); ``head`` "token" (class token) or "mean"."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((*size, 3))
    x = keras.layers.Conv2D(D, P, strides=P, name="patchify")(inputs)
    x = keras.layers.Reshape((-1, D), name="tokens")(x)
    if prefix:
        x = ClassToken(prefix, name="cls")(x)
    x = PositionEmbedding(name="position")(x)
    for i in (1, 2):
        x = _block(x, i)
    x = _norm("final_ln")(x)
    x = FirstToken(name="take_cls")(x) if head == "token" else keras.layers.GlobalAveragePooling1D(name="gap")(x)
    x = keras.layers.Dense(CLASSES, name="logits")(x)
    return keras.Model(inputs, keras.layers.Activation("softmax", name="probs")(x), name=f"vit_{prefix}_{head}")


VITS = {"class_token": (1, "token"), "mean_head": (0, "mean"), "registers": (3, "token")}


@pytest.fixture(scope="module")
def models():
    return {name: vit(prefix, head, seed=i) for i, (name, (prefix, head)) in enumerate(VITS.items())}


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((3, H, W, 3), dtype=np.float32)


LABELS = [0, 2, 1]


def _tokens_and_gradients(model, layer: str, images, classes):
    """Plain Keras: the layer's tokens (B, T, D) and d logit_c / d tokens, from a multi-output model."""
    probe = keras.Model(model.inputs, [model.get_layer(layer).output, model.get_layer("logits").output])
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tokens, logits = probe(x, training=False)
        y = tf.reduce_sum(tf.gather(logits, classes, axis=1, batch_dims=1))
    return tokens.numpy(), tape.gradient(y, tokens).numpy(), logits.numpy()


def _grid(t, prefix):
    """numpy: tokens (B, T, D) -> (B, h, w, D) patch tokens."""
    return t[:, prefix:].reshape(len(t), *GRID, t.shape[-1])


def _replay(model, images, layer: str, change):
    """The model's logits from its own layers called eagerly one by one; ``change(tokens)`` replaces the
    output of ``layer`` (numpy in, numpy out)."""
    def step(name, *args):
        out = model.get_layer(name)(*args)
        return tf.constant(change(out.numpy())) if name == layer else out

    x = step("tokens", step("patchify", tf.constant(images)))
    if "cls" in [lay.name for lay in model.layers]:
        x = step("cls", x)
    x = step("position", x)
    for i in (1, 2):
        y = step(f"b{i}_ln1", x)
        x = step(f"b{i}_add1", [x, step(f"b{i}_mha", y, y)])
        y = step(f"b{i}_mlp2", step(f"b{i}_mlp1", step(f"b{i}_ln2", x)))
        x = step(f"b{i}_out", [x, y])
    x = step("final_ln", x)
    x = step("take_cls", x) if "take_cls" in [lay.name for lay in model.layers] else step("gap", x)
    return step("logits", x).numpy()


def _ablation_reference(model, layer, images, classes, prefix):
    tokens, _, logits = _tokens_and_gradients(model, layer, images, classes)
    maps = []
    for b, c in enumerate(classes):
        y = logits[b, c]
        ablated = []
        for k in range(tokens.shape[-1]):
            def zero(t, k=k):
                t = t.copy()
                t[:, prefix:, k] = 0.0  # the patch tokens' channel k; the class token stays
                return t
            ablated.append(_replay(model, images[b:b + 1], layer, zero)[0, c])
        w = (y - np.array(ablated)) / y
        maps.append((_grid(tokens[b:b + 1], prefix)[0] * w).sum(-1))
    return np.stack(maps)  # raw: no ReLU


def _score_cam_reference(model, layer, images, classes, prefix):
    tokens, _, _ = _tokens_and_gradients(model, layer, images, classes)
    a = _grid(tokens, prefix)
    logits_of = keras.Model(model.inputs, model.get_layer("logits").output)
    baseline = logits_of(np.zeros((1, H, W, 3), np.float32)).numpy()[0]
    maps = []
    for b, c in enumerate(classes):
        masks = []
        for k in range(D):
            up = tf.image.resize(a[b, :, :, k][..., None], (H, W), method="bilinear").numpy()[..., 0]
            spread = up.max() - up.min()
            masks.append((up - up.min()) / spread if spread > 0 else np.zeros_like(up))
        increase = logits_of(images[b][None] * np.stack(masks)[..., None]).numpy()[:, c] - baseline[c]
        weights = np.exp(increase - increase.max()) / np.exp(increase - increase.max()).sum()
        maps.append((a[b] * weights).sum(-1))
    return np.stack(maps)  # raw: no ReLU


# --------------------------------------------------------------------------- the grid is read from the model
def test_token_layers_are_listed_with_their_grid_and_prefix(models):
    for name, (prefix, _) in VITS.items():
        model = models[name]
        listed = ct.conv_layers(model)
        assert "b1_ln1" in listed and "b2_ln1" in listed and "patchify" in listed
        layout = feature_maps.layout_of(ct.layers.find_layer(model, "b1_out"))
        assert (layout.kind, layout.grid, layout.prefix, layout.channels) == ("tokens", GRID, prefix, D)
        assert "patchify" in layout.source


def test_every_method_agrees_with_its_reference_on_tokens(models, images):
    """Each gradient method, Eigen-CAM, Score-CAM and Ablation-CAM, against its formula on the reshaped tokens."""
    worst = {}
    for name, (prefix, _) in VITS.items():
        model, layer = models[name], "b2_ln1"
        tokens, grads, _ = _tokens_and_gradients(model, layer, images, LABELS)
        a, g = _grid(tokens, prefix), _grid(grads, prefix)
        for method in ("gradcam", "hirescam", "gradcam++", "xgradcam", "layercam"):
            got = ct.heatmap(model, images, LABELS, method=method, layer=layer, relu=False)
            assert got.shape == (3, *GRID)
            expected = _weighting_reference(method, a, g)
            _assert_close(got, expected)
            worst[(name, method)] = np.abs(got - expected).max() / np.abs(expected).max()
        got = ct.heatmap(model, images, LABELS, method="eigencam", layer=layer)
        _assert_close(got, _eigen_reference(a))
        got = ct.heatmap(model, images, LABELS, method="scorecam", layer=layer, relu=False)
        _assert_close(got, _score_cam_reference(model, layer, images, LABELS, prefix))
        got = ct.heatmap(model, images, LABELS, method="ablationcam", layer=layer, relu=False)
        _assert_close(got, _ablation_reference(model, layer, images, LABELS, prefix), rtol=1e-3)
