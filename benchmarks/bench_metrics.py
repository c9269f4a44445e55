"""Cost of camtutor.metrics' model-running checks, against the forward pass they cannot avoid.

Run from the repository root:  python -m benchmarks.bench_metrics [--images 64] [--steps 50] [--repeats 5]

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
of :func:`benchmarks.run.targets`, so the main benchmark can append them to its table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

DELETION_TARGET = 3.0  # x forward pass
RANDOMISATION_TARGET = 20.0  # seconds


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_metrics", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64, help="images (default 64)")
    parser.add_argument("--steps", type=int, default=50, help="deletion steps (default 50)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds of the deletion comparison (default 5)")
    parser.add_argument("--batch-size", type=int, default=None, help="images per model call (default metrics' 512)")
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow intra/inter-op threads (default 2)")
    args = parser.parse_args(argv)
    from benchmarks.run import configure_threads

    configure_threads(args.threads)
    load_start = os.getloadavg()
    result = run(images=args.images, steps=args.steps, repeats=args.repeats, batch_size=args.batch_size)
    print(f"\nload average at start {[round(x, 2) for x in load_start]}, at end {[round(x, 2) for x in os.getloadavg()]}")
    for target, measured, detail, passed in result["targets"]:
        print(f"{'PASS' if passed else 'MISS'}  {target}: {measured}  ({detail})")
    return 0 if all(ok for *_, ok in result["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
