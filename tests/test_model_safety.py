"""Never a silently wrong map, on the model side: each test builds small real Keras models.

1. a default layer with a spatial map (not a 1x1 one), a warning for an explicit 1x1 layer;
2. the final softmax/sigmoid read from the graph whatever its form (keras.ops, Activation, Dense...);
3. one output unit without activation is a binary logit (two classes);
4. caches follow the model when its layers change (Sequential.pop()/add());
5. layer names that nesting repeats are addressed by path, never guessed;
6. tracing-time surgery restores the model exactly, is thread-safe, and reports CamTutorErrors;
7. mixed precision is explained in float32.
"""

from __future__ import annotations

import threading
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import camtutor as ct
from camtutor.cli import main
from camtutor.explain import explainer
from camtutor.layers import default_layer, output_info

SIZE = 16
CLASSES = 3


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).random((3, SIZE, SIZE, 3), dtype=np.float32)


def _close(a, b, atol=2e-5) -> None:
    scale = max(float(np.abs(a).max()), float(np.abs(b).max()), 1e-12)
    np.testing.assert_allclose(np.asarray(a) / scale, np.asarray(b) / scale, atol=atol)


def _trunk(inputs, name_prefix: str = ""):
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name=f"{name_prefix}c1")(inputs)
    x = keras.layers.MaxPooling2D(2, name=f"{name_prefix}p1")(x)
    x = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name=f"{name_prefix}feat")(x)
    return keras.layers.GlobalAveragePooling2D(name=f"{name_prefix}gap")(x)


# --------------------------------------------------------------------------- 1. 1x1 layers
def _keepdims_head() -> keras.Model:
    """GAP(keepdims) -> 1x1 conv -> flatten -> softmax: the last 4-D layer is 1x1."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1")(inputs)
    x = keras.layers.Conv2D(5, 3, strides=2, padding="same", activation="relu", name="feat")(x)
    x = keras.layers.GlobalAveragePooling2D(keepdims=True, name="gap")(x)
    x = keras.layers.Conv2D(CLASSES, 1, name="conv_preds")(x)
    x = keras.layers.Flatten(name="flat")(x)
    return keras.Model(inputs, keras.layers.Softmax(name="prob")(x), name="keepdims_head")


def _strided_to_1x1() -> keras.Model:
    """A backbone whose stride reaches the input size (MobileNet at 32x32 in small): its last map is 1x1."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = inputs
    for i in range(4):
        x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name=f"s{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(CLASSES, activation="softmax", name="out")(x), name="strided")


