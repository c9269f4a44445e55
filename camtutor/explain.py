"""CAM and Grad-CAM for a Keras model: batched, compiled once per (model, layer), exact.

The pipeline is the same for every method:

1. run the model once and capture the feature maps ``A`` (B, h, w, K) of a layer;
2. for gradient methods, differentiate a target score with respect to ``A``;
3. turn (A, gradients) into weights with a rule from :data:`camtutor.maths.WEIGHTINGS`;
4. map = ``sum_k weights * A``, optionally followed by a ReLU.

Steps 1-4 run inside one ``tf.function`` that is traced once per
(model, layer, method options) and cached; the class indices are a tensor
argument, so changing class or batch never re-traces. Maps come back raw, at
the layer's resolution: use :func:`camtutor.upsample` and
:func:`camtutor.normalize` to draw them.

The feature maps are captured by wrapping the chosen layer's ``call`` during
tracing only, which works for Sequential, Functional and nested models alike.
For ``score="logit"`` the final softmax/sigmoid is bypassed during tracing in
the same way (:mod:`camtutor.surgery`: thread-safe, and the model is left
exactly as it was). The model's output is read in one place, :func:`read_scores`.
Mixed-precision models are explained in float32 (activations and gradients are cast).
"""

from __future__ import annotations

import inspect
import warnings
import weakref
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from camtutor import maths, surgery
from camtutor.errors import CamTutorError, LayerError, ModelError, TargetError
from camtutor.inputs import check_images
from camtutor.layers import (
    GapHead,
    OutputInfo,
    check_model,
    default_layer,
    find_layer,
    gap_dense_head,
    is_spatial,
    layer_name,
    output_info,
)
from camtutor.targets import ClassIndex, class_score, resolve_class_indices

SCORES = ("logit", "probability")
_MAX_CUSTOM_TARGETS = 16


def read_scores(info: OutputInfo, raw, pre_activation: bool) -> tuple[tf.Tensor | None, tf.Tensor]:
    """The one place that reads a model's output: raw output (B, U) -> (logits (B, C) or None, probabilities (B, C)).

    ``pre_activation`` says whether ``raw`` is the score before the final softmax/sigmoid (tracing with the
    activation bypassed, or a model without one) or the model's usual output. Computed in float32.

    * softmax: logits z, probabilities softmax(z) (or the output itself when it is already probabilities);
    * one unit, sigmoid or no activation (a binary logit): class 1 scores z, class 0 scores -z,
      probabilities (1 - sigmoid(z), sigmoid(z));
    * several sigmoid units (multi-label): logits z, probabilities sigmoid(z), not normalised;
    * no activation, several units: logits z, probabilities softmax(z).

    Logits are None when the output is already squashed and the pre-activation score cannot be reached.
    """
    raw = tf.cast(raw, tf.float32)
    squashed = info.activation in ("softmax", "sigmoid") and not pre_activation
    if info.binary:
        if squashed:
            return None, tf.concat([1.0 - raw, raw], axis=-1)
        p = tf.sigmoid(raw)
        return tf.concat([-raw, raw], axis=-1), tf.concat([1.0 - p, p], axis=-1)
    if squashed:
        return None, raw
    if info.activation == "sigmoid":
        return raw, tf.sigmoid(raw)
    return raw, tf.nn.softmax(raw, axis=-1)


def _graph_key(model: keras.Model) -> tuple:
    """What determines the traced graph: the input/output tensors and the layer objects (compared by identity)."""
    return (*model.inputs, *model.outputs, *model.layers)


# --------------------------------------------------------------------------- compiled per model
class _Traced:
    """A callable that ``tf.function`` tracks by identity rather than by code object.

    TensorFlow warns about "frequent retracing" when several ``tf.function``s
    share one Python code object, as closures built per layer do. Each of
    these is traced once per (model, layer, options), which is intended.
    """

    def __init__(self, function: Callable) -> None:
        self.function = function
        self.__signature__ = inspect.signature(function)

    def __call__(self, *args):
        return self.function(*args)


def _compile(function: Callable, input_signature: list[tf.TensorSpec]) -> Callable:
    return tf.function(_Traced(function), input_signature=input_signature)


