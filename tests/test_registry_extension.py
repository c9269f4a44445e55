"""Methods added at run time (``ct.methods.register_weighting`` / ``unregister``), the one dispatch, and imports.

A weighting registered in this process must be served by every consumer (``ct.heatmap``,
``heatmap_all_classes``, ``layer_pass(...).maps``, a new explorer, the command's parser and help) and match its
formula; after ``unregister`` it is an unknown method again, and no compiled function serves a stale rule.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import camtutor as ct
from camtutor import cli, methods, widgets
from camtutor.explain import heatmap_all_classes, layer_pass

ROOT = Path(__file__).resolve().parents[1]
LAYER = "last_conv"


def max_gradient(A, G):
    """The largest gradient of each channel: (B, 1, 1, K)."""
    return tf.reduce_max(G, axis=(-3, -2), keepdims=True)


def min_gradient(A, G):
    return tf.reduce_min(G, axis=(-3, -2), keepdims=True)


@pytest.fixture(scope="module")
def setting():
    model = ct.models.load("shapes")
    data = ct.data.shapes(4, seed=5)
    return model, data.images, data.labels


@pytest.fixture
def maxgrad():
    methods.register_weighting("maxgrad", max_gradient, label="Max-grad CAM", summary="max of dS_c/dA per channel")
    yield "maxgrad"
    if "maxgrad" in methods.REGISTRY:
        methods.unregister("maxgrad")


def _expected(model, images, classes, reduce):
    a, g = ct.gradients(model, images, classes, LAYER)
    return np.einsum("bhwk,bk->bhw", a, reduce(g, axis=(1, 2)))


def _close(got, expected):
    scale = float(np.abs(expected).max())
    assert scale > 0
    np.testing.assert_allclose(got / scale, expected / scale, atol=1e-5)


def test_a_registered_weighting_is_served_by_every_consumer(setting, maxgrad):
    model, images, classes = setting
    expected = _expected(model, images, classes, np.max)
    assert "maxgrad" in ct.METHODS and "maxgrad" in methods.method_help()
    _close(ct.heatmap(model, images, classes, method="maxgrad", layer=LAYER, relu=False), expected)
    _close(ct.heatmap(model, images, classes, method="maxgrad", layer=LAYER), np.maximum(expected, 0))
    every, _ = heatmap_all_classes(model, images, method="maxgrad", layer=LAYER)
    _close(every[np.arange(len(images)), classes], expected)
    from_pass, _ = layer_pass(model, images, [LAYER, "conv3"]).maps(LAYER, "maxgrad")
    _close(from_pass, every)
    explorer = widgets.Explorer(model, images, prefetch=False)
    assert ("Max-grad CAM", "maxgrad") in explorer.method_buttons.options
    explorer.method_buttons.value, explorer.layer_slider.value = "maxgrad", LAYER
    explorer.relu_checkbox.value, explorer.class_dropdown.value = False, int(classes[0])
    _close(explorer.state().raw_map, expected[0])
    parser = cli.build_parser()
    assert parser.parse_args(["explain", "x.png", "--method", "maxgrad"]).method == "maxgrad"
    explain_help = parser._subparsers._group_actions[0].choices["explain"].format_help()
    assert "maxgrad" in explain_help and "max of dS_c/dA per channel" in explain_help


def test_after_unregister_the_name_is_unknown_and_a_new_rule_is_never_served_stale(setting, maxgrad, capsys):
    model, images, classes = setting
    ct.heatmap(model, images, classes, method="maxgrad", layer=LAYER)  # compiled and cached
    methods.unregister("maxgrad")
    assert "maxgrad" not in ct.METHODS
    for call in (lambda: ct.heatmap(model, images, classes, method="maxgrad"),
                 lambda: heatmap_all_classes(model, images, method="maxgrad")):
        with pytest.raises(ct.CamTutorError, match="gradcam"):
            call()
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["explain", "x.png", "--method", "maxgrad"])
    assert "maxgrad" not in capsys.readouterr().out
    assert ("Max-grad CAM", "maxgrad") not in widgets.Explorer(model, images, prefetch=False).method_buttons.options
    methods.register_weighting("maxgrad", min_gradient)  # the same name, another rule
    _close(ct.heatmap(model, images, classes, method="maxgrad", layer=LAYER, relu=False),
           _expected(model, images, classes, np.min))


@pytest.mark.parametrize(("name", "rule", "fix"), [
    ("", max_gradient, "lower-case"),
    ("Max Grad", max_gradient, "lower-case"),
    (3, max_gradient, "lower-case"),
    ("gradcam", max_gradient, "built-in"),
    ("maxgrad2", "not a function", "must be a function"),
    ("maxgrad2", lambda A, G: tf.reduce_max(G, axis=(-3, -2)), "broadcast against A"),  # (B, K): no keepdims
    ("maxgrad2", lambda A, G: np.max(np.asarray(G), axis=(1, 2)), "TensorFlow ops"),  # numpy: not compilable
])
def test_bad_registrations_are_refused_naming_the_fix(name, rule, fix):
    with pytest.raises(ct.CamTutorError, match=fix):
        methods.register_weighting(name, rule)
    assert tuple(methods.REGISTRY) == tuple(methods.METHODS) and "maxgrad2" not in methods.REGISTRY


def test_registering_twice_or_removing_a_built_in_is_refused(maxgrad):
    with pytest.raises(ct.CamTutorError, match="unregister"):
        methods.register_weighting("maxgrad", max_gradient)
    with pytest.raises(ct.CamTutorError, match="built-in"):
        methods.unregister("gradcam")
    with pytest.raises(ct.CamTutorError, match="registered"):
        methods.unregister("nothing")


# --------------------------------------------------------------------------- one dispatch, no import cycles
SWITCH = re.compile(r"""(entry|REGISTRY\[[^]]+\]|get\([^)]*\))\.kind\s*(==|!=|in\b)|[=!]=\s*["']cam["']|["']cam["']\s*[=!]=""")


def test_one_place_dispatches_on_a_methods_kind():
    """Only camtutor/method_impl.py (maps_from_pass) switches on ``kind`` or on the name "cam"; every other
    module and benchmark reads the registry's declarations (gradients, extra_passes, gap_layer, reads...)."""
    files = [*sorted((ROOT / "camtutor").glob("*.py")), *sorted((ROOT / "benchmarks").glob("*.py"))]
    found = [f"{path.name}:{number}: {line.strip()}" for path in files if path.name != "method_impl.py"
             for number, line in enumerate(path.read_text().splitlines(), 1) if SWITCH.search(line)]
    assert found == []
    dispatch = (ROOT / "camtutor" / "method_impl.py").read_text()
    assert len(re.findall(r"entry\.kind ==", dispatch)) == 3


def test_every_camtutor_module_imports_on_its_own():
    """Each module imported first, in a fresh set of camtutor modules: an import cycle fails here."""
    names = sorted(p.stem for p in (ROOT / "camtutor").glob("*.py") if p.stem not in ("__init__", "__main__"))
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    for loaded in [m for m in sys.modules if m == 'camtutor' or m.startswith('camtutor.')]:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module('camtutor.' + name)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
