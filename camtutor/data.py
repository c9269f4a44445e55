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

from camtutor.errors import CamTutorError, ImageError

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
    """Two shapes of *different* classes per image, not overlapping, with one mask per object.

    Object ``k`` of image ``i`` has class ``labels[i, k]``, mask ``masks[i, k]`` and box ``boxes[i, k]``,
    so "the evidence for class c falls on the c object" can be scored: for image i and
    ``c = labels[i, k]``, compare the map for class c with ``masks[i, k]``.

    Attributes:
        images: (N, S, S, 3) float32 RGB in [0, 1].
        labels: (N, 2) int64 class index of object 0 and object 1 (always different).
        boxes: (N, 2, 4) int64 tight boxes ``x0, y0, x1, y1`` per object (x1, y1 exclusive).
        masks: (N, 2, S, S) bool mask per object (disjoint).
        class_names: names of the classes.
    """


def _check_n_size(n: object, size: object) -> tuple[int, int]:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise CamTutorError(f"n must be an integer >= 1 (the number of images), got {n!r}.")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 32:
        raise CamTutorError(
            f"size must be an integer >= 32 (image side in pixels; shapes get too small below), got {size!r}."
        )
    return int(n), int(size)


def _check_seed(seed: object) -> None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise CamTutorError(f"seed must be an integer (or None for a random one), got {seed!r}.")


_CONTRASTS = ("both", "bright", "dark")
_MAX_CLUTTER = 8
# ITU-R BT.601 luma weights (what camtutor.baselines.brightness uses too)
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _check_options(contrast: object, clutter: object) -> tuple[str, int]:
    if contrast not in _CONTRASTS:
        raise CamTutorError(
            f"contrast must be one of {', '.join(repr(c) for c in _CONTRASTS)} "
            f"(objects brighter and/or darker than the background), got {contrast!r}."
        )
    if (
        isinstance(clutter, bool)
        or not isinstance(clutter, (int, np.integer))
        or not 0 <= clutter <= _MAX_CLUTTER
    ):
        raise CamTutorError(
            f"clutter must be an integer from 0 to {_MAX_CLUTTER} (distractors per image), got {clutter!r}."
        )
    return str(contrast), int(clutter)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ _LUMA


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, float]:
    """A random-hue linear colour gradient of mid brightness (luma 0.35-0.65 at both ends).

    Mid brightness leaves room for objects and distractors both brighter and darker than it.
    Returns the (S, S, 3) float32 image and its mean luma.
    """
    ends = []
    for _ in range(2):
        ends.append(_colour_with_luma(rng, float(rng.uniform(0.35, 0.65))))
    c0, c1 = ends
    theta = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    t = np.cos(theta) * xx + np.sin(theta) * yy
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    return np.ascontiguousarray(img, dtype=np.float32), float(_luma(img).mean())


def _colour_with_luma(rng: np.random.Generator, target: float) -> np.ndarray:
    """A random-hue RGB colour in [0, 1] whose luma is ``target`` (within ~0.01)."""
    c = rng.uniform(0, 1, 3).astype(np.float32)
    for _ in range(8):  # shift towards the target luma; clipping may need a few rounds
        err = target - float(_luma(c))
        if abs(err) < 1e-3:
            break
        c = np.clip(c + err, 0.0, 1.0)
    return c.astype(np.float32)


def _polarity(rng: np.random.Generator, contrast: str) -> float:
    if contrast == "both":
        return 1.0 if rng.random() < 0.5 else -1.0
    return 1.0 if contrast == "bright" else -1.0


def _contrast_colour(rng: np.random.Generator, bg_luma: float, contrast: str) -> np.ndarray:
    """A random-hue colour whose luma differs from the background's by 0.25-0.40, of a random sign.

    Objects, distractors and background strokes all draw their colour here, so brightness and hue
    say nothing about which region is the object.
    """
    sign = _polarity(rng, contrast)
    target = float(np.clip(bg_luma + sign * rng.uniform(0.25, 0.40), 0.03, 0.97))
    return _colour_with_luma(rng, target)


