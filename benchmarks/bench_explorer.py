"""Latency of the explorer widget, measured without a browser (the kernel-side work of each interaction).

Run:  python benchmarks/bench_explorer.py [--images N] [--repeats R]

Prints medians over repeats, in milliseconds, for the bundled "shapes" model:

* class switch, image switch, ReLU toggle, opacity change: served from the cache (targets: <= 30 ms);
* first visit of a layer, "cold": the compiled function for that layer is traced by TensorFlow and then
  run (once per model and layer per Python process);
* first visit of a layer, "traced": the function exists (another explorer on the same model already
  used the layer, or the explorer prefetched it) and only the batched all-class pass runs (target: <= 150 ms).

These are not timed tests: they print what this machine measured in this run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402

import camtutor as ct  # noqa: E402
from camtutor import widgets  # noqa: E402


def milliseconds(action) -> float:
    start = time.perf_counter()
    action()
    return 1000.0 * (time.perf_counter() - start)


def median_of(actions) -> float:
    return statistics.median(milliseconds(action) for action in actions)


def setter(control, value):
    return lambda: setattr(control, "value", value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16, help="images in the explorer (default 16)")
    parser.add_argument("--repeats", type=int, default=30, help="repeats of each cached switch (default 30)")
    parser.add_argument("--untrained", action="store_true", help="an untrained gap_classifier (same layers)")
    args = parser.parse_args()

    model = ct.models.gap_classifier() if args.untrained else ct.models.load("shapes")
    data = ct.data.shapes(args.images, seed=1)
    print(f"shapes model, {args.images} images of 64x64, {len(data.class_names)} classes, "
          f"layers {ct.conv_layers(model)}; medians in ms")

    start = time.perf_counter()
    explorer = widgets.Explorer(model, data.images, data.class_names)
    print(f"construction (first layer cold, including TensorFlow tracing): {1000 * (time.perf_counter() - start):.0f}")

    cold = {}
    for layer in explorer.layers[:-1]:
        cold[layer] = milliseconds(setter(explorer.layer_slider, layer))
    explorer.layer_slider.value = explorer.layers[-1]

    n, c = len(data.images), len(data.class_names)
    rows = {
        "class switch": median_of(setter(explorer.class_dropdown, (i + 1) % c) for i in range(args.repeats)),
        "image switch": median_of(setter(explorer.image_slider, (i + 1) % n) for i in range(args.repeats)),
        "ReLU toggle": median_of(setter(explorer.relu_checkbox, i % 2 == 0) for i in range(args.repeats)),
        "opacity change": median_of(
            setter(explorer.alpha_slider, round(0.1 + 0.8 * (i % 9) / 8, 2)) for i in range(args.repeats)),
        "cached layer switch": median_of(
            setter(explorer.layer_slider, explorer.layers[i % len(explorer.layers)]) for i in range(args.repeats)),
    }
    for name, value in rows.items():
        print(f"{name:<22} {value:7.1f}   (target <= 30)")

    # A second explorer on the same model and other images: every layer is traced, nothing is cached.
    other = ct.data.shapes(args.images, seed=2).images
    traced = {}
    for repeat in range(3):
        fresh = widgets.Explorer(model, other, data.class_names)
        for layer in fresh.layers[:-1]:
            traced.setdefault(layer, []).append(milliseconds(setter(fresh.layer_slider, layer)))
    print("first visit of a layer:      cold (trace + run)   traced (run only, median of 3)   target <= 150")
    for layer in explorer.layers[:-1]:
        print(f"  {layer:<12} {cold[layer]:>20.0f} {statistics.median(traced[layer]):>28.0f}")
    idle = widgets.Explorer(model, ct.data.shapes(args.images, seed=3).images, data.class_names)
    start = time.perf_counter()
    while idle.prefetch_step():  # what the kernel does between messages, one layer per idle moment
        pass
    print(f"idle prefetch of all layers (traced): {1000 * (time.perf_counter() - start):.0f} ms in total; "
          f"then a first visit is a cached layer switch: "
          f"{median_of(setter(idle.layer_slider, layer) for layer in idle.layers[:-1]):.1f}")
    worst = max(statistics.median(v) for v in traced.values())
    print(f"worst traced first visit: {worst:.0f} ms; worst cached switch: {max(rows.values()):.1f} ms")
    assert np.isfinite(worst)


if __name__ == "__main__":
    main()
