"""Cost of camtutor.metrics' model-running checks, against the forward pass they cannot avoid.

Run from the repository root::

    python -m benchmarks.bench_metrics            # 1-2 min on 2 cores; writes benchmarks/results/metrics.md and .json
    python -m benchmarks.bench_metrics --quick    # 8 images, 5 steps, 1 round; prints only
    python -m benchmarks.run                      # the main benchmark runs this too (targets in benchmark.md)

Options: ``--images 64 --steps 50 --repeats 5 --batch-size N --threads 2 --out DIR``.

Two targets (ratios and times from this one run; nothing here is asserted by the unit tests):

* **deletion**: the deletion curve of ``steps`` steps for ``images`` images of the bundled ``shapes`` model
  (64x64 images from ``camtutor.data.shapes``, Grad-CAM maps) costs <= 3x one forward pass of the
  images x (steps + 1) edited images it has to score. The forward pass is
  :func:`camtutor.explain.class_probabilities` on the same number of images, in the same
  ``batch_size`` calls (512 images: one call of 3264 images of 64x64 would need about 1 GB for conv1
  alone). Both run round-robin, ``repeats`` times; medians (and the ratio of minimums).
* **randomisation**: a 10-layer cascading randomisation (:func:`camtutor.metrics.randomized_models`)
  with Grad-CAM of each randomised model on ``images`` images runs in <= 20 s, wall time including the
  copy of the model and every Grad-CAM call (the first traces camtutor's compiled function). The bundled
  shapes model has only 5 layers with weights (conv1, conv2, conv3, last_conv, predictions), so the
  target uses ``deep_model()``: a nested Functional backbone of 9 convolutions + GAP -> Dense, 10 layers
  with weights, untrained (timing needs no training). The shapes model's 5 steps are timed too, and
  the same 10 steps with ``copies=True`` (a fresh clone, traced anew, per step) for comparison.

``run()`` returns the timings and ``targets``: (target, measured, detail, passed) tuples in the format
of :func:`benchmarks.run.targets`, so the main benchmark appends them to its table; :func:`write` puts
``metrics.md`` (the targets and every timing) and ``metrics.json`` into a folder.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

DELETION_TARGET = 3.0  # x forward pass
RANDOMISATION_TARGET = 20.0  # seconds
RESULTS = Path(__file__).resolve().parent / "results"
QUICK = {"images": 8, "steps": 5, "repeats": 1}  # --quick and ``python -m benchmarks.run --quick``


def deep_model(num_classes: int = 3, *, input_shape=(64, 64, 3), width: int = 16):
    """10 layers with weights: a nested backbone of 9 3x3 convs (64, 64, pool, 32, 32, pool, 16 x 5) + Dense."""
    import keras
    from keras import layers

    inputs = keras.Input(input_shape, name="image")
    x = inputs
    plan = [width, width, "pool", 2 * width, 2 * width, "pool"] + [2 * width] * 5
    convs = 0
    for item in plan:
        if item == "pool":
            x = layers.MaxPooling2D(2)(x)
        else:
            convs += 1
            x = layers.Conv2D(item, 3, padding="same", activation="relu", name=f"conv{convs}")(x)
    backbone = keras.Model(inputs, x, name="backbone")
    outer = keras.Input(input_shape, name="image")
    pooled = layers.GlobalAveragePooling2D(name="gap")(backbone(outer))
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(pooled)
    return keras.Model(outer, outputs, name="deep_nested")


def _seconds(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _cascade(model, images, classes, *, copies: bool = False) -> tuple[float, int]:
    """Wall time of a full cascading randomisation with Grad-CAM of every step; -> (seconds, steps)."""
    import camtutor as ct
    from camtutor import metrics

    start = time.perf_counter()
    steps = 0
    for _, randomised in metrics.randomized_models(model, mode="cascading", seed=0, copies=copies):
        ct.grad_cam(randomised, images, classes)
        steps += 1
    return time.perf_counter() - start, steps


def run(
    *, images: int = 64, steps: int = 50, repeats: int = 5, batch_size: int | None = None, log: Callable[[str], None] = print
) -> dict:
    """Measure both targets; returns {"deletion": ..., "randomisation": ..., "targets": [...]}."""
    import numpy as np

    import camtutor as ct
    from camtutor import metrics

    batch_size = batch_size or metrics.DEFAULT_BATCH_SIZE
    try:
        model, note = ct.models.load("shapes"), "bundled trained weights"
    except ct.ModelError:
        model, note = ct.models.gap_classifier(), "untrained (bundled weights missing)"
    data = ct.data.shapes(images, seed=1)
    classes = np.argmax(ct.class_probabilities(model, data.images), axis=-1)
    maps = ct.grad_cam(model, data.images, classes)
    edited = np.repeat(data.images, steps + 1, axis=0)  # the same number of images as the curve scores

    def forward():
        for start in range(0, len(edited), batch_size):
            ct.class_probabilities(model, edited[start : start + batch_size])

    def curve():
        metrics.deletion(model, data.images, maps, classes, steps=steps, batch_size=batch_size)

    log(f"deletion: shapes model ({note}), {images} images x {steps + 1} points = {len(edited)} images, "
        f"{batch_size} per model call; warm-up")
    forward()
    curve()
    times: dict[str, list[float]] = {"forward": [], "deletion": []}
    for round_ in range(repeats):  # round-robin: load from other processes hits both alike
        times["forward"].append(_seconds(forward))
        times["deletion"].append(_seconds(curve))
        log(f"  round {round_ + 1}/{repeats}: forward {times['forward'][-1]:.2f} s, deletion {times['deletion'][-1]:.2f} s, "
            f"load {os.getloadavg()[0]:.2f}")
    fwd, dele = statistics.median(times["forward"]), statistics.median(times["deletion"])
    ratio, min_ratio = dele / fwd, min(times["deletion"]) / min(times["forward"])

    log("randomisation: cascading, Grad-CAM of every step")
    deep = deep_model()
    deep_images = data.images
    deep_classes = np.argmax(ct.class_probabilities(deep, deep_images), axis=-1)
    deep_seconds, deep_steps = _cascade(deep, deep_images, deep_classes)
    log(f"  deep_nested ({deep_steps} layers with weights): {deep_seconds:.2f} s")
    shapes_seconds, shapes_steps = _cascade(model, data.images, classes)
    log(f"  shapes ({shapes_steps} layers with weights): {shapes_seconds:.2f} s")
    copies_seconds, _ = _cascade(deep_model(), deep_images, deep_classes, copies=True)
    log(f"  deep_nested with copies=True (a fresh clone per step): {copies_seconds:.2f} s")

    targets = [
        (
            f"metrics: deletion curve, {steps} steps x {images} images <= {DELETION_TARGET:g}x forward of {len(edited)} images",
            f"{ratio:.2f}x",
            f"{dele:.2f} s vs {fwd:.2f} s (medians of {repeats}); ratio of minimums {min_ratio:.2f}x",
            ratio <= DELETION_TARGET,
        ),
        (
            f"metrics: {deep_steps}-layer cascading randomisation + Grad-CAM on {images} images <= {RANDOMISATION_TARGET:g} s",
            f"{deep_seconds:.1f} s",
            f"deep_nested (nested backbone, 9 convs + Dense, untrained); shapes model, all {shapes_steps} weighted "
            f"layers: {shapes_seconds:.1f} s; with copies=True: {copies_seconds:.1f} s",
            deep_seconds <= RANDOMISATION_TARGET,
        ),
    ]
    return {
        "settings": {"images": images, "steps": steps, "repeats": repeats, "batch_size": batch_size, "model": note},
        "deletion": {"forward_s": times["forward"], "deletion_s": times["deletion"], "ratio": ratio, "min_ratio": min_ratio},
        "randomisation": {
            "deep_nested_s": deep_seconds,
            "deep_nested_layers": deep_steps,
            "shapes_s": shapes_seconds,
            "shapes_layers": shapes_steps,
            "deep_nested_copies_s": copies_seconds,
        },
        "targets": targets,
    }


def markdown(result: dict, env: dict | None = None) -> str:
    """``metrics.md``: the two targets with PASS/MISS, then every timing of the run."""
    cfg, dele, rand = result["settings"], result["deletion"], result["randomisation"]
    lines = ["# camtutor.metrics benchmark", ""]
    if env:
        lines += [f"{env['date']}; {env['cpu']} ({env['cores']} cores), {env['threads']} threads; TensorFlow "
                  f"{env['tensorflow']}, Keras {env['keras']}, TF_ENABLE_ONEDNN_OPTS={env['TF_ENABLE_ONEDNN_OPTS']}; "
                  f"load average (1, 5, 15 min) at start {env['loadavg_start']}, at end {env['loadavg_end']}.", ""]
    lines += [f"shapes model ({cfg['model']}), {cfg['images']} images of `camtutor.data.shapes(seed=1)`, "
              f"{cfg['steps']} deletion steps, {cfg['batch_size']} images per model call, {cfg['repeats']} rounds.", "",
              "## Targets", "", "| target | measured | detail | result |", "|---|---|---|---|"]
    lines += [f"| {t} | {m} | {d} | {'PASS' if ok else 'MISS'} |" for t, m, d, ok in result["targets"]]
    lines += ["", "## Timings (s)", "", "| what | runs |", "|---|---|",
              f"| forward pass of {cfg['images']} x {cfg['steps'] + 1} images | "
              + ", ".join(f"{t:.2f}" for t in dele["forward_s"]) + " |",
              f"| deletion curve, {cfg['steps']} steps x {cfg['images']} images | "
              + ", ".join(f"{t:.2f}" for t in dele["deletion_s"]) + " |",
              f"| cascading randomisation + Grad-CAM, deep_nested ({rand['deep_nested_layers']} layers) | "
              f"{rand['deep_nested_s']:.2f} |",
              f"| the same with copies=True | {rand['deep_nested_copies_s']:.2f} |",
              f"| cascading randomisation + Grad-CAM, shapes ({rand['shapes_layers']} layers) | {rand['shapes_s']:.2f} |"]
    return "\n".join(lines) + "\n"


def write(result: dict, out_dir: Path, env: dict | None = None) -> Path:
    """Write ``metrics.md`` and ``metrics.json`` (targets, settings, every timing, ``env``) into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = {**{k: v for k, v in result.items() if k != "targets"}, "environment": env,
           "targets": [{"target": t, "measured": m, "detail": d, "passed": ok} for t, m, d, ok in result["targets"]]}
    (out_dir / "metrics.json").write_text(json.dumps(raw, indent=1))
    path = out_dir / "metrics.md"
    path.write_text(markdown(result, env))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_metrics", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64, help="images (default 64)")
    parser.add_argument("--steps", type=int, default=50, help="deletion steps (default 50)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds of the deletion comparison (default 5)")
    parser.add_argument("--batch-size", type=int, default=None, help="images per model call (default metrics' 512)")
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow intra/inter-op threads (default 2)")
    parser.add_argument("--quick", action="store_true", help="8 images, 5 steps, 1 round; nothing written")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for metrics.md and metrics.json (default %(default)s)")
    args = parser.parse_args(argv)
    from benchmarks.run import configure_threads, environment

    configure_threads(args.threads)
    load_start = os.getloadavg()
    sizes = dict(QUICK) if args.quick else {"images": args.images, "steps": args.steps, "repeats": args.repeats}
    result = run(**sizes, batch_size=args.batch_size)
    env = environment(args.threads, load_start)
    print(f"\nload average at start {env['loadavg_start']}, at end {env['loadavg_end']}")
    for target, measured, detail, passed in result["targets"]:
        print(f"{'PASS' if passed else 'MISS'}  {target}: {measured}  ({detail})")
    if not args.quick:
        print(f"written: {write(result, args.out, env)}, metrics.json")
    return 0 if all(ok for *_, ok in result["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
