"""Every kind of bad input, as a table: the library raises a specific camtutor exception whose message
names the fix (before TensorFlow sees anything), and the command exits non-zero with one line on stderr
and writes no file.

Library rows: (case, call(ctx), exception class, substring of the message that names the fix).
CLI rows: (case, argv(ctx)), each checked for exit code != 0, one "camtutor: error:" line, no traceback,
and an empty output folder.
"""

from __future__ import annotations

import types
import zipfile

import cv2
import keras
import numpy as np
import pytest

import camtutor as ct
from camtutor.cli import main
from camtutor.data import load_image
from camtutor.images import prepare_images
from camtutor.widgets import Explorer
from camtutor.loading import load_model, preprocess
from camtutor.targets import resolve_class_indices
from test_images import png_bomb, tiff

SIZE = 32


def _gap_model() -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="feat")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(x), name="tiny_gap")


def _flat_model() -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(2, 3, strides=4, activation="relu", name="feat")(inputs)
    x = keras.layers.Flatten(name="flat")(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x), name="tiny_flat")


def _two_input_model() -> keras.Model:
    a, b = keras.Input((SIZE, SIZE, 3)), keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(2, 3)(keras.layers.Add()([a, b]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model([a, b], keras.layers.Dense(2)(x), name="two_inputs")


def _two_output_model() -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3)(inputs))
    return keras.Model(inputs, [keras.layers.Dense(2)(x), keras.layers.Dense(3)(x)], name="two_outputs")


def _two_channel_model() -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 2))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3, name="feat")(inputs))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x), name="two_channels")


def _lambda_model() -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3)(x))
    return keras.Model(inputs, keras.layers.Dense(2)(x), name="with_lambda")


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    """Models, images and bad files, made once."""
    keras.utils.set_random_seed(0)
    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    images = rng.random((2, SIZE, SIZE, 3), dtype=np.float32)
    files = {
        "good": d / "good.png",
        "good2": d / "good2.png",
        "missing": d / "missing.png",
        "empty": d / "empty.png",
        "corrupt": d / "corrupt.png",
        "text": d / "notes.png",
        "labels": d / "labels.txt",
        "two_labels": d / "two_labels.txt",
        "keras_text": d / "text.keras",
        "keras_zip": d / "noconfig.keras",
        "h5": d / "model.h5",
        "savedmodel": d / "saved_model_dir",
        "missing_model": d / "missing.keras",
        "out_file": d / "out_is_a_file",
        "bomb": d / "bomb.png",
        "five_channels": d / "five.tif",
        "float_nan": d / "nan.tif",
    }
    files["bomb"].write_bytes(png_bomb())
    files["five_channels"].write_bytes(tiff(np.full((8, 8, 5), 100, np.uint8), photometric="minisblack",
                                                  planarconfig="contig"))
    files["float_nan"].write_bytes(tiff(np.full((8, 8), np.nan, np.float32), photometric="minisblack"))
    cv2.imwrite(str(files["good"]), (rng.random((50, 40, 3)) * 255).astype(np.uint8))
    cv2.imwrite(str(files["good2"]), (rng.random((20, 20)) * 255).astype(np.uint8))
    files["empty"].write_bytes(b"")
    files["corrupt"].write_bytes(files["good"].read_bytes()[:40] + bytes(rng.integers(0, 256, 200, dtype=np.uint8)))
    files["text"].write_text("not an image\n")
    files["labels"].write_text("circle\nsquare\ntriangle\n")
    files["two_labels"].write_text("cat\n\ndog\n")
    files["keras_text"].write_text("this is text, renamed .keras\n")
    with zipfile.ZipFile(files["keras_zip"], "w") as archive:
        archive.writestr("readme.txt", "a zip, but not a Keras model")
    files["h5"].write_bytes(b"\x89HDF\r\n\x1a\n")
    files["savedmodel"].mkdir()
    (files["savedmodel"] / "saved_model.pb").write_bytes(b"")
    files["out_file"].write_text("")
    models = {
        "gap": _gap_model(),
        "flat": _flat_model(),
        "two_inputs": _two_input_model(),
        "two_outputs": _two_output_model(),
        "two_channels": _two_channel_model(),
        "lambda": _lambda_model(),
    }
    for name in ("gap", "flat", "two_outputs", "two_channels", "lambda"):
        files[f"{name}_model"] = d / f"{name}.keras"
        models[name].save(files[f"{name}_model"])
    return types.SimpleNamespace(images=images, files=files, models=models, tmp=d)


