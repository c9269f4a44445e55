"""The layout of a layer's output: where its grid (h, w) and its channels K are.

Every CAM method works on feature maps ``A`` of shape (B, h, w, K). Layers give them in three layouts:

* ``"channels_last"`` (B, h, w, K): Keras's own convention, used as it is;
* ``"channels_first"`` (B, K, h, w): ``Conv2D(data_format="channels_first")``, ``BatchNormalization(axis=1)``,
  or a ``Permute((3, 1, 2))`` (what models converted from PyTorch contain); transposed to (B, h, w, K);
* ``"tokens"`` (B, T, D): a Vision Transformer's tokens, ``prefix`` non-spatial tokens first (a class token,
  register or distillation tokens) then the h*w patch tokens in row-major order;
  ``A = reshape(t[:, prefix:], (B, h, w, D))``.

camtutor reads the layout from the model, never from the numbers in a shape:

* channels: the ``data_format`` of the layer that computes the map (or ``BatchNormalization``'s axis, a
  ``Permute`` of a known layout), else of the layers that consume it (a ``GlobalAveragePooling2D``), following
  shape-preserving layers (activations, dropout, additions) both ways. No evidence at all: channels-last, the
  Keras convention. Evidence that disagrees: refused, with the fix.
* tokens: the grid is that of the nearest 4-D feature map the tokens are computed from (the patch-embedding
  ``Conv2D`` before a ``Reshape``, say), and ``prefix = T - h*w`` must satisfy ``0 <= prefix < h*w``.
  Otherwise the layer is refused, with the fix.

The fix is to state the layout: pass ``layer=TokenLayer("block2_ln1", grid=(6, 10), prefix=1)``,
``layer=ChannelsFirst("conv")`` or ``layer=ChannelsLast("conv")`` wherever a layer name is accepted. A statement
that contradicts what the model shows is refused too.

The conversion happens inside the traced forward pass (:mod:`camtutor.surgery`): the captured tensor is
converted to ``A`` (B, h, w, K), and the layer's output is rebuilt from ``A`` (transposed back, or
``concat(t[:, :prefix], reshape(A, (B, h*w, D)))``), so gradients with respect to ``A`` are exact, and a pass
that replaces ``A`` (Ablation-CAM) feeds the rest of the network the layout it expects. The class token is
never part of ``A``: Ablation-CAM leaves it as the layer computed it.

The class-token pitfall: in a ViT whose head reads only the class token, the patch tokens after the last
attention reach the score through nothing (every later operation is per token), so their gradient is exactly
zero and Grad-CAM there is a map of zeros. Such layers are found with one probe pass
(:func:`dead_token_layers`), left out of :func:`camtutor.conv_layers`, refused by ``layer=`` with the fix
(the input of the last attention, pytorch-grad-cam's ``blocks[-1].norm1``), and never the default layer.
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass

import keras
import numpy as np

from camtutor.errors import LayerError
from camtutor.keras_internals import ops_numpy as _ops_numpy  # the private keras.src APIs live there

CHANNELS_LAST, CHANNELS_FIRST, TOKENS = "channels_last", "channels_first", "tokens"


# --------------------------------------------------------------------------- public: stating a layout
@dataclass(frozen=True)
class TokenLayer:
    """A token layer (B, T, D) and its grid, stated by the user: ``layer=TokenLayer("block2_ln1", (6, 10), 1)``.

    ``grid`` is (h, w), the rows and columns of patches (a 48 x 80 input with 8-px patches: (6, 10));
    ``prefix`` the number of leading non-spatial tokens (class, register, distillation tokens); None means
    ``T - h*w``. Needed only where camtutor cannot find the grid in the model; a grid that contradicts the
    model's is refused.
    """

    name: str
    grid: tuple[int, int]
    prefix: int | None = None


@dataclass(frozen=True)
class ChannelsFirst:
    """A 4-D layer whose output is (B, K, h, w), stated by the user: ``layer=ChannelsFirst("conv")``."""

    name: str


@dataclass(frozen=True)
class ChannelsLast:
    """A 4-D layer whose output is (B, h, w, K), stated by the user: ``layer=ChannelsLast("conv")``."""

    name: str


SPECS = (TokenLayer, ChannelsFirst, ChannelsLast)


# --------------------------------------------------------------------------- the layout itself
@dataclass(frozen=True)
class Layout:
    """How a layer's output holds the feature maps ``A`` (B, h, w, K).

    ``kind`` is "channels_last", "channels_first" or "tokens"; ``grid`` (h, w) (entries may be None for a
    model of any input size); ``prefix`` leading non-spatial tokens; ``source`` says how it was found.
    """

    kind: str
    grid: tuple
    channels: int | None
    prefix: int = 0
    source: str = ""

    @property
    def shape(self) -> tuple:
        """(h, w, K) of ``A``."""
        return (*self.grid, self.channels)

    @property
    def identity(self) -> bool:
        return self.kind == CHANNELS_LAST

    @property
    def needs_output(self) -> bool:
        """True when rebuilding the layer's output from ``A`` needs what the layer computed (its prefix tokens)."""
        return self.kind == TOKENS and self.prefix > 0

    def to_maps(self, output):
        """The layer's output -> ``A`` (B, h, w, K), in the graph (differentiable)."""
        import tensorflow as tf

        if self.kind == CHANNELS_FIRST:
            return tf.transpose(output, [0, 2, 3, 1])
        if self.kind == TOKENS:
            h, w = self.grid
            return tf.reshape(output[:, self.prefix:], (-1, h, w, self.channels))
        return output

    def from_maps(self, maps, output=None):
        """``A`` (B, h, w, K) -> the layer's output; ``output`` (what the layer computed) gives the prefix tokens."""
        import tensorflow as tf

        if self.kind == CHANNELS_FIRST:
            return tf.transpose(maps, [0, 3, 1, 2])
        if self.kind == TOKENS:
            h, w = self.grid
            tokens = tf.reshape(maps, (-1, h * w, self.channels))
            if self.prefix:
                tokens = tf.concat([tf.cast(output[:, :self.prefix], tokens.dtype), tokens], axis=1)
            return tokens
        return maps

    def describe(self) -> str:
        if self.kind == TOKENS:
            h, w = self.grid
            return f"tokens on a {h}x{w} grid after {self.prefix} prefix token(s)"
        return self.kind.replace("_", "-")


