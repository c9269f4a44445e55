"""The CAM family for a Keras model, the public API: batched (numpy in, numpy out), compiled once, exact.

Every method is an entry of :data:`camtutor.methods.REGISTRY`, and :func:`heatmap` serves every one of them.
The pipeline:

1. run the model once and capture the feature maps ``A`` (B, h, w, K) of a layer;
2. for gradient methods only, differentiate a target score with respect to ``A`` (gradient-free
   methods build no tape);
3. turn that one pass into maps (:func:`camtutor.method_impl.maps_from_pass`): a weighting rule from
   :data:`camtutor.maths.WEIGHTINGS` and ``sum_k weights * A`` (Grad-CAM, HiResCAM, Grad-CAM++, XGrad-CAM,
   LayerCAM), a function of ``A`` (CAM, Eigen-CAM), or extra batched passes that score masked inputs or
   ablated activations (Score-CAM, Ablation-CAM);
4. optionally a ReLU.

Maps come back raw, at the layer's resolution: use :func:`camtutor.upsample` and :func:`camtutor.normalize`
to draw them. This module checks the arguments and picks the registry entry; the work is done by

* :mod:`camtutor.calls` -- the checks before a compiled call (options, batch, classes) and after (NaN/inf);
* :mod:`camtutor.drivers` -- one entry over a batch, one class per image or every class in bounded chunks;
* :mod:`camtutor.compiled` -- the compile cache: one ``tf.function`` per (model, layer, method options),
  the class indices a tensor argument, so changing class or batch never re-traces;
* :mod:`camtutor.scores` -- the one place that reads the model's output (logits, probabilities);
* :mod:`camtutor.smoothing` -- SmoothGrad's noisy copies, in bounded calls;
* :mod:`camtutor.all_layers` -- :func:`layer_pass`, every layer's feature maps and gradients in one call
  (the explorer's).

The names that lived here before the split (``read_scores``, ``SCORES``, ``explainer``, ``ALL_CLASS_VALUES``,
``SMOOTH_CHUNK_VALUES``, ``LAYER_PASS_VALUES``, ``LayerPass``, ``layer_pass``) are still importable from this
module; a test that patches a constant patches it in its own module.
"""

from __future__ import annotations

import keras
import numpy as np

from camtutor import calls, drivers, maths, method_impl, surgery
from camtutor import methods as _methods
from camtutor.all_layers import LAYER_PASS_VALUES, LayerPass, layer_pass
from camtutor.compiled import explainer
from camtutor.drivers import ALL_CLASS_VALUES
from camtutor.errors import CamTutorError, ModelError
from camtutor.inputs import check_images
from camtutor.methods import METHODS
from camtutor.scores import SCORES, read_scores
from camtutor.smoothing import SMOOTH_CHUNK_VALUES, smooth_spec, smoothed
from camtutor.targets import ClassIndex

__all__ = [
    "gradients", "grad_cam", "grad_cam_all_classes", "cam", "cam_all_classes", "class_probabilities",
    "guided_backprop", "guided_gradcam", "heatmap", "heatmap_all_classes",
    # defined in their own modules, importable from here too
    "METHODS", "SCORES", "read_scores", "explainer", "ALL_CLASS_VALUES", "SMOOTH_CHUNK_VALUES",
    "LAYER_PASS_VALUES", "LayerPass", "layer_pass",
]


def gradients(
    model: keras.Model,
    images: np.ndarray,
    target: ClassIndex,
    layer: str | None = None,
    *,
    score: str = "logit",
) -> tuple[np.ndarray, np.ndarray]:
    """Feature maps ``A`` and the gradients ``dy/dA`` of the target score: both (B, h, w, K) numpy.

    ``target`` is a class index (int), one per image, or a callable mapping
    the scores (B, C) to (B,). ``layer`` defaults to the last feature map.
    ``score`` is "logit" (pre-softmax) or "probability" (softmax output).
    """
    ex, images = calls.prepare(model, images, score)
    target_fn, classes = calls.targets(ex, images, target)
    function = ex.gradient_function(calls.layer_of(model, layer), score, target_fn)
    activations, grads, _ = calls.run_finite(function, images, classes)
    return activations.numpy(), grads.numpy()


