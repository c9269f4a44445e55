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
        w = (y - np.array(ablated)) / abs(y)  # a drop is positive for either sign of y
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


# --------------------------------------------------------------------------- the class-token pitfall
def test_the_class_token_pitfall_is_refused_with_the_fix_and_never_the_default(models, images):
    model = models["class_token"]
    # the premise, from plain Keras: after the last attention the patch tokens have exactly zero gradient
    _, grads, _ = _tokens_and_gradients(model, "b2_out", images, LABELS)
    assert not np.any(grads[:, 1:]) and np.any(grads[:, 0])
    listed = ct.conv_layers(model)
    for dead in ("b2_mha", "b2_add1", "b2_ln2", "b2_mlp1", "b2_mlp2", "b2_out", "final_ln"):
        assert dead not in listed
        with pytest.raises(ct.LayerError, match="exactly zero gradient.*choose 'b2_ln1'.*blocks\\[-1\\].norm1"):
            ct.grad_cam(model, images, LABELS, layer=dead)
    with pytest.raises(ct.LayerError, match="exactly zero gradient"):  # stating the grid changes nothing
        ct.grad_cam(model, images, LABELS, layer=ct.TokenLayer("b2_out", GRID, 1))
    assert ct.layers.default_layer(model).name == "b2_ln1"
    np.testing.assert_array_equal(ct.grad_cam(model, images, LABELS),
                                  ct.grad_cam(model, images, LABELS, layer="b2_ln1"))
    assert np.abs(ct.grad_cam(model, images, LABELS)).max() > 0
    # a head on the token mean: every token layer carries evidence; the default is the final normalisation
    mean = models["mean_head"]
    assert ct.layers.default_layer(mean).name == "final_ln" and "b2_out" in ct.conv_layers(mean)


# --------------------------------------------------------------------------- the grid, stated or refused
def _patches_by_reshape(prefix: int = 1) -> keras.Model:
    """Patches cut by Reshape/Permute (no patchify Conv2D): the nearest 4-D map is the image, no grid to read."""
    keras.utils.set_random_seed(5)
    inputs = keras.Input((H, W, 3))
    x = keras.layers.Reshape((H // P, P, W // P, P, 3), name="cut")(inputs)
    x = keras.layers.Permute((1, 3, 2, 4, 5), name="order")(x)
    x = keras.layers.Reshape((GRID[0] * GRID[1], P * P * 3), name="flat")(x)
    x = keras.layers.Dense(D, name="embed")(x)
    x = ClassToken(prefix, name="cls")(x)
    x = _block(x, 1)
    x = keras.layers.GlobalAveragePooling1D(name="gap")(x)
    x = keras.layers.Dense(CLASSES, name="logits")(x)
    return keras.Model(inputs, keras.layers.Activation("softmax", name="probs")(x), name="cut")


def test_a_grid_the_model_does_not_show_is_refused_with_the_fix_then_stated(images):
    model = _patches_by_reshape()
    assert "b1_ln1" not in ct.conv_layers(model)
    with pytest.raises(ct.LayerError, match=r"fit no 48x80 grid of the input image.*camtutor.TokenLayer\('b1_ln1', grid=\(h, w\)"):
        ct.grad_cam(model, images, 0, layer="b1_ln1")
    with pytest.raises(ct.LayerError, match=r"no feature map.*'b1_out'.*TokenLayer"):  # nothing is guessed
        ct.grad_cam(model, images, 0)
    stated = ct.TokenLayer("b1_ln1", grid=GRID, prefix=1)
    got = ct.grad_cam(model, images, LABELS, layer=stated, relu=False)
    tokens, grads, _ = _tokens_and_gradients(model, "b1_ln1", images, LABELS)
    _assert_close(got, _weighting_reference("gradcam", _grid(tokens, 1), _grid(grads, 1)))
    # the prefix follows from the grid when omitted; a wrong count, a non-grid and a contradiction are refused
    np.testing.assert_allclose(ct.grad_cam(model, images, LABELS, layer=ct.TokenLayer("b1_ln1", GRID), relu=False),
                               got, rtol=1e-6, atol=1e-7)
    with pytest.raises(ct.LayerError, match="needs 62 tokens, but the layer outputs 61"):
        ct.grad_cam(model, images, 0, layer=ct.TokenLayer("b1_ln1", GRID, prefix=2))
    with pytest.raises(ct.LayerError, match="grid must be"):
        ct.grad_cam(model, images, 0, layer=ct.TokenLayer("b1_ln1", (6, 0)))
    vit_model = vit(1, "token")
    with pytest.raises(ct.LayerError, match="contradicts the model.*6x10 grid"):
        ct.grad_cam(vit_model, images, 0, layer=ct.TokenLayer("b2_ln1", grid=(10, 6), prefix=1))
    agreeing = ct.grad_cam(vit_model, images, 0, layer=ct.TokenLayer("b2_ln1", grid=GRID, prefix=1))
    np.testing.assert_array_equal(agreeing, ct.grad_cam(vit_model, images, 0, layer="b2_ln1"))


# --------------------------------------------------------------------------- every consumer sees token layers
def test_all_classes_layer_pass_and_the_explorer_see_token_layers(models, images):
    model = models["class_token"]
    maps, _ = heatmap_all_classes(model, images, method="gradcam", layer="b1_out")
    for c in range(CLASSES):
        np.testing.assert_allclose(maps[:, c], ct.heatmap(model, images, c, layer="b1_out", relu=False),
                                   rtol=1e-5, atol=1e-6 * np.abs(maps).max())
    passed = layer_pass(model, images, ct.conv_layers(model))
    for method in ("gradcam", "hirescam", "eigencam"):
        got, _ = passed.maps("b2_ln1", method)
        expected, _ = heatmap_all_classes(model, images, method=method, layer="b2_ln1")
        assert got.shape == (3, CLASSES, *GRID)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())
    from camtutor.widgets import Explorer

    explorer = Explorer(model, images[:1])
    assert "b2_ln1" in explorer.layers and "b2_out" not in explorer.layers


def test_the_users_model_is_untouched_after_every_call_and_every_error(models, images):
    model = models["registers"]
    before = model.predict(images, verbose=0)
    weights = [w.copy() for w in model.get_weights()]
    for method in ct.METHODS:
        if method != "cam":
            ct.heatmap(model, images[:1], 0, method=method, layer="b1_out")
    for bad in ("b2_out", ct.TokenLayer("b1_out", (10, 6), 3), ct.TokenLayer("b1_out", (6, 10), 2)):
        with pytest.raises(ct.LayerError):
            ct.grad_cam(model, images[:1], 0, layer=bad)
    np.testing.assert_array_equal(model.predict(images, verbose=0), before)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), weights))
    assert all("call" not in vars(layer) for layer in model._flatten_layers())  # no hook left behind
    assert model.get_layer("logits").activation is keras.activations.linear


