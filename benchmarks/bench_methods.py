"""Every method of the registry: speed against the compiled floors and tf-keras-vis, agreement, Score-CAM memory.

Run from the repository root (all ratios come from one run, contenders round-robin as in benchmarks/run.py)::

    python -m benchmarks.bench_methods            # about 5-10 min on 2 cores; writes benchmarks/results/methods.md
    python -m benchmarks.bench_methods --quick    # tiny repeats, no MobileNetV2 memory run

What is measured:

* the bundled ``shapes`` model (64x64, layer ``last_conv`` 16x16x32), 64 images: every one-pass method
  (one forward pass, plus one backward pass for the gradient methods) against the compiled forward floor
  and the forward + backward floor of :func:`benchmarks.run.floors`; Guided Grad-CAM (a gradient with
  respect to the input: a backward pass through the whole network) also against the plain model's input
  gradient (one compiled forward pass and ``tape.gradient`` of the class score to the images, no camtutor);
* 16 images: Score-CAM against tf-keras-vis 0.8.7 ``Scorecam``; 64 images: Grad-CAM++ and LayerCAM
  against ``GradcamPlusPlus`` and ``Layercam``. Agreement is the max |normalize(a) - normalize(b)| at the
  layer's resolution against a reference written from the paper (for Score-CAM a per-image loop of
  ``model.predict`` calls: tf-keras-vis omits the baseline and the softmax over channels, so its maps are
  compared with the same reference and reported, not required to agree);
* peak resident memory of Score-CAM on MobileNetV2 (``weights=None``) at 224x224 with 16 images, in a
  fresh subprocess (its RSS before the call is reported too);
* the explorer's first visit of each layer, 2 s after it is shown (:mod:`benchmarks.bench_explorer`).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.run import RESULTS, ROOT, configure_threads, floors, shapes_case

from camtutor.methods import REGISTRY  # noqa: E402 - TF-free: the registry decides what is benchmarked

#: the registry's one-pass methods (built-ins only: a method registered at run time is not benchmarked)
ONE_PASS = tuple(name for name, entry in REGISTRY.items()
                 if not entry.extra_passes and entry.paper != "registered at run time")
EXTRA_PASSES = tuple(name for name, entry in REGISTRY.items()
                     if entry.extra_passes and entry.paper != "registered at run time")
INPUT_FLOOR = "floor: plain model, forward + tape.gradient to the input"


def _time_round_robin(contenders: dict, repeats: int) -> dict[str, list[float]]:
    for run in contenders.values():  # warm-up: tracing
        run()
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def _diff(a, b) -> float:
    import numpy as np

    import camtutor as ct

    return float(np.abs(ct.normalize(np.asarray(a, np.float32)) - ct.normalize(np.asarray(b, np.float32))).max())


def _references(model, images, classes, layer):
    """Paper formulas from ct.gradients and plain Keras calls (the same as tests/test_methods.py)."""
    import numpy as np
    import tensorflow as tf

    a, g = __import__("camtutor").gradients(model, images, classes, layer)
    denominator = 2 * g**2 + a.sum(axis=(1, 2), keepdims=True) * g**3
    alpha = np.where(denominator != 0, g**2 / np.where(denominator != 0, denominator, 1), 0)
    plusplus = np.maximum(np.einsum("bhwk,bk->bhw", a, (alpha * np.maximum(g, 0)).sum(axis=(1, 2))), 0)
    layercam = np.maximum((np.maximum(g, 0) * a).sum(-1), 0)

    import keras

    logits_model = keras.models.clone_model(model)  # Algorithm 1 of Wang et al.: the logit increase
    logits_model.set_weights(model.get_weights())
    logits_model.layers[-1].activation = keras.activations.linear

    def score_cam(n):
        baseline = logits_model(np.zeros((1, *images.shape[1:]), np.float32), training=False).numpy()[0]
        maps = []
        for b in range(n):
            up = tf.image.resize(np.moveaxis(a[b], -1, 0)[..., None], images.shape[1:3]).numpy()[..., 0]
            low, high = up.min(axis=(1, 2), keepdims=True), up.max(axis=(1, 2), keepdims=True)
            masks = np.where(high > low, (up - low) / np.where(high > low, high - low, 1), 0)
            p = logits_model.predict(images[b][None] * masks[..., None], verbose=0,
                                     batch_size=len(masks))[:, classes[b]]
            increase = p - baseline[classes[b]]
            w = np.exp(increase - increase.max())
            maps.append(np.maximum((a[b] * (w / w.sum())).sum(-1), 0))
        return np.stack(maps)

    return {"gradcam++": plusplus, "layercam": layercam, "scorecam": score_cam}


def measure_shapes(repeats: int, log) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.layercam import Layercam
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.scores import CategoricalScore

    import camtutor as ct

    case = shapes_case({64: repeats})
    model, layer = case.model, case.layer
    rng = np.random.default_rng(64)
    images = rng.random((64, *model.inputs[0].shape[1:]), dtype=np.float32)
    classes = np.argmax(ct.class_probabilities(model, images), axis=-1).astype(np.int32)
    floor = {c.name: c for c in floors(case)}

    def linear_output(m):
        m.layers[-1].activation = keras.activations.linear

    vis = {
        "gradcam++": GradcamPlusPlus(model, model_modifier=linear_output, clone=True),
        "layercam": Layercam(model, model_modifier=linear_output, clone=True),
        "scorecam": Scorecam(model, model_modifier=linear_output, clone=True),
    }

    def peer(name, x, c):
        with contextlib.redirect_stdout(io.StringIO()):  # Scorecam's model.predict prints a progress bar
            return np.asarray(vis[name](CategoricalScore([int(k) for k in c]), x, penultimate_layer=layer,
                                        seek_penultimate_conv_layer=False, expand_cam=False, normalize_cam=False))

    def ours(method, x, c):
        return ct.heatmap(model, x, c, method=method, layer=None if ct.methods.get(method).gap_layer else layer)

    spec = [tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32), tf.TensorSpec((None,), tf.int32)]

    @tf.function(input_signature=spec)
    def plain_input_gradient(x, c):  # the plain model, no camtutor: one forward pass, dy/dx of the class score
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            y = tf.gather(model(x, training=False), c, batch_dims=1)
        return tape.gradient(y, x)

    log("one-pass methods, 64 images")
    contenders = {
        INPUT_FLOOR: lambda: plain_input_gradient(images, classes).numpy(),
        "floor: forward": lambda: floor["floor: forward"].run(images, classes),
        "floor: forward + backward to A": lambda: floor["floor: forward + backward to A"].run(images, classes),
        "floor: forward + backward to input": lambda: floor["floor: forward + backward to input"].run(images, classes),
    }
    contenders.update({m: (lambda m=m: ours(m, images, classes)) for m in ONE_PASS})
    contenders.update({f"tf-keras-vis {m}": (lambda m=m: peer(m, images, classes)) for m in ("gradcam++", "layercam")})
    times = _time_round_robin(contenders, repeats)

    log("Score-CAM, 16 images")
    few, few_classes = images[:16], classes[:16]
    slow = {m: (lambda m=m: ours(m, few, few_classes)) for m in EXTRA_PASSES}
    slow["tf-keras-vis scorecam"] = lambda: peer("scorecam", few, few_classes)
    score_times = _time_round_robin(slow, max(2, repeats // 4))
    times.update(score_times)

    log("agreement")
    reference = _references(model, images, classes, layer)
    agreement = {
        "gradcam++": _diff(ours("gradcam++", images, classes), reference["gradcam++"]),
        "layercam": _diff(ours("layercam", images, classes), reference["layercam"]),
        "tf-keras-vis gradcam++": _diff(peer("gradcam++", images, classes), reference["gradcam++"]),
        "tf-keras-vis layercam": _diff(peer("layercam", images, classes), reference["layercam"]),
    }
    score_reference = reference["scorecam"](16)
    agreement["scorecam"] = _diff(ours("scorecam", few, few_classes), score_reference)
    agreement["tf-keras-vis scorecam"] = _diff(peer("scorecam", few, few_classes), score_reference)
    medians = {name: statistics.median(t) for name, t in times.items()}
    return {"case": case.note, "medians_s": medians, "agreement": agreement}


MEMORY_CHILD = """
import os, resource, sys, time, json
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np, keras, psutil
import camtutor as ct
model = keras.applications.MobileNetV2(input_shape=(224, 224, 3), weights=None)
images = np.random.default_rng(0).random((16, 224, 224, 3), dtype=np.float32)
ct.class_probabilities(model, images)
before = psutil.Process().memory_info().rss
start = time.perf_counter()
maps = ct.heatmap(model, images, 0, method="scorecam", layer="out_relu")
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"rss_before_mb": before / 2**20, "peak_rss_mb": peak / 2**20, "seconds": seconds,
                  "maps": list(maps.shape), "finite": bool(np.isfinite(maps).all())}))
