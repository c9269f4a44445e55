"""Offline data for the camtutor lessons: synthetic shapes, a small face data set, image loading.

Nothing here imports TensorFlow, so ``import camtutor.data`` stays light.

Conventions used everywhere in camtutor:

* images are RGB (never BGR), ``float32`` in ``[0, 1]``, shaped ``(H, W, 3)`` or ``(B, H, W, 3)``;
* boxes are integer pixel boxes ``(x0, y0, x1, y1)`` with ``x1``/``y1`` *exclusive*, tight around
  the object's mask, so ``mask[y0:y1, x0:x1]`` contains every object pixel;
* masks are ``bool`` arrays shaped like the image without its channel axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

import cv2
import numpy as np

from camtutor.errors import ImageError

__all__ = [
    "SHAPE_CLASSES",
    "FACE_CLASSES",
    "ShapesData",
    "TwoShapesData",
    "FacesData",
    "shapes",
    "two_shapes",
    "faces",
    "load_image",
    "load_images",
]

#: Class names of :func:`shapes` / :func:`two_shapes`; label ``i`` is ``SHAPE_CLASSES[i]``.
SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle")
#: Class names of :func:`faces`; label 1 is "face".
FACE_CLASSES: tuple[str, ...] = ("not face", "face")

PathLike = Union[str, Path]


# --------------------------------------------------------------------------------------------
# Synthetic shapes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Batch:
    """Fields shared by the synthetic data sets; see the subclasses for their shapes."""

    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    masks: np.ndarray
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass(frozen=True)
class ShapesData(_Batch):
    """One shape per image.

    Attributes:
        images: (N, S, S, 3) float32 RGB in [0, 1].
        labels: (N,) int64 class indices into ``class_names``.
        boxes: (N, 4) int64 tight boxes ``x0, y0, x1, y1`` (x1, y1 exclusive).
        masks: (N, S, S) bool object masks.
        class_names: names of the classes, e.g. ``("circle", "square", "triangle")``.
    """


@dataclass(frozen=True)
class TwoShapesData(_Batch):
    """Two shapes of *different* classes per image, not overlapping.

    Attributes:
        images: (N, S, S, 3) float32 RGB in [0, 1].
        labels: (N, 2) int64 class index of object 0 and object 1.
        boxes: (N, 2, 4) int64 tight boxes ``x0, y0, x1, y1`` per object (x1, y1 exclusive).
        masks: (N, 2, S, S) bool mask per object.
        class_names: names of the classes.
    """


def _check_n_size(n: object, size: object) -> tuple[int, int]:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1 (the number of images), got {n!r}.")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 32:
        raise ValueError(
            f"size must be an integer >= 32 (image side in pixels; shapes get too small below), got {size!r}."
        )
    return int(n), int(size)


def _check_seed(seed: object) -> None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise ValueError(f"seed must be an integer (or None for a random one), got {seed!r}.")


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A random linear colour gradient plus thin lines and small blobs.

    Returns the (S, S, 3) float32 image and the (2, 3) colours at both ends of the gradient.
    """
    # dark, random-hue background; objects are brighter (any hue), so the class is the shape
    c0, c1 = rng.uniform(0.0, 0.4, size=(2, 3)).astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    t = (np.cos(theta) * xx + np.sin(theta) * yy)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    img = np.ascontiguousarray(img, dtype=np.float32)
    for _ in range(int(rng.integers(2, 5))):  # thin lines
        p0 = tuple(int(v) for v in rng.integers(0, size, 2))
        p1 = tuple(int(v) for v in rng.integers(0, size, 2))
        cv2.line(img, p0, p1, tuple(float(v) for v in rng.uniform(0.1, 0.8, 3)), 1, cv2.LINE_8)
    for _ in range(int(rng.integers(2, 6))):  # small blobs
        c = tuple(int(v) for v in rng.integers(0, size, 2))
        cv2.circle(img, c, int(rng.integers(1, 3)), tuple(float(v) for v in rng.uniform(0, 1, 3)), -1)
    return img, np.stack([c0, c1])


def _object_colour(rng: np.random.Generator, bg_colours: np.ndarray) -> np.ndarray:
    """A random-hue colour clearly brighter than the background (mean +0.3 or more)."""
    bg_mean = float(bg_colours.mean())
    for _ in range(50):
        c = rng.uniform(0, 1, 3).astype(np.float32)
        c = c / max(float(c.max()), 1e-3) * rng.uniform(0.75, 1.0)
        if float(c.mean()) >= bg_mean + 0.3:
            return c.astype(np.float32)
    return np.full(3, min(1.0, bg_mean + 0.5), np.float32)


# centre-to-vertex distance per unit nominal radius, chosen so the three shapes have similar areas
# (circle pi r^2, square 0.9^2*4 r^2 = 3.2 r^2, triangle 1.25^2*1.3 r^2 = 2.0 r^2)
_VERTEX_RADIUS = (1.0, 0.9 * math.sqrt(2.0), 1.25)


