"""Latency of the explorer widget, measured without a browser (the kernel-side work of each interaction).

Run from the repository root::

    python -m benchmarks.bench_explorer [--images 16] [--wait 2] [--repeats 30] [--out FILE.md]

The issue's scenario, for every method of the explorer on the bundled "shapes" model (``--images`` images):

1. a fresh model (nothing traced) and an explorer showing that method are built inside a running asyncio
   loop, as in a Jupyter kernel ("build": what the cell displaying the explorer costs);
2. the loop runs ``--wait`` seconds (the explorer is on screen; its idle-time prefetch may run);
3. every layer is visited once (the layer slider is set, the panels are redrawn), from the first layer to
   the last, each visit timed from the slider change to the finished redraw.

Also printed: the prefetch steps that ran in the wait (count, longest: a message arriving during a step
waits for it), and the cached interactions (class, image, ReLU, opacity, a visited layer) after it.
Targets (issue 11): a first visit <= 150 ms for every one-pass method; cached switches <= 30 ms. Score-CAM
and Ablation-CAM run K x N extra passes: they say "computing..." and are never prefetched.
These are not timed tests: they print what this machine measured in this run, with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def milliseconds(action) -> float:
    start = time.perf_counter()
    action()
    return 1000.0 * (time.perf_counter() - start)


def setter(control, value):
    return lambda: setattr(control, "value", value)


async def _scenario(method: str, images, class_names, wait: float) -> dict:
    import camtutor as ct
    from camtutor import widgets
    from camtutor.methods import REGISTRY

    model = ct.models.load("shapes")  # fresh: no compiled function exists for it yet
    steps: list[float] = []
    original_step = widgets.Explorer.prefetch_step

    def timed_step(self):
        start = time.perf_counter()
        try:
            return original_step(self)
        finally:
            steps.append(1000.0 * (time.perf_counter() - start))

    widgets.Explorer.prefetch_step = timed_step
    try:
        start = time.perf_counter()
        explorer = widgets.Explorer(model, images, class_names, method=method)
        build = 1000.0 * (time.perf_counter() - start)
        await asyncio.sleep(wait)
        prefetched = len(steps)
        visits = {}
        layers = [explorer.cam_layer] if REGISTRY[method].gap_layer else explorer.layers
        for layer in layers:
            computed = explorer.compute_calls
            start = time.perf_counter()
            if layer == explorer.layer_slider.value:  # already on screen: re-render it (a cached redraw)
                explorer._render()
            else:
                explorer.layer_slider.value = layer
            blocked = 1000.0 * (time.perf_counter() - start)  # the kernel could not answer anything else
            while explorer.state() is None and explorer._computing:  # a slow method, computing in a thread
                await asyncio.sleep(0.002)
            on_screen = 1000.0 * (time.perf_counter() - start)
            assert explorer.state() is not None and explorer.state().layer == layer, explorer.note.value
            visits[layer] = (on_screen, explorer.compute_calls > computed, blocked)
            await asyncio.sleep(0)  # let the loop run between user actions
    finally:
        widgets.Explorer.prefetch_step = original_step
    return {"build_ms": build, "visits": visits, "prefetch_steps": prefetched,
            "longest_step_ms": max(steps[:prefetched], default=0.0), "explorer": explorer}


def first_visits(images: int = 16, wait: float = 2.0, methods=None, log=print) -> dict:
    """The issue's scenario for each method (see the module docstring): -> {method: result}."""
    import camtutor as ct
    from camtutor import widgets

    data = ct.data.shapes(images, seed=1)
    ct.class_probabilities(ct.models.load("shapes"), data.images)  # TensorFlow's start-up, not any method's
    results = {}
    for method in methods or widgets.explorer_methods():
        log(f"explorer: {method}")
        result = asyncio.run(_scenario(method, data.images, data.class_names, wait))
        result.pop("explorer")
        results[method] = result
    return results


