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
import threading
from typing import Callable, Iterator

import keras
import tensorflow as tf

from camtutor.errors import CamTutorError, LayerError, TargetError
from camtutor.feature_maps import layout_of
from camtutor.layers import OutputInfo

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

    def __init__(self) -> None:
        self.tensors: list[tf.Tensor] = []
        #: guided ReLUs that ran after the layer was captured (possibly above it, between ``A`` and the score)
        self.guided_after = 0

    @property
    def tensor(self) -> tf.Tensor:
        if len(self.tensors) != 1:
            raise LayerError(
                f"the layer ran {len(self.tensors)} times in one forward pass; camtutor needs a layer used "
                "exactly once (shared layers are ambiguous): choose another layer"
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


def _guided_relu(max_value: float | None = None) -> Callable:
    """ReLU (clipped at ``max_value``) whose backward pass is guided backpropagation (Springenberg et al. 2015):
    the gradient passes only where the input was in the linear range *and* the incoming gradient is positive."""

    @tf.custom_gradient
    def guided(x):
        # TensorFlow's own fused ReLU gradients on the *output* (as its registered gradients do, so the
        # forward Conv + BiasAdd + ReLU can stay fused) applied to relu(dy): dy * [dy > 0] * [x open].
        if max_value is None:
            y = tf.nn.relu(x)
            return y, lambda dy: tf.raw_ops.ReluGrad(gradients=tf.nn.relu(dy), features=y)
        if max_value == 6.0:
            y = tf.nn.relu6(x)
            return y, lambda dy: tf.raw_ops.Relu6Grad(gradients=tf.nn.relu(dy), features=y)
        y = tf.clip_by_value(x, 0.0, max_value)
        return y, lambda dy: tf.nn.relu(dy) * tf.cast(tf.logical_and(y > 0, y < max_value), dy.dtype)

    return guided


def _guided_targets(model) -> tuple[list, list]:
    """(layers whose ``activation`` is relu/relu6 -> replacement, ReLU/Activation('relu') layers -> call hook)."""
    relu, relu6 = keras.activations.relu, keras.activations.relu6
    by_activation, by_call = [], []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        activation = getattr(layer, "activation", None)
        if isinstance(layer, keras.layers.ReLU):
            slope = float(getattr(layer, "negative_slope", 0.0) or 0.0)
            threshold = float(getattr(layer, "threshold", 0.0) or 0.0)
            if slope == 0.0 and threshold == 0.0:
                max_value = layer.max_value
                by_call.append((layer, _guided_relu(None if max_value is None else float(max_value))))
        elif isinstance(layer, keras.layers.Activation) and activation in (relu, relu6):
            by_call.append((layer, _guided_relu(None if activation is relu else 6.0)))
        elif activation in (relu, relu6):
            by_activation.append((layer, _guided_relu(None if activation is relu else 6.0)))
    return by_activation, by_call


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
    whose ReLUs (ReLU layers, relu/relu6 activations) get guided-backpropagation gradients; a captured ReLU
    layer stays guided, and ``capture.guided_after`` counts the guided ReLUs that ran after the capture (0
    means none lies between the captured layer and the score, so there ``dy/dA`` is the plain gradient).

    Holds camtutor's tracing lock; the hooks act only in this thread.
    """
    capture = Capture()
    run_layer = None  # how the captured layer computes its output: its own call, or its guided ReLU
    layout = None if layer is None else layout_of(layer)

    def capture_hook(original, *args, **kwargs):
        computed = None
        if replace is None or layout.needs_output:  # a replaced token layer still computes its class token
            computed = original(*args, **kwargs) if run_layer is None else run_layer(original, *args, **kwargs)
        maps = replace() if replace is not None else layout.to_maps(computed)  # A (B, h, w, K)
        if tape is not None:
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
        if guided is not None:
            by_activation, by_call = _guided_targets(guided)
            for target, fn in by_activation:
                if id(target) not in acts:
                    stack.enter_context(_patched(target, "activation", _activation_wrapper(target)))
                    acts[id(target)] = counted(fn)
            for target, fn in by_call:
                if id(target) not in hooks:
                    stack.enter_context(_patched(target, "call", _call_wrapper(target)))
                    hooks[id(target)] = lambda original, inputs, *a, _fn=counted(fn), **k: _fn(inputs)
        if layer is not None:
            run_layer = hooks.get(id(layer))  # a ReLU layer that is captured stays guided
            if run_layer is None:
                stack.enter_context(_patched(layer, "call", _call_wrapper(layer)))
            hooks[id(layer)] = capture_hook
        previous = _hooks(), _activations()
        _LOCAL.hooks, _LOCAL.act = {**previous[0], **hooks}, {**previous[1], **acts}
        try:
            yield capture
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
    """Call a compiled camtutor function; errors from tracing come out as the CamTutorError they are."""
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
        raise


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
