"""Channels-first feature maps (B, K, h, w) are read in their layout, never as (B, h, w, K) (issue 21, item 5).

TensorFlow's CPU kernels run Conv2D only channels-last, so the runnable models here are what converters from
PyTorch emit: a channels-last convolution, a ``Permute((3, 1, 2))`` to (B, K, h, w), then layers that read
that layout (``BatchNormalization(axis=1)``, ``GlobalAveragePooling2D(data_format="channels_first")``). Each
is compared with the channels-last model that has the same weights: every method gives the same maps.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import camtutor as ct
from camtutor import feature_maps

SIZE, K, CLASSES = 12, 5, 3


def _pair(batch_norm: bool = False) -> tuple[keras.Model, keras.Model]:
    """(channels-first model, channels-last model) with the same weights; the explained layer is "features"."""
    keras.utils.set_random_seed(4)
    models = []
    for first in (True, False):
        inputs = keras.Input((SIZE, SIZE, 3))
        x = keras.layers.Conv2D(K, 3, strides=2, padding="same", name="conv")(inputs)  # (B, 6, 6, K)
        if first:
            x = keras.layers.Permute((3, 1, 2), name="to_nchw")(x)  # (B, K, 6, 6)
        if batch_norm:
            x = keras.layers.BatchNormalization(axis=1 if first else -1, name="bn")(x)
        x = keras.layers.Activation("relu", name="features")(x)
        x = keras.layers.GlobalAveragePooling2D(data_format="channels_first" if first else "channels_last",
                                                name="gap")(x)
        out = keras.layers.Dense(CLASSES, activation="softmax", name="probs")(x)
        models.append(keras.Model(inputs, out, name="nchw" if first else "nhwc"))
    first, last = models
    for name in ("conv", "probs") + (("bn",) if batch_norm else ()):
        weights = [w + (0.3 * np.random.default_rng(1).normal(size=w.shape)).astype(w.dtype)
                   for w in first.get_layer(name).get_weights()]  # random batch-norm statistics too
        first.get_layer(name).set_weights(weights)
        last.get_layer(name).set_weights(weights)
    return first, last


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((3, SIZE, SIZE, 3), dtype=np.float32)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_every_method_gives_the_channels_last_maps(images, batch_norm):
    first, last = _pair(batch_norm)
    np.testing.assert_allclose(first.predict(images, verbose=0), last.predict(images, verbose=0), atol=1e-6)
    layout = feature_maps.layout_of(ct.layers.find_layer(first, "features"))
    assert (layout.kind, layout.grid, layout.channels) == ("channels_first", (6, 6), K)
    assert ct.layers.default_layer(first).name == "features"
    assert ct.layers.gap_dense_head(first).feature_layer.name == "features"
    for method in ct.METHODS:
        if method == "guided_gradcam":
            continue  # input resolution; the Grad-CAM factor is checked by "gradcam"
        got = ct.heatmap(first, images, [0, 2, 1], method=method, relu=False)
        expected = ct.heatmap(last, images, [0, 2, 1], method=method, relu=False)
        assert got.shape == (3, 6, 6), method
        scale = np.abs(expected).max()
        assert scale > 0, method
        np.testing.assert_allclose(got / scale, expected / scale, atol=2e-5, err_msg=method)
    passed = ct.explain.layer_pass(first, images, ["features"])
    np.testing.assert_allclose(passed.maps("features", "cam")[0], ct.cam_all_classes(last, images)[0], atol=1e-5)


def test_a_conv2d_with_data_format_channels_first_is_read_in_its_layout():
    """Conv2D(data_format="channels_first") does not run on TensorFlow's CPU kernels; its layout is still read."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Permute((3, 1, 2))(inputs)
    x = keras.layers.Conv2D(K, 3, strides=2, padding="same", data_format="channels_first", name="conv")(x)
    x = keras.layers.Conv2D(K, 3, strides=3, padding="same", data_format="channels_first", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(data_format="channels_first")(x)
    model = keras.Model(inputs, keras.layers.Dense(CLASSES)(x))
    layout = feature_maps.layout_of(ct.layers.find_layer(model, "conv"))
    assert (layout.kind, layout.grid, layout.channels) == ("channels_first", (6, 6), K)
    assert ct.layers.is_spatial(model.get_layer("conv"))  # (B, 5, 6, 6): a 6 x 6 map
    assert ct.layers.default_layer(model).name == "conv2"  # (B, 5, 2, 2)


def test_a_layout_the_model_contradicts_is_refused_with_the_fix_then_stated(images):
    """A Permute to (B, K, h, w) read by a channels-last pooling: the model says both; camtutor guesses neither."""
    keras.utils.set_random_seed(6)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(K, 3, strides=2, padding="same", name="conv")(inputs)
    x = keras.layers.Permute((3, 1, 2), name="to_nchw")(x)
    x = keras.layers.Activation("relu", name="features")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)  # channels-last: pools over K and h
    model = keras.Model(inputs, keras.layers.Dense(CLASSES, name="logits")(x))
    assert "features" not in ct.conv_layers(model)
    with pytest.raises(ct.LayerError, match=r"say channels_first.*expect \['channels_last'\].*ChannelsFirst\('features'\)"):
        ct.grad_cam(model, images, 0, layer="features")
    first = ct.grad_cam(model, images, 0, layer=ct.ChannelsFirst("features"))
    last = ct.grad_cam(model, images, 0, layer=ct.ChannelsLast("features"))
    assert first.shape == (3, 6, 6) and last.shape == (3, K, 6)
    with pytest.raises(ct.LayerError, match="contradicts the model"):
        ct.grad_cam(model, images, 0, layer=ct.ChannelsFirst("conv"))  # a channels-last Conv2D
    with pytest.raises(ct.LayerError, match="states tokens"):
        ct.grad_cam(model, images, 0, layer=ct.TokenLayer("conv", (6, 6)))
    assert all("call" not in vars(layer) for layer in model._flatten_layers())


def test_a_transpose_written_as_an_operation_is_followed(images):
    """keras.ops.transpose(x, (0, 3, 1, 2)) then ops only: channels-first, read from the permutation itself."""
    keras.utils.set_random_seed(8)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(K, 3, strides=2, padding="same", name="conv")(inputs)
    x = keras.layers.Activation("relu", name="features")(keras.ops.transpose(x, (0, 3, 1, 2)))
    x = keras.layers.Flatten()(x)  # its data_format is no evidence of the layout
    model = keras.Model(inputs, keras.layers.Dense(CLASSES, name="logits")(x))
    layout = feature_maps.layout_of(ct.layers.find_layer(model, "features"))
    assert (layout.kind, layout.grid, layout.channels) == ("channels_first", (6, 6), K)
    twisted = keras.ops.transpose(keras.ops.transpose(model.get_layer("conv").output, (0, 3, 1, 2)), (0, 1, 3, 2))
    other = keras.Model(inputs, keras.layers.Activation("relu", name="odd")(twisted))
    assert feature_maps.found_layout(other.get_layer("odd")).startswith("it comes from a permutation")
