"""Image files and bytes -> RGB float32 arrays in [0, 1], and model-ready batches. No TensorFlow here.

One decoder for the whole package: :func:`load_image` (a path), :func:`decode_image`
(bytes, e.g. an upload), :func:`prepare_images` (paths and/or arrays -> the batch a
model takes) and :func:`parse_size` (the one ``size`` argument parser).

Decoding rules (every function here follows them):

* **Pixel limit.** An image with more than :data:`MAX_PIXELS` pixels (64 million by
  default) is refused from its header, before any pixel is decoded, so a small file
  declaring 20000 x 20000 pixels costs nothing. Raise or lower the limit per call
  (``max_pixels=``) or for the process (environment variable ``CAMTUTOR_MAX_PIXELS``).
* **As displayed.** The EXIF orientation tag is applied (a phone photo stored sideways
  comes back upright, as every image viewer shows it).
* **Values.** 8-bit data is divided by 255, 16-bit by 65535. Float data (a float TIFF)
  whose maximum is at most 1.5 is taken as [0, 1] and clipped; a maximum in (1.5, 255]
  means 0..255 values, divided by 255; anything larger, negative values below -1/255,
  NaN or inf are refused (camtutor cannot tell their scale).
* **Channels.** Greyscale becomes 3 identical channels; palette images are expanded;
  transparency (RGBA, grey + alpha, palette transparency) is composited **on white**, as an
  image viewer shows it; CMYK / YCbCr / LAB are converted to RGB. Never BGR.
* **Quiet.** Pillow decodes; OpenCV is used only for what Pillow cannot represent
  (16-bit colour, float colour TIFF), with its and libpng's messages silenced. Every
  failure is one :class:`camtutor.errors.ImageError` naming the file and the fix, and
  nothing is printed on stderr.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import struct
import threading
import warnings
from pathlib import Path
from typing import Sequence, Union

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from camtutor.errors import ImageError, ModelError

__all__ = ["MAX_PIXELS", "MAX_MODEL_PIXELS", "check_model_input_size", "decode_image", "load_image", "load_images", "parse_size", "prepare_images", "pixel_limit"]

#: Default largest image, in pixels (height x width), that camtutor decodes: 64 million, e.g. 8000 x 8000.
#: Decoded as float32 RGB that is 768 MB. Override with ``max_pixels=`` or ``CAMTUTOR_MAX_PIXELS``.
MAX_PIXELS = 64_000_000
_ENV_MAX_PIXELS = "CAMTUTOR_MAX_PIXELS"
#: Largest image (height x width) fed *as it is* to a model with a free input size (``Input((None, None, 3))``):
#: 1024 x 1024. Such a model's memory grows with the image (about 1 GB at 1500 x 1500, over 10 GB at
#: 5000 x 5000 for a MobileNet), so a larger image is refused before the model runs, naming the fix.
#: Models with a fixed input size are unaffected (every image is resized to their input). Override with
#: the environment variable ``CAMTUTOR_MAX_MODEL_PIXELS``.
MAX_MODEL_PIXELS = 1024 * 1024
_ENV_MAX_MODEL_PIXELS = "CAMTUTOR_MAX_MODEL_PIXELS"
FORMATS = "PNG, JPEG, BMP, TIFF, WebP"

PathLike = Union[str, Path]


# --------------------------------------------------------------------------- sizes and limits
def parse_size(size: object, *, what: str = "size") -> tuple[int, int] | None:
    """The one ``size`` argument of camtutor: None -> None, an int S -> (S, S), (height, width) -> (h, w).

    Raises :class:`ImageError` for 0 or negative values, bools, floats, strings or a
    sequence that is not exactly two ints.
    """
    if size is None:
        return None

    def is_int(value: object) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))

    if is_int(size):
        h = w = int(size)  # type: ignore[arg-type]
    elif isinstance(size, (tuple, list, np.ndarray)) and len(size) == 2 and all(is_int(v) for v in size):
        h, w = int(size[0]), int(size[1])
    else:
        raise ImageError(
            f"{what} must be None, an int or a (height, width) pair of ints, got {size!r}; e.g. {what}=224 "
            f"or {what}=(224, 224)"
        )
    if h < 1 or w < 1:
        raise ImageError(f"{what} must be positive, got {size!r}; e.g. {what}=224 or {what}=(224, 224)")
    return h, w


def pixel_limit(max_pixels: int | None = None) -> int:
    """The pixel limit in force: ``max_pixels`` if given, else ``$CAMTUTOR_MAX_PIXELS``, else :data:`MAX_PIXELS`."""
    source = "max_pixels"
    if max_pixels is None:
        text = os.environ.get(_ENV_MAX_PIXELS, "").strip()
        if not text:
            return MAX_PIXELS
        source = f"the environment variable {_ENV_MAX_PIXELS}"
        try:
            max_pixels = int(text.replace("_", ""))
        except ValueError:
            raise ImageError(f"{source} must be a whole number of pixels, got {text!r}") from None
    if isinstance(max_pixels, (bool, np.bool_)) or not isinstance(max_pixels, (int, np.integer)) or max_pixels < 1:
        raise ImageError(f"{source} must be a positive int (a number of pixels), got {max_pixels!r}")
    return int(max_pixels)


def check_model_input_size(height: int, width: int, model_shape: tuple, name: str) -> None:
    """Refuse an image of ``height`` x ``width`` for a model with a free input size above :data:`MAX_MODEL_PIXELS`.

    ``model_shape`` is the model's input shape (B, H, W, C); when H and W are fixed the image will be
    resized to them, and nothing is checked. Raises :class:`ImageError` naming the fix.
    """
    if model_shape[1] is not None and model_shape[2] is not None:
        return
    text = os.environ.get(_ENV_MAX_MODEL_PIXELS, "").strip()
    try:
        limit = int(text.replace("_", "")) if text else MAX_MODEL_PIXELS
    except ValueError:
        raise ImageError(f"the environment variable {_ENV_MAX_MODEL_PIXELS} must be a whole number of pixels, got {text!r}") from None
    if height * width > limit:
        side = int(np.sqrt(limit * max(height, width) / max(1, min(height, width))))
        raise ImageError(
            f"'{name}' is {width}x{height} = {height * width:,} pixels; this model takes any input size, so it would "
            f"run on the image as it is, and camtutor feeds such a model at most {limit:,} pixels to bound its "
            f"memory: shrink the image first (e.g. to {side} px on its longer side), or raise the limit with the "
            f"environment variable {_ENV_MAX_MODEL_PIXELS}"
        )


def _check_pixels(height: int, width: int, limit: int, name: str) -> None:
    if height * width > limit:
        raise ImageError(
            f"'{name}' is {width}x{height} = {height * width:,} pixels, above camtutor's limit of {limit:,} pixels; "
            f"shrink the image first, or raise the limit with max_pixels=... or the environment variable "
            f"{_ENV_MAX_PIXELS} if you trust the file"
        )


# --------------------------------------------------------------------------- quiet decoders
_STDERR_LOCK = threading.RLock()


@contextlib.contextmanager
def _silent_stderr():
    """Send file descriptor 2 to /dev/null meanwhile: libpng, libtiff and OpenCV print there directly."""
    with _STDERR_LOCK:
        try:
            saved = os.dup(2)
        except OSError:  # pragma: no cover - no stderr at all
            yield
            return
        try:
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _opencv_decode(data: bytes) -> np.ndarray | None:
    """OpenCV's IMREAD_UNCHANGED decode (BGR order), silenced; None when it cannot."""
    with _silent_stderr():
        try:
            level = cv2.utils.logging.getLogLevel()
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        except AttributeError:  # pragma: no cover - OpenCV builds without the logging module
            level = None
        try:
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        except cv2.error as error:
            if "alloc" in str(error).lower() or "memory" in str(error).lower():
                raise MemoryError(str(error)) from None
            image = None
        finally:
            if level is not None:
                cv2.utils.logging.setLogLevel(level)
    return None if image is None or image.size == 0 else image


