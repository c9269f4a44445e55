"""The explorer widget, driven without a kernel: set widget values, check what it shows."""

from __future__ import annotations

import asyncio
import importlib
import io
import warnings

import cv2
import keras
import numpy as np
import pytest

import camtutor as ct
from camtutor import models, widgets

explain_module = importlib.import_module("camtutor.explain")
NAMES = ("circle", "square", "triangle")


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return ct.data.shapes(5, size=32, seed=3).images


@pytest.fixture(scope="module")
def gap_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return models.gap_classifier(3, input_shape=(32, 32, 3), width=4)


@pytest.fixture(scope="module")
def flat_model() -> keras.Model:
    keras.utils.set_random_seed(1)
    return models.flat_classifier(3, input_shape=(32, 32, 3))


@pytest.fixture
def explorer(gap_model, images) -> widgets.Explorer:
    return widgets.Explorer(gap_model, images, NAMES)


def reference(model, images, state):
    one = images[state.image_index : state.image_index + 1]
    if state.method == "cam":
        return ct.cam(model, one, state.class_index, relu=state.relu)[0]
    if state.method in ("gradcam", "hirescam"):
        weighting = "mean" if state.method == "gradcam" else "elementwise"
        return ct.grad_cam(model, one, state.class_index, layer=state.layer, weighting=weighting, relu=state.relu)[0]
    return ct.heatmap(model, one, state.class_index, method=state.method, layer=state.layer, relu=state.relu)[0]


def test_the_method_control_lists_the_registry(explorer):
    from camtutor.methods import REGISTRY

    offered = [value for _, value in explorer.method_buttons.options]
    assert offered == [name for name, entry in REGISTRY.items() if not entry.input_gradient]
    assert [label for label, _ in explorer.method_buttons.options] == [REGISTRY[m].label for m in offered]


@pytest.mark.parametrize("method", list(widgets.explorer_methods()))
def test_shown_map_is_the_methods_map_for_every_setting(explorer, gap_model, images, method):
    explorer.method_buttons.value = method
    layers = [explorer.cam_layer] if method == "cam" else explorer.layers[::2] + [explorer.layers[-1]]
    for layer, image, klass, relu in [(layers[0], 2, 1, True), (layers[-1], 4, 2, False), (layers[-1], 0, 0, True)]:
        if method != "cam":
            explorer.layer_slider.value = layer
        explorer.image_slider.value = image
        explorer.class_dropdown.value = klass
        explorer.relu_checkbox.value = relu
        state = explorer.state()
        assert (state.image_index, state.class_index, state.layer, state.method, state.relu) == (
            image, klass, layer, method, relu)
        assert state.class_name == NAMES[klass]
        np.testing.assert_allclose(state.raw_map, reference(gap_model, images, state), atol=1e-5)


def test_display_time_relu_equals_grad_cams_relu(gap_model, images):
    """Caching maps without ReLU and applying np.maximum when drawing is exactly grad_cam(..., relu=True)."""
    layer = ct.conv_layers(gap_model)[-2]
    raw, _ = explain_module.grad_cam_all_classes(gap_model, images, layer=layer, weighting="mean", relu=False)
    with_relu = np.stack([ct.grad_cam(gap_model, images, c, layer=layer, relu=True) for c in range(3)], axis=1)
    assert (raw < 0).any() and (raw > 0).any()  # the ReLU matters here
    np.testing.assert_allclose(np.maximum(raw, 0.0), with_relu, atol=1e-5)


def test_class_labels_show_the_models_probabilities(explorer, gap_model, images):
    explorer.image_slider.value = 3
    probabilities = np.asarray(gap_model(images[3:4]))[0]
    np.testing.assert_allclose(explorer.state().probabilities, probabilities, atol=1e-5)
    labels = [label for label, _ in explorer.class_dropdown.options]
    assert labels == [f"{name} ({p:.2f})" for name, p in zip(NAMES, probabilities)]


def _counting(monkeypatch, name):
    calls = []
    original = getattr(explain_module, name)

    def counting(*args, **kwargs):
        calls.append(kwargs.get("layer", args[2] if len(args) > 2 else None))
        return original(*args, **kwargs)

    monkeypatch.setattr(explain_module, name, counting)
    return calls


