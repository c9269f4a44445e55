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

To add a method: write its function (``camtutor/method_impl.py`` shows the three signatures) and add one
:class:`Method` here; the command, the explorer and the benchmarks pick it up.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

__all__ = ["METHODS", "METHOD_LABELS", "Method", "REGISTRY", "get", "method_help"]


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
        weighting: for kind "weighting", the key in :data:`camtutor.maths.WEIGHTINGS`.
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
           kind="forward", function=f"{_IMPL}:cam_maps", gap_layer=True, reads=None),
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

#: name -> :class:`Method`, in the order they are listed.
REGISTRY: dict[str, Method] = {entry.name: entry for entry in _ENTRIES}

#: method name -> one-line label (paper, and what weights the (B, H, W, K) feature maps A).
METHOD_LABELS: dict[str, str] = {name: entry.summary for name, entry in REGISTRY.items()}

#: The method names, in the order they are listed.
METHODS: tuple[str, ...] = tuple(REGISTRY)


def get(name: str) -> Method:
    """The entry for ``name``; :class:`camtutor.CamTutorError` naming the choices for an unknown one."""
    entry = REGISTRY.get(name) if isinstance(name, str) else None
    if entry is None:
        from camtutor.errors import CamTutorError

        raise CamTutorError(f"method must be one of {METHODS}, got {name!r}")
    return entry


def method_help(indent: int = 2) -> str:
    """One line per method, ``name  label``, for help texts."""
    width = max(map(len, METHODS))
    return "\n".join(f"{'':<{indent}}{name:<{width}}  {METHOD_LABELS[name]}" for name in METHODS)


def default_score(entry: Method, logits_reachable: bool) -> str:
    """The score the command and the explorer explain ``entry`` with: the logit when it can be reached or when
    the method reads no logit, else the probability, except for a method that is class-blind on probabilities
    (:class:`camtutor.ModelError` naming the methods that read probabilities)."""
    if entry.reads != "score" or logits_reachable:
        return "logit"
    if entry.class_blind_on_probability:
        from camtutor.errors import ModelError

        readers = [e.name for e in REGISTRY.values() if e.reads != "score"]
        raise ModelError(
            f"this model's pre-softmax scores (logits) cannot be reached, and {entry.label} over probabilities is "
            f"class-blind; choose a method that reads probabilities or no score: {readers}, or a gradient method"
        )
    return "probability"