nan_images = lambda c: np.where(np.arange(SIZE)[None, :, None, None] == 3, np.nan, c.images)  # noqa: E731
inf_images = lambda c: np.where(np.arange(SIZE)[None, :, None, None] == 3, np.inf, c.images)  # noqa: E731

LIBRARY_CASES = [
    ("missing image file", lambda c: load_image(c.files["missing"]), ct.ImageError, "check the path"),
    ("empty image file", lambda c: load_image(c.files["empty"]), ct.ImageError, "re-save"),
    ("corrupt image file", lambda c: load_image(c.files["corrupt"]), ct.ImageError, "corrupt"),
    ("not an image file", lambda c: load_image(c.files["text"]), ct.ImageError, "not an image"),
    ("one channel for an RGB model", lambda c: ct.grad_cam(c.models["gap"], c.images[..., :1], 0), ct.ImageError,
     "np.repeat(images, 3, axis=-1)"),
    ("RGB for a 2-channel model", lambda c: ct.grad_cam(c.models["two_channels"], c.images, 0), ct.ImageError,
     "convert them"),
    ("image of the wrong size", lambda c: ct.grad_cam(c.models["gap"], c.images[:, :20], 0), ct.ImageError,
     "camtutor.resize_images"),
    ("one image without batch axis", lambda c: ct.grad_cam(c.models["gap"], c.images[0], 0), ct.ImageError,
     "images[None]"),
    ("empty batch", lambda c: ct.grad_cam(c.models["gap"], c.images[:0], 0), ct.ImageError, "at least one image"),
    ("NaN in the input", lambda c: ct.grad_cam(c.models["gap"], nan_images(c), 0), ct.ImageError, "fix or drop"),
    ("inf in the input", lambda c: ct.cam(c.models["gap"], inf_images(c), 0), ct.ImageError, "fix or drop"),
    ("not numbers", lambda c: ct.grad_cam(c.models["gap"], [["a"]], 0), ct.ImageError, "numeric array"),
    ("unknown layer name", lambda c: ct.grad_cam(c.models["gap"], c.images, 0, layer="fea"), ct.LayerError,
     "Did you mean ['feat']"),
    ("layer that is not a 4-D feature map", lambda c: ct.grad_cam(c.models["gap"], c.images, 0, layer="gap"),
     ct.LayerError, "choose one of"),
    ("CAM at a layer that does not feed GAP", lambda c: ct.cam(c.models["flat"], c.images, 0, layer="feat"),
     ct.ModelError, "camtutor.grad_cam"),
    ("class index out of range", lambda c: ct.grad_cam(c.models["gap"], c.images, 3), ct.TargetError,
     "valid: 0 .. 2"),
    ("negative class index", lambda c: ct.cam(c.models["gap"], c.images, -1), ct.TargetError, "valid: 0 .. 2"),
    ("class name without known names", lambda c: ct.grad_cam(c.models["gap"], c.images, "cat"), ct.TargetError,
     "pass an int index"),
    ("unknown class name", lambda c: resolve_class_indices("dog", 2, 3, ("circle", "square", "triangle")),
     ct.TargetError, "known classes: ['circle', 'square', 'triangle']"),
    ("fewer targets than images", lambda c: ct.grad_cam(c.models["gap"], c.images, [1]), ct.TargetError,
     "exactly one per image"),
    ("more targets than images", lambda c: ct.cam(c.models["gap"], c.images, [1, 2, 0]), ct.TargetError,
     "exactly one per image"),
    ("CAM without GAP -> Dense", lambda c: ct.cam(c.models["flat"], c.images, 0), ct.ModelError,
     "Use camtutor.grad_cam"),
    ("model with two inputs", lambda c: ct.grad_cam(c.models["two_inputs"], c.images, 0), ct.ModelError,
     "one image input (B, H, W, C) and one output"),
    ("model with two outputs", lambda c: ct.grad_cam(c.models["two_outputs"], c.images, 0), ct.ModelError,
     "one image input (B, H, W, C) and one output"),
    ("not a model at all", lambda c: ct.grad_cam("model.keras", c.images, 0), ct.ModelError,
     "camtutor.models.load"),
    ("unknown method", lambda c: ct.heatmap(c.models["gap"], c.images, 0, method="grad-cam"), ct.CamTutorError,
     "'cam', 'gradcam', 'hirescam'"),
    ("model file missing", lambda c: load_model(c.files["missing_model"]), ct.ModelError, "check the path"),
    ("text file renamed .keras", lambda c: load_model(c.files["keras_text"]), ct.ModelError,
     "model.save('model.keras')"),
    ("zip without a model config", lambda c: load_model(c.files["keras_zip"]), ct.ModelError,
     "model.save('model.keras')"),
    ("legacy .h5 file", lambda c: load_model(c.files["h5"]), ct.ModelError, "model.save('model.keras')"),
    ("SavedModel folder", lambda c: load_model(c.files["savedmodel"]), ct.ModelError, "model.save('model.keras')"),
    ("model file with a Lambda layer", lambda c: load_model(c.files["lambda_model"]), ct.ModelError,
     "registered custom layer"),
    ("saved model with two outputs", lambda c: load_model(c.files["two_outputs_model"]), ct.ModelError,
     "one image input (B, H, W, C) and one output"),
    ("unknown bundled model name", lambda c: load_model("shapez"), ct.ModelError, "bundled model"),
    ("unknown preprocessing", lambda c: preprocess(c.images, "imagenet"), ct.ImageError, "mobilenet_v2"),
    ("image over the pixel limit", lambda c: load_image(c.files["bomb"]), ct.ImageError, "CAMTUTOR_MAX_PIXELS"),
    ("a device given as image", lambda c: load_image("/dev/null"), ct.ImageError, "not a regular image file"),
    ("5-channel TIFF", lambda c: load_image(c.files["five_channels"]), ct.ImageError, "corrupt"),
    ("float TIFF with NaN", lambda c: load_image(c.files["float_nan"]), ct.ImageError, "fix the file"),
    ("bad image size", lambda c: load_image(c.files["good"], size=-5), ct.ImageError, "size=224"),
    ("channels-first batch", lambda c: ct.grad_cam(c.models["gap"], np.transpose(c.images, (0, 3, 1, 2)), 0),
     ct.ImageError, "np.transpose(images, (0, 2, 3, 1))"),
    ("images of different sizes in a list", lambda c: ct.grad_cam(c.models["gap"], [c.images[0], c.images[1, :20]], 0),
     ct.ImageError, "different shapes"),
    ("prepare_images for a 2-channel model", lambda c: prepare_images([c.files["good"]], c.models["two_channels"]),
     ct.ImageError, "1- and 3-channel"),
    ("prepare_images with a model name", lambda c: prepare_images([c.files["good"]], "shapes"), ct.ModelError,
     "camtutor.models.load('shapes')"),
    ("explorer given a model name", lambda c: Explorer("shapes", c.images), ct.CamTutorError, "ct.models.load"),
    ("explorer opacity NaN", lambda c: Explorer(c.models["gap"], c.images, alpha=float("nan")), ct.CamTutorError,
     "[0, 1]"),
    ("overlay opacity 2", lambda c: ct.overlay(c.images[0], c.images[0, ..., 0], alpha=2), ct.CamTutorError, "[0, 1]"),
    ("upsample to a negative size", lambda c: ct.upsample(c.images[..., 0], -5), ct.CamTutorError, "positive"),
    ("normalize of an empty array", lambda c: ct.normalize(np.zeros((0, 4, 4))), ct.CamTutorError, "empty"),
]


