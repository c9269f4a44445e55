"""Find the parts of a Keras model that CAM needs: feature-map layers, the output activation, the GAP -> Dense head.

These functions read a model; they never change it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterator

import keras
import numpy as np

from camtutor.errors import LayerError, ModelError
from camtutor.keras_internals import ops_core as _ops_core  # the private keras.src APIs live in keras_internals
from camtutor.keras_internals import ops_nn as _ops_nn
from camtutor.keras_internals import ops_numpy as _ops_numpy

_SQUASHING = ("softmax", "sigmoid")


def check_model(model: object) -> keras.Model:
    """Return ``model`` if camtutor can explain it: one image input (B, H, W, C), one output (B, C).

    Raises :class:`ModelError` naming what is supported otherwise.
    """
    if not isinstance(model, keras.Model):
        raise ModelError(
            f"expected a keras.Model, got {type(model).__name__}; load a saved model with "
            "keras.saving.load_model(path) or camtutor.models.load(name)"
        )
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if (not inputs or not outputs) and model.built and not isinstance(model, keras.Sequential):
        raise ModelError(
            f"model {model.name!r} is a subclassed keras.Model: it has no layer graph, so camtutor cannot reach "
            "its feature maps or the score before its softmax; build the same layers with the Functional API "
            "(inputs = keras.Input(shape); outputs = ...; keras.Model(inputs, outputs)) or keras.Sequential"
        )
    if not inputs or not outputs:
        raise ModelError(
            f"model {model.name!r} is not built, so its layers have no shapes; give it an input, e.g. "
            "keras.Sequential([keras.Input((64, 64, 3)), ...]), or call it once on a batch"
        )
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(
            f"model {model.name!r} has {len(inputs)} inputs and {len(outputs)} outputs; camtutor explains "
            "classifiers with one image input (B, H, W, C) and one output (B, num_classes)"
        )
    try:
        structure = model.output
    except (AttributeError, ValueError):  # pragma: no cover - outputs exist, so output does too
        structure = None
    if isinstance(structure, dict):
        key = next(iter(structure))
        raise ModelError(
            f"model {model.name!r} returns a dict ({{{key!r}: ...}}), not one tensor of class scores; explain "
            f"keras.Model(model.inputs, model.outputs[0]) instead (the same layers and weights, one output)"
        )
    if len(inputs[0].shape) != 4 or len(outputs[0].shape) != 2:
        raise ModelError(
            f"model {model.name!r} maps {tuple(inputs[0].shape)} to {tuple(outputs[0].shape)}; camtutor explains "
            "image classifiers that map (B, H, W, C) images to (B, num_classes) scores"
        )
    return model


def _children(model: keras.Model) -> list:
    """The layers of ``model`` in graph order, and for a Functional model its keras.ops operations too.

    In Keras 3 ``x = inputs + branch`` (or ``keras.ops.add``, ``keras.ops.relu``...) in a Functional model
    is an Operation, not a Layer: ``model.layers`` leaves it out, ``model.operations`` has it. Such an
    operation's output can be the last feature map (ConvNeXt's residual sums feed its pooling), so it is
    listed, found and captured like a layer (it has ``name``, ``output`` and ``call``).
    """
    operations = getattr(model, "operations", None)  # Functional models; Sequential and subclassed have none
    return list(operations) if isinstance(operations, list) else list(model.layers)


def _entries(model: keras.Model, prefix: str = "") -> Iterator[tuple[str, keras.layers.Layer]]:
    """(path, layer) for every layer and operation in order, nested models included (their own entry
    first, then their layers as "model/layer"). Paths are relative to ``model``."""
    for layer in _children(model):
        path = f"{prefix}{layer.name}"
        yield path, layer
        if isinstance(layer, keras.Model):
            yield from _entries(layer, path + "/")


def _leaf_entries(model: keras.Model) -> list[tuple[str, keras.layers.Layer]]:
    """(path, layer) of the leaf layers (no containers, no InputLayer), each layer object once."""
    seen: set[int] = set()
    out = []
    for path, layer in _entries(model):
        if isinstance(layer, (keras.Model, keras.layers.InputLayer)) or id(layer) in seen:
            continue
        seen.add(id(layer))
        out.append((path, layer))
    return out


def _leaf_layers(model: keras.Model) -> Iterator[keras.layers.Layer]:
    """All layers in order, descending into nested models (the containers themselves are skipped)."""
    for _, layer in _leaf_entries(model):
        yield layer


def semantic_key(model: keras.Model) -> tuple:
    """What a user can change on a built model that changes what it computes without changing its graph:
    every layer's ``activation`` attribute (``model.layers[-1].activation = None``, the Keras Grad-CAM
    example's way to get logits) and a ``call`` set on a layer instance. Compare element-wise with ``is``:
    anything cached about the model (its output activation, traced functions) is stale when one differs."""
    key = []
    for layer in _leaf_layers(model):
        key.append(getattr(layer, "activation", None))
        key.append(vars(layer).get("call"))
    return tuple(key)


def _output_shape(layer: keras.layers.Layer) -> tuple | None:
    try:
        return tuple(layer.output.shape)
    except (AttributeError, ValueError, RuntimeError):
        return None


def _is_feature_map(layer: keras.layers.Layer) -> bool:
    """True for a 4-D map (channels last or first) and for a token layer whose grid the model shows
    (:mod:`camtutor.feature_maps`)."""
    from camtutor.feature_maps import Layout, found_layout

    return isinstance(found_layout(layer), Layout)


def _grid(layer: keras.layers.Layer) -> tuple | None:
    """(h, w) of the layer's feature maps in the layout used for it, or None when it is not a feature map."""
    from camtutor.feature_maps import Layout, found_layout, layout_of

    return layout_of(layer).grid if isinstance(found_layout(layer), Layout) or _stated(layer) else None


