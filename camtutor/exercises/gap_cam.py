"""Exercises for notebooks 00 (peak of a map), 01 (global average pooling) and 02 (CAM weights, threshold box).

::

    from camtutor.exercises import gap_cam as ex
    ex.peak.check(my_peak)      # 00: where is the map's maximum, in image pixels?
    ex.gap.check(my_gap)        # 01: (B, H, W, K) -> (B, K)
    ex.cam.check(my_cam)        # 02: feature maps + Dense kernel + class -> (B, h, w)
    ex.box.check(my_box)        # 02: the CAM paper's 20 % threshold box

Each checker runs the student's function on small seeded random arrays (non-square, so a
wrong axis shows) and compares with camtutor's own functions; typical mistakes get a
message that names them.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from camtutor.exercises._framework import Exercise, Feedback

__all__ = ["peak", "gap", "cam", "box"]


# --------------------------------------------------------------------------- what the checkers compare with
# The library's own functions (the reference solutions are in the course repository's labs/solutions/gap_cam.py,
# not in the package).
def _expected_peak(heatmap: np.ndarray, image_size: int) -> tuple[int, int]:
    from camtutor.localize import peak as library_peak

    return library_peak(heatmap, (image_size, image_size))


def _expected_gap(feature_maps: np.ndarray) -> np.ndarray:
    from camtutor.maths import global_average_pooling

    return np.asarray(global_average_pooling(feature_maps), dtype=np.float64)


def _expected_cam(feature_maps: np.ndarray, dense_kernel: np.ndarray, class_index: int) -> np.ndarray:
    from camtutor.maths import cam_weights, weighted_channel_sum

    classes = np.full(len(feature_maps), class_index)
    return np.asarray(weighted_channel_sum(feature_maps, cam_weights(dense_kernel, classes)), dtype=np.float64)


def _expected_box(heatmap: np.ndarray, fraction: float = 0.2) -> tuple[int, int, int, int]:
    """The box of camtutor.box_from_map: the checker's maps have one blob, where it keeps every cell above the cut."""
    from camtutor.localize import box_from_map

    return box_from_map(heatmap, fraction)


# --------------------------------------------------------------------------- helpers for checkers
def _as_array(result: object, what: str) -> np.ndarray:
    if result is None:
        raise Feedback(f"Nothing to check yet: your function returns None. Replace `return None` by your code; it should return {what} (did you forget `return`?).")
    try:
        return np.asarray(result, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise Feedback(f"your function should return {what}, got {type(result).__name__} ({error}).") from None


def _integers(result: object, names: str) -> tuple[int, ...]:
    """The student's result as a tuple of ints named like ``names`` = "(x, y)", or Feedback."""
    count = names.count(",") + 1
    if result is None:
        raise Feedback(
            "Nothing to check yet: your function returns None. Replace `return None` by your code; "
            f"it should return {names} (did you forget `return`?)."
        )
    try:
        got = tuple(int(v) for v in result)
    except (TypeError, ValueError):
        raise Feedback(f"return {count} integers {names}, got {result!r}.") from None
    if len(got) != count:
        raise Feedback(f"return {count} integers {names}, got {len(got)} values.")
    return got


def _same(a: np.ndarray, b: np.ndarray, atol: float = 1e-4) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-4, atol=atol))


