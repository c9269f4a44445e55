"""camtutor.images: one decoder, one size parser, one batch check, model-ready batches.

Every table here was written against the bug it fixes: each row fails on the code before
camtutor.images existed (commit a59fc11) and passes now.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import threading
import tracemalloc
import warnings
import zlib

import cv2
import keras
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

import camtutor as ct
from camtutor import images as im
from camtutor.errors import CamTutorError, ImageError, ModelError
from camtutor.inputs import check_images, resize_images
from camtutor.localize import box_from_map, peak

SIZE = 32


# --------------------------------------------------------------------------- files
def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_bomb(side: int = 20000) -> bytes:
    """A valid 1-bit greyscale PNG of side x side pixels (all black): about 48 kB, 400 MB once decoded to 8 bits."""
    row = b"\x00" * (1 + (side + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b"")


def encode(rgb: np.ndarray, ext: str = ".png") -> bytes:
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(rgb[..., ::-1]))
    assert ok
    return buf.tobytes()


def tiff(array: np.ndarray, **kwargs) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **kwargs)
    return buffer.getvalue()


def jpeg_with_orientation(stored: np.ndarray, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, "JPEG", quality=100, subsampling=0, exif=exif.tobytes())
    return buffer.getvalue()


def halves(height: int = 20, width: int = 40) -> np.ndarray:
    """Stored pixels: left half red, right half blue, a green top-left corner (so every flip shows)."""
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:, : width // 2, 0] = 255
    rgb[:, width // 2 :, 2] = 255
    rgb[:4, :4] = (0, 255, 0)
    return rgb


@pytest.fixture
def write(tmp_path):
    def _write(name: str, data: bytes):
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return _write


# --------------------------------------------------------------------------- pixel limit
def test_a_48kB_png_declaring_20000x20000_is_refused_from_its_header_fast_and_quietly(write, capfd):
    data = png_bomb()
    assert len(data) < 60_000
    path = write("bomb.png", data)
    tracemalloc.start()
    with pytest.raises(ImageError) as raised:
        ct.data.load_image(path)
    _, peak_bytes = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    message = str(raised.value)
    assert "400,000,000 pixels" in message and "CAMTUTOR_MAX_PIXELS" in message and "bomb.png" in message
    assert peak_bytes < 20 * 2**20, f"allocated {peak_bytes / 2**20:.0f} MB"
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize(
    "how",
    ["keyword", "environment", "keyword beats environment"],
)
def test_the_pixel_limit_is_a_keyword_or_an_environment_variable(write, monkeypatch, how):
    path = write("photo.png", encode(np.full((100, 120, 3), 50, np.uint8)))  # 12,000 pixels
    if how == "keyword":
        with pytest.raises(ImageError, match="12,000 pixels"):
            ct.data.load_image(path, max_pixels=11_999)
        assert ct.data.load_image(path, max_pixels=12_000).shape == (100, 120, 3)
    elif how == "environment":
        monkeypatch.setenv("CAMTUTOR_MAX_PIXELS", "11999")
        with pytest.raises(ImageError, match="limit of 11,999 pixels"):
            ct.data.load_image(path)
        with pytest.raises(ImageError, match="limit of 11,999 pixels"):
            im.decode_image(path.read_bytes(), name="photo.png")
    else:
        monkeypatch.setenv("CAMTUTOR_MAX_PIXELS", "10")
        assert ct.data.load_image(path, max_pixels=20_000).shape == (100, 120, 3)
    assert im.MAX_PIXELS == 64_000_000


@pytest.mark.parametrize("bad", [0, -5, 2.5, True, "many"])
def test_a_bad_pixel_limit_is_refused(write, monkeypatch, bad):
    path = write("ok.png", encode(np.zeros((4, 4, 3), np.uint8)))
    with pytest.raises(ImageError, match="max_pixels|CAMTUTOR_MAX_PIXELS"):
        if isinstance(bad, str):
            monkeypatch.setenv("CAMTUTOR_MAX_PIXELS", bad)
            ct.data.load_image(path)
        else:
            ct.data.load_image(path, max_pixels=bad)


# --------------------------------------------------------------------------- as displayed, right values
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_an_image_viewer(orientation):
    data = jpeg_with_orientation(halves(), orientation)
    decoded = im.decode_image(data, name="phone.jpg")
    viewer = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"), np.float32) / 255
    assert decoded.shape == viewer.shape
    np.testing.assert_allclose(decoded, viewer, atol=0.02)


def test_a_jpeg_rotated_by_exif_is_explained_upright(write):
    path = write("sideways.jpg", jpeg_with_orientation(halves(), 6))  # 6: rotate 90 degrees clockwise to view
    image = ct.data.load_image(path)
    assert image.shape == (40, 20, 3)
    assert image[:20, :, 0].mean() > 0.9 and image[20:, :, 2].mean() > 0.9  # left half (red) is now on top


FLOAT_TIFFS = [
    # (case, array written, expected value of every pixel, or an error substring)
    ("grey float 0..255", np.full((6, 5), 100.0, np.float32), 100 / 255, None),
    ("RGB float 0..255 (OpenCV)", np.full((6, 5, 3), 100.0, np.float32), 100 / 255, None),
    ("grey float in [0, 1]", np.full((6, 5), 0.25, np.float32), 0.25, None),
    ("RGB float in [0, 1]", np.full((6, 5, 3), 0.75, np.float32), 0.75, None),
    ("float above 255", np.full((6, 5), 1000.0, np.float32), None, "cannot map"),
    ("negative floats", np.full((6, 5), -0.5, np.float32), None, "cannot map"),
    ("NaN", np.full((6, 5), np.nan, np.float32), None, "NaN"),
]


@pytest.mark.parametrize("case, array, value, error", FLOAT_TIFFS, ids=[row[0] for row in FLOAT_TIFFS])
def test_float_tiffs_are_scaled_by_their_range_never_clipped_to_white(write, capfd, case, array, value, error):
    photometric = "rgb" if array.ndim == 3 else "minisblack"
    path = write("float.tif", tiff(array, photometric=photometric))
    if error is None:
        image = ct.data.load_image(path)
        assert image.shape == (6, 5, 3)
        np.testing.assert_allclose(image, value, atol=1e-6)
    else:
        with pytest.raises(ImageError, match=error):
            ct.data.load_image(path)
    assert capfd.readouterr().err == ""


def test_palette_png_with_transparency_is_composited_on_white():
    palette = Image.new("P", (4, 2))
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.putdata([0, 0, 1, 1, 0, 0, 1, 1])
    buffer = io.BytesIO()
    palette.save(buffer, "PNG", transparency=1)  # colour 1 (blue) is fully transparent
    image = im.decode_image(buffer.getvalue(), name="palette.png")
    np.testing.assert_allclose(image[:, :2], np.broadcast_to([1.0, 0.0, 0.0], (2, 2, 3)))
    np.testing.assert_allclose(image[:, 2:], 1.0)


# --------------------------------------------------------------------------- quiet, one error each
def _truncated_png() -> bytes:
    return encode(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8))[:300]


QUIET_FAILURES = [
    # (case, file bytes, substring of the ImageError)
    ("truncated PNG", _truncated_png, "truncated"),
    ("5-channel TIFF", lambda: tiff(np.full((8, 8, 5), 100, np.uint8), photometric="minisblack",
                                    planarconfig="contig"), "could not decode"),
    ("text", lambda: b"just some text", "not an image"),
    ("PNG signature only", lambda: b"\x89PNG\r\n\x1a\n", "could not decode"),
    ("empty", lambda: b"", "empty"),
    ("20000x20000 PNG", png_bomb, "pixels"),
]


@pytest.mark.parametrize("case, make, fix", QUIET_FAILURES, ids=[row[0] for row in QUIET_FAILURES])
def test_every_decoding_failure_is_one_image_error_and_nothing_on_stderr(write, capfd, case, make, fix):
    path = write("bad.png" if "TIFF" not in case else "bad.tif", make())
    capfd.readouterr()
    with pytest.raises(ImageError, match=fix) as raised:
        ct.data.load_image(path)
    assert str(path) in str(raised.value)
    with pytest.raises(ImageError, match=fix):
        im.decode_image(path.read_bytes(), name="upload.png")
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == "", captured.err


@pytest.mark.parametrize(
    "where, failure, fix",
    [("_pillow_pixels", MemoryError("cannot allocate"), "not enough memory to decode 'big.png'; shrink"),
     ("_pillow_pixels", RuntimeError("decoder bug"), "could not decode 'big.png'"),
     ("_opencv_decode", MemoryError("Failed to allocate 4 GB"), "not enough memory to decode 'big.png'"),
     ("_opencv_decode", cv2.error("OpenCV bug"), "could not decode 'big.png'")],
)
def test_a_decoder_crash_becomes_an_image_error_naming_the_file(monkeypatch, capfd, where, failure, fix):
    def explode(*args):
        raise failure

    monkeypatch.setattr(im, where, explode)
    data = encode(np.zeros((4, 4, 3), np.uint16)) if where == "_opencv_decode" else encode(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ImageError) as raised:
        im.decode_image(data, name="big.png")
    assert fix in str(raised.value)
    assert capfd.readouterr().err == ""


def _pil_bytes(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


PIXEL_LAYOUTS = [
    # (case, file bytes, expected RGB of every pixel): every layout becomes RGB float32 in [0, 1]
    ("16-bit grey PNG", lambda: cv2.imencode(".png", np.full((3, 4), 32768, np.uint16))[1].tobytes(),
     [32768 / 65535] * 3),
    ("16-bit grey big-endian TIFF", lambda: tiff(np.full((3, 4), 1000, ">u2"), photometric="minisblack"),
     [1000 / 65535] * 3),
    ("16-bit RGBA PNG, half transparent", lambda: cv2.imencode(".png", np.dstack(
        [np.zeros((3, 4, 3), np.uint16), np.full((3, 4), 32768, np.uint16)]))[1].tobytes(),
     [1 - 32768 / 65535] * 3),
    ("1-bit PNG", lambda: _pil_bytes(Image.new("1", (4, 3), 1)), [1.0] * 3),
    ("grey + alpha PNG", lambda: _pil_bytes(Image.new("LA", (4, 3), (0, 51))), [1 - 51 / 255] * 3),
    ("CMYK JPEG (pure cyan)", lambda: _pil_bytes(Image.new("CMYK", (4, 3), (255, 0, 0, 0)), "JPEG", quality=100),
     [0.0, 1.0, 1.0]),
    ("GIF (palette)", lambda: _pil_bytes(Image.new("RGB", (4, 3), (255, 0, 0)).convert("P"), "GIF"), [1.0, 0, 0]),
    ("WebP", lambda: _pil_bytes(Image.new("RGB", (4, 3), (0, 0, 255)), "WEBP", lossless=True), [0, 0, 1.0]),
]


@pytest.mark.parametrize("case, make, rgb", PIXEL_LAYOUTS, ids=[row[0] for row in PIXEL_LAYOUTS])
def test_every_pixel_layout_becomes_rgb_in_0_1(capfd, case, make, rgb):
    image = im.decode_image(make(), name=case)
    assert image.shape == (3, 4, 3) and image.dtype == np.float32
    np.testing.assert_allclose(image, np.broadcast_to(rgb, image.shape), atol=0.01 if "JPEG" in case else 1e-6)
    assert capfd.readouterr().err == ""


# --------------------------------------------------------------------------- special files
def test_a_fifo_is_refused_at_once_without_opening_it(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    outcome: list[BaseException | object] = []

    def read() -> None:
        try:
            outcome.append(ct.data.load_image(fifo))
        except BaseException as error:  # noqa: BLE001 - reported below
            outcome.append(error)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=5)
    if reader.is_alive():  # the old code blocks in open(): release it so the test run can go on
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(timeout=5)
        pytest.fail("load_image blocked on a FIFO")
    assert isinstance(outcome[0], ImageError) and "FIFO" in str(outcome[0]) and "regular file" in str(outcome[0])


def test_a_device_is_refused_as_not_a_regular_file():
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    with pytest.raises(ImageError, match="is a character device, not a regular image file"):
        ct.data.load_image("/dev/null")


# --------------------------------------------------------------------------- one size parser
@pytest.mark.parametrize(
    "size, expected",
    [(None, None), (5, (5, 5)), (np.int64(7), (7, 7)), ((3, 4), (3, 4)), ([3, 4], (3, 4)),
     (np.array([2, 9]), (2, 9))],
)
def test_parse_size_accepts_an_int_or_a_pair(size, expected):
    assert im.parse_size(size) == expected


BAD_SIZES = [0, -1, (0, 3), (3, -2), True, (True, 3), 2.5, (2.0, 3), (1, 2, 3), (4,), "12", {"h": 1}]


@pytest.mark.parametrize("size", BAD_SIZES, ids=[repr(s) for s in BAD_SIZES])
def test_parse_size_refuses_what_is_not_a_positive_int_size(size):
    with pytest.raises(ImageError, match="size"):
        im.parse_size(size)


SIZE_USERS = [
    # (who, call with a size), each must parse sizes the same way
    ("resize_images", lambda s: resize_images(np.zeros((6, 6, 3), np.float32), s)),
    ("upsample", lambda s: ct.upsample(np.zeros((4, 4), np.float32), s)),
    ("peak", lambda s: peak(np.eye(4, dtype=np.float32), s)),
    ("box_from_map", lambda s: box_from_map(np.eye(4, dtype=np.float32), size=s)),
    ("load_image", lambda s: im.load_image(__file__.replace("test_images.py", "") + "../docs/overlay.png", s)),
]


@pytest.mark.parametrize("who, call", SIZE_USERS, ids=[row[0] for row in SIZE_USERS])
@pytest.mark.parametrize("size", [0, -5, 2.5, True, (8, 0)], ids=["0", "-5", "2.5", "True", "(8, 0)"])
def test_every_size_argument_refuses_the_same_bad_sizes(who, call, size):
    with pytest.raises(CamTutorError, match="size"):
        call(size)


@pytest.mark.parametrize("who, call", SIZE_USERS, ids=[row[0] for row in SIZE_USERS])
def test_every_size_argument_takes_numpy_ints(who, call):
    assert call(np.int64(8)) is not None


# --------------------------------------------------------------------------- one batch check
def plain_model(channels: int = 3) -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, channels))
    x = keras.layers.Conv2D(2, 3, name="feat")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)))


def rescaling_model(layer: keras.layers.Layer, nested: bool = False) -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 3))
    if nested:
        inner_in = keras.Input((SIZE, SIZE, 3))
        inner = keras.Model(inner_in, keras.layers.Conv2D(2, 3)(layer(inner_in)), name="backbone")
        x = inner(inputs)
    else:
        x = keras.layers.Conv2D(2, 3)(layer(inputs))
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)))


@pytest.fixture(scope="module")
def models() -> dict[str, keras.Model]:
    keras.utils.set_random_seed(0)
    return {
        "plain": plain_model(),
        "grey": plain_model(1),
        "two": plain_model(2),
        "rescaling": rescaling_model(keras.layers.Rescaling(1 / 255)),
        "normalization": rescaling_model(keras.layers.Normalization(mean=[120.0] * 3, variance=[900.0] * 3)),
        "nested rescaling": rescaling_model(keras.layers.Rescaling(1 / 127.5, offset=-1), nested=True),
    }


rng = np.random.default_rng(0)
BATCH01 = rng.random((2, SIZE, SIZE, 3), dtype=np.float32)
RANGE_CASES = [
    # (case, batch, model key, warns)
    ("uint8 for a plain model", (BATCH01 * 255).astype(np.uint8), "plain", True),
    ("0..255 floats for a plain model", BATCH01 * 255, "plain", True),
    ("[0, 1] floats", BATCH01, "plain", False),
    ("caffe preprocessing (negative values)", BATCH01 * 255 - 120, "plain", False),
    ("[-1, 1] preprocessing", BATCH01 * 2 - 1, "plain", False),
    ("0..255 for a model with Rescaling", BATCH01 * 255, "rescaling", False),
    ("uint8 for a model with Normalization", (BATCH01 * 255).astype(np.uint8), "normalization", False),
    ("0..255 for a nested backbone with Rescaling", BATCH01 * 255, "nested rescaling", False),
]


@pytest.mark.parametrize("case, batch, key, warns", RANGE_CASES, ids=[row[0] for row in RANGE_CASES])
def test_inputs_in_the_wrong_range_warn_unless_the_model_rescales(models, case, batch, key, warns):
    model = models[key]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = check_images(batch, tuple(model.inputs[0].shape), model=model)
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert out.dtype == np.float32 and out.shape == batch.shape
    if warns:
        assert len(messages) == 1 and "ct.preprocess" in messages[0] and "/ 255" in messages[0], messages
    else:
        assert messages == []


BATCH_ERRORS = [
    ("channels first (B, 3, H, W)", lambda: np.transpose(BATCH01, (0, 3, 1, 2)), "np.transpose(images, (0, 2, 3, 1))"),
    ("one channels-first image", lambda: np.transpose(BATCH01[0], (2, 0, 1)), "np.transpose(image, (1, 2, 0))"),
    ("a list of images of different sizes", lambda: [BATCH01[0], BATCH01[0, :20]], "different shapes"),
]


@pytest.mark.parametrize("case, make, fix", BATCH_ERRORS, ids=[row[0] for row in BATCH_ERRORS])
def test_batch_layout_errors_name_the_fix(models, case, make, fix):
    with pytest.raises(ImageError) as raised:
        check_images(make(), tuple(models["plain"].inputs[0].shape), model=models["plain"])
    assert fix in str(raised.value) and "resize_images(images" not in str(raised.value)


# --------------------------------------------------------------------------- model-ready batches
def reference_model_ready(image, input_shape, preprocessing):
    """The command's _model_ready (camtutor/cli.py at a59fc11), restated: resize, preprocess, grey for 1 channel."""
    _, height, width, channels = input_shape
    if image.shape[:2] != (height, width):
        image = resize_images(image, (height, width))
    image = ct.preprocess(image[None], preprocessing)[0]
    if channels == 1:
        image = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)[..., None]
    return image


