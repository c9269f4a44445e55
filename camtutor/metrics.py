"""Can I trust this map? Quantitative checks of saliency maps, batched, numpy in and out.

Three families, each with its paper (formulas in the docstrings):

* **localisation** against ground truth, no model needed: :func:`pointing_game` (Zhang et al. 2016),
  :func:`energy_pointing_game` (Wang et al. 2020), :func:`box_iou` (Zhou et al. 2016);
* **faithfulness** to the model, which is run on edited images: :func:`deletion` and :func:`insertion`
  (Petsiuk et al. 2018, RISE), :func:`average_drop` and :func:`increase_in_confidence`
  (Chattopadhay et al. 2018, Grad-CAM++);
* **sanity checks** (Adebayo et al. 2018): :func:`randomized_models` re-initialises the model's weights,
  :func:`similarity` compares the maps before and after.

:func:`rate_interval` (Wilson) and :func:`bootstrap_interval` put a confidence interval beside every
rate and mean: a pointing-game accuracy of 0.8 on 20 images is [0.58, 0.92].

Conventions (as in the rest of camtutor):

* maps are (B, h, w) at any resolution (a layer's, say 16x16); every metric resizes them itself to the
  size of what they are compared with (the mask, the image) with OpenCV, bilinear when enlarging (the
  same numbers as :func:`camtutor.upsample`) and area averaging when shrinking;
* images (B, H, W, C) float32, preprocessed as the model expects; masks (B, H, W) bool;
  boxes (B, 4) ``(x0, y0, x1, y1)`` with x1, y1 exclusive, as in :mod:`camtutor.data`;
* ``class_index`` is an int for every image or one per image (B,), as in :func:`camtutor.grad_cam`;
* the model's class probability is :func:`camtutor.explain.class_probabilities` (softmax; a single
  sigmoid unit is read as two classes).

Bad input raises a :class:`camtutor.CamTutorError` subclass before any model runs.
"""

from __future__ import annotations

import statistics
import zlib
from typing import Iterator, Sequence, Union

import cv2
import keras
import numpy as np

from camtutor.errors import CamTutorError, ModelError, TargetError
from camtutor.explain import class_probabilities
from camtutor.images import parse_size, pixel_limit
from camtutor.inputs import check_images
from camtutor.layers import check_model, output_info
from camtutor.localize import box_from_map, iou
from camtutor.targets import ClassIndex, resolve_class_indices

__all__ = [
    "pointing_game",
    "energy_pointing_game",
    "box_iou",
    "deletion",
    "insertion",
    "remove_top",
    "average_drop",
    "increase_in_confidence",
    "randomized_models",
    "similarity",
    "rate_interval",
    "bootstrap_interval",
    "resize_maps",
    "linear_imputation",
    "BASELINES",
]

Baseline = Union[str, np.ndarray]
#: Named baselines of :func:`deletion` / :func:`insertion` (or pass an array).
BASELINES = ("zeros", "blur", "mean", "impute")
#: Most images per model call in :func:`deletion`, :func:`insertion`, :func:`average_drop` by default;
#: fewer for large images, so that one call's input stays under :data:`DEFAULT_CHUNK_BYTES`.
DEFAULT_BATCH_SIZE = 512
#: Points of a :func:`deletion` / :func:`insertion` curve by default (fewer for images under 50 pixels).
DEFAULT_STEPS = 50
DEFAULT_CHUNK_BYTES = 32 * 2**20  # 512 images of 64x64x3 float32 = 24 MB; 55 of 224x224x3


# --------------------------------------------------------------------------- input checks and resizing
def _size(size: int | Sequence[int], what: str = "size") -> tuple[int, int]:
    """``size`` = an int S or (height, width) of positive ints, and at most :func:`camtutor.images.pixel_limit` pixels."""
    height, width = parse_size(size, what=what)  # refuses None, 0, negatives, bools, floats, strings
    if height * width > pixel_limit():
        raise CamTutorError(
            f"{what}={size!r} is {height * width:,} pixels per map, above camtutor's limit of {pixel_limit():,} pixels; "
            f"pass the images' size (H, W), e.g. {what}=224"
        )
    return height, width


def _number(value: object, name: str, fix: str) -> float:
    """A real number (not a bool, string, None or sequence) as a float, else a CamTutorError naming ``fix``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise CamTutorError(f"{name} must be a number, got {value!r} ({type(value).__name__}); e.g. {fix}")
    return float(value)


def _seed(seed: object, name: str = "seed") -> object:
    """A numpy seed: an int >= 0 or a sequence of them; else a CamTutorError."""
    values = seed if isinstance(seed, (tuple, list)) else [seed]
    if not values or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and v >= 0 for v in values
    ):
        raise CamTutorError(f"{name} must be an int >= 0 (or a sequence of them), got {seed!r}; e.g. {name}=0")
    return seed


def _count(value: object, name: str, high: int, why: str) -> int:
    """An int in [1, high] (not a bool); else a CamTutorError naming the range and ``why`` it is bounded."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise CamTutorError(f"{name} must be an int >= 1, got {value!r}")
    if value > high:
        raise CamTutorError(f"{name}={value!r} is too large: pass {name}={high} at most ({why})")
    return int(value)