def _stated(layer: keras.layers.Layer) -> bool:
    from camtutor.feature_maps import _STATED

    return layer in _STATED


def is_spatial(layer: keras.layers.Layer) -> bool:
    """True when the layer's feature map (B, h, w, K) has more than one position (h*w > 1, or an unknown size).

    The grid is read in the layer's layout: (B, h, w, K), (B, K, h, w), or tokens on an h x w grid.
    A 1x1 feature map gives a "map" of one value per image: nothing to localise.
    """
    grid = _grid(layer)
    if grid is None:
        return False
    h, w = grid
    return h is None or w is None or h * w > 1


def _names(model: keras.Model) -> dict[int, str]:
    """id(layer) -> the name camtutor shows and accepts: the bare name when no other leaf layer shares it,
    else the full path from the model, its name included ("outer/backbone/conv", "outer/conv")."""
    entries = _leaf_entries(model)
    counts: dict[str, int] = {}
    for _, layer in entries:
        counts[layer.name] = counts.get(layer.name, 0) + 1
    return {id(layer): (layer.name if counts[layer.name] == 1 else f"{model.name}/{path}") for path, layer in entries}


def layer_name(model: keras.Model, layer: keras.layers.Layer) -> str:
    """The name that addresses ``layer`` in ``model`` without ambiguity (as listed by :func:`conv_layers`)."""
    return _names(model).get(id(layer), layer.name)


def conv_layers(model: keras.Model) -> list[str]:
    """Names of the layers whose output is a feature map, from input to output.

    A feature map is a 4-D output, (B, H, W, K) or channels-first (B, K, H, W), or the tokens (B, T, D) of a
    Vision Transformer whose grid the model shows (:mod:`camtutor.feature_maps`); token layers whose patch
    tokens do not reach the score (after the last attention of a class-token head) are left out.

    Layers inside nested models (a keras.applications backbone, say) are listed by their own names;
    a name that two layers share (an outer ``conv`` and a backbone's ``conv``) is listed as the full path
    from the model for each of them, ``"outer/conv"`` and ``"outer/backbone/conv"``. Every entry is
    accepted by ``layer=``.
    1x1 feature maps are listed too (see :func:`is_spatial`): they give one value per image, not a map.
    """
    check_model(model)
    names = _names(model)
    found = [layer for layer in _leaf_layers(model) if _is_feature_map(layer)]
    dead = _dead_tokens(model)
    return [names[id(layer)] for layer in found if id(layer) not in dead]


def _dead_tokens(model: keras.Model) -> frozenset:
    from camtutor.feature_maps import dead_token_layers

    return dead_token_layers(model)