def cached_switches(images: int, repeats: int) -> dict:
    """Class, image, ReLU, opacity and layer switches once every layer is cached: medians in ms."""
    import camtutor as ct
    from camtutor import widgets

    model = ct.models.load("shapes")
    data = ct.data.shapes(images, seed=2)
    explorer = widgets.Explorer(model, data.images, data.class_names, prefetch=False)
    while explorer.prefetch_step():
        pass
    n, c, layers = len(data.images), len(data.class_names), explorer.layers

    def median_of(actions):
        return statistics.median(milliseconds(action) for action in actions)

    return {
        "class switch": median_of(setter(explorer.class_dropdown, (i + 1) % c) for i in range(repeats)),
        "image switch": median_of(setter(explorer.image_slider, (i + 1) % n) for i in range(repeats)),
        "ReLU toggle": median_of(setter(explorer.relu_checkbox, i % 2 == 0) for i in range(repeats)),
        "opacity change": median_of(setter(explorer.alpha_slider, round(0.1 + 0.8 * (i % 9) / 8, 2))
                                    for i in range(repeats)),
        "cached layer switch": median_of(setter(explorer.layer_slider, layers[i % len(layers)])
                                         for i in range(repeats)),
    }


def markdown(visits: dict, switches: dict | None, header: str) -> str:
    from camtutor.methods import REGISTRY

    layers = list(dict.fromkeys(layer for result in visits.values() for layer in result["visits"]))
    lines = [header, "", "First visit of each layer: ms until its map is on screen, the explorer shown for the wait "
             "first (* = computed on the visit, else prefetched; a slow method computes in a worker thread, "
             "the kernel blocked for the ms in brackets):", "",
             "| method | build | " + " | ".join(layers) + " | worst | prefetch steps in the wait (longest ms) |",
             "|---|---|" + "---|" * (len(layers) + 2)]
    for method, result in visits.items():
        cells = []
        for layer in layers:
            if layer in result["visits"]:
                ms, computed, blocked = result["visits"][layer]
                background = f" ({blocked:.0f})" if REGISTRY[method].extra_passes and computed else ""
                cells.append(f"{ms:.0f}{'*' if computed else ''}{background}")
            else:
                cells.append("")
        worst = max(visit[0] for visit in result["visits"].values())
        slow = " (K x N passes)" if REGISTRY[method].extra_passes else ""
        lines.append(f"| {method}{slow} | {result['build_ms']:.0f} | " + " | ".join(cells) +
                     f" | {worst:.0f} | {result['prefetch_steps']} ({result['longest_step_ms']:.0f}) |")
    if switches:
        lines += ["", "Cached interactions, median ms (target <= 30):", "", "| interaction | ms |", "|---|---|"]
        lines += [f"| {name} | {value:.1f} |" for name, value in switches.items()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16, help="images in the explorer (default 16)")
    parser.add_argument("--wait", type=float, default=2.0, help="seconds on screen before the visits (default 2)")
    parser.add_argument("--repeats", type=int, default=30, help="repeats of each cached switch (default 30)")
    parser.add_argument("--methods", nargs="*", help="only these methods (default: every method of the explorer)")
    parser.add_argument("--out", type=Path, help="also write the table to this markdown file")
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    import camtutor as ct
    import tensorflow as tf

    load = os.getloadavg()
    visits = first_visits(args.images, args.wait, args.methods, log=lambda m: print(m, file=sys.stderr))
    switches = cached_switches(args.images, args.repeats)
    header = (f"# Explorer latency\n\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, camtutor from "
              f"{Path(ct.__file__).parent}, TF {tf.__version__}, oneDNN {os.environ.get('TF_ENABLE_ONEDNN_OPTS')}, "
              f"shapes model, {args.images} images of 64x64, wait {args.wait:g} s, load "
              f"{[round(x, 2) for x in load]} -> {[round(x, 2) for x in os.getloadavg()]}")
    text = markdown(visits, switches, header)
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps({"header": header, "visits": visits, "switches": switches}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
