"""Notebook 06 (predicted-class maps; share on the own object, also notebook 08)."""

import numpy as np

import camtutor as ct


def my_predicted_maps(maps, probabilities):
    """For each image, the map of its most probable class: maps (B, C, h, w), probabilities (B, C) -> (B, h, w)."""
    maps, probabilities = np.asarray(maps), np.asarray(probabilities)
    predicted = probabilities.argmax(axis=1)  # (B,): one class per image
    return maps[np.arange(len(maps)), predicted]  # pair image b with its own class


def my_own_object_share(maps, own_masks, other_masks):
    """Per image, the share of a map's positive mass on the own object among both objects: (B,) in [0, 1].

    ``maps`` (B, h, w) raw maps at the layer's resolution; ``own_masks`` / ``other_masks`` (B, H, W) bool,
    the pixels of the object of the class asked for and of the other object. 0.5 when neither object gets
    any positive mass (no preference).
    """
    masks_own = np.asarray(own_masks, dtype=bool)
    masks_other = np.asarray(other_masks, dtype=bool)
    heat = np.maximum(np.asarray(maps, dtype=np.float32), 0.0)          # only evidence FOR the class
    heat = np.asarray(ct.upsample(heat, masks_own.shape[1:]))           # (B, H, W): to the masks' pixels
    heat = np.maximum(heat, 0.0)
    own = (heat * masks_own).sum(axis=(1, 2))
    other = (heat * masks_other).sum(axis=(1, 2))
    total = own + other
    return np.where(total > 0, own / np.where(total > 0, total, 1.0), 0.5)