def _not_a_layer_hint(model: keras.Model, name: str, candidates: list[str]) -> str | None:
    """A message for a name that exists but is not a leaf layer: the model's input or a nested model."""
    for path, layer in _entries(model):
        if name not in (path, layer.name, f"{model.name}/{path}"):
            continue
        if isinstance(layer, keras.layers.InputLayer):
            return (
                f"{name!r} is the model's input layer: it holds the images themselves, not feature maps the "
                f"network computed; choose one of camtutor.conv_layers(model): {candidates}"
            )
        if isinstance(layer, keras.Model):
            names = _names(model)
            inner = [names[id(x)] for x in _leaf_layers(layer) if _is_feature_map(x) and id(x) in names]
            last = f" its last feature map is {inner[-1]!r};" if inner else ""
            return (
                f"{name!r} is a nested model, not a layer; pass one of its layers instead:{last} "
                f"feature-map layers: {candidates}"
            )
    return None


def find_layer(model: keras.Model, name) -> keras.layers.Layer:
    """The feature-map layer called ``name``, searched in nested models too.

    ``name`` is a bare layer name when no other layer shares it, or a path: relative to the model
    (``"backbone/conv"``) or from it, its name included (``"outer/backbone/conv"``, ``"outer/conv"``).
    It may also state the layer's layout where the model does not show it: ``camtutor.TokenLayer(name,
    grid=(h, w), prefix=p)``, ``camtutor.ChannelsFirst(name)``, ``camtutor.ChannelsLast(name)``
    (:mod:`camtutor.feature_maps`).
    Raises :class:`LayerError` with the candidates when the name is unknown, ambiguous (the message lists
    the paths), names the input or a nested model, the layer's output is not a feature map, its layout
    cannot be read (the message names the statement that fixes it), or it is a token layer whose patch
    tokens do not reach the score (the class-token pitfall).
    """
    from camtutor import feature_maps

    check_model(model)
    spec = name if isinstance(name, feature_maps.SPECS) else None
    if spec is not None:
        name = spec.name
    layer = _named_layer(model, name)
    shape = _output_shape(layer)
    if shape is None or len(shape) not in (3, 4):
        raise LayerError(
            f"layer {name!r} outputs shape {shape}, not a feature map (B, H, W, K) or tokens (B, T, D); "
            f"choose one of camtutor.conv_layers(model): {conv_layers(model)}"
        )
    feature_maps.resolve(layer, name, spec)
    if len(shape) == 3 and id(layer) in _dead_tokens(model):
        alive = [layer_name(model, x) for x in feature_maps.token_layers(model) if id(x) not in _dead_tokens(model)]
        raise LayerError(feature_maps.pitfall_message(model, name, alive))
    check_runs_once(model, layer)
    return layer


def _named_layer(model: keras.Model, name) -> keras.layers.Layer:
    """The leaf layer that ``name`` addresses (see :func:`find_layer`); LayerError naming the candidates."""
    if not isinstance(name, str):
        raise LayerError(f"layer must be a layer name (str), got {type(name).__name__}; choose one of "
                         f"{conv_layers(model)}")
    entries = _leaf_entries(model)
    if "/" in name:
        relative = name[len(model.name) + 1:] if name.startswith(f"{model.name}/") else None
        matches = [layer for path, layer in entries if path == name]
        matches = matches or [layer for path, layer in entries if path == relative]
    else:
        matches = [layer for _, layer in entries if layer.name == name]
    if len(matches) > 1:
        paths = [f"{model.name}/{path}" for path, layer in entries if any(layer is m for m in matches)]
        raise LayerError(
            f"{len(matches)} layers of model {model.name!r} are called {name!r}: {paths}; pass the path of "
            f"the one you mean, e.g. layer={paths[-1]!r}"
        )
    if matches:
        return matches[0]
    candidates = conv_layers(model)
    hint = _not_a_layer_hint(model, name, candidates)
    if hint:
        raise LayerError(hint)
    close = difflib.get_close_matches(name, candidates, n=3)
    hint = f" Did you mean {close}?" if close else ""
    raise LayerError(f"model {model.name!r} has no layer {name!r}.{hint} Feature-map layers: {candidates}")


