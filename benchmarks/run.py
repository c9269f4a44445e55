"""Benchmark camtutor's Grad-CAM and CAM against tf-keras-vis, the Keras example, and the compiled-graph floor.

Run from the repository root::

    python -m benchmarks.run              # full run (about 10 minutes on 2 cores), writes benchmarks/results/
    python -m benchmarks.run --quick      # tiny sizes, seconds; writes to a temporary folder
    python -m benchmarks.run --notebooks  # also time each notebook under nbval and its kernel's peak memory
    python -m benchmarks.run --no-metrics # without the trust metrics' targets (benchmarks.bench_metrics)

What is measured (see benchmarks/README.md):

* models: the bundled ``shapes`` GAP classifier (64x64) and MobileNetV2 (224x224, ``weights=None``:
  timing does not need trained weights; its top is GAP -> Dense(1000, softmax), so CAM works);
* batches 1, 8, 64; contenders: ``camtutor.grad_cam``, ``camtutor.cam``, tf-keras-vis 0.8.7 ``Gradcam``,
  the Keras example's per-image method (:mod:`benchmarks.keras_example`), and three compiled floors;
* on the shapes model, Grad-CAM for all classes at once against one class;
* warm-up excluded; contenders run round-robin (one call each per round) so that load from other
  processes hits them alike; median, min and max per contender; ratios come from the same run;
* every contender's maps are checked against camtutor's after ``ct.normalize`` (max abs diff <= 1e-4);
* :mod:`benchmarks.bench_metrics`: a 50-step deletion curve of 64 images against one forward pass of the
  64 x 51 images it scores (<= 3x), and a 10-layer cascading randomisation with Grad-CAM on 64 images
  (<= 20 s); its targets join the table, its timings go to ``metrics.md`` / ``metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
TOLERANCE = 1e-4
FULL_REPEATS = {"shapes": {1: 20, 8: 20, 64: 20}, "mobilenetv2": {1: 15, 8: 7, 64: 5}}
SLOW_CAP = {64: 3}  # the per-image Keras example and the backward-to-input floor on MobileNetV2 x 64


def configure_threads(threads: int, onednn: bool | None = None) -> None:
    """Same thread pools for every contender (they all run in this one process). Call before TensorFlow starts.

    ``onednn``: None keeps the benchmarks' default (``TF_ENABLE_ONEDNN_OPTS=0`` unless already set, as in the
    notebooks and the tests; scripts and the ``camtutor`` command keep TensorFlow's default, on).
    """
    if "tensorflow" in sys.modules:  # too late for the environment (e.g. inside pytest): don't leak it to others
        import tensorflow as tf
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        if onednn is not None:
            os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if onednn else "0"
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
        for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
            os.environ[var] = str(threads)
        import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already started (e.g. inside pytest): its pools stay; environment() reports them
        pass


# --------------------------------------------------------------------------- models
@dataclass
class Case:
    """One benchmarked model: its layer, classes, and how often to repeat each batch size."""

    name: str
    model: object
    layer: str
    note: str
    repeats: dict[int, int]
    all_classes: bool = False


def shapes_case(repeats: dict[int, int]) -> Case:
    import camtutor as ct
    from camtutor.errors import ModelError

    try:
        model, note = ct.models.load("shapes"), "bundled trained weights"
    except ModelError:
        model, note = ct.models.gap_classifier(), "untrained (camtutor/weights/shapes.keras missing)"
    return Case("shapes", model, "last_conv", f"64x64x3, last_conv 16x16x32, {note}", repeats, all_classes=True)


def mobilenet_case(repeats: dict[int, int], *, size: int = 224, alpha: float = 1.0) -> Case:
    import keras

    model = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), alpha=alpha, weights=None, include_top=True, classes=1000
    )
    h = model.get_layer("out_relu").output.shape
    return Case(
        "mobilenetv2",
        model,
        "out_relu",
        f"{size}x{size}x3, alpha={alpha}, weights=None, out_relu {h[1]}x{h[2]}x{h[3]}, GAP -> Dense(1000)",
        repeats,
    )


# --------------------------------------------------------------------------- contenders
@dataclass
class Contender:
    """``run(images, classes)`` returns comparable maps (B, h, w) or None for the floors."""

    name: str
    run: Callable
    cap: int | None = None  # fewer repeats for the slowest ones
    reference: str = "grad_cam"  # which camtutor maps its output must match


def floors(case: Case) -> list[Contender]:
    """The compiled-graph minimum: forward to (A, logits); + gradient to A; + gradient to the input.

    All return the feature maps, otherwise TensorFlow prunes the network behind the logits.
    """
    import keras
    import tensorflow as tf

    from benchmarks.keras_example import logit_clone

    clone = logit_clone(case.model)
    features_tensor = clone.get_layer(case.layer).output
    backbone = keras.Model(clone.inputs[0], features_tensor)  # images -> A
    head = keras.Model(features_tensor, clone.output)  # A -> logits (a Functional sub-graph)

    def two_outputs(images, training=False):
        features = backbone(images, training=training)
        return features, head(features, training=training)
    spec = [tf.TensorSpec((None, *case.model.inputs[0].shape[1:]), tf.float32), tf.TensorSpec((None,), tf.int32)]

    @tf.function(input_signature=spec[:1])
    def forward(images):
        return two_outputs(images, training=False)

    @tf.function(input_signature=spec)
    def forward_backward(images, classes):
        features = backbone(images, training=False)
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(features)
            score = tf.gather(head(features, training=False), classes, batch_dims=1)
        return features, tape.gradient(score, features)

    @tf.function(input_signature=spec)
    def forward_backward_input(images, classes):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(images)
            features, logits = two_outputs(images, training=False)
            score = tf.gather(logits, classes, batch_dims=1)
        return features, tape.gradient(score, images)

    def numpy(outputs):
        return [t.numpy() for t in outputs]

    return [
        Contender("floor: forward", lambda x, c: numpy(forward(x)) and None),
        Contender("floor: forward + backward to A", lambda x, c: numpy(forward_backward(x, c)) and None),
        Contender(
            "floor: forward + backward to input",
            lambda x, c: numpy(forward_backward_input(x, c)) and None,
            cap=SLOW_CAP.get(64) if case.name == "mobilenetv2" else None,
        ),
    ]


def contenders(case: Case) -> list[Contender]:
    import keras
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.scores import CategoricalScore

    import camtutor as ct
    from benchmarks.keras_example import keras_example_grad_cam, logit_clone

    def linear_output(model):  # tf-keras-vis model_modifier: it clones the model first (clone=True)
        model.layers[-1].activation = keras.activations.linear

    gradcam = Gradcam(case.model, model_modifier=linear_output, clone=True)
    example_model = logit_clone(case.model)
    layer = case.layer

    def tf_keras_vis(images, classes):
        maps = gradcam(
            CategoricalScore([int(c) for c in classes]),
            images,
            penultimate_layer=layer,
            seek_penultimate_conv_layer=False,  # out_relu is a ReLU layer, not a Conv: don't seek past it
            expand_cam=False,  # maps at the layer's resolution, like camtutor
            normalize_cam=False,  # raw ReLU maps; normalised the same way as camtutor's below
        )
        return maps.numpy() if hasattr(maps, "numpy") else maps

    found = floors(case) + [
        Contender("camtutor.grad_cam", lambda x, c: ct.grad_cam(case.model, x, c, layer=layer)),
        Contender("camtutor.cam", lambda x, c: ct.cam(case.model, x, c, relu=True), reference="grad_cam"),
        Contender("tf-keras-vis Gradcam", tf_keras_vis),
        Contender(
            "Keras example (per image)",
            lambda x, c: keras_example_grad_cam(example_model, x, c, layer),
            cap=SLOW_CAP.get(64) if case.name == "mobilenetv2" else None,
        ),
    ]
    if case.all_classes:
        found.append(
            Contender(
                "camtutor.grad_cam_all_classes",
                lambda x, c: ct.grad_cam_all_classes(case.model, x, layer=layer)[0],
                reference="all_classes",
            )
        )
    return found


# --------------------------------------------------------------------------- measuring
@dataclass
class Row:
    model: str
    batch: int
    contender: str
    times: list[float]
    max_abs_diff: float | None = None
    nan_maps: int = 0
    agrees: bool | None = None
    extra: dict = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def _agreement(maps, reference, zero_reference) -> tuple[float, int, bool]:
    """Max |normalize(maps) - normalize(reference)| over the finite maps; NaN maps allowed only where camtutor's is all 0."""
    import numpy as np

    import camtutor as ct

    maps = np.asarray(maps, dtype=np.float32)
    finite = np.isfinite(maps).all(axis=(-2, -1))
    diff = float(np.abs(ct.normalize(maps[finite]) - ct.normalize(reference[finite])).max()) if finite.any() else 0.0
    nan_maps = int((~finite).sum())
    explained = bool(np.all(zero_reference[~finite]))
    return diff, nan_maps, diff <= TOLERANCE and explained


