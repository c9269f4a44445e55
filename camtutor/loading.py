"""Load a model to explain, safely: a bundled name or a ``.keras`` file, and prepare images for it.

``load_model`` never runs code stored in a file and never unpickles anything:
``.keras`` files are read with ``keras.saving.load_model(path, safe_mode=True,
compile=False)`` (a JSON config plus HDF5 weights). Legacy HDF5 (``.h5``) files
and TensorFlow SavedModel folders are refused with the one-line fix: load them
yourself in trusted code and ``model.save("model.keras")``.

Before Keras sees a ``.keras`` file, camtutor inspects it without allocating anything
(:func:`check_keras_archive`): the file must be a regular file (a FIFO or a device is
refused at once, never read), its zip entries must declare sane sizes (no zip bombs), and
its ``config.json`` (read with a size bound) must not declare more than the budgets below:

* :data:`MAX_CONFIG_BYTES` for ``config.json``, :data:`MAX_ARCHIVE_BYTES` for all entries;
* :data:`MAX_TENSOR_VALUES` values per image in any declared tensor shape (inputs, and the shapes
  recorded between layers), :data:`MAX_SIDE` for any one declared side, kernel, pool, stride,
  padding or upsampling size;
* :data:`MAX_PARAMETERS` parameters, counted from below from the declared layer sizes
  (Dense ``units``, Conv ``filters`` x kernel area, Embedding ``input_dim x output_dim``...),
  and never more than 4 parameters per byte of the weights file (float32 takes 4 bytes each).

``preprocess`` maps camtutor's image convention (RGB float32 in [0, 1]) to
what a ``keras.applications`` model expects: its ``preprocess_input`` applied
to 0-255 values.

This module imports Keras only when a model is loaded or an image preprocessed, so the
command line can read :data:`PREPROCESSING` for its ``--help`` without TensorFlow.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import stat
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from camtutor.errors import ImageError, ModelError

if TYPE_CHECKING:  # pragma: no cover
    import keras
    import numpy as np

__all__ = [
    "PREPROCESSING", "load_model", "model_class_names", "preprocess", "is_model_path", "check_keras_archive",
    "check_model_config", "special_file_kind", "file_problem",
    "MAX_CONFIG_BYTES", "MAX_ARCHIVE_BYTES", "MAX_PARAMETERS", "MAX_TENSOR_VALUES", "MAX_SIDE", "MAX_ENTRIES",
]

_SAVE_FIX = "load it in your own (trusted) Python code and save it with model.save('model.keras')"
_RESAVE = "save the model again with model.save('model.keras')"

#: Largest ``config.json`` read (declared and actual size): 64 MiB. Real configs are kilobytes to a few MB.
MAX_CONFIG_BYTES = 64 * 2**20
#: Largest sum of the declared (uncompressed) sizes of a ``.keras`` archive's entries: 4 GiB.
MAX_ARCHIVE_BYTES = 4 * 2**30
#: Most parameters a model file may declare: 500 million (2 GB of float32; VGG19 has 144 million).
MAX_PARAMETERS = 500_000_000
#: Most values per image of any declared tensor shape (an input, or a shape recorded between layers): 2**28
#: (1 GiB of float32; a 224 x 224 x 3 input is 150528 values, its first 112 x 112 x 64 feature map 802816).
MAX_TENSOR_VALUES = 2**28
#: Largest single declared side, kernel, pool, stride or upsampling size: 32768.
MAX_SIDE = 2**15
#: Most entries in a ``.keras`` archive.
MAX_ENTRIES = 100_000

#: ``--preprocess`` choice -> (keras.applications module, what it does to 0-255 RGB).
PREPROCESSING: dict[str, tuple[str | None, str]] = {
    "none": (None, "RGB float in [0, 1], unchanged (camtutor's bundled models)"),
    "scale255": (None, "RGB float in [0, 255] (models that preprocess inside, e.g. EfficientNet, ConvNeXt)"),
    "mobilenet": ("mobilenet", "scaled to [-1, 1]"),
    "mobilenet_v2": ("mobilenet_v2", "scaled to [-1, 1]"),
    "inception_v3": ("inception_v3", "scaled to [-1, 1]"),
    "xception": ("xception", "scaled to [-1, 1]"),
    "resnet_v2": ("resnet_v2", "scaled to [-1, 1]"),
    "vgg16": ("vgg16", "'caffe': RGB -> BGR, ImageNet mean subtracted"),
    "vgg19": ("vgg19", "'caffe': RGB -> BGR, ImageNet mean subtracted"),
    "resnet50": ("resnet50", "'caffe': RGB -> BGR, ImageNet mean subtracted"),
    "densenet": ("densenet", "'torch': scaled to [0, 1], ImageNet mean/std normalised"),
}

_FUNCTIONAL_FIX = (
    "rebuild it with the Functional API (inputs = keras.Input((H, W, C)); x = ...your layers...; "
    "model2 = keras.Model(inputs, outputs)), copy the weights with model2.set_weights(model.get_weights()) "
    "and save that with model2.save('model.keras')"
)


def is_model_path(name_or_path: str | Path) -> bool:
    """True when ``name_or_path`` is a file path rather than a bundled model name.

    A ``Path``, or text with a slash or a dot, is a path; a bundled name is a name even if a
    file or folder of that name happens to exist in the working directory.
    """
    if isinstance(name_or_path, Path):
        return True
    text = str(name_or_path)
    if any(mark in text for mark in ("/", "\\", ".")):
        return True
    from camtutor import models

    return text not in models.available() and Path(text).expanduser().exists()


def _bundled(name: str) -> keras.Model:
    from camtutor import models

    if name not in models.available():
        raise ModelError(
            f"unknown model {name!r}: not a bundled model ({', '.join(models.available())}) and not a path; "
            "pass a bundled name or the path of a .keras file"
        )
    return models.load(name)


_SPECIAL_FILES = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def special_file_kind(mode: int) -> str | None:
    """'a named pipe (FIFO)', 'a character device'... for an ``os.stat`` mode that is no regular file or folder."""
    for test, kind in _SPECIAL_FILES:
        if test(mode):
            return kind
    return None if stat.S_ISREG(mode) or stat.S_ISDIR(mode) else "not a regular file"


def file_problem(path: Path, what: str) -> str | None:
    """Why ``path`` cannot be read as a ``what`` file (missing, a folder, a FIFO, a device, empty), or None.

    Only ``os.stat`` is used: the file is never opened, so a FIFO cannot block. Shared by image, labels
    and command-line checks (one place for "is this a regular, non-empty file?").
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return f"no such {what} file: '{path}'; check the path and the current working directory"
    except OSError as exc:
        return f"cannot read the {what} file '{path}': {exc.strerror or exc}"
    if stat.S_ISDIR(info.st_mode):
        return f"'{path}' is a folder (directory), not a file; pass {what} files (e.g. folder/*.png, not folder)"
    kind = special_file_kind(info.st_mode)
    if kind is not None:
        return f"'{path}' is {kind}, not a regular {what} file; pass a regular file"
    if info.st_size == 0:
        return f"'{path}' is an empty file (0 bytes); re-save or re-download it"
    return None