# centre-to-vertex distance per unit nominal radius, chosen so the three shapes have similar areas
# (circle pi r^2, square 0.9^2*4 r^2 = 3.2 r^2, triangle 1.25^2*1.3 r^2 = 2.0 r^2)
_VERTEX_RADIUS = (1.0, 0.9 * math.sqrt(2.0), 1.25)


_BASE_ANGLE = (0.0, np.pi / 4, -np.pi / 2)  # vertex directions: square axis-aligned, triangle apex up
_MAX_TILT = np.deg2rad(20.0)
_SHIFT = 4  # sub-pixel precision for cv2 drawing
_K = 1 << _SHIFT


def _extent(cls: int, r: float) -> float:
    """Half-extent (centre-to-vertex distance) of a shape of nominal radius r."""
    return r * _VERTEX_RADIUS[cls]


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points) * _K).astype(np.int32)


def _shape_mask(cls: int, cx: float, cy: float, r: float, angle: float, size: int) -> np.ndarray:
    """(S, S) bool mask of a circle (cls 0), square (1) or triangle (2)."""
    m = np.zeros((size, size), np.uint8)
    if cls == 0:
        cv2.circle(m, (int(round(cx * _K)), int(round(cy * _K))), int(round(r * _K)), 1, -1, cv2.LINE_8, _SHIFT)
    else:
        nv = 4 if cls == 1 else 3
        rad = r * _VERTEX_RADIUS[cls]
        a = angle + np.arange(nv) * (2 * np.pi / nv)
        pts = np.stack([cx + rad * np.cos(a), cy + rad * np.sin(a)], axis=1)
        cv2.fillPoly(m, [_fixed(pts)], 1, cv2.LINE_8, _SHIFT)
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


def _distractor_mask(
    rng: np.random.Generator, size: int, rmin: float, rmax: float, room: np.ndarray
) -> np.ndarray | None:
    """(S, S) bool mask of a region of no class: a 4- or 5-pointed star or a thick bent stroke.

    Sizes come from (about) the objects' range, so size does not tell them apart either. (Disc
    sectors and round blobs were tried and dropped: they share arcs and corners with the classes,
    and the lesson-sized network could not learn to tell them from circles and squares.)
    ``room`` is the (S, S) distance to the nearest taken pixel; a centre with less room than
    half the radius returns ``None`` at once (cheap rejection; the caller checks overlaps exactly).
    """
    m = np.zeros((size, size), np.uint8)
    kind = int(rng.integers(0, 2))
    r = float(rng.uniform(rmin, rmax)) * (1.1 if kind == 0 else 1.0)  # stars fill less of their circle
    cx, cy = rng.uniform(r, size - 1 - r, 2)
    if room[int(cy), int(cx)] < 0.5 * r:
        return None
    if kind == 0:  # star: vertices alternately far (90-120 %) and near (35-55 %), evenly spread
        nv = 2 * int(rng.integers(4, 6))
        a = rng.uniform(0, 2 * np.pi) + (np.arange(nv) + rng.uniform(-0.2, 0.2, nv)) * (2 * np.pi / nv)
        rad = r * np.where(np.arange(nv) % 2 == 0, rng.uniform(0.9, 1.2, nv), rng.uniform(0.35, 0.55, nv))
        pts = np.stack([cx + rad * np.cos(a), cy + rad * np.sin(a)], axis=1)
        cv2.fillPoly(m, [_fixed(pts)], 1, cv2.LINE_8, _SHIFT)
    else:  # thick stroke: a 2-3 segment polyline, 4-6 px wide
        nseg = int(rng.integers(2, 4))
        pts = [np.array([cx, cy])]
        heading = rng.uniform(0, 2 * np.pi)
        for _ in range(nseg):
            heading += rng.uniform(-2.0, 2.0)
            step = r * rng.uniform(0.8, 1.4)
            pts.append(np.clip(pts[-1] + step * np.array([np.cos(heading), np.sin(heading)]), 1, size - 2))
        cv2.polylines(m, [_fixed(np.stack(pts))], False, 1, int(rng.integers(4, 7)), cv2.LINE_8, _SHIFT)
    return m.astype(bool)


