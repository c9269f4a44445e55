"""Notebook 05, exercise 2: the whole of Grad-CAM from a tf.GradientTape."""


def my_grad_cam_tape(logit_model, images, class_indices, layer_name):
    """Grad-CAM with ReLU from a GradientTape: (B, H, W, 3) images -> (B, h, w) raw maps (Selvaraju et al., Eq. 1-2)."""
    import keras
    import numpy as np
    import tensorflow as tf

    # 1. capture the layer: one model that returns the feature maps and the logits
    probe = keras.Model(logit_model.input, [logit_model.get_layer(layer_name).output, logit_model.output])
    classes = tf.constant(np.asarray(class_indices), dtype=tf.int32)
    with tf.GradientTape() as tape:
        activations, logits = probe(tf.convert_to_tensor(images))
        # 2. one logit per image: its own class
        target = tf.gather(logits, classes, axis=1, batch_dims=1)
    # 3. differentiate the logit with respect to the feature maps
    gradients = tape.gradient(target, activations)                     # (B, h, w, K)
    # 4. one weight per channel: the spatial mean; weighted sum over channels; ReLU
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)   # (B, 1, 1, K)
    return tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1)).numpy()