def test_a_saved_vit_works_with_the_command(tmp_path, images, capsys):
    model = vit(1, "token", seed=7)
    path = tmp_path / "vit.keras"
    model.save(path)
    picture = tmp_path / "a.png"
    keras.utils.save_img(picture, (images[0] * 255).astype(np.uint8))
    assert main(["layers", str(path)]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert "default" in rows["b2_ln1"] and "b2_out" not in rows and "(None, 61, 16)" in rows["b1_out"]
    for method in ("gradcam", "ablationcam"):
        assert main(["explain", str(picture), "--model", str(path), "--method", method, "--out", str(tmp_path)]) == 0
        assert (tmp_path / f"a_{method}.png").is_file()
    assert main(["explain", str(picture), "--model", str(path), "--layer", "b2_out", "--out", str(tmp_path)]) == 1
    assert "choose 'b2_ln1'" in capsys.readouterr().err
    cut = tmp_path / "cut.keras"
    _patches_by_reshape().save(cut)
    assert main(["explain", str(picture), "--model", str(cut), "--layer", "b1_ln1", "--out", str(tmp_path)]) == 1
    assert "--grid HxW+P" in capsys.readouterr().err
    assert main(["explain", str(picture), "--model", str(cut), "--layer", "b1_ln1", "--grid", "6x10+1",
                 "--out", str(tmp_path)]) == 0
    assert main(["explain", str(picture), "--model", str(cut), "--grid", "6by10", "--out", str(tmp_path)]) == 1
    assert "--grid must be HxW" in capsys.readouterr().err


def test_cam_on_a_vit_that_averages_its_patch_tokens(models, images):
    model = models["mean_head"]
    assert ct.gap_dense_head(model).feature_layer.name == "final_ln"
    tokens, _, _ = _tokens_and_gradients(model, "final_ln", images, LABELS)
    kernel = model.get_layer("logits").kernel.numpy()
    expected = np.einsum("bhwk,bk->bhw", _grid(tokens, 0), kernel[:, LABELS].T)  # Zhou et al. Eq. 2
    got = ct.cam(model, images, LABELS)
    _assert_close(got, expected, rtol=1e-5)
    _assert_close(ct.grad_cam(model, images, LABELS, relu=False) * GRID[0] * GRID[1], expected, rtol=1e-5)
    with pytest.raises(ct.ModelError, match="averages 1 class/register token"):  # the mean includes the class token
        ct.cam(vit(1, "mean"), images, 0)
    with pytest.raises(ct.ModelError, match="GlobalAveragePooling2D -> Dense"):
        ct.cam(models["class_token"], images, 0)
