"""Every method of the registry against an independent reference computed here from its paper's formula.

References use ``ct.gradients`` (A and dS/dA), plain Keras/TensorFlow calls and numpy loops, never the code
under test. Three small models: a Sequential (GAP head, softmax), a Functional with a nested backbone and a
non-linear tail after the explained layer (logits), and a binary sigmoid model.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import camtutor as ct
from camtutor import methods
from camtutor.explain import explainer, guided_backprop, guided_gradcam, heatmap_all_classes

SIZE = 20


def _sequential() -> keras.Model:
    keras.utils.set_random_seed(1)
    return keras.Sequential([
        keras.Input((SIZE, SIZE, 3)),
        keras.layers.Conv2D(6, 3, activation="relu", name="conv1"),
        keras.layers.Conv2D(5, 3, activation="relu", name="conv2"),
        keras.layers.GlobalAveragePooling2D(name="gap"),
        keras.layers.Dense(3, activation="softmax", name="predictions"),
    ], name="sequential_gap")


def _nested() -> keras.Model:
    """Functional, nested backbone; after the explained layer "b2": a ReLU6 layer, pooling and a conv (not GAP)."""
    keras.utils.set_random_seed(2)
    backbone = keras.Sequential([
        keras.Input((SIZE, SIZE, 3)),
        keras.layers.Conv2D(6, 3, activation="relu", name="b1"),
        keras.layers.Conv2D(5, 3, name="b2"),
    ], name="backbone")
    inputs = keras.Input((SIZE, SIZE, 3))
    x = backbone(inputs)
    x = keras.layers.ReLU(6.0, name="relu6")(x)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="head_conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(4, name="logits")(x)
    return keras.Model(inputs, outputs, name="nested")


def _binary() -> keras.Model:
    keras.utils.set_random_seed(3)
    return keras.Sequential([
        keras.Input((SIZE, SIZE, 3)),
        keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
        keras.layers.GlobalAveragePooling2D(name="gap"),
        keras.layers.Dense(1, activation="sigmoid", name="out"),
    ], name="binary")


MODELS = {"sequential": (_sequential, "conv2"), "nested": (_nested, "b2"), "binary": (_binary, "conv")}


@pytest.fixture(scope="module")
def models():
    return {name: (build(), layer) for name, (build, layer) in MODELS.items()}


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((3, SIZE, SIZE, 3), dtype=np.float32)


CLASSES = [0, 2, 1]


# --------------------------------------------------------------------------- references
def _probabilities(model, x):
    """Class probabilities from a plain Keras call (a sigmoid unit p -> (1 - p, p), logits -> softmax)."""
    p = model(x, training=False).numpy()
    if model.name == "nested":  # ends with logits
        return tf.nn.softmax(p).numpy()
    return np.concatenate([1 - p, p], axis=1) if p.shape[1] == 1 else p


def _rest(model, name, activations):
    """The logits (N, C) of the network after the explained layer, applied to ``activations`` by plain Keras calls."""
    if name == "nested":
        x = activations
        for layer_name in ("relu6", "pool", "head_conv", "gap", "logits"):
            x = model.get_layer(layer_name)(x)
        return x.numpy()
    dense = model.layers[-1]
    z = activations.mean(axis=(1, 2)) @ dense.kernel.numpy() + dense.bias.numpy()
    return np.concatenate([-z, z], axis=1) if z.shape[1] == 1 else z


def _classes(name):
    return [0, 1, 1] if name == "binary" else CLASSES


def _weighting_reference(method, a, g):
    if method == "gradcam":
        return np.einsum("bhwk,bk->bhw", a, g.mean(axis=(1, 2)))
    if method == "hirescam":
        return (g * a).sum(-1)
    if method == "layercam":
        return (np.maximum(g, 0) * a).sum(-1)
    if method == "xgradcam":
        sums = a.sum(axis=(1, 2))
        w = np.where(sums != 0, (g * a).sum(axis=(1, 2)) / np.where(sums != 0, sums, 1), 0)
        return np.einsum("bhwk,bk->bhw", a, w)
    if method == "gradcam++":  # Chattopadhay et al. Eq. 19 (exp score: powers of dS/dA)
        denominator = 2 * g**2 + a.sum(axis=(1, 2), keepdims=True) * g**3
        alpha = np.where(denominator != 0, g**2 / np.where(denominator != 0, denominator, 1), 0)
        w = (alpha * np.maximum(g, 0)).sum(axis=(1, 2))
        return np.einsum("bhwk,bk->bhw", a, w)
    raise AssertionError(method)


def _logits(model, name, x):
    """The logits (N, C) of a plain Keras call (a sigmoid unit z -> (-z, z))."""
    if name == "nested":  # ends with logits
        return model(x, training=False).numpy()
    dense = model.layers[-1]
    z = keras.Model(model.inputs, dense.input)(x).numpy() @ dense.kernel.numpy() + dense.bias.numpy()
    return np.concatenate([-z, z], axis=1) if z.shape[1] == 1 else z


def _score_cam_reference(model, name, images, a, classes, reading="logit"):
    """Wang et al.: per image, K masked copies scored by plain Keras calls. ``reading``: "logit" (Algorithm 1,
    softmax over channels of the logit increase), "probability" (the same with probabilities, Sec. 3.2) or
    "code" (the authors' code: the masked image's probability itself, no baseline, no softmax)."""
    score = (lambda x: _logits(model, name, x)) if reading == "logit" else (lambda x: _probabilities(model, x))
    baseline = score(np.zeros((1, *images.shape[1:]), np.float32))[0]
    maps = []
    for b, c in enumerate(classes):
        masks = []
        for k in range(a.shape[-1]):
            up = tf.image.resize(a[b, :, :, k][..., None], images.shape[1:3], method="bilinear").numpy()[..., 0]
            spread = up.max() - up.min()
            masks.append((up - up.min()) / spread if spread > 0 else np.zeros_like(up))
        masked = score(images[b][None] * np.stack(masks)[..., None])[:, c]
        if reading == "code":
            weights = masked
        else:
            increase = masked - baseline[c]
            weights = np.exp(increase - increase.max()) / np.exp(increase - increase.max()).sum()
        maps.append(np.maximum((a[b] * weights).sum(-1), 0))
    return np.stack(maps)


def _ablation_reference(model, name, a, classes):
    maps = []
    for b, c in enumerate(classes):
        y = _rest(model, name, a[b][None])[0, c]
        ablated = np.repeat(a[b][None], a.shape[-1], axis=0)
        for k in range(a.shape[-1]):
            ablated[k, ..., k] = 0
        w = (y - _rest(model, name, ablated)[:, c]) / abs(y)  # a drop is positive for either sign of y
        maps.append(np.maximum((a[b] * w).sum(-1), 0))
    return np.stack(maps)


def _eigen_reference(a):
    maps = []
    for one in a:
        flat = one.reshape(-1, one.shape[-1]).astype(np.float64)
        _, _, vt = np.linalg.svd(flat, full_matrices=False)
        projection = flat @ vt[0]
        if np.corrcoef(projection, flat.sum(-1))[0, 1] < 0:
            projection = -projection
        maps.append(np.maximum(projection.reshape(one.shape[:2]), 0))
    return np.stack(maps)


def _assert_close(got, expected, rtol=2e-4):
    scale = max(float(np.abs(expected).max()), 1e-12)
    assert np.abs(expected).max() > 0, "a reference of all zeros tests nothing"
    np.testing.assert_allclose(got / scale, expected / scale, atol=rtol)


# --------------------------------------------------------------------------- each method against its formula
@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("method", ["gradcam", "hirescam", "gradcam++", "xgradcam", "layercam"])
def test_gradient_methods_follow_their_formula(models, images, name, method):
    model, layer = models[name]
    classes = _classes(name)
    a, g = ct.gradients(model, images, classes, layer)
    expected = np.maximum(_weighting_reference(method, a, g), 0)
    _assert_close(ct.heatmap(model, images, classes, method=method, layer=layer), expected)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize(("method", "score", "reading"), [("scorecam", "logit", "logit"),
                                                          ("scorecam", "probability", "probability"),
                                                          ("scorecam_code", "logit", "code")])
def test_score_cam_follows_wang_et_al(models, images, name, method, score, reading):
    model, layer = models[name]
    classes = _classes(name)
    a, _ = ct.gradients(model, images, classes, layer)
    expected = _score_cam_reference(model, name, images, a, classes, reading)
    _assert_close(ct.heatmap(model, images, classes, method=method, layer=layer, score=score), expected)


@pytest.mark.parametrize("name", list(MODELS))
def test_ablation_cam_follows_desai_and_ramaswamy(models, images, name):
    model, layer = models[name]
    classes = _classes(name)
    a, _ = ct.gradients(model, images, classes, layer)
    expected = _ablation_reference(model, name, a, classes)
    _assert_close(ct.heatmap(model, images, classes, method="ablationcam", layer=layer), expected, rtol=1e-3)


def test_ablation_cam_equals_its_closed_form_on_a_gap_model(models, images):
    """GAP -> Dense logits: y_c - y_c^k = w_kc mean(A_k), so w_k = w_kc mean(A_k) / |y_c| exactly."""
    model, layer = models["sequential"]
    a, _ = ct.gradients(model, images, CLASSES, layer)
    dense = model.get_layer("predictions")
    kernel, bias = dense.kernel.numpy(), dense.bias.numpy()
    logits = a.mean(axis=(1, 2)) @ kernel + bias
    rows = np.arange(len(images))
    w = kernel[:, CLASSES].T * a.mean(axis=(1, 2)) / np.abs(logits[rows, CLASSES])[:, None]
    expected = np.einsum("bhwk,bk->bhw", a, w)
    got = ct.heatmap(model, images, CLASSES, method="ablationcam", layer=layer, relu=False)
    _assert_close(got, expected, rtol=1e-4)


@pytest.mark.parametrize("name", list(MODELS))
def test_eigen_cam_is_the_first_principal_component_with_a_positive_sign(models, images, name):
    model, layer = models[name]
    a, _ = ct.gradients(model, images, 0, layer)
    got = ct.heatmap(model, images, 0, method="eigencam", layer=layer)
    _assert_close(got, _eigen_reference(a))
    # class-agnostic: another class gives the same map
    np.testing.assert_array_equal(ct.heatmap(model, images, 1, method="eigencam", layer=layer), got)


def _guided_reference(model, images, classes):
    """Guided backprop by hand for the Sequential model: the same convolutions with a guided ReLU written here."""

    @tf.custom_gradient
    def guided_relu(x):
        return tf.nn.relu(x), lambda dy: dy * tf.cast(x > 0, dy.dtype) * tf.cast(dy > 0, dy.dtype)

    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        h = x
        for name in ("conv1", "conv2"):
            conv = model.get_layer(name)
            h = guided_relu(tf.nn.conv2d(h, conv.kernel, 1, "VALID") + conv.bias)
        dense = model.get_layer("predictions")
        logits = tf.reduce_mean(h, axis=(1, 2)) @ dense.kernel + dense.bias
        y = tf.reduce_sum(logits * tf.one_hot(classes, 3))
    return tape.gradient(y, x).numpy()


def test_guided_backprop_and_guided_gradcam_follow_their_definitions(models, images):
    model, layer = models["sequential"]
    expected = _guided_reference(model, images, CLASSES)
    got = guided_backprop(model, images, CLASSES)
    assert got.shape == images.shape
    _assert_close(got, expected, rtol=1e-5)
    # the guided ReLUs existed only while tracing: plain gradients and the model are unchanged
    assert model.get_layer("conv1").activation is keras.activations.relu
    assert "call" not in vars(model.get_layer("conv1"))
    with tf.GradientTape() as tape:
        x = tf.constant(images)
        tape.watch(x)
        plain = tape.gradient(tf.reduce_sum(model(x)[:, 0]), x).numpy()
    assert (plain < 0).any()  # ordinary gradients keep negative values that guided ones would not all keep
    gradcam_up = ct.upsample(ct.grad_cam(model, images, CLASSES, layer=layer), (SIZE, SIZE))
    _assert_close(guided_gradcam(model, images, CLASSES, layer=layer), expected * gradcam_up[..., None], rtol=1e-5)
    heat = ct.heatmap(model, images, CLASSES, method="guided_gradcam", layer=layer)
    np.testing.assert_allclose(heat, np.abs(expected * gradcam_up[..., None]).max(-1), rtol=1e-4, atol=1e-9)


def _relu_head() -> keras.Model:
    """Functional, logits; above the explained layer "conv2" the head GAP -> Dense-ReLU -> Dense has a ReLU."""
    keras.utils.set_random_seed(5)  # a seed where both factors are non-zero for every image
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(5, 3, activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(8, activation="relu", name="hidden")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x), name="relu_head")


def test_guided_gradcam_with_a_relu_above_the_layer_uses_guided_relus_only_for_the_input_gradient(images):
    """Guided backprop has guided ReLUs everywhere (also in the head); Grad-CAM's dy/dA has ordinary ones.

    A shortcut that took dy/dA from the guided backward pass would change the answer on this model.
    """
    model = _relu_head()

    @tf.custom_gradient
    def guided_relu(x):
        return tf.nn.relu(x), lambda dy: dy * tf.cast(x > 0, dy.dtype) * tf.cast(dy > 0, dy.dtype)

    x = tf.constant(images)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        h = x
        for name in ("conv1", "conv2"):
            conv = model.get_layer(name)
            h = guided_relu(tf.nn.conv2d(h, conv.kernel, 1, "VALID") + conv.bias)
        a = h
        hidden, out = model.get_layer("hidden"), model.get_layer("logits")
        logits = guided_relu(tf.reduce_mean(a, axis=(1, 2)) @ hidden.kernel + hidden.bias) @ out.kernel + out.bias
        y = tf.reduce_sum(logits * tf.one_hot(CLASSES, 3))
    guided_expected = tape.gradient(y, x).numpy()
    guided_at_a = tape.gradient(y, a).numpy()
    activations, plain_at_a = ct.gradients(model, images, CLASSES, "conv2")
    gradcam = np.maximum(np.einsum("bhwk,bk->bhw", activations, plain_at_a.mean(axis=(1, 2))), 0)
    shortcut = np.maximum(np.einsum("bhwk,bk->bhw", activations, guided_at_a.mean(axis=(1, 2))), 0)
    expected = guided_expected * np.asarray(ct.upsample(gradcam, (SIZE, SIZE)))[..., None]
    wrong = guided_expected * np.asarray(ct.upsample(shortcut, (SIZE, SIZE)))[..., None]
    assert (np.abs(expected).max(axis=(1, 2, 3)) > 0).all()
    assert (np.abs(wrong - expected).max(axis=(1, 2, 3)) > 1e-2 * np.abs(expected).max()).any()  # the head's ReLU matters
    got = guided_gradcam(model, images, CLASSES, layer="conv2")
    _assert_close(guided_backprop(model, images, CLASSES), guided_expected, rtol=1e-5)
    _assert_close(got, expected, rtol=1e-5)
    # the same as the two separate passes (guided backprop, then Grad-CAM), also under SmoothGrad
    two_pass = guided_backprop(model, images, CLASSES) * ct.upsample(
        ct.grad_cam(model, images, CLASSES, layer="conv2"), (SIZE, SIZE))[..., None]
    np.testing.assert_allclose(got, two_pass, rtol=1e-5, atol=1e-7 * np.abs(two_pass).max())
    smooth = (3, 0.2, 5)
    two_pass = guided_backprop(model, images, CLASSES, smooth=smooth) * ct.upsample(
        ct.grad_cam(model, images, CLASSES, layer="conv2", smooth=smooth), (SIZE, SIZE))[..., None]
    got = guided_gradcam(model, images, CLASSES, layer="conv2", smooth=smooth)
    np.testing.assert_allclose(got, two_pass, rtol=1e-5, atol=1e-7 * np.abs(two_pass).max())
    assert model.get_layer("hidden").activation is keras.activations.relu and not vars(model.get_layer("hidden")).get("call")


def test_guided_gradcam_at_a_relu_layer_keeps_it_guided(models, images):
    """Explaining the ReLU6 layer itself: it is captured *and* guided (nested model, a ReLU conv above it)."""
    model, _ = models["nested"]
    two_pass = guided_backprop(model, images, 1) * ct.upsample(
        ct.grad_cam(model, images, 1, layer="relu6"), (SIZE, SIZE))[..., None]
    got = guided_gradcam(model, images, 1, layer="relu6")
    assert np.abs(two_pass).max() > 0
    np.testing.assert_allclose(got, two_pass, rtol=1e-5, atol=1e-7 * np.abs(two_pass).max())
    assert "call" not in vars(model.get_layer("relu6"))


def test_guided_gradcam_leaves_the_model_as_it_was_after_an_error(images):
    """Guided ReLUs, the capture, the softmax bypass and the head's second pass are all undone, also on errors."""
    keras.utils.set_random_seed(6)
    inputs = keras.Input((SIZE, SIZE, 3))
    shared = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="shared")
    x = keras.layers.Conv2D(4, 3, activation="relu", name="last")(shared(shared(inputs)))
    x = keras.layers.Dense(5, activation="relu", name="hidden")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="out")(x))
    before = {layer.name: (dict(vars(layer)).get("call"), getattr(layer, "activation", None)) for layer in model.layers}
    expected = model(images).numpy()
    with pytest.raises(ct.LayerError, match="(runs|ran) 2 times"):
        guided_gradcam(model, images, 0, layer="shared")
    with pytest.raises(ct.TargetError, match="target function"):
        guided_gradcam(model, images, lambda s: s[:, 7], layer="last")
    after = {layer.name: (dict(vars(layer)).get("call"), getattr(layer, "activation", None)) for layer in model.layers}
    assert after == before
    np.testing.assert_array_equal(model(images).numpy(), expected)
    got = guided_gradcam(model, images, 1, layer="last")  # still usable, and still the two-pass answer
    two_pass = guided_backprop(model, images, 1) * ct.upsample(ct.grad_cam(model, images, 1, layer="last"),
                                                               (SIZE, SIZE))[..., None]
    assert np.abs(two_pass).max() > 0
    np.testing.assert_allclose(got, two_pass, rtol=1e-5, atol=1e-7 * np.abs(two_pass).max())


