"""Notebook 07: feed camtutor's [0, 1] photos to MobileNetV2."""

import numpy as np


def my_to_mobilenet(images):
    """RGB float images in [0, 1], (B, H, W, 3) -> MobileNetV2's input in [-1, 1], as a new array."""
    pixels = np.asarray(images, dtype=np.float32) * 255.0  # a new array in 0..255
    return pixels / 127.5 - 1.0  # what keras.applications.mobilenet_v2.preprocess_input computes
