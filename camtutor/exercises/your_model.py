"""Exercise for notebook 07 (your own model): feed camtutor's [0, 1] photos to a keras.applications model.

::

    from camtutor.exercises import your_model as ex
    ex.mobilenet_input.check(my_to_mobilenet)   # RGB (B, H, W, 3) in [0, 1] -> MobileNetV2's [-1, 1]

camtutor reads photos as RGB float32 in [0, 1]. ``keras.applications`` models
expect their own scaling, computed by ``preprocess_input`` from 0-255 pixels;
MobileNetV2's is ``x / 127.5 - 1``. Two classic bugs: calling
``preprocess_input`` on [0, 1] images (everything lands near -1), and
``preprocess_input`` changing a float array *in place*. The checker looks for both.
"""

from __future__ import annotations

import numpy as np

from camtutor.exercises._framework import Exercise, Feedback

__all__ = ["mobilenet_input"]


def _expected(images: np.ndarray) -> np.ndarray:
    """What camtutor computes (the reference solution is in the course repository's labs/solutions/your_model.py)."""
    from camtutor.loading import preprocess

    return preprocess(images, "mobilenet_v2")


def _diagnose(result: np.ndarray, images: np.ndarray) -> str:
    lo, hi = float(result.min()), float(result.max())
    if np.allclose(result, images / 127.5 - 1.0, atol=1e-4):
        return (f"all your values are between {lo:.3f} and {hi:.3f}, close to -1: preprocess_input expects pixels "
                "in 0..255, but camtutor's images are in [0, 1]. Multiply by 255 first.")
    if np.allclose(result, images * 255.0, rtol=1e-4):
        return "your values are in 0..255: that is the input preprocess_input expects, not its output [-1, 1]."
    if np.allclose(result, images * 2.0, atol=1e-4):
        return "your values are in [0, 2]: scale to [-1, 1], i.e. subtract 1 after doubling."
    if np.allclose(result, images, atol=1e-4):
        return "you returned the images unchanged ([0, 1]); MobileNetV2 was trained on [-1, 1]."
    if np.allclose(result, (images * 2.0 - 1.0)[..., ::-1], atol=1e-4):
        return "your channels are reversed (BGR); MobileNetV2 takes RGB, as camtutor's images already are."
    return f"expected values in [-1, 1] equal to images * 2 - 1; yours range from {lo:.3f} to {hi:.3f}."


def _check(function) -> None:
    if not callable(function):
        raise Feedback("pass your function itself, e.g. check(my_to_mobilenet), without calling it.")
    rng = np.random.default_rng(7)
    for shape in [(2, 5, 4, 3), (1, 8, 8, 3)]:
        images = rng.random(shape, dtype=np.float32)
        images[0, 0, 0] = (0.0, 0.5, 1.0)  # the extremes must map to -1 and 1
        given = images.copy()
        result = function(given)
        if result is None:
            raise Feedback("your function returned None; return the converted images.")
        if not np.array_equal(given, images):
            raise Feedback(
                "your function changed the images passed to it (in place). keras' preprocess_input does that to "
                "float arrays: give it a new array, e.g. preprocess_input(images * 255.0)."
            )
        result = np.asarray(result, dtype=np.float64)
        if result.shape != images.shape:
            raise Feedback(f"expected the shape of the input {images.shape}, got {result.shape}.")
        if not np.allclose(result, _expected(images), atol=1e-4):
            raise Feedback(_diagnose(result, images))


mobilenet_input = Exercise(
    "MobileNetV2 input",
    _check,
    hints=[
        "MobileNetV2 expects values in [-1, 1]; camtutor's images are in [0, 1]. Which straight line maps 0 to -1 "
        "and 1 to 1?",
        "keras.applications.mobilenet_v2.preprocess_input(x) computes x / 127.5 - 1 for pixels x in 0..255.",
        "Either `return images * 2.0 - 1.0`, or `return preprocess_input(images * 255.0)` (the product is a new "
        "array, so your input is not modified).",
    ],
    solution="your_model.my_to_mobilenet",
    success="That is what camtutor.loading.preprocess(images, 'mobilenet_v2') and `camtutor explain "
    "--preprocess mobilenet_v2` compute.",
)
