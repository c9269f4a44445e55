"""Graph walks and tracing-time surgery on real model shapes (issue 21, items 2, 3, 4 and 12).

2. a residual written as an operation (``x + branch`` is a Keras operation, not a layer) can be named and
   captured, and is the default where it is the last feature map (ConvNeXt);
3. guided backpropagation guides every ReLU whatever its spelling, refuses one it cannot reach, and warns
   when a model has nothing to guide;
4. a changed output activation (``model.layers[-1].activation = None``) is read again, not cached;
12. a layer that runs more than once in a forward pass is never the default, and choosing it is refused
    with the fix.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import camtutor as ct
from camtutor import surgery
from camtutor.errors import CamTutorError, LayerError
from camtutor.layers import _innermost, conv_layers, default_layer, find_layer, layer_name

SIZE = 16
CLASSES = 3


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).random((2, SIZE, SIZE, 3), dtype=np.float32)


# --------------------------------------------------------------------------- 2. residuals as operations
def _residual_model() -> keras.Model:
    """conv -> (conv -> linear "identity") + skip, written with ``+`` -> GAP -> Dense."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="stem")(inputs)
    branch = keras.layers.Conv2D(6, 3, padding="same", name="branch")(x)
    branch = keras.layers.Activation("linear", name="identity")(branch)
    x = x + branch  # a keras.ops Add operation, not a layer
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(CLASSES, name="dense")(x), name="residual")


def test_a_residual_operation_is_listed_chosen_by_default_and_captured(images):
    model = _residual_model()
    gap = model.get_layer("gap")
    add = _innermost(gap.input)[0]
    assert not isinstance(add, keras.layers.Layer)  # the sum is an Operation
    name = layer_name(model, add)
    assert name in conv_layers(model)
    assert find_layer(model, name) is add
    assert default_layer(model) is add  # not "identity", the branch without its skip path
    # Grad-CAM at the sum, from raw numpy: dy_c/dA = W[:, c] / (h w) everywhere, so L = ReLU(A . W[:, c] / (h w))
    features = keras.Model(model.inputs[0], gap.input)(images).numpy()
    kernel = model.get_layer("dense").kernel.numpy()
    expected = np.maximum(features @ kernel[:, 1] / (SIZE * SIZE), 0.0)
    for layer in (None, name):
        got = ct.grad_cam(model, images, 1, layer=layer)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    # Ablation-CAM replaces the operation's output; HiResCAM and Eigen-CAM read it
    for method in ("ablationcam", "eigencam", "hirescam", "scorecam"):
        assert np.isfinite(ct.heatmap(model, images, 1, method=method)).all()


@pytest.fixture(scope="module")
def convnext() -> keras.Model:
    return keras.applications.ConvNeXtTiny(
        weights=None, input_shape=(64, 64, 3), classes=4, include_preprocessing=False
    )


def test_convnext_default_is_the_tensor_that_feeds_global_average_pooling(convnext):
    gap = next(x for x in convnext.layers if isinstance(x, keras.layers.GlobalAveragePooling2D))
    feeding = _innermost(gap.input)[0]
    assert default_layer(convnext) is feeding
    x = np.random.default_rng(1).normal(size=(2, 64, 64, 3)).astype(np.float32)
    default = ct.grad_cam(convnext, x, 0, relu=False)
    named = ct.grad_cam(convnext, x, 0, relu=False, layer=layer_name(convnext, feeding))
    np.testing.assert_array_equal(default, named)
    # by hand: the head after GAP (LayerNormalization -> Dense) on the tensor, differentiated to it
    gap_index = convnext.layers.index(gap)
    norm, dense = convnext.layers[gap_index + 1:]
    a = tf.constant(keras.Model(convnext.inputs[0], gap.input)(x))
    with tf.GradientTape() as tape:
        tape.watch(a)
        y = tf.matmul(norm(tf.reduce_mean(a, axis=(1, 2))), dense.kernel)[:, 0] + dense.bias[0]
    alpha = tf.reduce_mean(tape.gradient(y, a), axis=(1, 2))
    expected = tf.einsum("bhwk,bk->bhw", a, alpha).numpy()
    assert default.shape == (2, 2, 2)
    np.testing.assert_allclose(default, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())