_BASE_ANGLE = (0.0, np.pi / 4, -np.pi / 2)  # vertex directions: square axis-aligned, triangle apex up
_MAX_TILT = np.deg2rad(20.0)


def _extent(cls: int, r: float) -> float:
    """Half-extent (centre-to-vertex distance) of a shape of nominal radius r."""
    return r * _VERTEX_RADIUS[cls]


def _shape_mask(cls: int, cx: float, cy: float, r: float, angle: float, size: int) -> np.ndarray:
    """(S, S) bool mask of a circle (cls 0), square (1) or triangle (2)."""
    m = np.zeros((size, size), np.uint8)
    shift = 4  # sub-pixel precision for cv2
    k = 1 << shift
    if cls == 0:
        cv2.circle(m, (int(round(cx * k)), int(round(cy * k))), int(round(r * k)), 1, -1, cv2.LINE_8, shift)
    else:
        nv = 4 if cls == 1 else 3
        rad = r * _VERTEX_RADIUS[cls]
        a = angle + np.arange(nv) * (2 * np.pi / nv)
        pts = np.stack([cx + rad * np.cos(a), cy + rad * np.sin(a)], axis=1)
        cv2.fillPoly(m, [np.round(pts * k).astype(np.int32)], 1, cv2.LINE_8, shift)
    return m.astype(bool)


def _box(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.int64)


def _sample_mask(
    rng: np.random.Generator, cls: int, size: int, rmin: float, rmax: float
) -> np.ndarray:
    r = float(rng.uniform(rmin, rmax))
    ext = _extent(cls, r)
    lo, hi = ext + 1.0, size - 2.0 - ext
    cx, cy = rng.uniform(lo, hi, 2)
    # squares stay roughly axis-aligned and triangles roughly upright (+-20 degrees): fully random
    # rotations make the task far too hard for the lesson-sized networks
    angle = _BASE_ANGLE[cls] + float(rng.uniform(-1.0, 1.0)) * _MAX_TILT
    return _shape_mask(cls, float(cx), float(cy), r, angle, size)


def _paint(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, bg_colours: np.ndarray) -> None:
    colour = _object_colour(rng, bg_colours)
    # slight shading across the object so it is not a perfectly flat colour
    shade = rng.uniform(-0.08, 0.08, 3).astype(np.float32)
    ys, xs = np.nonzero(mask)
    t = (xs - xs.min()) / max(int(xs.max() - xs.min()), 1)
    img[ys, xs] = np.clip(colour[None] + shade[None] * (t[:, None] - 0.5), 0, 1)