@pytest.fixture
def photo_files(write):
    rng = np.random.default_rng(3)
    return [write("a.png", encode(rng.integers(0, 256, (50, 40, 3), dtype=np.uint8))),
            write("b.jpg", encode(rng.integers(0, 256, (20, 70, 3), dtype=np.uint8), ".jpg")),
            write("c.png", encode(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)))]


@pytest.mark.parametrize("key, preprocessing", [("plain", "none"), ("plain", "mobilenet_v2"), ("plain", "vgg16"),
                                                ("grey", "none")])
def test_prepare_images_is_the_commands_model_ready_for_paths(models, photo_files, key, preprocessing):
    model = models[key]
    batch = im.prepare_images(photo_files, model, preprocessing)
    shape = tuple(model.inputs[0].shape)
    expected = np.stack([reference_model_ready(ct.data.load_image(p), shape, preprocessing) for p in photo_files])
    assert batch.shape == (3, SIZE, SIZE, shape[-1]) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch, expected)


def test_prepare_images_mixes_paths_and_arrays(models, photo_files):
    array = np.random.default_rng(4).random((10, 12, 3), dtype=np.float32)
    batch = im.prepare_images([photo_files[0], array, (array * 255).round().astype(np.uint8)], models["plain"])
    np.testing.assert_array_equal(batch[1], resize_images(array, SIZE))
    np.testing.assert_allclose(batch[2], batch[1], atol=1 / 255)
    assert len(ct.grad_cam(models["plain"], batch, 0)) == 3