def test_switching_class_image_relu_or_opacity_never_runs_the_model_again(explorer, monkeypatch):
    calls = _counting(monkeypatch, "grad_cam_all_classes")
    passes = _counting(monkeypatch, "layer_pass")
    monkeypatch.setattr(keras.Model, "__call__", _forbidden)  # any other forward pass fails loudly
    shown = []
    for klass, image in [(1, 0), (2, 0), (2, 3), (0, 4)]:
        explorer.class_dropdown.value = klass
        explorer.image_slider.value = image
        shown.append(explorer.state().raw_map.copy())
    explorer.relu_checkbox.value = False
    explorer.alpha_slider.value = 0.9
    assert calls == []
    assert explorer.state().alpha == 0.9 and not explorer.state().relu
    assert not np.allclose(shown[0], shown[1])  # another class really is another map
    # a new layer comes from the pass computed when the explorer was built: still no model call
    computed = explorer.compute_calls
    explorer.layer_slider.value = explorer.layers[0]
    explorer.class_dropdown.value = 1
    explorer.layer_slider.value = explorer.layers[0]
    assert calls == [] and passes == [] and explorer.compute_calls == computed + 1
    assert explorer.state().layer == explorer.layers[0]


original_call = keras.Model.__call__


def _forbidden(*args, **kwargs):
    raise AssertionError("the model ran again")