def _history(tensor) -> tuple:
    history = tensor._keras_history
    return history.operation, history.node_index, history.tensor_index


def _inputs_of(operation, node_index: int) -> list:
    return list(operation._inbound_nodes[node_index].input_tensors)


def _nested_outputs(model: keras.Model) -> list | None:
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        return None
    return list(outputs) if outputs else None


def _node_key(tensor) -> tuple | None:
    try:
        operation, node_index, _ = _history(tensor)
    except AttributeError:
        return None
    return id(operation), node_index


def run_counts(model: keras.Model) -> dict[int, int]:
    """id(layer or operation) -> how many times it runs in one forward pass that computes the output.

    Walks the graph back from the output, one visit per call (node), and into nested models once per call
    of the nested model: a Sequential block called on two branches runs each of its layers twice, although
    each of them has only one inbound node inside the block (so inbound-node counts cannot tell). A nested
    model runs its whole graph, every output of it included; the layers of a subclassed one count once per
    call. Layers that nothing leading to the output calls are absent.
    """
    counts: dict[int, int] = {}
    inner_counts: dict[int, dict[int, int]] = {}
    nodes: set[tuple] = set()
    stack = list(_nested_outputs(model) or [])
    while stack:
        tensor = stack.pop()
        key = _node_key(tensor)
        if key is None or key in nodes:
            continue
        nodes.add(key)
        operation, node_index, _ = _history(tensor)
        counts[id(operation)] = counts.get(id(operation), 0) + 1
        if isinstance(operation, keras.Model):
            if id(operation) not in inner_counts:
                inner = _nested_outputs(operation)
                inner_counts[id(operation)] = (
                    {id(layer): 1 for layer in _leaf_layers(operation)} if inner is None else run_counts(operation)
                )
            for inner_id, n in inner_counts[id(operation)].items():
                counts[inner_id] = counts.get(inner_id, 0) + n
        try:
            stack.extend(_inputs_of(operation, node_index))
        except (AttributeError, IndexError):
            pass
    return counts


def score_ancestors(model: keras.Model) -> set[int]:
    """ids of the layers (and operations) the model's output depends on (walking the graph back from it)."""
    seen: set[int] = set()
    visited: set[int] = set()
    stack = list(_nested_outputs(model) or [])
    while stack:
        tensor = stack.pop()
        if id(tensor) in visited:
            continue
        visited.add(id(tensor))
        try:
            operation, node_index, tensor_index = _history(tensor)
        except AttributeError:
            continue
        seen.add(id(operation))
        if isinstance(operation, keras.Model):
            inner = _nested_outputs(operation)
            if inner is None:  # a subclassed model: its layers all count
                seen.update(id(layer) for layer in _leaf_layers(operation))
            else:
                stack.append(inner[tensor_index])
        try:
            stack.extend(_inputs_of(operation, node_index))
        except (AttributeError, IndexError):
            pass
    return seen


def _runs_more_than_once(model: keras.Model, layer, counts: dict[int, int], shown: str) -> LayerError:
    """The refusal for a feature map that runs more than once, naming the last one that runs once."""
    ancestors = score_ancestors(model)
    once = [x for x in _leaf_layers(model) if counts.get(id(x)) == 1 and id(x) in ancestors and is_spatial(x)
            and not isinstance(x, keras.layers.ZeroPadding2D)]
    fix = f"layer={layer_name(model, once[-1])!r} (the last feature map that runs once)" if once else (
        "a layer that runs once (camtutor.conv_layers(model) lists them all)")
    return LayerError(
        f"{shown} runs {counts[id(layer)]} times in one forward pass (a shared layer, or one inside a model "
        f"called more than once), so its feature maps are ambiguous: which call would the map explain? "
        f"Pass {fix}"
    )


def check_runs_once(model: keras.Model, layer) -> None:
    """Raise :class:`LayerError` naming a layer to use instead when ``layer`` runs more than once per pass."""
    counts = run_counts(model)
    if counts.get(id(layer), 1) > 1:
        raise _runs_more_than_once(model, layer, counts, f"layer {layer_name(model, layer)!r}")