def grad_cam(
    model: keras.Model,
    images: np.ndarray,
    class_index: ClassIndex,
    *,
    layer: str | None = None,
    weighting: str = "mean",
    relu: bool = True,
    score: str = "logit",
    smooth=None,
) -> np.ndarray:
    """Grad-CAM maps (B, h, w), raw (not normalised), at ``layer``'s resolution.

    ``L^c = ReLU(sum_k alpha_k^c A^k)`` with ``alpha_k^c`` the spatial mean of
    ``dy^c / dA^k`` (Selvaraju et al. 2017, Eqs. 1-2).

    Args:
        model: a Keras classifier, (B, H, W, C) -> (B, C).
        images: float32 batch (B, H, W, C), preprocessed as the model expects.
        class_index: an int for all images, a sequence with one class per
            image, a class name list entry, or a callable target (B, C) -> (B,).
        layer: a name from :func:`camtutor.conv_layers` (a bare name, or a path such as
            "backbone/conv" when nesting repeats a name); default: the last feature map with more
            than one position (h*w > 1) that the score depends on. A 1x1 layer warns.
        weighting: "mean" (Grad-CAM), "elementwise" (HiResCAM, gradient x
            activation), or another key of :data:`camtutor.maths.WEIGHTINGS`.
        relu: keep only positive evidence (True in the paper).
        score: "logit" differentiates the pre-softmax score (the model is not
            changed); "probability" the softmax output, as the original
            one-hot target did. A softmax hidden inside a custom layer or a
            subclassed model cannot be bypassed: "logit" then raises ModelError.
        smooth: SmoothGrad (Smilkov et al. 2017), ``(n, sigma)`` or ``(n, sigma, seed)``: the mean map over
            n copies with Gaussian noise of std ``sigma * (x_max - x_min)`` per image, seeded (default 0),
            computed in calls of at most :data:`camtutor.smoothing.SMOOTH_CHUNK_VALUES` input values (no
            re-tracing). ``sigma=0`` gives the plain map.
    """
    entry = _weighting_entry(weighting)
    return drivers.weighting_maps(entry, model, images, class_index, layer, bool(relu), score, smooth)


def _weighting_entry(weighting: str) -> _methods.Method:
    """The registry entry of a built-in weighting key ("mean" -> Grad-CAM...)."""
    if weighting not in maths.WEIGHTINGS:
        raise CamTutorError(f"weighting must be one of {sorted(maths.WEIGHTINGS)}, got {weighting!r}")
    return next(entry for entry in _methods.REGISTRY.values() if entry.weighting == weighting)


def grad_cam_all_classes(
    model: keras.Model,
    images: np.ndarray,
    *,
    layer: str | None = None,
    weighting: str = "mean",
    relu: bool = True,
    score: str = "logit",
) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM for every class in one pass: (maps (B, C, h, w), probabilities (B, C)).

    The same numbers as calling :func:`grad_cam` once per class, for about
    the cost of one call (one forward pass, a batched Jacobian of the scores).
    """
    return drivers.weighting_maps_all_classes(_weighting_entry(weighting), model, images, layer, bool(relu), score)


def cam_all_classes(
    model: keras.Model, images: np.ndarray, *, layer: str | None = None, relu: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """CAM for every class: (maps (B, C, h, w), probabilities (B, C)), from one forward pass."""
    entry = _methods.REGISTRY["cam"]
    maps, probabilities = drivers.class_maps(entry, model, images, None, layer, "logit", all_classes=True)
    return (np.maximum(maps, 0.0) if relu else maps), probabilities


def cam(
    model: keras.Model,
    images: np.ndarray,
    class_index: ClassIndex,
    *,
    layer: str | None = None,
    relu: bool = False,
) -> np.ndarray:
    """The class activation map of Zhou et al. (2016): (B, h, w), raw, at the GAP input's resolution.

    ``M_c(x, y) = sum_k w_k^c f_k(x, y)`` with ``w^c`` the Dense weights of
    class c after GlobalAveragePooling2D (Eq. 2). No gradients: only a
    forward pass. The paper has no ReLU, hence ``relu=False`` by default.
    Raises :class:`camtutor.ModelError` when the model has no GAP -> Dense head.
    """
    entry = _methods.REGISTRY["cam"]
    maps = drivers.class_maps(entry, model, images, class_index, layer, "logit", all_classes=False)[0][:, 0]
    return np.maximum(maps, 0.0) if relu else maps


def class_probabilities(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """The model's class probabilities (B, C), computed the way camtutor reads the output (sigmoid -> 2 classes)."""
    ex = explainer(model)
    images = check_images(images, ex.input_shape, model=ex.model)
    probabilities = read_scores(ex.info, surgery.run(lambda x: model(x, training=False), images), pre_activation=False)[1]
    rows = calls.nonfinite_rows(probabilities, len(images))
    if rows is not None:
        raise ModelError(
            f"the model's output is NaN or inf for image(s) {rows[:10]}: check its weights (a diverged training "
            "run?) and that the images are scaled as the model expects"
        )
    return probabilities.numpy()


def guided_backprop(
    model: keras.Model,
    images: np.ndarray,
    class_index: ClassIndex,
    *,
    score: str = "logit",
    smooth=None,
) -> np.ndarray:
    """Guided backpropagation (Springenberg et al. 2015): ``dy^c/dx`` (B, H, W, C) at input resolution, raw.

    Every ReLU (ReLU layers, relu/relu6 activations, ReLU6 clipped) passes the gradient back only where its
    input was in the linear range and the incoming gradient is positive:
    ``dL/dx = dL/dy * [x > 0] * [dL/dy > 0]``. The guided ReLUs exist only while camtutor traces its
    function: the model is untouched. ``smooth=(n, sigma)``: SmoothGrad, as in :func:`grad_cam`.
    """
    smooth = smooth_spec(smooth)
    ex, images = calls.prepare(model, images, score)
    target_fn, classes = calls.targets(ex, images, class_index)
    function = ex.guided_function(score, target_fn)
    return smoothed(smooth, images, classes, lambda x, c: calls.run_finite(function, x, c).numpy())


