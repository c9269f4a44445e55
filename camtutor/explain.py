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
the same way. The user's model is left exactly as it was.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import weakref
from typing import Callable, Iterator

import keras
import numpy as np
import tensorflow as tf

from camtutor import maths
from camtutor.errors import CamTutorError, LayerError, TargetError
from camtutor.inputs import check_images
from camtutor.layers import GapHead, OutputInfo, check_model, default_layer, find_layer, gap_dense_head, output_info
from camtutor.targets import ClassIndex, class_score, resolve_class_indices

SCORES = ("logit", "probability")
_MAX_CUSTOM_TARGETS = 16


# --------------------------------------------------------------------------- tracing-time hooks
class _Capture:
    """Collects the tensors a layer produced (or received) while a model runs under tracing."""

    def __init__(self) -> None:
        self.tensors: list[tf.Tensor] = []

    @property
    def tensor(self) -> tf.Tensor:
        if len(self.tensors) != 1:
            raise LayerError(
                f"the layer ran {len(self.tensors)} times in one forward pass; camtutor needs a layer used "
                "exactly once (shared layers are ambiguous): choose another layer"
            )
        return self.tensors[0]


@contextlib.contextmanager
def _wrap_call(layer: keras.layers.Layer, wrapper: Callable) -> Iterator[None]:
    """Temporarily replace ``layer.call`` by ``wrapper(original_call)``; always restores it."""
    original = layer.call
    object.__setattr__(layer, "call", functools.wraps(original)(wrapper(original)))
    try:
        yield
    finally:
        object.__delattr__(layer, "call")


def _capture_output(layer: keras.layers.Layer, tape: tf.GradientTape | None, capture: _Capture):
    def wrapper(original):
        def call(*args, **kwargs):
            out = original(*args, **kwargs)
            if tape is not None:
                tape.watch(out)
            capture.tensors.append(out)
            return out

        return call

    return _wrap_call(layer, wrapper)


