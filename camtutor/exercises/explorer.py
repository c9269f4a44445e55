"""Exercise for notebook 06 (the explorer): pick each image's predicted-class map from the all-class cache.

::

    from camtutor.exercises import explorer as ex
    ex.predicted_maps.check(my_predicted_maps)   # maps (B, C, h, w), probabilities (B, C) -> (B, h, w)

The explorer computes the maps of *every* class for *every* image in one pass,
``maps[b, c]`` being image b's map for class c. Switching image or class is then
just indexing. The checker compares the student's function with the reference on
seeded random arrays (B != C, so a wrong axis shows) and names typical mistakes.
"""

from __future__ import annotations

import numpy as np

from camtutor.exercises._framework import Exercise, Feedback

__all__ = ["predicted_maps", "reference_predicted_maps"]


def reference_predicted_maps(maps, probabilities):
    """For each image, the map of its most probable class: maps (B, C, h, w), probabilities (B, C) -> (B, h, w)."""
    import numpy as np

    maps, probabilities = np.asarray(maps), np.asarray(probabilities)
    predicted = probabilities.argmax(axis=1)  # (B,): one class per image
    return maps[np.arange(len(maps)), predicted]  # pair image b with its own class


def _case(seed: int, batch: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    maps = rng.normal(size=(batch, classes, 3, 4)).astype(np.float32)
    logits = rng.normal(size=(batch, classes)) * 3
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return maps, probabilities.astype(np.float32)


def _diagnose(result: np.ndarray, maps: np.ndarray, probabilities: np.ndarray) -> str:
    batch = len(maps)
    if result.shape == (batch, batch, *maps.shape[2:]):
        return ("your result has shape (B, B, h, w): `maps[:, classes]` takes every chosen class for every image. "
                "Pair image b with its own class: index with `np.arange(B)` and the classes together.")
    if result.shape != (batch, *maps.shape[2:]):
        return f"expected shape (B, h, w) = {(batch, *maps.shape[2:])}, got {result.shape}."
    if np.allclose(result, maps.max(axis=1)):
        return ("you took the maximum over classes pixel by pixel; that mixes the maps of different classes. "
                "Choose one class per image (the most probable), then take that whole map.")
    if np.allclose(result, maps[np.arange(batch), probabilities.argmin(axis=1)]):
        return "you picked the least probable class of each image (argmin); the predicted class is the argmax."
    if batch <= maps.shape[1] and np.allclose(result, maps[np.arange(batch), probabilities.argmax(axis=0)[:batch]]):
        return "you took the argmax over images (axis 0); the classes are along axis 1 of probabilities."
    return "the maps are not those of each image's most probable class."


def _check(function) -> None:
    if not callable(function):
        raise Feedback("pass your function itself, e.g. check(my_predicted_maps), without calling it.")
    for seed, batch, classes in [(1, 3, 3), (0, 4, 5), (2, 6, 2)]:
        maps, probabilities = _case(seed, batch, classes)
        result = function(maps.copy(), probabilities.copy())
        if result is None:
            raise Feedback("your function returned None: nothing to check yet. Replace `return None` with your code, "
                           "which returns the (B, h, w) maps.")
        result = np.asarray(result, dtype=np.float64)
        expected = reference_predicted_maps(maps, probabilities)
        if result.shape != expected.shape or not np.allclose(result, expected, atol=1e-6):
            raise Feedback(_diagnose(result, maps, probabilities))


predicted_maps = Exercise(
    "Predicted-class maps",
    _check,
    hints=[
        "The predicted class of each image is `probabilities.argmax(axis=1)`: one index per image, shape (B,).",
        "`maps[:, classes]` would give (B, B, h, w). Index two axes at once: `maps[np.arange(B), classes]`.",
    ],
    solution=reference_predicted_maps,
    success="This is all the explorer does when you switch image or class: indexing, no network.",
)