def default_layer(model: keras.Model) -> keras.layers.Layer:
    """The last feature map with spatial extent (h*w > 1) that the class score depends on (Grad-CAM's usual choice).

    Operations count as well as layers: in ConvNeXt the residual sum ``x + branch`` (a keras.ops operation)
    feeds the pooling, and it is the default there, not the branch without its skip path.
    A backbone that ends in a 1x1 map (MobileNet at 32x32, GAP with keepdims then a 1x1 conv) would give
    one value per image there; the default is the last layer before that which still has a map.
    Raises :class:`LayerError` when that last map runs more than once in a forward pass (a shared layer),
    naming the last one that runs once.
    """
    check_model(model)
    from camtutor.feature_maps import default_token_layer  # a Vision Transformer: its own rule

    if (tokens := default_token_layer(model)) is not None:
        return tokens
    leaves = [layer for layer in _leaf_layers(model) if _is_feature_map(layer)]
    if not leaves:
        raise LayerError(f"model {model.name!r} has no layer with a 4-D (B, H, W, K) output; CAM needs a conv net")
    ancestors, counts = score_ancestors(model), run_counts(model)
    used = [layer for layer in leaves if id(layer) in ancestors] or leaves
    # a ZeroPadding2D output is its input plus a border of zeros: its grid is not the image's, skip it
    spatial = [layer for layer in used if is_spatial(layer) and not isinstance(layer, keras.layers.ZeroPadding2D)]
    if not spatial:
        raise LayerError(
            f"every feature map of model {model.name!r} that the output depends on is 1x1, so no layer gives a "
            "spatial map; feed larger images (a model built with a larger input_shape)"
        )
    if counts.get(id(spatial[-1]), 1) > 1:
        shown = f"the last feature map of model {model.name!r}, {layer_name(model, spatial[-1])!r},"
        raise _runs_more_than_once(model, spatial[-1], counts, shown)
    return spatial[-1]


def _innermost(tensor) -> tuple:
    """(leaf operation, tensor) that computes ``tensor``, following it into nested (functional) models."""
    while True:
        operation, _, index = _history(tensor)
        inner = _nested_outputs(operation) if isinstance(operation, keras.Model) else None
        if inner is None:
            return operation, tensor
        tensor = inner[index]


def _innermost_producer(tensor) -> keras.layers.Layer:
    """The leaf layer that computes ``tensor``, looking inside nested models."""
    return _innermost(tensor)[0]


@dataclass(frozen=True)
class OutputInfo:
    """How a model's output relates to class scores.

    ``activation`` is "softmax", "sigmoid" or "linear" (logits). ``layer`` is
    the layer or operation that applies it (None for "linear", or when camtutor cannot reach inside it).
    ``bypass`` says how the pre-activation score is reached while tracing: "call" (the operation returns
    its input: an Activation or Softmax layer, ``keras.ops.softmax``/``sigmoid``), "activation" (the
    layer's ``activation`` attribute: ``Dense(activation="softmax")``), or None (no activation, or one
    hidden in a custom layer or subclassed model, where ``logits_reachable`` is False).
    ``num_classes`` counts a single output unit as two classes (0 = negative, 1 = positive), whether it
    is a sigmoid or a raw logit: class 1 scores z, class 0 scores -z.
    """

    activation: str
    layer: keras.layers.Layer | None
    num_units: int
    num_classes: int
    bypass: str | None = None
    logits_reachable: bool = True
    source: str = ""

    @property
    def binary(self) -> bool:
        return self.activation in ("sigmoid", "linear") and self.num_units == 1


def _activation_name(layer) -> str:
    """"softmax", "sigmoid", "linear" or another activation's name, read from the layer's type and attribute."""
    if isinstance(layer, (keras.layers.Softmax, _ops_nn.Softmax)):
        return "softmax"
    if isinstance(layer, _ops_nn.Sigmoid):
        return "sigmoid"
    activation = getattr(layer, "activation", None)
    if activation is None:
        return "linear"
    try:
        name = keras.activations.serialize(activation)
    except (ValueError, TypeError):
        name = getattr(activation, "__name__", "")
    if isinstance(name, dict):
        name = name.get("config", name.get("class_name", ""))
    return name if isinstance(name, str) and name else "other"


