"""Smoke test of the benchmark: tiny sizes, shapes model only; the table is written and every contender agrees.

No timing is asserted here (speed targets live in ``python -m benchmarks.run``, which prints the ratios).
"""

from __future__ import annotations

import json

import pytest

from benchmarks import run as bench  # needs tf-keras-vis 0.8.7 (the "test" extra)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    return bench.run(models=("shapes",), batches=[1, 2], repeats=1, out=out, log=lambda _: None,
                     metrics={"images": 4, "steps": 3, "repeats": 1})


def test_writes_the_table_plot_and_raw_results(result):
    out = result["out"]
    table = (out / "benchmark.md").read_text()
    assert "## Targets" in table and "## Timings" in table
    for name in ("camtutor.grad_cam", "camtutor.cam", "tf-keras-vis Gradcam", "Keras example (per image)", "floor: forward"):
        assert f"| shapes | 2 | {name} |" in table
    assert (out / "benchmark.png").stat().st_size > 1000
    raw = json.loads((out / "benchmark.json").read_text())
    assert len(raw["rows"]) == len(result["rows"]) == 2 * 8


def test_every_contender_agrees_with_camtutor(result):
    compared = [r for r in result["rows"] if r.agrees is not None]
    assert len(compared) == 2 * 5  # grad_cam, cam, tf-keras-vis, Keras example, all classes; per batch
    assert all(r.agrees for r in compared), [(r.contender, r.batch, r.max_abs_diff) for r in compared]
    check = [t for t in result["targets"] if t[0].startswith("all contenders")]
    assert check and check[0][3]


def test_targets_cover_floor_tf_keras_vis_and_all_classes(result):
    names = [t[0] for t in result["targets"]]
    assert any("forward floor" in n for n in names)
    assert any("tf-keras-vis" in n for n in names)
    assert any("all classes" in n for n in names)


def test_the_trust_metrics_targets_join_the_table(result):
    """benchmarks.bench_metrics runs inside the main benchmark: its two targets in benchmark.md, its timings in metrics.md."""
    names = [t[0] for t in result["targets"]]
    assert any(n.startswith("metrics: deletion curve, 3 steps x 4 images") for n in names)
    assert any(n.startswith("metrics: 10-layer cascading randomisation") for n in names)
    out = result["out"]
    assert "metrics: deletion curve" in (out / "benchmark.md").read_text()
    text = (out / "metrics.md").read_text()
    assert "## Targets" in text and "deep_nested (10 layers)" in text
    raw = json.loads((out / "metrics.json").read_text())
    assert raw["settings"]["images"] == 4 and len(raw["deletion"]["deletion_s"]) == 1 and len(raw["targets"]) == 2
    assert json.loads((out / "benchmark.json").read_text())["metrics"]["randomisation"]["deep_nested_layers"] == 10


@pytest.mark.filterwarnings("ignore:The structure of `inputs`")  # the example calls Model(model.inputs, ...) on a tensor
def test_the_keras_example_reimplementation_divides_by_the_max_before_relu():
    """As in the example, ReLU(map) / max(map): negative evidence only -> 0; a map exactly 0 -> 0 / 0 = NaN."""
    import keras
    import numpy as np

    from benchmarks.keras_example import heatmap_one_image

    inputs = keras.Input((4, 4, 1))
    features = keras.layers.Conv2D(2, 1, activation="relu", name="conv", kernel_initializer="ones")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    outputs = keras.layers.Dense(2, kernel_initializer=keras.initializers.Constant([[-1.0, 1.0], [-1.0, 1.0]]))(pooled)
    model = keras.Model(inputs, outputs)
    image = np.ones((1, 4, 4, 1), np.float32)
    np.testing.assert_array_equal(heatmap_one_image(image, model, "conv", 0), 0.0)
    np.testing.assert_allclose(heatmap_one_image(image, model, "conv", 1), 1.0)
    assert np.isnan(heatmap_one_image(np.zeros_like(image), model, "conv", 1)).all()


def test_startup_benchmark_measures_its_four_targets():
    """Smoke test: one round; the ratios are reported, not asserted (speed lives in the benchmarks)."""
    from benchmarks import bench_startup

    result = bench_startup.run(repeats=1, log=lambda _: None)
    assert len(result["targets"]) == 4
    assert all(measured.endswith("x") and isinstance(passed, bool) for _, measured, _, passed in result["targets"])
    assert all(seconds > 0 for seconds in result["seconds"].values())
    assert "| target | measured | detail | result |" in bench_startup.markdown(result)