class _Explainer:
    """Everything camtutor compiles for one model as it is now, cached by (method, layer object, options).

    :func:`explainer` replaces it when the model's graph changes (``Sequential.pop()``/``add()``), so
    class counts, layers and compiled functions always follow the model.
    """

    def __init__(self, model: keras.Model) -> None:
        check_model(model)
        self._model_ref = weakref.ref(model)
        self.graph_key = _graph_key(model)
        self.info = output_info(model)
        self.input_shape = tuple(model.inputs[0].shape)
        self._functions: dict[tuple, Callable] = {}
        self._layers: dict[str | None, keras.layers.Layer] = {}
        self._gap_head: GapHead | CamTutorError | None = None

    def is_current(self, model: keras.Model) -> bool:
        key = _graph_key(model)
        return len(key) == len(self.graph_key) and all(a is b for a, b in zip(key, self.graph_key))

    @property
    def model(self) -> keras.Model:
        model = self._model_ref()
        if model is None:  # pragma: no cover - the cache is keyed by the live model
            raise RuntimeError("the model was garbage-collected")
        return model

    def gap_head(self) -> GapHead:
        if self._gap_head is None:
            try:
                self._gap_head = gap_dense_head(self.model)
            except CamTutorError as exc:
                self._gap_head = exc
        if isinstance(self._gap_head, CamTutorError):
            raise type(self._gap_head)(str(self._gap_head))
        return self._gap_head

    def layer(self, name: str | None) -> keras.layers.Layer:
        """``find_layer``/``default_layer``, cached: the lookup walks every layer (about 1 ms on MobileNetV2).

        An explicit 1x1 layer is allowed but warned about: its "map" is one value per image.
        """
        if name is not None and not isinstance(name, str):  # let find_layer explain the mistake
            return find_layer(self.model, name)
        if name not in self._layers:
            self._layers[name] = default_layer(self.model) if name is None else find_layer(self.model, name)
        layer = self._layers[name]
        if name is not None and not is_spatial(layer):
            warnings.warn(
                f"layer {name!r} outputs a 1x1 feature map {tuple(layer.output.shape)}: the map is one value per "
                f"image, nothing to localise; choose an earlier layer (the default is "
                f"{layer_name(self.model, default_layer(self.model))!r})",
                UserWarning,
                stacklevel=4,
            )
        return layer

    # -- scores
    def scores_and_probabilities(self, raw: tf.Tensor, pre_activation: bool = True):
        """Model output -> (logits (B, C) or None, probabilities (B, C)); see :func:`read_scores`."""
        return read_scores(self.info, raw, pre_activation)

    @property
    def _bypass(self) -> bool:
        return self.info.layer is not None and self.info.bypass is not None

    def _forward(self, images: tf.Tensor, layer: keras.layers.Layer, tape: tf.GradientTape | None):
        """-> (activations A (B, h, w, K) as computed, logits or None, probabilities float32), while tracing."""
        with surgery.traced(layer, tape, self.info if self._bypass else None) as capture:
            raw = self.model(images, training=False)
            activations = capture.tensor
        logits, probabilities = read_scores(self.info, raw, pre_activation=self._bypass)
        return activations, logits, probabilities

    def _scores(self, logits, probabilities, score: str):
        if score == "probability":
            return probabilities
        if logits is None:  # pragma: no cover - _prepare refuses this first
            raise ModelError(self.no_logits_message())
        return logits

    def no_logits_message(self) -> str:
        return (
            f"model {self.model.name!r} outputs {self.info.activation} probabilities computed inside "
            f"{self.info.source or 'a layer camtutor cannot see into'}, so the pre-activation score (logit) cannot "
            "be reached; pass score='probability', or expose the logits (end the model with a Dense layer and a "
            "separate keras.layers.Activation/Softmax, or keras.ops.softmax, in a Functional model)"
        )

    def _signature(self, with_classes: bool) -> list[tf.TensorSpec]:
        spec = [tf.TensorSpec((None, *self.input_shape[1:]), tf.float32)]
        if with_classes:
            spec.append(tf.TensorSpec((None,), tf.int32))
        return spec

    def _cached(self, key: tuple, build: Callable[[], Callable]) -> Callable:
        if key not in self._functions:
            custom = [k for k in self._functions if callable(k[-1])]
            if len(custom) >= _MAX_CUSTOM_TARGETS:  # bound memory when users pass fresh lambdas
                del self._functions[custom[0]]
            self._functions[key] = build()
        return self._functions[key]

    # -- compiled functions
    def gradient_function(self, layer: keras.layers.Layer, score: str, target: Callable | None) -> Callable:
        """images, [classes] -> (A, dy/dA, probabilities), float32, compiled once per (layer, score, target)."""

        def build() -> Callable:
            def activations_and_gradients(images, class_indices=None):
                with tf.GradientTape(watch_accessed_variables=False) as tape:
                    activations, logits, probabilities = self._forward(images, layer, tape)
                    scores = self._scores(logits, probabilities, score)
                    if target is None:
                        y = class_score(scores, class_indices)
                    else:
                        y = surgery.target_scores(target, scores)
                        tf.debugging.assert_equal(
                            tf.shape(y), tf.shape(scores)[:1], message=surgery.TARGET_SHAPE_MESSAGE
                        )
                gradients = tape.gradient(y, activations)
                return tf.cast(activations, tf.float32), tf.cast(gradients, tf.float32), probabilities

            return _compile(activations_and_gradients, self._signature(target is None))

        return self._cached(("gradients", layer, score, target), build)

    def grad_cam_function(self, layer, score: str, weighting: str, relu: bool, target: Callable | None) -> Callable:
        """images, [classes] -> (maps (B, h, w), probabilities (B, C))."""
        rule = maths.WEIGHTINGS[weighting]

        def build() -> Callable:
            gradients_of = self.gradient_function(layer, score, target).python_function

            def grad_cam_maps(images, class_indices=None):
                activations, gradients, probabilities = gradients_of(images, class_indices)
                maps = maths.weighted_channel_sum(activations, rule(activations, gradients))
                return (tf.nn.relu(maps) if relu else maps), probabilities

            return _compile(grad_cam_maps, self._signature(target is None))

        return self._cached(("grad_cam", layer, score, weighting, relu, target), build)

    def grad_cam_all_classes_function(self, layer, score: str, weighting: str, relu: bool) -> Callable:
        """images -> (maps (B, C, h, w) for every class, probabilities (B, C)), one forward pass."""
        rule = maths.WEIGHTINGS[weighting]

        def build() -> Callable:
            def all_class_maps(images):
                with tf.GradientTape(watch_accessed_variables=False) as tape:
                    activations, logits, probabilities = self._forward(images, layer, tape)
                    scores = self._scores(logits, probabilities, score)
                jacobian = tf.cast(tape.batch_jacobian(scores, activations), tf.float32)  # (B, C, h, w, K)
                stacked = tf.cast(activations, tf.float32)[:, None]  # (B, 1, h, w, K)
                maps = maths.weighted_channel_sum(stacked, rule(stacked, jacobian))
                return (tf.nn.relu(maps) if relu else maps), probabilities

            return _compile(all_class_maps, self._signature(False))

        return self._cached(("grad_cam_all", layer, score, weighting, relu), build)

    def cam_function(self) -> Callable:
        """images -> (A (B, h, w, K) float32, probabilities (B, C)) at the GAP input."""
        head = self.gap_head()

        def build() -> Callable:
            def feature_maps(images):
                activations, _, probabilities = self._forward(images, head.feature_layer, None)
                return tf.cast(activations, tf.float32), probabilities

            return _compile(feature_maps, self._signature(False))

        return self._cached(("cam",), build)