def measure_case(case: Case, batches: list[int], log: Callable[[str], None]) -> list[Row]:
    import numpy as np

    import camtutor as ct

    found = contenders(case)
    rows: list[Row] = []
    size = tuple(case.model.inputs[0].shape[1:])
    for batch in batches:
        rng = np.random.default_rng(batch)
        images = rng.random((batch, *size), dtype=np.float32)
        classes = np.argmax(ct.class_probabilities(case.model, images), axis=-1).astype(np.int32)  # as the example does
        reference = {"grad_cam": ct.grad_cam(case.model, images, classes, layer=case.layer, relu=True)}
        if case.all_classes:
            reference["all_classes"] = np.stack(
                [ct.grad_cam(case.model, images, k, layer=case.layer) for k in range(case.model.outputs[0].shape[-1])],
                axis=1,
            )
        repeats = case.repeats[batch]
        caps = {c.name: min(repeats, c.cap) if c.cap and batch >= 64 else repeats for c in found}
        log(f"  {case.name} batch {batch}: warm-up")
        outputs = {c.name: c.run(images, classes) for c in found}  # warm-up: tracing, model building
        times: dict[str, list[float]] = {c.name: [] for c in found}
        for round_ in range(repeats):
            for c in found:
                if len(times[c.name]) < caps[c.name]:
                    start = time.perf_counter()
                    c.run(images, classes)
                    times[c.name].append(time.perf_counter() - start)
            log(f"  {case.name} batch {batch}: round {round_ + 1}/{repeats}, load {os.getloadavg()[0]:.2f}")
        for c in found:
            row = Row(case.name, batch, c.name, times[c.name])
            if outputs[c.name] is not None:
                ref = reference[c.reference]
                row.max_abs_diff, row.nan_maps, row.agrees = _agreement(outputs[c.name], ref, np.all(ref == 0, axis=(-2, -1)))
            rows.append(row)
    return rows


