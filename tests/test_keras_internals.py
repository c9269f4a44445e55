"""The private Keras internals live in one module that names the versions it was tested with, and pyproject
declares the same supported range."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import keras
import pytest
import tensorflow as tf

import camtutor as ct
from camtutor import keras_internals

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "camtutor"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def test_only_keras_internals_imports_keras_src():
    importers = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
            if any(name == "keras.src" or name.startswith("keras.src.") for name in names):
                importers.append(path.name)
    assert sorted(set(importers)) == ["keras_internals.py"]


def test_pyproject_declares_the_range_the_module_names():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (oldest_tf, oldest_keras), (newest_tf, newest_keras) = keras_internals.TESTED[0], keras_internals.TESTED[-1]
    keras_dep = next(d for d in deps if d.startswith("keras"))
    assert f">={oldest_keras}" in keras_dep and "<" in keras_dep
    tf_deps = [d for d in deps if d.startswith("tensorflow")]
    assert tf_deps and all(f">={oldest_tf}" in d and ",<" in d for d in tf_deps)
    for dep, newest in [(keras_dep, newest_keras)] + [(d, newest_tf) for d in tf_deps]:
        upper = _version(dep.split("<")[1])
        assert _version(newest) < upper  # the newest tested release is inside the declared range
    assert oldest_tf in keras_internals.SUPPORTED and oldest_keras in keras_internals.SUPPORTED


def test_the_running_versions_are_inside_the_supported_range():
    (oldest_tf, oldest_keras), _ = keras_internals.TESTED[0], None
    assert _version(keras.__version__) >= _version(oldest_keras)
    assert _version(tf.__version__) >= _version(oldest_tf)


def test_a_missing_internal_is_a_camtutor_error_naming_the_supported_range():
    error = keras_internals._missing("keras.src.ops.nn.Softmax")
    assert isinstance(error, ct.CamTutorError)
    assert keras_internals.SUPPORTED in str(error) and "pip install" in str(error)
    with pytest.raises(ct.CamTutorError, match="supports tensorflow"):
        keras_internals.keras_history(object())


def test_the_graph_helpers_read_a_functional_model():
    inputs = keras.Input((4, 4, 3))
    features = keras.layers.Conv2D(2, 3, name="feat")(inputs)
    outputs = keras.layers.GlobalAveragePooling2D()(features)
    model = keras.Model(inputs, outputs)
    operation, node_index, _ = keras_internals.keras_history(outputs)
    assert keras_internals.inbound_tensors(operation, node_index) == [features]
    assert [layer.name for layer in keras_internals.flatten_layers(model)][1] == "feat"


def test_ci_runs_the_unit_tests_against_the_oldest_pair_as_the_readme_says():
    oldest_tf, oldest_keras = keras_internals.TESTED[0]
    script = (ROOT / ".ci" / "run").read_text().splitlines()
    readme = (ROOT / "README.md").read_text()
    lines = [line for line in script if ".ci-venv-oldest" in line and not line.startswith("#")]
    assert len(lines) == 1 and lines[0] in readme
    assert f'"tensorflow=={oldest_tf}" "keras=={oldest_keras}"' in lines[0] and lines[0].endswith("pytest tests")
    main_suite = next(i for i, line in enumerate(script) if line.startswith('python -m pip install -e ".[test,hub]"'))
    assert script.index(lines[0]) > main_suite  # the main suite first
