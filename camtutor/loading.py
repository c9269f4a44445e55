"""Load a model to explain, safely: a bundled name or a ``.keras`` file, and prepare images for it.

``load_model`` never runs code stored in a file and never unpickles anything:
``.keras`` files are read with ``keras.saving.load_model(path, safe_mode=True,
compile=False)`` (a JSON config plus HDF5 weights). Legacy HDF5 (``.h5``) files
and TensorFlow SavedModel folders are refused with the one-line fix: load them
yourself in trusted code and ``model.save("model.keras")``.

``preprocess`` maps camtutor's image convention (RGB float32 in [0, 1]) to
what a ``keras.applications`` model expects: its ``preprocess_input`` applied
to 0-255 values.
"""

from __future__ import annotations

import importlib
import zipfile
from pathlib import Path

import keras
import numpy as np

from camtutor.errors import ImageError, ModelError
from camtutor.layers import check_model

__all__ = ["PREPROCESSING", "load_model", "model_class_names", "preprocess", "is_model_path"]

_SAVE_FIX = "load it in your own (trusted) Python code and save it with model.save('model.keras')"

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


def _check_keras_file(path: Path) -> None:
    """Refuse anything that is not an existing ``.keras`` zip archive with a config, naming the fix."""
    shown = str(path)
    if not path.exists():
        raise ModelError(f"no such model file: '{shown}'; check the path (a bundled name needs no path)")
    if path.is_dir():
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
        raise ModelError(f"'{shown}' is an empty file (0 bytes); save the model again with model.save('model.keras')")
    if not zipfile.is_zipfile(path):
        raise ModelError(
            f"'{shown}' is not a Keras model (a .keras file is a zip archive); "
            "save the model again with model.save('model.keras')"
        )
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    if "config.json" not in names:
        raise ModelError(
            f"'{shown}' is a zip archive without a Keras model config (config.json); "
            "save the model again with model.save('model.keras')"
        )


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


def _load_keras_file(path: Path) -> keras.Model:
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # keras raises ValueError, TypeError, KeyError, OSError... for bad files
        message = " ".join(str(exc).split())
        message = message if len(message) <= 240 else message[:240].rsplit(" ", 1)[0] + " ..."
        for matches, problem in _LOAD_FAILURES:
            if matches(message):
                raise ModelError(f"'{path}' {problem}. Keras said: {message}") from None
        raise ModelError(
            f"could not load '{path}' as a Keras model ({type(exc).__name__}: {message}); "
            "save the model again with model.save('model.keras')"
        ) from None
    if not isinstance(model, keras.Model):
        raise ModelError(f"'{path}' holds a {type(model).__name__}, not a keras.Model; save the whole model")
    return model


def load_model(name_or_path: str | Path) -> keras.Model:
    """A model to explain: a bundled name ("shapes", "faces"...) or the path of a ``.keras`` file.

    ``.keras`` files are loaded with ``safe_mode=True`` and ``compile=False``:
    no code from the file runs and nothing is unpickled. The model must be an
    image classifier with one input (B, H, W, C) and one output (B, C).

    Raises:
        camtutor.errors.ModelError: unknown name, missing file, ``.h5`` file or
            SavedModel folder, a file that is not a Keras model, a model with
            several inputs/outputs. Each message names the fix.
    """
    if not isinstance(name_or_path, (str, Path)) or not str(name_or_path).strip():
        raise ModelError(f"model must be a bundled name or a path to a .keras file, got {name_or_path!r}")
    if is_model_path(name_or_path):
        path = Path(name_or_path).expanduser()
        _check_keras_file(path)
        model = _load_keras_file(path)
    else:
        model = _bundled(str(name_or_path))
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