# --------------------------------------------------------------------------- reading the graph
def _history(tensor):
    history = tensor._keras_history
    return history.operation, history.node_index


def _inputs(tensor) -> list:
    """The input tensors of the operation that made ``tensor`` ([] for a model input)."""
    try:
        operation, node_index = _history(tensor)
        return list(operation._inbound_nodes[node_index].input_tensors)
    except (AttributeError, IndexError):
        return []


def _consumers(tensor) -> list:
    """(operation, output tensors) of every operation that reads ``tensor`` (in its own graph)."""
    try:
        operation, node_index = _history(tensor)
        nodes = operation._outbound_nodes
    except (AttributeError, IndexError):
        return []
    out = []
    for node in nodes:
        if any(t is tensor for t in node.input_tensors):
            out.append((node.operation, list(node.output_tensors)))
    return out


def _shape(tensor) -> tuple:
    return tuple(tensor.shape)


def _own_format(operation, tensor) -> str | None:
    """The layout that ``operation`` says its 4-D input/output ``tensor`` has, or None if it says nothing."""
    data_format = getattr(operation, "data_format", None)
    if isinstance(operation, keras.layers.Flatten):  # its data_format only orders the flat vector
        return None
    if data_format in (CHANNELS_LAST, CHANNELS_FIRST):
        return data_format
    if isinstance(operation, keras.layers.BatchNormalization):
        axis = operation.axis
        axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
        if axis in (1, -3):
            return CHANNELS_FIRST
        if axis in (3, -1):
            return CHANNELS_LAST
    return None


def _permutation(operation) -> tuple | None:
    """The 1-based axes (batch excluded) that a Permute layer or a ``keras.ops.transpose`` puts in order."""
    if isinstance(operation, keras.layers.Permute):
        return tuple(operation.dims)
    if isinstance(operation, _ops_numpy.Transpose):
        axes = operation.axes
        return None if axes is None or len(axes) != 4 or axes[0] != 0 else tuple(axes[1:])
    return None