def test_guided_backprop_follows_relu6_and_nested_models(models, images):
    model, _ = models["nested"]
    got = guided_backprop(model, images, 1)
    assert got.shape == images.shape and np.abs(got).max() > 0
    assert "call" not in vars(model.get_layer("relu6"))


# --------------------------------------------------------------------------- identities
def test_on_a_gap_model_cam_hirescam_and_gradcam_agree_after_normalisation(models, images):
    model, layer = models["sequential"]
    cam = ct.normalize(ct.heatmap(model, images, CLASSES, method="cam"))
    for method in ("gradcam", "hirescam"):
        np.testing.assert_allclose(ct.normalize(ct.heatmap(model, images, CLASSES, method=method, layer=layer)), cam,
                                   atol=1e-5)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "layercam"])
def test_smoothgrad_with_sigma_zero_is_the_plain_method_and_otherwise_the_mean_over_noisy_copies(models, images, method):
    model, layer = models["nested"]
    plain = ct.heatmap(model, images, 1, method=method, layer=layer)
    np.testing.assert_allclose(ct.heatmap(model, images, 1, method=method, layer=layer, smooth=(4, 0.0)), plain,
                               rtol=1e-5, atol=1e-7)
    n, sigma, seed = 3, 0.2, 7
    spread = images.max(axis=(1, 2, 3), keepdims=True) - images.min(axis=(1, 2, 3), keepdims=True)
    noise = np.random.default_rng(seed).standard_normal((n, 1, *images.shape[1:]), dtype=np.float32)
    expected = np.mean([ct.heatmap(model, images + noise[i] * sigma * spread, 1, method=method, layer=layer)
                        for i in range(n)], axis=0)
    got = ct.heatmap(model, images, 1, method=method, layer=layer, smooth=(n, sigma, seed))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert not np.allclose(got, plain)


