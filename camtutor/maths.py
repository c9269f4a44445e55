"""The CAM math as pure functions over arrays and tensors.

Nothing here knows about models or layers: every function takes feature maps
(activations) ``A`` of shape (B, H, W, K) and, for the gradient methods, the
gradients ``dy/dA`` of the same shape, and returns channel weights or maps.
They accept numpy arrays or TensorFlow tensors. Given numpy they return
numpy; given tensors (for example inside camtutor's compiled functions) they
return tensors.

Notation, shared with the notebooks and the papers:

* ``A[b, i, j, k]``: activation of channel k at cell (i, j) for image b.
* ``Z = H * W``: the number of cells, the GAP area.
* ``y^c``: the score of class c (a logit or a probability).

A CAM method is a *weighting rule* ``rule(activations, gradients) -> weights``
whose result broadcasts against ``A``: (B, 1, 1, K) for one weight per
channel (Grad-CAM) or (B, H, W, K) for one weight per cell (HiResCAM,
LayerCAM). The map is always ``sum_k weights * A`` (:func:`weighted_channel_sum`).
Adding a gradient method means adding one rule to :data:`WEIGHTINGS` (and an entry to
:data:`camtutor.methods.REGISTRY` to name it). The gradient-free formulas (Eigen-CAM's projection,
Score-CAM's and Ablation-CAM's channel weights) are here too, as pure functions of their inputs.
All rules use negative axes, so an extra leading class axis, (B, C, H, W, K),
works too.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence, Union

import numpy as np
import tensorflow as tf

from camtutor import mapops

ArrayLike = Union[np.ndarray, tf.Tensor, Sequence[float]]
WeightingRule = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]

_SPATIAL_AXES = (-3, -2)
_CHANNEL_AXIS = -1


def _numpy_in_numpy_out(func: Callable) -> Callable:
    """Return numpy when no argument is a tf.Tensor, else keep tensors (for graphs)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        result = func(*args, **kwargs)
        if any(isinstance(a, (tf.Tensor, tf.Variable)) for a in args):
            return result
        return result.numpy() if hasattr(result, "numpy") else result

    return wrapper


def _as_float_tensor(x: ArrayLike) -> tf.Tensor:
    return tf.convert_to_tensor(x, dtype=tf.float32) if not isinstance(x, tf.Tensor) else tf.cast(x, tf.float32)


@_numpy_in_numpy_out
def global_average_pooling(feature_maps: ArrayLike) -> tf.Tensor:
    """Global average pooling: (B, H, W, K) -> (B, K).

    ``F_k = (1 / Z) * sum_{i,j} A[i, j, k]`` (Zhou et al. 2016, Sec. 2), the
    same numbers as ``keras.layers.GlobalAveragePooling2D``.
    """
    return tf.reduce_mean(_as_float_tensor(feature_maps), axis=_SPATIAL_AXES)


@_numpy_in_numpy_out
def relu(maps: ArrayLike) -> tf.Tensor:
    """ReLU, ``max(0, m)``: keeps only the evidence *for* the class (Grad-CAM Eq. 2)."""
    return tf.nn.relu(_as_float_tensor(maps))


@_numpy_in_numpy_out
def weighted_channel_sum(activations: ArrayLike, weights: ArrayLike) -> tf.Tensor:
    """The map ``M[b, i, j] = sum_k weights[b, ., ., k] * A[b, i, j, k]``: (B, H, W, K) -> (B, H, W).

    With the CAM weights this is the class activation map ``M_c`` of Zhou et
    al. (2016, Eq. 2 without the softmax); with Grad-CAM's channel means it is
    Selvaraju et al. (2017) Eq. 2 before the ReLU.
    """
    return tf.reduce_sum(_as_float_tensor(weights) * _as_float_tensor(activations), axis=_CHANNEL_AXIS)


# --------------------------------------------------------------------------- weighting rules
@_numpy_in_numpy_out
def mean_gradient_weights(activations: ArrayLike, gradients: ArrayLike) -> tf.Tensor:
    """Grad-CAM's channel weights, the spatial mean of the gradients: -> (B, 1, 1, K).

    ``alpha_k^c = (1 / Z) * sum_{i,j} dy^c / dA[i, j, k]`` (Selvaraju et al. 2017, Eq. 1).
    """
    del activations
    return tf.reduce_mean(_as_float_tensor(gradients), axis=_SPATIAL_AXES, keepdims=True)


@_numpy_in_numpy_out
def elementwise_weights(activations: ArrayLike, gradients: ArrayLike) -> tf.Tensor:
    """HiResCAM: every cell is weighted by its own gradient: -> (B, H, W, K).

    ``M = sum_k dy/dA_k * A_k`` (Draelos & Carin 2020, Eq. 4), the variant that
    the original keras-grad-cam post preferred.
    """
    del activations
    return _as_float_tensor(gradients)


@_numpy_in_numpy_out
def positive_gradient_weights(activations: ArrayLike, gradients: ArrayLike) -> tf.Tensor:
    """LayerCAM: every cell weighted by its positive gradient, ``relu(dy/dA)``: -> (B, H, W, K).

    Jiang et al. (2021), Eq. 5.
    """
    del activations
    return tf.nn.relu(_as_float_tensor(gradients))


