"""The per-image Grad-CAM of the Keras code example, re-implemented as a benchmark contender.

The Keras example ("Grad-CAM class activation visualization") explains one
image at a time:

1. strip the softmax once (``model.layers[-1].activation = None``) -- done here
   on a *clone*, so the benchmarked model is never changed;
2. per call, build a grad model ``keras.Model(model.inputs, [layer.output, model.output])``;
3. under a ``tf.GradientTape``, run it on one image and take the class logit;
4. channel weights = spatial mean of the gradients, map = ``A @ weights``;
5. ``ReLU`` and divide by the map's max, so the map is in [0, 1].

Written from that description; no code copied. As in the example, the max in
step 5 is taken *before* the ReLU: a map with only negative evidence becomes
all (-)0, and a map that is exactly 0 everywhere (dead feature maps) becomes
NaN (0 / 0).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def logit_clone(model: keras.Model) -> keras.Model:
    """A copy of ``model`` with the same weights whose last layer has no activation (softmax stripped)."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    clone.layers[-1].activation = None
    return clone


def heatmap_one_image(image: np.ndarray, model: keras.Model, layer_name: str, class_index: int) -> np.ndarray:
    """The example's ``make_gradcam_heatmap``: one image (1, H, W, C) -> map (h, w) in [0, 1]."""
    grad_model = keras.Model(model.inputs, [model.get_layer(layer_name).output, model.output])
    with tf.GradientTape() as tape:
        feature_maps, predictions = grad_model(image)
        class_channel = predictions[:, class_index]
    grads = tape.gradient(class_channel, feature_maps)
    pooled_grads = tf.reduce_mean(grads, axis=(0, 1, 2))  # (K,)
    heatmap = tf.squeeze(feature_maps[0] @ pooled_grads[..., tf.newaxis], axis=-1)  # (h, w)
    heatmap = tf.maximum(heatmap, 0) / tf.math.reduce_max(heatmap)
    return heatmap.numpy()


def keras_example_grad_cam(model: keras.Model, images: np.ndarray, class_indices, layer_name: str) -> np.ndarray:
    """Loop the example over a batch: (B, H, W, C) -> (B, h, w), one grad model and one tape per image.

    ``model`` must already be a :func:`logit_clone` (the example strips the softmax once, up front).
    """
    return np.stack(
        [heatmap_one_image(images[i : i + 1], model, layer_name, int(c)) for i, c in enumerate(class_indices)]
    )