_PIL_LOCK = threading.Lock()


def _open_header(data: bytes) -> Image.Image | None:
    """Pillow's lazy open (reads the header only); camtutor's pixel limit replaces Pillow's bomb check."""
    with _PIL_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(io.BytesIO(data))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error, EOFError):
            return None
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _tiff_header(data: bytes) -> tuple[int, int, int] | None:
    """(width, height, orientation) from the first IFD of a classic TIFF, for files Pillow cannot open."""
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(bytes(data[:4]))
    if order is None:
        return None
    try:
        (offset,) = struct.unpack(order + "I", data[4:8])
        (count,) = struct.unpack(order + "H", data[offset : offset + 2])
        found = {}
        for index in range(count):
            entry = data[offset + 2 + 12 * index : offset + 14 + 12 * index]
            tag, kind = struct.unpack(order + "HH", entry[:4])
            if tag in (256, 257, 274):
                found[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), entry[8:10] if kind == 3 else entry[8:12])[0]
    except struct.error:
        return None
    if 256 not in found or 257 not in found:
        return None
    return int(found[256]), int(found[257]), int(found.get(274, 1))


def _deep_colour(image: Image.Image, data: bytes) -> bool:
    """True for 16-bit colour files, which Pillow would cut to 8 bits (OpenCV keeps all 16)."""
    if image.mode not in ("RGB", "RGBA"):
        return False
    if image.format == "PNG":
        return len(data) > 25 and data[24] == 16
    if image.format == "TIFF":
        bits = image.tag_v2.get(258, (8,))
        return max(bits if isinstance(bits, tuple) else (bits,)) > 8
    return False


