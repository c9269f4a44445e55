"""The ``camtutor`` command on good input: files written (RGB, original size, the right map), predictions
printed, layers and models listed, help texts. Bad input is in test_bad_input.py."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest

import camtutor as ct
from camtutor.cli import main
from camtutor.data import load_image
from camtutor.loading import PREPROCESSING, load_model, preprocess

ROOT = Path(__file__).resolve().parents[1]
SIZE = 32


def _write_rgb(path: Path, rgb: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def _read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    keras.utils.set_random_seed(0)
    d = tmp_path_factory.mktemp("cli")
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="p1")(x)
    x = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="feat")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(x), name="cli_gap")
    model.save(d / "gap.keras")
    rng = np.random.default_rng(0)
    half = np.zeros((50, 40, 3), np.uint8)
    half[:, :20] = (255, 0, 0)  # red left half, blue right half: BGR/RGB mix-ups show
    half[:, 20:] = (0, 0, 255)
    paths = [
        _write_rgb(d / "halves.png", half),
        _write_rgb(d / "noise.jpg", (rng.random((70, 90, 3)) * 255).astype(np.uint8)),
    ]
    (d / "sub").mkdir()
    paths.append(_write_rgb(d / "sub" / "halves.png", half[::-1]))
    (d / "labels.txt").write_text("cat\ndog\nbird\n")
    return d, d / "gap.keras", paths


def _expected_overlay(model_path: Path, image_path: Path, class_index: int, alpha: float, method="gradcam"):
    model = load_model(model_path)
    image = load_image(image_path)
    small = ct.resize_images(image[None], (SIZE, SIZE))
    heat = ct.heatmap(model, small, class_index, method=method)[0]
    return ct.overlay(image, heat, alpha=alpha)


def _report_lines(capsys) -> list[str]:
    """The lines ``explain`` printed, without its first line 'loading TensorFlow and model ...'."""
    lines = capsys.readouterr().out.splitlines()
    assert lines and lines[0].startswith("loading TensorFlow and model '"), lines[:1]
    return lines[1:]


def test_output_files_follow_the_umask(setup):
    d, model_path, paths = setup
    for mask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        previous = os.umask(mask)
        try:
            out = d / f"out_umask_{mask:o}"
            assert main(["explain", str(paths[0]), "--model", str(model_path), "--out", str(out)]) == 0
        finally:
            os.umask(previous)
        assert stat.S_IMODE((out / "halves_gradcam.png").stat().st_mode) == mode, oct(mask)


def test_explain_writes_rgb_overlays_at_the_image_size(setup, capsys):
    d, model_path, paths = setup
    out = d / "out_alpha0"
    assert main(["explain", *map(str, paths[:2]), "--model", str(model_path), "--out", str(out), "--alpha", "0"]) == 0
    written = _read_rgb(out / "halves_gradcam.png")
    np.testing.assert_array_equal(written, (load_image(paths[0]) * 255 + 0.5).astype(np.uint8))
    assert written.shape == (50, 40, 3)
    assert tuple(written[0, 0]) == (255, 0, 0) and tuple(written[0, -1]) == (0, 0, 255)
    assert _read_rgb(out / "noise_gradcam.png").shape == (70, 90, 3)
    lines = _report_lines(capsys)
    assert lines[0].startswith(f"[1/2] {paths[0]} -> {out / 'halves_gradcam.png'}")
    assert lines[2].startswith(f"[2/2] {paths[1]} -> {out / 'noise_gradcam.png'}")
    assert lines[1].lstrip().startswith("top: ") and lines[1].count("|") == 2


@pytest.mark.parametrize("method", ["gradcam", "cam", "hirescam"])
def test_explain_draws_the_map_the_library_computes(setup, capsys, method):
    d, model_path, paths = setup
    out = d / f"out_{method}"
    code = main(["explain", str(paths[1]), "--model", str(model_path), "--method", method, "--class", "2",
                 "--out", str(out), "--alpha", "1"])
    assert code == 0
    np.testing.assert_array_equal(
        _read_rgb(out / f"noise_{method}.png"), _expected_overlay(model_path, paths[1], 2, 1.0, method)
    )
    assert "explained class 2" in capsys.readouterr().out


def test_top_class_names_per_image_classes_and_unique_names(setup, capsys):
    d, model_path, paths = setup
    model = load_model(model_path)
    images = ct.resize_images(np.stack([load_image(p, size=(50, 40)) for p in paths]), (SIZE, SIZE))
    probabilities = ct.class_probabilities(model, images)
    out = d / "out_top"
    labels = ["--labels", str(d / "labels.txt")]
    assert main(["explain", *map(str, paths), "--model", str(model_path), "--out", str(out), *labels]) == 0
    text = capsys.readouterr().out
    names = ("cat", "dog", "bird")
    for i, row in enumerate(probabilities):
        report = text.splitlines()[1:]  # after 'loading TensorFlow and model ...'
        assert f"explained class {row.argmax()} {names[row.argmax()]!r}" in report[2 * i]
    assert sorted(p.name for p in out.iterdir()) == ["halves-2_gradcam.png", "halves_gradcam.png", "noise_gradcam.png"]
    out2 = d / "out_list"
    argv = ["explain", *map(str, paths[:2]), "--model", str(model_path), "--out", str(out2), "--class", "bird,0"]
    assert main(argv + labels) == 0
    lines = _report_lines(capsys)
    assert "explained class 2 'bird'" in lines[0] and "explained class 0 'cat'" in lines[2]


def test_bundled_model_is_the_default_and_knows_its_class_names(tmp_path, capsys):
    data = ct.data.shapes(2, seed=3)
    paths = [_write_rgb(tmp_path / f"s{i}.png", (img * 255 + 0.5).astype(np.uint8)) for i, img in enumerate(data.images)]
    assert main(["explain", *map(str, paths), "--out", str(tmp_path / "out"), "--class", "square"]) == 0
    text = capsys.readouterr().out
    assert text.count("explained class 1 'square'") == 2
    assert all(name in text for name in ct.models.class_names("shapes"))


def test_grey_model_and_free_input_size(tmp_path, capsys):
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="feat")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    path = tmp_path / "grey.keras"
    keras.Model(inputs, keras.layers.Dense(2)(x), name="grey").save(path)
    images = [_write_rgb(tmp_path / "a.png", np.full((10, 12, 3), 200, np.uint8)),
              _write_rgb(tmp_path / "b.png", np.full((20, 8, 3), 50, np.uint8))]
    assert main(["explain", *map(str, images), "--model", str(path), "--out", str(tmp_path / "o")]) == 0
    assert _read_rgb(tmp_path / "o" / "b_gradcam.png").shape == (20, 8, 3)
    assert "[2/2]" in capsys.readouterr().out


def test_layers_lists_feature_maps_with_shapes(setup, capsys):
    _, model_path, _ = setup
    assert main(["layers", str(model_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "softmax, 3 classes" in lines[0]
    rows = {line.split()[0]: line for line in lines[2:] if line.startswith("  ")}
    assert list(rows) == ["c1", "p1", "feat"]
    assert "(None, 16, 16, 5)" in rows["feat"] and "default" in rows["feat"] and "CAM layer" in rows["feat"]
    assert "(None, 32, 32, 6)" in rows["c1"] and "default" not in rows["c1"]


def test_layers_of_a_bundled_model_and_models_list(capsys):
    assert main(["models"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == ct.models.available()
    assert main(["layers", "shapes-flat"]) == 0
    text = capsys.readouterr().out
    assert "last_conv" in text and "use --method gradcam" in text


def test_help_texts(capsys):
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    assert all(command in top for command in ("explain", "layers", "models"))
    assert main(["explain", "--help"]) == 0
    text = capsys.readouterr().out
    assert all(name in text for name in PREPROCESSING) and "--class" in text and "[0, 1]" in text
    assert main([]) == 2


def test_preprocessing_matches_keras_applications_on_0_255_values():
    images = np.random.default_rng(0).random((2, 4, 4, 3), dtype=np.float32)
    copy = images.copy()
    np.testing.assert_allclose(preprocess(images, "mobilenet_v2"), images * 2 - 1, atol=1e-5)
    vgg = preprocess(images, "vgg16")
    np.testing.assert_allclose(vgg[..., 0], images[..., 2] * 255 - 103.939, atol=1e-3)  # BGR, mean-free
    np.testing.assert_array_equal(preprocess(images, "none"), images)
    np.testing.assert_allclose(preprocess(images, "scale255"), images * 255, rtol=1e-6)
    np.testing.assert_array_equal(images, copy)  # keras preprocess_input works in place; ours never does


def test_console_script_is_declared_and_python_m_runs(setup):
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["camtutor"] == "camtutor.cli:main"
    d, model_path, paths = setup
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(
        [sys.executable, "-m", "camtutor", "explain", str(paths[0]), "--model", str(model_path),
         "--out", str(d / "out_sub")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert (d / "out_sub" / "halves_gradcam.png").is_file()
    assert run.stdout.splitlines()[0] == f"loading TensorFlow and model '{model_path}'..."
    assert run.stdout.splitlines()[1].startswith("[1/1]")
    bad = subprocess.run([sys.executable, "-m", "camtutor", "layers", str(d / "nope.keras")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1 and bad.stderr.startswith("camtutor: error: no such model file")
    assert "Traceback" not in bad.stderr and len(bad.stderr.splitlines()) == 1


def test_a_bundled_name_wins_over_a_folder_of_that_name(tmp_path, monkeypatch, capsys):
    (tmp_path / "faces").mkdir()
    monkeypatch.chdir(tmp_path)
    assert load_model("faces").name == ct.models.load("faces").name
    assert main(["layers", "faces"]) == 0
    assert "CAM layer" in capsys.readouterr().out
    assert main(["layers", "./faces"]) == 1
    assert "is a folder" in capsys.readouterr().err