def _is_builtin(operation) -> bool:
    module = type(operation).__module__
    return module.startswith("keras.") and not isinstance(operation, keras.layers.Lambda)


# between the final activation and the output: they change neither the values nor their order along the class axis
_THROUGH = (keras.layers.Dropout, keras.layers.Identity, keras.layers.GaussianNoise, keras.layers.GaussianDropout,
            keras.layers.AlphaDropout, keras.layers.Flatten, keras.layers.Reshape, _ops_core.Cast, _ops_numpy.Reshape,
            _ops_numpy.Squeeze)


def _probe(model: keras.Model) -> np.ndarray:
    """The model's outputs (3, C) float on three fixed probe batches of one image (zeros, uniform, normal x 3)."""
    shape = tuple(d if d is not None else 32 for d in model.inputs[0].shape[1:])
    rng = np.random.default_rng(0)
    probes = np.stack([np.zeros(shape), rng.random(shape), 3.0 * rng.normal(size=shape)]).astype(np.float32)
    return np.asarray(keras.ops.convert_to_numpy(model(probes, training=False)), dtype=np.float64)


def _opaque(model: keras.Model, operation, units: int) -> OutputInfo:
    """The output comes from a custom layer or a subclassed model: guess only to refuse, never to transform."""
    kind = type(operation).__name__
    source = f"{kind} {getattr(operation, 'name', '')!r}"
    try:
        out = _probe(model)
    except Exception:  # noqa: BLE001 - a probe that fails tells nothing; treat the output as scores
        out = None
    classes = 2 if units == 1 else units
    if out is not None and np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0:
        if units > 1 and np.allclose(out.sum(axis=1), 1.0, atol=1e-3):
            return OutputInfo("softmax", None, units, units, None, False, source)
        return OutputInfo("sigmoid", None, units, classes, None, False, source)
    return OutputInfo("linear", None, units, classes, None, True, source)


def output_info(model: keras.Model) -> OutputInfo:
    """Read the model's final activation (softmax, sigmoid, or none) and its number of classes.

    Walks the graph back from the output through pass-through layers (Dropout, a linear Activation, a cast),
    into nested models, and recognises a softmax/sigmoid however it is written: ``Dense(activation=...)``,
    ``Activation``, ``Softmax``, ``keras.ops.softmax``/``sigmoid`` or ``keras.activations.softmax``.
    When the output comes from a custom layer or a subclassed model, the outputs of a probe batch decide:
    rows of probabilities -> softmax (or sigmoid) with ``logits_reachable=False``; otherwise logits.
    """
    check_model(model)
    units = int(model.outputs[0].shape[-1])
    classes = 2 if units == 1 else units
    tensor = model.outputs[0]
    while True:
        operation, node_index, index = _history(tensor)
        if isinstance(operation, keras.Model):
            inner = _nested_outputs(operation)
            if inner is None:
                return _opaque(model, operation, units)
            tensor = inner[index]
            continue
        through = isinstance(operation, _THROUGH)
        name = _activation_name(operation)
        if isinstance(operation, keras.layers.Activation) and name == "linear":
            through = True
        if through:
            inputs = _inputs_of(operation, node_index)
            if len(inputs) != 1:
                break
            tensor = inputs[0]
            continue
        if not _is_builtin(operation):
            return _opaque(model, operation, units)
        if name in _SQUASHING:
            by_call = isinstance(operation, (keras.layers.Activation, keras.layers.Softmax, _ops_nn.Softmax,
                                             _ops_nn.Sigmoid))
            source = f"{type(operation).__name__} {operation.name!r}"
            if name == "softmax" and units == 1:
                raise ModelError(
                    f"model {model.name!r} ends with a softmax over one unit, which always outputs 1.0: every map "
                    "would be zero. Use Dense(1, activation='sigmoid') for a binary classifier, or Dense(2) + softmax"
                )
            return OutputInfo(name, operation, units, classes if name == "sigmoid" else units,
                              "call" if by_call else "activation", True, source)
        break
    return OutputInfo("linear", None, units, classes, None, True, f"{type(operation).__name__} {operation.name!r}")


