"""Tracing-time surgery: capture a layer's output, bypass the final softmax/sigmoid, replace a layer's output
(Ablation-CAM), guided ReLUs (guided backpropagation), leaving the model as it was.

While camtutor traces its ``tf.function`` it needs things the model does not return: the feature maps
``A`` of one layer, and (for ``score="logit"``) the score before the final activation. Both are obtained
by replacing, for the duration of one forward pass, a layer's ``call`` (or a ``Dense``'s ``activation``)
with a wrapper. The wrappers are safe:

* they act only in the thread that installed them, and only while camtutor traces (a thread-local table
  of hooks): another thread calling the model at the same time gets its normal output;
* camtutor's own tracings are serialised by one lock, so two of them never patch the same layer at once;
* whatever was there before is put back exactly, including a ``call`` set on the instance by someone else;
* errors raised while tracing reach the user as :class:`camtutor.CamTutorError`, not as TensorFlow's
  ``StagingError`` wrapping them (:func:`run`).
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
import warnings
from typing import Callable, Iterator

import keras
import tensorflow as tf

from camtutor.errors import CamTutorError, LayerError, ModelError, TargetError
from camtutor.feature_maps import layout_of
from camtutor.layers import OutputInfo, _is_builtin, _leaf_layers

_LOCK = threading.RLock()
_LOCAL = threading.local()  # .hooks: {id(layer): hook(original_call, *args, **kwargs)}; .act: {id(layer): fn}
_MISSING = object()
TARGET_SHAPE_MESSAGE = "a target function must return one score per image (B,)"


def _hooks() -> dict:
    return getattr(_LOCAL, "hooks", {})


def _activations() -> dict:
    return getattr(_LOCAL, "act", {})


class Capture:
    """Collects the tensors a layer produced while a model runs under tracing."""

    def __init__(self, name: str = "the layer") -> None:
        self.name = name
        self.tensors: list[tf.Tensor] = []
        #: guided ReLUs that ran after the layer was captured (possibly above it, between ``A`` and the score)
        self.guided_after = 0

    @property
    def tensor(self) -> tf.Tensor:
        if len(self.tensors) != 1:
            raise LayerError(
                f"{self.name} ran {len(self.tensors)} times in one forward pass (a shared layer, or one called "
                "from inside another layer); camtutor needs a layer that runs exactly once: choose a layer after "
                "the calls are merged, or before the sharing starts (camtutor.conv_layers(model) lists them)"
            )
        return self.tensors[0]


@contextlib.contextmanager
def _patched(layer, attribute: str, replacement) -> Iterator[None]:
    """Set ``layer.<attribute>`` on the instance; restore exactly what the instance had (or had not) after."""
    previous = vars(layer).get(attribute, _MISSING)
    object.__setattr__(layer, attribute, replacement)
    try:
        yield
    finally:
        if previous is _MISSING:
            object.__delattr__(layer, attribute)
        else:
            object.__setattr__(layer, attribute, previous)


def _call_wrapper(layer) -> Callable:
    """``layer.call`` that defers to this thread's hook for ``layer`` if any, else runs the original."""
    original = layer.call  # bound method, or the instance-level call someone set

    def call(*args, **kwargs):
        hook = _hooks().get(id(layer))
        if hook is None:
            return original(*args, **kwargs)
        return hook(original, *args, **kwargs)

    return functools.wraps(original)(call)


def _activation_wrapper(layer) -> Callable:
    """``layer.activation`` that is this thread's replacement for ``layer`` if any, the original everywhere else."""
    original = layer.activation

    def activation(x):
        replacement = _activations().get(id(layer))
        return original(x) if replacement is None else replacement(x)

    return functools.wraps(original)(activation)


def _identity_hook(original, inputs, *args, **kwargs):
    return inputs


def _identity(x):
    return x


def _guided_relu(max_value: float | None = None, made: set | None = None) -> Callable:
    """ReLU (clipped at ``max_value``) whose backward pass is guided backpropagation (Springenberg et al. 2015):
    the gradient passes only where the input was in the linear range *and* the incoming gradient is positive.
    ``made`` collects the names of the graph operations it creates (so that any other ReLU is known to be
    unguided)."""

    @tf.custom_gradient
    def guided(x):
        # TensorFlow's own fused ReLU gradients on the *output* (as its registered gradients do, so the
        # forward Conv + BiasAdd + ReLU can stay fused) applied to relu(dy): dy * [dy > 0] * [x open].
        if max_value is None:
            y = tf.nn.relu(x)
            grad = lambda dy: tf.raw_ops.ReluGrad(gradients=tf.nn.relu(dy), features=y)  # noqa: E731
        elif max_value == 6.0:
            y = tf.nn.relu6(x)
            grad = lambda dy: tf.raw_ops.Relu6Grad(gradients=tf.nn.relu(dy), features=y)  # noqa: E731
        else:
            y = tf.clip_by_value(x, 0.0, max_value)
            grad = lambda dy: tf.nn.relu(dy) * tf.cast(tf.logical_and(y > 0, y < max_value), dy.dtype)  # noqa: E731
        if made is not None and hasattr(y, "op"):
            made.add(y.op.name)
        return y, grad

    return guided