def test_a_failed_computation_blanks_the_panels_instead_of_leaving_a_stale_map(explorer, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(explain_module.LayerPass, "maps", broken)
    explorer.layer_slider.value = explorer.layers[1]
    assert explorer.state() is None and explorer.map_panel.value == b"" and explorer.overlay_panel.value == b""
    assert "out of memory" in explorer.note.value and explorer.layers[1] in explorer.note.value
    monkeypatch.undo()
    explorer.layer_slider.value = explorer.layers[2]
    assert explorer.state().layer == explorer.layers[2] and "out of memory" not in explorer.note.value


def test_panels_are_pngs_of_the_shown_map(explorer):
    explorer.class_dropdown.value = 2
    state = explorer.state()
    decoded = cv2.imdecode(np.frombuffer(explorer.map_panel.value, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    h, w = state.raw_map.shape
    side = explorer.panel_size
    cells = decoded[side // (2 * h) :: side // h, side // (2 * w) :: side // w][:h, :w]
    np.testing.assert_array_equal(cells, ct.draw.colorize(state.raw_map))  # RGB, not BGR; one block per cell
    assert f"{state.raw_map.max():.3g}" in explorer.max_label.value
    assert "triangle" in explorer.title.value and state.layer in explorer.title.value


def test_idle_prefetch_fills_every_layer_inside_a_running_loop_then_stops(gap_model, images):
    async def scenario() -> widgets.Explorer:
        explorer = widgets.Explorer(gap_model, images, NAMES)  # a running loop, as in a kernel
        await explorer.wait(60)
        return explorer

    explorer = asyncio.run(scenario())
    from camtutor.methods import REGISTRY

    fast = {m for m in widgets.explorer_methods() if not REGISTRY[m].gap_layer and not REGISTRY[m].extra_passes}
    shown_layer = explorer.layer_slider.value
    assert explorer.cached() == ({(layer, "gradcam") for layer in explorer.layers}
                                    | {(shown_layer, m) for m in fast})  # never Score-CAM or Ablation-CAM
    calls = explorer.compute_calls
    explorer.layer_slider.value = explorer.layers[0]
    assert explorer.compute_calls == calls and explorer.state().layer == explorer.layers[0]
    assert not widgets.Explorer(gap_model, images, NAMES).pending  # no loop, no prefetch


def _trace_count(model) -> int:
    return sum(f.experimental_get_tracing_count() for f in explain_module.explainer(model)._functions.values())


def test_after_construction_every_layer_of_every_one_pass_method_needs_no_tracing_and_no_model_call(
        images, monkeypatch):
    """The issue's scenario: the explorer is shown, later each layer is visited once, for every one-pass method."""
    from camtutor.methods import REGISTRY

    keras.utils.set_random_seed(0)
    model = models.gap_classifier(3, input_shape=(32, 32, 3), width=4)  # fresh: nothing traced yet
    explorer = widgets.Explorer(model, images, NAMES, prefetch=False)
    traces = _trace_count(model)
    assert traces == 1 and set(explain_module.explainer(model)._functions) == {
        ("layers", tuple(explain_module.find_layer(model, n) for n in explorer.layers), "logit")}
    monkeypatch.setattr(keras.Model, "__call__", _forbidden)
    one_pass = [m for m in widgets.explorer_methods() if not REGISTRY[m].extra_passes]
    for method in one_pass:
        explorer.method_buttons.value = method
        for layer in ([explorer.cam_layer] if method == "cam" else explorer.layers):
            explorer.layer_slider.value = layer
            assert explorer.state() is not None and (explorer.state().layer, explorer.state().method) == (layer, method)
    assert _trace_count(model) == traces
    monkeypatch.undo()
    for method in one_pass:  # the same numbers as the per-layer computation
        for layer in ([explorer.cam_layer] if method == "cam" else explorer.layers[::2]):
            expected, probabilities = explain_module.heatmap_all_classes(model, images, method=method, layer=layer)
            got, got_probabilities = explorer.maps(layer, method)
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())
            np.testing.assert_allclose(got_probabilities, probabilities, rtol=1e-6)


def test_a_model_too_large_for_one_pass_is_explored_one_layer_at_a_time(gap_model, images, monkeypatch):
    monkeypatch.setattr(explain_module, "LAYER_PASS_VALUES", 10)
    calls = _counting(monkeypatch, "heatmap_all_classes")
    explorer = widgets.Explorer(gap_model, images, NAMES)
    explorer.layer_slider.value = explorer.layers[0]
    assert calls == [explorer.layers[-1], explorer.layers[0]] and explorer._pass is False
    np.testing.assert_allclose(explorer.state().raw_map, reference(gap_model, images, explorer.state()), atol=1e-5)


def test_in_a_kernel_a_slow_method_computes_in_the_background_and_never_blocks_a_class_switch(
        gap_model, images, monkeypatch):
    import threading

    release = threading.Event()
    original = explain_module.heatmap_all_classes

    def held(*args, **kwargs):  # a slow computation that lasts until the test lets it finish
        assert threading.current_thread() is not threading.main_thread()
        assert release.wait(30)
        return original(*args, **kwargs)

    monkeypatch.setattr(explain_module, "heatmap_all_classes", held)

    async def scenario():
        explorer = widgets.Explorer(gap_model, images, NAMES, prefetch=False)
        explorer.method_buttons.value = "scorecam"  # returns at once: the kernel is free
        assert explorer.state() is None and "computing Score-CAM" in explorer.note.value
        assert explorer.map_panel.value == b"" and explorer.image_panel.value != b""
        explorer.class_dropdown.value = 2  # served while Score-CAM computes: no computation, no wait
        explorer.image_slider.value = 1
        assert explorer.state() is None and explorer.pending
        release.set()
        for _ in range(600):
            await asyncio.sleep(0.05)
            if explorer.state() is not None:
                break
        return explorer

    explorer = asyncio.run(scenario())
    state = explorer.state()
    assert (state.method, state.class_index, state.image_index) == ("scorecam", 2, 1)
    np.testing.assert_allclose(state.raw_map, reference(gap_model, images, state), atol=1e-5)
    assert "computing" not in explorer.note.value and not explorer.pending


def test_cam_pins_the_layer_to_the_gap_input(explorer):
    explorer.layer_slider.value = explorer.layers[0]
    explorer.method_buttons.value = "cam"
    assert explorer.layer_slider.disabled and explorer.state().layer == explorer.cam_layer
    explorer.method_buttons.value = "gradcam"
    assert not explorer.layer_slider.disabled


def test_cam_is_hidden_with_a_note_on_a_model_without_gap(flat_model, images):
    explorer = widgets.Explorer(flat_model, images, NAMES)
    assert "cam" not in [value for _, value in explorer.method_buttons.options]
    assert "CAM is not available" in explorer.note.value and "Grad-CAM" in explorer.note.value
    state = explorer.state()
    np.testing.assert_allclose(state.raw_map, reference(flat_model, images, state), atol=1e-5)
    with pytest.raises(ct.CamTutorError, match="method"):
        widgets.Explorer(flat_model, images, NAMES, method="cam")


def test_bad_arguments_are_explained(gap_model, images):
    with pytest.raises(ct.ImageError, match="resize"):
        widgets.Explorer(gap_model, np.zeros((2, 40, 40, 3), np.float32), NAMES)
    with pytest.raises(ct.CamTutorError, match="one name per class"):
        widgets.Explorer(gap_model, images, ["a", "b"])


def _rescaling_model() -> keras.Model:
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(2, 3, name="feat")(keras.layers.Rescaling(1 / 255)(inputs))
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)))