def test_smoothgrad_map_of_an_image_does_not_depend_on_its_batch_mates(models, images):
    """Issue 21 item 7: the same image, class and seed give the same map alone and in a batch."""
    model, layer = models["nested"]
    batch = ct.heatmap(model, images, 1, method="gradcam", layer=layer, smooth=(5, 0.2, 3))
    for i in range(len(images)):
        alone = ct.heatmap(model, images[i:i + 1], 1, method="gradcam", layer=layer, smooth=(5, 0.2, 3))
        np.testing.assert_allclose(alone[0], batch[i], rtol=1e-4, atol=1e-6)


def test_smoothgrad_runs_in_bounded_calls_with_the_same_maps(models, images, monkeypatch):
    """Issue 21 item 9: the n x B noisy copies run in calls of at most SMOOTH_CHUNK_VALUES input values."""
    from camtutor import explain

    model, layer = models["nested"]
    whole = ct.heatmap(model, images, 1, method="layercam", layer=layer, smooth=(6, 0.2, 1))
    sizes = []
    run = explain._run

    def recording_run(function, x, classes):
        sizes.append(len(x))
        return run(function, x, classes)

    monkeypatch.setattr(explain, "_run", recording_run)
    monkeypatch.setattr(explain, "SMOOTH_CHUNK_VALUES", 2 * images.size)  # two copies of the batch per call
    chunked = ct.heatmap(model, images, 1, method="layercam", layer=layer, smooth=(6, 0.2, 1))
    assert sizes == [2 * len(images)] * 3, sizes
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-7)


