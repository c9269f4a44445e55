"""How a :mod:`camtutor.methods` entry turns one forward pass into maps, and the methods' own code (imports TensorFlow).

:func:`maps_from_pass` is the one place that dispatches on a method's ``kind``; :func:`camtutor.heatmap`,
:func:`camtutor.explain.heatmap_all_classes`, :meth:`camtutor.explain.LayerPass.maps` (and through them the
explorer, the command, :mod:`camtutor.trust` and the benchmarks) all call it. The kinds:

* ``"weighting"``: ``rule(A, dy/dA) -> weights`` (:meth:`camtutor.methods.Method.weighting_rule`); the map is
  ``sum_k weights * A``. Runs on tensors too: the compiled gradient functions call it inside their graph.
* ``"forward"``: ``fn(forward: ForwardPass) -> maps (B, T, h, w)`` from the activations of one forward
  pass, no gradients (CAM, Eigen-CAM). ``T`` is 1 for one target per image, C for every class.
* ``"passes"``: ``fn(passes: Passes) -> weights (B, K, T)``: the method scores new inputs or altered
  activations (:class:`Passes`) in batched calls, never one call per channel per image (Score-CAM,
  Ablation-CAM, whose whole code is in this module). The map is ``sum_k weights * A``.
* ``"input"``: at input resolution (Guided Grad-CAM, :func:`guided_gradcam_maps`), computed by
  :func:`camtutor.explain.guided_gradcam`, not from a layer's pass.

Maps come back raw; :func:`camtutor.explain.heatmap` applies the ReLU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import tensorflow as tf

from camtutor import maths
from camtutor.errors import CamTutorError

#: Input values (rows x H x W x C) scored per call by Score-CAM: 2**20 floats is 4 MB of masked
#: inputs, 6 images at 224x224x3, 85 at 64x64x3 (the fastest of 2**19..2**23 on the shapes model).
SCORECAM_CHUNK_VALUES = 2**20
#: Activation values (rows x h x w x K) rescored per call by Ablation-CAM.
ABLATION_CHUNK_VALUES = 2**22


@dataclass
class Passes:
    """What an extra-pass method may call, after one forward pass.

    ``images`` (B, H, W, C) and ``activations`` (B, h, w, K) float32 numpy.

    * ``pick(scores (N, C), rows (N,))`` -> (N, T): the target score(s) of image ``rows[i]`` (T = 1 for one class
      or a target function per image, T = C for every class);
    * ``score_inputs(make_inputs, *index_arrays)`` -> scores (n, C) of the network on
      ``make_inputs(images, activations, *index_arrays)`` (n, H, W, C), a TensorFlow function compiled once
      per (model, function, score); the index arrays are int32 (n,). The scores are the logits or the
      probabilities, as the entry reads (:meth:`camtutor.methods.Method.score`);
    * ``score_replaced(rows (n,), A (n, h, w, K))`` -> scores (n, C) of the network on ``images[rows]`` with
      the layer's output replaced by ``A``.
    """

    images: np.ndarray
    activations: np.ndarray
    pick: Callable
    score_inputs: Callable
    score_replaced: Callable


@dataclass
class ForwardPass:
    """One forward pass: activations A (B, h, w, K) float32 (numpy, or tensors inside a compiled function);
    ``classes`` (B,) or None for every class; ``gradients`` dS/dA (B, T, h, w, K) for the gradient methods
    (T = 1, or C for every class), else None; ``head`` the GAP -> Dense head for CAM; ``passes`` the
    :class:`Passes` an extra-pass method calls, else None."""

    activations: object
    classes: np.ndarray | None
    num_classes: int
    head: object = None  # camtutor.layers.GapHead for CAM
    gradients: object = None
    passes: Passes | None = None


def maps_from_pass(entry, forward: ForwardPass):
    """The one dispatch on a method's kind: raw maps (B, T, h, w) of registry ``entry`` from one forward pass.

    Raises:
        camtutor.CamTutorError: the pass lacks what the entry needs (gradients for a weighting, extra passes
            for Score-CAM/Ablation-CAM), or the entry is at input resolution (Guided Grad-CAM).
    """
    if entry.kind == "weighting":
        if forward.gradients is None:  # pragma: no cover - every caller of a gradient method passes them
            raise CamTutorError(f"{entry.label} needs the gradients dS/dA of this pass")
        stacked = forward.activations[:, None]  # (B, 1, h, w, K) against (B, T, h, w, K)
        return maths.weighted_channel_sum(stacked, entry.weighting_rule()(stacked, forward.gradients))
    if entry.kind == "forward":
        return entry.implementation()(forward)
    if entry.kind == "passes":
        if forward.passes is None:
            raise CamTutorError(f"{entry.label} needs more than one pass: call heatmap_all_classes(..., "
                                f"method={entry.name!r})")
        weights = entry.implementation()(forward.passes)  # (B, K, T)
        return np.einsum("bhwk,bkt->bthw", forward.activations, weights)
    raise CamTutorError(f"{entry.label} is at input resolution, one class at a time: call heatmap(..., "
                        f"method={entry.name!r}) per class")


def _chunks(total: int, size: int):
    for start in range(0, total, size):
        yield np.arange(start, min(total, start + size))


def cam_maps(forward: ForwardPass) -> np.ndarray:
    """CAM (Zhou et al. 2016, Eq. 2): ``M_c(x, y) = sum_k w_k^c f_k(x, y)`` with the Dense weights after GAP.

    -> (B, T, h, w): the class of each image (T = 1), or every class (T = C).
    """
    kernel = forward.head.kernel  # (K, C)
    if forward.classes is None:
        return np.einsum("bhwk,kc->bchw", forward.activations, kernel)
    weights = maths.cam_weights(kernel, forward.classes)  # (B, 1, 1, K)
    return np.asarray(maths.weighted_channel_sum(forward.activations, weights))[:, None]


_eigen_projection = tf.function(maths.eigen_projection, input_signature=[tf.TensorSpec((None, None, None, None),
                                                                                      tf.float32)])


def eigen_cam_maps(forward: ForwardPass) -> np.ndarray:
    """Eigen-CAM (Muhammad & Yeasin 2020): the activations projected on their first principal component.

    Class-agnostic: the same map for every class (see :func:`camtutor.maths.eigen_projection` for the
    formula and the sign convention). -> (B, T, h, w), the map repeated for each of the T targets.
    """
    projection = _eigen_projection(tf.constant(forward.activations)).numpy()[:, None]
    targets = forward.num_classes if forward.classes is None else 1
    return np.repeat(projection, targets, axis=1)


_MASKED_SIGNATURE = [
    tf.TensorSpec((None, None, None, None), tf.float32),  # images (B, H, W, C)
    tf.TensorSpec((None, None, None, None), tf.float32),  # activations (B, h, w, K)
    tf.TensorSpec((None,), tf.int32),  # image of each row
    tf.TensorSpec((None,), tf.int32),  # channel of each row
]


@tf.function(input_signature=_MASKED_SIGNATURE)
def masked_inputs(images, activations, rows, channels):
    """Score-CAM's masked inputs for (image, channel) pairs: (n, H, W, C).

    Channel ``channels[i]`` of image ``rows[i]``, bilinearly upsampled to the input size and min-max
    normalised to [0, 1] (a constant channel gives an all-zero mask), multiplies that image.
    """
    size = tf.shape(images)[1:3]
    cells = tf.gather_nd(tf.transpose(activations, (0, 3, 1, 2)), tf.stack([rows, channels], axis=1))  # (n, h, w)
    upsampled = tf.image.resize(cells[..., None], size, method="bilinear")[..., 0]
    masks = maths.normalize(upsampled)
    return tf.gather(images, rows) * masks[..., None]


def black_image(images, activations):
    """Score-CAM's baseline X_b: one black (all-zero) image (1, H, W, C)."""
    return tf.zeros_like(images[:1])