_EXPLAINERS: "weakref.WeakKeyDictionary[keras.Model, _Explainer]" = weakref.WeakKeyDictionary()


def explainer(model: keras.Model) -> _Explainer:
    """The cached compiled functions for ``model`` as it is now (created on first use, and again whenever the
    model's layers or output change)."""
    check_model(model)
    ex = _EXPLAINERS.get(model)
    if ex is None or not ex.is_current(model):
        ex = _EXPLAINERS[model] = _Explainer(model)
    return ex


# --------------------------------------------------------------------------- public API
def _layer(model: keras.Model, layer: str | None) -> keras.layers.Layer:
    return explainer(model).layer(layer)


def _prepare(model: keras.Model, images: object, score: str, weighting: str = "mean") -> tuple[_Explainer, np.ndarray]:
    """Check the options and the batch before anything reaches TensorFlow: -> (explainer, float32 images)."""
    if score not in SCORES:
        raise CamTutorError(f"score must be one of {SCORES}, got {score!r}")
    if weighting not in maths.WEIGHTINGS:
        raise CamTutorError(f"weighting must be one of {sorted(maths.WEIGHTINGS)}, got {weighting!r}")
    ex = explainer(model)
    if score == "logit" and not ex.info.logits_reachable:
        raise ModelError(ex.no_logits_message())
    return ex, check_images(images, ex.input_shape, model=ex.model)