@pytest.mark.parametrize("case, call, error, fix", LIBRARY_CASES, ids=[row[0] for row in LIBRARY_CASES])
def test_library_raises_a_camtutor_error_naming_the_fix(ctx, case, call, error, fix):
    with pytest.raises(error) as raised:
        call(ctx)
    assert isinstance(raised.value, ct.CamTutorError)
    assert fix in str(raised.value), f"{case}: the message does not name the fix {fix!r}: {raised.value}"
    assert "\n" not in str(raised.value)


def test_the_model_still_works_after_all_the_refusals(ctx):
    before = ct.grad_cam(ctx.models["gap"], ctx.images, [0, 2])
    for _, call, error, _ in LIBRARY_CASES[:10]:
        with pytest.raises(error):
            call(ctx)
    np.testing.assert_array_equal(ct.grad_cam(ctx.models["gap"], ctx.images, [0, 2]), before)


def _explain(c, *files, model="gap_model", extra=()):
    return ["explain", *map(str, files), "--model", str(c.files[model]), "--out", str(c.tmp / "out"), *extra]


CLI_CASES = [
    ("missing image", lambda c: _explain(c, c.files["good"], c.files["missing"])),
    ("empty image", lambda c: _explain(c, c.files["good"], c.files["empty"])),
    ("corrupt image", lambda c: _explain(c, c.files["good"], c.files["corrupt"])),
    ("not an image", lambda c: _explain(c, c.files["text"])),
    ("a folder given as image", lambda c: _explain(c, c.tmp)),
    ("a device given as image", lambda c: _explain(c, "/dev/null")),
    ("image over the pixel limit", lambda c: _explain(c, c.files["good"], c.files["bomb"])),
    ("5-channel TIFF", lambda c: _explain(c, c.files["good"], c.files["five_channels"])),
    ("float TIFF with NaN", lambda c: _explain(c, c.files["float_nan"])),
    ("RGB for a 2-channel model", lambda c: _explain(c, c.files["good"], model="two_channels_model")),
    ("unknown layer", lambda c: _explain(c, c.files["good"], extra=("--layer", "nope"))),
    ("layer not 4-D", lambda c: _explain(c, c.files["good"], extra=("--layer", "gap"))),
    ("class out of range", lambda c: _explain(c, c.files["good"], extra=("--class", "7"))),
    ("unknown class name", lambda c: _explain(c, c.files["good"], extra=("--class", "dog", "--labels",
                                                                         str(c.files["labels"])))),
    ("class name without labels", lambda c: _explain(c, c.files["good"], extra=("--class", "circle"))),
    ("labels file with the wrong count", lambda c: _explain(c, c.files["good"], model="flat_model",
                                                            extra=("--labels", str(c.files["two_labels"])))),
    ("labels file not text", lambda c: _explain(c, c.files["good"], extra=("--labels", str(c.files["h5"])))),
    ("two classes for three images", lambda c: _explain(c, c.files["good"], c.files["good2"], c.files["good"],
                                                        extra=("--class", "0,1"))),
    ("CAM without GAP", lambda c: _explain(c, c.files["good"], model="flat_model", extra=("--method", "cam"))),
    ("model with two outputs", lambda c: _explain(c, c.files["good"], model="two_outputs_model")),
    ("model file missing", lambda c: _explain(c, c.files["good"], model="missing_model")),
    ("text renamed .keras", lambda c: _explain(c, c.files["good"], model="keras_text")),
    ("zip without config", lambda c: _explain(c, c.files["good"], model="keras_zip")),
    ("legacy .h5", lambda c: _explain(c, c.files["good"], model="h5")),
    ("Lambda layer", lambda c: _explain(c, c.files["good"], model="lambda_model")),
    ("unknown bundled name", lambda c: ["explain", str(c.files["good"]), "--model", "shapez",
                                        "--out", str(c.tmp / "out")]),
    ("--out is a file", lambda c: _explain(c, c.files["good"])[:-2] + ["--out", str(c.files["out_file"])]),
    ("unknown method (usage)", lambda c: _explain(c, c.files["good"], extra=("--method", "grad-cam"))),
    ("unknown preprocessing (usage)", lambda c: _explain(c, c.files["good"], extra=("--preprocess", "imagenet"))),
    ("no image (usage)", lambda c: ["explain", "--out", str(c.tmp / "out")]),
    ("layers of a missing model", lambda c: ["layers", str(c.files["missing_model"])]),
]


