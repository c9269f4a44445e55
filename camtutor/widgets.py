"""An interactive CAM / Grad-CAM explorer for Jupyter (ipywidgets, no ipympl).

``Explorer(model, images, class_names)`` shows, for the chosen image, class,
layer and method, three panels side by side: the image, the raw map at the
layer's own resolution (nearest-neighbour upscaled so each cell is visible,
with a colour bar and its min / max) and the overlay.

Fast by construction:

* when the explorer is built, one compiled call (:func:`camtutor.explain.layer_pass`: one forward pass,
  one backward pass per class) gives the feature maps and every class's gradient at *every* layer for
  *every* image; the first time a (layer, method) is shown, its maps for every image and class are
  computed from that pass in milliseconds (no tracing, no model call), raw, without ReLU, and cached.
  While the kernel is idle the other layers are prefetched, so a first visit is a cache hit. Score-CAM
  and Ablation-CAM (and models too large for one pass) are computed per layer
  (:func:`camtutor.explain.heatmap_all_classes`);
* switching class or image, toggling the ReLU or changing the opacity then
  only indexes the cache (ReLU is ``np.maximum(raw, 0)``, exactly what
  ``grad_cam(..., relu=True)`` does after the weighted channel sum);
* panels are composed with numpy and encoded to PNG with OpenCV into
  ``widgets.Image``, not drawn by matplotlib, so a switch costs a few ms.

Works wherever ipywidgets does (JupyterLab, classic Notebook, VS Code, Colab).
:meth:`Explorer.state` exposes exactly what is on screen, for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import warnings
from dataclasses import dataclass, replace
from typing import Sequence

import cv2
import ipywidgets as widgets
import keras
import numpy as np

from camtutor import images as _images
from camtutor.draw import check_alpha, colorize, overlay, to_uint8_rgb
from camtutor.errors import CamTutorError, ImageError, ModelError
from camtutor import inputs as _inputs
from camtutor.inputs import check_images, resize_images
from camtutor.layers import conv_layers, find_layer, gap_dense_head, is_spatial, layer_name
from camtutor.methods import REGISTRY, default_score

# Calls go through the module so tests can count them (monkeypatch _explain.grad_cam_all_classes).
from camtutor import explain as _explain  # noqa: E402



def explorer_methods() -> dict[str, str]:
    """name -> label of the methods an explorer built now offers: every registry entry with a map at a layer's
    resolution, methods registered at run time included (Guided Grad-CAM is at input resolution and one class
    at a time: call ``camtutor.explain.guided_gradcam``)."""
    return {name: entry.label for name, entry in REGISTRY.items() if not entry.input_gradient}

MAX_PANEL_SIZE = 2048  #: largest ``panel_size`` (pixels per side) the explorer draws
#: Idle time (s) after the last update before the explorer prefetches, and between prefetch steps (each
#: step is one (layer, method) map from the one compiled pass: milliseconds, so messages wait at most that).
PREFETCH_IDLE_SECONDS = 0.3
PREFETCH_NEXT_SECONDS = 0.02
_COLORBAR = to_uint8_rgb(colorize(np.linspace(1.0, 0.0, 256, dtype=np.float32)[:, None]))


# --------------------------------------------------------------------------- pictures -> PNG bytes
def png_bytes(rgb: np.ndarray) -> bytes:
    """An RGB uint8 image (H, W, 3) -> PNG file bytes (OpenCV writes BGR, so channels are swapped first)."""
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:  # pragma: no cover - cv2 encodes any uint8 (H, W, 3)
        raise ImageError(f"could not encode an image of shape {rgb.shape} as PNG")
    return encoded.tobytes()


def _enlarge(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize to (height, width): every pixel / map cell stays a crisp block."""
    if rgb.shape[:2] == size:
        return rgb
    return cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)


def decode_image(data: bytes, size: int | tuple[int, int] | None = None, name: str = "upload") -> np.ndarray:
    """Uploaded file bytes -> RGB float32 (H, W, 3) in [0, 1], resized to ``size`` (int or (height, width)).

    :func:`camtutor.images.decode_image` (EXIF orientation applied, pixel limit checked from the
    header, nothing printed) with the upload's wording: raises :class:`camtutor.ImageError`
    naming the file for anything it cannot read.
    """
    try:
        return _images.decode_image(data, name=name, size=size)
    except ImageError as error:
        raise ImageError(
            f"could not read {name!r} as an image: upload a PNG, JPEG, BMP, TIFF or WebP file ({error})"
        ) from None