def guided_gradcam(
    model: keras.Model,
    images: np.ndarray,
    class_index: ClassIndex,
    *,
    layer: str | None = None,
    score: str = "logit",
    smooth=None,
) -> np.ndarray:
    """Guided Grad-CAM (Selvaraju et al. 2017, Sec. 3.1): (B, H, W, C), raw.

    ``guided_backprop(x) * Up(ReLU(sum_k alpha_k^c A^k))``: guided backpropagation (guided ReLUs everywhere)
    times the Grad-CAM map (ordinary gradients) bilinearly upsampled to the input
    (:func:`camtutor.method_impl.guided_gradcam_maps`). Both factors come from one compiled function with
    one forward pass (:meth:`camtutor.compiled._Explainer.guided_gradcam_function`).
    """
    smooth = smooth_spec(smooth)
    ex, images = calls.prepare(model, images, score)
    target_fn, classes = calls.targets(ex, images, class_index)
    function = ex.guided_gradcam_function(calls.layer_of(model, layer), score, target_fn)

    # SmoothGrad averages each factor over the noisy copies, then multiplies them
    maps, guided = smoothed(smooth, images, classes,
                            lambda x, c: tuple(t.numpy() for t in calls.run_finite(function, x, c)))
    return method_impl.guided_gradcam_maps(maps, guided)


def _channel_magnitude(x: np.ndarray) -> np.ndarray:
    """``max_c |x|``: (B, H, W, C) -> (B, H, W), as ``np.abs(x).max(-1)`` but one channel at a time (ten times
    faster than numpy's reduction over a last axis of 3)."""
    magnitude = np.abs(x[..., 0])
    for c in range(1, x.shape[-1]):
        np.maximum(magnitude, np.abs(x[..., c]), out=magnitude)
    return magnitude


def heatmap(
    model: keras.Model,
    images: np.ndarray,
    class_index: ClassIndex,
    *,
    method: str = "gradcam",
    layer: str | None = None,
    relu: bool = True,
    score: str = "logit",
    smooth=None,
) -> np.ndarray:
    """One entry point for every method of :data:`camtutor.methods.REGISTRY`: raw maps (B, h, w).

    ``method`` is a name from :data:`camtutor.METHODS` (the registry, including methods added with
    :func:`camtutor.methods.register_weighting`); each entry's summary gives its paper and formula, and
    :func:`camtutor.method_impl.maps_from_pass` turns its pass into maps. Maps are at ``layer``'s resolution, except "guided_gradcam":
    its (B, H, W, C) result at input resolution is reduced to ``max_c |.|`` (B, H, W), the saliency-map
    convention of Simonyan et al. 2014 (call :func:`guided_gradcam` for the colour channels).
    "cam" defaults to ``relu`` as given (the paper has none). ``score`` picks the logit or the probability
    for the gradient methods, Ablation-CAM and "scorecam" (Algorithm 1 of Wang et al. softmaxes the logit
    increase over channels; with ``score="probability"`` the weights stay within a factor e of each other
    and the map ignores the class); "scorecam_code" always reads the probability (the authors' code). ``smooth=(n, sigma)`` averages a gradient method over n
    noisy copies (SmoothGrad). Used by the ``camtutor`` command and the explorer.
    """
    entry = _methods.get(method)
    smooth = smooth_spec(smooth)
    if smooth is not None and not entry.gradients:
        raise CamTutorError(
            f"smooth=(n, sigma) (SmoothGrad) averages gradients over noisy copies; {entry.label} uses no gradients: "
            "drop smooth, or choose a gradient method such as 'gradcam'")
    if entry.input_gradient:
        return _channel_magnitude(guided_gradcam(model, images, class_index, layer=layer, score=score, smooth=smooth))
    if entry.gradients:
        return drivers.weighting_maps(entry, model, images, class_index, layer, bool(relu), score, smooth)
    maps, _ = drivers.class_maps(entry, model, images, class_index, layer, score, all_classes=False)
    maps = maps[:, 0]
    return np.maximum(maps, 0.0) if relu else maps


def heatmap_all_classes(
    model: keras.Model,
    images: np.ndarray,
    *,
    method: str = "gradcam",
    layer: str | None = None,
    relu: bool = False,
    score: str = "logit",
) -> tuple[np.ndarray, np.ndarray]:
    """Every class's raw map from one computation: (maps (B, C, h, w), probabilities (B, C)).

    Gradient methods use one batched Jacobian (:func:`grad_cam_all_classes`), CAM the Dense kernel, Score-CAM
    and Ablation-CAM read every class from the same masked/ablated passes, Eigen-CAM repeats its one map.
    "guided_gradcam" (input resolution) is not offered here. Used by the explorer.
    """
    entry = _methods.get(method)
    if entry.gradients and not entry.input_gradient:
        return drivers.weighting_maps_all_classes(entry, model, images, layer, bool(relu), score)
    maps, probabilities = drivers.class_maps(entry, model, images, None, layer, score, all_classes=True)
    return (np.maximum(maps, 0.0) if relu else maps), probabilities