def _permuted(operation, tensor) -> str | None:
    """The layout of a permutation's output (Permute, ``keras.ops.transpose``), from the layout of its input."""
    inputs = _inputs(tensor)
    dims = _permutation(operation)
    if dims is None or len(inputs) != 1 or len(_shape(inputs[0])) != 4:
        return "other"
    before = _backward(inputs[0], set())
    if before not in (CHANNELS_LAST, CHANNELS_FIRST):
        return "other"
    channel = 3 if before == CHANNELS_LAST else 1
    spatial = (1, 2) if before == CHANNELS_LAST else (2, 3)
    if dims == (channel, *spatial):
        return CHANNELS_FIRST
    if dims == (*spatial, channel):
        return CHANNELS_LAST
    return "other"


def _backward(tensor, seen: set) -> str | None:
    """The layout that the operations computing ``tensor`` give it (None: no evidence; "other": a permutation)."""
    if id(tensor) in seen:
        return None
    seen.add(id(tensor))
    try:
        operation, _ = _history(tensor)
    except AttributeError:
        return None
    if isinstance(operation, keras.layers.InputLayer):
        return CHANNELS_LAST if not _inputs(tensor) else None  # the model's image input is (B, H, W, C)
    if isinstance(operation, (keras.layers.Permute, _ops_numpy.Transpose)):
        return _permuted(operation, tensor)
    own = _own_format(operation, tensor)
    if own is not None:
        return own
    if isinstance(operation, keras.Model):
        return None
    same = [t for t in _inputs(tensor) if _shape(t) == _shape(tensor)]  # shape-preserving: activations, adds...
    for source in same:
        found = _backward(source, seen)
        if found is not None:
            return found
    return None


def _forward(tensor, seen: set) -> set:
    """The layouts that the operations reading ``tensor`` expect (following shape-preserving ones)."""
    found: set = set()
    if id(tensor) in seen:
        return found
    seen.add(id(tensor))
    for operation, outputs in _consumers(tensor):
        own = _own_format(operation, tensor)
        if own is not None:
            found.add(own)
            continue
        if isinstance(operation, (keras.layers.Permute, _ops_numpy.Transpose, keras.Model)):
            continue
        for out in outputs:
            if _shape(out) == _shape(tensor):
                found |= _forward(out, seen)
    return found


def _channel_layout(layer) -> Layout | str:
    """The layout of a 4-D output, or a message saying why it cannot be told."""
    tensor = layer.output
    shape = _shape(tensor)
    before = _backward(tensor, set())
    after = _forward(tensor, set())
    if before == "other":
        return ("it comes from a permutation (Permute, keras.ops.transpose) that camtutor cannot follow to "
                "(B, h, w, K) or (B, K, h, w)")
    if before is not None and after - {before}:
        return f"the layers computing it say {before} but the layers reading it expect {sorted(after - {before})}"
    if before is None and len(after) > 1:
        return f"the layers reading it disagree ({sorted(after)})"
    kind = before or (next(iter(after)) if after else CHANNELS_LAST)
    if kind == CHANNELS_FIRST:
        source = "its data_format" if before else "the data_format of the layers that read it"
        return Layout(CHANNELS_FIRST, shape[2:4], shape[1], 0, source)
    return Layout(CHANNELS_LAST, shape[1:3], shape[3], 0, "channels-last" if before or after else "the Keras default")


def _nearest_map(tensor):
    """The nearest 4-D tensor that ``tensor`` is computed from (breadth first), or None."""
    queue, seen = list(_inputs(tensor)), set()
    while queue:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if len(_shape(current)) == 4:
            return current
        queue.extend(_inputs(current))
    return None


def _token_layout(layer) -> Layout | str:
    """The grid of a (B, T, D) output from the patch-embedding map it is computed from, or why not."""
    tensor = layer.output
    _, tokens, channels = _shape(tensor)
    if tokens is None:
        return "its number of tokens is unknown (a model of any input size): build the model with a fixed input size"
    source = _nearest_map(tensor)
    if source is None:
        return "no (B, h, w, K) feature map (a patch embedding) is computed before it"
    shape = _shape(source)
    operation = source._keras_history.operation
    producer = "the input image" if isinstance(operation, keras.layers.InputLayer) else repr(operation.name)
    layout = _tensor_channel_layout(source)
    h, w = (shape[2:4] if layout == CHANNELS_FIRST else shape[1:3])
    if h is None or w is None:
        return f"the grid of {producer} {shape} is unknown: build the model with a fixed input size"
    prefix = tokens - h * w
    if not 0 <= prefix < h * w and producer == "the input image":
        patched = _patch_grid(tensor, h, w, tokens)  # a patch embedding that makes no (B, h, w, K) map
        if patched is not None:
            grid, prefix, found_from = patched
            return Layout(TOKENS, grid, channels, prefix, found_from)
    if not 0 <= prefix < h * w:
        return (f"its {tokens} tokens fit no {h}x{w} grid of {producer} {shape} (tokens - h*w = {prefix}, "
                "expected 0 <= prefix < h*w)")
    return Layout(TOKENS, (h, w), channels, prefix, f"the {h}x{w} grid of {producer}")