def _paint(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, bg_luma: float, contrast: str) -> None:
    colour = _contrast_colour(rng, bg_luma, contrast)
    # slight shading across the region so it is not a perfectly flat colour
    shade = rng.uniform(-0.08, 0.08, 3).astype(np.float32)
    ys, xs = np.nonzero(mask)
    t = (xs - xs.min()) / max(int(xs.max() - xs.min()), 1)
    img[ys, xs] = np.clip(colour[None] + shade[None] * (t[:, None] - 0.5), 0, 1)


def _thin_clutter(rng: np.random.Generator, img: np.ndarray, bg_luma: float, contrast: str) -> None:
    """Thin 1-px lines and 1-2 px dots, coloured like the objects."""
    size = img.shape[0]
    for _ in range(int(rng.integers(2, 5))):
        p0 = tuple(int(v) for v in rng.integers(0, size, 2))
        p1 = tuple(int(v) for v in rng.integers(0, size, 2))
        colour = tuple(float(v) for v in _contrast_colour(rng, bg_luma, contrast))
        cv2.line(img, p0, p1, colour, 1, cv2.LINE_8)
    for _ in range(int(rng.integers(2, 6))):
        c = tuple(int(v) for v in rng.integers(0, size, 2))
        colour = tuple(float(v) for v in _contrast_colour(rng, bg_luma, contrast))
        cv2.circle(img, c, int(rng.integers(1, 3)), colour, -1)


_GAP_KERNEL = np.ones((5, 5), np.uint8)  # dilation by 2 px -> at least 2 px between regions


def _grown(mask: np.ndarray) -> np.ndarray:
    return cv2.dilate(mask.astype(np.uint8), _GAP_KERNEL).astype(bool)