# --------------------------------------------------------------------------- what is on screen
@dataclass(frozen=True)
class Shown:
    """What the explorer currently shows; ``raw_map`` is the (h, w) map drawn, after the ReLU if it is on."""

    image_index: int
    class_index: int
    class_name: str
    layer: str
    method: str
    relu: bool
    alpha: float
    raw_map: np.ndarray
    probabilities: np.ndarray


class Explorer:
    """Explore CAM, Grad-CAM and HiResCAM maps of ``model`` on ``images`` with widgets.

    Args:
        model: a loaded Keras image classifier (B, H, W, C) -> (B, C) (not a name: ``ct.models.load(name)``).
        images: (N, H, W, C) float in [0, 1] at the model's input size, channels last (a single (H, W, C)
            image is accepted); checked by :func:`camtutor.inputs.check_images`, which warns once about 0..255 data.
        class_names: one name per class (default "class 0", "class 1", ...).
        layer: the layer shown first (default: the last feature-map layer).
        method: a key of :func:`explorer_methods`: every registry method that gives a map at the layer's
            resolution ("gradcam" by default; a method registered later is listed too). Methods with extra
            passes (Score-CAM, Ablation-CAM) run K x N of them: the note says they are computing,
            and they are computed once per layer for every class (never prefetched); inside a kernel they
            run in a worker thread, so class and image switches are answered meanwhile, and the map is drawn
            when it is ready. Switching class is always instant: it only indexes the cache.
        alpha: the heatmap's opacity in [0, 1].
        panel_size: side in pixels of each picture on screen, 1 to :data:`MAX_PANEL_SIZE`.
        upload: add a file-upload button that appends the reader's images: decoded as displayed (EXIF
            orientation applied, :func:`camtutor.images.decode_image`) and made model-ready by
            :func:`camtutor.images.prepare_images` (resized, grey for a 1-channel model).
        prefetch: while the kernel is idle, compute the other layers of the method on screen, nearest
            first, then the other one-pass methods at the layer on screen, so that moving the layer slider
            later is instant: one short step at a time on the kernel's own event loop (never in a thread),
            so a message that arrives meanwhile waits for one step at most; off outside a running kernel.

    Display it as the last expression of a cell (or ``display(explorer)``);
    ``explorer.widget`` is the ipywidgets box. Controls are public attributes
    (``image_slider``, ``class_dropdown``, ``layer_slider``, ``method_buttons``,
    ``relu_checkbox``, ``alpha_slider``), and :meth:`state` returns the
    :class:`Shown` map and parameters.

    Raises:
        camtutor.CamTutorError: a model name instead of a model, ``alpha`` outside [0, 1] or NaN, a
            ``panel_size`` that is not a positive int, images of different sizes, channels-first images,
            images not at the model's input size (each message names the fix).
    """

    def __init__(
        self,
        model: keras.Model,
        images: np.ndarray,
        class_names: Sequence[str] | None = None,
        *,
        layer: str | None = None,
        method: str = "gradcam",
        alpha: float = 0.4,
        panel_size: int = 192,
        upload: bool = False,
        prefetch: bool = True,
    ) -> None:
        _check_arguments(model, alpha, panel_size)
        self.model = model
        self.input_size = _input_size(model)
        self.images = self._check_images(images)
        # 1x1 feature maps give one value per image, not a map: the explorer offers only layers with a map.
        self.layers = [name for name in conv_layers(model) if is_spatial(find_layer(model, name))]
        if not self.layers:
            raise ModelError(
                f"model {model.name!r} has no layer with a spatial (B, h, w, K) output (h*w > 1); the explorer "
                "needs a conv net whose feature maps have more than one position"
            )
        info = _explain.explainer(model).info
        # A softmax hidden inside a custom layer leaves no pre-activation score: explain the probability then
        # (methods.default_score, the one rule the command follows too).
        self.logits_reachable = info.logits_reachable
        self.score = default_score(None, info.logits_reachable)
        self.method_labels = explorer_methods()  # read now: a method registered later is in a new explorer
        if class_names is None:
            class_names = [f"class {i}" for i in range(info.num_classes)]
        if len(class_names) != info.num_classes:
            raise CamTutorError(
                f"got {len(class_names)} class names for a model with {info.num_classes} classes; pass one name per class"
            )
        self.class_names = [str(name) for name in class_names]
        try:
            self.cam_layer: str | None = layer_name(model, gap_dense_head(model).feature_layer)
            self.cam_note = ""
        except ModelError as error:
            self.cam_layer = None
            self.cam_note = (
                f"CAM is not available for this model, so it is hidden; Grad-CAM and HiResCAM work at any layer. "
                f"({error})"
            )
        self.panel_size = int(panel_size)
        self.compute_calls = 0
        self._cache: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        self._pass = None  # explain.LayerPass for these images, False when too large, None before it is computed
        self._computing: dict[tuple[str, str], object] = {}  # (layer, method) -> future of a background computation
        self._generation = 0  # counts image changes: a background result for older images is dropped
        self._shown: Shown | None = None
        self._quiet = False
        self.prefetch = prefetch
        self._prefetch_pending = False
        self._unavailable: set[tuple[str, str]] = set()
        self._build_widgets(layer, method, alpha, upload)
        self._render()

    # ---------------------------------------------------------------- construction
    def _check_images(self, images: np.ndarray) -> np.ndarray:
        """camtutor.inputs.check_images (the one batch check, with its range warning); one (H, W, C) image is a batch of 1."""
        shape = tuple(self.model.inputs[0].shape)
        if isinstance(images, np.ndarray) and images.ndim == 3 and images.shape[-1] in (1, 3, shape[-1]):
            images = images[None]
        array = check_images(images, shape, model=self.model)
        if hasattr(self, "images") and array.shape[1:] != self.images.shape[1:]:
            raise ImageError(
                f"the new images are {array.shape[1]}x{array.shape[2]} but the explorer's are "
                f"{self.images.shape[1]}x{self.images.shape[2]}; resize them first with "
                f"camtutor.resize_images(images, {tuple(self.images.shape[1:3])})"
            )
        return array

    def _build_widgets(self, layer: str | None, method: str, alpha: float, upload: bool) -> None:
        methods = [(label, m) for m, label in self.method_labels.items() if not REGISTRY[m].gap_layer or self.cam_layer]
        if method not in dict((v, k) for k, v in methods):
            raise CamTutorError(f"method must be one of {[v for _, v in methods]} for this model, got {method!r}")
        if layer is not None and layer not in self.layers:
            raise CamTutorError(f"layer {layer!r} is not a feature-map layer; choose one of {self.layers}")
        wide = {"description_width": "70px"}
        self.image_slider = widgets.IntSlider(
            value=0, min=0, max=len(self.images) - 1, description="image", continuous_update=False, style=wide
        )
        self.class_dropdown = widgets.Dropdown(options=[(n, i) for i, n in enumerate(self.class_names)],
                                               description="class", style=wide)
        self.layer_slider = widgets.SelectionSlider(
            options=self.layers, value=layer or self.layers[-1], description="layer", continuous_update=False,
            style=wide, layout=widgets.Layout(width="420px"),
        )
        self.method_buttons = widgets.ToggleButtons(options=methods, value=method, description="method", style=wide)
        self.relu_checkbox = widgets.Checkbox(value=True, description="ReLU on the map", indent=False)
        self.alpha_slider = widgets.FloatSlider(
            value=alpha, min=0.0, max=1.0, step=0.05, description="opacity", continuous_update=True, style=wide
        )
        side = self.panel_size
        picture = {"width": f"{side}px", "height": f"{side}px"}
        self.image_panel = widgets.Image(format="png", layout=widgets.Layout(**picture))
        self.map_panel = widgets.Image(format="png", layout=widgets.Layout(**picture))
        self.overlay_panel = widgets.Image(format="png", layout=widgets.Layout(**picture))
        self.colorbar_panel = widgets.Image(
            value=png_bytes(_enlarge(_COLORBAR, (side, 12))), format="png",
            layout=widgets.Layout(width="12px", height=f"{side}px"),
        )
        self.max_label = widgets.HTML()
        self.min_label = widgets.HTML()
        self.title = widgets.HTML()
        self.note = widgets.HTML(value=self._cam_hint())
        bar = widgets.VBox([self.max_label, self.colorbar_panel, self.min_label],
                           layout=widgets.Layout(align_items="flex-start"))
        captioned = [
            widgets.VBox([widgets.HTML("<b>image</b>"), self.image_panel]),
            widgets.VBox([widgets.HTML("<b>raw map (layer resolution)</b>"), self.map_panel]),
            widgets.VBox([widgets.HTML("&nbsp;"), bar]),
            widgets.VBox([widgets.HTML("<b>overlay</b>"), self.overlay_panel]),
        ]
        controls = [
            widgets.HBox([self.image_slider, self.class_dropdown]),
            widgets.HBox([self.layer_slider, self.relu_checkbox]),
            self.method_buttons,
            self.alpha_slider,
        ]
        self.upload_button = None
        if upload:
            self.upload_button = widgets.FileUpload(accept="image/*", multiple=False, description="your image")
            self.upload_button.observe(self._on_upload, names="value")
            controls.append(self.upload_button)
        self.widget = widgets.VBox(
            [*controls, self.title, widgets.HBox(captioned), self.note],
            layout=widgets.Layout(border="1px solid #ddd", padding="6px"),
        )
        for element, name in [(self.widget, "explorer"), (self.image_panel, "image"), (self.map_panel, "map"),
                              (self.overlay_panel, "overlay"), (self.title, "title"), (self.note, "note"),
                              (self.class_dropdown, "class"), (self.layer_slider, "layer"),
                              (self.image_slider, "image-index")]:
            element.add_class(f"camtutor-{name}")  # stable CSS hooks for browser tests and custom styling
        for control in (self.image_slider, self.class_dropdown, self.layer_slider, self.method_buttons,
                        self.relu_checkbox):
            control.observe(self._on_change, names="value")
        self.alpha_slider.observe(self._on_alpha, names="value")

    def _cam_hint(self) -> str:
        if self.cam_layer is None:
            return f"<small>{html.escape(self.cam_note)}</small>"
        return f"<small>CAM is defined only at the layer that feeds global average pooling ({self.cam_layer}).</small>"

    # ---------------------------------------------------------------- computing (cached)
    def maps(self, layer: str, method: str) -> tuple[np.ndarray, np.ndarray]:
        """Raw maps without ReLU (N, C, h, w) and probabilities (N, C) for every image and class, cached."""
        key = (layer, method)
        if key not in self._cache:
            self.compute_calls += 1
            if REGISTRY[method].extra_passes:  # seconds, not milliseconds: say so while it runs
                self.note.value = self._computing_note(layer, method)
            self._cache[key] = self._compute(layer, method)
        return self._cache[key]

    def _computing_note(self, layer: str, method: str) -> str:
        return (f"<i>computing {html.escape(REGISTRY[method].label)} at layer {html.escape(layer)} for every image "
                f"and class ({len(self.images)} images x its channels)...</i>")

    def _compute(self, layer: str, method: str, quiet: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The maps of one (layer, method), uncached; touches no widget (it may run in a worker thread, then
        with ``quiet=False``: ``warnings.catch_warnings`` is not thread-safe, so a 0..255 warning may repeat)."""
        with warnings.catch_warnings() if quiet else contextlib.nullcontext():
            if quiet:  # the range warning was given once, when the images came in
                warnings.filterwarnings("ignore", message=_inputs.RANGE_WARNING_START, category=UserWarning)
            entry = REGISTRY[method]
            # a GAP-layer method (CAM) needs one forward pass at one layer: it uses the pass only when another
            # method computed it; extra-pass methods never can
            wanted = not entry.extra_passes and (not entry.gap_layer or self._pass)
            layer_pass = self._layer_pass() if wanted else None
            if layer_pass is not None:  # every layer of every one-pass method, from one compiled call
                maps, probabilities = layer_pass.maps(layer, method)
            else:
                maps, probabilities = _explain.heatmap_all_classes(
                    self.model, self.images, method=method, layer=layer, relu=False,
                    score=default_score(entry, self.logits_reachable))
        return np.asarray(maps, dtype=np.float32), np.asarray(probabilities, dtype=np.float32)

    def _in_background(self, layer: str, method: str) -> bool:
        """Inside a running kernel, compute a slow method's (layer, method) in a worker thread and return True:
        the kernel stays free (class and image switches are served meanwhile) and the panels say it is
        computing; when it is done the explorer redraws if it is still on screen. False outside a loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # plain Python, tests: compute now, in this thread
            return False
        key = (layer, method)
        if key not in self._computing:
            generation = self._generation
            future = loop.run_in_executor(None, self._compute, layer, method, False)
            self._computing[key] = future
            future.add_done_callback(lambda done: self._computed(key, generation, done))
        return True

    def _computed(self, key: tuple[str, str], generation: int, future) -> None:
        """Back on the kernel's loop: cache a background result and redraw if (layer, method) is on screen."""
        self._computing.pop(key, None)
        if generation != self._generation:  # the images changed meanwhile: this result is for the old ones
            return
        on_screen = (self.layer_slider.value, self.method_buttons.value) == key
        try:
            result = future.result()
        except Exception as error:  # noqa: BLE001 - shown like any failed computation
            if on_screen:
                self._blank(f"cannot compute {self.method_labels[key[1]]} at layer {key[0]!r}: "
                            f"{type(error).__name__}: {error}")
            return
        self.compute_calls += 1
        self._cache[key] = result
        if on_screen:
            self._render()

    def _layer_pass(self):
        """The explorer's one compiled computation (:func:`camtutor.explain.layer_pass`): feature maps and
        every class's gradient at every layer, for all images, computed once per image set. None when it
        does not fit in :data:`camtutor.explain.LAYER_PASS_VALUES` (then each layer is computed on its own)."""
        if self._pass is None:
            layers = list(self.layers)
            if self.cam_layer is not None and self.cam_layer not in layers:
                layers.append(self.cam_layer)
            try:
                self._pass = _explain.layer_pass(self.model, self.images, layers, score=self.score)
            except CamTutorError:
                self._pass = False
        return self._pass or None

    def prefetch_step(self) -> bool:
        """Compute one missing cache entry while the kernel is idle: first the layer nearest to the one on
        screen for the method on screen, then the other one-pass methods at the layer on screen (so that
        switching method is instant too). Score-CAM and Ablation-CAM are never prefetched (seconds each).
        Returns False when there is nothing left to compute."""
        method, layer_here = self.method_buttons.value, self.layer_slider.value
        here = self.layers.index(layer_here)
        wanted = []
        if not REGISTRY[method].gap_layer and not REGISTRY[method].extra_passes:
            wanted += sorted(((layer, method) for layer in self.layers),
                             key=lambda key: abs(self.layers.index(key[0]) - here))
        for _, other in self.method_buttons.options:
            if not REGISTRY[other].gap_layer and not REGISTRY[other].extra_passes:
                wanted.append((layer_here, other))
        missing = [key for key in wanted if key not in self._cache and key not in self._unavailable]
        if not missing:
            return False
        try:
            self.maps(*missing[0])
        except CamTutorError:
            self._unavailable.add(missing[0])
        return True

    def _schedule_prefetch(self) -> None:
        if not self.prefetch or self._prefetch_pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not inside a running kernel (plain Python, tests): nothing to do
            return
        self._prefetch_pending = True
        loop.call_later(PREFETCH_IDLE_SECONDS, self._prefetch_when_idle)

    def _prefetch_when_idle(self) -> None:
        try:
            more = self.prefetch_step()
        except Exception:  # noqa: BLE001 - a background nicety must never break the kernel
            self._prefetch_pending = False
            self.prefetch = False
            return
        if more:  # the next step soon, but after any message that arrived meanwhile (a class switch first)
            delay = PREFETCH_NEXT_SECONDS if self._pass else PREFETCH_IDLE_SECONDS  # traced per layer: seconds
            asyncio.get_running_loop().call_later(delay, self._prefetch_when_idle)
        else:
            self._prefetch_pending = False

    def state(self) -> Shown | None:
        """The map and parameters on screen now (None if the last update failed and the panels are blank)."""
        return self._shown

    @property
    def pending(self) -> bool:
        """True while work is scheduled: an idle prefetch, or a slow method computing in a worker thread."""
        return self._prefetch_pending or bool(self._computing)

    def cached(self) -> set[tuple[str, str]]:
        """The (layer, method) pairs whose maps are computed: showing one of them runs nothing."""
        return set(self._cache)

    async def wait(self, timeout: float = 30.0) -> None:
        """Inside a running loop (a kernel, a test): return when :attr:`pending` is False, checking every 50 ms;
        :class:`camtutor.CamTutorError` after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.pending:
            if loop.time() > deadline:
                raise CamTutorError(f"the explorer was still busy after {timeout} s")
            await asyncio.sleep(0.05)

    # ---------------------------------------------------------------- events
    def _on_change(self, change) -> None:
        if not self._quiet:
            self._render()

    def _on_alpha(self, change) -> None:
        if self._shown is not None and not self._quiet:
            self._draw_overlay(self._shown)

    def _on_upload(self, change) -> None:
        files = change["new"]
        if not files:
            return
        item = files[-1]
        name = item.get("name", "upload")
        try:
            image = decode_image(item["content"], None, name)  # as displayed: EXIF orientation applied
            if self.input_size is None:  # a model of any size: match the explorer's images
                image = resize_images(image, tuple(self.images.shape[1:3]))
            ready = _images.prepare_images([image], self.model)  # resize + channels, as the command does
        except CamTutorError as error:
            self.note.value = f"<span style='color:#b00'>{html.escape(str(error))}</span>"
            return
        self.add_images(ready)

    def add_images(self, images: np.ndarray) -> None:
        """Append images (N, H, W, 3) and show the first new one (the cache is recomputed on demand)."""
        new = self._check_images(images)
        self.images = np.concatenate([self.images, new])
        self._cache.clear()
        self._pass = None
        self._computing.clear()
        self._generation += 1
        self._unavailable.clear()
        self._quiet = True
        try:
            self.image_slider.max = len(self.images) - 1
            self.image_slider.value = len(self.images) - len(new)
        finally:
            self._quiet = False
        self.note.value = self._cam_hint()
        self._render()

    # ---------------------------------------------------------------- drawing
    def _sync_method_and_layer(self) -> None:
        """CAM exists only at the GAP feature layer: pin the layer slider there while CAM is chosen."""
        cam = REGISTRY[self.method_buttons.value].gap_layer
        self._quiet = True
        try:
            if cam and self.layer_slider.value != self.cam_layer:
                self.layer_slider.value = self.cam_layer
            self.layer_slider.disabled = cam
        finally:
            self._quiet = False

    def _sync_class_labels(self, probabilities: np.ndarray) -> None:
        labels = [(f"{name} ({p:.2f})", i) for i, (name, p) in enumerate(zip(self.class_names, probabilities))]
        if list(self.class_dropdown.options) != labels:
            chosen = self.class_dropdown.value
            self._quiet = True
            try:
                self.class_dropdown.options = labels
                self.class_dropdown.value = chosen
            finally:
                self._quiet = False

    def _render(self) -> None:
        self._sync_method_and_layer()
        index, layer, method = self.image_slider.value, self.layer_slider.value, self.method_buttons.value
        if (layer, method) not in self._cache and REGISTRY[method].extra_passes and self._in_background(layer, method):
            self._blank("", note=self._computing_note(layer, method))
            self.title.value = f"<b>computing {html.escape(self.method_labels[method])}…</b>"
            self.image_panel.value = png_bytes(_enlarge(to_uint8_rgb(self.images[index]), (self.panel_size,) * 2))
            return
        try:
            maps, probabilities = self.maps(layer, method)
        except Exception as error:  # noqa: BLE001 - whatever failed, the old map must not stay on screen
            self._blank(f"cannot compute {self.method_labels[method]} at layer {layer!r}: {type(error).__name__}: {error}")
            return
        self._sync_class_labels(probabilities[index])
        klass, relu = self.class_dropdown.value, self.relu_checkbox.value
        raw = maps[index, klass]
        shown_map = np.maximum(raw, 0.0) if relu else raw
        shown = Shown(index, klass, self.class_names[klass], layer, method, relu, float(self.alpha_slider.value),
                      shown_map, probabilities[index])
        side = self.panel_size
        h, w = shown_map.shape
        self.image_panel.value = png_bytes(_enlarge(to_uint8_rgb(self.images[index]), (side, side)))
        self.map_panel.value = png_bytes(_enlarge(colorize(shown_map), (side, side)))
        self.max_label.value = f"<small>{float(shown_map.max()):.3g}</small>"
        self.min_label.value = f"<small>{float(shown_map.min()):.3g}</small>"
        self.title.value = (
            f"<b>{html.escape(shown.class_name)}</b> (p = {probabilities[index, klass]:.3f}) · "
            f"layer <b>{html.escape(layer)}</b> ({h}×{w}) · {self.method_labels[method]} · "
            f"ReLU {'on' if relu else 'off'} · image {index}"
        )
        self._draw_overlay(shown)
        self._shown = shown
        self.note.value = self._cam_hint()  # clears an earlier error message
        self._schedule_prefetch()

    def _draw_overlay(self, shown: Shown) -> None:
        alpha = float(self.alpha_slider.value)
        blended = overlay(self.images[shown.image_index], shown.raw_map, alpha=alpha)
        self.overlay_panel.value = png_bytes(_enlarge(blended, (self.panel_size, self.panel_size)))
        if shown.alpha != alpha:
            self._shown = replace(shown, alpha=alpha)

    def _blank(self, message: str, note: str | None = None) -> None:
        """Never leave a stale map on screen: clear the map panels and say why (``note``: HTML instead)."""
        self._shown = None
        self.map_panel.value = b""
        self.overlay_panel.value = b""
        self.max_label.value = self.min_label.value = ""
        self.title.value = "<b>no map</b>"
        self.note.value = note if note is not None else f"<span style='color:#b00'>{html.escape(message)}</span>"

    # ---------------------------------------------------------------- static figure
    def figure(self, image_index: int | None = None, *, method: str | None = None, relu: bool | None = None,
               size: float = 1.4):
        """A matplotlib grid of overlays, classes (rows) x layers (columns), for one image.

        Uses (and fills) the same cache as the widgets; defaults to what is on screen.
        """
        import matplotlib.pyplot as plt

        index = self.image_slider.value if image_index is None else int(image_index)
        method = self.method_buttons.value if method is None else method
        relu = self.relu_checkbox.value if relu is None else relu
        columns = [self.cam_layer] if REGISTRY[method].gap_layer else self.layers
        fig, axes = plt.subplots(len(self.class_names), len(columns) + 1,
                                 figsize=(size * (len(columns) + 1), size * len(self.class_names)), squeeze=False)
        for row, name in enumerate(self.class_names):
            axes[row, 0].imshow(to_uint8_rgb(self.images[index]), interpolation="nearest")
            for column, layer in enumerate(columns, start=1):
                maps, probabilities = self.maps(layer, method)
                raw = maps[index, row]
                axes[row, column].imshow(overlay(self.images[index], np.maximum(raw, 0.0) if relu else raw),
                                         interpolation="nearest")
                if row == 0:
                    axes[row, column].set_title(f"{layer}\n{raw.shape[0]}×{raw.shape[1]}", fontsize=8)
            axes[row, 0].set_title(f"{name} ({probabilities[index, row]:.2f})", fontsize=8)
        for ax in axes.flat:
            ax.axis("off")
        fig.suptitle(f"{self.method_labels[method]}, ReLU {'on' if relu else 'off'}: classes × layers (each panel normalised on its own)", fontsize=10)
        fig.tight_layout()
        return fig

    # ---------------------------------------------------------------- display
    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        return f"<camtutor Explorer: {len(self.images)} images, {len(self.class_names)} classes, layers {self.layers}>"


def _check_arguments(model: object, alpha: object, panel_size: object) -> None:
    """Refuse a model name, an opacity outside [0, 1] or NaN, and a panel size that is not a positive int."""
    if isinstance(model, str):
        raise CamTutorError(
            f"model must be a loaded Keras model, got the string {model!r}; load it first with "
            f"ct.models.load({model!r}) (a bundled model) or ct.load_model(path) (a .keras file)"
        )
    if not isinstance(model, keras.Model):
        raise ModelError(
            f"model must be a Keras model, got {type(model).__name__}; load one with ct.models.load(name) "
            "or ct.load_model(path)"
        )
    check_alpha(alpha)
    if isinstance(panel_size, (bool, np.bool_)) or not isinstance(panel_size, (int, np.integer)) or not (
        1 <= panel_size <= MAX_PANEL_SIZE
    ):
        raise CamTutorError(
            f"panel_size must be an int from 1 to {MAX_PANEL_SIZE} (pixels per side of each picture), "
            f"got {panel_size!r}; e.g. panel_size=192"
        )


def _input_size(model: keras.Model) -> tuple[int, int] | None:
    shape = tuple(model.inputs[0].shape)
    if len(shape) == 4 and shape[1] is not None and shape[2] is not None:
        return int(shape[1]), int(shape[2])
    return None
