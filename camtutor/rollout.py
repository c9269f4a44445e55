"""Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers"), for ViTs.

A transformer's own, model-internal baseline for a class activation map: how much each input token can
have flowed into the class token through the attention of every block, ignoring the MLPs and the values.

* :func:`attention_rollout` -- the pure formula, numpy in, numpy out: per-layer attention matrices
  (B, heads, T, T) -> the rolled-out (B, T, T);
* :func:`rollout_map` -- the class token's row of it, reshaped to the patch grid (B, h, w);
* :func:`attention_model` / :func:`attention_matrices` -- the attention matrices of a Keras model's
  ``MultiHeadAttention`` layers, computed offline by a clone of the model that shares its layers.

The formula, for layers 1..L (Abnar & Zuidema 2020, Sec. 3): the raw attention of layer l averaged over
its heads, ``A_l = mean_heads(W_l)`` (T, T, rows sum to 1); the residual connection is modelled by adding
the identity, ``Ã_l = (A_l + I) / 2`` (each row re-normalised to sum 1); and attention flows through the
layers by the matrix product ``R = Ã_L ··· Ã_2 Ã_1``. Row ``i`` of ``R`` says how much of each input token
reaches token ``i`` at the top. Rollout does not depend on the class: it is the same map for every class.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from camtutor.errors import CamTutorError, ModelError

__all__ = ["attention_rollout", "rollout_map", "attention_model", "attention_matrices"]


def _check_attentions(attentions: object) -> list[np.ndarray]:
    if isinstance(attentions, np.ndarray) and attentions.ndim == 4:
        attentions = [attentions]
    if not isinstance(attentions, (list, tuple)) or not attentions:
        raise CamTutorError(
            "attentions must be a non-empty list of per-layer attention arrays (B, heads, T, T), "
            "first block first; get them with camtutor.rollout.attention_matrices(model, images)."
        )
    arrays = [np.asarray(a, dtype=np.float64) for a in attentions]
    shape = arrays[0].shape
    for k, a in enumerate(arrays):
        if a.ndim != 4 or a.shape[-1] != a.shape[-2]:
            raise CamTutorError(f"attention {k} has shape {a.shape}; expected (B, heads, T, T) with T keys = T queries.")
        if a.shape[0] != shape[0] or a.shape[2:] != shape[2:]:
            raise CamTutorError(
                f"attention {k} has shape {a.shape}, attention 0 {shape}: every layer needs the same batch and tokens."
            )
        if not np.all(np.isfinite(a)):
            raise CamTutorError(f"attention {k} holds NaN or infinite values.")
    return arrays


def attention_rollout(attentions: Sequence[np.ndarray] | np.ndarray, *, residual: bool = True) -> np.ndarray:
    """Attention rollout: the per-layer attention matrices rolled out to (B, T, T), float64.

    Args:
        attentions: a list, first block first, of the attention weights of each layer, (B, heads, T, T):
            ``attentions[l][b, n, i, j]`` is how much query token i attends to key token j in head n
            (each row sums to 1, a softmax). A single (B, heads, T, T) array is one layer.
        residual: add the identity for the residual connection (the paper's ``0.5 W + 0.5 I``); ``False``
            multiplies the head-averaged matrices alone (the "raw attention" product the paper warns about).

    Returns:
        ``R = Ã_L ··· Ã_1`` (B, T, T), with ``Ã_l = rownormalise(mean_heads(W_l) + I)`` (or without ``+ I``).
        Each row of ``R`` sums to 1 when each input row did. ``R[b, 0, prefix:]`` is the class token's
        map over the patch tokens (:func:`rollout_map`).

    Raises:
        camtutor.errors.CamTutorError: not a list of equally shaped (B, heads, T, T) arrays, or NaN.
    """
    arrays = _check_attentions(attentions)
    batch, _, tokens, _ = arrays[0].shape
    rolled = np.broadcast_to(np.eye(tokens), (batch, tokens, tokens)).copy()
    for layer in arrays:
        step = layer.mean(axis=1)
        if residual:
            step = step + np.eye(tokens)
        total = step.sum(axis=-1, keepdims=True)
        step = np.divide(step, total, out=np.zeros_like(step), where=total != 0)
        rolled = step @ rolled  # later layers multiply from the left: R_l = Ã_l R_(l-1)
    return rolled


def rollout_map(
    attentions: Sequence[np.ndarray] | np.ndarray,
    grid: tuple[int, int],
    *,
    prefix: int = 1,
    token: int = 0,
    residual: bool = True,
) -> np.ndarray:
    """The rollout of ``token`` (default 0, the class token) over the patch tokens, on the patch grid.

    Args:
        attentions: per-layer attention (B, heads, T, T), first block first (see :func:`attention_rollout`).
        grid: (h, w), the patch grid, ``h * w == T - prefix``; patch tokens are in row-major order
            (token ``prefix + r * w + c`` is grid cell (r, c)), as a ``Reshape`` of a (B, h, w, D) map gives.
        prefix: the number of leading non-patch tokens (1: one class token; 0: none).
        token: the query token whose row is read (the class token, 0, by default).
        residual: see :func:`attention_rollout`.

    Returns:
        (B, h, w) float32 maps, each >= 0, summing to at most 1 (the rest is the prefix tokens' share).
        The same map for every class: rollout is class-blind.
    """
    arrays = _check_attentions(attentions)
    tokens = arrays[0].shape[-1]
    try:
        h, w = (int(v) for v in grid)
    except (TypeError, ValueError):
        raise CamTutorError(f"grid must be (h, w), two positive ints; got {grid!r}") from None
    if not isinstance(prefix, (int, np.integer)) or prefix < 0:
        raise CamTutorError(f"prefix must be an int >= 0 (the number of class/register tokens); got {prefix!r}")
    if h < 1 or w < 1 or h * w != tokens - prefix:
        raise CamTutorError(
            f"grid {(h, w)} holds {h * w} patches, but the attention has {tokens} tokens and prefix={prefix} "
            f"leaves {tokens - prefix}: pass the patch grid (h, w) with h * w = T - prefix."
        )
    if not 0 <= int(token) < tokens:
        raise CamTutorError(f"token must index one of the {tokens} tokens; got {token!r}")
    rolled = attention_rollout(arrays, residual=residual)
    return rolled[:, int(token), prefix:].reshape(-1, h, w).astype(np.float32)


def _attention_layers(model) -> list:
    import keras

    found = [layer for layer in model.layers if isinstance(layer, keras.layers.MultiHeadAttention)]
    if not found:
        raise ModelError(
            f"model {model.name!r} has no MultiHeadAttention layer at its top level: attention rollout needs "
            "the attention weights of each block."
        )
    return found


def attention_model(model):
    """A Functional model that shares ``model``'s layers and outputs ``[output, A_1, ..., A_L]``.

    ``A_l`` (B, heads, T, T) is the attention weights of the l-th ``MultiHeadAttention`` layer (in graph
    order), the softmax the layer computes anyway: the clone calls each of them with
    ``return_attention_scores=True`` (``keras.models.clone_model(call_function=...)``), and reuses every
    layer (``clone_function=lambda layer: layer``), so it holds the same weights and ``model`` is not changed.

    Raises:
        camtutor.errors.ModelError: not a Functional model, or no top-level ``MultiHeadAttention`` layer.
    """
    import keras

    if not isinstance(model, keras.Model) or isinstance(model, keras.Sequential) or not hasattr(model, "_nodes_by_depth"):
        raise ModelError("attention_model needs a Functional keras.Model (built with keras.Input).")
    _attention_layers(model)
    scores: list = []

    class WithWeights(keras.layers.Layer):
        # a graph node whose outputs are both results; a bare call of the attention layer with
        # return_attention_scores=True does not keep that keyword in the node, so the weights would
        # not be connected to the clone's input
        def __init__(self, attention, **kwargs):
            super().__init__(name=f"{attention.name}_with_weights", **kwargs)
            self.attention = attention

        def call(self, *args, **kwargs):
            return self.attention(*args, return_attention_scores=True, **kwargs)

    def call(layer, *args, **kwargs):
        if isinstance(layer, keras.layers.MultiHeadAttention):
            # None-valued keywords (query_mask=None...) are the layer's defaults; Keras 3.3 refuses them beside a
            # tensor (attention_mask) in a nested call's arguments
            kwargs = {key: value for key, value in kwargs.items() if value is not None}
            output, weights = WithWeights(layer)(*args, **kwargs)
            scores.append(weights)
            return output
        return layer(*args, **kwargs)

    clone = keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call)
    inputs = clone.inputs[0] if len(clone.inputs) == 1 else clone.inputs  # one input: called with one array
    return keras.Model(inputs, [clone.outputs[0], *scores], name=f"{model.name}_attention")


def attention_matrices(model, images: np.ndarray, *, batch_size: int = 64) -> list[np.ndarray]:
    """The attention weights of every ``MultiHeadAttention`` layer of ``model`` on ``images``.

    Args:
        model: a Functional Keras model (a ViT), as given to :func:`attention_model`.
        images: (B, H, W, C) float32, exactly what the model takes.
        batch_size: images per forward pass.

    Returns:
        A list, first block first, of float32 arrays (B, heads, T, T); each row sums to 1.
    """
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim != 4 or len(arr) == 0:
        raise CamTutorError(f"images must be a non-empty batch (B, H, W, C); got shape {arr.shape}")
    probe = attention_model(model)
    parts = [probe(arr[i:i + batch_size], training=False)[1:] for i in range(0, len(arr), batch_size)]
    return [np.concatenate([np.asarray(p[k]) for p in parts]) for k in range(len(parts[0]))]