def _check_maps(maps: object, name: str = "maps") -> np.ndarray:
    if isinstance(maps, np.ndarray) and np.iscomplexobj(maps):
        raise CamTutorError(f"{name} are complex; saliency maps are real: pass np.abs({name}) or {name}.real")
    try:
        arr = np.asarray(maps, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise CamTutorError(f"{name} must be a numeric array (B, h, w); could not convert: {exc}") from None
    if arr.ndim == 2:
        raise CamTutorError(f"{name} has shape {arr.shape}, one map; the metrics work on batches (B, h, w): pass {name}[None]")
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3 or arr.shape[0] == 0 or min(arr.shape[1:]) == 0:
        raise CamTutorError(f"{name} must have shape (B, h, w) with B >= 1, got {arr.shape}")
    if not np.isfinite(arr).all():
        bad = np.unique(np.nonzero(~np.isfinite(arr))[0]).tolist()
        raise CamTutorError(f"{name} {bad[:10]} contain NaN or inf; fix or drop them before scoring")
    return arr


def _check_masks(masks: object, batch: int) -> np.ndarray:
    arr = np.asarray(masks)
    if arr.ndim == 2:
        raise CamTutorError(f"masks has shape {arr.shape}, one mask; pass a batch (B, H, W): masks[None]")
    if arr.ndim != 3:
        raise CamTutorError(f"masks must have shape (B, H, W) (bool), got {arr.shape}")
    if arr.dtype != bool:
        if not np.isin(arr, (0, 1)).all():
            raise CamTutorError("masks must be bool (or 0/1); threshold them first, e.g. masks > 0.5")
        arr = arr.astype(bool)
    if len(arr) != batch:
        raise CamTutorError(f"got {batch} maps but {len(arr)} masks; pass one mask per map")
    empty = np.nonzero(~arr.any(axis=(1, 2)))[0].tolist()
    if empty:
        raise CamTutorError(f"masks {empty[:10]} are empty (no object pixel): the score is undefined; drop those images")
    return arr


def resize_maps(maps: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """Resize maps (B, h, w) to ``size`` = (H, W) or an int with OpenCV: float32 (B, H, W), values not rescaled.

    Bilinear with pixel centres at half-integers when enlarging (the same numbers as
    :func:`camtutor.upsample`, which uses TensorFlow), area averaging when shrinking. Maps already
    at ``size`` are returned unchanged.
    """
    arr = _check_maps(maps)
    height, width = _size(size)
    if arr.shape[1:] == (height, width):
        return arr
    shrink = height < arr.shape[1] or width < arr.shape[2]
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    out = np.empty((len(arr), height, width), dtype=np.float32)
    for i, one in enumerate(arr):  # about 20 us per 16x16 -> 64x64 map; OpenCV 5 refuses many-channel stacks
        out[i] = cv2.resize(one, (width, height), interpolation=interpolation)
    return out


def _normalize(maps: np.ndarray) -> np.ndarray:
    """Min-max per map to [0, 1]; a constant map becomes 0 (the rule of :func:`camtutor.normalize`, in numpy)."""
    low = maps.min(axis=(1, 2), keepdims=True)
    high = maps.max(axis=(1, 2), keepdims=True)
    spread = high - low
    informative = spread > 1e-7 * np.maximum(np.abs(low), np.abs(high))
    return np.where(informative, (maps - low) / np.where(informative, spread, 1.0), 0.0).astype(np.float32)


def _is_constant(maps: np.ndarray) -> np.ndarray:
    """(B,) True where a map has no spread (the rule of :func:`camtutor.normalize`)."""
    low, high = maps.min(axis=(1, 2)), maps.max(axis=(1, 2))
    return ~(high - low > 1e-7 * np.maximum(np.abs(low), np.abs(high)))


# --------------------------------------------------------------------------- localisation
def pointing_game(maps: np.ndarray, masks: np.ndarray, *, tolerance: float = 0) -> np.ndarray:
    """The pointing game (Zhang et al. 2016, "Top-down neural attention by excitation backprop"): (B,) bool.

    Computed against the object masks. Each map is resized to its mask's size (H, W); its maximum
    ``p = argmax_(y, x) map(y, x)`` is a *hit* when ``p`` lies within ``tolerance`` pixels
    (Euclidean) of an object pixel, i.e. in the mask dilated by a disc of radius ``tolerance``.
    The paper uses 15 px at 224 px images; scale it to your size (``15 * H / 224``).
    Accuracy = ``hits.mean()``; put :func:`rate_interval` ``(hits)`` beside it.

    Ties: the point is the *first* maximal pixel in row-major order (``np.argmax``, as in TorchRay's
    reference implementation). After bilinear upsampling a unique maximal cell rarely ties except at
    the image border. A *constant* map (all zeros included; no spread by the rule of
    :func:`camtutor.normalize`) points nowhere and is always a miss, never a lucky hit at pixel (0, 0).

    Args:
        maps: (B, h, w) saliency maps, any resolution and range (raw or normalised).
        masks: (B, H, W) bool object masks, each with at least one True pixel.
        tolerance: radius in pixels of the mask (>= 0); 0 means the maximum must fall on the object.
    """
    maps = _check_maps(maps)
    masks = _check_masks(masks, len(maps))
    tolerance = _number(tolerance, "tolerance (a distance in pixels)", "tolerance=15 * H / 224")
    if not np.isfinite(tolerance) or tolerance < 0:
        raise CamTutorError(f"tolerance is a distance in pixels, >= 0; got {tolerance!r}; e.g. tolerance=15 * H / 224")
    heat = resize_maps(maps, masks.shape[1:])
    flat = np.argmax(heat.reshape(len(heat), -1), axis=1)
    rows, cols = np.unravel_index(flat, masks.shape[1:])
    hits = np.zeros(len(maps), dtype=bool)
    for b in range(len(maps)):
        if masks[b, rows[b], cols[b]]:
            hits[b] = True
        elif tolerance > 0:
            ys, xs = np.nonzero(masks[b])
            hits[b] = float(np.min((ys - rows[b]) ** 2 + (xs - cols[b]) ** 2)) <= float(tolerance) ** 2
    return hits & ~_is_constant(heat)


def energy_pointing_game(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Energy-based pointing game (Wang et al. 2020, Score-CAM, Sec. 5.2): (B,) float64 in [0, 1].

    Computed against the object masks: the share of the map's positive mass that falls on the object,
    ``E = sum_(mask) L+ / sum L+`` with ``L+ = max(L, 0)`` resized to the mask's size (clipped at 0
    *before* resizing). Wang et al. use the bounding box as the mask; pass box masks for that
    (``m[y0:y1, x0:x1] = True``). A uniform map scores the object's area fraction, so compare with
    ``masks.mean(axis=(1, 2))``, the chance level. A map with no positive value (all zero) has no
    energy to place and scores **0** (not NaN), like a miss.

    Args:
        maps: (B, h, w) saliency maps, any resolution.
        masks: (B, H, W) bool object masks, each with at least one True pixel.
    """
    maps = _check_maps(maps)
    masks = _check_masks(masks, len(maps))
    heat = resize_maps(np.maximum(maps, 0.0), masks.shape[1:]).astype(np.float64)
    heat = np.maximum(heat, 0.0)  # area averaging of non-negative values stays >= 0; guard rounding anyway
    total = heat.sum(axis=(1, 2))
    inside = np.where(masks, heat, 0.0).sum(axis=(1, 2))
    return np.where(total > 0, inside / np.where(total > 0, total, 1.0), 0.0)


def box_iou(
    maps: np.ndarray, boxes: np.ndarray, *, size: int | Sequence[int] | None = None, threshold: float = 0.2
) -> np.ndarray:
    """Weakly supervised localisation (Zhou et al. 2016, CAM, Sec. 3.1): (B,) float64 IoU in [0, 1].

    Computed against the true boxes. Each map is resized to the image ``size`` (H, W), cut at
    ``threshold x max`` of the map (20 % in the paper; values <= 0 never count), and the bounding
    box of the largest 8-connected region (:func:`camtutor.localize.box_from_map`) is scored by
    ``IoU = |A ∩ B| / |A ∪ B|`` (:func:`camtutor.localize.iou`) with the true box. The paper counts
    IoU >= 0.5 as correct: ``rate_interval(box_iou(...) >= 0.5)``. A map with no positive value
    gives the whole image as its box.

    Args:
        maps: (B, h, w) saliency maps, any resolution.
        boxes: (B, 4) int ``(x0, y0, x1, y1)``, x1 and y1 exclusive, in pixels of ``size``, inside the image.
        size: the image size (H, W) or an int, which boxes refer to. Default: the maps' own size, for maps
            already at the image's size (e.g. ``camtutor.upsample(maps, H)``); maps at a layer's
            resolution (16x16, say) need ``size``, since they carry no image size. A box that does not
            fit inside the maps is refused with this fix; a box that happens to fit is not detected.
        threshold: fraction of each map's max, in (0, 1].
    """
    maps = _check_maps(maps)
    true = _check_boxes(boxes, len(maps))
    threshold = _number(threshold, "threshold (a fraction of the map's max, in (0, 1])", "threshold=0.2")
    if not 0 < threshold <= 1:
        raise CamTutorError(f"threshold is a fraction of the map's max, in (0, 1]; got {threshold!r}; e.g. threshold=0.2")
    height, width = maps.shape[1:] if size is None else _size(size)
    outside = np.nonzero((true[:, 2] > width) | (true[:, 3] > height))[0].tolist()
    if outside:
        where = f"the maps' own size {height}x{width}" if size is None else f"the image size {height}x{width}"
        raise CamTutorError(
            f"boxes {outside[:10]} (e.g. {true[outside[0]].tolist()}) reach beyond {where}; pass size=(H, W), "
            "the size of the images the boxes are drawn on"
            + (" (maps at a layer's resolution carry no image size)" if size is None else ", or clip the boxes to it")
        )
    heat = resize_maps(maps, (height, width))
    return np.array([iou(box_from_map(h, threshold), t) for h, t in zip(heat, true.tolist())], dtype=np.float64)


def _check_boxes(boxes: object, batch: int) -> np.ndarray:
    """(B, 4) boxes ``(x0, y0, x1, y1)``: finite ints, 0 <= x0 < x1 and 0 <= y0 < y1, one per map -> int64."""
    try:
        true = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        raise CamTutorError(f"boxes must be a (B, 4) array of int pixel coordinates (x0, y0, x1, y1), got {boxes!r:.80}") from None
    if true.ndim != 2 or true.shape[1] != 4:
        raise CamTutorError(f"boxes must have shape (B, 4) = (x0, y0, x1, y1), got {true.shape}")
    if len(true) != batch:
        raise CamTutorError(f"got {batch} maps but {len(true)} boxes; pass one true box per map")
    if not np.isfinite(true).all() or (true != np.round(true)).any():
        raise CamTutorError("boxes must be int pixel coordinates (x0, y0, x1, y1), finite and whole; round them first")
    bad = np.nonzero((true[:, 0] < 0) | (true[:, 1] < 0) | (true[:, 0] >= true[:, 2]) | (true[:, 1] >= true[:, 3]))[0]
    if len(bad):
        raise CamTutorError(
            f"boxes {bad[:10].tolist()} (e.g. {true[bad[0]].astype(int).tolist()}) are not (x0, y0, x1, y1) with "
            "0 <= x0 < x1 and 0 <= y0 < y1 (x1, y1 exclusive); check the order of the coordinates"
        )
    return true.astype(np.int64)


# --------------------------------------------------------------------------- faithfulness: the model runs
def _prepare_model_inputs(model, images, maps, class_index) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check everything before the model runs: -> (images float32, maps at image size, classes (B,) int32)."""
    check_model(model)
    images = check_images(images, tuple(model.inputs[0].shape))
    maps = _check_maps(maps)
    if len(maps) != len(images):
        raise CamTutorError(f"got {len(images)} images but {len(maps)} maps; pass one map per image")
    if callable(class_index):
        raise TargetError("these metrics read one class probability per image; pass class indices, not a function")
    classes = resolve_class_indices(class_index, len(images), output_info(model).num_classes)
    return images, resize_maps(maps, images.shape[1:3]), classes


def _check_batch_size(batch_size: int | None, images: np.ndarray) -> int:
    """``batch_size``, checked; None -> :data:`DEFAULT_BATCH_SIZE`, fewer when an image is large."""
    if batch_size is None:
        return int(max(1, min(DEFAULT_BATCH_SIZE, DEFAULT_CHUNK_BYTES // images[0].nbytes)))
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise CamTutorError(f"batch_size is the number of images per model call, an int >= 1; got {batch_size!r}")
    return int(batch_size)


# ROAD's weights of the 8 neighbours (Rong et al. 2022): 1/6 along the axes, 1/12 diagonally, summing to 1
_NEIGHBOURS = tuple(((dy, dx), 1 / 6 if dy == 0 or dx == 0 else 1 / 12)
                    for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))
#: the weight that pulls each imputed pixel towards the image's mean colour (see :func:`linear_imputation`)
_IMPUTE_PULL = 1e-6


def linear_imputation(image: np.ndarray, missing: np.ndarray, *, noise: float = 0.01,
                      seed: int | Sequence[int] = 0) -> np.ndarray:
    """Fill the ``missing`` pixels of one image from their neighbours: ROAD's noisy linear imputation.

    Rong et al. 2022 ("A Consistent and Efficient Evaluation Strategy for Attribution Methods", ROAD)
    replace removed pixels by values that continue the image around them, instead of one fill colour,
    so that the *shape* of the removed region does not itself carry information to the model. Each
    missing pixel p is the weighted mean of its neighbours inside the image (weight 1/6 for the 4 along
    the axes, 1/12 for the 4 diagonal ones; a missing neighbour is itself an unknown), which is one
    sparse linear system per image solved for all channels at once; then Gaussian noise of standard
    deviation ``noise`` is added to the missing pixels (ROAD's default 0.01). One addition to ROAD: each
    equation also carries ``1e-6 (x_p - mean colour of the image)``, which changes a filled value by
    far less than the noise but makes a region with no known pixel at all (the fully deleted image)
    well defined: it becomes the image's mean colour.

    Args:
        image: (H, W, C) float, in the model's input space.
        missing: (H, W) bool, True where the pixel is removed.
        noise: the noise's standard deviation, >= 0 (0: the plain linear imputation).
        seed: seed of :func:`numpy.random.default_rng` for the noise (an int or a sequence of ints).

    Returns:
        (H, W, C) float32: the image, with the missing pixels filled.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    try:
        image = np.asarray(image, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CamTutorError(f"image must be a numeric array (H, W, C); could not convert: {exc}") from None
    missing = np.asarray(missing, dtype=bool)
    if image.ndim != 3 or missing.shape != image.shape[:2]:
        raise CamTutorError(f"image must be (H, W, C) and missing (H, W) bool; got {image.shape} and {missing.shape}")
    if not np.isfinite(image).all():
        raise CamTutorError("image contains NaN or inf; the imputed pixels would be NaN: fix the image first")
    noise = _number(noise, "noise (a standard deviation)", "noise=0.01")
    if not np.isfinite(noise) or noise < 0:
        raise CamTutorError(f"noise is a standard deviation, >= 0; got {noise!r}; e.g. noise=0.01")
    _seed(seed)
    height, width, channels = image.shape
    ys, xs = np.nonzero(missing)
    n = len(ys)
    if n == 0:
        return image.astype(np.float32)
    mean = image.reshape(-1, channels).mean(axis=0)
    rng = np.random.default_rng(seed)
    if n == height * width:  # nothing left to continue: the pull alone, i.e. the mean colour (no solve)
        out = np.broadcast_to(mean, image.shape) + noise * rng.standard_normal(image.shape)
        return out.astype(np.float32)
    index = np.full((height, width), -1)
    index[ys, xs] = np.arange(n)
    diagonal = np.full(n, _IMPUTE_PULL)
    rhs = np.tile(_IMPUTE_PULL * mean, (n, 1))
    rows, cols, values = [], [], []
    for (dy, dx), weight in _NEIGHBOURS:
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
        diagonal[inside] += weight  # the weights of the neighbours inside the image
        known = inside.copy()
        known[inside] = ~missing[ny[inside], nx[inside]]
        rhs[known] += weight * image[ny[known], nx[known]]
        unknown = inside & ~known
        rows.append(np.nonzero(unknown)[0])
        cols.append(index[ny[unknown], nx[unknown]])
        values.append(np.full(unknown.sum(), -weight))
    rows.append(np.arange(n))
    cols.append(np.arange(n))
    values.append(diagonal)
    system = coo_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    solution = np.asarray(spsolve(system.tocsc(), rhs)).reshape(n, channels)
    if noise > 0:
        solution = solution + noise * rng.standard_normal((n, channels))
    out = image.copy()
    out[ys, xs] = solution
    return out.astype(np.float32)


def _baseline(images: np.ndarray, baseline: Baseline) -> np.ndarray | None:
    """The fully deleted / not yet inserted image for each image: (B, H, W, C) float32 (None: "impute")."""
    if isinstance(baseline, str):
        if baseline == "impute":
            return None  # filled per step by linear_imputation, which depends on the pixels removed
        if baseline == "zeros":
            return np.zeros_like(images)
        if baseline == "mean":
            return np.broadcast_to(images.mean(axis=(1, 2), keepdims=True), images.shape).astype(np.float32)
        if baseline == "blur":
            height, width = images.shape[1:3]
            sigma = 5.0 * max(height, width) / 224.0  # RISE: an 11 x 11 Gaussian, sigma 5, at 224 px
            return np.stack(
                [cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT).reshape(img.shape) for img in images]
            ).astype(np.float32)
        raise CamTutorError(f"baseline must be one of {BASELINES} or an array, got {baseline!r}")
    try:
        arr = np.asarray(baseline, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise CamTutorError(f"baseline must be one of {BASELINES} or a numeric array; could not convert: {exc}") from None
    if arr.shape not in (images.shape, images.shape[1:]):
        raise CamTutorError(
            f"a baseline array must have the images' shape {images.shape} or one image's {images.shape[1:]}, got {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise CamTutorError("the baseline array contains NaN or inf")
    return np.broadcast_to(arr, images.shape)


def _probabilities_of(model, batches) -> np.ndarray:
    """Run the model on each (images, classes) chunk; the probability of each image's class, concatenated."""
    out = []
    for chunk, classes in batches:
        probabilities = class_probabilities(model, chunk)
        out.append(probabilities[np.arange(len(chunk)), classes])
    return np.concatenate(out).astype(np.float64)


def _ranks(maps: np.ndarray) -> np.ndarray:
    """(B, H, W) int: 0 for each map's most important pixel, then 1, ...; ties in row-major order."""
    batch = len(maps)
    flat = maps.reshape(batch, -1)
    order = np.argsort(-flat, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(flat.shape[1])[None, :], axis=1)
    return ranks.reshape(maps.shape)


def _causal_curve(model, images, maps, class_index, steps, baseline, batch_size, insert: bool):
    images, heat, classes = _prepare_model_inputs(model, images, maps, class_index)
    pixels = heat.shape[1] * heat.shape[2]
    if steps is None:
        steps = min(DEFAULT_STEPS, pixels)
    steps = _count(steps, "steps", pixels, f"one pixel per step for {heat.shape[1]}x{heat.shape[2]} images; "
                   "more steps only repeat points")
    batch_size = _check_batch_size(batch_size, images)
    base = _baseline(images, baseline)
    ranks = _ranks(heat)
    counts = (2 * np.arange(steps + 1) * pixels + steps) // (2 * steps)  # round(k * N / steps), exactly
    total = len(images) * (steps + 1)

    def chunks():
        for start in range(0, total, batch_size):
            index = np.arange(start, min(start + batch_size, total))
            b, k = index // (steps + 1), index % (steps + 1)
            yield _edit(images, base, ranks, counts, b, k, insert), classes[b]

    curves = _probabilities_of(model, chunks()).reshape(len(images), steps + 1)
    auc = (curves[:, 1:] + curves[:, :-1]).sum(axis=1) / (2.0 * steps)
    return auc, curves


def _edit(images, base, ranks, counts, b, k, insert: bool) -> np.ndarray:
    """The edited images of (image b, step k) pairs: the first ``counts[k]`` pixels of each ranking changed."""
    changed = (ranks[b] < counts[k][:, None, None])[..., None]  # (n, H, W, 1): the first counts[k] pixels
    if base is None:  # "impute": fill what is removed at this step from what is left
        removed = ~changed[..., 0] if insert else changed[..., 0]
        return np.stack([linear_imputation(images[i], gone, seed=(0, int(i), int(j)))
                         for i, j, gone in zip(b, k, removed)])
    return np.where(changed, images[b], base[b]) if insert else np.where(changed, base[b], images[b])


def remove_top(images: np.ndarray, maps: np.ndarray, fraction: float, *, baseline: Baseline = "zeros") -> np.ndarray:
    """The images after the ``fraction`` most important pixels of each map are removed: (B, H, W, C) float32.

    One point of a :func:`deletion` curve, to look at: the map is resized to the image and ranked as
    there (ties in row-major order), ``round(fraction N)`` of the N = H W pixels are replaced by the
    ``baseline`` (the same names and arrays as :func:`deletion`; ``"impute"``'s noise is seeded per
    image, not drawn as in a deletion curve). ``fraction`` in [0, 1]. Images (B, H, W, C) float32 in
    the model's input space, maps (B, h, w) any resolution.
    """
    images = check_images(images, (None, None, None, None))
    heat = resize_maps(_check_maps(maps), images.shape[1:3])
    if len(heat) != len(images):
        raise CamTutorError(f"got {len(images)} images but {len(heat)} maps; pass one map per image")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.number)) or not 0 <= fraction <= 1:
        raise CamTutorError(f"fraction is the share of pixels removed, in [0, 1]; got {fraction!r}")
    pixels = heat.shape[1] * heat.shape[2]
    count = np.array([int(np.floor(fraction * pixels + 0.5))])
    b = np.arange(len(images))
    return _edit(images, _baseline(images, baseline), _ranks(heat), count, b, np.zeros_like(b), insert=False)


def deletion(
    model: keras.Model,
    images: np.ndarray,
    maps: np.ndarray,
    class_index: ClassIndex,
    *,
    steps: int | None = None,
    baseline: Baseline = "zeros",
    batch_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The deletion metric (Petsiuk et al. 2018, RISE, Sec. 4.1): (auc (B,), curves (B, steps + 1)), float64.

    Computed against the model itself: pixels are replaced by the ``baseline``, most important first
    (the map resized to the image, ranked in descending order; ties in row-major order, so a constant
    map deletes top-left first and measures nothing about the map). Point k of the curve is the model's
    probability (softmax, :func:`camtutor.explain.class_probabilities`) of ``class_index`` after
    ``n_k = round(k N / steps)`` of the N = H W pixels are deleted (all channels of a pixel at once):
    ``curve[0]`` is the original image, ``curve[steps]`` the baseline. The AUC is the trapezoid rule
    over x = k / steps in [0, 1]: ``AUC = (1 / steps) sum_k (c_k + c_(k+1)) / 2``, in [0, 1].
    **Lower is better**: a faithful map makes the probability fall fast.

    Baselines: ``"zeros"`` (black, RISE's deletion), ``"blur"`` (a Gaussian blur of the image,
    sigma = 5 px at 224 px scaled to the image: RISE's insertion start), ``"mean"`` (each image's mean
    colour), ``"impute"`` (ROAD's noisy linear imputation, :func:`linear_imputation`: at every step the
    removed pixels are filled from the pixels left, so no region of one flat colour, whose shape the
    model could read, is painted in; noise seeded per image and step, so the curves are reproducible and
    do not depend on ``batch_size``; about 5 ms per edited 64x64 image, run on the CPU before the model),
    or an array (H, W, C) or (B, H, W, C) in the model's input space (preprocessed like the images).

    ``steps`` is an int from 1 to N, one pixel per step at most (more would only repeat points); the
    default is :data:`DEFAULT_STEPS` = 50, or N for images of fewer pixels.

    All B (steps + 1) edited images run through the model in calls of ``batch_size`` images
    (no Python loop per image and step); memory is bounded by ``batch_size``: by default 512 images,
    fewer when that would exceed 32 MB of input (55 images of 224x224x3). Compare methods with
    :func:`bootstrap_interval` ``(auc)``.
    """
    return _causal_curve(model, images, maps, class_index, steps, baseline, batch_size, insert=False)


def insertion(
    model: keras.Model,
    images: np.ndarray,
    maps: np.ndarray,
    class_index: ClassIndex,
    *,
    steps: int | None = None,
    baseline: Baseline = "zeros",
    batch_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The insertion metric (Petsiuk et al. 2018, RISE, Sec. 4.1): (auc (B,), curves (B, steps + 1)), float64.

    Computed against the model itself: starting from the ``baseline`` image, the image's own pixels are
    put back, most important first. Point k is the probability of ``class_index`` with the top
    ``n_k = round(k N / steps)`` pixels inserted: ``curve[0]`` is the baseline, ``curve[steps]`` the
    original image. AUC by the trapezoid rule over x in [0, 1]. **Higher is better.** Ordering, ties,
    baselines, batching: as :func:`deletion`.

    RISE starts insertion from ``"blur"``; the default here is ``"zeros"``, like :func:`deletion`,
    because a blur scaled from 224 px is too weak for small images: on 32 of the 64x64
    ``camtutor.data.shapes`` images the bundled shapes model still gives the true class 0.81 on
    average to the blurred image (0.33 to the black one), so the curve would start near its end.
    Check ``curves[:, 0]`` with your baseline: it should be low.
    """
    return _causal_curve(model, images, maps, class_index, steps, baseline, batch_size, insert=True)


def _confidences(model, images, maps, class_index, batch_size) -> tuple[np.ndarray, np.ndarray]:
    """(Y, O): the class probability on each image and on its explanation map ``image x normalised map``."""
    images, heat, classes = _prepare_model_inputs(model, images, maps, class_index)
    batch_size = _check_batch_size(batch_size, images)
    explained = images * _normalize(heat)[..., None]
    both, both_classes = np.concatenate([images, explained]), np.concatenate([classes, classes])
    chunks = ((both[s : s + batch_size], both_classes[s : s + batch_size]) for s in range(0, len(both), batch_size))
    probabilities = _probabilities_of(model, chunks)
    return probabilities[: len(images)], probabilities[len(images) :]


def average_drop(
    model: keras.Model, images: np.ndarray, maps: np.ndarray, class_index: ClassIndex, *, batch_size: int | None = None
) -> np.ndarray:
    """Per-image drop in confidence (Chattopadhay et al. 2018, Grad-CAM++, Sec. 6.1.1): (B,) float64 in [0, 100].

    Computed against the model's confidence on the full image. The *explanation map* keeps only what the
    map points at: ``E = I x L``, with L the map resized to the image and min-max normalised to [0, 1]
    per image (a constant map gives L = 0, a blank image). With ``Y`` the class probability on the
    image and ``O`` on E, the per-image drop is ``max(0, Y - O) / Y x 100`` (0 where Y = 0).
    **The paper's Average Drop is the mean**: ``average_drop(...).mean()``, lower is better; give it
    with :func:`bootstrap_interval`. E is built in the model's input space: for inputs that are not
    [0, 1] images (e.g. [-1, 1] preprocessing), multiplying by L pulls pixels toward 0, not to black.
    """
    y, o = _confidences(model, images, maps, class_index, batch_size)
    return np.where(y > 0, np.maximum(0.0, y - o) / np.where(y > 0, y, 1.0) * 100.0, 0.0)


def increase_in_confidence(
    model: keras.Model, images: np.ndarray, maps: np.ndarray, class_index: ClassIndex, *, batch_size: int | None = None
) -> np.ndarray:
    """Per-image increase in confidence (Chattopadhay et al. 2018, Sec. 6.1.1): (B,) bool, True where O > Y.

    Computed against the model's confidence on the full image: ``O`` (class probability on the
    explanation map ``E = I x L``, as in :func:`average_drop`) greater than ``Y`` (on the image).
    **The paper's "% Increase in Confidence" is** ``100 * hits.mean()``, higher is better; give
    :func:`rate_interval` ``(hits)`` beside it.
    """
    y, o = _confidences(model, images, maps, class_index, batch_size)
    return o > y


# --------------------------------------------------------------------------- sanity checks (Adebayo et al. 2018)
def _weighted_layers(model: keras.Model, prefix: str = "") -> Iterator[tuple[str, keras.layers.Layer]]:
    """(path, layer) of every leaf layer with weights, input to output; nested models give "outer/inner"."""
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        if isinstance(layer, keras.Model):
            yield from _weighted_layers(layer, prefix=f"{path}/")
        elif layer.weights:
            yield path, layer


def _initializer_for(layer: keras.layers.Layer, variable) -> object | None:
    """The layer's own initializer of ``variable`` (``kernel`` -> ``kernel_initializer``, ...), or None."""
    name = variable.name.split("/")[-1].split(":")[0]
    candidates = [f"{name}_initializer"]
    if name.endswith("_kernel"):  # SeparableConv: depthwise_kernel -> depthwise_initializer
        candidates.append(f"{name[: -len('_kernel')]}_initializer")
    if name == "kernel":  # DepthwiseConv2D keeps its kernel as "kernel"
        candidates.append("depthwise_initializer")
    for attribute in candidates:
        found = getattr(layer, attribute, None)
        if found is not None:
            return found
    return None


def _random_values(layer: keras.layers.Layer, variable, original: np.ndarray, seed: int) -> np.ndarray:
    """New values for one variable: its own initializer re-seeded, else a seeded normal with the weights' std."""
    initializer = _initializer_for(layer, variable)
    if initializer is not None:
        try:
            config = initializer.get_config()
            if "seed" in config:
                initializer = type(initializer).from_config({**config, "seed": seed})
            values = np.asarray(keras.ops.convert_to_numpy(initializer(original.shape, dtype=original.dtype)))
            if values.shape == original.shape:
                return values
        except (TypeError, ValueError, NotImplementedError):
            pass
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, float(original.std()), original.shape).astype(original.dtype)


def randomized_models(
    model: keras.Model,
    *,
    mode: str = "cascading",
    seed: int = 0,
    layers: Sequence[str] | None = None,
    copies: bool = False,
) -> Iterator[tuple[str, keras.Model]]:
    """Model parameter randomisation test (Adebayo et al. 2018, "Sanity checks for saliency maps", Sec. 3.1).

    Yields ``(layer path, randomised model)``, one step per layer with weights, top (output) layer first.
    Paths name nested layers ``"backbone/conv3"``. Compare each model's maps with the trained model's
    using :func:`similarity`: maps that stay similar when the weights are random do not explain the model.

    * ``mode="cascading"``: step i has the top i + 1 weighted layers re-initialised (cumulative, from
      the output down to the input);
    * ``mode="independent"``: step i has only layer i re-initialised, every other layer trained.

    Every variable of a re-initialised layer (kernel, bias, BatchNorm statistics...) is redrawn with the
    layer's own initializer (``kernel_initializer``...) re-seeded from ``seed`` and the layer path, else
    from a seeded normal with that variable's standard deviation. Reproducible for a given ``seed``.

    The user's model is never touched: the generator works on a copy (``keras.models.clone_model`` +
    ``set_weights``; nested Functional/Sequential backbones are cloned too). By default **the same copy
    is yielded at every step with its weights changed in place**, so camtutor's compiled Grad-CAM for it
    is traced once, not once per step: use each model before advancing the generator, and do not keep
    ``list(randomized_models(...))``. Pass ``copies=True`` for a separate clone per step (slower:
    each is traced anew).

    Args:
        model: a Keras model that ``clone_model`` can clone (Sequential or Functional).
        mode: "cascading" or "independent".
        seed: seed of the new weights.
        layers: paths (or unique bare layer names) of the weighted layers to randomise, in any order;
            default all of them. Steps still go from the top down.
        copies: yield a fresh clone at every step instead of one copy updated in place.
    """
    if not isinstance(mode, str) or mode not in ("cascading", "independent"):
        raise CamTutorError(f"mode must be 'cascading' or 'independent', got {mode!r}")
    _seed(seed)
    if layers is not None and not isinstance(layers, str) and (
        not isinstance(layers, (list, tuple)) or not all(isinstance(name, str) for name in layers)
    ):
        raise CamTutorError(f"layers must be None or layer names (str, or a list of str), got {layers!r}")
    check_model(model)

    def clone() -> keras.Model:
        try:
            copy = keras.models.clone_model(model)
        except (TypeError, ValueError, NotImplementedError) as exc:
            raise ModelError(
                f"cannot copy model {model.name!r} with keras.models.clone_model ({exc}); "
                "randomisation needs a Sequential or Functional model"
            ) from None
        copy.set_weights(model.get_weights())
        return copy

    working = clone()
    weighted = list(_weighted_layers(working))
    if layers is not None:
        wanted = [layers] if isinstance(layers, str) else list(layers)
        paths = [p for p, _ in weighted]
        chosen = set()
        for name in wanted:
            matches = [p for p in paths if p == name] or [p for p in paths if p.split("/")[-1] == name]
            if len(matches) != 1:
                what = "is ambiguous" if matches else "is not a layer with weights"
                raise CamTutorError(f"{name!r} {what}; layers with weights: {paths}")
            chosen.add(matches[0])
        weighted = [(p, layer) for p, layer in weighted if p in chosen]
    if not weighted:
        raise ModelError(f"model {model.name!r} has no layers with weights to randomise")
    order = weighted[::-1]  # top (output) first
    trained = {path: [v.numpy() for v in layer.weights] for path, layer in order}

    def randomise(layer, path: str) -> None:
        for i, variable in enumerate(layer.weights):
            variable_seed = (int(seed) * 1_000_003 + zlib.crc32(f"{path}:{i}".encode())) % (2**31 - 1)
            variable.assign(_random_values(layer, variable, trained[path][i], variable_seed))

    def restore(layer, path: str) -> None:
        for variable, values in zip(layer.weights, trained[path]):
            variable.assign(values)

    def steps() -> Iterator[tuple[str, keras.Model]]:
        previous: tuple[str, keras.layers.Layer] | None = None
        for path, layer in order:
            if mode == "independent" and previous is not None:
                restore(previous[1], previous[0])
            randomise(layer, path)
            previous = (path, layer)
            if copies:
                fresh = keras.models.clone_model(working)
                fresh.set_weights(working.get_weights())
                yield path, fresh
            else:
                yield path, working

    return steps()  # the checks and the copy above run at the call, not at the first next()


def _spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's rho per row of (B, N) arrays (average ranks for ties); NaN where a row is constant."""
    from scipy.stats import rankdata

    ra, rb = rankdata(a, axis=1), rankdata(b, axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    denominator = np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (ra * rb).sum(axis=1) / np.where(denominator > 0, denominator, 1.0), np.nan)


def similarity(maps_a: np.ndarray, maps_b: np.ndarray, *, size: int | Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """How alike two batches of maps are, per image (Adebayo et al. 2018, Sec. 3): dict of (B,) float64.

    Computed between ``maps_a[i]`` and ``maps_b[i]`` (e.g. the trained and a randomised model's maps),
    both resized to ``size`` (default: the larger height and width of the two).

    * ``"spearman"``: Spearman rank correlation of the pixel values, in [-1, 1]
      (``rho = pearson(rank(a), rank(b))``, average ranks for ties); NaN if either map is constant.
    * ``"spearman_abs"``: the same on ``|a|`` and ``|b|`` (Adebayo et al. report both, since the sign
      of some maps is arbitrary).
    * ``"ssim"``: structural similarity (Wang et al. 2004), ``skimage.metrics.structural_similarity``
      with ``data_range=1`` after each map is min-max normalised to [0, 1] (constant map -> all 0),
      Gaussian-free 7x7 window (smaller odd window for maps under 7 px); in [-1, 1], 1 = identical.
    """
    from skimage.metrics import structural_similarity

    a, b = _check_maps(maps_a, "maps_a"), _check_maps(maps_b, "maps_b")
    if len(a) != len(b):
        raise CamTutorError(f"got {len(a)} maps in maps_a but {len(b)} in maps_b; pass pairs of maps")
    target = _size(size) if size is not None else (max(a.shape[1], b.shape[1]), max(a.shape[2], b.shape[2]))
    a, b = resize_maps(a, target).astype(np.float64), resize_maps(b, target).astype(np.float64)
    window = min(7, min(target) if min(target) % 2 else min(target) - 1)
    if window < 3:
        raise CamTutorError(f"maps of {target[0]}x{target[1]} are too small for SSIM; pass size=(H, W) of at least 3x3")
    na, nb = _normalize(a), _normalize(b)
    ssim = np.array(
        [structural_similarity(x, y, data_range=1.0, win_size=window) for x, y in zip(na.astype(np.float64), nb.astype(np.float64))]
    )
    flat_a, flat_b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return {
        "spearman": _spearman_rows(flat_a, flat_b),
        "spearman_abs": _spearman_rows(np.abs(flat_a), np.abs(flat_b)),
        "ssim": ssim.astype(np.float64),
    }


# --------------------------------------------------------------------------- confidence intervals
#: Most resamples :func:`bootstrap_interval` draws (its ``n``); beyond it the quantiles no longer move.
MAX_RESAMPLES = 1_000_000
_RESAMPLE_CHUNK = 2**22  # indices drawn at once (32 MB of int64), whatever n and the number of values


def _float_array(values: object, name: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CamTutorError(f"{name} must be numbers (one per image); could not convert: {exc}") from None


def _z(confidence: float) -> float:
    confidence = _number(confidence, "confidence", "confidence=0.95")
    if not 0 < confidence < 1:
        raise CamTutorError(f"confidence must be in (0, 1), e.g. 0.95; got {confidence!r}")
    return statistics.NormalDist().inv_cdf(0.5 + confidence / 2.0)


def rate_interval(hits: np.ndarray, *, confidence: float = 0.95) -> tuple[float, float, float]:
    """A rate and its Wilson score interval (Wilson 1927): ``(rate, low, high)``, all in [0, 1].

    ``hits`` is a (B,) bool (or 0/1) array, e.g. :func:`pointing_game` hits. With k hits of n and z
    the normal quantile of ``confidence`` (1.96 for 0.95)::

        centre = (k + z^2 / 2) / (n + z^2),  half = z / (n + z^2) * sqrt(k (n - k) / n + z^2 / 4)

    Unlike rate +- z * sqrt(p (1 - p) / n), it stays inside [0, 1] and is not empty at 0 or n hits.
    """
    arr = np.asarray(hits)
    if arr.ndim != 1 or arr.size == 0:
        raise CamTutorError(f"hits must be a non-empty 1-D array of bools (one per image), got shape {arr.shape}")
    if arr.dtype != bool and not np.isin(arr, (0, 1)).all():
        raise CamTutorError("hits must be bools or 0/1; threshold scores first, e.g. box_iou(...) >= 0.5")
    z = _z(confidence)
    n, k = float(arr.size), float(np.count_nonzero(arr))
    centre = (k + z * z / 2.0) / (n + z * z)
    half = z / (n + z * z) * np.sqrt(k * (n - k) / n + z * z / 4.0)
    low = 0.0 if k == 0 else max(0.0, centre - half)  # exactly 0 (1) at no (all) hits, not a rounding error away
    high = 1.0 if k == n else min(1.0, centre + half)
    return k / n, float(low), float(high)


def bootstrap_interval(
    values: np.ndarray, *, n: int = 1000, seed: int = 0, confidence: float = 0.95, weights: np.ndarray | None = None
) -> tuple[float, float, float]:
    """The mean of per-image scores and its percentile bootstrap interval (Efron 1979): ``(mean, low, high)``.

    ``n`` resamples of the B values with replacement (seeded, reproducible); ``low`` and ``high`` are
    the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the resampled means. Use it
    for AUCs, Average Drop, energy or IoU scores. NaN values are refused (drop them explicitly, and say
    how many: e.g. Spearman of a constant map).

    ``weights`` (B,) >= 0 gives the weighted mean ``sum w v / sum w`` instead, resampled the same way (the
    ratio estimator): with ``v = k_i / n_i`` and ``w = n_i`` it is ``sum k / sum n``, the share of hits among
    all cases pooled over images, with images resampled (e.g. :func:`camtutor.trust.discrimination_scores`).
    A value with weight 0 counts for nothing (it may be any finite number); resamples whose weights sum to 0
    are dropped from the quantiles.

    ``n`` is at most :data:`MAX_RESAMPLES` (a million); the resamples are drawn in chunks, so memory stays
    bounded (about 32 MB of indices) whatever ``n`` and B. ``seed`` is an int >= 0 (or a sequence of them).
    """
    arr = _float_array(values, "values")
    if arr.ndim != 1 or arr.size == 0:
        raise CamTutorError(f"values must be a non-empty 1-D array (one score per image), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise CamTutorError(
            f"{int((~np.isfinite(arr)).sum())} values are NaN or inf; drop them first (values[np.isfinite(values)]) "
            "and report how many"
        )
    n = _count(n, "n (the number of bootstrap resamples)", MAX_RESAMPLES, "more only repeats the same quantiles")
    confidence = _number(confidence, "confidence", "confidence=0.95")
    _z(confidence)  # checks the range
    rng = np.random.default_rng(_seed(seed))
    quantiles = [(1 - confidence) / 2.0, (1 + confidence) / 2.0]
    w = np.ones_like(arr) if weights is None else _float_array(weights, "weights")
    if w.shape != arr.shape or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise CamTutorError(
            f"weights must be finite, >= 0, one per value (shape {arr.shape}) and not all 0; got shape {w.shape}"
        )
    rows = max(1, _RESAMPLE_CHUNK // arr.size)  # resamples drawn per chunk: memory bounded, same random stream
    means = []
    for start in range(0, n, rows):
        index = rng.integers(0, arr.size, size=(min(rows, n - start), arr.size))
        if weights is None:
            means.append(arr[index].mean(axis=1))
        else:
            totals = w[index].sum(axis=1)
            means.append((w * arr)[index].sum(axis=1)[totals > 0] / totals[totals > 0])
    low, high = np.quantile(np.concatenate(means), quantiles)
    centre = arr.mean() if weights is None else np.sum(w * arr) / w.sum()
    return float(centre), float(low), float(high)
