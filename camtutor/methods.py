"""The heatmap methods of camtutor: names and one-line labels, without TensorFlow.

The command line's ``--method`` choices and help read this module, so ``camtutor --help``
starts in a fraction of a second; :func:`camtutor.explain.heatmap` dispatches on the same names.
"""

from __future__ import annotations

__all__ = ["METHODS", "METHOD_LABELS", "method_help"]

#: method name -> one-line label (paper, and what weights the (B, H, W, K) feature maps A).
METHOD_LABELS: dict[str, str] = {
    "cam": "CAM (Zhou et al. 2016): the GAP -> Dense weights w_k^c, no gradients; needs a GAP -> Dense head",
    "gradcam": "Grad-CAM (Selvaraju et al. 2017): channel means of dS_c/dA, then ReLU",
    "hirescam": "HiResCAM (Draelos & Carin 2020): dS_c/dA * A elementwise, summed over channels, then ReLU",
}

#: The method names, in the order they are listed: ("cam", "gradcam", "hirescam").
METHODS: tuple[str, ...] = tuple(METHOD_LABELS)


def method_help(indent: int = 2) -> str:
    """One line per method, ``name  label``, for help texts."""
    width = max(map(len, METHODS))
    return "\n".join(f"{'':<{indent}}{name:<{width}}  {METHOD_LABELS[name]}" for name in METHODS)