def _random_feature_maps(seed: int, shape: tuple[int, int, int, int]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.maximum(rng.normal(0.5, 1.0, shape), 0.0).astype(np.float32)  # ReLU-like: >= 0, many zeros


# --------------------------------------------------------------------------- peak
def _check_peak(student: Callable) -> None:
    rng = np.random.default_rng(10)
    for (height, width), image_size in (((16, 16), 64), ((8, 8), 64), ((4, 8), 224), ((16, 16), 1024)):
        heat = rng.normal(size=(height, width)).astype(np.float32)
        expected = _expected_peak(heat, image_size)
        got = _integers(student(heat.copy(), image_size), "(x, y)")
        if got == expected:
            continue
        row, col = np.unravel_index(np.argmax(heat), heat.shape)
        if got == expected[::-1]:
            raise Feedback("x and y are swapped: x is the column (axis 1), y is the row (axis 0).")
        if got == (int(col), int(row)):
            raise Feedback("that is the cell of the map; convert it to image pixels (one cell covers image_size / h pixels).")
        if got == (int(col * image_size / width), int(row * image_size / height)):
            raise Feedback("almost: that is the top-left corner of the cell; report its centre (add half a cell).")
        raise Feedback(f"for a {height}x{width} map on a {image_size}-px image the peak is at {expected}, yours is {got}.")


peak = Exercise(
    "Peak of a map",
    _check_peak,
    hints=[
        "`np.argmax` gives a flat index; `np.unravel_index(index, heatmap.shape)` turns it into (row, column).",
        "One cell of an (h, w) map covers image_size / h pixels vertically and image_size / w horizontally.",
        "x = int((column + 0.5) * image_size / w), y = int((row + 0.5) * image_size / h).",
    ],
    solution="gap_cam.my_peak",
    success="camtutor.peak(heatmap, size) does the same.",
)


@functools.lru_cache(maxsize=1)
def _real_example() -> tuple[np.ndarray, np.ndarray] | None:
    """Feature maps (4, 16, 16, 32) of the bundled shapes model and its Dense kernel (32, 3); None without weights."""
    import keras

    from camtutor.data import shapes
    from camtutor.errors import ModelError
    from camtutor.layers import gap_dense_head
    from camtutor.models import load

    try:
        model = load("shapes")
    except ModelError:
        return None
    features = keras.Model(model.input, model.get_layer("last_conv").output)
    feature_maps = np.asarray(features(shapes(4, seed=123).images, training=False))
    return feature_maps, gap_dense_head(model).kernel


def _gap_examples():
    for seed, shape in ((0, (2, 5, 7, 3)), (1, (1, 16, 16, 32)), (2, (4, 3, 6, 9))):
        yield shape, _random_feature_maps(seed, shape)
    real = _real_example()
    if real is not None:
        yield real[0].shape, real[0]


# --------------------------------------------------------------------------- GAP
def _check_gap(student: Callable) -> None:
    for shape, maps in _gap_examples():
        expected = _expected_gap(maps)
        got = _as_array(student(maps.copy()), "an array of shape (B, K)")
        batch, height, width, channels = shape
        if got.shape != expected.shape:
            hint = ""
            if got.shape in ((batch, height, channels), (batch, width, channels)):
                hint = " It looks like you averaged over only one of the two spatial axes."
            elif got.shape in ((batch, height, width), (batch,)) or got.ndim == 0:
                hint = " It looks like you averaged over the channel axis K too; average over H and W only."
            elif got.shape == (channels,):
                hint = " It looks like you averaged over the batch axis too; keep one row per image."
            raise Feedback(
                f"for feature maps of shape {shape} (B, H, W, K) the result should have shape "
                f"{expected.shape} (B, K), yours has {got.shape}.{hint}"
            )
        if _same(got, expected):
            continue
        if _same(got, maps.max(axis=(1, 2))):
            raise Feedback("you computed the maximum of each map (global MAX pooling); GAP takes the mean.")
        if _same(got, maps.sum(axis=(1, 2))):
            raise Feedback("you summed each map; GAP divides the sum by the number of cells H * W.")
        raise Feedback(
            f"for feature maps of shape {shape} your values differ from the mean of each channel's H x W cells "
            f"(largest difference {float(np.max(np.abs(got - expected))):.3g})."
        )


gap = Exercise(
    "Global average pooling",
    _check_gap,
    hints=[
        "The input has shape (B, H, W, K). GAP gives one number per image and per channel: the result is (B, K).",
        "numpy's `mean` accepts a tuple of axes: `x.mean(axis=(..., ...))`. Which axes are H and W?",
        "`np.asarray(feature_maps).mean(axis=(1, 2))`.",
    ],
    solution="gap_cam.my_gap",
    success="That is exactly what keras.layers.GlobalAveragePooling2D computes.",
)


# --------------------------------------------------------------------------- CAM
def _cam_examples():
    rng = np.random.default_rng(3)
    for seed, shape, classes in ((4, (2, 4, 6, 5), 3), (5, (3, 16, 16, 32), 3), (6, (1, 7, 5, 8), 2)):
        kernel = rng.normal(0.0, 1.0, (shape[-1], classes)).astype(np.float32)  # mixed signs, like a trained head
        yield shape, _random_feature_maps(seed, shape), kernel
    real = _real_example()
    if real is not None:
        yield real[0].shape, real[0], real[1]


def _check_cam(student: Callable) -> None:
    for shape, maps, kernel in _cam_examples():
        for class_index in range(kernel.shape[1]):
            expected = _expected_cam(maps, kernel, class_index)
            got = _as_array(student(maps.copy(), kernel.copy(), class_index), "an array of shape (B, h, w)")
            if got.shape != expected.shape:
                raise Feedback(
                    f"for feature maps {shape} (B, h, w, K) and a Dense kernel {kernel.shape} (K, C) the map should "
                    f"have shape {expected.shape} (B, h, w), yours has {got.shape}. Weight each of the K maps by "
                    "its weight for the class and sum over K."
                )
            if _same(got, expected):
                continue
            if _same(got, np.maximum(expected, 0.0)):
                raise Feedback("your map has no negative values; CAM (Zhou et al. 2016, Eq. 2) has no ReLU. Keep the plain weighted sum.")
            if _same(got, expected / shape[-1]):
                raise Feedback("you averaged over the K channels; CAM is the weighted *sum* sum_k w_kc f_k.")
            low, high = expected.min(axis=(1, 2), keepdims=True), expected.max(axis=(1, 2), keepdims=True)
            if _same(got, (expected - low) / (high - low)):
                raise Feedback("your map is normalised to [0, 1]; return the raw weighted sum (normalise only to draw it).")
            if _same(got, maps.mean(axis=-1) * kernel[:, class_index].sum()):
                raise Feedback("the weights must multiply their own feature map: map k gets weight w[k, class_index].")
            raise Feedback(
                f"for class {class_index} your map differs from sum_k w[k, {class_index}] * f_k "
                f"(largest difference {float(np.max(np.abs(got - expected))):.3g}). The kernel is (K, C): "
                "one column per class."
            )


cam = Exercise(
    "Class activation map",
    _check_cam,
    hints=[
        "The Dense kernel has shape (K, C). The K weights of one class are a column: `dense_kernel[:, class_index]`.",
        "Multiply each feature map f_k (B, h, w) by its weight and add the K products. "
        "Broadcasting `feature_maps * weights` multiplies along the last axis; then sum over it.",
        "`(feature_maps * dense_kernel[:, class_index]).sum(axis=-1)`, or the matrix product `feature_maps @ dense_kernel[:, class_index]`.",
    ],
    solution="gap_cam.my_cam",
    success="Summing over K before pooling is the same as pooling before the Dense layer: that is why CAM is exact.",
)


# --------------------------------------------------------------------------- box
def _blob(seed: int, height: int, width: int) -> np.ndarray:
    """A smooth single-peaked map with one off-centre Gaussian bump, minimum 0."""
    rng = np.random.default_rng(seed)
    cy, cx = rng.uniform(0.25, 0.75) * height, rng.uniform(0.25, 0.75) * width
    sy, sx = rng.uniform(0.1, 0.25) * height, rng.uniform(0.1, 0.25) * width
    yy, xx = np.mgrid[0:height, 0:width]
    bump = np.exp(-0.5 * (((yy - cy) / sy) ** 2 + ((xx - cx) / sx) ** 2))
    return (rng.uniform(0.5, 5.0) * (bump - bump.min())).astype(np.float32)


def _check_box(student: Callable) -> None:
    for seed, (height, width) in ((7, (16, 16)), (8, (12, 20)), (9, (24, 10))):
        heat = _blob(seed, height, width)
        expected = _expected_box(heat)
        got = _integers(student(heat.copy()), "(x0, y0, x1, y1)")
        if got == expected:
            continue
        x0, y0, x1, y1 = expected
        if got == (y0, x0, y1, x1):
            raise Feedback("x and y are swapped: x is the column (axis 1), y is the row (axis 0).")
        if got == (x0, y0, x1 - 1, y1 - 1):
            raise Feedback("almost: x1 and y1 are exclusive (one past the last cell), like Python slices.")
        for wrong in (0.5, 0.0):
            if got == _expected_box(heat, wrong):
                raise Feedback(f"your box matches a threshold of {wrong} x max; the CAM paper keeps cells >= 0.2 x max.")
        raise Feedback(f"for a {height}x{width} map the box should be {expected}, yours is {got}.")


box = Exercise(
    "20 % threshold box",
    _check_box,
    hints=[
        "Keep the cells whose value is at least 0.2 * heatmap.max(): a boolean mask.",
        "`rows, cols = np.nonzero(mask)` gives the coordinates of the kept cells. x is the column, y the row.",
        "The box is (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1).",
    ],
    solution="gap_cam.my_box",
    success="camtutor.box_from_map also keeps only the largest connected region, as the paper does.",
)
