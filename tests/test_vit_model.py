"""The bundled Vision Transformer ``shapes-vit``: it loads, classifies fresh shapes, is small, its Grad-CAM at
the default layer points at the object; and the class-token pitfall, structural, on a class-token ViT."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import camtutor as ct
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


def test_architecture_is_a_vit_with_windowed_attention_and_a_token_max_head(vit):
    import camtutor as ct

    assert vit.get_layer("patch_embed").output.shape[1:3] == (8, 8)
    for name in ("position", "block1_norm1", "block1_attention", "block2_norm1", "final_norm"):
        assert vit.get_layer(name).output.shape[1:] == (64, 32), name  # 64 patch tokens, no class token
    assert isinstance(vit.get_layer("block2_attention"), keras.layers.MultiHeadAttention)
    assert vit.get_layer("attention_window").radius == 1
    assert isinstance(vit.get_layer("token_max"), keras.layers.GlobalMaxPooling1D)
    assert vit.output.shape == (None, 3)
    assert ct.conv_layers(vit)[-1] == "final_norm"   # the default layer: every token reaches the head


def test_attention_outside_the_window_is_exactly_zero(vit, fresh):
    from camtutor import rollout

    rows, cols = np.divmod(np.arange(64), 8)
    far = (np.abs(rows[:, None] - rows[None]) > 1) | (np.abs(cols[:, None] - cols[None]) > 1)
    for attention in rollout.attention_matrices(vit, fresh.images[:4]):
        assert attention.shape == (4, 2, 64, 64)
        assert np.all(attention[..., far] == 0.0)
        assert np.all(attention[..., ~far] > 0.0)
        np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)


def test_local_attention_mask_layout():
    mask = np.asarray(models.LocalAttentionMask((2, 3), 1, prefix=1)(np.zeros((2, 7, 4), "float32")))
    assert mask.shape == (2, 7, 7) and mask.dtype == bool
    assert mask[:, 0].all() and mask[:, :, 0].all()          # the prefix token sees and is seen by all
    assert mask[0, 1 + 0, 1 + 1] and not mask[0, 1 + 0, 1 + 2]  # (0, 0) sees (0, 1), not (0, 2)
    assert mask[0, 1 + 2, 1 + 4] and not mask[0, 1 + 3, 1 + 5]  # (0, 2) sees (1, 1); (1, 0) not (1, 2)


def test_accuracy_on_fresh_data_reaches_the_issue_target(vit, fresh):
    probs = vit.predict(fresh.images, batch_size=100, verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert np.mean(probs.argmax(axis=1) == fresh.labels) >= 0.9


def test_grad_cam_at_the_default_layer_points_at_the_object(vit):
    """The issue's target: Grad-CAM's peak in the object mask on >= 80 % of new one-object images."""
    import camtutor as ct
    from camtutor import baselines, metrics

    fresh = data.shapes(200, seed=9001)
    maps = ct.grad_cam(vit, fresh.images, fresh.labels)
    assert maps.shape == (200, 8, 8)
    hits = metrics.pointing_game(maps, fresh.masks).mean()
    assert hits >= 0.8
    deviation = metrics.pointing_game(baselines.colour_deviation(fresh.images), fresh.masks).mean()
    assert hits > deviation + 0.1


def _token_gradients(model, images, layer, vector="class_vector", klass=0):
    probe = keras.Model(model.input, [model.get_layer(layer).output, model.get_layer(vector).output])
    kernel, bias = model.get_layer("predictions").get_weights()
    with tf.GradientTape() as tape:
        tokens, pooled = probe(images)
        score = (tf.matmul(pooled, kernel) + bias)[:, klass]
    return tape.gradient(score, tokens).numpy()


def test_class_token_pitfall_zero_gradient_after_the_last_attention(fresh):
    """Structural, so an untrained class-token ViT shows it: after the last attention only the class token
    reaches a head that reads the class token."""
    keras.utils.set_random_seed(1)
    model = models.vit_classifier(3, magnitude=True, kernel=16, head="class")
    images = fresh.images[:4]
    for layer in ("block2_out", "block2_norm2", "final_norm"):
        g = _token_gradients(model, images, layer)
        assert np.abs(g[:, 1:]).max() == 0.0, layer   # patch tokens: exactly zero
        assert np.abs(g[:, 0]).max() > 0, layer        # the class token carries it all
    g = _token_gradients(model, images, "block2_norm1")   # the keys and values of the last attention
    assert np.abs(g[:, 1:]).max() > 1e-6


def test_vit_classifier_heads():
    for head, tokens, pooled in (("class", 65, "class_vector"), ("mean", 64, "token_mean"), ("max", 64, "token_max")):
        model = models.vit_classifier(3, head=head)
        assert model.get_layer("final_norm").output.shape[1] == tokens, head
        assert model.get_layer(pooled).output.shape == (None, 32), head
    with pytest.raises(models.ModelError, match="head must be"):
        models.vit_classifier(3, head="pool")


def test_saved_vit_loads_in_safe_mode(tmp_path, vit, fresh):
    path = tmp_path / "vit.keras"
    vit.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(again.predict(fresh.images[:8], verbose=0),
                               vit.predict(fresh.images[:8], verbose=0), atol=1e-6)


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


def test_a_bool_attention_mask_layer_is_neither_watched_nor_listed(caplog):
    """LocalAttentionMask returns a bool (B, T, T) mask: its symbolic output says so, and the dead-token probe
    of ``conv_layers`` neither watches it (TensorFlow warned "The dtype of the watched tensor must be
    floating") nor offers it as a feature map."""
    import logging

    model = models.build("shapes-vit")
    assert model.get_layer("attention_window").output.dtype == "bool"
    with caplog.at_level(logging.WARNING):
        listed = ct.conv_layers(model)
    assert "attention_window" not in listed and listed[-1] == "final_norm"
    assert not [r for r in caplog.records if "watched tensor" in r.getMessage()]