def _finish(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    img = img + rng.normal(0.0, 0.04, img.shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _balanced(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    return rng.permutation(np.arange(n) % k).astype(np.int64)


def shapes(n: int, *, size: int = 64, seed: int | None = 0) -> ShapesData:
    """Generate ``n`` images that each contain one circle, square or triangle.

    Shapes have random position, scale, a small tilt (+-20 degrees) and random colour (so the *shape* is the class, not the
    colour) brighter than a dark random gradient background with thin lines, small blobs and Gaussian noise
    (sigma 0.04). Classes are balanced (counts differ by at most one) and shuffled.

    Args:
        n: number of images, >= 1.
        size: image side S in pixels, >= 32.
        seed: seed for :func:`numpy.random.default_rng`; the same seed gives identical arrays.

    Returns:
        :class:`ShapesData` with images (N, S, S, 3) float32 in [0, 1], labels (N,), boxes (N, 4),
        masks (N, S, S) and ``class_names == SHAPE_CLASSES``.
    """
    n, size = _check_n_size(n, size)
    _check_seed(seed)
    rng = np.random.default_rng(seed)
    labels = _balanced(rng, n, len(SHAPE_CLASSES))
    images = np.empty((n, size, size, 3), np.float32)
    masks = np.empty((n, size, size), bool)
    boxes = np.empty((n, 4), np.int64)
    for i in range(n):
        img, bgc = _background(rng, size)
        m = _sample_mask(rng, int(labels[i]), size, 0.11 * size, 0.25 * size)
        _paint(rng, img, m, bgc)
        images[i] = _finish(rng, img)
        masks[i] = m
        boxes[i] = _box(m)
    return ShapesData(images, labels, boxes, masks, SHAPE_CLASSES)


def two_shapes(n: int, *, size: int = 64, seed: int | None = 0) -> TwoShapesData:
    """Generate ``n`` images with two non-overlapping shapes of *different* classes.

    Used for the "which evidence supports which class" lesson: a CAM for "circle" should light up
    the circle, not the square next to it. The (ordered) class pairs are balanced and shuffled;
    the objects are separated by at least 2 pixels.

    Args:
        n: number of images, >= 1.
        size: image side S in pixels, >= 32.
        seed: seed for :func:`numpy.random.default_rng`.

    Returns:
        :class:`TwoShapesData` with images (N, S, S, 3) float32 in [0, 1], labels (N, 2),
        boxes (N, 2, 4), masks (N, 2, S, S).
    """
    n, size = _check_n_size(n, size)
    _check_seed(seed)
    rng = np.random.default_rng(seed)
    k = len(SHAPE_CLASSES)
    pairs = np.array([(a, b) for a in range(k) for b in range(k) if a != b], np.int64)
    labels = pairs[_balanced(rng, n, len(pairs))]
    images = np.empty((n, size, size, 3), np.float32)
    masks = np.empty((n, 2, size, size), bool)
    boxes = np.empty((n, 2, 4), np.int64)
    kernel = np.ones((5, 5), np.uint8)  # dilation by 2 px -> at least 2 px gap
    for i in range(n):
        img, bgc = _background(rng, size)
        m0 = _sample_mask(rng, int(labels[i, 0]), size, 0.09 * size, 0.17 * size)
        grown = cv2.dilate(m0.astype(np.uint8), kernel).astype(bool)
        for _ in range(200):
            m1 = _sample_mask(rng, int(labels[i, 1]), size, 0.09 * size, 0.17 * size)
            if not np.any(grown & m1):
                break
        else:  # pragma: no cover - extremely unlikely with these scales
            raise RuntimeError("could not place two non-overlapping shapes; use a larger size")
        _paint(rng, img, m0, bgc)
        _paint(rng, img, m1, bgc)
        images[i] = _finish(rng, img)
        masks[i, 0], masks[i, 1] = m0, m1
        boxes[i, 0], boxes[i, 1] = _box(m0), _box(m1)
    return TwoShapesData(images, labels, boxes, masks, SHAPE_CLASSES)


# --------------------------------------------------------------------------------------------
# Faces (real, offline)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FacesData:
    """Face / not-face images from ``skimage.data.lfw_subset()``, split into train and test.

    Attributes:
        train_images, test_images: (N, S, S, 3) float32 RGB in [0, 1] (grey repeated 3 times).
        train_labels, test_labels: (N,) int64; 1 = face, 0 = not face.
        class_names: ``("not face", "face")``.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]


def faces(*, size: int = 64, seed: int = 0, test_fraction: float = 0.3) -> FacesData:
    """The 200-image LFW subset shipped with scikit-image (no download): 100 faces, 100 non-faces.

    ``skimage.data.lfw_subset()`` returns 200 grey 25x25 crops: "100 first images are faces and
    subsequent 100 are non-faces" (background crops from the same photos). They are upsampled to
    ``size`` x ``size`` with bilinear interpolation and repeated to 3 channels, then split with
    a stratified, seeded shuffle (each class contributes ``round(100 * test_fraction)`` test images).

    Args:
        size: output side S in pixels, >= 25.
        seed: seed of the split.
        test_fraction: fraction of each class held out, strictly between 0 and 1.

    Returns:
        :class:`FacesData` with images (N, S, S, 3) float32 in [0, 1]; label 1 = face.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 25:
        raise ValueError(f"size must be an integer >= 25 (the crops are 25x25), got {size!r}.")
    if not isinstance(test_fraction, (float, int)) or not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction!r}.")
    _check_seed(seed)
    from skimage.data import lfw_subset  # local import: skimage is slowish to import

    raw = np.asarray(lfw_subset())
    if raw.dtype == np.uint8:
        raw = raw.astype(np.float32) / 255.0
    raw = np.clip(raw.astype(np.float32), 0.0, 1.0)
    labels = np.r_[np.ones(100, np.int64), np.zeros(100, np.int64)]
    size = int(size)
    big = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_LINEAR) for im in raw])
    big = np.clip(big, 0.0, 1.0).astype(np.float32)
    big = np.repeat(big[..., None], 3, axis=-1)

    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for c in (0, 1):
        idx = rng.permutation(np.nonzero(labels == c)[0])
        n_test = max(1, min(len(idx) - 1, int(round(len(idx) * float(test_fraction)))))
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    tr = rng.permutation(np.concatenate(train_idx))
    te = rng.permutation(np.concatenate(test_idx))
    return FacesData(
        train_images=np.ascontiguousarray(big[tr]),
        train_labels=labels[tr],
        test_images=np.ascontiguousarray(big[te]),
        test_labels=labels[te],
        class_names=FACE_CLASSES,
    )


# --------------------------------------------------------------------------------------------
# Image files
# --------------------------------------------------------------------------------------------

# Image files are read by camtutor.images (one decoder for the package); these names stay importable here.
from camtutor.images import FORMATS as _FORMATS  # noqa: E402
from camtutor.images import _resize, load_image, load_images  # noqa: E402,F401
from camtutor.images import parse_size as _parse_size  # noqa: E402,F401