# --------------------------------------------------------------------------- 3. guided ReLUs, any spelling
def _spelled(spelling: str) -> keras.Model:
    """The same two-conv network with its ReLUs written one way."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = inputs
    for i, filters in enumerate((6, 5)):
        if spelling == "conv_activation_tf":
            x = keras.layers.Conv2D(filters, 3, padding="same", activation=tf.nn.relu, name=f"c{i}")(x)
            continue
        if spelling == "conv_activation_ops":
            x = keras.layers.Conv2D(filters, 3, padding="same", activation=keras.ops.relu, name=f"c{i}")(x)
            continue
        x = keras.layers.Conv2D(filters, 3, padding="same", name=f"c{i}")(x)
        if spelling == "string":
            x = keras.layers.Activation("relu")(x)
        elif spelling == "activation_tf":
            x = keras.layers.Activation(tf.nn.relu)(x)
        elif spelling == "ops":
            x = keras.ops.relu(x)
        elif spelling == "activations_call":
            x = keras.activations.relu(x)
        elif spelling == "layer":
            x = keras.layers.ReLU()(x)
        else:  # pragma: no cover
            raise AssertionError(spelling)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(8, activation=tf.nn.relu, name="hidden")(x)
    return keras.Model(inputs, keras.layers.Dense(CLASSES, name="out")(x))


SPELLINGS = ("layer", "conv_activation_tf", "conv_activation_ops", "activation_tf", "ops", "activations_call")


def test_guided_backprop_is_the_same_whatever_the_relu_spelling(images):
    keras.utils.set_random_seed(3)
    reference = _spelled("string")
    weights = reference.get_weights()
    expected = ct.guided_backprop(reference, images, 1)
    expected_ggc = ct.guided_gradcam(reference, images, 1)
    assert np.abs(expected).max() > 0
    for spelling in SPELLINGS:
        model = _spelled(spelling)
        model.set_weights(weights)
        np.testing.assert_allclose(model(images).numpy(), reference(images).numpy(), rtol=1e-5, atol=1e-6)
        got = ct.guided_backprop(model, images, 1)
        diff = np.abs(got - expected).max() / np.abs(expected).max()
        assert diff < 1e-5, (spelling, diff)
        # the default layer is the last ReLU's output in every spelling (a Conv2D's own, an Activation, an op)
        ggc = ct.guided_gradcam(model, images, 1)
        np.testing.assert_allclose(ggc, expected_ggc, rtol=1e-4, atol=1e-6 * np.abs(expected_ggc).max())


class _HiddenReLU(keras.layers.Layer):
    def call(self, x):
        return tf.nn.relu(x)


def _user_relu(x):
    return tf.nn.relu(x)


HIDDEN = {
    "lambda": lambda: keras.layers.Lambda(lambda t: tf.nn.relu(t), name="hidden_relu"),
    "custom_layer": lambda: _HiddenReLU(name="hidden_relu"),
    "user_activation": lambda: keras.layers.Activation(_user_relu, name="hidden_relu"),
}


@pytest.mark.parametrize("hidden", sorted(HIDDEN))
def test_a_relu_guided_backprop_cannot_reach_is_refused(images, hidden):
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", name="c0")(inputs)
    x = HIDDEN[hidden]()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(CLASSES)(x))
    with pytest.raises(CamTutorError, match="cannot reach 1 ReLU.*keras.layers.ReLU"):
        ct.guided_backprop(model, images, 0)
    with pytest.raises(CamTutorError, match="cannot reach 1 ReLU"):
        ct.guided_gradcam(model, images, 0)
    ct.grad_cam(model, images, 0)  # plain gradients do not need to reach it


def test_keras_activations_that_use_relu_inside_are_not_refused(images):
    """PReLU and hard swish compute ReLUs inside Keras's own code: they are not ReLUs to guide."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", name="c0")(inputs)
    x = keras.layers.PReLU()(keras.layers.Activation("hard_swish")(x))
    model = keras.Model(inputs, keras.layers.Dense(CLASSES)(keras.layers.GlobalAveragePooling2D()(x)))
    with pytest.warns(UserWarning, match="no ReLU"):
        assert np.isfinite(ct.guided_backprop(model, images, 0)).all()


def test_a_model_with_nothing_to_guide_warns(images):
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="swish", name="c0")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(CLASSES)(x))
    with pytest.warns(UserWarning, match="no ReLU"):
        guided = ct.guided_backprop(model, images, 0)
    with pytest.warns(UserWarning, match="no ReLU"):
        ct.guided_gradcam(model, images, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ct.guided_backprop(_spelled("string"), images, 0)  # ReLUs to guide: no warning
    x_t = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        y = model(x_t)[:, 0]
    np.testing.assert_allclose(guided, tape.gradient(y, x_t).numpy(), rtol=1e-5, atol=1e-8)


# --------------------------------------------------------------------------- 4. a changed output activation
def _softmax_model() -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="feat")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(CLASSES, activation="softmax", name="out")(x))


