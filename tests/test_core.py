"""The identities that make camtutor a trustworthy reference, checked numerically."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import camtutor as ct
from camtutor.compiled import explainer


def small_gap_model(num_classes: int = 3, activation: str = "softmax", seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((24, 24, 3)),
            keras.layers.Conv2D(6, 3, activation="relu", name="conv1"),
            keras.layers.MaxPooling2D(name="pool1"),
            keras.layers.Conv2D(8, 3, activation="relu", name="conv2"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(num_classes, activation=activation, name="predictions"),
        ]
    )


@pytest.fixture(scope="module")
def gap_model() -> keras.Model:
    return small_gap_model()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).random((6, 24, 24, 3), dtype=np.float32)


# --------------------------------------------------------------------------- pure math
def test_global_average_pooling_equals_keras_layer(images):
    feature_maps = np.random.default_rng(1).normal(size=(4, 5, 7, 3)).astype(np.float32)
    expected = keras.layers.GlobalAveragePooling2D()(feature_maps).numpy()
    got = ct.global_average_pooling(feature_maps)
    assert isinstance(got, np.ndarray) and got.shape == (4, 3)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_normalize_maps_each_map_to_unit_range_and_constant_maps_to_zero():
    maps = np.stack([np.zeros((4, 4)), np.full((4, 4), 3.0), np.arange(16.0).reshape(4, 4) - 5.0]).astype(np.float32)
    out = ct.normalize(maps)
    assert not np.isnan(out).any()
    np.testing.assert_array_equal(out[0], 0.0)
    np.testing.assert_array_equal(out[1], 0.0)
    assert out[2].min() == 0.0 and out[2].max() == pytest.approx(1.0)
    np.testing.assert_allclose(ct.normalize(maps[2]), out[2])  # a single (H, W) map works too


def test_upsample_keeps_range_and_reaches_size():
    maps = np.random.default_rng(2).random((2, 4, 4), dtype=np.float32)
    up = ct.upsample(maps, (16, 12))
    assert up.shape == (2, 16, 12)
    assert up.min() >= maps.min() - 1e-6 and up.max() <= maps.max() + 1e-6
    assert ct.upsample(maps[0], 8).shape == (8, 8)


def test_weighting_rules_have_the_documented_shapes():
    rng = np.random.default_rng(3)
    a, g = rng.random((2, 5, 5, 4), dtype=np.float32), rng.normal(size=(2, 5, 5, 4)).astype(np.float32)
    assert ct.mean_gradient_weights(a, g).shape == (2, 1, 1, 4)
    np.testing.assert_allclose(ct.mean_gradient_weights(a, g)[:, 0, 0], g.mean(axis=(1, 2)), atol=1e-6)
    np.testing.assert_array_equal(ct.maths.elementwise_weights(a, g), g)
    for name, rule in ct.maths.WEIGHTINGS.items():
        maps = ct.weighted_channel_sum(a, rule(a, g))
        assert maps.shape == (2, 5, 5), name


def test_one_hot_masking_target_picks_one_score_per_image():
    scores = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=np.float32)
    np.testing.assert_allclose(ct.class_score(scores, [2, 0]).numpy(), [3.0, 4.0])
    np.testing.assert_allclose(ct.contrast(0, 1)(tf.constant(scores)).numpy(), [-1.0, -1.0])


# --------------------------------------------------------------------------- the CAM = Grad-CAM identity
def test_cam_grad_cam_and_hirescam_agree_up_to_the_gap_area(gap_model, images):
    classes = [0, 1, 2, 0, 1, 2]
    cam = ct.cam(gap_model, images, classes, relu=True)
    grad = ct.grad_cam(gap_model, images, classes, score="logit")
    hires = ct.grad_cam(gap_model, images, classes, weighting="elementwise")
    height, width = cam.shape[1:]
    nonzero = np.abs(grad) > 1e-6
    assert nonzero.any()
    np.testing.assert_allclose(cam[nonzero] / grad[nonzero], height * width, rtol=1e-3)
    assert np.abs(ct.normalize(cam) - ct.normalize(grad)).max() <= 1e-5
    assert np.abs(ct.normalize(hires) - ct.normalize(grad)).max() <= 1e-5


def test_identity_holds_without_relu_too(gap_model, images):
    cam = ct.cam(gap_model, images, 1, relu=False)
    grad = ct.grad_cam(gap_model, images, 1, relu=False)
    height, width = cam.shape[1:]
    np.testing.assert_allclose(cam, grad * height * width, rtol=1e-3, atol=1e-5)


def test_probability_score_does_not_match_cam(gap_model, images):
    cam = ct.normalize(ct.cam(gap_model, images, 0, relu=True))
    prob = ct.normalize(ct.grad_cam(gap_model, images, 0, score="probability"))
    assert np.abs(cam - prob).max() > 0.05


def test_gradient_of_the_logit_is_the_dense_weight_over_the_area(gap_model, images):
    activations, grads = ct.gradients(gap_model, images, 2)
    height, width = activations.shape[1:3]
    kernel = gap_model.get_layer("predictions").kernel.numpy()
    expected = np.broadcast_to(kernel[:, 2] / (height * width), grads.shape)
    np.testing.assert_allclose(grads, expected, rtol=1e-5, atol=1e-8)


def test_gradients_match_finite_differences():
    """Nonlinear head after the layer: conv2 (ReLU) -> GAP -> Dense; central differences on the activations."""
    model = small_gap_model(seed=4)
    x = np.random.default_rng(5).random((1, 24, 24, 3), dtype=np.float32)
    activations, grads = ct.gradients(model, x, 1, layer="pool1")
    head = [model.get_layer(name) for name in ("conv2", "gap")]
    kernel, bias = (w.numpy() for w in model.get_layer("predictions").weights)

    def logit(a: np.ndarray) -> float:
        h = tf.constant(a)
        for layer in head:
            h = layer(h)
        return float((h.numpy() @ kernel + bias)[0, 1])

    rng = np.random.default_rng(6)
    eps = 1e-2
    for _ in range(25):
        i, j, k = rng.integers(0, activations.shape[1]), rng.integers(0, activations.shape[2]), rng.integers(0, 6)
        plus, minus = activations.copy(), activations.copy()
        plus[0, i, j, k] += eps
        minus[0, i, j, k] -= eps
        numeric = (logit(plus) - logit(minus)) / (2 * eps)
        assert grads[0, i, j, k] == pytest.approx(numeric, rel=2e-2, abs=2e-4)


# --------------------------------------------------------------------------- batching and targets
def test_a_batch_gives_the_same_maps_as_one_image_at_a_time(gap_model, images):
    classes = [2, 0, 1, 1, 0, 2]
    batch = ct.grad_cam(gap_model, images, classes)
    single = np.concatenate([ct.grad_cam(gap_model, images[i : i + 1], [c]) for i, c in enumerate(classes)])
    np.testing.assert_allclose(batch, single, atol=1e-6)


def test_a_target_per_image_is_respected(gap_model, images):
    mixed = ct.grad_cam(gap_model, images[:3], [0, 1, 2], relu=False)
    for c in range(3):
        per_class = ct.grad_cam(gap_model, images[:3], c, relu=False)
        np.testing.assert_allclose(mixed[c], per_class[c], atol=1e-6)
    assert np.abs(mixed[0] - ct.grad_cam(gap_model, images[:1], 1, relu=False)[0]).max() > 1e-4


def test_a_single_int_applies_to_all_images_and_a_short_list_is_refused(gap_model, images):
    everyone = ct.grad_cam(gap_model, images, 1)
    np.testing.assert_allclose(everyone, ct.grad_cam(gap_model, images, [1] * len(images)), atol=1e-7)
    with pytest.raises(ct.TargetError, match="one per image"):
        ct.grad_cam(gap_model, images, [1])
    with pytest.raises(ct.TargetError, match="out of range"):
        ct.grad_cam(gap_model, images, 3)


def test_all_classes_in_one_pass_equal_one_class_at_a_time(gap_model, images):
    maps, probabilities = ct.grad_cam_all_classes(gap_model, images, relu=False)
    assert maps.shape[:2] == (len(images), 3)
    for c in range(3):
        np.testing.assert_allclose(maps[:, c], ct.grad_cam(gap_model, images, c, relu=False), atol=1e-6)
    np.testing.assert_allclose(probabilities, gap_model.predict(images, verbose=0), atol=1e-6)
    cam_maps, _ = ct.cam_all_classes(gap_model, images)
    np.testing.assert_allclose(cam_maps[:, 2], ct.cam(gap_model, images, 2), atol=1e-5)


def test_custom_callable_target(gap_model, images):
    contrast = ct.grad_cam(gap_model, images, ct.contrast(0, 1), relu=False)
    difference = ct.grad_cam(gap_model, images, 0, relu=False) - ct.grad_cam(gap_model, images, 1, relu=False)
    np.testing.assert_allclose(contrast, difference, atol=1e-6)


def test_compiled_once_per_layer_whatever_the_batch_or_class(gap_model, images):
    for batch, cls in [(1, 0), (3, [0, 1, 2]), (6, 2), (2, 1)]:
        ct.grad_cam(gap_model, images[:batch], cls, layer="conv1")
    functions = [f for key, f in explainer(gap_model)._functions.items() if key[0] == "grad_cam" and key[1] is gap_model.get_layer("conv1")]
    assert len(functions) == 1
    assert functions[0].experimental_get_tracing_count() == 1


def test_the_users_model_is_left_unchanged(gap_model, images):
    before = gap_model.predict(images, verbose=0)
    ct.grad_cam(gap_model, images, 0, score="logit")
    assert gap_model.get_layer("predictions").activation is keras.activations.softmax
    assert "call" not in vars(gap_model.get_layer("conv2"))
    np.testing.assert_array_equal(gap_model.predict(images, verbose=0), before)
    np.testing.assert_allclose(before.sum(axis=1), 1.0, atol=1e-5)  # still a softmax


def test_binary_sigmoid_output_is_two_classes_with_opposite_evidence(images):
    model = small_gap_model(num_classes=1, activation="sigmoid", seed=7)
    positive = ct.grad_cam(model, images, 1, relu=False)
    negative = ct.grad_cam(model, images, 0, relu=False)
    np.testing.assert_allclose(negative, -positive, atol=1e-7)
    probabilities = ct.class_probabilities(model, images)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    cam = ct.cam(model, images, 1, relu=True)
    assert np.abs(ct.normalize(cam) - ct.normalize(ct.grad_cam(model, images, 1))).max() <= 1e-5


def test_nested_backbone_layers_are_found_and_the_identity_holds(images):
    keras.utils.set_random_seed(8)
    backbone = keras.Sequential(
        [keras.Input((24, 24, 3)), keras.layers.Conv2D(6, 3, activation="relu", name="inner_conv1"),
         keras.layers.Conv2D(8, 3, activation="relu", name="inner_conv2")],
        name="backbone",
    )
    inputs = keras.Input((24, 24, 3))
    x = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    assert ct.conv_layers(model) == ["inner_conv1", "inner_conv2"]
    cam = ct.cam(model, images, 1, relu=True)
    grad = ct.grad_cam(model, images, 1)
    assert np.abs(ct.normalize(cam) - ct.normalize(grad)).max() <= 1e-5
    assert ct.grad_cam(model, images, 1, layer="inner_conv1").shape == (len(images), 22, 22)


def test_cam_on_a_model_without_gap_suggests_grad_cam(images):
    model = keras.Sequential(
        [keras.Input((24, 24, 3)), keras.layers.Conv2D(4, 3, name="conv"), keras.layers.Flatten(),
         keras.layers.Dense(3, activation="softmax")]
    )
    with pytest.raises(ct.ModelError, match="grad_cam"):
        ct.cam(model, images, 0)
    assert ct.grad_cam(model, images, 0).shape == (len(images), 22, 22)


def test_cam_only_at_the_gap_input(gap_model, images):
    with pytest.raises(ct.LayerError, match="grad_cam"):
        ct.cam(gap_model, images, 0, layer="conv1")


# --------------------------------------------------------------------------- drawing and localisation
def test_overlay_is_rgb_uint8_at_image_size_and_hot_is_red():
    image = np.zeros((32, 40, 3), dtype=np.float32)
    heat = np.zeros((4, 5), dtype=np.float32)
    heat[1, 2] = 1.0
    out = ct.overlay(image, heat, alpha=1.0)
    assert out.shape == (32, 40, 3) and out.dtype == np.uint8
    hottest = out.reshape(-1, 3)[np.argmax(out[..., 0].astype(int) - out[..., 2])]
    assert hottest[0] > 100 and hottest[2] < 60  # red, not blue: no BGR mix-up
    flat = ct.overlay(image, np.zeros((4, 5)), alpha=0.4)
    assert not np.isnan(flat.astype(float)).any()


def test_box_from_map_and_iou():
    heat = np.zeros((16, 16), dtype=np.float32)
    heat[4:8, 6:12] = 1.0
    heat[13:15, 0:2] = 0.5  # a smaller second region is ignored
    assert ct.box_from_map(heat) == (6, 4, 12, 8)
    assert ct.box_from_map(heat, size=(64, 64))[0] >= 20
    assert ct.localize.iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert ct.localize.iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert ct.localize.iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    assert ct.peak(heat, size=(64, 64)) == (26, 18)


def test_cam_reads_the_dense_weights_as_they_are_now(images):
    model = small_gap_model(seed=9)
    assert np.abs(ct.cam(model, images, 0)).max() > 0
    dense = model.get_layer("predictions")
    kernel, bias = dense.get_weights()
    dense.set_weights([np.zeros_like(kernel), bias])
    np.testing.assert_array_equal(ct.cam(model, images, 0), 0.0)
    np.testing.assert_array_equal(ct.cam_all_classes(model, images)[0], 0.0)


def test_box_threshold_is_a_fraction_of_the_max_as_in_the_paper():
    heat = np.full((10, 10), 5.0, dtype=np.float32)  # all positive: min-max scaling would differ
    heat[2:4, 2:4] = 10.0
    assert ct.box_from_map(heat, threshold=0.6) == (2, 2, 4, 4)
    assert ct.box_from_map(heat, threshold=0.4) == (0, 0, 10, 10)
    assert ct.box_from_map(-heat) == (0, 0, 10, 10)


def test_submodules_are_reachable_as_attributes():
    import camtutor.explain

    assert camtutor.explain.grad_cam is ct.grad_cam  # the module is not shadowed by a function
    assert ct.heatmap(small_gap_model(), np.zeros((1, 24, 24, 3), np.float32), 0, method="hirescam").shape == (1, 9, 9)