def _masked_scores(passes: Passes) -> np.ndarray:
    """The target score(s) of every image masked by each of its channels: (B, K, T), in bounded calls."""
    images, activations = passes.images, passes.activations
    batch, channels = len(images), activations.shape[-1]
    rows_per_call = max(1, SCORECAM_CHUNK_VALUES // int(np.prod(images.shape[1:])))
    scores = []
    for flat in _chunks(batch * channels, rows_per_call):
        rows, ks = (flat // channels).astype(np.int32), (flat % channels).astype(np.int32)
        scores.append(passes.pick(passes.score_inputs(masked_inputs, rows, ks), rows))
    return np.concatenate(scores).reshape(batch, channels, -1)


def score_cam_weights(passes: Passes) -> np.ndarray:
    """Score-CAM (Wang et al. 2020, Algorithm 1 and Eqs. 3-6): channel weights (B, K, T), no gradients.

    For each image X and channel k, ``H_k = s(Up(A_k))`` (upsampled to the input, min-max normalised),
    ``C(A_k) = S_c(X * H_k) - S_c(X_b)`` with the baseline ``X_b`` a black (zero) image, and
    ``alpha_k = softmax_k(C(A_k))``. The map is ``ReLU(sum_k alpha_k A_k)``. All B x K masked inputs are
    scored in batched calls of a bounded size.

    The paper's readings of ``S_c``, side by side (:func:`camtutor.maths.score_cam_weights` says why it matters):

    * the logit, as in Algorithm 1 (``score="logit"``, the default): class-discriminative. On notebook 11's
      two-object shapes, of the peaks on an object, 0.77 are on the asked class's object (0.71-0.77 with a
      black, mean-colour or blurred fill);
    * the softmax probability, as Sec. 3.2 speaks of "post-softmax" scores (``score="probability"``): for one
      image and class the increases span at most 1, so the weights stay within a factor e of each other and
      the map is close to the channel mean for every class: class-blind (0.50; 0.55-0.58 with other fills);
    * the authors' code: the probability itself, no baseline, no channel softmax
      (:func:`score_cam_code_weights`, method ``"scorecam_code"``; 0.69, 0.65-0.73 with other fills).
    """
    batch = len(passes.images)
    baseline = passes.score_inputs(black_image)
    base = passes.pick(np.repeat(np.asarray(baseline), batch, axis=0), np.arange(batch))  # (B, T)
    increase = _masked_scores(passes)  # (B, K, T)
    return np.asarray(maths.score_cam_weights(np.moveaxis(increase, 1, -1), base)).transpose(0, 2, 1)


def score_cam_code_weights(passes: Passes) -> np.ndarray:
    """Score-CAM as the authors' code computes it: channel weights (B, K, T) = ``p_c(X * H_k)``.

    The class probability of the image masked by its upsampled, min-max normalised channel k, used as the
    weight itself: no baseline is subtracted and there is no softmax over the channels
    (github.com/haofanwang/Score-CAM; Wang et al. 2020 give Algorithm 1 instead, see
    :func:`score_cam_weights`). Weights lie in [0, 1] and need not sum to 1. Reads probabilities only, so it
    runs on models whose softmax is hidden. The map is ``ReLU(sum_k w_k A_k)``.
    """
    return _masked_scores(passes)


def ablation_cam_weights(passes: Passes) -> np.ndarray:
    """Ablation-CAM (Desai & Ramaswamy 2020, Eq. 3): channel weights (B, K, T), no gradients.

    ``w_k = (y_c - y_c^k) / |y_c|``: ``y_c^k`` is the class score when channel k of the layer is set to 0
    and the network is run again (the layers that only feed the layer are pruned from the compiled graph; a
    skip connection around the layer still sees the real image). The map is
    ``ReLU(sum_k w_k A_k)``. All B x K ablations run in batched calls of a bounded size. Dividing by ``|y_c|``
    (the paper's ``y_c`` for a positive score) keeps a drop positive on a negative logit
    (:func:`camtutor.maths.ablation_cam_weights`).
    """
    activations = passes.activations
    batch, channels = len(activations), activations.shape[-1]
    original = passes.pick(passes.score_replaced(np.arange(batch), activations), np.arange(batch))  # (B, T)
    rows_per_call = max(1, ABLATION_CHUNK_VALUES // int(np.prod(activations.shape[1:])))
    ablated = []
    for flat in _chunks(batch * channels, rows_per_call):
        rows, ks = flat // channels, flat % channels
        zeroed = activations[rows]  # a copy: channel ks[i] of row i set to 0
        zeroed[np.arange(len(flat)), ..., ks] = 0.0
        ablated.append(passes.pick(passes.score_replaced(rows, zeroed), rows))
    ablated_scores = np.concatenate(ablated).reshape(batch, channels, -1)  # (B, K, T)
    weights = maths.ablation_cam_weights(original, np.moveaxis(ablated_scores, 1, -1))  # (B, T, K)
    return np.asarray(weights).transpose(0, 2, 1)


def guided_gradcam_maps(gradcam_maps: np.ndarray, guided: np.ndarray) -> np.ndarray:
    """Guided Grad-CAM (Selvaraju et al. 2017, Sec. 3.1): guided backpropagation (B, H, W, C) times the
    Grad-CAM map (B, h, w) bilinearly upsampled to the input: -> (B, H, W, C)."""
    size = guided.shape[1:3]
    return guided * np.asarray(maths.upsample(np.asarray(gradcam_maps, np.float32), size))[..., None]