@_numpy_in_numpy_out
def gradcam_plus_plus_weights(activations: ArrayLike, gradients: ArrayLike) -> tf.Tensor:
    """Grad-CAM++ channel weights (Chattopadhay et al. 2018, Eq. 19, the exp-score closed form): -> (B, 1, 1, K).

    The paper differentiates ``Y^c = exp(S^c)``; then all higher derivatives are powers of ``g = dS^c/dA``
    and the closed form is, per cell (i, j) and channel k::

        alpha_ij^k = g_ij^2 / (2 g_ij^2 + sum_ab A_ab^k g_ij^3)      (0 where the denominator is 0)
        w_k        = sum_ij alpha_ij^k relu(g_ij)

    ``g`` here is the gradient of the score S (the logit by default), not of exp(S): the paper's
    ``relu(dY/dA) = exp(S) relu(g)`` only multiplies every weight of an image by the same positive
    ``exp(S)``, which :func:`normalize` removes, and dropping it avoids overflow for large logits.
    """
    a, g = _as_float_tensor(activations), _as_float_tensor(gradients)
    g2, g3 = g**2, g**3
    denominator = 2.0 * g2 + tf.reduce_sum(a, axis=_SPATIAL_AXES, keepdims=True) * g3
    alpha = tf.math.divide_no_nan(g2, denominator)
    return tf.reduce_sum(alpha * tf.nn.relu(g), axis=_SPATIAL_AXES, keepdims=True)


@_numpy_in_numpy_out
def xgrad_cam_weights(activations: ArrayLike, gradients: ArrayLike) -> tf.Tensor:
    """XGrad-CAM channel weights (Fu et al. 2020, Eq. 9): -> (B, 1, 1, K).

    ``w_k = sum_ij (A_ij^k / sum_ab A_ab^k) * dS^c/dA_ij^k``: the gradients averaged with the
    activations as weights (0 for a channel whose activations sum to 0).
    """
    a, g = _as_float_tensor(activations), _as_float_tensor(gradients)
    numerator = tf.reduce_sum(a * g, axis=_SPATIAL_AXES, keepdims=True)
    return tf.math.divide_no_nan(numerator, tf.reduce_sum(a, axis=_SPATIAL_AXES, keepdims=True))


#: Weighting rules by name. ``grad_cam(..., weighting=NAME)`` looks them up here.
WEIGHTINGS: dict[str, WeightingRule] = {
    "mean": mean_gradient_weights,
    "elementwise": elementwise_weights,
    "positive": positive_gradient_weights,
    "plusplus": gradcam_plus_plus_weights,
    "xgrad": xgrad_cam_weights,
}


@_numpy_in_numpy_out
def eigen_projection(activations: ArrayLike) -> tf.Tensor:
    """Eigen-CAM (Muhammad & Yeasin 2020, Eq. 3): (B, H, W, K) -> (B, H, W), class-agnostic.

    Per image, the (H*W, K) activations ``O = U S V^T`` (SVD, not centred, as in the paper) are
    projected on the first right singular vector: ``L = O v_1``, the first principal direction.
    A singular vector's sign is arbitrary, so it is fixed here: the map correlates positively with
    the activation sum ``sum_k A_k`` (if the correlation is 0 the sign makes ``sum L >= 0``).
    """
    a = _as_float_tensor(activations)
    shape = tf.shape(a)
    flat = tf.reshape(a, tf.stack([shape[0], shape[1] * shape[2], shape[3]]))  # (B, HW, K)
    _, _, v = tf.linalg.svd(flat, full_matrices=False)
    projection = tf.linalg.matvec(flat, v[:, :, 0])  # (B, HW)
    total = tf.reduce_sum(flat, axis=-1)
    centred = (projection - tf.reduce_mean(projection, -1, keepdims=True)) * (
        total - tf.reduce_mean(total, -1, keepdims=True))
    correlation = tf.reduce_sum(centred, axis=-1, keepdims=True)
    fallback = tf.reduce_sum(projection, axis=-1, keepdims=True)
    sign = tf.where(tf.equal(correlation, 0.0), tf.where(fallback < 0, -1.0, 1.0), tf.sign(correlation))
    return tf.reshape(projection * sign, shape[:3])


@_numpy_in_numpy_out
def score_cam_weights(scores: ArrayLike, baseline: ArrayLike) -> tf.Tensor:
    """Score-CAM channel weights (Wang et al. 2020, Algorithm 1, Eqs. 5-6): (B, K) scores -> (B, K) weights.

    ``scores[b, k]`` is the class score on image b masked by the upsampled, min-max normalised channel k;
    ``baseline[b]`` the score on the baseline image (black). The increase of confidence
    ``C(A_k) = scores - baseline`` is softmax-normalised over the channels: weights in (0, 1), summing to 1.

    Which score matters. Algorithm 1 feeds the *logit* increase to the softmax: logits differ by many units
    between channels, so the softmax can single out the channels that speak for the class. A probability
    increase lies in [-1, 1], so every weight is within a factor e of every other and the map stays close to
    the plain channel mean, whatever the class (the reading of Sec. 3.2, "post-softmax" scores; class-blind by
    construction). Leading axes broadcast: (B, T, K) scores with (B, T) baselines give (B, T, K).
    """
    increase = _as_float_tensor(scores) - _as_float_tensor(baseline)[..., None]
    return tf.nn.softmax(increase, axis=-1)


