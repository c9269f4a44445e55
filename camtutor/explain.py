"""The CAM family for a Keras model: batched, compiled once per (model, layer, options), exact.

Every method is an entry of :data:`camtutor.methods.REGISTRY`, and :func:`heatmap` dispatches on it. The
pipeline:

1. run the model once and capture the feature maps ``A`` (B, h, w, K) of a layer;
2. for gradient methods only, differentiate a target score with respect to ``A`` (gradient-free
   methods build no tape);
3. turn that one pass into maps: a weighting rule from :data:`camtutor.maths.WEIGHTINGS` and
   ``sum_k weights * A`` (Grad-CAM, HiResCAM, Grad-CAM++, XGrad-CAM, LayerCAM), a function of ``A``
   (CAM, Eigen-CAM), or extra batched passes that score masked inputs or ablated activations
   (Score-CAM, Ablation-CAM; :mod:`camtutor.method_impl`);
4. optionally a ReLU.

For the one-pass methods steps 1-4 run inside one ``tf.function`` that is traced once per
(model, layer, method options) and cached; the class indices are a tensor
argument, so changing class or batch never re-traces. Guided Grad-CAM computes its two factors in one
such function (one forward pass); :func:`layer_pass` captures many layers at once and differentiates
every class at all of them (the explorer's one compiled call for every layer and one-pass method). Maps come back raw, at
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

import contextlib
import inspect
import warnings
import weakref
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from camtutor import feature_maps, maths, surgery
from camtutor import methods as _methods
from camtutor.methods import METHODS
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
    semantic_key,
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
    """What determines the traced graph: the input/output tensors, the layer objects and what each layer
    applies (its activation: :func:`camtutor.layers.semantic_key`), compared by identity."""
    return (*model.inputs, *model.outputs, *model.layers, *semantic_key(model))


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
        layouts = feature_maps.cache_key(key)  # a stated layout (camtutor.TokenLayer...) is traced in
        key = (*key[:-1], layouts, key[-1]) if layouts else key
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

    def grad_cam_function(self, layer, score: str, entry, relu: bool, target: Callable | None) -> Callable:
        """images, [classes] -> (maps (B, h, w), probabilities (B, C)) of a weighting ``entry``, compiled once per
        (layer, score, rule, relu, target): a rule registered again under the same name is a new function."""

        def build() -> Callable:
            gradients_of = self.gradient_function(layer, score, target).python_function

            def grad_cam_maps(images, class_indices=None):
                activations, gradients, probabilities = gradients_of(images, class_indices)
                forward = method_impl().ForwardPass(activations, class_indices, self.info.num_classes,
                                                    gradients=gradients[:, None])
                maps = method_impl().maps_from_pass(entry, forward)[:, 0]
                return (tf.nn.relu(maps) if relu else maps), probabilities

            return _compile(grad_cam_maps, self._signature(target is None))

        return self._cached(("grad_cam", layer, score, entry.weighting_rule(), relu, target), build)

    def grad_cam_all_classes_function(self, layer, score: str, entry, relu: bool) -> Callable:
        """images, class_ids (m,) -> (maps (B, m, h, w) for those classes, probabilities (B, C)) of a weighting
        ``entry``: one forward pass and a batched Jacobian of the m scores (B, m, h, w, K). The caller bounds m
        (:data:`ALL_CLASS_VALUES`)."""

        def build() -> Callable:
            def class_maps(images, class_ids):
                with tf.GradientTape(watch_accessed_variables=False) as tape:
                    activations, logits, probabilities = self._forward(images, layer, tape)
                    scores = tf.gather(self._scores(logits, probabilities, score), class_ids, axis=1)
                jacobian = tf.cast(tape.batch_jacobian(scores, activations), tf.float32)  # (B, m, h, w, K)
                forward = method_impl().ForwardPass(tf.cast(activations, tf.float32), None, self.info.num_classes,
                                                    gradients=jacobian)
                maps = method_impl().maps_from_pass(entry, forward)
                return (tf.nn.relu(maps) if relu else maps), probabilities

            return _compile(class_maps, self._signature(True))

        return self._cached(("grad_cam_all", layer, score, entry.weighting_rule(), relu), build)

    def layers_function(self, layers: tuple, score: str) -> Callable:
        """images -> (A per layer (B, h, w, K), Jacobian per layer (B, C, h, w, K), probabilities (B, C)), float32.

        One forward pass captures every layer of ``layers``; one backward pass per class (a persistent tape)
        gives ``dy^c/dA`` at all of them at once. Traced once per (layers, score): the explorer's one compiled
        function for every layer and every one-pass method.
        """

        def build() -> Callable:
            classes = self.info.num_classes

            def every_layer(images):
                with tf.GradientTape(watch_accessed_variables=False, persistent=True) as tape:
                    with contextlib.ExitStack() as stack:
                        bypass = self.info if self._bypass else None
                        captures = [stack.enter_context(surgery.traced(layer, tape, bypass if i == 0 else None))
                                    for i, layer in enumerate(layers)]
                        raw = self.model(images, training=False)
                        activations = [capture.tensor for capture in captures]
                    logits, probabilities = read_scores(self.info, raw, pre_activation=self._bypass)
                    scores = self._scores(logits, probabilities, score)
                    per_class = [tf.reduce_sum(scores[:, c]) for c in range(classes)]  # images are independent
                gradients = [tape.gradient(y, activations, unconnected_gradients=tf.UnconnectedGradients.ZERO)
                             for y in per_class]
                jacobians = tuple(tf.cast(tf.stack([g[i] for g in gradients], axis=1), tf.float32)
                                  for i in range(len(layers)))
                return tuple(tf.cast(a, tf.float32) for a in activations), jacobians, probabilities

            return _compile(every_layer, self._signature(False))

        return self._cached(("layers", layers, score), build)

    def forward_function(self, layer) -> Callable:
        """images -> (A (B, h, w, K) float32, probabilities (B, C)): one forward pass, no gradient tape."""

        def build() -> Callable:
            def feature_maps(images):
                activations, _, probabilities = self._forward(images, layer, None)
                return tf.cast(activations, tf.float32), probabilities

            return _compile(feature_maps, self._signature(False))

        return self._cached(("forward", layer), build)

    def _scores_of(self, score: str) -> Callable:
        """The uncompiled images -> scores (B, C): logits (``score="logit"``) or class probabilities."""

        def scores_of(images):
            if score == "probability":  # the model's own output, read as probabilities
                return read_scores(self.info, self.model(images, training=False), pre_activation=False)[1]
            with surgery.traced(None, None, self.info if self._bypass else None):
                raw = self.model(images, training=False)
            logits, probabilities = read_scores(self.info, raw, pre_activation=self._bypass)
            return self._scores(logits, probabilities, score)

        return scores_of

    def scores_function(self, score: str) -> Callable:
        """images -> scores (B, C) float32: logits (``score="logit"``) or class probabilities. No tape."""
        return self._cached(("scores", score), lambda: _compile(self._scores_of(score), self._signature(False)))

    def inputs_scores_function(self, make_inputs: Callable, score: str, indices: int) -> Callable:
        """(images (B, H, W, C), A (B, h, w, K), ``indices`` int32 arrays (n,)) -> scores (n, C), logits or
        probabilities, of the network on ``make_inputs(images, A, *arrays)``, built inside the graph (Score-CAM's
        masked images and black baseline). Compiled once per (make_inputs, score)."""
        images_spec = self._signature(False)[0]

        def build() -> Callable:
            scores_of = self._scores_of(score)

            def scores_of_made_inputs(images, activations, *arrays):
                return scores_of(make_inputs(images, activations, *arrays))

            spec = [images_spec, tf.TensorSpec((None, None, None, None), tf.float32),
                    *[tf.TensorSpec((None,), tf.int32)] * indices]
            traced = _Traced(scores_of_made_inputs)
            traced.__signature__ = inspect.Signature(
                [inspect.Parameter(f"x{i}", inspect.Parameter.POSITIONAL_ONLY) for i in range(len(spec))])
            return tf.function(traced, input_signature=spec)

        return self._cached(("inputs_scores", make_inputs, score, indices), build)

    def replaced_function(self, layer, score: str) -> Callable:
        """(images (B, H, W, C), rows (n,), A (n, h, w, K)) -> scores (n, C): the network run on ``images[rows]``
        with ``layer``'s output replaced by ``A`` (Ablation-CAM's zeroed channels). The layers that only feed
        ``layer`` are pruned from the graph (their output is unused, and so is the gather of the images); a path
        that bypasses ``layer`` (a skip connection) still sees the real image."""
        images_spec = self._signature(False)[0]
        shape = feature_maps.maps_shape(layer)  # (h, w, K) in any layout: channels first, tokens
        spec = [images_spec, tf.TensorSpec((None,), tf.int32), tf.TensorSpec((None, *shape), tf.float32)]

        def build() -> Callable:
            def ablated_scores(batch, rows, activations):
                images = tf.gather(batch, rows)
                dtype = getattr(layer, "compute_dtype", None) or layer.output.dtype  # an operation has none

                def replacement():
                    return tf.cast(activations, dtype)

                with surgery.traced(layer, None, self.info if self._bypass else None, replace=replacement) as capture:
                    raw = self.model(images, training=False)
                    capture.tensor  # noqa: B018 - refuses a layer that runs more than once
                logits, probabilities = read_scores(self.info, raw, pre_activation=self._bypass)
                return self._scores(logits, probabilities, score)

            return _compile(ablated_scores, spec)

        return self._cached(("replaced", layer, score), build)

    def guided_function(self, score: str, target: Callable | None) -> Callable:
        """images, [classes] -> dy/dx (B, H, W, C) with guided-ReLU gradients (only while tracing)."""

        def build() -> Callable:
            def guided_gradients(images, class_indices=None):
                with tf.GradientTape(watch_accessed_variables=False) as tape:
                    tape.watch(images)
                    with surgery.traced(None, None, self.info if self._bypass else None, guided=self.model):
                        raw = self.model(images, training=False)
                    logits, probabilities = read_scores(self.info, raw, pre_activation=self._bypass)
                    scores = self._scores(logits, probabilities, score)
                    y = class_score(scores, class_indices) if target is None else surgery.target_scores(target, scores)
                return tf.cast(tape.gradient(y, images), tf.float32)

            return _compile(guided_gradients, self._signature(target is None))

        return self._cached(("guided", score, target), build)

    def guided_gradcam_function(self, layer, score: str, target: Callable | None) -> Callable:
        """images, [classes] -> (Grad-CAM maps (B, h, w) after ReLU, guided backprop dy/dx (B, H, W, C)):
        both factors of Guided Grad-CAM from one forward pass, compiled once per (layer, score, target).

        The forward pass runs with guided ReLUs (their forward is the ReLU) and captures ``A``. Guided
        backpropagation is ``dy/dx`` of that pass. Grad-CAM needs the *plain* ``dy/dA``: when no guided
        ReLU ran after ``A`` (e.g. a GAP -> Dense head) it is the gradient of the same pass, and one backward
        pass gives both; otherwise only the part of the network above ``A`` is run again on ``A`` with its
        ordinary ReLUs (the layers before ``A`` are pruned) and differentiated to ``A``.
        """
        rule = maths.WEIGHTINGS["mean"]

        def build() -> Callable:
            bypass = self.info if self._bypass else None

            def target_score(raw, class_indices):
                logits, probabilities = read_scores(self.info, raw, pre_activation=self._bypass)
                scores = self._scores(logits, probabilities, score)
                return class_score(scores, class_indices) if target is None else surgery.target_scores(target, scores)

            def guided_and_gradcam(images, class_indices=None):
                with tf.GradientTape(watch_accessed_variables=False) as tape:
                    tape.watch(images)
                    with surgery.traced(layer, tape, bypass, guided=self.model) as capture:
                        raw = self.model(images, training=False)
                        activations = capture.tensor
                    y = target_score(raw, class_indices)
                if capture.guided_after:  # guided ReLUs above A: the head again, with ordinary ReLUs
                    with tf.GradientTape(watch_accessed_variables=False) as head_tape:
                        head_tape.watch(activations)
                        with surgery.traced(layer, None, bypass, replace=lambda: activations) as again:
                            raw_plain = self.model(images, training=False)
                            again.tensor  # noqa: B018 - refuses a layer that runs more than once
                        y_plain = target_score(raw_plain, class_indices)
                    guided = tape.gradient(y, images)
                    gradients = head_tape.gradient(y_plain, activations)
                else:
                    gradients, guided = tape.gradient(y, [activations, images])
                activations, gradients = tf.cast(activations, tf.float32), tf.cast(gradients, tf.float32)
                maps = tf.nn.relu(maths.weighted_channel_sum(activations, rule(activations, gradients)))
                return maps, tf.cast(guided, tf.float32)

            return _compile(guided_and_gradcam, self._signature(target is None))

        return self._cached(("guided_gradcam", layer, score, target), build)


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


def _prepare(model: keras.Model, images: object, score: str, weighting: str = "mean",
             entry: _methods.Method | None = None) -> tuple[_Explainer, np.ndarray]:
    """Check the options and the batch before anything reaches TensorFlow: -> (explainer, float32 images).

    The logits must be reachable only when the method reads them (``entry``'s declaration; without an
    entry, the gradient of ``score``)."""
    if score not in SCORES:
        raise CamTutorError(f"score must be one of {SCORES}, got {score!r}")
    if weighting not in maths.WEIGHTINGS:
        raise CamTutorError(f"weighting must be one of {sorted(maths.WEIGHTINGS)}, got {weighting!r}")
    ex = explainer(model)
    reads = score if entry is None else entry.score(score)
    if reads == "logit" and not ex.info.logits_reachable:
        note = ""
        if entry is not None and entry.class_blind_on_probability:
            readers = [e.name for e in _methods.REGISTRY.values() if e.reads != "score"]
            note = (f". {entry.label} with score='probability' is class-blind (see camtutor.maths.score_cam_weights); "
                    f"{readers} read probabilities or no score")
        raise ModelError(ex.no_logits_message() + note)
    return ex, check_images(images, ex.input_shape, model=ex.model)


def _targets(ex: _Explainer, images: np.ndarray, class_index: ClassIndex, class_names=None):
    """-> (target function or None, class indices (B,) int32 or None)."""
    if callable(class_index):
        return class_index, None
    return None, resolve_class_indices(class_index, len(images), ex.info.num_classes, class_names)


def _run(function: Callable, images: np.ndarray, classes: np.ndarray | None):
    args = (images,) if classes is None else (images, classes)
    return _finite(surgery.run(function, *args), len(images))


def _nonfinite_rows(outputs, batch: int) -> list[int] | None:
    """Indices of the images whose outputs hold NaN or inf ([] for a problem not tied to a row); None if all finite."""
    rows: set[int] = set()
    found = False
    for tensor in tf.nest.flatten(outputs):
        if not tensor.dtype.is_floating or bool(tf.reduce_all(tf.math.is_finite(tensor))):
            continue
        found = True
        values = np.asarray(tensor)
        if values.ndim and values.shape[0] == batch:
            rows |= set(np.flatnonzero(~np.isfinite(values.reshape(batch, -1)).all(axis=1)).tolist())
    return sorted(rows) if found else None


def _finite(outputs, batch: int):
    """``outputs`` unchanged when every float value is finite; a ModelError naming the images otherwise.

    NaN or inf in a map, a gradient or a score is never drawn or returned: it comes from the model (NaN
    weights, a diverged training run, an input far outside its range), never from the CAM arithmetic.
    """
    rows = _nonfinite_rows(outputs, batch)
    if rows is not None:
        where = f" for image(s) {rows[:10]}" if rows else ""
        raise ModelError(
            f"the model's scores, activations or gradients are NaN or inf{where}, so no map can be drawn; "
            "check the model's weights (a diverged training run?) and that the images are scaled as the model "
            "expects (camtutor.class_probabilities(model, images) shows which scores are not finite)"
        )
    return outputs


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
            computed in one call over the tiled batch (no re-tracing). ``sigma=0`` gives the plain map.
    """
    return _grad_cam(_weighting_entry(weighting), model, images, class_index, layer, bool(relu), score, smooth)


