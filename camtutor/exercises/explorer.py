"""Exercise for notebook 06 (the explorer): pick each image's predicted-class map from the all-class cache.

::

    from camtutor.exercises import explorer as ex
    ex.predicted_maps.check(my_predicted_maps)   # maps (B, C, h, w), probabilities (B, C) -> (B, h, w)
    ex.own_object_share.check(my_own_object_share)  # maps (B, h, w), masks (B, H, W) x 2 -> (B,)

The explorer computes the maps of *every* class for *every* image in one pass,
``maps[b, c]`` being image b's map for class c. Switching image or class is then
just indexing. The checker compares the student's function with the expected answers on
seeded random arrays (B != C, so a wrong axis shows) and names typical mistakes.
"""

from __future__ import annotations

import numpy as np

from camtutor.exercises._framework import Exercise, Feedback

__all__ = ["predicted_maps", "own_object_share"]


# The checkers' expected answers are written out (the reference solutions are in the course repository's
# labs/solutions/explorer.py, not in the package): the most probable class of each image of each case ...
_PREDICTED = {1: (0, 2, 0), 0: (4, 2, 2, 4), 2: (1, 1, 1, 1, 1, 0)}


def _expected_predicted_maps(seed: int, maps: np.ndarray) -> np.ndarray:
    return maps[np.arange(len(maps)), list(_PREDICTED[seed])]


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
        expected = _expected_predicted_maps(seed, maps)
        if result.shape != expected.shape or not np.allclose(result, expected, atol=1e-6):
            raise Feedback(_diagnose(result, maps, probabilities))


predicted_maps = Exercise(
    "Predicted-class maps",
    _check,
    hints=[
        "The predicted class of each image is `probabilities.argmax(axis=1)`: one index per image, shape (B,).",
        "`maps[:, classes]` would give (B, B, h, w). Index two axes at once: `maps[np.arange(B), classes]`.",
    ],
    solution="explorer.my_predicted_maps",
    success="This is all the explorer does when you switch image or class: indexing, no network.",
)


# --------------------------------------------------------------------------- is the map on the right object?
# ... and the share on the own object of each image of each case (ct.upsample, ReLU before and after).
_SHARES = {
    0: (0.5, 0.900255, 0.140136, 0.58836),
    1: (0.5, 0.108197, 0.968903, 0.936654),
    2: (0.5, 0.203412, 0.565149, 0.952139),
}


def _share_case(seed: int, batch: int = 4, cells: int = 4, pixels: int = 16):
    rng = np.random.default_rng(seed)
    maps = rng.normal(size=(batch, cells, cells)).astype(np.float32)
    maps[0] = -np.abs(maps[0])                                          # image 0: no positive evidence at all
    own = np.zeros((batch, pixels, pixels), bool)
    other = np.zeros((batch, pixels, pixels), bool)
    own[:, 1:6, 2:9] = True
    other[:, 9:15, 7:14] = True
    return maps, own, other


def _diagnose_share(result: np.ndarray, expected: np.ndarray, maps, own, other) -> str:
    import camtutor as ct

    if result.shape != expected.shape:
        return f"expected one number per image, shape (B,) = {expected.shape}; got {result.shape}."
    if not np.all(np.isfinite(result)):
        return ("some results are NaN or infinite: an image whose map has no positive mass on either object divides "
                "0 by 0. Return 0.5 (no preference) there.")
    big = np.asarray(ct.upsample(np.asarray(maps, np.float32), own.shape[1:]))
    own_raw, other_raw = (big * own).sum(axis=(1, 2)), (big * other).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        no_relu = own_raw / (own_raw + other_raw)
    finite = np.isfinite(no_relu)
    if np.allclose(result[finite], no_relu[finite], atol=1e-4) and not np.allclose(result, expected, atol=1e-4):
        return "you summed the raw map; negative cells (evidence against) cancel positive ones. Apply the ReLU first."
    big_pos = np.maximum(big, 0)
    whole = (big_pos * own).sum(axis=(1, 2)) / np.maximum(big_pos.sum(axis=(1, 2)), 1e-12)
    if np.allclose(result[1:], whole[1:], atol=1e-4):
        return ("you divided by the mass of the whole map; the question is which of the two OBJECTS the map prefers: "
                "divide by (mass on own object + mass on other object).")
    return "not the share of the positive mass on the own object (among the two objects)."


def _check_share(function) -> None:
    if not callable(function):
        raise Feedback("pass your function itself, e.g. check(my_own_object_share), without calling it.")
    for seed in (0, 1, 2):
        maps, own, other = _share_case(seed)
        try:
            result = function(maps.copy(), own.copy(), other.copy())
        except ValueError as error:
            if "broadcast" in str(error) or "shape" in str(error):
                raise Feedback(f"a shape error ({error}). The maps are (B, h, w) cells, the masks (B, H, W) pixels: "
                               "upsample the maps to the masks' size first (ct.upsample).") from None
            raise
        if result is None:
            raise Feedback("your function returned None: nothing to check yet. Replace `return None` with your code, "
                           "which returns one share per image, shape (B,).")
        result = np.asarray(result, dtype=np.float64)
        expected = np.array(_SHARES[seed])
        if result.shape != expected.shape or not np.allclose(result, expected, atol=1e-4):
            raise Feedback(_diagnose_share(result, expected, maps, own, other))


own_object_share = Exercise(
    "Share on the own object",
    _check_share,
    hints=[
        "Three steps per image: keep the evidence FOR the class, bring the map to the masks' pixels, then compare the "
        "mass on the two objects.",
        "The maps have cells, the masks pixels: `ct.upsample(maps, masks.shape[1:])` gives (B, H, W). Which values "
        "should you drop before or after upsampling, and why does bilinear upsampling keep them dropped?",
        "A sum over a mask is `(heat * mask).sum(axis=(1, 2))`. Watch the image whose map has no positive cell: what "
        "should a share be when both sums are 0?",
    ],
    solution="explorer.my_own_object_share",
    success="This is the discrimination column of notebook 05's table, for one layer.",
)
