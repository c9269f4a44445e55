"""Target functions: which scalar per image the explanation is about.

A target maps the model's class scores (B, C) to one score per image (B,).
The gradient of that score says which pixels of the feature maps should grow
to raise it. The original keras-grad-cam post multiplied the outputs by a
one-hot vector of the class; :func:`class_score` does the same, batched.
"""

from __future__ import annotations

from typing import Callable, Sequence, Union

import numpy as np
import tensorflow as tf

from camtutor.errors import TargetError

TargetFunction = Callable[[tf.Tensor], tf.Tensor]
ClassIndex = Union[int, str, Sequence[Union[int, str]], np.ndarray, TargetFunction]


def one_hot(class_indices: Sequence[int] | np.ndarray | tf.Tensor, num_classes: int) -> tf.Tensor:
    """(B,) class indices -> (B, C) float one-hot rows."""
    return tf.one_hot(tf.cast(class_indices, tf.int32), num_classes, dtype=tf.float32)


def class_score(scores: tf.Tensor | np.ndarray, class_indices: Sequence[int] | np.ndarray | tf.Tensor) -> tf.Tensor:
    """One-hot masking: ``y[b] = sum_c scores[b, c] * onehot[b, c]``: (B, C), (B,) -> (B,).

    This is the target of the original post (outputs times a one-hot vector),
    with one class per image.
    """
    scores = tf.convert_to_tensor(scores, dtype=tf.float32)
    return tf.reduce_sum(scores * one_hot(class_indices, scores.shape[-1]), axis=-1)


def contrast(class_a: int, class_b: int) -> TargetFunction:
    """A custom target, "evidence for ``class_a`` rather than ``class_b``": ``y = s_a - s_b`` per image."""

    def target(scores: tf.Tensor) -> tf.Tensor:
        return scores[:, class_a] - scores[:, class_b]

    target.__name__ = f"contrast_{class_a}_vs_{class_b}"
    return target


def resolve_class_indices(
    class_index: ClassIndex,
    batch_size: int,
    num_classes: int,
    class_names: Sequence[str] | None = None,
) -> np.ndarray:
    """Turn ``class_index`` into one class per image, (B,) int32, or raise :class:`TargetError`.

    * an int (or class name) applies to every image of the batch;
    * a sequence needs exactly one entry per image: a single-element list for
      a larger batch is refused rather than silently explaining image 0;
    * every index must be in ``0 .. num_classes - 1``.
    """

    def as_index(value) -> int:
        if isinstance(value, (bool, np.bool_)):
            raise TargetError(f"class index must be an int or a class name, got {value!r}")
        if isinstance(value, str):
            if class_names is None:
                raise TargetError(f"class name {value!r} given, but no class names are known; pass an int index")
            if value not in class_names:
                raise TargetError(f"unknown class name {value!r}; known classes: {list(class_names)}")
            return list(class_names).index(value)
        if isinstance(value, (int, np.integer)):
            if not 0 <= int(value) < num_classes:
                raise TargetError(
                    f"class index {int(value)} is out of range for a model with {num_classes} classes "
                    f"(valid: 0 .. {num_classes - 1})"
                )
            return int(value)
        raise TargetError(f"class index must be an int or a class name, got {type(value).__name__} {value!r}")

    if isinstance(class_index, (str, int, np.integer, bool, np.bool_)):
        return np.full(batch_size, as_index(class_index), dtype=np.int32)
    values = np.asarray(class_index).tolist() if isinstance(class_index, np.ndarray) else class_index
    if not isinstance(values, (list, tuple)):
        raise TargetError(
            f"class_index must be an int, a class name, one per image, or a callable; got {type(class_index).__name__}"
        )
    if len(values) != batch_size:
        raise TargetError(
            f"got {len(values)} class indices for {batch_size} images; give exactly one per image, "
            "or a single int to use the same class for all"
        )
    return np.asarray([as_index(v) for v in values], dtype=np.int32)