# --------------------------------------------------------------------------- notebooks
def measure_notebooks(log: Callable[[str], None]) -> list[dict]:
    """Run each notebook under strict nbval in its own pytest; wall time and the kernel's peak RSS (polled)."""
    import psutil

    results = []
    env = dict(os.environ)  # the kernel must import this checkout's camtutor, installed or not
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(notebook.relative_to(ROOT))]
        start = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        parent = psutil.Process(process.pid)
        peak_kernel = peak_total = 0
        while process.poll() is None:
            try:
                children = parent.children(recursive=True)
                kernels = [p for p in children if "ipykernel" in " ".join(p.cmdline())]
                peak_kernel = max([peak_kernel] + [p.memory_info().rss for p in kernels])
                peak_total = max(peak_total, parent.memory_info().rss + sum(p.memory_info().rss for p in children))
            except psutil.Error:
                pass
            time.sleep(0.05)
        wall = time.perf_counter() - start
        output = process.stdout.read()
        summary = output.strip().splitlines()[-1] if output.strip() else ""
        results.append(
            {
                "notebook": notebook.name,
                "wall_s": wall,
                "kernel_peak_mb": peak_kernel / 2**20,
                "total_peak_mb": peak_total / 2**20,
                "passed": process.returncode == 0,
                "summary": summary,
            }
        )
        log(f"  {notebook.name}: {wall:.1f} s, kernel peak {peak_kernel / 2**20:.0f} MB, {summary}")
    return results


# --------------------------------------------------------------------------- reporting
def _row(rows: list[Row], model: str, batch: int, contender: str) -> Row | None:
    return next((r for r in rows if (r.model, r.batch, r.contender) == (model, batch, contender)), None)


def _min_ratio(a: Row, b: Row) -> str:
    """min(a) / min(b): less sensitive than the medians to other processes on a shared machine."""
    return f"{min(a.times) / min(b.times):.2f}x"