@pytest.mark.parametrize("case, argv", CLI_CASES, ids=[row[0] for row in CLI_CASES])
def test_cli_fails_with_one_line_and_writes_nothing(ctx, capfd, case, argv):
    out = ctx.tmp / "out"
    code = main(argv(ctx))
    captured = capfd.readouterr()  # file-descriptor level: OpenCV's C++ warnings would show up here
    assert code != 0
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("camtutor: error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not out.exists() or not any(out.iterdir()), f"{case}: wrote {list(out.iterdir())}"


def test_cli_debug_shows_the_traceback(ctx):
    with pytest.raises(ct.ModelError):
        main(_explain(ctx, ctx.files["good"], model="keras_text", extra=("--debug",)))


# --------------------------------------------------------------------------- non-finite models and maps
def _nan_model(first_image_only: bool = False) -> keras.Model:
    """A GAP -> Dense classifier whose scores are NaN: for every image (NaN Dense weights), or only for
    images with a pixel equal to 1 (``log(1 - x)`` at the input)."""
    inputs = keras.Input((16, 16, 3))
    x = inputs
    if first_image_only:  # log(1 - x) is -inf where a pixel is 1: only such images get non-finite features
        x = keras.layers.Lambda(lambda t: keras.ops.log(1.0 - t), name="log")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="feat")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs)
    if not first_image_only:
        kernel, bias = model.get_layer("predictions").get_weights()
        model.get_layer("predictions").set_weights([np.full_like(kernel, np.nan), bias])
    return model


