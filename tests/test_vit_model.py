"""The bundled Vision Transformer ``shapes-vit``: it loads, classifies fresh shapes, is small, and its
patch tokens after the last attention get exactly zero gradient (the class-token pitfall)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from camtutor import data, models


@pytest.fixture(scope="module")
def vit():
    return models.load("shapes-vit")


@pytest.fixture(scope="module")
def fresh():
    return data.shapes(300, seed=4242)


def test_registry_and_file_size():
    assert "shapes-vit" in models.available()
    assert models.class_names("shapes-vit") == data.SHAPE_CLASSES
    path = models.weights_path("shapes-vit")
    assert path.is_file(), f"missing {path}; run python -m camtutor.train shapes-vit"
    assert path.stat().st_size <= 2_000_000


def test_architecture_is_a_vit_with_a_class_token(vit):
    assert vit.get_layer("patch_embed").output.shape[1:3] == (8, 8)
    for name in ("class_token", "position", "block1_norm1", "block1_attention", "block2_norm1", "final_norm"):
        assert vit.get_layer(name).output.shape[1] == 65, name  # 1 class token + 64 patches
    assert isinstance(vit.get_layer("block2_attention"), keras.layers.MultiHeadAttention)
    assert vit.output.shape == (None, 3)


def test_accuracy_on_fresh_data(vit, fresh):
    """Measured 0.86-0.88 on fresh shapes (far above chance, 1/3); issue 19 asks >= 0.9 (see the next test)."""
    probs = vit.predict(fresh.images, batch_size=100, verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert np.mean(probs.argmax(axis=1) == fresh.labels) >= 0.8


@pytest.mark.xfail(strict=True, reason="issue 19 target not met yet: the bundled shapes-vit scores 0.86-0.88")
def test_accuracy_reaches_the_issue_target(vit, fresh):
    probs = vit.predict(fresh.images, batch_size=100, verbose=0)
    assert np.mean(probs.argmax(axis=1) == fresh.labels) >= 0.9


def _token_gradients(model, images, layer, klass=0):
    probe = keras.Model(model.input, [model.get_layer(layer).output, model.get_layer("class_vector").output])
    kernel, bias = model.get_layer("predictions").get_weights()
    with tf.GradientTape() as tape:
        tokens, vector = probe(images)
        score = (tf.matmul(vector, kernel) + bias)[:, klass]
    return tape.gradient(score, tokens).numpy()


def test_class_token_pitfall_zero_gradient_after_the_last_attention(vit, fresh):
    images = fresh.images[:4]
    for layer in ("block2_out", "block2_norm2", "final_norm"):
        g = _token_gradients(vit, images, layer)
        assert np.abs(g[:, 1:]).max() == 0.0, layer   # patch tokens: exactly zero
        assert np.abs(g[:, 0]).max() > 0, layer        # the class token carries it all
    g = _token_gradients(vit, images, "block2_norm1")   # the keys and values of the last attention
    assert np.abs(g[:, 1:]).max() > 1e-4


def test_saved_vit_loads_in_safe_mode(tmp_path, vit, fresh):
    path = tmp_path / "vit.keras"
    vit.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(again.predict(fresh.images[:8], verbose=0),
                               vit.predict(fresh.images[:8], verbose=0), atol=1e-6)


@pytest.mark.xfail(strict=True, reason="issue 19 target not met yet: Grad-CAM at block2_norm1 points at the object "
                   "on 0.13 of new images (chance), below the colour-deviation baseline (0.57)")
def test_grad_cam_at_the_default_layer_points_at_the_object(vit):
    """The issue's target: Grad-CAM's peak in the object mask on >= 80 % of new one-object images."""
    import camtutor as ct
    from camtutor import metrics

    fresh = data.shapes(200, seed=9001)
    assert ct.conv_layers(vit)[-1] == "block2_norm1"   # the input of the last attention
    maps = ct.grad_cam(vit, fresh.images, fresh.labels)
    assert maps.shape == (200, 8, 8)
    assert metrics.pointing_game(maps, fresh.masks).mean() >= 0.8


def test_a_saved_vit_works_with_camtutor_explain(tmp_path, vit, fresh):
    """The issue's "done when": a saved ViT .keras file, explained by the command at its default token layer."""
    import cv2

    from camtutor.cli import main

    path = tmp_path / "vit.keras"
    vit.save(path)
    image = tmp_path / "shape.png"
    cv2.imwrite(str(image), cv2.cvtColor((fresh.images[0] * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR))
    out = tmp_path / "out"
    assert main(["explain", str(image), "--model", str(path), "--out", str(out)]) == 0
    assert (out / "shape_gradcam.png").stat().st_size > 0