def test_smoothgrad_is_refused_for_gradient_free_methods(models, images):
    model, _ = models["sequential"]
    with pytest.raises(ct.CamTutorError, match="no gradients"):
        ct.heatmap(model, images, 0, method="scorecam", smooth=(4, 0.1))
    with pytest.raises(ct.CamTutorError, match="smooth must be"):
        ct.heatmap(model, images, 0, smooth=(0, 0.1))


@pytest.mark.parametrize("method", methods.METHODS)
def test_batch_equals_one_at_a_time_for_every_method(models, images, method):
    model, layer = models["sequential"]
    layer = None if method == "cam" else layer
    batch = ct.heatmap(model, images, CLASSES, method=method, layer=layer)
    single = np.concatenate([ct.heatmap(model, images[i:i + 1], CLASSES[i], method=method, layer=layer)
                             for i in range(len(images))])
    np.testing.assert_allclose(batch, single, rtol=1e-4, atol=1e-6 * max(1.0, float(np.abs(batch).max())))


@pytest.mark.parametrize("method", ["scorecam", "ablationcam", "eigencam", "layercam", "cam"])
def test_all_classes_equals_one_class_at_a_time(models, images, method):
    model, layer = models["sequential"]
    layer = None if method == "cam" else layer
    maps, probabilities = heatmap_all_classes(model, images, method=method, layer=layer)
    np.testing.assert_allclose(probabilities, model.predict(images, verbose=0), atol=1e-6)
    for c in range(3):
        np.testing.assert_allclose(maps[:, c], ct.heatmap(model, images, c, method=method, layer=layer, relu=False),
                                   rtol=1e-4, atol=1e-6)