def _relu_functions() -> list[tuple[Callable, float | None]]:
    """The ReLU functions by any spelling, with their clip value: Keras's, keras.ops' and TensorFlow's."""
    return [(keras.activations.relu, None), (keras.ops.relu, None), (tf.nn.relu, None),
            (keras.activations.relu6, 6.0), (keras.ops.relu6, 6.0), (tf.nn.relu6, 6.0)]


_NO_RELU = object()


def _relu_clip(activation) -> object:
    """The clip value (None: plain ReLU, 6.0: ReLU6) when ``activation`` is a ReLU function, else _NO_RELU."""
    for function, max_value in _relu_functions():
        if activation is function:
            return max_value
    return _NO_RELU


def _relu_operation_clip(operation) -> object:
    """The clip value when ``operation`` is a keras.ops ReLU in a Functional graph (``keras.ops.relu(x)``,
    ``keras.ops.relu6(x)``, ``keras.activations.relu(x)`` on a symbolic tensor), else _NO_RELU."""
    kind = (type(operation).__module__, type(operation).__name__)
    if kind == ("keras.src.ops.nn", "Relu"):
        return None
    if kind == ("keras.src.ops.nn", "Relu6"):
        return 6.0
    if kind == ("keras.src.activations.activations", "ReLU"):
        if float(operation.negative_slope or 0.0) == 0.0 and float(operation.threshold or 0.0) == 0.0:
            return None if operation.max_value is None else float(operation.max_value)
    return _NO_RELU


def _guided_targets(model, made: set | None = None) -> tuple[list, list]:
    """(layers whose ``activation`` is a ReLU -> replacement, ReLU layers and operations -> guided ReLU for
    their call). A ReLU is recognised whatever its spelling: ``keras.layers.ReLU``, ``Activation("relu")``,
    ``activation="relu"``, ``tf.nn.relu``, ``keras.ops.relu``, and their ReLU6 forms, as a layer's activation
    or as an operation of a Functional graph (``keras.ops.relu(x)``)."""
    by_activation, by_call = [], []
    found = list(model._flatten_layers(include_self=False, recursive=True))
    seen = {id(layer) for layer in found}
    found += [op for op in _leaf_layers(model) if id(op) not in seen]  # keras.ops operations of the graph
    for layer in found:
        if isinstance(layer, keras.layers.ReLU):
            slope = float(getattr(layer, "negative_slope", 0.0) or 0.0)
            threshold = float(getattr(layer, "threshold", 0.0) or 0.0)
            if slope == 0.0 and threshold == 0.0:
                max_value = layer.max_value
                by_call.append((layer, _guided_relu(None if max_value is None else float(max_value), made)))
            continue
        clip = _relu_operation_clip(layer)
        if clip is not _NO_RELU:
            by_call.append((layer, _guided_relu(clip, made)))
            continue
        clip = _relu_clip(getattr(layer, "activation", None))
        if clip is _NO_RELU:
            continue
        if isinstance(layer, keras.layers.Activation):
            by_call.append((layer, _guided_relu(clip, made)))
        else:
            by_activation.append((layer, _guided_relu(clip, made)))
    return by_activation, by_call


def _user_code(layer) -> bool:
    """True for a layer whose computation camtutor cannot see: a Lambda, a custom layer class, or a Keras
    layer whose ``activation`` is a function of the user's (not Keras's or TensorFlow's, not a known ReLU)."""
    if isinstance(layer, keras.Model):
        return False
    if isinstance(layer, keras.layers.Lambda) or not _is_builtin(layer):
        return True
    activation = getattr(layer, "activation", None)
    module = getattr(activation, "__module__", "") or ""
    return callable(activation) and not module.startswith(("keras.", "tensorflow.")) and \
        _relu_clip(activation) is _NO_RELU


def _relu_watch(unguided: list, made: set) -> Callable:
    """A call hook that runs the layer and lists the Relu/Relu6 graph operations it created that no guided
    ReLU made: a ReLU inside user code, which guided backpropagation cannot reach."""

    def hook(original, *args, **kwargs):
        graph = None if tf.executing_eagerly() else tf.compat.v1.get_default_graph()
        start = len(graph.get_operations()) if graph is not None else 0
        out = original(*args, **kwargs)
        if graph is not None:
            unguided.extend(op.name for op in graph.get_operations()[start:]
                            if op.type in ("Relu", "Relu6") and op.name not in made and op.name not in unguided)
        return out

    return hook