@pytest.mark.parametrize(
    "build, expected, size",
    [(_keepdims_head, "feat", (SIZE // 2, SIZE // 2)), (_strided_to_1x1, "s2", (2, 2))],
    ids=["keepdims_1x1_conv", "strided_to_1x1"],
)
def test_default_layer_is_the_last_spatial_map(build, expected, size):
    keras.utils.set_random_seed(0)
    model = build()
    n = model.inputs[0].shape[1]
    x = np.random.default_rng(1).random((2, n, n, 3), dtype=np.float32)
    assert default_layer(model).name == expected
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default never warns
        maps = ct.grad_cam(model, x, 1, relu=False)
    assert maps.shape == (2, *size)
    assert np.ptp(maps[0]) > 0  # a real map, not one value
    one_by_one = ct.conv_layers(model)[-1]
    with pytest.warns(UserWarning, match="1x1"):
        flat = ct.grad_cam(model, x, 1, layer=one_by_one)
    assert flat.shape == (2, 1, 1)


def test_mobilenet_at_32x32_defaults_to_its_last_2x2_map():
    model = keras.applications.MobileNet(weights=None, input_shape=(32, 32, 3), classes=CLASSES, alpha=0.25)
    assert model.get_layer("conv_pw_13_relu").output.shape[1:3] == (1, 1)
    layer = default_layer(model)
    assert layer.name == "conv_pw_11_relu" and layer.output.shape[1:3] == (2, 2)


def test_default_layer_is_one_the_score_depends_on(images):
    """A nested backbone with two outputs: its last 4-D layer feeds an output the classifier does not use."""
    keras.utils.set_random_seed(2)
    inner = keras.Input((SIZE, SIZE, 3))
    feat = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="feat")(inner)
    side = keras.layers.Conv2D(2, 3, padding="same", name="side")(feat)
    backbone = keras.Model(inner, [feat, side], name="backbone")
    inputs = keras.Input((SIZE, SIZE, 3))
    used, _ = backbone(inputs)
    model = keras.Model(inputs, keras.layers.Dense(CLASSES)(keras.layers.GlobalAveragePooling2D()(used)))
    assert ct.conv_layers(model)[-1] == "side"
    assert default_layer(model).name == "feat"
    maps = ct.grad_cam(model, images, 0, relu=False)
    assert np.abs(maps).max() > 0  # with "side", every gradient would be zero


def test_layers_command_marks_1x1_layers(tmp_path, capsys):
    keras.utils.set_random_seed(0)
    path = tmp_path / "m.keras"
    _keepdims_head().save(path)
    assert main(["layers", str(path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert "1x1: no spatial map" in lines["gap"] and "1x1: no spatial map" in lines["conv_preds"]
    assert "default" in lines["feat"] and "1x1" not in lines["feat"]
    assert "default" not in lines["conv_preds"]


# --------------------------------------------------------------------------- 2. the final activation, any form
class _HiddenSoftmax(keras.layers.Layer):
    """A custom layer: Dense then softmax inside one call; the logits are out of camtutor's reach."""

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(units)

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, x):
        return keras.ops.softmax(self.dense(x))


def _head(form: str):
    """A GAP trunk and a head ending with the softmax written as ``form``."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = _trunk(inputs)
    if form == "dense_softmax":
        out = keras.layers.Dense(CLASSES, activation="softmax", name="out")(x)
    elif form == "hidden":
        out = _HiddenSoftmax(CLASSES, name="out")(x)
    else:
        z = keras.layers.Dense(CLASSES, name="out")(x)
        out = {
            "logits": lambda t: t,
            "ops_softmax": keras.ops.softmax,
            "activations_softmax": keras.activations.softmax,
            "activation_layer": keras.layers.Activation("softmax"),
            "softmax_layer": keras.layers.Softmax(),
            "ops_softmax_then_cast": lambda t: keras.ops.cast(keras.ops.softmax(t), "float32"),
            "softmax_then_reshape": lambda t: keras.layers.Reshape((CLASSES,))(keras.layers.Softmax()(t)),
        }[form](z)
    return keras.Model(inputs, out, name=form)


SOFTMAX_FORMS = ["dense_softmax", "ops_softmax", "activations_softmax", "activation_layer", "softmax_layer",
                 "ops_softmax_then_cast", "softmax_then_reshape"]


@pytest.fixture(scope="module")
def heads():
    models = {form: _head(form) for form in ["logits", *SOFTMAX_FORMS, "hidden"]}
    weights = models["logits"].get_weights()
    for model in models.values():
        model.set_weights(weights)
    return models


@pytest.mark.parametrize("form", SOFTMAX_FORMS)
def test_every_form_of_softmax_is_read_from_the_graph(heads, images, form):
    model, logits_model = heads[form], heads["logits"]
    z = logits_model.predict(images, verbose=0)
    assert output_info(model).activation == "softmax"
    np.testing.assert_allclose(ct.class_probabilities(model, images), tf.nn.softmax(z).numpy(), atol=1e-6)
    for c in range(CLASSES):
        _close(ct.grad_cam(model, images, c, relu=False), ct.grad_cam(logits_model, images, c, relu=False))
        _close(ct.grad_cam(model, images, c, relu=False, score="probability"),
               ct.grad_cam(heads["dense_softmax"], images, c, relu=False, score="probability"))
    if form in ("ops_softmax", "activations_softmax"):
        maps, probabilities = ct.grad_cam_all_classes(model, images, relu=False)
        _close(maps[:, 2], ct.grad_cam(logits_model, images, 2, relu=False))
        np.testing.assert_allclose(probabilities, tf.nn.softmax(z).numpy(), atol=1e-6)
        _close(ct.cam(model, images, 1), ct.cam(logits_model, images, 1))
    np.testing.assert_allclose(model.predict(images, verbose=0), tf.nn.softmax(z).numpy(), atol=1e-6)  # unchanged


def test_sigmoid_written_as_keras_ops_is_a_binary_unit(images):
    keras.utils.set_random_seed(4)
    inputs = keras.Input((SIZE, SIZE, 3))
    z = keras.layers.Dense(1, name="out")(_trunk(inputs))
    by_ops = keras.Model(inputs, keras.ops.sigmoid(z))
    by_dense = keras.Model(inputs, keras.layers.Activation("sigmoid")(z))
    info = output_info(by_ops)
    assert (info.activation, info.num_classes) == ("sigmoid", 2)
    np.testing.assert_allclose(ct.class_probabilities(by_ops, images), ct.class_probabilities(by_dense, images))
    _close(ct.grad_cam(by_ops, images, 1, relu=False), ct.grad_cam(by_dense, images, 1, relu=False))
    p = by_ops.predict(images, verbose=0)[:, 0]
    np.testing.assert_allclose(ct.class_probabilities(by_ops, images)[:, 1], p, rtol=1e-6)


def test_softmax_hidden_in_a_custom_layer_refuses_logit_and_never_doubles_softmax(heads, images):
    model = heads["hidden"]
    info = output_info(model)
    assert (info.activation, info.logits_reachable) == ("softmax", False)
    probabilities = model.predict(images, verbose=0)
    np.testing.assert_allclose(ct.class_probabilities(model, images), probabilities, atol=1e-6)  # not softmax twice
    with pytest.raises(ct.ModelError, match="score='probability'"):
        ct.grad_cam(model, images, 0)
    _close(ct.grad_cam(model, images, 0, relu=False, score="probability"),
           ct.grad_cam(heads["dense_softmax"], images, 0, relu=False, score="probability"))


def test_score_cam_reading_probabilities_runs_when_the_softmax_is_hidden(heads, images):
    """Score-CAM as in the authors' code needs only probabilities: never refused for a hidden softmax.
    Algorithm 1 needs logits: refused, naming the variant that reads probabilities."""
    hidden, plain = heads["hidden"], heads["dense_softmax"]
    for score in ("logit", "probability"):  # the code's reading ignores score=
        _close(ct.heatmap(hidden, images, 0, method="scorecam_code", score=score),
               ct.heatmap(plain, images, 0, method="scorecam_code"))
    with pytest.raises(ct.ModelError, match="scorecam_code"):
        ct.heatmap(hidden, images, 0, method="scorecam")
    _close(ct.heatmap(hidden, images, 0, method="scorecam", score="probability"),
           ct.heatmap(plain, images, 0, method="scorecam", score="probability"))


def _readers(reads_logit: bool) -> list[str]:
    from camtutor.methods import REGISTRY

    return [n for n, e in REGISTRY.items() if (e.reads == "score") == reads_logit and not e.gap_layer]


@pytest.mark.parametrize("method", _readers(False))
def test_a_method_that_reads_no_logit_runs_with_the_default_score_when_the_softmax_is_hidden(heads, images, method):
    """The registry declares what each method reads: Eigen-CAM reads no score, Score-CAM (code) probabilities;
    neither is refused for a hidden softmax with the default score="logit" (CAM needs a GAP -> Dense head,
    which the custom layer hides: not tested here)."""
    _close(ct.heatmap(heads["hidden"], images, 0, method=method),
           ct.heatmap(heads["dense_softmax"], images, 0, method=method))


@pytest.mark.parametrize("method", _readers(True))
def test_a_method_that_reads_the_logit_is_refused_when_the_softmax_is_hidden(heads, images, method):
    with pytest.raises(ct.ModelError, match="logit"):
        ct.heatmap(heads["hidden"], images, 0, method=method)


def test_softmax_inside_a_nested_subclassed_model(images):
    class Head(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(CLASSES)

        def call(self, x):
            return keras.ops.softmax(self.dense(x))

    keras.utils.set_random_seed(5)
    inputs = keras.Input((SIZE, SIZE, 3))
    model = keras.Model(inputs, Head()(_trunk(inputs)))
    assert output_info(model).logits_reachable is False
    with pytest.raises(ct.ModelError, match="score='probability'"):
        ct.grad_cam(model, images, 0)
    maps = ct.grad_cam(model, images, 0, score="probability")
    assert maps.shape == (3, SIZE // 2, SIZE // 2) and np.isfinite(maps).all()
    np.testing.assert_allclose(ct.class_probabilities(model, images), model.predict(images, verbose=0), atol=1e-6)


def test_a_subclassed_model_is_refused_with_the_fix(images):
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(4, 3)
            self.pool = keras.layers.GlobalAveragePooling2D()
            self.dense = keras.layers.Dense(CLASSES)

        def call(self, x):
            return keras.ops.softmax(self.dense(self.pool(self.conv(x))))

    model = Net()
    model(images)  # built: it has weights, but no layer graph
    with pytest.raises(ct.ModelError, match="subclassed.*Functional API"):
        ct.grad_cam(model, images, 0)


# --------------------------------------------------------------------------- 3. one unit, no activation
def test_one_unit_without_activation_is_a_binary_logit(images):
    keras.utils.set_random_seed(6)
    inputs = keras.Input((SIZE, SIZE, 3))
    z = keras.layers.Dense(1, name="out")(_trunk(inputs))
    logit = keras.Model(inputs, z)
    sigmoid = keras.Model(inputs, keras.layers.Activation("sigmoid")(z))
    info = output_info(logit)
    assert (info.activation, info.num_classes, info.binary) == ("linear", 2, True)
    zs = logit.predict(images, verbose=0)[:, 0]
    p = 1.0 / (1.0 + np.exp(-zs))
    np.testing.assert_allclose(ct.class_probabilities(logit, images), np.stack([1 - p, p], axis=1), rtol=1e-5)
    positive = ct.grad_cam(logit, images, 1, relu=False)
    assert np.abs(positive).max() > 0
    np.testing.assert_allclose(ct.grad_cam(logit, images, 0, relu=False), -positive, rtol=1e-5, atol=1e-7)
    _close(positive, ct.grad_cam(sigmoid, images, 1, relu=False))
    np.testing.assert_allclose(ct.cam(logit, images, 0), -ct.cam(logit, images, 1), rtol=1e-5, atol=1e-7)
    maps, probabilities = ct.grad_cam_all_classes(logit, images, relu=False)
    assert maps.shape[1] == 2
    _close(maps[:, 1], positive)


# --------------------------------------------------------------------------- 4. caches follow the model
def _sequential(head: list) -> keras.Sequential:
    keras.utils.set_random_seed(7)
    return keras.Sequential(
        [keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1"),
         keras.layers.MaxPooling2D(2, name="p1"),
         keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="feat"),
         keras.layers.GlobalAveragePooling2D(name="gap"), *head]
    )


def test_maps_follow_a_sequential_after_pop_and_add(images):
    model = _sequential([keras.layers.Dense(3, activation="softmax", name="head3")])
    assert ct.grad_cam_all_classes(model, images)[0].shape[1] == 3
    assert ct.cam(model, images, 2).shape == (3, SIZE // 2, SIZE // 2)
    model.pop()
    model.add(keras.layers.Dense(5, name="head5"))  # logits now, and 5 classes
    fresh = _sequential([keras.layers.Dense(5, name="head5")])
    fresh.set_weights(model.get_weights())
    maps, probabilities = ct.grad_cam_all_classes(model, images, relu=False)
    expected_maps, expected_probabilities = ct.grad_cam_all_classes(fresh, images, relu=False)
    assert maps.shape == (3, 5, SIZE // 2, SIZE // 2)
    _close(maps, expected_maps)
    np.testing.assert_allclose(probabilities, expected_probabilities, atol=1e-6)
    np.testing.assert_allclose(ct.class_probabilities(model, images), ct.class_probabilities(fresh, images), atol=1e-6)
    _close(ct.grad_cam(model, images, 4), ct.grad_cam(fresh, images, 4))
    _close(ct.cam(model, images, 4), ct.cam(fresh, images, 4))
    assert output_info(model).activation == "linear" and explainer(model).info.num_classes == 5


def test_a_popped_head_with_one_sigmoid_unit(images):
    model = _sequential([keras.layers.Dense(4, activation="softmax")])
    ct.grad_cam(model, images, 3)
    model.pop()
    model.add(keras.layers.Dense(1, activation="sigmoid"))
    with pytest.raises(ct.TargetError, match="2 classes"):
        ct.grad_cam(model, images, 3)
    positive = ct.grad_cam(model, images, 1, relu=False)
    np.testing.assert_allclose(ct.grad_cam(model, images, 0, relu=False), -positive, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------- 5. names repeated by nesting
@pytest.fixture(scope="module")
def repeated_names():
    keras.utils.set_random_seed(8)
    inner_in = keras.Input((SIZE, SIZE, 3))
    inner_conv = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")
    backbone = keras.Model(inner_in, inner_conv(inner_in), name="backbone")
    inputs = keras.Input((SIZE, SIZE, 3))
    x = backbone(inputs)
    x = keras.layers.Conv2D(5, 3, strides=2, padding="same", activation="relu", name="conv")(x)
    out = keras.layers.Dense(CLASSES, activation="softmax", name="out")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, out, name="outer")


def test_repeated_names_are_listed_by_path_and_a_bare_name_is_refused(repeated_names, images):
    model = repeated_names
    assert ct.conv_layers(model) == ["outer/backbone/conv", "outer/conv"]
    with pytest.raises(ct.LayerError, match=r"outer/backbone/conv.*outer/conv"):
        ct.grad_cam(model, images, 0, layer="conv")
    inner = ct.grad_cam(model, images, 0, layer="outer/backbone/conv")
    assert inner.shape == (3, SIZE, SIZE)
    np.testing.assert_array_equal(ct.grad_cam(model, images, 0, layer="backbone/conv"), inner)
    outer = ct.grad_cam(model, images, 0, layer="outer/conv")
    assert outer.shape == (3, SIZE // 2, SIZE // 2)
    np.testing.assert_array_equal(ct.grad_cam(model, images, 0), outer)  # the default is the outer one
    keys = {key[1] for key in explainer(model)._functions if key[0] == "grad_cam"}
    assert keys == {model.get_layer("conv"), model.get_layer("backbone").get_layer("conv")}


@pytest.mark.parametrize(
    "name, match",
    [("backbone", r"nested model.*'outer/backbone/conv'"), ("input_layer", "input layer"),
     ("cnv", "has no layer")],
)
def test_a_name_that_is_not_a_feature_map_layer_says_what_it_is(repeated_names, images, name, match):
    if name == "input_layer":
        name = repeated_names.layers[0].name
    with pytest.raises(ct.LayerError, match=match):
        ct.grad_cam(repeated_names, images, 0, layer=name)


# --------------------------------------------------------------------------- 6. surgery: exact, thread-safe
def test_an_instance_level_call_is_restored(images):
    model = _head("dense_softmax")
    feat = model.get_layer("feat")
    calls = []
    original = feat.call

    def patched(*args, **kwargs):  # e.g. a profiler that patched this one layer
        calls.append(1)
        return original(*args, **kwargs)

    object.__setattr__(feat, "call", patched)
    activation = model.get_layer("out").activation
    ct.grad_cam(model, images, 0)
    assert vars(feat).get("call") is patched
    assert model.get_layer("out").activation is activation
    calls.clear()
    model(images)
    assert calls == [1]  # the user's patch still runs


class _CallsModelFromAnotherThread(keras.layers.Layer):
    """Identity; while traced in a graph, runs the model eagerly in another thread and keeps its output."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        object.__setattr__(self, "model", None)
        self.outputs: list[np.ndarray] = []
        self.errors: list[BaseException] = []

    def call(self, x):
        if self.model is not None and not tf.executing_eagerly():
            def other():
                try:
                    self.outputs.append(np.asarray(self.model(np.ones((2, SIZE, SIZE, 3), np.float32))))
                except BaseException as exc:  # noqa: BLE001 - reported by the test
                    self.errors.append(exc)

            thread = threading.Thread(target=other)
            thread.start()
            thread.join(timeout=60)
        return x


def test_another_thread_gets_the_normal_output_while_camtutor_traces():
    keras.utils.set_random_seed(9)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="feat")(inputs)
    spy = _CallsModelFromAnotherThread(name="spy")
    x = spy(x)
    out = keras.layers.Dense(CLASSES, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, out)
    expected = np.asarray(model(np.ones((2, SIZE, SIZE, 3), np.float32)))
    object.__setattr__(spy, "model", model)  # untracked: a layer cannot own its model
    maps = ct.grad_cam(model, np.ones((2, SIZE, SIZE, 3), np.float32), 0, layer="feat")
    object.__setattr__(spy, "model", None)
    assert not spy.errors, spy.errors
    assert len(spy.outputs) == 1
    np.testing.assert_allclose(spy.outputs[0], expected, atol=1e-6)  # probabilities, not the bypassed logits
    assert maps.shape == (2, SIZE, SIZE)


def test_concurrent_camtutor_calls_from_threads_agree(images):
    model = _head("ops_softmax")
    expected = {c: ct.grad_cam(_head("ops_softmax"), images, c) for c in range(CLASSES)}
    results, errors = {}, []

    def work(c):
        try:
            results[c] = ct.grad_cam(model, images, c, layer="c1"), ct.grad_cam(model, images, c)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in range(CLASSES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    for c in range(CLASSES):
        _close(results[c][1], expected[c])


def test_a_shared_layer_is_a_layer_error_not_a_tensorflow_error(images):
    inputs = keras.Input((SIZE, SIZE, 3))
    shared = keras.layers.Conv2D(3, 3, padding="same", name="shared")
    x = keras.layers.Conv2D(4, 3, padding="same", name="last")(shared(shared(inputs)))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    with pytest.raises(ct.LayerError, match="(runs|ran) 2 times"):
        ct.grad_cam(model, images, 0, layer="shared")
    assert "call" not in vars(shared)
    assert ct.grad_cam(model, images, 0).shape == (3, SIZE, SIZE)  # still usable


@pytest.mark.parametrize(
    "target",
    [lambda s: s[0], lambda s: s, lambda s: tf.reduce_sum(s), lambda s: s[:2, 0]],
    ids=["first_row", "all_scores", "scalar", "two_images"],
)
def test_a_target_of_the_wrong_shape_is_a_target_error(heads, images, target):
    with pytest.raises(ct.TargetError, match=r"one score per image \(B,\)"):
        ct.grad_cam(heads["dense_softmax"], images, target)


def test_a_failing_target_function_is_a_target_error(heads, images):
    with pytest.raises(ct.TargetError, match="target function"):
        ct.grad_cam(heads["dense_softmax"], images, lambda s: s[:, CLASSES + 5])


# --------------------------------------------------------------------------- 7. mixed precision
@pytest.mark.parametrize("float32_output", [False, True], ids=["float16_output", "float32_softmax"])
def test_mixed_precision_maps_are_finite_float32_and_match(images, float32_output):
    def build():
        keras.utils.set_random_seed(10)
        inputs = keras.Input((SIZE, SIZE, 3))
        z = keras.layers.Dense(CLASSES, name="out")(_trunk(inputs))
        out = keras.layers.Activation("softmax", dtype="float32" if float32_output else None)(z)
        return keras.Model(inputs, out)

    reference = build()
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mixed = build()
    finally:
        keras.mixed_precision.set_global_policy(previous)
    mixed.set_weights(reference.get_weights())
    assert mixed.outputs[0].dtype == ("float32" if float32_output else "float16")
    for function in (ct.grad_cam, ct.cam):
        got, want = function(mixed, images, 1), function(reference, images, 1)
        assert got.dtype == np.float32 and np.isfinite(got).all()
        _close(got, want, atol=2e-2)
    maps, probabilities = ct.grad_cam_all_classes(mixed, images, score="probability")
    assert maps.dtype == np.float32 and probabilities.dtype == np.float32 and np.isfinite(maps).all()
    np.testing.assert_allclose(probabilities, ct.class_probabilities(reference, images), atol=5e-3)


def test_the_command_refuses_score_cam_when_it_would_fall_back_to_probabilities(heads, monkeypatch):
    """The command explains probabilities when the logits are hidden; Score-CAM over them is class-blind."""
    import argparse

    from camtutor import cli, loading

    monkeypatch.setattr(loading, "load_model", lambda _: heads["hidden"])
    args = argparse.Namespace(model="hidden.keras", labels=None, method="scorecam", layer=None, target=None)
    with pytest.raises(ct.ModelError, match="class-blind.*scorecam_code"):
        cli._check_model(args, None, 1)
    for method in ("scorecam_code", "gradcam"):
        assert cli._check_model(argparse.Namespace(**{**vars(args), "method": method}), None, 1)[0] is heads["hidden"]
    monkeypatch.setattr(loading, "load_model", lambda _: heads["dense_softmax"])
    assert cli._check_model(args, None, 1)[0] is heads["dense_softmax"]  # logits reachable: Algorithm 1 runs