def _targets(ex: _Explainer, images: np.ndarray, class_index: ClassIndex, class_names=None):
    """-> (target function or None, class indices (B,) int32 or None)."""
    if callable(class_index):
        return class_index, None
    return None, resolve_class_indices(class_index, len(images), ex.info.num_classes, class_names)


def _run(function: Callable, images: np.ndarray, classes: np.ndarray | None):
    args = (images,) if classes is None else (images, classes)
    return surgery.run(function, *args)


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
    ex, images = _prepare(model, images, score)
    target_fn, classes = _targets(ex, images, target)
    activations, grads, _ = _run(ex.gradient_function(_layer(model, layer), score, target_fn), images, classes)
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
    """
    ex, images = _prepare(model, images, score, weighting)
    target_fn, classes = _targets(ex, images, class_index)
    function = ex.grad_cam_function(_layer(model, layer), score, weighting, bool(relu), target_fn)
    maps, _ = _run(function, images, classes)
    return maps.numpy()


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
    ex, images = _prepare(model, images, score, weighting)
    function = ex.grad_cam_all_classes_function(_layer(model, layer), score, weighting, bool(relu))
    maps, probabilities = _run(function, images, None)
    return maps.numpy(), probabilities.numpy()


def _prepare_cam(model: keras.Model, images: object, layer: str | None) -> tuple[_Explainer, GapHead, np.ndarray]:
    """Check the GAP -> Dense head, the layer and the batch for CAM: -> (explainer, head, float32 images)."""
    ex = explainer(model)
    head = ex.gap_head()
    if layer is not None and find_layer(model, layer) is not head.feature_layer:
        raise LayerError(
            f"CAM is defined only at the feature map that feeds GlobalAveragePooling2D "
            f"({layer_name(model, head.feature_layer)!r}); for layer {layer!r} use "
            f"camtutor.grad_cam(..., layer={layer!r})"
        )
    return ex, head, check_images(images, ex.input_shape, model=ex.model)


def cam_all_classes(
    model: keras.Model, images: np.ndarray, *, layer: str | None = None, relu: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """CAM for every class: (maps (B, C, h, w), probabilities (B, C)), from one forward pass."""
    ex, head, images = _prepare_cam(model, images, layer)
    activations, probabilities = _run(ex.cam_function(), images, None)
    maps = np.einsum("bhwk,kc->bchw", activations.numpy(), head.kernel)
    return (np.maximum(maps, 0.0) if relu else maps), probabilities.numpy()


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
    ex, head, images = _prepare_cam(model, images, layer)
    if callable(class_index):
        raise TargetError("CAM reads the Dense weights of one class per image; pass class indices, not a function")
    classes = resolve_class_indices(class_index, len(images), ex.info.num_classes)
    activations, _ = _run(ex.cam_function(), images, None)
    weights = head.kernel.T[classes][:, None, None, :]  # (B, 1, 1, K)
    maps = maths.weighted_channel_sum(activations.numpy(), weights)
    return np.maximum(maps, 0.0) if relu else maps


def class_probabilities(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """The model's class probabilities (B, C), computed the way camtutor reads the output (sigmoid -> 2 classes)."""
    ex = explainer(model)
    images = check_images(images, ex.input_shape, model=ex.model)
    return read_scores(ex.info, model(images, training=False), pre_activation=False)[1].numpy()


from camtutor.methods import METHODS  # noqa: E402  (the TF-free registry of names)


def heatmap(
    model: keras.Model,
    images: np.ndarray,
    class_index: ClassIndex,
    *,
    method: str = "gradcam",
    layer: str | None = None,
    relu: bool = True,
    score: str = "logit",
) -> np.ndarray:
    """One entry point for the three methods: "cam", "gradcam" (channel means), "hirescam" (elementwise): (B, h, w).

    ``method="cam"`` is :func:`cam` (with ``relu`` as given); the others are :func:`grad_cam` with
    ``weighting="mean"`` or ``"elementwise"``. Used by the ``camtutor`` command and the explorer.
    """
    if method == "cam":
        return cam(model, images, class_index, layer=layer, relu=relu)
    if method in ("gradcam", "hirescam"):
        weighting = "mean" if method == "gradcam" else "elementwise"
        return grad_cam(model, images, class_index, layer=layer, weighting=weighting, relu=relu, score=score)
    raise CamTutorError(f"method must be one of {METHODS}, got {method!r}")