def test_gradient_free_methods_build_no_tape_and_every_function_is_traced_once(images):
    model = _sequential()
    for batch, cls in [(1, 0), (3, CLASSES), (2, 1)]:
        for method in ("cam", "scorecam", "ablationcam", "eigencam"):
            ct.heatmap(model, images[:batch], cls, method=method, layer=None if method == "cam" else "conv2")
    functions = explainer(model)._functions
    assert not any(key[0] in ("gradients", "grad_cam", "grad_cam_all", "guided", "guided_gradcam")
                   for key in functions)
    for method in methods.METHODS:
        for batch in (1, 3):
            ct.heatmap(model, images[:batch], 0, method=method, layer=None if method == "cam" else "conv2",
                       **({"smooth": (2, 0.1)} if methods.get(method).gradients else {}))
    counts = {key[0]: f.experimental_get_tracing_count() for key, f in explainer(model)._functions.items()
              if key[0] != "gradients"}  # "gradients" is traced inside "grad_cam", never called on its own
    assert set(counts) >= {"forward", "inputs_scores", "replaced", "grad_cam", "guided_gradcam"}
    assert set(counts.values()) == {1}


def test_score_cam_runs_in_chunks_of_many_rows(models, images, monkeypatch):
    """Batched: B x K masked inputs in a few calls, not one call per channel per image."""
    from camtutor import method_impl

    model, layer = models["sequential"]
    calls = []
    original = method_impl.Passes

    def counting(*args, **kwargs):
        passes = original(*args, **kwargs)
        score_inputs = passes.score_inputs

        def counted(make_inputs, *arrays):
            if arrays:  # the masked images (the black baseline has no rows)
                calls.append(len(arrays[0]))
            return score_inputs(make_inputs, *arrays)

        passes.score_inputs = counted
        return passes

    monkeypatch.setattr(method_impl, "Passes", counting)
    expected = ct.heatmap(model, images, CLASSES, method="scorecam", layer=layer)
    assert calls == [len(images) * 5]
    monkeypatch.setattr(method_impl, "SCORECAM_CHUNK_VALUES", SIZE * SIZE * 3 * 4)  # 4 rows per call
    calls.clear()
    np.testing.assert_allclose(ct.heatmap(model, images, CLASSES, method="scorecam", layer=layer), expected, rtol=1e-5)
    assert calls == [4, 4, 4, 3]


