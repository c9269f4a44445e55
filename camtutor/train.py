"""Re-create the bundled models from scratch, deterministically, on CPU.

Command line::

    python -m camtutor.train NAME [--out DIR] [--epochs N] [--seed S]

where NAME is ``shapes``, ``shapes-flat``, ``shapes-random-labels``, ``shapes-200``, ``faces``, ``shapes-vit`` or
``all``. It prints the held-out accuracy and writes ``DIR/NAME.weights.h5`` (default: the package's
``camtutor/weights`` folder).

From Python / a notebook::

    from camtutor.train import train
    model, accuracy = train("faces", out_dir=None)   # out_dir=None: do not save

The shapes models are trained as a *BatchNorm twin* (each conv but the last followed by
BatchNormalization) on ``shapes(n_train)`` plus mirror images; the BatchNorm layers are then folded
into the next convolutions, and the plain :func:`camtutor.models.build` architecture is fine-tuned
for 2 epochs (lr / 3). Without BatchNorm the small network stays at chance on the default shapes
data (objects brighter *or* darker than the background, among distractors).

``shapes-random-labels`` is the model of Adebayo et al.'s label randomisation test: the ``shapes``
architecture trained until it *memorises* :func:`random_label_set` (``shapes(200)`` with permuted labels),
the same way (BatchNorm twin, 100 epochs; fold; plain net 20 epochs at lr / 3). It fits its training
labels (accuracy >= 0.95) and is at chance (about 1/3) on fresh images.

``shapes-200`` is its same-data control: the same architecture, images and recipe, but the *true* labels
(``random_label_set()[2]``). The label randomisation test compares the shuffled-label model with a model
trained on 6000 images; only this control tells how much of the difference comes from the labels and how
much from seeing 30 times fewer images.

``shapes-vit`` (:func:`camtutor.models.vit_classifier` with a token-max head and 3x3-window attention) is trained
plainly (LayerNorm inside, no twin): AdamW with a warmed-up cosine learning rate, each epoch on fresh random
mirror / colour-inverse views of ``shapes(n_train)`` (:func:`_vit_views`).

Determinism: ``keras.utils.set_random_seed(seed)`` and
``tf.config.experimental.enable_op_determinism()``; the data come from seeded numpy generators; oneDNN's
custom kernels off (``TF_ENABLE_ONEDNN_OPTS=0`` unless set before TensorFlow starts): with them on, the same
seed gives other weights (``shapes``: 0.992 held-out instead of the committed file's 0.982).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from camtutor import data as _data
from camtutor.errors import ModelError

# oneDNN's custom CPU kernels (TensorFlow's default outside Jupyter) change the rounding, and 100 epochs amplify it:
# the committed weight files were written with them off, and only then does this module re-create them byte for byte.
# Has no effect once TensorFlow is imported (a notebook kernel has them off already); set the variable to choose.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__all__ = ["DEFAULTS", "train", "random_label_set", "main"]

#: Default settings per model: epochs, training-set size, learning rate.
DEFAULTS: dict[str, dict] = {
    # shapes: trained as a BatchNorm twin, folded back into the plain architecture (see _train_shapes);
    # n_train images plus their mirror images
    "shapes": {"epochs": 7, "n_train": 3000, "lr": 1e-3},
    "shapes-flat": {"epochs": 12, "n_train": 4500, "lr": 1e-3},
    # label randomisation (Adebayo et al. 2018): memorise n_train images with permuted labels, no mirror images
    "shapes-random-labels": {"epochs": 100, "n_train": 200, "lr": 1e-3, "fine_tune_epochs": 20},
    # its same-data control: the same 200 images and recipe, true labels
    "shapes-200": {"epochs": 100, "n_train": 200, "lr": 1e-3, "fine_tune_epochs": 20},
    # backbone: trained on faces with a temporary Flatten head; then the GAP head alone
    "faces": {"epochs": 40, "backbone_epochs": 30, "lr": 1e-2, "backbone_lr": 2e-3},
    # the small Vision Transformer: n_train images plus mirror images, AdamW with a cosine schedule, batch 64
    "shapes-vit": {"epochs": 8, "n_train": 6000, "lr": 2e-3, "weight_decay": 1e-4},
}

_VAL_SEED_OFFSET = 1000  # validation shapes use seed + 1000, never the training seed
_VIEW_SEED_OFFSET = 70_000  # shapes-vit: the generator of each epoch's views (_vit_views)
_FINE_TUNE_EPOCHS = 2  # plain shapes model, after folding the BatchNorm twin into it


def _seed_everything(seed: int) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception:  # pragma: no cover - older TF
        pass


def _accuracy(model, images: np.ndarray, labels: np.ndarray) -> float:
    probs = model.predict(images, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(probs, axis=1) == labels))


def _with_batch_norm(model):
    """A training twin of a chain-shaped model: a BatchNormalization after every ``Conv2D`` but the last.

    The twin trains where the plain network does not: on :func:`camtutor.data.shapes` (objects of
    both polarities among distractors) the plain GAP net stays at chance loss for many epochs.
    :func:`_fold_batch_norm` then writes it back into the plain architecture.
    """
    import keras
    from keras import layers

    x = inputs = keras.Input(shape=tuple(model.inputs[0].shape[1:]), name=model.layers[0].name)
    last_conv = [layer for layer in model.layers if isinstance(layer, layers.Conv2D)][-1]
    for layer in model.layers[1:]:
        x = type(layer).from_config(layer.get_config())(x)
        if isinstance(layer, layers.Conv2D) and layer is not last_conv:
            x = layers.BatchNormalization(name=f"{layer.name}_bn")(x)
    return keras.Model(inputs, x, name=f"{model.name}_bn_twin")


def _fold_batch_norm(twin, model) -> int:
    """Copy the twin's weights into ``model``, folding each inference-mode BatchNorm into the next conv.

    A BatchNorm after ``conv + ReLU`` is ``a * z + b`` per channel, ``a = gamma / sqrt(var + eps)``,
    ``b = beta - a * mean``. Max-pooling commutes with it when ``a > 0``, and the next convolution
    absorbs it: ``W' = W * a`` (per input channel), ``bias' = bias + sum W * b``. This is exact except
    on the border cells of the next conv (its zero padding is not ``b``) and for channels with
    ``a < 0``; :func:`_train_shapes` fine-tunes the plain model afterwards to absorb both.

    Returns the number of channels with ``a < 0``.
    """
    from keras import layers

    weighted = [layer for layer in model.layers if layer.weights]
    for layer in weighted:
        layer.set_weights(twin.get_layer(layer.name).get_weights())
    negative = 0
    for k, layer in enumerate(weighted):
        bn_name = f"{layer.name}_bn"
        if not any(l.name == bn_name for l in twin.layers):
            continue
        bn = twin.get_layer(bn_name)
        gamma, beta, mean, var = (np.asarray(w, np.float64) for w in bn.get_weights())
        a = gamma / np.sqrt(var + bn.epsilon)
        b = beta - a * mean
        negative += int(np.sum(a < 0))
        nxt = weighted[k + 1]
        if not isinstance(nxt, layers.Conv2D):  # pragma: no cover - not in the bundled architectures
            raise ModelError(f"cannot fold {bn_name}: the next weighted layer {nxt.name!r} is not a Conv2D")
        kernel, bias = (np.asarray(w, np.float64) for w in nxt.get_weights())
        nxt.set_weights([
            (kernel * a[None, None, :, None]).astype(np.float32),
            (bias + np.einsum("hwco,c->o", kernel, b)).astype(np.float32),
        ])
    return negative


def _train_shapes(name: str, *, epochs: int, n_train: int, lr: float, seed: int, verbose: int):
    from camtutor import models

    train_set = _data.shapes(n_train, seed=seed)
    val_set = _data.shapes(600, seed=seed + _VAL_SEED_OFFSET)
    # shapes are left-right symmetric classes (triangles stay upright): mirrored copies are free data
    x, y = _augment_flip(train_set.images, train_set.labels)
    model = _fit_folded(models.build(name), x, y, epochs=epochs, fine_tune_epochs=_FINE_TUNE_EPOCHS, lr=lr,
                        validation_data=(val_set.images, val_set.labels), verbose=verbose)
    return model, _accuracy(model, val_set.images, val_set.labels)


def _fit_folded(model, x, y, *, epochs: int, fine_tune_epochs: int, lr: float, validation_data=None, verbose: int):
    """Train ``model``'s BatchNorm twin (Adam ``lr``, batch 32, ``epochs``), fold it into ``model``, fine-tune
    ``model`` itself (Adam ``lr / 3``, ``fine_tune_epochs``); returns ``model``."""
    import keras

    twin = _with_batch_norm(model)
    for net, n_epochs, rate in ((twin, epochs, lr), (model, fine_tune_epochs, lr / 3)):
        if net is model:
            _fold_batch_norm(twin, model)
        net.compile(
            optimizer=keras.optimizers.Adam(rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        net.fit(x, y, batch_size=32, epochs=n_epochs, validation_data=validation_data, verbose=verbose)
    return model


def _vit_views(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One epoch of ``shapes-vit`` training data: each image twice, as a random view and its opposite.

    A view is the image or its mirror image, with its colours or their inverse ``1 - x``; both keep the data's
    distribution (the classes are left-right symmetric; inversion swaps a brighter and a darker object and maps
    the background's luma range 0.35-0.65 onto itself). The second copy of each image is the first one
    mirrored and inverted, so every epoch sees both orientations and both polarities of every image.
    """
    mirror = rng.random(len(images)) < 0.5
    invert = rng.random(len(images)) < 0.5
    first = np.where(mirror[:, None, None, None], images[:, :, ::-1], images)
    first = np.where(invert[:, None, None, None], 1.0 - first, first).astype(np.float32)
    return np.concatenate([first, 1.0 - first[:, :, ::-1]]), np.concatenate([labels, labels])