def _patch_grid(tensor, height: int, width: int, tokens: int):
    """``((h, w), prefix, source)`` from the ``patch_size`` of the nearest layer before
    ``tensor`` that declares one (keras-hub's ``ViTPatchingAndEmbedding``), or None.

    The grid is ``(height // p_h, width // p_w)`` of the input image, as a stride-p convolution without
    padding makes it; the tokens must be that grid plus ``0 <= prefix < h*w`` leading tokens.
    """
    queue, seen = [tensor], set()
    while queue:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        try:
            operation = _history(current)[0]
        except (AttributeError, IndexError):
            continue
        size = getattr(operation, "patch_size", None)
        if size is not None:
            size = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
            if len(size) != 2 or not all(isinstance(p, (int, np.integer)) and p > 0 for p in size):
                return None
            h, w = height // int(size[0]), width // int(size[1])
            prefix = tokens - h * w
            if h * w == 0 or not 0 <= prefix < h * w:
                return None
            return ((h, w), prefix,
                    f"the {h}x{w} grid of {size[0]}x{size[1]}-px patches ({operation.name!r}.patch_size) of the "
                    f"{height}x{width} input image")
        queue.extend(_inputs(current))
    return None


def _tensor_channel_layout(tensor) -> str:
    before = _backward(tensor, set())
    if before in (CHANNELS_LAST, CHANNELS_FIRST):
        return before
    after = _forward(tensor, set())
    return next(iter(after)) if len(after) == 1 else CHANNELS_LAST


_FOUND: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # layer -> (output tensor, Layout | message)
_STATED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # layer -> Layout stated by the user


def _output(layer):
    try:
        return layer.output
    except (AttributeError, ValueError, RuntimeError):
        return None


def found_layout(layer) -> Layout | str | None:
    """The layout camtutor reads from the model (cached), a message saying why it cannot, or None (not 3-D/4-D)."""
    output = _output(layer)
    if output is None or len(output.shape) not in (3, 4):
        return None
    cached = _FOUND.get(layer)
    if cached is not None and cached[0] is output:
        return cached[1]
    layout = _token_layout(layer) if len(output.shape) == 3 else _channel_layout(layer)
    _FOUND[layer] = (output, layout)
    return layout


def layout_of(layer) -> Layout:
    """The layout used for ``layer`` now: the one stated for it (:func:`resolve`), else the one found."""
    stated = _STATED.get(layer)
    if stated is not None:
        return stated
    layout = found_layout(layer)
    if layout is None:  # not a 3-D or 4-D output: captured as it is
        return _AS_IS
    if not isinstance(layout, Layout):  # pragma: no cover - find_layer refuses such layers first
        raise LayerError(f"layer {layer.name!r}: {layout}")
    return layout


_AS_IS = Layout(CHANNELS_LAST, (None, None), None, 0, "as computed")


def cache_key(key: tuple) -> tuple:
    """The layouts of the layers in a compile-cache key (a stated layout changes the traced graph)."""
    out = []
    for part in key:
        for item in part if isinstance(part, tuple) else (part,):
            if isinstance(item, keras.layers.Layer) and item in _STATED:
                out.append((id(item), _STATED[item]))
    return tuple(out)


def _fix(name: str, kind: str) -> str:
    if kind == TOKENS:
        return (f"state the grid: layer=camtutor.TokenLayer({name!r}, grid=(h, w), prefix=p) (h x w patches, p "
                "class/register tokens before them; the command: --layer NAME --grid HxW+P)")
    return (f"state the layout: layer=camtutor.ChannelsFirst({name!r}) for (B, K, h, w) or "
            f"camtutor.ChannelsLast({name!r}) for (B, h, w, K)")


