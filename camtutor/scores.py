"""Reading a model's output: the one function that turns it into logits and probabilities, and the score chosen.

Every compiled function of :mod:`camtutor.compiled` reads the model's output through :func:`read_scores` and
picks the score a method differentiates (or reads) with :func:`select_score`: ``score="logit"``, the
pre-softmax score (reached by bypassing the final softmax/sigmoid while tracing, :mod:`camtutor.surgery`), or
``score="probability"``, the model's class probabilities. :func:`no_logits_message` says what to do when the
logit cannot be reached.
"""

from __future__ import annotations

import tensorflow as tf

from camtutor.errors import ModelError
from camtutor.layers import OutputInfo

__all__ = ["SCORES", "read_scores", "select_score", "no_logits_message"]

#: The scores a method can read: the pre-activation score ("logit") or the class probability.
SCORES = ("logit", "probability")


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


def no_logits_message(model_name: str, info: OutputInfo) -> str:
    """Why ``score="logit"`` is refused for a model whose softmax/sigmoid camtutor cannot bypass, and the fix."""
    return (
        f"model {model_name!r} outputs {info.activation} probabilities computed inside "
        f"{info.source or 'a layer camtutor cannot see into'}, so the pre-activation score (logit) cannot "
        "be reached; pass score='probability', or expose the logits (end the model with a Dense layer and a "
        "separate keras.layers.Activation/Softmax, or keras.ops.softmax, in a Functional model)"
    )


def select_score(logits: tf.Tensor | None, probabilities: tf.Tensor, score: str, model_name: str,
                 info: OutputInfo) -> tf.Tensor:
    """The scores (B, C) that ``score`` names, from :func:`read_scores`'s pair; ModelError if the logits are
    unreachable (the callers check :attr:`~camtutor.layers.OutputInfo.logits_reachable` first)."""
    if score == "probability":
        return probabilities
    if logits is None:  # pragma: no cover - calls.prepare refuses this first
        raise ModelError(no_logits_message(model_name, info))
    return logits
