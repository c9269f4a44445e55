"""The compile cache: every ``tf.function`` camtutor traces for a model, built once per (model, layer, options).

:func:`explainer` returns the model's :class:`_Explainer`, created on first use and again whenever the model's
graph changes (``Sequential.pop()``/``add()``). Each of its ``*_function`` methods returns a compiled function,
traced once per (layer, score, options) and cached; the class indices are a tensor argument and the batch size
is dynamic, so changing class or batch never re-traces.

Every compiled function runs the model through one method, :meth:`_Explainer._pass`: the chosen layers' feature
maps ``A`` (B, h, w, K) are captured by wrapping their ``call`` during tracing only (Sequential, Functional and
nested models alike), the final softmax/sigmoid is bypassed for ``score="logit"`` (:mod:`camtutor.surgery`:
thread-safe, and the model is left exactly as it was), and the output is read by
:func:`camtutor.scores.read_scores`. Mixed-precision models are explained in float32 (activations and
gradients are cast).
"""

from __future__ import annotations

import contextlib
import inspect
import warnings
import weakref
from typing import Callable, NamedTuple

import keras
import tensorflow as tf

from camtutor import feature_maps, maths, method_impl, surgery
from camtutor.errors import CamTutorError, ModelError
from camtutor.layers import (
    GapHead,
    check_model,
    default_layer,
    find_layer,
    gap_dense_head,
    is_spatial,
    layer_name,
    output_info,
    semantic_key,
)
from camtutor.scores import no_logits_message, read_scores, select_score
from camtutor.targets import class_score

__all__ = ["explainer"]

_MAX_CUSTOM_TARGETS = 16


def _graph_key(model: keras.Model) -> tuple:
    """What determines the traced graph: the input/output tensors, the layer objects and what each layer
    applies (its activation: :func:`camtutor.layers.semantic_key`), compared by identity."""
    return (*model.inputs, *model.outputs, *model.layers, *semantic_key(model))


class _Traced:
    """A callable that ``tf.function`` tracks by identity rather than by code object.

    TensorFlow warns about "frequent retracing" when several ``tf.function``s
    share one Python code object, as closures built per layer do. Each of
    these is traced once per (model, layer, options), which is intended.
    """

    def __init__(self, function: Callable, positional: int | None = None) -> None:
        self.function = function
        self.__signature__ = inspect.signature(function) if positional is None else inspect.Signature(
            [inspect.Parameter(f"x{i}", inspect.Parameter.POSITIONAL_ONLY) for i in range(positional)])

    def __call__(self, *args):
        return self.function(*args)


def _compile(function: Callable, input_signature: list[tf.TensorSpec], positional: bool = False) -> Callable:
    """``tf.function`` of ``function`` with a fixed input signature (``positional``: ``function`` takes
    ``*args``, one positional parameter per spec)."""
    traced = _Traced(function, len(input_signature) if positional else None)
    return tf.function(traced, input_signature=input_signature)