def _stated(spec, layer, shape: tuple) -> Layout:
    """The Layout that ``spec`` states for ``layer`` (output ``shape``), checked against the shape."""
    name = spec.name
    if isinstance(spec, TokenLayer):
        if len(shape) != 3:
            raise LayerError(f"TokenLayer({name!r}) states tokens, but the layer outputs {shape}, not (B, T, D); "
                             f"pass the name alone")
        grid = spec.grid
        ok = (isinstance(grid, (tuple, list)) and len(grid) == 2
              and all(isinstance(g, (int, np.integer)) and not isinstance(g, bool) and g > 0 for g in grid))
        if not ok:
            raise LayerError(f"TokenLayer({name!r}): grid must be (h, w), two positive ints, got {grid!r}")
        h, w = int(grid[0]), int(grid[1])
        tokens = shape[1]
        prefix = spec.prefix if spec.prefix is not None else (None if tokens is None else tokens - h * w)
        if not isinstance(prefix, (int, np.integer)) or isinstance(prefix, bool) or prefix < 0:
            raise LayerError(f"TokenLayer({name!r}): prefix must be an int >= 0 (the class/register tokens before the "
                             f"patches), got {prefix!r}")
        if tokens is not None and tokens != prefix + h * w:
            raise LayerError(f"TokenLayer({name!r}, grid=({h}, {w}), prefix={prefix}) needs {prefix + h * w} tokens, "
                             f"but the layer outputs {tokens} {shape}; T must equal prefix + h*w")
        return Layout(TOKENS, (h, w), shape[2], int(prefix), "stated")
    if len(shape) != 4:
        raise LayerError(f"{type(spec).__name__}({name!r}) states a 4-D layout, but the layer outputs {shape}")
    if isinstance(spec, ChannelsFirst):
        return Layout(CHANNELS_FIRST, shape[2:4], shape[1], 0, "stated")
    return Layout(CHANNELS_LAST, shape[1:3], shape[3], 0, "stated")


def resolve(layer, name: str, spec=None) -> Layout:
    """Check ``layer``'s layout (``spec``: what the user states, or None) and make it the one used for ``layer``.

    Raises :class:`LayerError` naming the fix when the layout cannot be found and is not stated, or when the
    statement contradicts the model.
    """
    shape = tuple(layer.output.shape)
    found = found_layout(layer)
    if spec is None:
        if isinstance(found, Layout):
            return layout_of(layer)
        kind = TOKENS if len(shape) == 3 else CHANNELS_FIRST
        what = "a token layer (B, T, D)" if kind == TOKENS else "a 4-D map"
        raise LayerError(f"layer {name!r} outputs {shape}, {what} whose layout camtutor cannot read from the model: "
                         f"{found}; {_fix(name, kind)}")
    stated = _stated(spec, layer, shape)
    evidence = isinstance(found, Layout) and found.source != "the Keras default"
    if evidence and (found.kind, found.grid, found.prefix) != (stated.kind, stated.grid, stated.prefix):
        raise LayerError(f"{spec!r} contradicts the model: layer {name!r} holds {found.describe()} (read from "
                         f"{found.source}); pass the name {name!r} alone")
    if isinstance(found, Layout) and (found.kind, found.grid, found.prefix) == (stated.kind, stated.grid, stated.prefix):
        _STATED.pop(layer, None)  # what the model shows: the same compiled functions as for the bare name
        return found
    _STATED[layer] = stated
    return stated


def maps_shape(layer) -> tuple:
    """(h, w, K) of the feature maps ``A`` of ``layer`` (entries may be None)."""
    return layout_of(layer).shape


# --------------------------------------------------------------------------- the class-token pitfall
_DEAD: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> (layers tuple, frozenset of ids)


def token_layers(model: keras.Model) -> list:
    """The leaf layers of ``model`` whose output is tokens on a grid (found in the model or stated with
    :class:`TokenLayer`), that the score depends on."""
    from camtutor.layers import _leaf_layers, score_ancestors

    found = [layer for layer in _leaf_layers(model)
             if isinstance(_STATED.get(layer, found_layout(layer)), Layout)
             and _STATED.get(layer, found_layout(layer)).kind == TOKENS]  # stated token layers are probed too
    ancestors = score_ancestors(model) if found else set()
    return [layer for layer in found if id(layer) in ancestors]