@pytest.mark.parametrize("method", ct.methods.METHODS)
def test_a_model_with_nan_scores_gives_an_error_for_every_method_never_a_map(method):
    model = _nan_model()
    images = np.random.default_rng(0).uniform(0, 0.5, (2, 16, 16, 3)).astype(np.float32)
    with pytest.raises(ct.ModelError, match="NaN or inf"):
        ct.heatmap(model, images, 0, method=method)


def test_nonfinite_scores_name_the_images_and_class_probabilities_refuses_them():
    model = _nan_model(first_image_only=True)
    images = np.random.default_rng(0).uniform(0, 0.5, (3, 16, 16, 3)).astype(np.float32)
    images[1, 0, 0, 0] = 1.0  # only image 1 makes the model's features NaN
    with pytest.raises(ct.ModelError, match=r"image\(s\) \[1\]"):
        ct.class_probabilities(model, images)
    with pytest.raises(ct.ModelError, match=r"image\(s\) \[1\]"):
        ct.grad_cam(model, images, 0)
    assert np.isfinite(ct.grad_cam(model, images[[0, 2]], 0)).all()  # the other images are fine


def test_normalize_and_overlay_refuse_nan_and_inf_maps():
    maps = np.ones((3, 4, 4), np.float32)
    maps[1, 2, 2] = np.nan
    maps[2, 0, 0] = np.inf
    with pytest.raises(ct.CamTutorError, match=r"maps \[\[1\], \[2\]\]"):
        ct.normalize(maps)
    with pytest.raises(ct.CamTutorError, match="NaN or inf"):
        ct.overlay(np.zeros((8, 8, 3), np.float32), maps[1])
    assert np.array_equal(ct.normalize(maps[0]), np.zeros((4, 4), np.float32))  # finite maps as before


def test_cli_on_a_nan_model_fails_with_one_line_and_writes_nothing(tmp_path, capfd):
    model_path = tmp_path / "nan.keras"
    _nan_model().save(model_path)
    image = tmp_path / "img.png"
    cv2.imwrite(str(image), np.full((16, 16, 3), 40, np.uint8))
    out = tmp_path / "out"
    assert main(["explain", str(image), "--model", str(model_path), "--out", str(out)]) == 1
    err = capfd.readouterr().err
    assert err.startswith("camtutor: error: the model's output is NaN or inf") and len(err.splitlines()) == 1
    assert not out.exists()


def test_a_model_with_a_dict_output_is_refused_with_the_one_line_wrap():
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, name="feat")(inputs))
    model = keras.Model(inputs, {"probs": keras.layers.Dense(3, activation="softmax")(x)})
    images = np.zeros((2, 16, 16, 3), np.float32)
    for call in (lambda: ct.heatmap(model, images, 0), lambda: ct.heatmap(model, images, 0, method="scorecam"),
                 lambda: ct.class_probabilities(model, images)):
        with pytest.raises(ct.ModelError, match=r"keras.Model\(model.inputs, model.outputs\[0\]\)"):
            call()
    wrapped = keras.Model(model.inputs, model.outputs[0])
    assert ct.heatmap(wrapped, images, 0).shape == (2, 14, 14)