def _weighting_entry(weighting: str) -> _methods.Method:
    """The registry entry of a built-in weighting key ("mean" -> Grad-CAM...)."""
    if weighting not in maths.WEIGHTINGS:
        raise CamTutorError(f"weighting must be one of {sorted(maths.WEIGHTINGS)}, got {weighting!r}")
    return next(entry for entry in _methods.REGISTRY.values() if entry.weighting == weighting)


def _grad_cam(entry, model, images, class_index, layer, relu: bool, score: str, smooth) -> np.ndarray:
    """Maps (B, h, w) of a weighting ``entry``: one compiled forward and backward pass (SmoothGrad: over noisy copies)."""
    smooth = _smooth_spec(smooth)
    ex, images = _prepare(model, images, score, entry=entry)
    target_fn, classes = _targets(ex, images, class_index)
    function = ex.grad_cam_function(_layer(model, layer), score, entry, relu, target_fn)
    return _smoothed(smooth, images, classes, lambda x, c: _run(function, x, c)[0].numpy())


#: The largest all-class Jacobian one call computes, in float32 values (images x classes x h x w x K): 2**25
#: values are 128 MB. More classes run in several calls of one forward and backward pass each.
ALL_CLASS_VALUES = 2**25


def _grad_cam_all_classes(entry, model, images, layer, relu: bool, score: str) -> tuple[np.ndarray, np.ndarray]:
    """Every class's maps (B, C, h, w) of a weighting ``entry``, the classes in chunks whose Jacobian holds at most
    :data:`ALL_CLASS_VALUES` values (one chunk, one call, for the bundled models)."""
    ex, images = _prepare(model, images, score, entry=entry)
    target_layer = _layer(model, layer)
    function = ex.grad_cam_all_classes_function(target_layer, score, entry, relu)
    h, w, k = feature_maps.maps_shape(target_layer)
    cells = (h or images.shape[1]) * (w or images.shape[2]) * (k or 1)  # a free size is bounded by the input's
    per_call = max(1, ALL_CLASS_VALUES // max(1, len(images) * cells))
    maps, probabilities = [], None
    for start in range(0, ex.info.num_classes, per_call):
        ids = np.arange(start, min(start + per_call, ex.info.num_classes), dtype=np.int32)
        chunk, probabilities = _run(function, images, ids)
        maps.append(chunk.numpy())
    return np.concatenate(maps, axis=1), probabilities.numpy()


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
    return _grad_cam_all_classes(_weighting_entry(weighting), model, images, layer, bool(relu), score)


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
    maps, probabilities = _class_maps(_methods.REGISTRY["cam"], model, images, None, layer, "logit", all_classes=True)
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
    maps = _class_maps(_methods.REGISTRY["cam"], model, images, class_index, layer, "logit", all_classes=False)[0][:, 0]
    return np.maximum(maps, 0.0) if relu else maps


def class_probabilities(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """The model's class probabilities (B, C), computed the way camtutor reads the output (sigmoid -> 2 classes)."""
    ex = explainer(model)
    images = check_images(images, ex.input_shape, model=ex.model)
    probabilities = read_scores(ex.info, surgery.run(lambda x: model(x, training=False), images), pre_activation=False)[1]
    rows = _nonfinite_rows(probabilities, len(images))
    if rows is not None:
        raise ModelError(
            f"the model's output is NaN or inf for image(s) {rows[:10]}: check its weights (a diverged training "
            "run?) and that the images are scaled as the model expects"
        )
    return probabilities.numpy()


def _smooth_spec(smooth) -> tuple[int, float, int] | None:
    """``smooth=(n, sigma)`` or ``(n, sigma, seed)`` checked: -> (n, sigma, seed) or None."""
    if smooth is None:
        return None
    message = ("smooth must be (n, sigma) or (n, sigma, seed): n >= 1 noisy copies, noise sigma >= 0 as a fraction "
               f"of each image's value range (Smilkov et al. use 0.1-0.2), e.g. smooth=(16, 0.15); got {smooth!r}")
    if not isinstance(smooth, (tuple, list)) or len(smooth) not in (2, 3):
        raise CamTutorError(message)
    n, sigma, seed = (*smooth, 0) if len(smooth) == 2 else smooth
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 or isinstance(sigma, bool):
        raise CamTutorError(message)
    try:
        sigma = float(sigma)
    except (TypeError, ValueError):
        raise CamTutorError(message) from None
    if not np.isfinite(sigma) or sigma < 0 or not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise CamTutorError(message)
    return int(n), sigma, int(seed)


#: The most input values (images x H x W x C) of noisy copies that one SmoothGrad call runs: 2**22 float32 values
#: are 16 MB of input, 27 copies of a 224 x 224 x 3 image; a call always holds at least one copy of the batch.
SMOOTH_CHUNK_VALUES = 2**22


def _smoothed(smooth, images: np.ndarray, classes: np.ndarray | None, call: Callable) -> np.ndarray:
    """SmoothGrad (Smilkov et al. 2017): ``(1/n) sum_i M(x + N(0, sigma^2 (x_max - x_min)^2))``.

    The n noise fields are drawn once with numpy from ``seed`` for one image (n, 1, H, W, C) and added to every
    image of the batch, so an image's map depends only on the image, the class and the seed, never on its
    batch-mates. The noisy copies run in calls of at most :data:`SMOOTH_CHUNK_VALUES` input values (at least
    one copy of the batch per call; no re-tracing: the batch size is dynamic). ``call(images, classes) ->
    (N, ...)``, or a tuple of such arrays (each is averaged on its own).
    """
    if smooth is None:
        return call(images, classes)
    n, sigma, seed = smooth
    spread = images.max(axis=(1, 2, 3), keepdims=True) - images.min(axis=(1, 2, 3), keepdims=True)
    noise = np.random.default_rng(seed).standard_normal((n, 1, *images.shape[1:]), dtype=np.float32)
    draws_per_call = max(1, SMOOTH_CHUNK_VALUES // max(1, images.size))
    total = None
    for start in range(0, n, draws_per_call):
        fields = noise[start:start + draws_per_call]
        noisy = (images[None] + fields * (sigma * spread)[None]).reshape(-1, *images.shape[1:]).astype(np.float32)
        out = call(noisy, None if classes is None else np.tile(classes, len(fields)))
        parts = out if isinstance(out, tuple) else (out,)
        sums = [part.reshape(len(fields), len(images), *part.shape[1:]).sum(axis=0, dtype=np.float64)
                for part in parts]
        total = sums if total is None else [t + s for t, s in zip(total, sums)]
    means = tuple((t / n).astype(np.float32) for t in total)
    return means if isinstance(out, tuple) else means[0]


def _pick(ex: _Explainer, classes: np.ndarray | None, target: Callable | None, all_classes: bool) -> Callable:
    """scores (N, C), image of each row (N,) -> (N, T): the target score(s) for extra-pass methods."""

    def pick(scores, rows):
        if all_classes:
            return np.asarray(scores, np.float32)
        if target is not None:
            return np.asarray(surgery.target_scores(target, tf.constant(scores)))[:, None]
        scores = np.asarray(scores, np.float32)
        return scores[np.arange(len(rows)), classes[rows]][:, None]

    return pick


def _class_maps(entry, model, images, class_index, layer, score, all_classes: bool):
    """Raw maps (B, T, h, w) and probabilities (B, C) of a gradient-free entry (T = 1, or C classes): one forward
    pass, then :func:`camtutor.method_impl.maps_from_pass` (with :class:`~camtutor.method_impl.Passes` for a method
    that declares extra passes). The entry reads the score its declaration says."""
    if entry.gap_layer:
        ex, head, images = _prepare_cam(model, images, layer)
        target_layer = head.feature_layer
    else:
        ex, images = _prepare(model, images, score, entry=entry)
        head, target_layer = None, _layer(model, layer)
    if callable(class_index) and not all_classes and entry.class_specific and not entry.extra_passes:
        raise TargetError(f"{entry.label} reads one class per image (CAM: the Dense weights of that class); "
                          "pass class indices, not a function")
    score = entry.score(score) or "logit"
    target, classes = (None, None) if all_classes else _targets(ex, images, class_index)
    activations, probabilities = _run(ex.forward_function(target_layer), images, None)
    activations, probabilities = activations.numpy(), probabilities.numpy()
    passes = None
    if entry.extra_passes:
        images_t, activations_t = tf.constant(images), tf.constant(activations)  # converted once, gathered by row

        def score_inputs(make_inputs, *arrays):
            function = ex.inputs_scores_function(make_inputs, score, len(arrays))
            return surgery.run(function, images_t, activations_t, *(np.asarray(a, np.int32) for a in arrays)).numpy()

        passes = method_impl().Passes(
            images=images,
            activations=activations,
            pick=_pick(ex, classes, target, all_classes),
            score_inputs=score_inputs,
            score_replaced=lambda rows, a: surgery.run(ex.replaced_function(target_layer, score), images_t,
                                                       np.asarray(rows, np.int32), a).numpy(),
        )
    forward = method_impl().ForwardPass(activations, classes, ex.info.num_classes, head, passes=passes)
    return np.asarray(method_impl().maps_from_pass(entry, forward)), probabilities


def method_impl():
    """camtutor.method_impl, imported on first use."""
    from camtutor import method_impl as module

    return module


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
    smooth = _smooth_spec(smooth)
    ex, images = _prepare(model, images, score)
    target_fn, classes = _targets(ex, images, class_index)
    function = ex.guided_function(score, target_fn)
    return _smoothed(smooth, images, classes, lambda x, c: _run(function, x, c).numpy())


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
    one forward pass (:meth:`_Explainer.guided_gradcam_function`).
    """
    smooth = _smooth_spec(smooth)
    ex, images = _prepare(model, images, score)
    target_fn, classes = _targets(ex, images, class_index)
    function = ex.guided_gradcam_function(_layer(model, layer), score, target_fn)

    # SmoothGrad averages each factor over the noisy copies, then multiplies them
    maps, guided = _smoothed(smooth, images, classes, lambda x, c: tuple(t.numpy() for t in _run(function, x, c)))
    return method_impl().guided_gradcam_maps(maps, guided)


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
    smooth = _smooth_spec(smooth)
    if smooth is not None and not entry.gradients:
        raise CamTutorError(
            f"smooth=(n, sigma) (SmoothGrad) averages gradients over noisy copies; {entry.label} uses no gradients: "
            "drop smooth, or choose a gradient method such as 'gradcam'")
    if entry.input_gradient:
        return _channel_magnitude(guided_gradcam(model, images, class_index, layer=layer, score=score, smooth=smooth))
    if entry.gradients:
        return _grad_cam(entry, model, images, class_index, layer, bool(relu), score, smooth)
    maps, _ = _class_maps(entry, model, images, class_index, layer, score, all_classes=False)
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
        return _grad_cam_all_classes(entry, model, images, layer, bool(relu), score)
    maps, probabilities = _class_maps(entry, model, images, None, layer, score, all_classes=True)
    return (np.maximum(maps, 0.0) if relu else maps), probabilities


#: The largest all-layer Jacobian :func:`layer_pass` computes, in float32 values (images x classes x the sum
#: over layers of h*w*K): 2**25 values are 128 MB; 16 images of the bundled shapes model need 6.7 million.
LAYER_PASS_VALUES = 2**25


class LayerPass:
    """One forward pass and one backward pass per class at every layer of ``layers`` (:func:`layer_pass`).

    ``activations[name]`` (B, h, w, K) and ``jacobians[name]`` (B, C, h, w, K) are numpy float32,
    ``probabilities`` (B, C). :meth:`maps` turns them into any one-pass method's maps at any of the layers
    without running the model again.
    """

    def __init__(self, ex: _Explainer, activations: dict, jacobians: dict, probabilities: np.ndarray) -> None:
        self._explainer = ex
        self.activations, self.jacobians, self.probabilities = activations, jacobians, probabilities

    def maps(self, layer: str, method: str) -> tuple[np.ndarray, np.ndarray]:
        """Raw maps (B, C, h, w) of every class, without ReLU, and probabilities (B, C): the numbers of
        :func:`heatmap_all_classes` for a "weighting" or "forward" method (not Score-CAM, Ablation-CAM or
        Guided Grad-CAM: they need more passes)."""
        entry = _methods.get(method)
        if layer not in self.activations:
            raise LayerError(f"layer {layer!r} is not in this pass; it has {list(self.activations)}")
        head = None
        if entry.gap_layer:
            ex = self._explainer
            head = ex.gap_head()
            if ex.layer(layer) is not head.feature_layer:
                raise LayerError(f"{entry.label} is defined only at {layer_name(ex.model, head.feature_layer)!r}, "
                                 f"not at {layer!r}")
        forward = method_impl().ForwardPass(self.activations[layer], None, self._explainer.info.num_classes, head,
                                            gradients=self.jacobians[layer] if entry.gradients else None)
        maps = method_impl().maps_from_pass(entry, forward)
        return np.asarray(maps, np.float32), self.probabilities


def layer_pass(model: keras.Model, images: np.ndarray, layers, *, score: str = "logit") -> LayerPass:
    """Feature maps and every class's gradient at every one of ``layers`` (names) in one compiled call.

    One forward pass captures all the layers, then one backward pass per class gives ``dy^c/dA`` at all
    of them (:meth:`_Explainer.layers_function`, traced once per model, layers and score). The explorer
    uses it so that every layer of every one-pass method is ready after one computation.

    Raises:
        camtutor.CamTutorError: the Jacobians would exceed :data:`LAYER_PASS_VALUES` values (too many
            images, classes or positions: use :func:`heatmap_all_classes` one layer at a time), or a
            layer's output size is unknown; LayerError for a layer used more than once.
    """
    ex, images = _prepare(model, images, score)
    found = tuple(_layer(model, name) for name in layers)
    shapes = [tuple(layer.output.shape[1:]) for layer in found]
    if any(None in shape for shape in shapes):
        raise CamTutorError("a layer's output size is unknown (a model of any input size): use "
                            "heatmap_all_classes one layer at a time")
    values = len(images) * ex.info.num_classes * sum(int(np.prod(shape)) for shape in shapes)
    if values > LAYER_PASS_VALUES:
        raise CamTutorError(
            f"the Jacobians of {len(images)} images x {ex.info.num_classes} classes at {len(found)} layers would "
            f"hold {values:,} values (limit {LAYER_PASS_VALUES:,}): use heatmap_all_classes one layer at a time")
    activations, jacobians, probabilities = _run(ex.layers_function(found, score), images, None)
    names = list(layers)
    return LayerPass(ex, {n: a.numpy() for n, a in zip(names, activations)},
                     {n: j.numpy() for n, j in zip(names, jacobians)}, probabilities.numpy())