def _scene(
    rng: np.random.Generator,
    classes: Sequence[int],
    size: int,
    rmin: float,
    rmax: float,
    contrast: str,
    clutter: int,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """One image: background, thin clutter, the class objects, then ``clutter`` distractors.

    Objects never touch each other or a distractor (2 px gap). Returns the image and one mask per object.
    """
    img, bg_luma = _background(rng, size)
    _thin_clutter(rng, img, bg_luma, contrast)
    masks: list[np.ndarray] = []
    taken = np.zeros((size, size), bool)
    for cls in classes:
        for _ in range(200):
            m = _sample_mask(rng, int(cls), size, rmin, rmax)
            if not np.any(taken & m):
                break
        else:  # pragma: no cover - extremely unlikely with these scales
            raise CamTutorError("could not place non-overlapping shapes; use a larger size")
        masks.append(m)
        taken |= _grown(m)
    for _ in range(clutter):
        room = cv2.distanceTransform((~taken).astype(np.uint8), cv2.DIST_L2, 3)
        for _attempt in range(50):
            d = _distractor_mask(rng, size, 0.8 * rmin, 0.9 * rmax, room)
            if d is not None and d.any() and not np.any(taken & d):
                _paint(rng, img, d, bg_luma, contrast)
                taken |= _grown(d)
                break
        # a distractor that found no free room after 50 tries is left out (rare; crowded image)
    for m in masks:
        _paint(rng, img, m, bg_luma, contrast)
    return _finish(rng, img), masks


def _finish(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    img = img + rng.normal(0.0, 0.04, img.shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _balanced(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    return rng.permutation(np.arange(n) % k).astype(np.int64)


def shapes(
    n: int, *, size: int = 64, seed: int | None = 0, contrast: str = "both", clutter: int = 4
) -> ShapesData:
    """Generate ``n`` images that each contain one circle, square or triangle among distractors.

    Made so that *only the shape* gives the object away, not its brightness, colour or size:

    * the background is a random-hue gradient of mid brightness (luma 0.35-0.65);
    * the object has a random hue and a luma 0.25-0.40 above *or* below the background's
      (``contrast="both"``: either, with probability 1/2), with a slight shading;
    * ``clutter`` distractors -- 4- and 5-pointed stars and thick bent strokes, of about the objects'
      size -- and thin lines and dots are painted with the *same* colour sampler, so a brightness,
      local-contrast or edge map finds them as readily as the object;
    * shapes have random position, scale and a small tilt (+-20 degrees); Gaussian noise (sigma 0.04).

    Distractors never touch the object (2 px gap; one that finds no room is left out).
    Classes are balanced (counts differ by at most one) and shuffled.

    Why: on data where objects are always brighter than the background, a model-free brightness
    map points at the object as often as CAM does, so a good-looking map proves nothing about the
    model. Here the brightest point lands on the object only when the object is bright *and* the
    brightest of the bright regions (about 1 image in 4; see :mod:`camtutor.baselines`).
    ``contrast="bright", clutter=0`` is close to the earlier, easy data (brightness points at
    the object on ~100 % of the images).

    Args:
        n: number of images, >= 1.
        size: image side S in pixels, >= 32.
        seed: seed for :func:`numpy.random.default_rng`; the same seed gives identical arrays.
        contrast: ``"both"`` (default), ``"bright"`` (object, distractors and lines always brighter than
            the background, the easy case where brightness localises) or ``"dark"`` (always darker).
        clutter: number of distractors per image, 0-8 (default 3).

    Returns:
        :class:`ShapesData` with images (N, S, S, 3) float32 in [0, 1], labels (N,), boxes (N, 4),
        masks (N, S, S) and ``class_names == SHAPE_CLASSES``.
    """
    n, size = _check_n_size(n, size)
    _check_seed(seed)
    contrast, clutter = _check_options(contrast, clutter)
    rng = np.random.default_rng(seed)
    labels = _balanced(rng, n, len(SHAPE_CLASSES))
    images = np.empty((n, size, size, 3), np.float32)
    masks = np.empty((n, size, size), bool)
    boxes = np.empty((n, 4), np.int64)
    for i in range(n):
        images[i], (m,) = _scene(rng, [labels[i]], size, 0.11 * size, 0.25 * size, contrast, clutter)
        masks[i] = m
        boxes[i] = _box(m)
    return ShapesData(images, labels, boxes, masks, SHAPE_CLASSES)


def two_shapes(
    n: int, *, size: int = 64, seed: int | None = 0, contrast: str = "both", clutter: int = 4
) -> TwoShapesData:
    """Generate ``n`` images with two non-overlapping shapes of *different* classes, among distractors.

    Used for the "which evidence supports which class" lesson: a CAM for "circle" should light up
    the circle, not the square next to it. ``labels[i, k]`` is the class of object ``k`` and
    ``masks[i, k]`` its mask, so "evidence for class c falls on the c object" can be scored per object.
    The (ordered) class pairs are balanced and shuffled; the objects are separated by at least 2 pixels.
    Colours, contrast and distractors as in :func:`shapes` (each object draws its own polarity).

    Args:
        n: number of images, >= 1.
        size: image side S in pixels, >= 32.
        seed: seed for :func:`numpy.random.default_rng`.
        contrast: ``"both"`` (default), ``"bright"`` or ``"dark"``, as in :func:`shapes`.
        clutter: number of distractors per image, 0-8 (default 2; the image also holds two objects).

    Returns:
        :class:`TwoShapesData` with images (N, S, S, 3) float32 in [0, 1], labels (N, 2),
        boxes (N, 2, 4), masks (N, 2, S, S).
    """
    n, size = _check_n_size(n, size)
    _check_seed(seed)
    contrast, clutter = _check_options(contrast, clutter)
    rng = np.random.default_rng(seed)
    k = len(SHAPE_CLASSES)
    pairs = np.array([(a, b) for a in range(k) for b in range(k) if a != b], np.int64)
    labels = pairs[_balanced(rng, n, len(pairs))]
    images = np.empty((n, size, size, 3), np.float32)
    masks = np.empty((n, 2, size, size), bool)
    boxes = np.empty((n, 2, 4), np.int64)
    for i in range(n):
        images[i], (m0, m1) = _scene(rng, labels[i], size, 0.09 * size, 0.17 * size, contrast, clutter)
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
        raise CamTutorError(f"size must be an integer >= 25 (the crops are 25x25), got {size!r}.")
    if not isinstance(test_fraction, (float, int)) or not 0.0 < float(test_fraction) < 1.0:
        raise CamTutorError(f"test_fraction must be strictly between 0 and 1, got {test_fraction!r}.")
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
from camtutor.images import load_image, load_images  # noqa: E402,F401