class _Pass(NamedTuple):
    """One run of the model while tracing (:meth:`_Explainer._pass`)."""

    activations: list  # A (B, h, w, K) of each captured layer, as computed (not cast)
    scores: tf.Tensor | None  # (B, C) logits or probabilities, float32; None when no score was asked for
    probabilities: tf.Tensor  # (B, C) float32
    capture: surgery.Capture  # the first layer's capture (``guided_after``)


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
            raise ModelError("the model was garbage-collected; keep a reference to it while explaining it")
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

    def no_logits_message(self) -> str:
        return no_logits_message(self.model.name, self.info)

    @property
    def _bypass(self) -> bool:
        return self.info.layer is not None and self.info.bypass is not None

    # -- the one way every compiled function runs the model
    def _pass(self, images, score: str | None, layers: tuple = (), tape: tf.GradientTape | None = None, *,
              bypass: bool = True, **traced) -> _Pass:
        """Run the model once, while tracing: capture ``layers`` (watched by ``tape``), bypass the final
        activation (unless ``bypass`` is False: the model's own output), read the output
        (:func:`~camtutor.scores.read_scores`) and pick ``score``. ``traced`` (``guided=``, ``replace=``) goes
        to :func:`camtutor.surgery.traced` of the first layer."""
        bypass = bypass and self._bypass
        with contextlib.ExitStack() as stack:
            captures = [stack.enter_context(surgery.traced(layer, tape, self.info if bypass and i == 0 else None,
                                                           **(traced if i == 0 else {})))
                        for i, layer in enumerate(layers or (None,))]
            raw = self.model(images, training=False)
            activations = [capture.tensor for capture in captures] if layers else []  # refuses a layer run twice
        logits, probabilities = read_scores(self.info, raw, pre_activation=bypass)
        scores = None if score is None else select_score(logits, probabilities, score, self.model.name, self.info)
        return _Pass(activations, scores, probabilities, captures[0])

    @staticmethod
    def _target(scores: tf.Tensor, class_indices, target: Callable | None) -> tf.Tensor:
        """y (B,): each image's class score, or ``target(scores)`` checked to give one score per image."""
        if target is None:
            return class_score(scores, class_indices)
        y = surgery.target_scores(target, scores)
        tf.debugging.assert_equal(tf.shape(y), tf.shape(scores)[:1], message=surgery.TARGET_SHAPE_MESSAGE)
        return y

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
                    run = self._pass(images, score, (layer,), tape)
                    y = self._target(run.scores, class_indices, target)
                activations = run.activations[0]
                gradients = tape.gradient(y, activations)
                return tf.cast(activations, tf.float32), tf.cast(gradients, tf.float32), run.probabilities

            return _compile(activations_and_gradients, self._signature(target is None))

        return self._cached(("gradients", layer, score, target), build)

    def grad_cam_function(self, layer, score: str, entry, relu: bool, target: Callable | None) -> Callable:
        """images, [classes] -> (maps (B, h, w), probabilities (B, C)) of a weighting ``entry``, compiled once per
        (layer, score, rule, relu, target): a rule registered again under the same name is a new function."""

        def build() -> Callable:
            gradients_of = self.gradient_function(layer, score, target).python_function

            def grad_cam_maps(images, class_indices=None):
                activations, gradients, probabilities = gradients_of(images, class_indices)
                forward = method_impl.ForwardPass(activations, class_indices, self.info.num_classes,
                                                  gradients=gradients[:, None])
                maps = method_impl.maps_from_pass(entry, forward)[:, 0]
                return (tf.nn.relu(maps) if relu else maps), probabilities

            return _compile(grad_cam_maps, self._signature(target is None))

        return self._cached(("grad_cam", layer, score, entry.weighting_rule(), relu, target), build)

    def grad_cam_all_classes_function(self, layer, score: str, entry, relu: bool) -> Callable:
        """images, class_ids (m,) -> (maps (B, m, h, w) for those classes, probabilities (B, C)) of a weighting
        ``entry``: one forward pass and a batched Jacobian of the m scores (B, m, h, w, K). The caller bounds m
        (:data:`camtutor.drivers.ALL_CLASS_VALUES`)."""

        def build() -> Callable:
            def class_maps(images, class_ids):
                with tf.GradientTape(watch_accessed_variables=False) as tape:
                    run = self._pass(images, score, (layer,), tape)
                    scores = tf.gather(run.scores, class_ids, axis=1)
                activations = run.activations[0]
                jacobian = tf.cast(tape.batch_jacobian(scores, activations), tf.float32)  # (B, m, h, w, K)
                forward = method_impl.ForwardPass(tf.cast(activations, tf.float32), None, self.info.num_classes,
                                                  gradients=jacobian)
                maps = method_impl.maps_from_pass(entry, forward)
                return (tf.nn.relu(maps) if relu else maps), run.probabilities

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
                    run = self._pass(images, score, layers, tape)
                    per_class = [tf.reduce_sum(run.scores[:, c]) for c in range(classes)]  # images are independent
                gradients = [tape.gradient(y, run.activations, unconnected_gradients=tf.UnconnectedGradients.ZERO)
                             for y in per_class]
                jacobians = tuple(tf.cast(tf.stack([g[i] for g in gradients], axis=1), tf.float32)
                                  for i in range(len(layers)))
                return tuple(tf.cast(a, tf.float32) for a in run.activations), jacobians, run.probabilities

            return _compile(every_layer, self._signature(False))

        return self._cached(("layers", layers, score), build)

    def forward_function(self, layer) -> Callable:
        """images -> (A (B, h, w, K) float32, probabilities (B, C)): one forward pass, no gradient tape."""

        def build() -> Callable:
            def feature_maps_of(images):
                run = self._pass(images, None, (layer,))
                return tf.cast(run.activations[0], tf.float32), run.probabilities

            return _compile(feature_maps_of, self._signature(False))

        return self._cached(("forward", layer), build)

    def _scores_of(self, score: str) -> Callable:
        """The uncompiled images -> scores (B, C): logits (``score="logit"``) or class probabilities (the
        model's own output, read as probabilities: nothing bypassed)."""
        return lambda images: self._pass(images, score, bypass=score != "probability").scores

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
            return _compile(scores_of_made_inputs, spec, positional=True)

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
                dtype = getattr(layer, "compute_dtype", None) or layer.output.dtype  # an operation has none
                return self._pass(tf.gather(batch, rows), score, (layer,),
                                  replace=lambda: tf.cast(activations, dtype)).scores

            return _compile(ablated_scores, spec)

        return self._cached(("replaced", layer, score), build)

    def guided_function(self, score: str, target: Callable | None) -> Callable:
        """images, [classes] -> dy/dx (B, H, W, C) with guided-ReLU gradients (only while tracing)."""

        def build() -> Callable:
            def guided_gradients(images, class_indices=None):
                with tf.GradientTape(watch_accessed_variables=False) as tape:
                    tape.watch(images)
                    y = self._target(self._pass(images, score, guided=self.model).scores, class_indices, target)
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
            def guided_and_gradcam(images, class_indices=None):
                with tf.GradientTape(watch_accessed_variables=False) as tape:
                    tape.watch(images)
                    run = self._pass(images, score, (layer,), tape, guided=self.model)
                    y = self._target(run.scores, class_indices, target)
                activations = run.activations[0]
                if run.capture.guided_after:  # guided ReLUs above A: the head again, with ordinary ReLUs
                    with tf.GradientTape(watch_accessed_variables=False) as head_tape:
                        head_tape.watch(activations)
                        plain = self._pass(images, score, (layer,), replace=lambda: activations)
                        y_plain = self._target(plain.scores, class_indices, target)
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