@contextlib.contextmanager
def _without_final_activation(info: OutputInfo) -> Iterator[None]:
    """Make the model return pre-activation scores while tracing (softmax/sigmoid bypassed)."""
    layer = info.layer
    if layer is None:
        yield
    elif isinstance(layer, (keras.layers.Softmax, keras.layers.Activation)):
        with _wrap_call(layer, lambda original: (lambda inputs, *a, **k: inputs)):
            yield
    else:
        saved = layer.activation
        object.__setattr__(layer, "activation", keras.activations.linear)
        try:
            yield
        finally:
            object.__setattr__(layer, "activation", saved)


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
    """Everything camtutor compiles for one model, cached by (method, layer, options)."""

    def __init__(self, model: keras.Model) -> None:
        check_model(model)
        self._model_ref = weakref.ref(model)
        self.info = output_info(model)
        self.input_shape = tuple(model.inputs[0].shape)
        self._functions: dict[tuple, Callable] = {}
        self._layers: dict[tuple, keras.layers.Layer] = {}
        self._gap_head: GapHead | CamTutorError | None = None

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
        """``find_layer``/``default_layer``, cached: the lookup walks every layer (about 1 ms on MobileNetV2)."""
        if name is not None and not isinstance(name, str):  # let find_layer explain the mistake
            return find_layer(self.model, name)
        key = (name, len(self.model.layers))  # a Sequential that gained or lost layers is looked up afresh
        if key not in self._layers:
            self._layers[key] = default_layer(self.model) if name is None else find_layer(self.model, name)
        return self._layers[key]

    # -- scores
    def scores_and_probabilities(self, raw: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Pre-activation model output -> (logits (B, C), probabilities (B, C))."""
        if self.info.binary:
            logits = tf.concat([-raw, raw], axis=-1)
            p = tf.sigmoid(raw)
            return logits, tf.concat([1.0 - p, p], axis=-1)
        if self.info.activation == "sigmoid":
            return raw, tf.sigmoid(raw)
        return raw, tf.nn.softmax(raw, axis=-1)

    def _forward(self, images: tf.Tensor, layer: keras.layers.Layer, tape: tf.GradientTape | None):
        capture = _Capture()
        with _capture_output(layer, tape, capture), _without_final_activation(self.info):
            raw = self.model(images, training=False)
        logits, probabilities = self.scores_and_probabilities(raw)
        return capture.tensor, logits, probabilities

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
        """images, [classes] -> (A, dy/dA, probabilities), compiled once per (layer, score, target)."""

        def build() -> Callable:
            def activations_and_gradients(images, class_indices=None):
                with tf.GradientTape(watch_accessed_variables=False) as tape:
                    activations, logits, probabilities = self._forward(images, layer, tape)
                    scores = logits if score == "logit" else probabilities
                    y = target(scores) if target is not None else class_score(scores, class_indices)
                    if target is not None:
                        tf.debugging.assert_equal(
                            tf.shape(y), tf.shape(scores)[:1], message="a target function must return one score per image (B,)"
                        )
                gradients = tape.gradient(y, activations)
                return activations, gradients, probabilities

            return _compile(activations_and_gradients, self._signature(target is None))

        return self._cached(("gradients", layer.name, score, target), build)

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

        return self._cached(("grad_cam", layer.name, score, weighting, relu, target), build)

    def grad_cam_all_classes_function(self, layer, score: str, weighting: str, relu: bool) -> Callable:
        """images -> (maps (B, C, h, w) for every class, probabilities (B, C)), one forward pass."""
        rule = maths.WEIGHTINGS[weighting]

        def build() -> Callable:
            def all_class_maps(images):
                with tf.GradientTape(watch_accessed_variables=False) as tape:
                    activations, logits, probabilities = self._forward(images, layer, tape)
                    scores = logits if score == "logit" else probabilities
                jacobian = tape.batch_jacobian(scores, activations)  # (B, C, h, w, K)
                stacked = activations[:, None]  # (B, 1, h, w, K)
                maps = maths.weighted_channel_sum(stacked, rule(stacked, jacobian))
                return (tf.nn.relu(maps) if relu else maps), probabilities

            return _compile(all_class_maps, self._signature(False))

        return self._cached(("grad_cam_all", layer.name, score, weighting, relu), build)

    def cam_function(self) -> Callable:
        """images -> (A (B, h, w, K), probabilities (B, C)) at the GAP input."""
        head = self.gap_head()

        def build() -> Callable:
            def feature_maps(images):
                activations, _, probabilities = self._forward(images, head.feature_layer, None)
                return activations, probabilities

            return _compile(feature_maps, self._signature(False))

        return self._cached(("cam",), build)


_EXPLAINERS: "weakref.WeakKeyDictionary[keras.Model, _Explainer]" = weakref.WeakKeyDictionary()


def explainer(model: keras.Model) -> _Explainer:
    """The cached compiled functions for ``model`` (created on first use)."""
    check_model(model)
    if model not in _EXPLAINERS:
        _EXPLAINERS[model] = _Explainer(model)
    return _EXPLAINERS[model]


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
    return ex, check_images(images, ex.input_shape)


def _targets(ex: _Explainer, images: np.ndarray, class_index: ClassIndex, class_names=None):
    """-> (target function or None, class indices (B,) int32 or None)."""
    if callable(class_index):
        return class_index, None
    return None, resolve_class_indices(class_index, len(images), ex.info.num_classes, class_names)


def _run(function: Callable, images: np.ndarray, classes: np.ndarray | None):
    args = (images,) if classes is None else (images, classes)
    return function(*args)


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
        layer: a name from :func:`camtutor.conv_layers`; default the last one.
        weighting: "mean" (Grad-CAM), "elementwise" (HiResCAM, gradient x
            activation), or another key of :data:`camtutor.maths.WEIGHTINGS`.
        relu: keep only positive evidence (True in the paper).
        score: "logit" differentiates the pre-softmax score (the model is not
            changed); "probability" the softmax output, as the original
            one-hot target did.
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
    maps, probabilities = ex.grad_cam_all_classes_function(_layer(model, layer), score, weighting, bool(relu))(images)
    return maps.numpy(), probabilities.numpy()


def _prepare_cam(model: keras.Model, images: object, layer: str | None) -> tuple[_Explainer, GapHead, np.ndarray]:
    """Check the GAP -> Dense head, the layer and the batch for CAM: -> (explainer, head, float32 images)."""
    ex = explainer(model)
    head = ex.gap_head()
    if layer is not None and find_layer(model, layer) is not head.feature_layer:
        raise LayerError(
            f"CAM is defined only at the feature map that feeds GlobalAveragePooling2D "
            f"({head.feature_layer.name!r}); for layer {layer!r} use camtutor.grad_cam(..., layer={layer!r})"
        )
    return ex, head, check_images(images, ex.input_shape)


def cam_all_classes(
    model: keras.Model, images: np.ndarray, *, layer: str | None = None, relu: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """CAM for every class: (maps (B, C, h, w), probabilities (B, C)), from one forward pass."""
    ex, head, images = _prepare_cam(model, images, layer)
    activations, probabilities = ex.cam_function()(images)
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
    activations, _ = ex.cam_function()(images)
    weights = head.kernel.T[classes][:, None, None, :]  # (B, 1, 1, K)
    maps = maths.weighted_channel_sum(activations.numpy(), weights)
    return np.maximum(maps, 0.0) if relu else maps


def class_probabilities(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """The model's class probabilities (B, C), computed the way camtutor reads the output (sigmoid -> 2 classes)."""
    ex = explainer(model)
    images = check_images(images, ex.input_shape)
    raw = model(images, training=False)
    if ex.info.activation == "linear":
        return tf.nn.softmax(raw, axis=-1).numpy()
    if ex.info.binary:
        p = np.asarray(raw)
        return np.concatenate([1.0 - p, p], axis=-1)
    return np.asarray(raw)


METHODS = ("cam", "gradcam", "hirescam")


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
