"""Grad-CAM on a Vision Transformer against its compiled forward-and-backward floor.

Run from the repository root::

    python -m benchmarks.bench_vit            # writes benchmarks/results/vit.md and vit.json
    python -m benchmarks.bench_vit --quick    # 3 repeats; a temporary folder

What is measured: the bundled ``shapes-vit`` (64x64 input, 8-px patches: an 8x8 grid of tokens, 2 blocks),
64 images, each image's predicted class, at the model's default layer (``ct.conv_layers(model)[-1]``, tokens
explained on their 8x8 grid after the layer's prefix tokens, read from the model). Contenders run round-robin
after a warm-up:

* ``floor: forward``: one compiled ``tf.function``, images -> (that layer's tokens, logits);
* ``floor: forward + backward to A``: the same with the gradient of the class logit with respect to the
  layer's tokens: exactly the work Grad-CAM needs. In a transformer the tokens feed the residual path as well
  as the next layer, so there is no "head" sub-model from A (as :func:`benchmarks.run.floors` builds for a
  CNN): the floor differentiates the whole forward pass with respect to the captured tokens;
* ``camtutor.grad_cam``: the library's default call (reshape to the grid, weights, ReLU included).

Target (issue 19): camtutor.grad_cam <= 1.3 x the forward + backward floor. The maps are checked against a
Grad-CAM written from the floor's tokens and gradients (max abs difference after ``ct.normalize`` <= 1e-4).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from benchmarks.bench_methods import _time_round_robin
from benchmarks.run import RESULTS, configure_threads

TARGET = 1.3


def measure(repeats: int = 20, batch: int = 64, log=print) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    import camtutor as ct
    from benchmarks.keras_example import logit_clone

    from camtutor.feature_maps import layout_of

    model = ct.models.load("shapes-vit")
    layer = ct.conv_layers(model)[-1]   # the model's default layer (what ct.heatmap explains)
    found = layout_of(model.get_layer(layer))
    prefix, grid = found.prefix, found.grid
    images = ct.data.shapes(batch, seed=64).images
    classes = np.argmax(ct.class_probabilities(model, images), axis=-1).astype(np.int32)
    clone = logit_clone(model)
    both = keras.Model(clone.inputs[0], [clone.get_layer(layer).output, clone.output])
    spec = [tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32), tf.TensorSpec((None,), tf.int32)]

    @tf.function(input_signature=spec[:1])
    def forward(x):
        return both(x, training=False)

    @tf.function(input_signature=spec)
    def forward_backward(x, c):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            tokens, logits = both(x, training=False)
            score = tf.gather(logits, c, batch_dims=1)
        return tokens, tape.gradient(score, tokens)

    contenders = {
        "floor: forward": lambda: [t.numpy() for t in forward(images)],
        "floor: forward + backward to A": lambda: [t.numpy() for t in forward_backward(images, classes)],
        "camtutor.grad_cam": lambda: ct.grad_cam(model, images, classes, layer=layer),
    }
    times = _time_round_robin(contenders, repeats)  # warm-up (tracing) excluded
    medians = {name: statistics.median(t) for name, t in times.items()}

    tokens, grads = (np.asarray(t) for t in forward_backward(images, classes))
    a = tokens[:, prefix:].reshape(batch, *grid, -1)
    g = grads[:, prefix:].reshape(batch, *grid, -1)
    reference = np.maximum(np.einsum("bhwk,bk->bhw", a, g.mean(axis=(1, 2))), 0)
    ours = np.asarray(ct.grad_cam(model, images, classes, layer=layer))
    diff = float(np.abs(ct.normalize(ours) - ct.normalize(reference.astype(np.float32))).max())
    ratio = medians["camtutor.grad_cam"] / medians["floor: forward + backward to A"]
    log(f"shapes-vit, {batch} images, layer {layer}: " + ", ".join(
        f"{name} {1000 * s:.1f} ms" for name, s in medians.items()))
    log(f"camtutor.grad_cam / floor (forward + backward to A) = {ratio:.2f} (target <= {TARGET}); "
        f"max |normalised difference| from the reference {diff:.1e}")
    return {"model": "shapes-vit", "layer": layer, "batch": batch, "repeats": repeats, "medians_s": medians,
            "ratio": ratio, "target": TARGET, "passes": ratio <= TARGET and diff <= 1e-4, "max_abs_diff": diff}


def write(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "vit.json").write_text(json.dumps(result, indent=2))
    lines = ["# Grad-CAM on a Vision Transformer", "",
             f"`shapes-vit`, {result['batch']} images, its default layer `{result['layer']}` (tokens on an 8x8 grid), "
             f"median of {result['repeats']} round-robin repeats.", "",
             "| contender | median ms |", "|---|---|"]
    lines += [f"| {name} | {1000 * s:.1f} |" for name, s in result["medians_s"].items()]
    verdict = "PASS" if result["passes"] else "MISS"
    lines += ["", f"camtutor.grad_cam / floor (forward + backward to A): **{result['ratio']:.2f}** "
              f"(target <= {result['target']}): {verdict}; agreement with the floor's Grad-CAM "
              f"{result['max_abs_diff']:.1e}.", ""]
    (out / "vit.md").write_text("\n".join(lines))


def targets(models, *, quick: bool, repeats: int | None, out: Path, log) -> list[tuple[str, str, str, bool]]:
    """For :func:`benchmarks.run.run`: measure and write ``vit.md`` when ``"shapes-vit"`` is among ``models``;
    the target row ``(target, measured, detail, passed)`` for its table (none otherwise)."""
    if "shapes-vit" not in models:
        return []
    result = measure(repeats=repeats or (3 if quick else 20), batch=8 if quick else 64, log=log)
    write(result, out)
    return [(f"ViT: camtutor.grad_cam <= {TARGET}x forward + backward floor (shapes-vit, {result['batch']} images)",
             f"{result['ratio']:.2f}x", f"layer {result['layer']}; agreement {result['max_abs_diff']:.1e}",
             bool(result["passes"]))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_vit", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    configure_threads(args.threads)
    result = measure(repeats=3 if args.quick else 20, batch=8 if args.quick else 64)
    out = args.out or (Path(tempfile.mkdtemp()) if args.quick else RESULTS)
    write(result, out)
    return 0 if result["passes"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