def test_removing_the_output_activation_is_seen(images):
    model = _softmax_model()
    model.get_layer("out").kernel.assign(model.get_layer("out").kernel * 20.0)
    probabilities = ct.class_probabilities(model, images)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    before = ct.grad_cam(model, images, 1, score="probability")
    model.layers[-1].activation = None  # the Keras Grad-CAM example's trick: the model now outputs logits
    logits = model(images).numpy()
    assert ct.explain.explainer(model).info.activation == "linear"
    np.testing.assert_allclose(ct.class_probabilities(model, images), tf.nn.softmax(logits).numpy(), rtol=1e-5)
    # the probability is still softmax(logits), so Grad-CAM of it is unchanged; the logit now is the output
    np.testing.assert_allclose(ct.grad_cam(model, images, 1, score="probability"), before, rtol=1e-4, atol=1e-9)
    x_t = tf.constant(images)
    feat = keras.Model(model.inputs[0], model.get_layer("feat").output)
    a = feat(x_t).numpy()
    w = model.get_layer("out").kernel.numpy()[:, 1]
    np.testing.assert_allclose(ct.grad_cam(model, images, 1), np.maximum(a @ w / (SIZE * SIZE), 0), rtol=1e-5,
                               atol=1e-7)
    auc, curves = ct.metrics.deletion(model, images, ct.grad_cam(model, images, 1), 1, steps=4)
    assert (curves >= 0).all() and (curves <= 1).all() and ((auc >= 0) & (auc <= 1)).all()
    model.layers[-1].activation = keras.activations.sigmoid  # another semantic change: read again
    assert ct.explain.explainer(model).info.activation == "sigmoid"
    np.testing.assert_allclose(ct.class_probabilities(model, images), model(images).numpy(), rtol=1e-6)


# --------------------------------------------------------------------------- 12. a layer used twice
def _shared_model() -> keras.Model:
    """Two branches through one shared conv, merged by an Add layer: the shared conv runs twice."""
    inputs = keras.Input((SIZE, SIZE, 3))
    left = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="left")(inputs)
    right = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="right")(inputs)
    shared = keras.layers.Conv2D(5, 3, padding="same", name="shared")
    x = keras.layers.Add(name="merge")([shared(left), shared(right)])
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(CLASSES)(x))


def _shared_sequential_model() -> keras.Model:
    """A Sequential block called on two branches: its layers run twice, each with one inbound node in it."""
    block = keras.Sequential([keras.Input((SIZE, SIZE, 6)), keras.layers.Conv2D(5, 3, padding="same", name="inner")],
                             name="block")
    inputs = keras.Input((SIZE, SIZE, 3))
    left = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="left")(inputs)
    right = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="right")(inputs)
    x = keras.layers.Concatenate(name="merge")([block(left), block(right)])
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(CLASSES)(x))


@pytest.mark.parametrize("build", [_shared_model, _shared_sequential_model])
def test_a_layer_that_runs_twice_is_refused_naming_one_that_runs_once(images, build):
    model = build()
    assert layer_name(model, default_layer(model)) == "merge"
    shared = "shared" if build is _shared_model else "inner"
    with pytest.raises(LayerError, match=r"runs 2 times.*layer='merge'"):
        ct.grad_cam(model, images, 0, layer=shared)


def _siamese(block: bool) -> keras.Model:
    """Two branches through one shared conv (or a shared Sequential block), each pooled: the last map runs twice."""
    inputs = keras.Input((SIZE, SIZE, 3))
    left = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="left")(inputs)
    right = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="right")(inputs)
    if block:
        shared = keras.Sequential([keras.Input((SIZE, SIZE, 6)), keras.layers.Conv2D(5, 3, padding="same",
                                                                                    name="shared")], name="block")
    else:
        shared = keras.layers.Conv2D(5, 3, padding="same", name="shared")
    pooled = [keras.layers.GlobalAveragePooling2D()(shared(x)) for x in (left, right)]
    return keras.Model(inputs, keras.layers.Dense(CLASSES)(keras.layers.Concatenate()(pooled)))


@pytest.mark.parametrize("block", [False, True])
def test_a_default_that_runs_twice_is_refused_naming_one_that_runs_once(images, block):
    model = _siamese(block)
    with pytest.raises(LayerError, match=r"'shared',? runs 2 times.*layer='right'"):
        default_layer(model)
    with pytest.raises(LayerError, match=r"runs 2 times.*layer='right'"):
        ct.grad_cam(model, images, 0)
    assert ct.grad_cam(model, images, 0, layer="right").shape == (2, SIZE, SIZE)


def test_a_model_whose_every_map_runs_twice_is_refused(images):
    inputs = keras.Input((SIZE, SIZE, 3))
    shared = keras.layers.Conv2D(5, 3, padding="same", name="shared")
    pooled = [keras.layers.GlobalAveragePooling2D()(shared(inputs)) for _ in range(2)]  # two calls, one input
    model = keras.Model(inputs, keras.layers.Dense(CLASSES)(keras.layers.Concatenate()(pooled)))
    with pytest.raises(LayerError, match="runs 2 times.*a layer that runs once"):
        default_layer(model)


def test_the_trace_time_guard_names_the_layer(images):
    """A layer reached twice in ways the graph does not show (called again from inside another layer) is
    still refused while tracing, by name."""
    model = _residual_model()
    layer = model.get_layer("branch")
    with surgery.traced(layer, None, None) as capture:
        model(images)
        model(images)
    with pytest.raises(LayerError, match="layer 'branch' ran 2 times"):
        capture.tensor  # noqa: B018
