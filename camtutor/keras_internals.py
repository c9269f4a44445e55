"""The private Keras internals camtutor relies on, in one place, checked when camtutor is imported.

Keras 3 has no public API for three things camtutor needs, so it reads them from ``keras.src``:

* the operation classes behind ``keras.ops`` (``Softmax``, ``Sigmoid``, ``Cast``, ``Reshape``,
  ``Squeeze``), to recognise a final softmax or sigmoid written as ``keras.ops.softmax(x)`` rather than a
  layer (:mod:`camtutor.layers`);
* a symbolic tensor's ``_keras_history`` and an operation's ``_inbound_nodes``, to walk the graph
  from the output back to the feature maps (:mod:`camtutor.layers`);
* ``Model._flatten_layers``, to find every layer of nested models (:mod:`camtutor.surgery`).

Tested with the pairs in :data:`TESTED` (the oldest one runs the unit tests in CI, ``.ci/run``); the
range is declared in ``pyproject.toml``. If a Keras release moves one of these, importing camtutor fails
here with one :class:`camtutor.CamTutorError` naming the supported range, not deep inside a map.
"""

from __future__ import annotations

import keras

from camtutor.errors import CamTutorError

__all__ = ["TESTED", "SUPPORTED", "ops_core", "ops_nn", "ops_numpy", "keras_history", "inbound_tensors",
           "flatten_layers"]

#: (TensorFlow, Keras) pairs the unit tests pass with: the oldest supported pair and the newest tested one.
TESTED = (("2.16.1", "3.3.3"), ("2.21.0", "3.15.1"))
#: The supported range, as pyproject.toml declares it.
SUPPORTED = "tensorflow >= 2.16.1, < 2.22 with keras >= 3.3.3, < 3.16"


def _missing(what: str, exc: BaseException | None = None) -> CamTutorError:
    detail = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
    return CamTutorError(
        f"this Keras ({keras.__version__}) has no {what}{detail}, a Keras internal camtutor needs; camtutor supports "
        f"{SUPPORTED}: install a supported pair, e.g. pip install \"keras=={TESTED[-1][1]}\" "
        f"\"tensorflow=={TESTED[-1][0]}\""
    )


try:
    from keras.src.ops import core as ops_core
    from keras.src.ops import nn as ops_nn
    from keras.src.ops import numpy as ops_numpy
except ImportError as _exc:  # pragma: no cover - a Keras that moved its ops
    raise _missing("keras.src.ops.core / nn / numpy", _exc) from None

for _module, _names in ((ops_nn, ("Softmax", "Sigmoid")), (ops_core, ("Cast",)), (ops_numpy, ("Reshape", "Squeeze"))):
    for _name in _names:
        if not isinstance(getattr(_module, _name, None), type):  # pragma: no cover - a Keras that renamed one
            raise _missing(f"{_module.__name__}.{_name}")
if not callable(getattr(keras.Model, "_flatten_layers", None)):  # pragma: no cover
    raise _missing("Model._flatten_layers")


def keras_history(tensor) -> tuple:
    """``(operation, node_index, tensor_index)`` that produced a symbolic tensor (``tensor._keras_history``)."""
    try:
        return tensor._keras_history
    except AttributeError as exc:  # pragma: no cover - a Keras that renamed it
        raise _missing("KerasTensor._keras_history", exc) from None


def inbound_tensors(operation, node_index: int) -> list:
    """The input tensors of one call (node) of ``operation`` (``operation._inbound_nodes[i].input_tensors``)."""
    try:
        return list(operation._inbound_nodes[node_index].input_tensors)
    except AttributeError as exc:  # pragma: no cover - a Keras that renamed it
        raise _missing("Operation._inbound_nodes[i].input_tensors", exc) from None


def flatten_layers(model) -> list:
    """Every layer inside ``model``, nested models' layers included, not the model itself."""
    return list(model._flatten_layers(include_self=False, recursive=True))


def _check_graph_internals() -> None:
    """One symbolic tensor through one layer: its history and the node's inputs must be where camtutor reads them."""
    inputs = keras.Input((2,))
    outputs = keras.layers.Identity()(inputs)
    operation, node_index, _ = keras_history(outputs)
    if inbound_tensors(operation, node_index)[0] is not inputs:  # pragma: no cover
        raise _missing("the graph layout camtutor walks (node.input_tensors)")


_check_graph_internals()
