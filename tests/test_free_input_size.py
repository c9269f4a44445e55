"""A model with a free input size (Input((None, None, 3))) runs on each image as it is: a huge image is refused
before the model runs (camtutor.images.MAX_MODEL_PIXELS), and errors TensorFlow or the model raise while running
(out of memory, a 2x2 image too small for the convolutions) are one CamTutorError in the library and one line
from the command (exit 1, no traceback, nothing "unexpected")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

import camtutor as ct
from camtutor import surgery
from camtutor.cli import main
from camtutor.explain import class_probabilities
from camtutor.images import MAX_MODEL_PIXELS, prepare_images

ROOT = Path(__file__).resolve().parents[1]


def _free_model() -> keras.Model:
    """Two valid 3x3 convolutions: any input size of at least 5x5."""
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(2, 3, activation="relu")(inputs)
    x = keras.layers.Conv2D(2, 3, activation="relu", name="feat")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x), name="free")


@keras.saving.register_keras_serializable(package="camtutor_tests")
class OutOfMemory(keras.layers.Layer):
    """Asks TensorFlow for 400 TB when it runs: a real ResourceExhaustedError, raised before anything is allocated."""

    def call(self, x):
        if isinstance(x, keras.KerasTensor):  # building the model
            return x
        return x + tf.reduce_sum(tf.zeros((10**7, 10**7)))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("free")
    _free_model().save(folder / "free.keras")
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3, name="feat")(inputs))
    keras.Model(inputs, keras.layers.Dense(2)(OutOfMemory()(x))).save(folder / "oom.keras")
    rng = np.random.default_rng(0)
    for name, shape in {"big": (1030, 1025), "tiny": (2, 2), "small": (12, 10)}.items():
        assert cv2.imwrite(str(folder / f"{name}.png"), (rng.random((*shape, 3)) * 255).astype(np.uint8))
    return folder


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("camtutor: error: ") and "unexpected" not in err[0] and "Traceback" not in err[0]
    assert "\x1b" not in err[0]
    return err[0]


def test_the_limit_is_documented_and_large_enough_for_a_photo_at_1024():
    assert MAX_MODEL_PIXELS == 1024 * 1024
    assert prepare_images(np.zeros((1024, 1024, 3)), _free_model()).shape == (1, 1024, 1024, 3)


def test_library_refuses_a_huge_image_for_a_free_size_model_but_resizes_it_for_a_fixed_one():
    huge = np.zeros((1030, 1025, 3), np.float32)
    with pytest.raises(ct.ImageError, match="CAMTUTOR_MAX_MODEL_PIXELS"):
        prepare_images(huge, _free_model())
    fixed = keras.Model(*(lambda i: (i, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(i))))(
        keras.Input((16, 16, 3))))
    assert prepare_images(huge, fixed).shape == (1, 16, 16, 3)


def test_the_limit_can_be_raised_for_the_process(monkeypatch):
    monkeypatch.setenv("CAMTUTOR_MAX_MODEL_PIXELS", "100")
    with pytest.raises(ct.ImageError, match="at most 100 pixels"):
        prepare_images(np.zeros((11, 10, 3)), _free_model())
    monkeypatch.setenv("CAMTUTOR_MAX_MODEL_PIXELS", "110")
    assert prepare_images(np.zeros((11, 10, 3)), _free_model()).shape == (1, 11, 10, 3)


def test_command_refuses_a_huge_image_before_any_map(files, capsys):
    out = files / "out_big"
    argv = ["explain", str(files / "small.png"), str(files / "big.png"), "--model", str(files / "free.keras"),
            "--out", str(out)]
    assert main(argv) == 1
    line = _one_error_line(capsys)
    assert "big.png" in line and "shrink the image" in line and "CAMTUTOR_MAX_MODEL_PIXELS" in line
    assert not out.exists()


def test_library_maps_a_model_failure_on_a_tiny_image_to_a_camtutor_error():
    model = _free_model()
    with pytest.raises(ct.ModelError, match="2x2 pixels"):
        class_probabilities(model, np.zeros((1, 2, 2, 3), np.float32))
    with pytest.raises(ct.ModelError, match="2x2 pixels"):
        ct.grad_cam(model, np.zeros((1, 2, 2, 3), np.float32), 0, layer="feat")


def test_command_reports_a_tiny_image_in_one_line(files, capsys):
    argv = ["explain", str(files / "tiny.png"), "--model", str(files / "free.keras"), "--out", str(files / "o2")]
    assert main(argv) == 1
    assert "the model failed on 1 image(s) of 2x2 pixels" in _one_error_line(capsys)


def test_out_of_memory_is_a_camtutor_error_in_the_library_and_one_line_in_the_command(files, capsys):
    def allocate(images):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[16,224,224,1280]")

    with pytest.raises(ct.CamTutorError, match="out of memory while running the model on 16 image"):
        surgery.run(allocate, np.zeros((16, 224, 224, 3), np.float32))
    argv = ["explain", str(files / "small.png"), "--model", str(files / "oom.keras"), "--out", str(files / "o3")]
    assert main(argv) == 1
    assert "out of memory" in _one_error_line(capsys)


def test_command_in_a_real_process_prints_one_line_for_the_tiny_image(files):
    done = subprocess.run(
        [sys.executable, "-m", "camtutor", "explain", str(files / "tiny.png"), "--model", str(files / "free.keras"),
         "--out", str(files / "o4")],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "0"},
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [line for line in done.stderr.strip().splitlines()
                                                 if line.startswith("camtutor: error: the model failed")]