# --------------------------------------------------------------------------- pixels -> RGB [0, 1]
def _orient(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to stored pixels (H, W, C): the image as viewers display it."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda a: np.rot90(a, 1),
    }
    return ops[orientation](rgb) if orientation in ops else rgb


def _scale(x: np.ndarray, name: str) -> np.ndarray:
    """Stored values -> float32 in [0, 1] by the module's rules (8-bit /255, 16-bit /65535, floats by range)."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    if x.dtype.kind == "u" and x.dtype.itemsize == 2:
        return x.astype(np.float32) / np.float32(65535.0)
    if x.dtype.kind in "iu" and x.size and x.min() >= 0 and x.max() <= 65535:  # Pillow's 32-bit "I" mode
        return x.astype(np.float32) / np.float32(65535.0)
    if x.dtype.kind == "f":
        x = x.astype(np.float32)
        if not np.isfinite(x).all():
            raise ImageError(f"'{name}' contains NaN or inf pixel values; fix the file or save it as an 8-bit PNG")
        low, high = float(x.min()), float(x.max())
        if low < -1.0 / 255.0 or high > 255.0:
            raise ImageError(
                f"'{name}' holds float values in [{low:.4g}, {high:.4g}], which camtutor cannot map to [0, 1] "
                "unambiguously; rescale it to [0, 1] (or 0..255) or save it as an 8-bit or 16-bit PNG/TIFF"
            )
        if high > 1.5:  # 0..255 values stored as floats
            x = x / np.float32(255.0)
        return np.clip(x, 0.0, 1.0)
    raise ImageError(
        f"'{name}' has pixel type {x.dtype}, which camtutor does not support; save it as an 8-bit or 16-bit PNG/TIFF"
    )


def _composite(x: np.ndarray, name: str, bgr: bool) -> np.ndarray:
    """(H, W), (H, W, 1..4) in [0, 1] -> RGB (H, W, 3); alpha over white; BGR(A) swapped when ``bgr``."""
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[..., 0]
    if x.ndim == 2:
        return np.repeat(x[..., None], 3, axis=-1)
    if x.ndim == 3 and x.shape[2] == 2:  # grey + alpha
        alpha = x[..., 1:2]
        return np.repeat(x[..., 0:1] * alpha + (1.0 - alpha), 3, axis=-1)
    if x.ndim == 3 and x.shape[2] in (3, 4):
        rgb = x[..., 2::-1] if bgr else x[..., :3]
        if x.shape[2] == 4:
            alpha = x[..., 3:4]
            rgb = rgb * alpha + (1.0 - alpha)
        return rgb
    raise ImageError(
        f"'{name}' has an unsupported layout {x.shape}; expected grey, RGB or RGBA; save it as an RGB PNG"
    )


def _pillow_pixels(image: Image.Image) -> np.ndarray:
    """Decode a Pillow image (first frame) into a numpy array camtutor's rules understand."""
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("PA", "RGBa", "La", "LA"):
        image = image.convert("RGBA" if mode in ("PA", "RGBa") else "LA")
    elif mode == "1":
        image = image.convert("L")
    elif mode not in ("L", "RGB", "RGBA", "I", "F") and not mode.startswith("I;16"):
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX
    array = np.asarray(image)
    return array.astype(array.dtype.newbyteorder("=")) if not array.dtype.isnative else array