def targets(rows: list[Row], notebooks: list[dict] | None) -> list[tuple[str, str, str, bool]]:
    """(target, measured, detail, passed) for each target from the issue."""
    found = []
    batch = max(r.batch for r in rows) if rows else None
    for model in dict.fromkeys(r.model for r in rows):
        ours, floor = _row(rows, model, batch, "camtutor.grad_cam"), _row(rows, model, batch, "floor: forward")
        floor_ab = _row(rows, model, batch, "floor: forward + backward to A")
        tkv = _row(rows, model, batch, "tf-keras-vis Gradcam")
        ratio = ours.median / floor.median
        found.append(
            (
                f"{model}: grad_cam x{batch} <= 1.3x forward floor",
                f"{ratio:.2f}x",
                f"{ours.median * 1e3:.1f} ms vs {floor.median * 1e3:.1f} ms; ratio of minimums {_min_ratio(ours, floor)}; "
                f"vs forward + backward to A ({floor_ab.median * 1e3:.1f} ms): {ours.median / floor_ab.median:.2f}x",
                ratio <= 1.3,
            )
        )
        speedup = tkv.median / ours.median
        found.append(
            (
                f"{model}: grad_cam x{batch} >= 5x faster than tf-keras-vis",
                f"{speedup:.2f}x",
                f"{tkv.median * 1e3:.1f} ms vs {ours.median * 1e3:.1f} ms; ratio of minimums {_min_ratio(tkv, ours)}",
                speedup >= 5.0,
            )
        )
        every = _row(rows, model, batch, "camtutor.grad_cam_all_classes")
        if every is not None:
            ratio = every.median / ours.median
            found.append(
                (
                    f"{model}: all classes x{batch} <= 2x one class",
                    f"{ratio:.2f}x",
                    f"{every.median * 1e3:.1f} ms vs {ours.median * 1e3:.1f} ms; ratio of minimums {_min_ratio(every, ours)}",
                    ratio <= 2.0,
                )
            )
    disagree = [r for r in rows if r.agrees is False]
    if rows:
        found.append(
            (
                f"all contenders' maps agree with camtutor (normalised, <= {TOLERANCE:g})",
                f"{sum(r.agrees is True for r in rows)}/{sum(r.agrees is not None for r in rows)}",
                "; ".join(f"{r.model} x{r.batch} {r.contender}: {r.max_abs_diff:.2e}" for r in disagree) or "all agree",
                not disagree,
            )
        )
    if notebooks:
        worst = max(notebooks, key=lambda n: n["kernel_peak_mb"])
        found.append(
            (
                "each notebook kernel peaks <= 1.2 GB resident",
                f"{worst['kernel_peak_mb'] / 1024:.2f} GB",
                f"highest: {worst['notebook']}",
                worst["kernel_peak_mb"] <= 1.2 * 1024,
            )
        )
        total = sum(n["wall_s"] for n in notebooks)
        found.append(
            (
                "whole nbval suite <= 6 minutes on 2 cores",
                f"{total / 60:.2f} min",
                f"{len(notebooks)} notebooks, sum of per-notebook pytest runs (each with its own pytest start-up); "
                f"{sum(n['passed'] for n in notebooks)} passed",
                total <= 360 and all(n["passed"] for n in notebooks),  # a failing notebook's time means nothing
            )
        )
    return found


def environment(threads: int, load_start: tuple) -> dict:
    import keras
    import tensorflow as tf
    import tf_keras_vis

    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": threads,
        "tf_threads_intra_inter": [
            tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads(),
        ],
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tf_keras_vis": tf_keras_vis.__version__,
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }


