"""Score tables for notebooks 09 and 10: every method and baseline, every metric, an interval beside each number.

Thin glue over :mod:`camtutor.metrics` and :mod:`camtutor.baselines` (no new metric here):

* :func:`method_maps` -- CAM, Grad-CAM and HiResCAM maps (B, h, w) of one layer, one class per image;
* :func:`localisation_scores` -- pointing game, energy pointing game and box IoU of many maps at once,
  each as ``(value, low, high)``: Wilson for the pointing-game rate, percentile bootstrap for the means;
  with ``groups`` (one image id per row, e.g. two objects of one image) the intervals resample *images*,
  since the two objects of one image are not independent;
* :func:`two_object_rows` -- the two-object data (N, 2, ...) laid out as 2N rows, one per object;
* :func:`discrimination_scores` -- on those rows, how often the map's peak lands on the right object, on the
  other one, on either, and the **discrimination** share: right among the peaks on either object (0.5 for any
  class-blind map);
* :func:`positive_over_max` -- maps as the scores see them, for figures: the positive part over its max;
* :func:`peak_in_frame` -- whether each map's peak lies in the image's outer frame (padding artefacts);
* :func:`format_table` -- the table as text, one row per map, ``value [low, high]`` per metric;
* :func:`randomisation_similarity` -- Adebayo et al.'s model randomisation test: the mean similarity of
  each randomised model's maps with the trained model's, per layer.

Only :func:`method_maps` and :func:`randomisation_similarity` import TensorFlow (through the model).
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from camtutor import metrics
from camtutor.errors import CamTutorError

__all__ = [
    "METHODS",
    "method_maps",
    "baseline_maps",
    "two_object_rows",
    "discrimination_scores",
    "localisation_scores",
    "positive_over_max",
    "peak_in_frame",
    "format_table",
    "randomisation_similarity",
]

#: the methods scored in notebook 09, by their label in :data:`camtutor.methods.REGISTRY` (a selection, not a copy:
#: :func:`method_maps` accepts the label of any registry entry)
METHODS: tuple[str, ...] = ("CAM", "Grad-CAM", "HiResCAM")


def method_maps(model, images: np.ndarray, classes, *, layer: str | None = None,
                methods: Sequence[str] = METHODS) -> dict[str, np.ndarray]:
    """Maps (B, h, w) of ``layer`` for each registry label in ``methods``, from ``ct.heatmap(method=...)``.

    "CAM" is the paper's raw map (no ReLU; it needs a GAP + Dense head and exists only at the layer before GAP);
    every other method gets its ReLU, as ``ct.heatmap`` gives it ("Grad-CAM": mean-gradient weights,
    "HiResCAM": gradient x activation per cell, ...).
    """
    import camtutor as ct
    from camtutor.methods import REGISTRY

    by_label = {entry.label: name for name, entry in REGISTRY.items()}
    unknown = [label for label in methods if label not in by_label]
    if unknown:
        raise CamTutorError(f"unknown method {unknown[0]!r}; choose from the registry's labels {sorted(by_label)}")
    return {label: np.asarray(ct.heatmap(model, images, classes, method=by_label[label], layer=layer,
                                         relu=REGISTRY[by_label[label]].paper_relu))
            for label in methods}


def baseline_maps(images: np.ndarray, *, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Every model-free baseline of :data:`camtutor.baselines.BASELINES` (or ``names``): name -> (B, H, W)."""
    from camtutor.baselines import BASELINES

    return {name: np.asarray(BASELINES[name](images)) for name in (names or BASELINES)}