def _check_keras_file(path: Path) -> None:
    """Refuse anything that is not an existing, regular ``.keras`` file, naming the fix. Never opens it."""
    shown = str(path)
    try:
        mode = path.stat().st_mode  # follows symlinks; never opens the file (a FIFO would block)
    except FileNotFoundError:
        raise ModelError(f"no such model file: '{shown}'; check the path (a bundled name needs no path)") from None
    except OSError as exc:
        raise ModelError(f"cannot read the model file '{shown}': {exc.strerror or exc}; check the path") from None
    kind = special_file_kind(mode)
    if kind is not None:
        raise ModelError(f"'{shown}' is {kind}, not a model file; pass the path of a .keras file")
    if stat.S_ISDIR(mode):
        if (path / "saved_model.pb").exists():
            raise ModelError(
                f"'{shown}' is a TensorFlow SavedModel folder, which camtutor cannot explain safely; {_SAVE_FIX}"
            )
        raise ModelError(f"'{shown}' is a folder, not a model file; pass the path of a .keras file")
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        raise ModelError(f"'{shown}' is a legacy HDF5 model file, which camtutor does not load; {_SAVE_FIX}")
    if suffix != ".keras":
        raise ModelError(f"'{shown}' is not a .keras file (suffix {suffix or 'none'!r}); {_SAVE_FIX}")
    if path.stat().st_size == 0:
        raise ModelError(f"'{shown}' is an empty file (0 bytes); {_RESAVE}")