def markdown(rows: list[Row], cases: list[Case], notebooks: list[dict] | None, env: dict, goals) -> str:
    lines = ["# camtutor benchmark", ""]
    lines.append(
        f"{env['date']}; {env['cpu']} ({env['cores']} cores), {env['threads']} threads requested "
        f"(TensorFlow intra/inter-op set to {env['tf_threads_intra_inter']}, 0 = TensorFlow's default); "
        f"TensorFlow {env['tensorflow']}, Keras {env['keras']}, tf-keras-vis {env['tf_keras_vis']}, "
        f"TF_ENABLE_ONEDNN_OPTS={env['TF_ENABLE_ONEDNN_OPTS']}; "
        f"load average (1, 5, 15 min) at start {env['loadavg_start']}, at end {env['loadavg_end']}."
    )
    lines.append("")
    for case in cases:
        lines.append(f"- **{case.name}**: {case.note}")
    lines += ["", "## Targets", "", "| target | measured | detail | result |", "|---|---|---|---|"]
    lines += [f"| {t} | {m} | {d} | {'PASS' if ok else 'MISS'} |" for t, m, d, ok in goals]
    if rows:
        lines += [
            "",
            "## Timings",
            "",
            "Wall time per call (warm-up excluded); `x grad_cam` = median / median of `camtutor.grad_cam` "
            "at the same batch in the same run; `max diff` = max |normalised maps - normalised camtutor maps|.",
            "",
            "| model | batch | contender | median ms | min ms | max ms | ms / image | x grad_cam | runs | max diff | agrees |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in rows:
            ours = _row(rows, r.model, r.batch, "camtutor.grad_cam")
            diff = "" if r.max_abs_diff is None else f"{r.max_abs_diff:.1e}" + (f" ({r.nan_maps} NaN maps)" if r.nan_maps else "")
            agrees = "" if r.agrees is None else ("yes" if r.agrees else "**NO**")
            lines.append(
                f"| {r.model} | {r.batch} | {r.contender} | {r.median * 1e3:.1f} | {min(r.times) * 1e3:.1f} | "
                f"{max(r.times) * 1e3:.1f} | {r.median * 1e3 / r.batch:.2f} | {r.median / ours.median:.2f} | "
                f"{len(r.times)} | {diff} | {agrees} |"
            )
    if notebooks:
        lines += [
            "",
            "## Notebooks under nbval",
            "",
            "Each notebook in its own `python -m pytest notebooks/NAME.ipynb` (strict nbval); "
            "peak resident memory of the kernel process, polled every 50 ms.",
            "",
            "| notebook | wall s | kernel peak MB | pytest + kernel + their children, peak of the sum, MB | result |",
            "|---|---:|---:|---:|---|",
        ]
        lines += [
            f"| {n['notebook']} | {n['wall_s']:.1f} | {n['kernel_peak_mb']:.0f} | {n['total_peak_mb']:.0f} | {n['summary']} |"
            for n in notebooks
        ]
        lines.append(f"| **total** | {sum(n['wall_s'] for n in notebooks):.1f} | | | |")
    return "\n".join(lines) + "\n"


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r.model for r in rows))
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.5), squeeze=False)
    for ax, model in zip(axes[0], models):
        for name in dict.fromkeys(r.contender for r in rows if r.model == model):
            mine = [r for r in rows if r.model == model and r.contender == name]
            batches = [r.batch for r in mine]
            per_image = [r.median * 1e3 / r.batch for r in mine]
            low = [p - min(r.times) * 1e3 / r.batch for p, r in zip(per_image, mine)]
            high = [max(r.times) * 1e3 / r.batch - p for p, r in zip(per_image, mine)]
            style = "--" if name.startswith("floor") else "-"
            bars = ax.errorbar(batches, per_image, yerr=[low, high], fmt=style + "o", capsize=3, label=name, markersize=4)
            for line in bars.lines[1] + bars.lines[2]:  # caps and bars fainter than the medians
                line.set_alpha(0.35)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.set_xlabel("batch size")
        ax.set_ylabel("ms per image (median, min-max bars)")
        ax.set_title(model)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------- entry points