@_numpy_in_numpy_out
def ablation_cam_weights(score: ArrayLike, ablated: ArrayLike) -> tf.Tensor:
    """Ablation-CAM channel weights (Desai & Ramaswamy 2020, Eq. 3, divided by ``|y_c|``): (B,) and (B, K) -> (B, K).

    ``w_k = (y_c - y_c^k) / |y_c|`` with ``y_c^k`` the class score with channel k of the layer set to 0
    (0 where ``y_c`` is 0). For ``y_c > 0`` this is the paper's slope ``(y_c - y_c^k) / y_c`` exactly. The
    paper assumes a positive score; for a negative logit (an unlikely class) its formula flips every weight,
    and the map with it. Dividing by ``|y_c|`` keeps the meaning for every sign: a drop of the score when the
    channel is removed is a positive weight. (pytorch-grad-cam 1.5.7 divides by ``y_c`` and has the flip.)
    On a GAP -> Dense head the map is then Grad-CAM's times ``1 / |y_c|`` for every class.
    """
    y = _as_float_tensor(score)[..., None]
    return tf.math.divide_no_nan(y - _as_float_tensor(ablated), tf.abs(y))


def cam_weights(dense_kernel: ArrayLike, class_indices: ArrayLike) -> tf.Tensor:
    """CAM's channel weights, the Dense weights ``w_k^c`` of each image's class: -> (B, 1, 1, K).

    ``dense_kernel`` is the (K, C) kernel of the Dense layer after GAP,
    ``class_indices`` a (B,) int array.
    """
    kernel = _as_float_tensor(dense_kernel)
    per_image = tf.gather(tf.transpose(kernel), tf.cast(class_indices, tf.int32))  # (B, K)
    return per_image[:, None, None, :]


# --------------------------------------------------------------------------- map post-processing
# The numpy implementations are in camtutor.mapops (no TensorFlow); the functions here add the tensor path.
def _check_maps(maps: tf.Tensor | tf.Variable, what: str) -> None:
    """:func:`camtutor.mapops.check_shape` on a tensor's static shape (an unknown rank or dimension passes)."""
    mapops.check_shape(tuple(maps.shape) if maps.shape.rank is not None else None, what)


def normalize(maps: ArrayLike) -> tf.Tensor:
    """Scale each map to [0, 1] by its own min and max: (B, H, W) -> (B, H, W), or (H, W) -> (H, W).

    A constant map (max - min below 1e-7 of its magnitude, all zeros included)
    becomes all 0, never NaN, so an empty explanation looks empty instead of
    all red. numpy in -> float32 numpy out, computed by :func:`camtutor.mapops.normalize`
    (no TensorFlow); tensors in -> tensors out, the same float32 arithmetic in TensorFlow.

    Raises:
        camtutor.CamTutorError: an empty array, or fewer than 2 dimensions.
    """
    if not isinstance(maps, (tf.Tensor, tf.Variable)):
        return mapops.normalize(maps)
    _check_maps(maps, "normalize")
    m = _as_float_tensor(maps)
    low = tf.reduce_min(m, axis=(-2, -1), keepdims=True)
    high = tf.reduce_max(m, axis=(-2, -1), keepdims=True)
    spread = high - low
    magnitude = tf.maximum(tf.abs(low), tf.abs(high))
    informative = spread > 1e-7 * magnitude
    safe_spread = tf.where(informative, spread, tf.ones_like(spread))
    return tf.where(informative, (m - low) / safe_spread, tf.zeros_like(m))


def upsample(maps: ArrayLike, size: int | Sequence[int]) -> tf.Tensor:
    """Bilinear resize of maps to ``size`` = (H, W) or an int: (B, h, w) -> (B, H, W), or (h, w) -> (H, W).

    Values keep their range (no normalisation); apply :func:`normalize` before or after. numpy in ->
    float32 numpy out, computed by :func:`camtutor.mapops.upsample` (OpenCV, no TensorFlow); tensors in
    -> tensors out, ``tf.image.resize(..., method="bilinear")``: the same numbers to float32 rounding.

    Raises:
        camtutor.CamTutorError: a size that is not a positive int or (height, width) pair, or empty maps.
    """
    if not isinstance(maps, (tf.Tensor, tf.Variable)):
        return mapops.upsample(maps, size)
    hw = mapops.map_size(size)
    _check_maps(maps, "upsample")
    m = _as_float_tensor(maps)
    single = m.shape.rank == 2
    batch = m[None] if single else m
    resized = tf.image.resize(batch[..., None], hw, method="bilinear")[..., 0]
    return resized[0] if single else resized