def two_object_rows(data) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lay out :class:`camtutor.data.TwoShapesData` one row per object: (images, classes, masks, boxes, groups).

    Row ``k * N + i`` is object k of image i: images (2N, S, S, 3), classes (2N,) = ``labels[i, k]``,
    masks (2N, S, S) = ``masks[i, k]``, boxes (2N, 4), groups (2N,) = i (the image, for the bootstrap).
    Score the map *for class* ``classes[r]`` against ``masks[r]``: a map that ignores the class (every
    baseline) is the same for both rows of an image, and can hit at most one of the two disjoint masks.
    """
    n = len(data.images)
    images = np.concatenate([data.images, data.images])
    classes = np.concatenate([data.labels[:, 0], data.labels[:, 1]])
    masks = np.concatenate([data.masks[:, 0], data.masks[:, 1]])
    boxes = np.concatenate([data.boxes[:, 0], data.boxes[:, 1]])
    return images, classes, masks, boxes, np.tile(np.arange(n), 2)


def _mean_interval(values: np.ndarray, groups: np.ndarray | None, seed: int) -> tuple[float, float, float]:
    values = np.asarray(values, dtype=np.float64)
    if groups is None:
        return metrics.bootstrap_interval(values, seed=seed)
    # cluster bootstrap: resample images, each carrying the mean of its rows (equal rows per image here)
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    if len(set(counts.tolist())) != 1:
        raise CamTutorError("groups must give every image the same number of rows (e.g. 2 objects each)")
    per_group = np.bincount(inverse, weights=values) / counts
    mean, low, high = metrics.bootstrap_interval(per_group, seed=seed)
    return float(values.mean()), low, high


def localisation_scores(maps: Mapping[str, np.ndarray], masks: np.ndarray, boxes: np.ndarray, *,
                        groups: np.ndarray | None = None, seed: int = 0) -> dict[str, dict[str, tuple[float, float, float]]]:
    """Pointing game, energy pointing game and box IoU of each map: ``{name: {metric: (value, low, high)}}``.

    Args:
        maps: name -> (B, h, w) maps (any resolution; the metrics resize them).
        masks: (B, H, W) bool object masks; boxes: (B, 4) their tight boxes (x1, y1 exclusive).
        groups: optional (B,) image id per row. Without it, rows are independent images: the pointing rate
            gets a Wilson interval, the means a percentile bootstrap. With it, every interval resamples
            groups (a cluster bootstrap), and the value is still the mean over rows.
        seed: bootstrap seed.

    Metrics: ``"pointing"`` (rate of hits, :func:`camtutor.metrics.pointing_game`), ``"energy"`` (mean share
    of positive mass on the mask, :func:`~camtutor.metrics.energy_pointing_game`), ``"iou"`` (mean IoU of the
    box from the map cut at 20 % of its max, :func:`~camtutor.metrics.box_iou`), ``"chance energy"`` is not
    a map's score but the mask's area fraction (what a uniform map gets), added under the key ``"(area)"``.
    """
    masks = np.asarray(masks, dtype=bool)
    size = masks.shape[1:]
    table = {}
    for name, heat in maps.items():
        hits = metrics.pointing_game(heat, masks)
        energy = metrics.energy_pointing_game(heat, masks)
        iou = metrics.box_iou(heat, boxes, size=size)
        pointing = metrics.rate_interval(hits) if groups is None else _mean_interval(hits, groups, seed)
        table[name] = {"pointing": pointing, "energy": _mean_interval(energy, groups, seed),
                       "iou": _mean_interval(iou, groups, seed)}
    table["(area)"] = {"energy": _mean_interval(masks.mean(axis=(1, 2)), groups, seed)}
    return table


def discrimination_scores(maps: Mapping[str, np.ndarray], masks: np.ndarray, other_masks: np.ndarray, *,
                          groups: np.ndarray | None = None, seed: int = 0) -> dict[str, dict[str, tuple[float, float, float]]]:
    """Where each map's peak lands on two-object images: ``{name: {score: (value, low, high)}}``.

    Row r is one object: ``maps[name][r]`` is the map *for its class*, ``masks[r]`` its mask and ``other_masks[r]``
    the mask of the other object of the same image (disjoint from ``masks[r]``). With
    ``right = pointing_game(map, masks)`` and ``other = pointing_game(map, other_masks)`` (Zhang et al. 2016):

    * ``"right"``, ``"other"``, ``"either"``: the rates of ``right``, ``other`` and ``right | other``;
    * ``"discrimination"``: ``sum right / sum (right | other)``, the share of the peaks on *an* object that land on
      the object of the map's class. A class-blind map (every baseline) draws the same map for both objects of an
      image, so each peak on an object is right for one row and wrong for the other: exactly 0.5. Chance is 0.5
      for a map that picks an object at random too; 1.0 is a map that always finds its own class.

    Args:
        maps: name -> (B, h, w) maps of any resolution (the pointing game resizes them).
        masks, other_masks: (B, H, W) bool.
        groups: optional (B,) image id per row (e.g. from :func:`two_object_rows`): the intervals then resample
            images (cluster bootstrap), not rows. Without it every row is its own image.
        seed: bootstrap seed.

    Intervals: percentile bootstrap (:func:`camtutor.metrics.bootstrap_interval`); for the discrimination share
    its weighted form, each image weighted by its number of peaks on an object. Raises
    :class:`~camtutor.errors.CamTutorError` if no map's peak lands on an object at all (the share is undefined).
    """
    masks, other_masks = np.asarray(masks, dtype=bool), np.asarray(other_masks, dtype=bool)
    if masks.shape != other_masks.shape:
        raise CamTutorError(f"masks {masks.shape} and other_masks {other_masks.shape} must have the same shape")
    if (masks & other_masks).any():
        raise CamTutorError("masks and other_masks overlap: each row needs its object's mask and the *other* object's")
    rows = np.arange(len(masks)) if groups is None else np.asarray(groups)
    if rows.shape != (len(masks),):
        raise CamTutorError(f"groups must hold one image id per row, shape ({len(masks)},); got {rows.shape}")
    _, inverse = np.unique(rows, return_inverse=True)
    table = {}
    for name, heat in maps.items():
        right, other = metrics.pointing_game(heat, masks), metrics.pointing_game(heat, other_masks)
        either = right | other
        if not either.any():
            raise CamTutorError(f"no peak of {name!r} lands on an object: its discrimination share is undefined")
        hits, decided = np.bincount(inverse, weights=right), np.bincount(inverse, weights=either)
        share = metrics.bootstrap_interval(np.divide(hits, decided, out=np.zeros_like(hits), where=decided > 0),
                                           weights=decided, seed=seed)
        table[name] = {"right": _mean_interval(right, groups, seed), "other": _mean_interval(other, groups, seed),
                       "either": _mean_interval(either, groups, seed), "discrimination": share}
    return table


def positive_over_max(maps: np.ndarray) -> np.ndarray:
    """``max(L, 0) / max(L)`` per map: (B, h, w) -> float32 (B, h, w) in [0, 1]; an all-<= 0 map -> all 0.

    The part of a map that the energy game and box IoU score (both ignore values <= 0) and where the
    pointing game's peak is, on the scale of the map's own maximum. Unlike min-max scaling
    (:func:`camtutor.normalize`), a map without a ReLU (the paper's CAM) keeps its zero: a background
    at -3 with a peak at +6 shows as 0, not as 0.33. For figures that say "each map / its own max".
    """
    arr = np.asarray(maps, dtype=np.float32)
    if arr.ndim != 3:
        raise CamTutorError(f"maps must be (B, h, w), got shape {arr.shape}; for one map use maps[None]")
    positive = np.maximum(arr, 0.0)
    top = positive.max(axis=(1, 2), keepdims=True)
    return np.divide(positive, top, out=np.zeros_like(positive), where=top > 0)


def peak_in_frame(maps: np.ndarray, size: int, *, width: int = 4) -> np.ndarray:
    """(B,) bool: True where a map's maximum, resized to ``size`` x ``size`` as the pointing game does,
    lies within ``width`` pixels of the image's border (the frame of the zero padding).

    The frame covers ``1 - (1 - 2 width / size)^2`` of the image (0.23 for 4 px of 64): a map whose peak
    lands there far more often is drawn to the border, not to the objects. A constant map has no peak:
    False (the pointing game's rule: it points nowhere).
    """
    heat = metrics.resize_maps(np.asarray(maps, dtype=np.float32), size)
    if not 0 < width < size / 2:
        raise CamTutorError(f"width must be between 1 and half the image size {size}; got {width!r}")
    rows, cols = np.unravel_index(np.argmax(heat.reshape(len(heat), -1), axis=1), heat.shape[1:])
    edge = (rows < width) | (cols < width) | (rows >= size - width) | (cols >= size - width)
    return edge & ~metrics._is_constant(heat)


def format_table(table: Mapping[str, Mapping[str, tuple[float, float, float]]],
                 metrics_shown: Sequence[str] = ("pointing", "energy", "iou")) -> str:
    """The score table as aligned text: one row per map, ``value [low, high]`` per metric (blank if absent)."""
    width = max(len(name) for name in table) + 2
    lines = [" " * width + "".join(f"{m:<22s}" for m in metrics_shown)]
    for name, row in table.items():
        cells = [f"{row[m][0]:.3f} [{row[m][1]:.3f}, {row[m][2]:.3f}]" if m in row else "" for m in metrics_shown]
        lines.append(f"{name:<{width}s}" + "".join(f"{c:<22s}" for c in cells))
    return "\n".join(lines)


def randomisation_similarity(model, images: np.ndarray, classes, explain: Callable, *, mode: str = "cascading",
                             seed: int = 0, keep: Sequence[str] = ()) -> tuple[list[str], dict[str, np.ndarray], dict]:
    """Adebayo et al.'s model randomisation test, summarised per layer.

    ``explain(model, images, classes) -> (B, h, w)`` makes the maps (e.g. a Grad-CAM at one layer). For each
    step of :func:`camtutor.metrics.randomized_models` ``(model, mode=mode, seed=seed)``, the maps of the
    randomised model are compared with the trained model's by :func:`camtutor.metrics.similarity`.

    Returns:
        ``(paths, curves, kept)``: the randomised layer paths in step order (top first); ``curves[key]``
        (steps,) the mean over images of each similarity key ("spearman", "spearman_abs", "ssim"; NaN
        Spearman values of constant maps are left out of the mean, all-NaN gives NaN; ``curves["constant"]`` is
        the share of images so left out, e.g. an all-zero Grad-CAM after its ReLU); and ``kept`` maps
        path -> (B, h, w) randomised maps for the paths in ``keep`` (plus ``"trained"``).
    """
    trained = np.asarray(explain(model, images, classes))
    kept = {"trained": trained}
    paths, rows = [], []
    for path, randomised in metrics.randomized_models(model, mode=mode, seed=seed):
        maps = np.asarray(explain(randomised, images, classes))
        scores = metrics.similarity(trained, maps)
        paths.append(path)
        row = {k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for k, v in scores.items()}
        row["constant"] = float(np.mean(~np.isfinite(scores["spearman"])))   # share of images left out
        rows.append(row)
        if path in keep:
            kept[path] = maps
    curves = {key: np.array([row[key] for row in rows]) for key in (rows[0] if rows else ())}
    return paths, curves, kept