def run(
    *,
    quick: bool = False,
    models: tuple[str, ...] = ("shapes", "mobilenetv2"),
    batches: list[int] | None = None,
    repeats: int | None = None,
    notebooks: bool = False,
    timings: bool = True,
    metrics: bool | dict = True,
    out: Path | None = None,
    threads: int = 2,
    onednn: bool | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Run the benchmark; write benchmark.md, benchmark.png and benchmark.json to ``out``; return the results.

    ``metrics``: also run :func:`benchmarks.bench_metrics.run` (True: 64 images, 50 steps, 5 rounds; with
    ``quick`` its tiny sizes; a dict: its keyword arguments, e.g. ``{"images": 4, "steps": 3, "repeats": 1}``);
    its targets are appended to the table, its results written to ``out/metrics.md`` and ``metrics.json``.
    """
    configure_threads(threads, onednn)
    # The Keras example builds keras.Model(model.inputs, ...) (a list) and calls it on a tensor, as written there.
    warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match", category=UserWarning)
    load_start = os.getloadavg()
    batches = batches or ([1, 2] if quick else [1, 8, 64])
    out = Path(out) if out else (Path(tempfile.gettempdir()) / "camtutor-benchmark" if quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)

    def repeats_for(model: str) -> dict[int, int]:
        if repeats is not None:
            return {b: repeats for b in batches}
        if quick:
            return {b: 2 for b in batches}
        return {b: FULL_REPEATS[model].get(b, 5) for b in batches}

    cases: list[Case] = []
    rows: list[Row] = []
    if timings:
        for name in (m for m in models if m != "shapes-vit"):  # shapes-vit: benchmarks.bench_vit, below
            log(f"{name}: building")
            if name == "shapes":
                case = shapes_case(repeats_for(name))
            elif quick:
                case = mobilenet_case(repeats_for(name), size=96, alpha=0.35)
            else:
                case = mobilenet_case(repeats_for(name))
            cases.append(case)
            rows += measure_case(case, batches, log)
    trust_metrics = None
    if metrics:
        from benchmarks import bench_metrics

        log("metrics: deletion and cascading randomisation (benchmarks.bench_metrics)")
        sizes = metrics if isinstance(metrics, dict) else (
            bench_metrics.QUICK if quick else ({"repeats": repeats} if repeats else {}))
        trust_metrics = bench_metrics.run(**sizes, log=lambda message: log(f"  {message}"))
    nb = measure_notebooks(log) if notebooks else None
    env = environment(threads, load_start)
    goals = targets(rows, nb) + (trust_metrics["targets"] if trust_metrics else [])
    from benchmarks import bench_vit  # Grad-CAM on the bundled ViT (issue 19): writes vit.md, adds one target

    goals += bench_vit.targets(models, quick=quick, repeats=repeats, out=out, log=log) if timings else []
    if trust_metrics:
        bench_metrics.write(trust_metrics, out, env)
    (out / "benchmark.md").write_text(markdown(rows, cases, nb, env, goals))
    if rows:
        plot(rows, out / "benchmark.png")
    raw = {
        "environment": env,
        "rows": [{**r.__dict__, "median": r.median} for r in rows],
        "notebooks": nb,
        "metrics": {k: v for k, v in trust_metrics.items() if k != "targets"} if trust_metrics else None,
        "targets": [{"target": t, "measured": m, "detail": d, "passed": ok} for t, m, d, ok in goals],
    }
    (out / "benchmark.json").write_text(json.dumps(raw, indent=1))
    return {"rows": rows, "targets": goals, "notebooks": nb, "metrics": trust_metrics, "environment": env, "out": out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="batches 1-2, 2 repeats, MobileNetV2 alpha=0.35 at 96x96")
    parser.add_argument("--models", default="shapes,mobilenetv2,shapes-vit", help="comma-separated: shapes, mobilenetv2, shapes-vit")
    parser.add_argument("--batches", default=None, help="comma-separated batch sizes (default 1,8,64)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per contender (default: per model/batch)")
    parser.add_argument("--notebooks", action="store_true", help="also run each notebook under nbval: wall time, kernel peak RSS")
    parser.add_argument("--no-timings", action="store_true", help="skip the Grad-CAM timings (with --notebooks)")
    parser.add_argument("--no-metrics", action="store_true", help="skip the trust metrics' targets (benchmarks.bench_metrics)")
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow intra/inter-op and OpenMP threads (default 2)")
    parser.add_argument("--onednn", action="store_true", help="TF_ENABLE_ONEDNN_OPTS=1 (the benchmarks' default is 0, as in the notebooks; the command's is 1)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default benchmarks/results; --quick: a temp folder)")
    args = parser.parse_args(argv)
    result = run(
        quick=args.quick,
        models=tuple(m.strip() for m in args.models.split(",") if m.strip()),
        batches=[int(b) for b in args.batches.split(",")] if args.batches else None,
        repeats=args.repeats,
        notebooks=args.notebooks,
        timings=not args.no_timings,
        metrics=not args.no_metrics,
        out=args.out,
        threads=args.threads,
        onednn=True if args.onednn else None,
    )
    print()
    print(f"load average at start {result['environment']['loadavg_start']}, at end {result['environment']['loadavg_end']}")
    for target, measured, detail, passed in result["targets"]:
        print(f"{'PASS' if passed else 'MISS'}  {target}: {measured}  ({detail})")
    extra = ", metrics.md, metrics.json" if result["metrics"] else ""
    print(f"written: {result['out'] / 'benchmark.md'}, benchmark.png, benchmark.json{extra}")
    return 0 if all(ok for *_, ok in result["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