# --------------------------------------------------------------------------- the registry
def test_every_consumer_reads_the_one_registry():
    assert methods.METHODS == tuple(methods.REGISTRY) == tuple(methods.method_summaries())
    assert ct.METHODS == methods.METHODS
    assert {"cam", "gradcam", "hirescam", "gradcam++", "xgradcam", "layercam", "scorecam", "ablationcam",
            "eigencam", "guided_gradcam"} <= set(methods.METHODS)
    for entry in methods.REGISTRY.values():
        assert entry.summary in methods.method_help()
        if entry.kind == "weighting":
            assert entry.weighting in ct.maths.WEIGHTINGS and entry.gradients
        else:
            assert callable(entry.implementation())
    assert {e.weighting for e in methods.REGISTRY.values() if e.weighting} == {"mean", "elementwise", "positive",
                                                                                "plusplus", "xgrad"}
    with pytest.raises(ct.CamTutorError, match="'scorecam'"):
        methods.get("score-cam")


def test_the_registry_module_needs_no_tensorflow():
    path = Path(methods.__file__)
    code = (f"import importlib.util, sys; spec = importlib.util.spec_from_file_location('m', {str(path)!r}); "
            "m = importlib.util.module_from_spec(spec); sys.modules['m'] = m; spec.loader.exec_module(m); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; print(len(m.METHODS))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) == len(methods.METHODS)
    assert importlib.util.find_spec("camtutor.method_impl") is not None


# --------------------------------------------------------------------------- the pure formulas
def test_pure_formulas_handle_their_edge_cases():
    from camtutor import maths

    weights = maths.score_cam_weights(np.array([[0.2, 0.5, 0.5]], np.float32), np.array([0.1], np.float32))
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
    assert weights[0, 1] == weights[0, 2] > weights[0, 0]
    np.testing.assert_array_equal(maths.ablation_cam_weights(np.array([0.0]), np.array([[1.0, 2.0]])), [[0.0, 0.0]])
    np.testing.assert_allclose(maths.ablation_cam_weights(np.array([2.0]), np.array([[1.0, 3.0]])), [[0.5, -0.5]])
    # a negative score: a drop (-2 -> -3) is still a positive weight, a rise a negative one
    np.testing.assert_allclose(maths.ablation_cam_weights(np.array([-2.0]), np.array([[-3.0, -1.0]])), [[0.5, -0.5]])
    # Eigen-CAM's sign: a map anti-correlated with the activation sum is flipped, whatever the SVD returned
    a = np.zeros((1, 2, 2, 2), np.float32)
    a[0, 0, 0] = [3.0, 0.0]
    a[0, 1, 1] = [0.0, 1.0]
    projection = maths.eigen_projection(a)[0]
    assert projection[0, 0] == pytest.approx(3.0) and projection[1, 1] == pytest.approx(0.0, abs=1e-6)
    assert maths.eigen_projection(-a)[0, 0, 0] == pytest.approx(-3.0)  # correlates with the (negative) sum
    zero = maths.xgrad_cam_weights(np.zeros((1, 2, 2, 1), np.float32), np.ones((1, 2, 2, 1), np.float32))
    np.testing.assert_array_equal(zero, 0.0)


def test_ablation_cam_is_right_when_a_skip_connection_bypasses_the_layer():
    """x -> a -> b -> add(a, b) -> GAP -> Dense: ablating a channel of ``b`` must leave the skip from ``a`` as it is
    on the real image (the rest of the network is not run on zero images)."""
    keras.utils.set_random_seed(3)

    def build(mask=None):
        x = keras.Input((12, 12, 3))
        a = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="a")(x)
        b = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="b")(a)
        if mask is not None:
            b = keras.layers.Rescaling(mask, name="mask")(b)      # b with some channels zeroed (per-channel scale)
        s = keras.layers.Add(name="skip")([a, b])
        out = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling2D()(s))
        return keras.Model(x, out)

    model = build()
    images = np.random.default_rng(0).random((3, 12, 12, 3)).astype(np.float32)
    classes = [0, 1, 2]
    a, _ = ct.gradients(model, images, classes, "b")
    logits = model(images).numpy()
    expected = []
    for i, c in enumerate(classes):
        drops = []
        for k in range(a.shape[-1]):
            reference = build(np.where(np.arange(a.shape[-1]) == k, 0.0, 1.0).astype(np.float32))
            reference.set_weights(model.get_weights())
            drops.append(logits[i, c] - reference(images[i:i + 1]).numpy()[0, c])
        expected.append(np.maximum(np.einsum("hwk,k->hw", a[i], np.array(drops) / abs(logits[i, c])), 0))
    _assert_close(ct.heatmap(model, images, classes, method="ablationcam", layer="b"), np.stack(expected), rtol=1e-4)