def _unguided_error(names: list[str]) -> ModelError:
    return ModelError(
        f"guided backpropagation cannot reach {len(names)} ReLU(s) of this model ({names[:3]}): they are computed "
        "inside a Lambda, a custom layer or a function camtutor does not recognise, so their gradients would stay "
        "unguided and the map would mix guided and plain gradients. Write them as keras.layers.ReLU(), "
        "keras.layers.Activation('relu') or activation='relu' (tf.nn.relu and keras.ops.relu are recognised too)"
    )


NOTHING_TO_GUIDE = (
    "this model has no ReLU to guide (swish, gelu... like EfficientNet or ConvNeXt): guided backpropagation "
    "changes only the backward pass of ReLUs, so here it is exactly the plain gradient dy/dx (a vanilla "
    "saliency map, Simonyan et al. 2014), and Guided Grad-CAM is Grad-CAM times that gradient"
)


@contextlib.contextmanager
def traced(
    layer,
    tape: tf.GradientTape | None,
    info: OutputInfo | None,
    *,
    replace: Callable[[], tf.Tensor] | None = None,
    guided=None,
) -> Iterator[Capture]:
    """While the ``with`` block runs the model, capture ``layer``'s feature maps ``A`` (B, h, w, K) (watched by
    ``tape``: the output converted from the layer's layout, :mod:`camtutor.feature_maps`, the output rebuilt
    from ``A`` so that gradients with respect to ``A`` are exact) and, when
    ``info`` is given and reachable, return the pre-activation score instead of the final softmax/sigmoid.

    ``layer`` may be None (nothing captured). ``replace``: the layer's output is built from ``A = replace()``
    (B, h, w, K) instead of what the layer computes (the layer itself is not run, so what only fed it is
    pruned from the graph; a token layer with a class token runs, and keeps its class token):
    Ablation-CAM reruns the rest of the network on ablated activations this way. ``guided``: the model
    whose ReLUs get guided-backpropagation gradients, whatever their spelling (:func:`_guided_targets`);
    a ReLU inside user code (a Lambda, a custom layer, a user's activation function) raises
    ModelError, and a model with no ReLU at all warns (guided backprop is then the plain gradient);
    a captured ReLU layer stays guided, and ``capture.guided_after`` counts the guided ReLUs that ran after the capture (0
    means none lies between the captured layer and the score, so there ``dy/dA`` is the plain gradient).

    Holds camtutor's tracing lock; the hooks act only in this thread.
    """
    capture = Capture("the layer" if layer is None else f"layer {getattr(layer, 'name', layer)!r}")
    run_layer = None  # how the captured layer computes its output: its own call, or its guided ReLU
    layout = None if layer is None else layout_of(layer)

    def capture_hook(original, *args, **kwargs):
        computed = None
        if replace is None or layout.needs_output:  # a replaced token layer still computes its class token
            computed = original(*args, **kwargs) if run_layer is None else run_layer(original, *args, **kwargs)
        maps = replace() if replace is not None else layout.to_maps(computed)  # A (B, h, w, K)
        if tape is not None and maps.dtype.is_floating:  # a bool or int output (a mask) has no gradient
            tape.watch(maps)
        capture.tensors.append(maps)
        return maps if layout.identity else layout.from_maps(maps, computed)

    def counted(fn: Callable) -> Callable:
        def guided_relu(x):
            if capture.tensors:
                capture.guided_after += 1
            return fn(x)

        return guided_relu

    with _LOCK, contextlib.ExitStack() as stack:
        hooks: dict = {}
        acts: dict = {}
        final = info.layer if info is not None and info.bypass else None
        if final is not None and info.bypass == "call":
            stack.enter_context(_patched(final, "call", _call_wrapper(final)))
            hooks[id(final)] = _identity_hook
        elif final is not None:
            stack.enter_context(_patched(final, "activation", _activation_wrapper(final)))
            acts[id(final)] = _identity
        made: set = set()
        unguided: list = []
        if guided is not None:
            by_activation, by_call = _guided_targets(guided, made)
            watched = [x for x in guided._flatten_layers(include_self=False, recursive=True) if _user_code(x)]
            for target, fn in by_activation:
                if id(target) not in acts:
                    stack.enter_context(_patched(target, "activation", _activation_wrapper(target)))
                    acts[id(target)] = counted(fn)
            for target, fn in by_call:
                if id(target) not in hooks:
                    stack.enter_context(_patched(target, "call", _call_wrapper(target)))
                    hooks[id(target)] = lambda original, inputs, *a, _fn=counted(fn), **k: _fn(inputs)
            for target in watched:  # ReLUs hidden in user code: refused after the pass (ModelError)
                if id(target) not in hooks:
                    stack.enter_context(_patched(target, "call", _call_wrapper(target)))
                    hooks[id(target)] = _relu_watch(unguided, made)
        if layer is not None:
            run_layer = hooks.get(id(layer))  # a ReLU layer that is captured stays guided
            if run_layer is None:
                stack.enter_context(_patched(layer, "call", _call_wrapper(layer)))
            hooks[id(layer)] = capture_hook
        previous = _hooks(), _activations()
        _LOCAL.hooks, _LOCAL.act = {**previous[0], **hooks}, {**previous[1], **acts}
        try:
            yield capture
            if unguided:
                raise _unguided_error(unguided)
            if guided is not None and not made and not by_activation and not by_call:
                warnings.warn(NOTHING_TO_GUIDE, UserWarning, stacklevel=3)
        finally:
            _LOCAL.hooks, _LOCAL.act = previous