EXPLORER_ARGUMENT_ERRORS = [
    # (case, keyword arguments replacing the good ones, substring of the CamTutorError that names the fix)
    ("a model name", {"model": "shapes"}, "ct.models.load('shapes')"),
    ("a model path", {"model": "my_model.keras"}, "ct.load_model(path)"),
    ("alpha NaN", {"alpha": float("nan")}, "alpha"),
    ("alpha above 1", {"alpha": 2}, "[0, 1]"),
    ("alpha below 0", {"alpha": -0.1}, "[0, 1]"),
    ("panel_size 0", {"panel_size": 0}, "panel_size"),
    ("panel_size negative", {"panel_size": -64}, "panel_size"),
    ("images of different sizes", {"images": "different"}, "different shapes"),
    ("channels-first images", {"images": "channels first"}, "np.transpose(images, (0, 2, 3, 1))"),
]


@pytest.mark.parametrize("case, change, fix", EXPLORER_ARGUMENT_ERRORS, ids=[row[0] for row in EXPLORER_ARGUMENT_ERRORS])
def test_explorer_arguments_are_refused_naming_the_fix(gap_model, images, case, change, fix):
    arguments = {"model": gap_model, "images": images, "class_names": NAMES, **change}
    if isinstance(arguments["images"], str) and arguments["images"] == "different":
        arguments["images"] = [images[0], images[1, :20]]
    elif isinstance(arguments["images"], str):
        arguments["images"] = np.transpose(images, (0, 3, 1, 2))
    with pytest.raises(ct.CamTutorError) as raised:
        widgets.Explorer(**arguments)
    assert fix in str(raised.value)
    if "channels" in case:
        assert "resize_images" not in str(raised.value)


@pytest.mark.parametrize("model_key, warns", [("plain", True), ("rescaling", False)])
def test_explorer_warns_about_0_255_images_unless_the_model_rescales(gap_model, images, model_key, warns):
    model = gap_model if model_key == "plain" else _rescaling_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        widgets.Explorer(model, (images * 255).astype(np.uint8), NAMES, prefetch=False)
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert any("ct.preprocess" in m for m in messages) == warns, messages


def _jpeg_rotated_by_exif() -> bytes:
    """Stored 20x40, left half red, right half blue; EXIF 6 = shown rotated 90 degrees clockwise (red on top)."""
    from PIL import Image

    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20, 0] = 255
    stored[:, 20:, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, "JPEG", quality=100, exif=exif.tobytes())
    return buffer.getvalue()


def test_an_uploaded_photo_is_explained_as_displayed(gap_model, images):
    explorer = widgets.Explorer(gap_model, images, NAMES, upload=True)
    explorer._on_upload({"new": [{"name": "phone.jpg", "content": _jpeg_rotated_by_exif()}]})
    added = explorer.images[-1]
    assert added.shape == (32, 32, 3)
    assert added[:14, :, 0].mean() > 0.9 and added[18:, :, 2].mean() > 0.9  # red on top, as a viewer shows it


def test_an_upload_for_a_one_channel_model_becomes_grey(images):
    keras.utils.set_random_seed(0)
    grey_model = models.gap_classifier(3, input_shape=(32, 32, 1), width=4)
    explorer = widgets.Explorer(grey_model, images[..., :1], NAMES, upload=True)
    colour = np.zeros((50, 70, 3), np.uint8)
    colour[..., 1] = 200  # green
    ok, data = cv2.imencode(".png", colour[..., ::-1])
    explorer._on_upload({"new": [{"name": "green.png", "content": data.tobytes()}]})
    assert explorer.images.shape == (len(images) + 1, 32, 32, 1), explorer.note.value
    expected = cv2.cvtColor(np.full((32, 32, 3), (0, 200 / 255, 0), np.float32), cv2.COLOR_RGB2GRAY)
    np.testing.assert_allclose(explorer.images[-1, ..., 0], expected, atol=1e-6)


