"""The registry of heatmap methods: one entry per method, without TensorFlow.

Every consumer reads this one table: :func:`camtutor.heatmap` dispatches on it, the command's
``--method`` choices and help (so ``camtutor --help`` starts without importing TensorFlow), the
explorer's method control, and the benchmarks. An entry declares what a method needs and where its
implementation lives; the implementation is imported on first use (:meth:`Method.implementation`).

How an entry turns one forward pass into maps (``kind``):

* ``"weighting"``: a rule ``rule(A, dy/dA) -> weights`` from :data:`camtutor.maths.WEIGHTINGS`; the map is
  ``sum_k weights * A`` (then ReLU). Compiled with the forward and backward pass into one ``tf.function``.
* ``"forward"``: a function of the activations alone (and the class), run inside the compiled forward
  pass; no gradient tape is built (CAM, Eigen-CAM).
* ``"passes"``: a driver that, after the forward pass, scores new inputs or ablated activations in large
  batched, memory-bounded calls (Score-CAM, Ablation-CAM).
* ``"input"``: a gradient with respect to the input image at input resolution (Guided Grad-CAM).

To add a built-in method: write its function (``camtutor/method_impl.py`` shows the three signatures, or add
a rule to :data:`camtutor.maths.WEIGHTINGS`) and add one :class:`Method` to ``_ENTRIES`` here; the command, the
explorer, the benchmarks and the registry-derived tests pick it up. To add a weighting at run time, without
editing camtutor: :func:`register_weighting` (and :func:`unregister`).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable

__all__ = ["METHODS", "Method", "REGISTRY", "default_score", "get", "method_help", "method_summaries",
           "register_weighting", "unregister"]


@dataclass(frozen=True)
class Method:
    """One heatmap method.

    Attributes:
        name: the name used in ``method=`` and ``--method``.
        label: a short display name ("Grad-CAM").
        summary: one line: the paper and what weights the (B, h, w, K) feature maps A.
        paper: the reference.
        kind: "weighting", "forward", "passes" or "input" (see the module docstring).
        gradients: needs dy/dA (builds a gradient tape).
        extra_passes: runs the network again on new inputs or ablated activations (slow: K x B inputs).
        input_gradient: needs dy/dx at the input (guided backpropagation).
        class_specific: False when the map ignores the class (Eigen-CAM).
        weighting: for a built-in kind "weighting", the key in :data:`camtutor.maths.WEIGHTINGS`.
        rule: for a weighting registered at run time (:func:`register_weighting`), the rule itself.
        paper_relu: the paper applies a ReLU to the map (False for CAM: Zhou et al. keep the negative part).
        function: "module:function" implementing kinds "forward", "passes" and "input".
        gap_layer: explained only at the feature map feeding GlobalAveragePooling2D (CAM).
        reads: the class score the method reads from the model's output: ``"score"`` follows ``score=``
            ("logit" by default, or "probability"); ``"probability"`` when its definition fixes it (Score-CAM
            as in the authors' code); None when it reads no score at all (CAM reads the Dense weights,
            Eigen-CAM only the activations). Only a method that reads the logit needs the logits to be
            reachable: the others run on a model whose softmax is hidden inside a custom layer.
        class_blind_on_probability: with ``score="probability"`` the map ignores the class (Score-CAM,
            Algorithm 1: a softmax over channels of probability increases); the command and the explorer
            refuse it rather than fall back to probabilities on a model whose logits are hidden.
    """

    name: str
    label: str
    summary: str
    paper: str
    kind: str
    gradients: bool = False
    extra_passes: bool = False
    input_gradient: bool = False
    class_specific: bool = True
    weighting: str | None = None
    function: str | None = None
    gap_layer: bool = False
    reads: str | None = "score"
    class_blind_on_probability: bool = False
    rule: Callable | None = None
    paper_relu: bool = True

    def weighting_rule(self) -> Callable:
        """The rule ``rule(A, dy/dA) -> weights`` of a kind "weighting" entry (imports TensorFlow for a built-in)."""
        if self.rule is not None:
            return self.rule
        if self.weighting is None:
            raise AttributeError(f"method {self.name!r} is not a weighting rule")
        from camtutor.maths import WEIGHTINGS

        return WEIGHTINGS[self.weighting]

    def score(self, requested: str) -> str | None:
        """The score this method reads when the caller asks for ``requested`` ("logit" or "probability"):
        ``requested`` itself, the score its definition fixes, or None (it reads none)."""
        return requested if self.reads == "score" else self.reads

    def implementation(self):
        """The function that implements a "forward", "passes" or "input" entry (imports TensorFlow)."""
        if self.function is None:
            raise AttributeError(f"method {self.name!r} is a weighting rule: see camtutor.maths.WEIGHTINGS")
        module, _, attribute = self.function.partition(":")
        return getattr(importlib.import_module(module), attribute)


_IMPL = "camtutor.method_impl"

_ENTRIES = (
    Method("cam", "CAM", "CAM (Zhou et al. 2016): the GAP -> Dense weights w_k^c, no gradients; needs a GAP -> Dense head",
           "Zhou et al., Learning Deep Features for Discriminative Localization, CVPR 2016",
           kind="forward", function=f"{_IMPL}:cam_maps", gap_layer=True, reads=None, paper_relu=False),
    Method("gradcam", "Grad-CAM", "Grad-CAM (Selvaraju et al. 2017): channel means of dS_c/dA, then ReLU",
           "Selvaraju et al., Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization, ICCV 2017",
           kind="weighting", gradients=True, weighting="mean"),
    Method("hirescam", "HiResCAM",
           "HiResCAM (Draelos & Carin 2020): dS_c/dA * A elementwise, summed over channels, then ReLU",
           "Draelos & Carin, Use HiResCAM instead of Grad-CAM for faithful explanations, arXiv 2011.08891",
           kind="weighting", gradients=True, weighting="elementwise"),
    Method("gradcam++", "Grad-CAM++",
           "Grad-CAM++ (Chattopadhay et al. 2018): w_k = sum_ij alpha relu(g), alpha = g^2 / (2g^2 + sum A g^3)",
           "Chattopadhay et al., Grad-CAM++: Improved Visual Explanations for Deep Convolutional Networks, WACV 2018",
           kind="weighting", gradients=True, weighting="plusplus"),
    Method("xgradcam", "XGrad-CAM", "XGrad-CAM (Fu et al. 2020): w_k = sum_ij (g A) / sum_ij A, then ReLU",
           "Fu et al., Axiom-based Grad-CAM: Towards Accurate Visualization and Explanation of CNNs, BMVC 2020",
           kind="weighting", gradients=True, weighting="xgrad"),
    Method("layercam", "LayerCAM", "LayerCAM (Jiang et al. 2021): relu(sum_k relu(dS_c/dA) * A)",
           "Jiang et al., LayerCAM: Exploring Hierarchical Class Activation Maps for Localization, IEEE TIP 2021",
           kind="weighting", gradients=True, weighting="positive"),
    Method("scorecam", "Score-CAM",
           "Score-CAM (Wang et al. 2020, Algorithm 1): w_k = softmax over channels k of "
           "S_c(X * H_k) - S_c(black), S_c the logit; no gradients; K x B passes",
           "Wang et al., Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural Networks, CVPRW 2020",
           kind="passes", extra_passes=True, function=f"{_IMPL}:score_cam_weights", class_blind_on_probability=True),
    Method("scorecam_code", "Score-CAM (code)",
           "Score-CAM as in the authors' code: w_k = p_c(X * H_k), the probability itself, no baseline, "
           "no channel softmax; K x B passes",
           "Wang et al. 2020 (CVPRW), as implemented in github.com/haofanwang/Score-CAM",
           kind="passes", extra_passes=True, reads="probability", function=f"{_IMPL}:score_cam_code_weights"),
    Method("ablationcam", "Ablation-CAM",
           "Ablation-CAM (Desai & Ramaswamy 2020): w_k = (y_c - y_c with channel k zeroed) / |y_c|; K x B passes",
           "Desai & Ramaswamy, Ablation-CAM: Visual Explanations for Deep Convolutional Network via "
           "Gradient-free Localization, WACV 2020",
           kind="passes", extra_passes=True, function=f"{_IMPL}:ablation_cam_weights"),
    Method("eigencam", "Eigen-CAM",
           "Eigen-CAM (Muhammad & Yeasin 2020): A projected on its first principal component; class-agnostic",
           "Muhammad & Yeasin, Eigen-CAM: Class Activation Map using Principal Components, IJCNN 2020",
           kind="forward", class_specific=False, function=f"{_IMPL}:eigen_cam_maps", reads=None),
    Method("guided_gradcam", "Guided Grad-CAM",
           "Guided Grad-CAM (Selvaraju et al. 2017): guided backprop x upsampled Grad-CAM, at input resolution",
           "Selvaraju et al. 2017 (Sec. 3.1); Springenberg et al., Striving for Simplicity, ICLR 2015 workshop",
           kind="input", gradients=True, input_gradient=True, function=f"{_IMPL}:guided_gradcam_maps"),
)

#: name -> :class:`Method`, in the order they are listed; :func:`register_weighting` adds to it.
REGISTRY: dict[str, Method] = {entry.name: entry for entry in _ENTRIES}
_BUILT_IN = frozenset(REGISTRY)


class _Names(Sequence):
    """The registry's method names, read at each use (so a method registered later is in it); compares equal to
    the tuple of the same names."""

    def __getitem__(self, index):
        return tuple(REGISTRY)[index]

    def __len__(self) -> int:
        return len(REGISTRY)

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and name in REGISTRY

    def __eq__(self, other) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, (tuple, list, _Names)) else other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))


#: The method names, in the order they are listed (a live view of :data:`REGISTRY`).
METHODS: Sequence[str] = _Names()


def method_summaries() -> dict[str, str]:
    """method name -> its one-line summary (paper, and what weights the (B, h, w, K) feature maps A)."""
    return {name: entry.summary for name, entry in REGISTRY.items()}


def get(name: str) -> Method:
    """The entry for ``name``; :class:`camtutor.CamTutorError` naming the choices for an unknown one."""
    entry = REGISTRY.get(name) if isinstance(name, str) else None
    if entry is None:
        from camtutor.errors import CamTutorError

        raise CamTutorError(f"method must be one of {tuple(METHODS)}, got {name!r}")
    return entry


def method_help(indent: int = 2) -> str:
    """One line per method, ``name  summary``, for help texts (read from the registry at each call)."""
    width = max(map(len, METHODS))
    return "\n".join(f"{'':<{indent}}{name:<{width}}  {entry.summary}" for name, entry in REGISTRY.items())


_NAME = re.compile(r"[a-z][a-z0-9_+\-]{0,39}")


def _check_rule(name: str, rule: Callable) -> None:
    """Run ``rule`` once, compiled, on small (B, h, w, K) and (B, C, h, w, K) arrays: its weights must broadcast
    against A in both (one class per image, every class at once)."""
    import numpy as np
    import tensorflow as tf

    from camtutor.errors import CamTutorError

    fix = (f"rule {name!r} must map (A, G), float32 tensors of shape (B, h, w, K) (or (B, C, h, w, K): use negative "
           "axes), to weights that broadcast against A, e.g. (B, 1, 1, K) per channel or (B, h, w, K) per cell, "
           "written with TensorFlow ops (tf.* or keras.ops), e.g. "
           "lambda A, G: tf.reduce_max(G, axis=(-3, -2), keepdims=True)")
    rng = np.random.default_rng(0)
    for a_shape, g_shape in (((2, 3, 4, 5), (2, 3, 4, 5)), ((2, 1, 3, 4, 5), (2, 3, 3, 4, 5))):
        a = tf.constant(rng.random(a_shape, dtype=np.float32))
        g = tf.constant(rng.standard_normal(g_shape, dtype=np.float32))
        try:
            weights = tf.function(rule, autograph=False)(a, g)
            shape = tuple(tf.convert_to_tensor(weights).shape)
            full = np.broadcast_shapes(shape, a_shape, g_shape)
        except Exception as error:  # noqa: BLE001 - any failure of the user's rule is reported with the fix
            raise CamTutorError(f"{fix}; it failed with {type(error).__name__}: {error}") from None
        if full != np.broadcast_shapes(a_shape, g_shape):
            raise CamTutorError(f"{fix}; on A {a_shape} and G {g_shape} it returned shape {shape}")


def register_weighting(name: str, rule: Callable, label: str | None = None, summary: str = "") -> Method:
    """Add a gradient weighting method at run time: -> its :class:`Method` entry.

    ``rule(A, G) -> weights``: A the feature maps and G = dS_c/dA, float32 tensors (B, h, w, K) (or with a class
    axis, (B, C, h, w, K), for every class at once: use negative axes), the weights broadcasting against A; the
    map is ``ReLU(sum_k weights * A)``, like Grad-CAM's (whose rule is the spatial mean of G). Write it with
    TensorFlow ops: it is compiled with the forward and backward pass. After this call every consumer serves
    it: ``ct.heatmap(..., method=name)``, ``heatmap_all_classes``, ``layer_pass(...).maps(layer, name)``, a new
    explorer's method control, and the command's ``--method`` and ``--help`` in the same process.

    Raises:
        camtutor.CamTutorError: a name that is not lower-case letters, digits, ``_``, ``+`` or ``-`` (at most 40,
            starting with a letter), a name already registered (a built-in, or :func:`unregister` it first), a
            rule that is not callable, or one whose weights do not broadcast against A.
    """
    from camtutor.errors import CamTutorError

    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise CamTutorError(f"name must be lower-case letters, digits, '_', '+' or '-', starting with a letter "
                            f"(at most 40), e.g. 'maxgrad'; got {name!r}")
    if name in REGISTRY:
        which = "a built-in method" if name in _BUILT_IN else "already registered: call unregister(name) first"
        raise CamTutorError(f"method {name!r} is {which}; choose another name")
    if not callable(rule):
        raise CamTutorError(f"rule must be a function rule(A, G) -> weights, got {type(rule).__name__}")
    if label is not None and not isinstance(label, str):
        raise CamTutorError(f"label must be a string, got {label!r}")
    _check_rule(name, rule)
    entry = Method(name, label or name, summary or f"{label or name}: a weighting rule registered at run time",
                   "registered at run time", kind="weighting", gradients=True, rule=rule)
    REGISTRY[name] = entry
    return entry


def unregister(name: str) -> None:
    """Remove a method added by :func:`register_weighting`; it is an unknown method again afterwards.

    Raises:
        camtutor.CamTutorError: a built-in method, or a name that is not registered.
    """
    from camtutor.errors import CamTutorError

    if name in _BUILT_IN:
        raise CamTutorError(f"{name!r} is a built-in method and cannot be removed")
    if not isinstance(name, str) or name not in REGISTRY:
        added = [n for n in REGISTRY if n not in _BUILT_IN]
        raise CamTutorError(f"no method {name!r} was registered; registered at run time: {added}")
    del REGISTRY[name]


def default_score(entry: Method | None, logits_reachable: bool) -> str:
    """The one rule for the score the command and the explorer explain ``entry`` with (None: any method that
    follows ``score=``): the logit when it can be reached or when the method reads no logit, else the
    probability, except for a method that is class-blind on probabilities (:class:`camtutor.ModelError` naming
    the methods that read probabilities or no score)."""
    if logits_reachable or (entry is not None and entry.reads != "score"):
        return "logit"
    if entry is not None and entry.class_blind_on_probability:
        from camtutor.errors import ModelError

        readers = [e.name for e in REGISTRY.values() if e.reads != "score"]
        raise ModelError(
            f"this model's pre-softmax scores (logits) cannot be reached, and {entry.label} over probabilities is "
            f"class-blind; choose a method that reads probabilities or no score: {readers}, or a gradient method"
        )
    return "probability"