def _camtutor_error_in(exc: BaseException) -> CamTutorError | None:
    """The CamTutorError that ``exc`` wraps (TensorFlow re-raises errors from tracing as StagingError)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, CamTutorError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def run(function: Callable, *args):
    """Call a compiled camtutor function (or the model); errors from tracing come out as the CamTutorError they
    are, and TensorFlow's out-of-memory / invalid-argument errors and a ValueError of the model as one
    (:func:`running_error`)."""
    try:
        return function(*args)
    except CamTutorError:
        raise
    except Exception as exc:
        found = _camtutor_error_in(exc)
        if found is not None:
            raise found.with_traceback(None) from None
        if isinstance(exc, tf.errors.InvalidArgumentError) and TARGET_SHAPE_MESSAGE in str(exc):
            raise TargetError(
                f"{TARGET_SHAPE_MESSAGE}: the target returned a different number of scores than there are images; "
                "return e.g. scores[:, c] or a difference of such columns"
            ) from None
        if isinstance(exc, (tf.errors.ResourceExhaustedError, tf.errors.InvalidArgumentError, ValueError)):
            raise running_error(exc, args[0] if args else None) from exc
        raise


def running_error(exc: BaseException, images: object) -> CamTutorError:
    """The CamTutorError for an error TensorFlow or the model raised while running on ``images`` (B, H, W, C)."""
    shape = tuple(getattr(images, "shape", ()))
    what = f"{shape[0]} image(s) of {shape[1]}x{shape[2]} pixels" if len(shape) == 4 else "these inputs"
    if isinstance(exc, tf.errors.ResourceExhaustedError):
        return CamTutorError(f"out of memory while running the model on {what}; pass fewer or smaller images "
                             "(camtutor.resize_images), or choose a smaller model")
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines() if line.strip()]
    detail = next((line for line in lines if "Exception encountered" not in line), type(exc).__name__)
    return ModelError(f"the model failed on {what} ({type(exc).__name__}: {detail[:300]}); check that the images "
                      "have the size, channels and scale the model expects (too small for its convolutions?)")


def target_scores(target: Callable, scores: tf.Tensor) -> tf.Tensor:
    """At trace time: ``target(scores)`` checked to be (B,), one score per image; TargetError otherwise
    (also when the target itself fails, e.g. indexes a class the model does not have)."""
    name = getattr(target, "__name__", type(target).__name__)
    try:
        y = target(scores)
    except CamTutorError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's function: report it as a target problem
        raise TargetError(
            f"the target function {name!r} failed on scores of shape {tuple(scores.shape)} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); it must map the scores "
            "(B, C) to one score per image (B,), e.g. lambda s: s[:, c]"
        ) from exc
    if not isinstance(y, (tf.Tensor, tf.Variable)) and not keras.ops.is_tensor(y):
        try:
            y = tf.convert_to_tensor(y)
        except (TypeError, ValueError):
            raise TargetError(
                f"the target function {name!r} returned {type(y).__name__}, not a tensor of one score per image (B,)"
            ) from None
    shape = y.shape
    batch = scores.shape[0]
    if shape.rank != 1 or (shape[0] is not None and batch is None) or (
        shape[0] is not None and batch is not None and shape[0] != batch
    ):
        raise TargetError(
            f"the target function {name!r} returned shape {tuple(shape)} for scores of shape {tuple(scores.shape)}; "
            f"{TARGET_SHAPE_MESSAGE}: return e.g. scores[:, c] (not scores[0] or a scalar)"
        )
    return tf.cast(y, tf.float32)