def _fail_decode(name: str, detail: str = "") -> ImageError:
    extra = f" ({detail})" if detail else ""
    return ImageError(
        f"could not decode '{name}' as an image; camtutor reads {FORMATS}. "
        f"The file may be corrupt, truncated or not an image at all{extra}."
    )


def decode_image(
    data: bytes,
    *,
    name: str = "image",
    size: int | tuple[int, int] | None = None,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Image file bytes -> RGB float32 (H, W, 3) in [0, 1], as displayed (EXIF orientation applied).

    Args:
        data: the bytes of a PNG, JPEG, BMP, TIFF, WebP, GIF... file.
        name: the file's name, used in error messages.
        size: ``None`` (keep), an int S (-> S x S) or ``(height, width)``; shrinking uses area
            averaging, enlarging bilinear (see :func:`parse_size`).
        max_pixels: refuse images with more pixels than this, read from the header before decoding
            (default: :func:`pixel_limit`, 64 million unless ``CAMTUTOR_MAX_PIXELS`` says otherwise).

    The value, channel and transparency rules are in the module docstring. Nothing is printed.

    Raises:
        camtutor.errors.ImageError: empty or undecodable data, too many pixels, an unsupported
            pixel type or layout, a bad ``size``; the message names ``name`` and the fix.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageError(f"expected the bytes of an image file for '{name}', got {type(data).__name__}")
    data = bytes(data)
    hw = parse_size(size)
    limit = pixel_limit(max_pixels)
    if not data:
        raise ImageError(f"'{name}' is an empty file (0 bytes); re-save or re-download the image.")
    if hw is not None and hw[0] * hw[1] > limit:
        raise ImageError(
            f"size={size!r} asks for {hw[0] * hw[1]:,} pixels, above camtutor's limit of {limit:,} pixels; "
            f"pass a smaller size, or raise the limit with max_pixels=... or {_ENV_MAX_PIXELS}"
        )
    try:
        return _decode(data, name, hw, limit)
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(
            f"not enough memory to decode '{name}'; shrink the image (or lower max_pixels / {_ENV_MAX_PIXELS} "
            "so that such files are refused up front)"
        ) from None
    except Exception as error:  # noqa: BLE001 - any decoder failure is the file's fault: one clear error
        raise _fail_decode(name, f"{type(error).__name__}: {' '.join(str(error).split())[:200]}") from None


def _decode(data: bytes, name: str, hw: tuple[int, int] | None, limit: int) -> np.ndarray:
    """decode_image's work, with Python warnings (Pillow's EXIF / TIFF notes) and fd 2 kept quiet."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        header = _open_header(data)
        if header is not None:
            width, height = header.size
            _check_pixels(height, width, limit, name)
            try:
                orientation = int(header.getexif().get(0x0112, 1))
            except Exception:  # noqa: BLE001 - a broken EXIF block only loses the orientation
                orientation = 1
            pixels, bgr = None, False
            if not _deep_colour(header, data):
                try:
                    with _silent_stderr():
                        header.load()
                    pixels = _pillow_pixels(header)
                except (OSError, SyntaxError, ValueError, struct.error, EOFError, IndexError):
                    pixels = None
            if pixels is None:  # 16-bit colour, or a file Pillow failed on: OpenCV may do better
                pixels, bgr = _opencv_decode(data), True
        else:
            tiff = _tiff_header(data)
            if tiff is None:
                raise _fail_decode(name)
            width, height, orientation = tiff
            _check_pixels(height, width, limit, name)
            pixels, bgr = _opencv_decode(data), True
        if pixels is None:
            raise _fail_decode(name)
        rgb = _orient(_composite(_scale(pixels, name), name, bgr), orientation)
        rgb = np.ascontiguousarray(rgb, dtype=np.float32)
        if hw is not None:
            rgb = np.clip(_resize(rgb, hw), 0.0, 1.0).astype(np.float32)
        return rgb


def _resize(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(H, W, C) -> (h, w, C): ``cv2.INTER_AREA`` to shrink, ``cv2.INTER_LINEAR`` to enlarge."""
    h, w = hw
    if img.shape[:2] == (h, w):
        return img
    shrinking = h * w < img.shape[0] * img.shape[1]
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    out = cv2.resize(img, (w, h), interpolation=interp)
    return out.reshape(h, w, -1) if out.ndim == 2 else out


# --------------------------------------------------------------------------- files
def check_image_file(path: PathLike, *, max_pixels: int | None = None) -> tuple[int, int] | None:
    """Check an image file without decoding it: -> (height, width) read from its header, or None.

    The file must be a regular, non-empty file (a folder, FIFO, socket or device is refused from
    ``os.stat`` alone, never opened), no larger than any image within the pixel limit could be, and,
    when Pillow can read its header, declare at most ``max_pixels`` pixels (default
    :func:`pixel_limit`). None means the header is one only the full decoder reads (some TIFFs);
    :func:`decode_image` checks those. Used by :func:`load_image` and by the command before TensorFlow starts.

    Raises:
        camtutor.errors.ImageError: naming the file and the fix.
    """
    from camtutor.loading import file_problem

    p = Path(path).expanduser()
    limit = pixel_limit(max_pixels)
    problem = file_problem(p, "image")
    if problem is not None:
        raise ImageError(problem)
    size = p.stat().st_size
    if size > 16 * limit + (16 << 20):  # more bytes than any image within the limit, even float RGBA
        raise ImageError(
            f"'{p}' is a {size / 2**20:,.0f} MB file, too large for an image of at most {limit:,} pixels; "
            f"shrink the image, or raise the limit with max_pixels=... or {_ENV_MAX_PIXELS}"
        )
    try:
        with open(p, "rb") as handle:  # a regular file: reads the header only
            header = _open_header(handle.read(1 << 20))
    except OSError as exc:
        raise ImageError(f"could not read '{p}': {exc.strerror or exc}; check the file's permissions.") from None
    if header is None:
        return None
    width, height = header.size
    _check_pixels(height, width, limit, str(p))
    return height, width


def load_image(path: PathLike, size: int | tuple[int, int] | None = None, *, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as RGB float32 (H, W, 3) in [0, 1], as displayed.

    * 8-bit files are divided by 255, 16-bit PNG/TIFF by 65535; float TIFFs: max <= 1.5 -> [0, 1]
      (clipped), max in (1.5, 255] -> divided by 255, anything else refused.
    * Greyscale becomes 3 identical channels; palette images are expanded.
    * Transparency (RGBA, grey+alpha) is composited **on white**, as an image viewer shows it.
    * Always RGB; BGR never leaks out.
    * EXIF orientation is applied (a photo stored sideways comes back upright).
    * More than ``max_pixels`` pixels (default 64 million, ``CAMTUTOR_MAX_PIXELS``) is refused
      from the header, before decoding.
    * Only regular files are read: a folder, FIFO, socket or device is refused without opening it.

    Args:
        path: a ``str`` or :class:`pathlib.Path`.
        size: ``None`` (keep), an int S (-> S x S) or ``(height, width)``. Shrinking uses
            ``cv2.INTER_AREA``, enlarging ``cv2.INTER_LINEAR``.
        max_pixels: see :func:`decode_image`.

    Raises:
        camtutor.errors.ImageError: missing file, directory or other special file, empty file,
            undecodable file, too many pixels, unsupported pixel type, or a bad ``size``.
    """
    if not isinstance(path, (str, Path)):
        raise ImageError(f"path must be a str or pathlib.Path, got {type(path).__name__}.")
    parse_size(size)
    limit = pixel_limit(max_pixels)
    p = Path(path).expanduser()
    check_image_file(p, max_pixels=limit)
    try:
        with open(p, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise ImageError(f"could not read '{p}': {exc.strerror or exc}; check the file's permissions.") from None
    return decode_image(raw, name=str(p), size=size, max_pixels=limit)


def load_images(
    paths: Sequence[PathLike], size: int | tuple[int, int] | None = None, *, max_pixels: int | None = None
) -> np.ndarray:
    """Read several image files into one (B, H, W, 3) float32 batch in [0, 1].

    Args:
        paths: a non-empty sequence of paths.
        size: as in :func:`load_image`; needed when the files have different sizes.
        max_pixels: as in :func:`load_image`.

    Raises:
        camtutor.errors.ImageError: as :func:`load_image`, or if the images differ in size and
            ``size`` is None.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = list(paths)
    if not paths:
        raise ImageError("paths is empty; pass at least one image path.")
    imgs = [load_image(p, size, max_pixels=max_pixels) for p in paths]
    shapes_ = {im.shape for im in imgs}
    if len(shapes_) > 1:
        raise ImageError(
            f"the images have different sizes {sorted(s[:2] for s in shapes_)}; pass size=(h, w) "
            "(or an int) to resize them all to one size."
        )
    return np.stack(imgs).astype(np.float32)


# --------------------------------------------------------------------------- model-ready batches
def _input_shape(model: object) -> tuple:
    if isinstance(model, (str, Path)):
        raise ModelError(
            f"model must be a Keras model, got the {type(model).__name__} {str(model)!r}; load it first with "
            f"camtutor.models.load({str(model)!r}) (bundled) or camtutor.load_model(path) (a .keras file)"
        )
    try:
        shape = tuple(model.inputs[0].shape)  # type: ignore[attr-defined]
    except (AttributeError, IndexError, TypeError):
        raise ModelError(
            f"model must be a Keras image classifier, got {type(model).__name__}; "
            "load one with camtutor.models.load(name) or camtutor.load_model(path)"
        ) from None
    if len(shape) != 4:
        raise ModelError(f"the model's input has shape {shape}; camtutor needs an image input (B, H, W, C)")
    return shape


def _as_rgb01(item: object, index: int) -> np.ndarray:
    """One caller's array (H, W, 3) in [0, 1] (uint8 is divided by 255) -> float32, or an ImageError."""
    array = np.asarray(item)
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / np.float32(255.0)
    try:
        array = np.asarray(array, dtype=np.float32)
    except (TypeError, ValueError):
        raise ImageError(f"image {index} is not a numeric array; pass a path or an (H, W, 3) array in [0, 1]") from None
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        raise ImageError(
            f"image {index} has shape {array.shape}, channels first; camtutor wants (H, W, 3): "
            "pass np.transpose(image, (1, 2, 0))"
        )
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ImageError(f"image {index} has shape {array.shape}; pass RGB images (H, W, 3) in [0, 1] or file paths")
    if array.size == 0:
        raise ImageError(f"image {index} is empty (shape {array.shape}); pass a real image")
    if not np.isfinite(array).all():
        raise ImageError(f"image {index} contains NaN or inf values; fix or drop it")
    low, high = float(array.min()), float(array.max())
    if low < -1e-6 or high > 1.0 + 1e-6:
        raise ImageError(
            f"image {index} has values in [{low:.4g}, {high:.4g}], outside [0, 1]; divide 0..255 images by 255 "
            "(prepare_images applies the model's preprocessing itself)"
        )
    return np.clip(array, 0.0, 1.0)


def prepare_images(
    paths_or_arrays: object,
    model: object,
    preprocessing: str = "none",
    *,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Paths and/or RGB arrays -> the float32 batch (B, H, W, C) that ``model`` takes.

    Each item is a path (read with :func:`load_image`: any size, EXIF applied) or an
    (H, W, 3) array in [0, 1] (uint8 arrays are divided by 255). Each image is resized to
    the model's input (H, W) when the model fixes it (:func:`camtutor.resize_images`: area
    averaging to shrink, bilinear to enlarge), preprocessed with
    ``camtutor.loading.preprocess(batch, preprocessing)`` ("none" keeps [0, 1]; e.g.
    "mobilenet_v2" for a keras.applications model), and converted to grey
    (``cv2.COLOR_RGB2GRAY``) for a 1-channel model.

    Args:
        paths_or_arrays: a path, an (H, W, 3) array, or a list of them (a (B, H, W, 3) array is a list).
        model: the Keras model (only its input shape is read).
        preprocessing: a key of :data:`camtutor.loading.PREPROCESSING`.
        max_pixels: passed to :func:`load_image`.

    Raises:
        camtutor.errors.ImageError: an unreadable file, an array that is not (H, W, 3) in [0, 1], a model
            with other than 1 or 3 channels, an unknown preprocessing, or (for a model with free height and
            width) images of different sizes, or an image above :data:`MAX_MODEL_PIXELS` for such a model.
        camtutor.errors.ModelError: ``model`` is a name or path rather than a loaded model.
    """
    from camtutor.inputs import resize_images
    from camtutor.loading import preprocess

    _, height, width, channels = _input_shape(model)
    if isinstance(paths_or_arrays, (str, Path)) or (isinstance(paths_or_arrays, np.ndarray) and paths_or_arrays.ndim == 3):
        items = [paths_or_arrays]
    else:
        try:
            items = list(paths_or_arrays)  # type: ignore[call-overload]
        except TypeError:
            raise ImageError(
                f"expected image paths or (H, W, 3) arrays, got {type(paths_or_arrays).__name__}"
            ) from None
    if not items:
        raise ImageError("no images given; pass at least one path or (H, W, 3) array")
    batch = []
    for index, item in enumerate(items):
        source = item if isinstance(item, (str, Path)) else f"image {index}"
        image = load_image(item, max_pixels=max_pixels) if isinstance(item, (str, Path)) else _as_rgb01(item, index)
        check_model_input_size(*image.shape[:2], (None, height, width, channels), str(source))
        if height is not None and width is not None and image.shape[:2] != (height, width):
            image = resize_images(image, (height, width))
        image = preprocess(image[None], preprocessing)[0]
        if channels == 1:
            image = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)[..., None]
        elif channels not in (None, 3):
            raise ImageError(
                f"the model expects {channels} channels, but '{source}' is read as RGB (3 channels); camtutor "
                "prepares images for 1- and 3-channel models: build this batch yourself and explain it with "
                "camtutor.grad_cam(model, images, ...)"
            )
        batch.append(np.ascontiguousarray(image, dtype=np.float32))
    sizes = sorted({image.shape[:2] for image in batch})
    if len(sizes) > 1:
        raise ImageError(
            f"the model takes any image size, and these images have different sizes {sizes}; prepare them one "
            "at a time (prepare_images([path], model)) or resize them to one size first"
        )
    return np.stack(batch)