# --------------------------------------------------------------------------- hostile archives
def _count(value: object, shown: str, key: str) -> int | None:
    """A declared size as an int; None when it is not a number (Keras judges those)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ModelError(f"'{shown}' declares a non-finite {key} ({value}); {_RESAVE}")
        value = int(value)
    return value


def _counts(value: object, shown: str, key: str) -> list[int]:
    """The numbers in a declared size: 3 -> [3]; [3, 3] -> [3, 3]; [[1, 1], [2, 2]] -> [1, 1, 2, 2]."""
    if isinstance(value, (list, tuple)):
        return [n for item in value for n in _counts(item, shown, key)]
    number = _count(value, shown, key)
    return [] if number is None else [number]


def _shapes(value: object) -> Iterator[list]:
    """Declared shapes: [None, 32, 32, 3] -> itself; [[None, 8], [None, 4]] (several inputs) -> each."""
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(item, (list, tuple)) for item in value):
            for item in value:
                yield from _shapes(item)
        elif all(item is None or isinstance(item, (int, float)) for item in value):
            yield list(value)


def _nodes(config: object) -> Iterator[dict]:
    """Every ``{"class_name": ..., "config": {...}}`` object of a Keras config, nested models included."""
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("class_name"), str) and isinstance(node.get("config"), dict):
                yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


_SHAPE_KEYS = ("batch_shape", "batch_input_shape", "input_shape", "shape", "target_shape")
_SIDE_KEYS = ("kernel_size", "pool_size", "strides", "size", "dilation_rate", "padding", "cropping")


def _input_width(node: dict, shown: str) -> int:
    """The last dimension of a layer's input, as recorded in the file (build_config, or the tensor
    shapes of its inbound nodes); 1 when the file does not say."""
    build = node.get("build_config")
    sources = [build.get("input_shape")] if isinstance(build, dict) else []
    sources += [tensor["config"].get("shape") for tensor in _nodes(node.get("inbound_nodes"))
                if tensor.get("class_name") == "__keras_tensor__"]
    for source in sources:
        for shape in _shapes(source):
            width = _count(shape[-1], shown, "input shape") if shape else None
            if width is not None and width > 0:
                return width
    return 1


def _lower_bound_parameters(node: dict, shown: str) -> int:
    """Fewest parameters a layer's config implies (weights only, no bias): a lower bound, never a guess.

    Dense: units x input width; Conv: filters x kernel area x input channels / groups; DepthwiseConv:
    depth_multiplier x kernel area x input channels; SeparableConv: depth_multiplier x input channels x
    (kernel area + filters); Embedding: input_dim x output_dim;
    MultiHeadAttention: num_heads x key_dim x input width. The input width comes from the shapes
    recorded in the file (1 when none is recorded).
    """
    config = node["config"]

    def one(key: str) -> int | None:
        return _count(config.get(key), shown, key)

    kernel = math.prod(_counts(config.get("kernel_size", 1), shown, "kernel_size") or [1])
    if one("input_dim") is not None and one("output_dim") is not None:  # Embedding
        return one("input_dim") * one("output_dim")
    width = _input_width(node, shown)
    if one("filters") is not None and one("depth_multiplier") is not None:  # SeparableConv: depthwise + 1x1
        return one("depth_multiplier") * width * (kernel + one("filters"))
    if one("filters") is not None:  # a grouped convolution sees input channels / groups per filter
        return one("filters") * kernel * max(1, width // max(1, one("groups") or 1))
    if one("depth_multiplier") is not None and "kernel_size" in config:
        return one("depth_multiplier") * kernel * width
    if one("num_heads") is not None and one("key_dim") is not None:
        return one("num_heads") * one("key_dim") * width
    return (one("units") or 0) * width  # Dense, recurrent layers


def check_model_config(config: object, shown: str, weights_bytes: int | None = None) -> int:
    """Refuse a Keras ``config.json`` (parsed) whose declared sizes exceed the budgets; -> lower bound of parameters.

    Checks every declared tensor shape (inputs and the shapes recorded between layers) against
    :data:`MAX_TENSOR_VALUES` values per image and :data:`MAX_SIDE` per side, every kernel, pool, stride,
    padding and upsampling size against :data:`MAX_SIDE`, and the parameters implied by the layer
    sizes (counted from below) against :data:`MAX_PARAMETERS`, and against ``weights_bytes`` (refused
    beyond 4 parameters per byte of the weights file, plus 2**20; float32 takes 4 bytes a parameter).
    Nothing is allocated.
    """
    parameters = 0
    for node in _nodes(config):
        layer = node["config"]
        where = f"layer {layer.get('name', node['class_name'])!r} ({node['class_name']})"
        for source in (layer, node.get("build_config") if isinstance(node.get("build_config"), dict) else {}):
            for key in _SHAPE_KEYS:
                for shape in _shapes(source.get(key)):
                    dims = [_count(d, shown, key) for d in shape]
                    known = [d for d in (dims[1:] if dims and dims[0] is None else dims) if d is not None]
                    values = math.prod(known)
                    if max(known, default=0) > MAX_SIDE or values > MAX_TENSOR_VALUES:
                        raise ModelError(
                            f"'{shown}' declares a {key} of {tuple(shape)} in {where}: {values:,} values per image "
                            f"(budget {MAX_TENSOR_VALUES:,}, at most {MAX_SIDE} per side); refusing it before "
                            "anything is allocated"
                        )
        for key in _SIDE_KEYS:
            sizes = _counts(layer.get(key), shown, key)
            if sizes and max(sizes) > MAX_SIDE:
                raise ModelError(
                    f"'{shown}' declares {key}={layer.get(key)} in {where}, larger than camtutor's budget of "
                    f"{MAX_SIDE}; refusing it before anything is allocated"
                )
        count = _lower_bound_parameters(node, shown)
        if count < 0:
            raise ModelError(f"'{shown}' declares a negative size in {where}; {_RESAVE}")
        parameters += count
        if parameters > MAX_PARAMETERS:
            raise ModelError(
                f"'{shown}' declares at least {parameters:,} parameters (up to {where}), more than camtutor's "
                f"budget of {MAX_PARAMETERS:,}; refusing it before anything is allocated"
            )
    if weights_bytes is not None and parameters > 4 * weights_bytes + 2**20:
        raise ModelError(
            f"'{shown}' declares at least {parameters:,} parameters but its weights file holds only "
            f"{weights_bytes:,} bytes (Keras would allocate them before noticing): the file is inconsistent "
            f"or hostile; {_RESAVE}"
        )
    return parameters


_WEIGHTS_ENTRY = "model.weights.h5"


def check_keras_archive(path: str | Path) -> dict:
    """Inspect a ``.keras`` zip without building anything; -> its parsed ``config.json``.

    Refuses (:class:`ModelError`) a file that is not a zip archive, an archive with more than
    :data:`MAX_ENTRIES` entries or declaring more than :data:`MAX_ARCHIVE_BYTES` uncompressed (a zip
    bomb), a ``config.json`` missing, larger than :data:`MAX_CONFIG_BYTES` (declared, and read with that
    bound) or not JSON, a subclassed model (Keras cannot rebuild its graph from the file) and a config
    beyond the budgets of :func:`check_model_config`. The path must be a regular file (see
    :func:`load_model`, which checks that first).
    """
    shown = str(path)
    try:
        # O_NONBLOCK: should the path have become a FIFO since it was checked, opening it does not block
        with os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ModelError(f"'{shown}' is not a regular file; pass the path of a .keras file")
            if not zipfile.is_zipfile(handle):
                raise ModelError(f"'{shown}' is not a Keras model (a .keras file is a zip archive); {_RESAVE}")
            with zipfile.ZipFile(handle) as archive:
                entries = archive.infolist()
                if len(entries) > MAX_ENTRIES:
                    raise ModelError(f"'{shown}' holds {len(entries):,} zip entries (at most {MAX_ENTRIES:,}); "
                                     f"{_RESAVE}")
                declared = sum(entry.file_size for entry in entries)
                if declared > MAX_ARCHIVE_BYTES:
                    raise ModelError(
                        f"'{shown}' declares {declared:,} bytes once unzipped (a zip bomb?), more than camtutor's "
                        f"budget of {MAX_ARCHIVE_BYTES:,}; refusing it before anything is read"
                    )
                sizes = {entry.filename: entry.file_size for entry in entries}
                if "config.json" not in sizes:
                    raise ModelError(
                        f"'{shown}' is a zip archive without a Keras model config (config.json); {_RESAVE}"
                    )
                if sizes["config.json"] > MAX_CONFIG_BYTES:
                    raise ModelError(
                        f"'{shown}' declares a config.json of {sizes['config.json']:,} bytes (a zip bomb?), more "
                        f"than camtutor's budget of {MAX_CONFIG_BYTES:,}; refusing it before anything is read"
                    )
                with archive.open("config.json") as member:
                    raw = member.read(MAX_CONFIG_BYTES + 1)
    except ModelError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile, RuntimeError, NotImplementedError, ValueError) as exc:
        raise ModelError(
            f"could not read '{shown}' as a zip archive ({type(exc).__name__}: {exc}); {_RESAVE}"
        ) from None
    if len(raw) > MAX_CONFIG_BYTES:  # pragma: no cover - zipfile stops at the declared size
        raise ModelError(f"'{shown}' has a config.json larger than {MAX_CONFIG_BYTES:,} bytes; {_RESAVE}")
    try:
        config = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelError(
            f"'{shown}' has a config.json that is not valid JSON ({type(exc).__name__}); {_RESAVE}"
        ) from None
    if not isinstance(config, dict):
        raise ModelError(f"'{shown}' has a config.json that is not a Keras model config; {_RESAVE}")
    kind = config.get("class_name")
    if kind not in ("Functional", "Sequential"):
        raise ModelError(
            f"'{shown}' holds a subclassed model (class {kind!r}): only its Python code knows how its layers "
            "connect, so neither Keras' safe mode nor camtutor can rebuild it from the file. In your own code, "
            "wrap it as a Functional model: inputs = keras.Input((H, W, C)); "
            "keras.Model(inputs, model.call(inputs)).save('functional.keras'), then explain functional.keras"
        )
    try:
        check_model_config(config, shown, sizes.get(_WEIGHTS_ENTRY))
    except RecursionError:
        raise ModelError(f"'{shown}' has a config.json nested too deeply to be a model; {_RESAVE}") from None
    return config


_LOAD_FAILURES = (  # (test on Keras' message, what went wrong and the fix)
    (
        lambda m: "safe_mode" in m or "lambda" in m.lower(),
        "contains code (a Lambda layer or a pickled function) that camtutor refuses to run; replace the Lambda by "
        "a registered custom layer, or explain it from your own trusted Python code with camtutor.grad_cam(model, ...)",
    ),
    (
        lambda m: "Could not locate" in m or "custom" in m.lower(),
        "uses a custom layer or object that is not registered here; import the module that defines it "
        "(@keras.saving.register_keras_serializable) and explain it from Python with camtutor.grad_cam(model, ...)",
    ),
)


@contextlib.contextmanager
def _keras_name(path: Path) -> Iterator[Path]:
    """``path`` itself when it ends in ``.keras``; else (``MODEL.KERAS``) a symlink named ``model.keras`` to it.

    Keras accepts only a lower-case ``.keras`` suffix; camtutor accepts any case.
    """
    if str(path).endswith(".keras"):
        yield path
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="camtutor-") as folder:
        link = Path(folder) / "model.keras"
        try:
            link.symlink_to(path.resolve())
        except OSError as exc:
            raise ModelError(
                f"'{path}' ends in {path.suffix!r}, and Keras reads only files ending in '.keras' (could not link "
                f"it: {exc.strerror or exc}); rename it to '{path.stem}.keras'"
            ) from None
        yield link


def _load_keras_file(path: Path) -> keras.Model:
    import keras

    try:
        with _keras_name(path) as name, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = keras.saving.load_model(name, safe_mode=True, compile=False)
    except ModelError:
        raise
    except Exception as exc:  # keras raises ValueError, TypeError, KeyError, OSError... for bad files
        message = " ".join(str(exc).split())
        message = message if len(message) <= 240 else message[:240].rsplit(" ", 1)[0] + " ..."
        for matches, problem in _LOAD_FAILURES:
            if matches(message):
                raise ModelError(f"'{path}' {problem}. Keras said: {message}") from None
        raise ModelError(
            f"could not load '{path}' as a Keras model ({type(exc).__name__}: {message}); {_RESAVE}"
        ) from None
    if not isinstance(model, keras.Model):
        raise ModelError(f"'{path}' holds a {type(model).__name__}, not a keras.Model; save the whole model")
    return model


def load_model(name_or_path: str | Path) -> keras.Model:
    """A model to explain: a bundled name ("shapes", "faces"...) or the path of a ``.keras`` file.

    ``.keras`` files are loaded with ``safe_mode=True`` and ``compile=False``:
    no code from the file runs and nothing is unpickled. Before Keras reads the
    file, :func:`check_keras_archive` refuses special files (FIFO, device),
    zip bombs, subclassed models and configs beyond the size budgets of this
    module, without allocating anything. The suffix may be any case
    (``MODEL.KERAS``). The model must be an image classifier with one input
    (B, H, W, C) and one output (B, C).

    Raises:
        camtutor.errors.ModelError: unknown name, missing or special file, ``.h5`` file or
            SavedModel folder, a file that is not a Keras model, a hostile or oversized file,
            a subclassed model, a model with several inputs/outputs. Each message names the fix.
    """
    if not isinstance(name_or_path, (str, Path)) or not str(name_or_path).strip():
        raise ModelError(f"model must be a bundled name or a path to a .keras file, got {name_or_path!r}")
    if is_model_path(name_or_path):
        path = Path(name_or_path).expanduser()
        _check_keras_file(path)
        check_keras_archive(path)
        model = _load_keras_file(path)
    else:
        model = _bundled(str(name_or_path))
    from camtutor.layers import check_model

    return check_model(model)


def model_class_names(name_or_path: str | Path) -> tuple[str, ...] | None:
    """Class names of a bundled model, in output order; None for a model file (pass --labels)."""
    if is_model_path(name_or_path):
        return None
    from camtutor import models

    return tuple(models.class_names(str(name_or_path)))


def preprocess(images: np.ndarray, name: str = "none") -> np.ndarray:
    """RGB float32 images in [0, 1], (B, H, W, 3) -> what the model expects, as a new float32 array.

    ``name`` is a key of :data:`PREPROCESSING`: "none" keeps [0, 1]; "scale255"
    multiplies by 255; any other runs ``keras.applications.<name>.preprocess_input``
    on a 0-255 copy (Keras modifies float arrays in place, so the input is never touched).
    """
    import numpy as np

    if name not in PREPROCESSING:
        raise ImageError(f"unknown preprocessing {name!r}; choose one of {', '.join(PREPROCESSING)}")
    arr = np.array(images, dtype=np.float32, copy=True)
    module_name, _ = PREPROCESSING[name]
    if name == "none":
        return arr
    arr *= 255.0
    if module_name is None:
        return arr
    module = importlib.import_module(f"keras.applications.{module_name}")
    return np.asarray(module.preprocess_input(arr), dtype=np.float32)