def dead_token_layers(model: keras.Model) -> frozenset:
    """ids of the token layers of ``model`` whose patch tokens have exactly zero gradient for every score.

    One probe pass (cached per model): a random image in [0, 1), the score ``sum_c r_c y_c`` with random
    ``r``, and the gradient with respect to every token layer's patch tokens ``A``. Exactly zero everywhere
    means no path from those tokens to the output (a head that reads only the class token after the last
    attention), so Grad-CAM, HiResCAM, ..., Ablation-CAM would all give maps of zeros there.
    """
    import tensorflow as tf

    from camtutor import surgery

    tokens = tuple(token_layers(model))
    if not tokens:
        return frozenset()
    cached = _DEAD.get(model)
    if cached is not None and len(cached[0]) == len(tokens) and all(a is b for a, b in zip(cached[0], tokens)):
        return cached[1]
    shape = tuple(model.inputs[0].shape[1:])
    if None in shape:
        return frozenset()
    rng = np.random.default_rng(0)
    probe = tf.constant(rng.random((1, *shape)), tf.float32)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        with contextlib.ExitStack() as stack:
            captures = [stack.enter_context(surgery.traced(layer, tape, None)) for layer in tokens]
            out = tf.cast(model(probe, training=False), tf.float32)
        y = tf.reduce_sum(out * tf.constant(rng.normal(size=out.shape[-1]), tf.float32))
    used = [(layer, capture.tensors[0]) for layer, capture in zip(tokens, captures) if len(capture.tensors) == 1]
    grads = tape.gradient(y, [t for _, t in used], unconnected_gradients=tf.UnconnectedGradients.ZERO)
    dead = frozenset(id(layer) for (layer, _), g in zip(used, grads) if not np.any(np.asarray(g)))
    _DEAD[model] = (tokens, dead)
    return dead


def default_token_layer(model: keras.Model):
    """The default layer of a Vision Transformer, or None when the model's last feature map is not tokens.

    The last token layer (in layer order) whose patch tokens reach the score: the final normalisation of a
    ViT whose head averages the tokens, the input of the last attention (``blocks[-1].norm1``) of one whose
    head reads the class token. Raises :class:`LayerError` when no token layer's patch tokens reach the score.
    """
    from camtutor.layers import _leaf_layers, layer_name, score_ancestors

    ancestors = score_ancestors(model)
    last = None  # the last feature map (4-D, or tokens on a found grid) that the score depends on
    for layer in _leaf_layers(model):
        layout = found_layout(layer)
        if id(layer) in ancestors and layout is not None and (isinstance(layout, Layout)
                                                               or len(layer.output.shape) == 4):
            last = layer
    if last is None:
        unread = [layer for layer in _leaf_layers(model) if id(layer) in ancestors
                  and isinstance(found_layout(layer), str) and len(layer.output.shape) == 3]
        if unread:
            name = layer_name(model, unread[-1])
            raise LayerError(f"model {model.name!r} has no feature map whose layout camtutor can read: its token "
                             f"layers ({name!r}...) show no grid ({found_layout(unread[-1])}); {_fix(name, TOKENS)}")
        return None
    if len(last.output.shape) == 4:
        return None
    tokens = token_layers(model)
    dead = dead_token_layers(model)
    alive = [layer for layer in tokens if id(layer) not in dead]
    if not alive:
        raise LayerError(f"no token layer of model {model.name!r} has patch tokens that reach the score (the last "
                         f"is {layer_name(model, tokens[-1])!r}); " + _fix("NAME", TOKENS))
    return alive[-1]


def pitfall_message(model: keras.Model, name: str, alive: list[str]) -> str:
    """The refusal for a token layer whose patch tokens do not reach the score."""
    fix = f"choose {alive[-1]!r} (the last token layer whose patch tokens reach the score)" if alive else (
        "no token layer's patch tokens reach the score")
    return (f"layer {name!r}: the patch tokens there have exactly zero gradient for every class (the head reads "
            "only the class token, and every operation after this layer works token by token), so Grad-CAM and "
            f"every other method would give a map of zeros; {fix}. In a ViT whose blocks are separate layers that "
            "is the input of the last attention block, as pytorch-grad-cam tells its users (blocks[-1].norm1); a "
            "layer that holds every block (keras-hub's ViTEncoder) hides it, and the last live layer may be the "
            "patch embedding, before any attention")
