"""keras-hub's ViT backbone (random weights, nothing downloaded) under camtutor: its token layers are read.

keras-hub's ``ViTPatchingAndEmbedding`` makes tokens straight from the image (no (B, h, w, K) map before
them); camtutor reads the grid from its ``patch_size`` and the input size. Its ``ViTEncoder`` is one layer
holding every block, so with a head on the class token its output is dead (the class-token pitfall) and is
refused with the fix. keras-hub is the ``hub`` extra (``pip install -e ".[test,hub]"``, as ``.ci/run``
does); it does not resolve with the oldest supported pair (TensorFlow 2.16.1 + Keras 3.3.3), whose
environment has no keras_hub, so there the module is skipped.
"""

from __future__ import annotations

import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub", reason="keras-hub is the 'hub' extra: pip install -e '.[test,hub]'")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import camtutor as ct  # noqa: E402


def _vit(head: str):
    keras.utils.set_random_seed(3)
    backbone = keras_hub.models.ViTBackbone(image_shape=(48, 80, 3), patch_size=8, num_layers=2, num_heads=2,
                                            hidden_dim=32, mlp_dim=64, use_class_token=True)
    images = keras.Input((48, 80, 3))
    tokens = backbone(images)                                            # (B, 1 + 6*10, 32)
    if head == "class":
        pooled = keras.layers.Flatten()(keras.layers.Cropping1D((0, tokens.shape[1] - 1))(tokens))
    else:
        pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Cropping1D((1, 0), name="patch_tokens")(tokens))
    return keras.Model(images, keras.layers.Dense(3, activation="softmax", name="predictions")(pooled))


def _grad_cam_by_hand(model, images, classes, layer_name):
    """Grad-CAM of the logit from a GradientTape on the layer's patch tokens, laid out on the 6x10 grid."""
    inner = model.layers[1]
    probe = keras.Model(inner.input, inner.get_layer(layer_name).output)
    head = model.get_layer("predictions")
    kernel, bias = head.get_weights()
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tokens = probe(x)
        tape.watch(tokens)
        rest = tokens if layer_name == "vit_encoder" else inner.get_layer("vit_encoder")(tokens)
        pooled = tf.reduce_mean(rest[:, 1:], axis=1)
        logits = tf.matmul(pooled, kernel) + bias
        score = tf.reduce_sum(tf.gather(logits, classes, axis=1, batch_dims=1))
    grads = tape.gradient(score, tokens).numpy()[:, 1:].reshape(len(images), 6, 10, -1)
    maps = tokens.numpy()[:, 1:].reshape(len(images), 6, 10, -1)
    return np.maximum(np.einsum("bhwk,bk->bhw", maps, grads.mean(axis=(1, 2))), 0)


def test_the_grid_is_read_from_patch_size_and_grad_cam_is_the_formula():
    model = _vit("mean")
    images = np.random.default_rng(0).random((4, 48, 80, 3)).astype("float32")
    classes = np.array([0, 1, 2, 0])
    assert ct.conv_layers(model)[-2:] == ["vit_encoder", "patch_tokens"]   # the crop: the same patch tokens
    reference = _grad_cam_by_hand(model, images, classes, "vit_encoder")
    assert reference.max() > 0
    for layer in (None, "vit_encoder"):                                 # default, then the encoder by name
        maps = ct.grad_cam(model, images, classes, layer=layer)
        assert maps.shape == (4, 6, 10)
        assert np.abs(maps - reference).max() <= 1e-5 * reference.max(), layer


def test_a_class_token_head_makes_the_encoder_output_dead_and_refused():
    model = _vit("class")
    images = np.random.default_rng(1).random((2, 48, 80, 3)).astype("float32")
    assert "vit_encoder" not in ct.conv_layers(model)
    with pytest.raises(ct.LayerError, match="exactly zero gradient"):
        ct.grad_cam(model, images, [0, 1], layer="vit_encoder")
    stated = ct.TokenLayer("vit_encoder", grid=(6, 10), prefix=1)      # stating the grid does not bypass it
    with pytest.raises(ct.LayerError, match="exactly zero gradient"):
        ct.grad_cam(model, images, [0, 1], layer=stated)