def _train_vit(*, epochs: int, n_train: int, lr: float, weight_decay: float, seed: int, verbose: int):
    """The small Vision Transformer: plain training (LayerNorm inside, no twin needed) on ``shapes(n_train)``,
    fresh random views each epoch (:func:`_vit_views`, 2 * n_train images); AdamW, learning rate warmed up over the
    first epoch then cosine-decayed to 0, batch 64."""
    import keras

    from camtutor import models

    train_set = _data.shapes(n_train, seed=seed)
    val_set = _data.shapes(600, seed=seed + _VAL_SEED_OFFSET)
    rng = np.random.default_rng(seed + _VIEW_SEED_OFFSET)
    steps = -(-2 * n_train // 64)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=steps * max(epochs - 1, 1), warmup_target=lr, warmup_steps=steps)
    model = models.build("shapes-vit")
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=weight_decay),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    for epoch in range(epochs):
        x, y = _vit_views(train_set.images, train_set.labels, rng)
        model.fit(x, y, batch_size=64, initial_epoch=epoch, epochs=epoch + 1,
                  validation_data=(val_set.images, val_set.labels), verbose=verbose)
    return model, _accuracy(model, val_set.images, val_set.labels)


def random_label_set(n_train: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The training set of ``shapes-random-labels``: ``(images, shuffled_labels, true_labels)``.

    ``images`` (n_train, 64, 64, 3) and ``true_labels`` are :func:`camtutor.data.shapes` ``(n_train, seed=seed)``;
    ``shuffled_labels`` is a seeded permutation of ``true_labels`` (``np.random.default_rng(seed)``): the same
    class counts, but no link between an image and its label beyond chance (about 1/3 agree).
    ``n_train`` defaults to ``DEFAULTS["shapes-random-labels"]["n_train"]`` (200).
    """
    n = DEFAULTS["shapes-random-labels"]["n_train"] if n_train is None else int(n_train)
    data = _data.shapes(n, seed=seed)
    return data.images, np.random.default_rng(seed).permutation(data.labels), data.labels


def _train_small_set(name: str, *, epochs: int, n_train: int, lr: float, fine_tune_epochs: int, seed: int,
                     verbose: int):
    """Train on :func:`random_label_set`'s images: ``shapes-random-labels`` on its permuted labels (Adebayo et
    al.'s label randomisation, fitted until memorised), ``shapes-200`` on the true ones (the same-data
    control). Returns ``(model, accuracy on fresh shapes(600, seed + 1000))``."""
    from camtutor import models

    images, shuffled, true_labels = random_label_set(n_train, seed=seed)
    labels = shuffled if name == "shapes-random-labels" else true_labels
    model = _fit_folded(models.build(name), images, labels, epochs=epochs,
                        fine_tune_epochs=fine_tune_epochs, lr=lr, verbose=verbose)
    val_set = _data.shapes(600, seed=seed + _VAL_SEED_OFFSET)
    return model, _accuracy(model, val_set.images, val_set.labels)


def _augment_flip(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([images, images[:, :, ::-1]]), np.concatenate([labels, labels])


def _train_faces(
    *, epochs: int, backbone_epochs: int, lr: float, backbone_lr: float, seed: int, verbose: int
):
    """Stage 1: train a small backbone with a temporary Flatten head (no GAP anywhere).
    Stage 2 (the original CAM recipe): freeze it, put GAP -> Dense on top, train only the head."""
    import keras
    from keras import layers

    from camtutor import models

    faces = _data.faces(seed=seed)
    x, y = _augment_flip(faces.train_images, faces.train_labels)

    backbone = models.small_backbone(faces.train_images.shape[1:])
    inputs = keras.Input(shape=faces.train_images.shape[1:])
    h = backbone(inputs)
    h = layers.MaxPooling2D(4)(h)
    h = layers.Flatten()(h)
    h = layers.Dropout(0.3)(h)
    pretrain = keras.Model(inputs, layers.Dense(2, activation="softmax")(h), name="backbone_pretraining")
    pretrain.compile(
        optimizer=keras.optimizers.Adam(backbone_lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    pretrain.fit(x, y, batch_size=16, epochs=backbone_epochs, verbose=verbose)

    model = models.gap_head_on(backbone, len(faces.class_names), freeze=True, name="faces_cam")
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=verbose)
    return model, _accuracy(model, faces.test_images, faces.test_labels)


def _save_weights_only(name: str, model, path: Path) -> None:
    """Save the layer weights of ``model`` without the optimizer state a compiled model would add."""
    from camtutor import models

    clean = models.build(name)
    clean.set_weights(model.get_weights())
    clean.save_weights(path)


def train(
    name: str,
    out_dir: str | Path | None = None,
    *,
    epochs: int | None = None,
    seed: int = 0,
    verbose: int = 0,
    **overrides,
):
    """Train one bundled model from scratch.

    Args:
        name: ``"shapes"``, ``"shapes-flat"``, ``"shapes-random-labels"``, ``"shapes-200"``, ``"faces"`` or
            ``"shapes-vit"``.
        out_dir: folder to write ``NAME.weights.h5`` into; ``None`` = do not save.
        epochs: override the default number of epochs (for "faces": the head's epochs).
        seed: random seed (data split / initialisation / shuffling).
        verbose: Keras ``fit`` verbosity (0 = silent).
        **overrides: other keys of :data:`DEFAULTS` ``[name]`` (e.g. ``n_train=300``).

    Returns:
        ``(model, accuracy)``: the trained ``keras.Model`` and its accuracy in [0, 1] on held-out
        data (fresh shapes with seed + 1000, or the faces test split; for ``shapes-random-labels`` about 1/3:
        its training accuracy on the shuffled labels is ``_accuracy(model, *random_label_set(seed=seed)[:2])``).
    """
    if name not in DEFAULTS:
        raise ModelError(f"unknown model {name!r}; trainable models: {', '.join(DEFAULTS)}.")
    cfg = dict(DEFAULTS[name])
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise ModelError(f"unknown settings {sorted(unknown)} for {name!r}; pass only these keyword settings: "
                         f"{sorted(cfg)} (or epochs=, seed=, verbose=, out_dir=).")
    cfg.update(overrides)
    if epochs is not None:
        cfg["epochs"] = int(epochs)
    _seed_everything(seed)
    if name == "faces":
        model, acc = _train_faces(seed=seed, verbose=verbose, **cfg)
    elif name == "shapes-vit":
        model, acc = _train_vit(seed=seed, verbose=verbose, **cfg)
    elif name in ("shapes-random-labels", "shapes-200"):
        model, acc = _train_small_set(name, seed=seed, verbose=verbose, **cfg)
    else:
        model, acc = _train_shapes(name, seed=seed, verbose=verbose, **cfg)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        _save_weights_only(name, model, out / f"{name}.weights.h5")
    return model, acc


def main(argv: list[str] | None = None) -> int:
    from camtutor.models import WEIGHTS_DIR

    parser = argparse.ArgumentParser(prog="python -m camtutor.train", description=__doc__.split("\n")[0])
    parser.add_argument("name", choices=[*DEFAULTS, "all"])
    parser.add_argument("--out", default=str(WEIGHTS_DIR), help="output folder (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args(argv)
    names = list(DEFAULTS) if args.name == "all" else [args.name]
    for name in names:
        t0 = time.perf_counter()
        model, acc = train(name, args.out, epochs=args.epochs, seed=args.seed, verbose=args.verbose)
        dt = time.perf_counter() - t0
        memorised = ""
        if name in ("shapes-random-labels", "shapes-200"):
            images, shuffled, true_labels = random_label_set(seed=args.seed)
            labels, which = (shuffled, "shuffled") if name == "shapes-random-labels" else (true_labels, "true")
            memorised = f", accuracy on its {which} training labels {_accuracy(model, images, labels):.3f}"
        print(f"{name}: held-out accuracy {acc:.3f}{memorised} ({dt:.0f} s) -> {Path(args.out) / (name + '.weights.h5')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