PREPARE_ERRORS = [
    ("a model name", lambda m, f: im.prepare_images(f, "shapes"), ModelError, "camtutor.models.load('shapes')"),
    ("a 2-channel model", lambda m, f: im.prepare_images(f, m["two"]), ImageError, "1- and 3-channel"),
    ("0..255 float array", lambda m, f: im.prepare_images([BATCH01[0] * 255], m["plain"]), ImageError, "by 255"),
    ("channels-first array", lambda m, f: im.prepare_images([BATCH01[0].transpose(2, 0, 1)], m["plain"]), ImageError,
     "np.transpose(image, (1, 2, 0))"),
    ("no images", lambda m, f: im.prepare_images([], m["plain"]), ImageError, "at least one"),
    ("unknown preprocessing", lambda m, f: im.prepare_images(f, m["plain"], "imagenet"), ImageError, "mobilenet_v2"),
]


@pytest.mark.parametrize("case, call, error, fix", PREPARE_ERRORS, ids=[row[0] for row in PREPARE_ERRORS])
def test_prepare_images_refusals_name_the_fix(models, photo_files, case, call, error, fix):
    with pytest.raises(error) as raised:
        call(models, photo_files)
    assert fix in str(raised.value)


def test_data_and_images_are_one_loader():
    assert ct.data.load_image is im.load_image and ct.data.load_images is im.load_images
    assert "EXIF orientation is applied" in ct.data.load_image.__doc__


# --------------------------------------------------------------------------- the explorer's upload: one decoder
def test_decode_image_reads_uploaded_bytes_of_common_formats_as_rgb(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    for extension in (".png", ".jpg", ".bmp"):
        ok, data = cv2.imencode(extension, rgb[..., ::-1])
        image = im.decode_image(data.tobytes(), name=f"red{extension}", size=16)
        assert image.shape == (16, 16, 3) and image.dtype == np.float32
        np.testing.assert_allclose(image.mean(axis=(0, 1)), [1.0, 0.0, 0.0], atol=0.02)


@pytest.mark.parametrize("garbage", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n truncated"])
def test_decode_image_rejects_garbage(garbage):
    with pytest.raises(ImageError, match="notes.txt"):
        im.decode_image(garbage, name="notes.txt", size=32)
