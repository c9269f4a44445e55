"""Exceptions that camtutor raises for bad input.

Every message says what is wrong *and* how to fix it. All of them derive from
:class:`CamTutorError`, which is a :class:`ValueError`, so ``except ValueError``
keeps working for users who do not know about camtutor's classes.
"""

from __future__ import annotations


class CamTutorError(ValueError):
    """Base class of every error camtutor raises on purpose."""


class ImageError(CamTutorError):
    """An image file or array that cannot be used (missing, unreadable, wrong shape, NaN...)."""


class LayerError(CamTutorError):
    """A layer that does not exist, or whose output is not a 4-D (B, H, W, K) feature map."""


class TargetError(CamTutorError):
    """A class index out of range, an unknown class name, or the wrong number of targets."""


class ModelError(CamTutorError):
    """A model camtutor cannot explain: several inputs/outputs, no GAP -> Dense head for CAM, not a Keras model."""