def test_decode_image_reads_common_formats_as_rgb(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    for extension in (".png", ".jpg", ".bmp"):
        ok, data = cv2.imencode(extension, rgb[..., ::-1])
        image = widgets.decode_image(data.tobytes(), 16, f"red{extension}")
        assert image.shape == (16, 16, 3) and image.dtype == np.float32
        np.testing.assert_allclose(image.mean(axis=(0, 1)), [1.0, 0.0, 0.0], atol=0.02)


@pytest.mark.parametrize("garbage", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n truncated"])
def test_decode_image_rejects_garbage(garbage):
    with pytest.raises(ct.ImageError, match="notes.txt"):
        widgets.decode_image(garbage, 32, "notes.txt")


def test_upload_appends_the_image_and_shows_it_or_explains_the_error(gap_model, images):
    explorer = widgets.Explorer(gap_model, images, NAMES, upload=True)
    explorer._on_upload({"new": [{"name": "junk.txt", "content": b"hello"}]})
    assert "junk.txt" in explorer.note.value and len(explorer.images) == len(images)
    ok, data = cv2.imencode(".png", np.full((50, 70, 3), 200, np.uint8))
    explorer._on_upload({"new": [{"name": "mine.png", "content": memoryview(data.tobytes())}]})
    assert len(explorer.images) == len(images) + 1
    state = explorer.state()
    assert state.image_index == len(images)
    np.testing.assert_allclose(explorer.images[-1], 200 / 255, atol=1e-6)
    np.testing.assert_allclose(state.raw_map, reference(gap_model, explorer.images, state), atol=1e-5)


def test_static_figure_has_one_row_per_class_and_one_column_per_layer(explorer):
    fig = explorer.figure(1)
    assert len(fig.axes) == 3 * (len(explorer.layers) + 1)
    import matplotlib.pyplot as plt

    plt.close(fig)


# --------------------------------------------------------------------------- notebook 06's exercise
def test_exercise_reference_passes_and_matches_the_explorers_indexing():
    from camtutor.exercises import explorer as ex
    from labs.solutions import explorer as ref

    assert ex.predicted_maps.evaluate(ref.my_predicted_maps)[0]
    maps = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    probabilities = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]])
    np.testing.assert_array_equal(ref.my_predicted_maps(maps, probabilities), maps[[0, 1], [1, 0]])


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda m, p: m[:, p.argmax(axis=1)], "np.arange"),
        (lambda m, p: m.max(axis=1), "maximum over classes"),
        (lambda m, p: m[np.arange(len(m)), p.argmin(axis=1)], "argmin"),
        (lambda m, p: m[np.arange(len(m)), p.argmax(axis=0)], "axis 0"),
        (lambda m, p: m[:, 0], "most probable"),
        (lambda m, p: None, "None"),
    ],
)
def test_exercise_names_typical_mistakes(wrong, message):
    from camtutor.exercises import explorer as ex

    passed, feedback = ex.predicted_maps.evaluate(wrong)
    assert not passed and message in feedback, feedback


def test_exercise_stub_gets_the_not_yet_message():
    from camtutor.exercises import explorer as ex

    passed, feedback = ex.predicted_maps.evaluate(None)
    assert not passed and "nothing to check yet" in feedback


def test_a_single_sigmoid_unit_is_explored_as_two_classes(images):
    keras.utils.set_random_seed(2)
    inputs = keras.Input((32, 32, 3))
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="features")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(pooled))
    explorer = widgets.Explorer(model, images, ["no", "yes"])
    assert len(explorer.class_dropdown.options) == 2
    for method in ("gradcam", "cam"):
        explorer.method_buttons.value = method
        for klass in (0, 1):
            explorer.class_dropdown.value = klass
            state = explorer.state()
            np.testing.assert_allclose(state.raw_map, reference(model, images, state), atol=1e-5)
    p_yes = np.asarray(model(images[:1]))[0, 0]
    np.testing.assert_allclose(explorer.state().probabilities, [1 - p_yes, p_yes], atol=1e-5)