"""


def measure_memory(log) -> dict:
    log("Score-CAM on MobileNetV2, 224 px, 16 images (16 x 1280 masked inputs), in a subprocess")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", MEMORY_CHILD], cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_explorer(log, images: int = 16) -> dict:
    """The issue's explorer scenario per method (:func:`benchmarks.bench_explorer.first_visits`): a fresh
    model, the explorer shown, 2 s later each layer visited once; ms per layer."""
    from benchmarks.bench_explorer import first_visits

    return first_visits(images, 2.0, log=log)


def explorer_markdown(visits: dict) -> str:
    from benchmarks.bench_explorer import markdown as table

    return table(visits, None, "Explorer, 16 images, shown for 2 s, then each layer visited once:").strip()


def markdown(result: dict, only_explorer: bool = False) -> str:
    if only_explorer:
        return explorer_markdown(result["explorer"]) + "\n"
    m, agree = result["shapes"]["medians_s"], result["shapes"]["agreement"]
    forward, backward = m["floor: forward"], m["floor: forward + backward to A"]
    to_input = m["floor: forward + backward to input"]
    lines = ["# camtutor methods benchmark", "", f"{result['env']}", "",
             f"shapes model: {result['shapes']['case']}", "",
             "| method | images | median ms | x forward floor | x matching floor | vs tf-keras-vis | "
             "agreement (max abs, normalised) |", "|---|---|---|---|---|---|---|"]
    for name in ONE_PASS:
        entry = REGISTRY[name]
        matching = forward if not entry.gradients else to_input if entry.input_gradient else backward
        peer = f"tf-keras-vis {name}"
        speed = f"{m[peer] / m[name]:.1f}x faster" if peer in m else ""
        agreement = f"{agree[name]:.1e} (peer {agree[peer]:.1e})" if name in agree else "tests/test_methods.py"
        lines.append(f"| {name} | 64 | {1e3 * m[name]:.1f} | {m[name] / forward:.2f} | {m[name] / matching:.2f} | "
                     f"{speed} | {agreement} |")
    for name in EXTRA_PASSES:
        peer = f"tf-keras-vis {name}"
        speed = f"{m[peer] / m[name]:.1f}x faster" if peer in m else ""
        agreement = f"{agree[name]:.1e} (peer {agree[peer]:.1e})" if name in agree else "tests/test_methods.py"
        lines.append(f"| {name} | 16 | {1e3 * m[name]:.1f} | | | {speed} | {agreement} |")
    lines += ["", "| floor | median ms |", "|---|---|"]
    lines += [f"| {k} | {1e3 * v:.1f} |" for k, v in m.items() if k.startswith("floor")]
    if INPUT_FLOOR in m:
        guided, floor_ratio = m["guided_gradcam"], m[INPUT_FLOOR] / forward
        verdict = ("so no method with an input gradient can reach 1.5x the forward floor here" if floor_ratio > 1.5
                   else "within the 1.5x budget")
        lines += ["", f"Guided Grad-CAM (one compiled function, one forward pass): {guided / forward:.2f}x the forward "
                      f"floor, {guided / m[INPUT_FLOOR]:.2f}x the plain model's input-gradient floor, which is itself "
                      f"{floor_ratio:.2f}x the forward floor ({verdict})."]
    visits = result.get("explorer")
    if visits:
        lines += ["", explorer_markdown(visits)]
    mem = result.get("memory")
    if mem:
        lines += ["", f"Score-CAM on MobileNetV2 (weights=None), 224 px, 16 images, layer out_relu: {mem}"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "methods.md")
    parser.add_argument("--explorer-only", action="store_true", help="only the explorer's first visits")
    parser.add_argument("--keep-memory", action="store_true",
                        help="reuse the Score-CAM memory result of the previous run (results/methods.json): it takes "
                             "20 min under load")
    args = parser.parse_args(argv)
    configure_threads(args.threads)
    from benchmarks.run import environment

    load = os.getloadavg()

    def log(message):
        print(message, file=sys.stderr, flush=True)

    if args.explorer_only:
        visits = measure_explorer(log)
        print(markdown({"explorer": visits, "shapes": None}, only_explorer=True))
        return 0
    result = {"shapes": measure_shapes(3 if args.quick else 12, log), "explorer": measure_explorer(log)}
    previous = args.out.with_suffix(".json")
    if args.keep_memory and previous.exists():
        result["memory"] = {**json.loads(previous.read_text()).get("memory", {}), "from": "the previous run"}
    elif not args.quick:
        result["memory"] = measure_memory(log)
    env = environment(args.threads, load)
    result["env"] = (f"{env['date']}, {env['cpu']}, {env['threads']} threads, TF {env['tensorflow']}, "
                     f"Keras {env['keras']}, tf-keras-vis {env['tf_keras_vis']}, oneDNN {env['TF_ENABLE_ONEDNN_OPTS']}, "
                     f"load {env['loadavg_start']} -> {env['loadavg_end']}")
    text = markdown(result)
    print(text)
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