@dataclass(frozen=True)
class GapHead:
    """The GlobalAveragePooling2D -> Dense head that CAM reads its weights from.

    ``feature_layer`` is the leaf layer whose (B, H, W, K) output feeds the
    pooling. ``binary`` is True for a single sigmoid unit.
    """

    pooling: keras.layers.Layer
    dense: keras.layers.Layer
    feature_layer: keras.layers.Layer
    binary: bool = False

    @property
    def kernel(self) -> np.ndarray:
        """The Dense kernel as (K, C) numpy, read now (so training or set_weights is seen).

        A single sigmoid unit is expanded to two columns (-w, w): class 0 and class 1.
        """
        kernel = np.asarray(self.dense.kernel.numpy(), dtype=np.float32)
        return np.concatenate([-kernel, kernel], axis=1) if self.binary else kernel


_PASS_THROUGH = (keras.layers.Dropout, keras.layers.Activation, keras.layers.Softmax, keras.layers.Identity,
                 _ops_nn.Softmax, _ops_nn.Sigmoid, _ops_core.Cast)


def _input_producer(operation, tensor=None):
    """The leaf operation that computes the (single) input of ``operation`` (the node that made ``tensor``)."""
    node_index = _history(tensor)[1] if tensor is not None else 0
    inputs = _inputs_of(operation, node_index)
    return _innermost(inputs[0]) if len(inputs) == 1 else (None, None)


def _check_token_mean(model: keras.Model, pooling, feature) -> None:
    """CAM on tokens: the GlobalAveragePooling1D must average exactly the patch tokens of a found grid."""
    from camtutor.feature_maps import TOKENS, Layout, found_layout

    layout = found_layout(feature) if feature is not None else None
    if getattr(pooling, "data_format", "channels_last") != "channels_last" or not isinstance(layout, Layout) or (
            layout.kind != TOKENS):
        raise ModelError(
            f"CAM needs the GlobalAveragePooling1D of model {model.name!r} to average tokens on a patch grid camtutor "
            "can read; use camtutor.grad_cam(model, images, class_index) (it equals CAM up to a factor there)")
    if layout.prefix:
        raise ModelError(
            f"the GlobalAveragePooling1D of model {model.name!r} averages {layout.prefix} class/register token(s) "
            "with the patch tokens, so the Dense weights do not decompose into a map of the grid (CAM is undefined); "
            "use camtutor.grad_cam(model, images, class_index)")


def gap_dense_head(model: keras.Model) -> GapHead:
    """Find the GAP -> Dense head at the end of ``model``, or raise :class:`ModelError` suggesting Grad-CAM.

    The pooling is GlobalAveragePooling2D (either data format), or GlobalAveragePooling1D over the tokens of
    a Vision Transformer without class token (the mean of the patch tokens is the mean over their grid).

    Dropout and a separate softmax/sigmoid activation (layer or ``keras.ops``) may stand between
    them; anything else (Flatten, a hidden Dense) makes CAM undefined.
    """
    info = output_info(model)
    chain = []
    layer, tensor = _innermost(model.outputs[0])
    while isinstance(layer, _PASS_THROUGH):
        chain.append(layer)
        layer, tensor = _input_producer(layer, tensor)
    dense, pooling = layer, None
    if isinstance(dense, keras.layers.Dense):
        pooling, tensor = _input_producer(dense, tensor)
    while pooling is not None and isinstance(pooling, _PASS_THROUGH):
        pooling, tensor = _input_producer(pooling, tensor)
    ok = (
        isinstance(dense, keras.layers.Dense)
        and isinstance(pooling, (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalAveragePooling1D))
        and not getattr(pooling, "keepdims", False)
    )
    if ok and isinstance(pooling, keras.layers.GlobalAveragePooling1D):  # a ViT that averages its tokens
        _check_token_mean(model, pooling, _input_producer(pooling, tensor)[0])
    if not ok:
        found = " -> ".join(type(x).__name__ for x in [pooling, dense, *reversed(chain)] if x is not None)
        raise ModelError(
            f"CAM needs a model that ends with GlobalAveragePooling2D -> Dense; model {model.name!r} ends with "
            f"{found}. Use camtutor.grad_cam(model, images, class_index), which works on any conv net"
        )
    feature, _ = _input_producer(pooling, tensor)
    return GapHead(pooling, dense, feature, info.binary)