def test_ablation_cam_keeps_its_sign_on_a_negative_logit():
    """The bundled shapes model (last_conv -> GAP -> Dense), the least likely class: every logit is negative.
    Removing channel k drops the logit by W_kc mean(A_k) (the closed form), so Ablation-CAM must be
    sum_k W_kc mean(A_k) A_k / |y_c|: that map up to a *positive* factor. Dividing by y_c, as Eq. 3 is
    written (and pytorch-grad-cam 1.5.7 does), inverts it: min-max normalised, the two differ by 1.0."""
    model = ct.models.load("shapes")
    data = ct.data.shapes(12, seed=0)
    least = ct.class_probabilities(model, data.images).argmin(axis=1)
    a, _ = ct.gradients(model, data.images, least, "last_conv")
    dense = model.get_layer("predictions")
    kernel, bias = dense.kernel.numpy(), dense.bias.numpy()
    rows = np.arange(len(least))
    y = (a.mean(axis=(1, 2)) @ kernel + bias)[rows, least]
    assert (y < 0).all()
    drop_map = np.einsum("bhwk,bk->bhw", a, kernel[:, least].T * a.mean(axis=(1, 2)))  # sum_k (y - y^k) A_k
    got = ct.heatmap(model, data.images, least, method="ablationcam", layer="last_conv", relu=False)
    _assert_close(got, drop_map / np.abs(y)[:, None, None], rtol=1e-3)
    assert np.abs(ct.normalize(got) - ct.normalize(drop_map)).max() < 1e-3


def test_all_class_maps_run_the_classes_in_bounded_chunks(models, images, monkeypatch):
    """Issue 21 item 8: the all-class Jacobian (B, C, h, w, K) is computed a few classes at a time, with the
    same maps, so its memory is bounded by ALL_CLASS_VALUES rather than by the number of classes."""
    from camtutor import explain

    model, layer = models["nested"]
    whole, probabilities = ct.explain.heatmap_all_classes(model, images, method="gradcam++", layer=layer)
    calls = []
    run = explain._run

    def recording_run(function, x, classes):
        calls.append(None if classes is None else list(classes))
        return run(function, x, classes)

    monkeypatch.setattr(explain, "_run", recording_run)
    h, w, k = whole.shape[2], whole.shape[3], ct.explain.explainer(model).layer(layer).output.shape[-1]
    monkeypatch.setattr(explain, "ALL_CLASS_VALUES", len(images) * h * w * k)  # one class per call
    chunked, chunked_probabilities = ct.explain.heatmap_all_classes(model, images, method="gradcam++", layer=layer)
    classes = whole.shape[1]
    assert calls == [[c] for c in range(classes)], calls
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(chunked_probabilities, probabilities, rtol=1e-6)
