"""The command never gives a silently wrong result: no lost or overwritten file, no hostile model file
loaded, every error one line, and a quick, streaming command for a newcomer.

Tables (each row: what happens today at a59fc11 in the comment of the table):

* FILE_CASES: output names distinct ignoring case, never an input, all or nothing.
* HOSTILE_MODELS: .keras files that declare absurd sizes, a zip bomb, special files; refused in seconds.
* BAD_INVOCATIONS: run in a real process (stderr captured at the file-descriptor level, TensorFlow's
  log turned on): exit 1 or 2, exactly one line "camtutor: error: ...", never "unexpected" nor a traceback.
* GOOD_ODDITIES: inputs that used to fail and now work (FREE.KERAS, a labels file with a BOM...).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import types
import zipfile
import zlib
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest

import camtutor as ct
from camtutor import cli
from camtutor.cli import main
from camtutor.loading import load_model

ROOT = Path(__file__).resolve().parents[1]
SIZE = 16
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


# --------------------------------------------------------------------------- helpers
def _png(path: Path, seed: int = 0, shape=(20, 24)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = (np.random.default_rng(seed).random((*shape, 3)) * 255).astype(np.uint8)
    assert cv2.imwrite(str(path), pixels)
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@contextlib.contextmanager
def _deadline(seconds: float):
    """Raise TimeoutError if the block runs longer (also interrupts a blocking open() of a FIFO)."""

    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _zip(path: Path, entries: list[tuple[str, bytes, int, int]]) -> Path:
    """Write a zip by hand: entries are (name, raw deflate data, crc32, uncompressed size)."""
    body, central = bytearray(), bytearray()
    for name, data, crc, size in entries:
        encoded = name.encode()
        offset = len(body)
        body += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(data), size, len(encoded), 0)
        body += encoded + data
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21, crc, len(data), size,
                               len(encoded), 0, 0, 0, 0, 0, offset)
        central += encoded
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), len(body), 0)
    path.write_bytes(bytes(body + central + end))
    return path


def _deflated(name: str, data: bytes) -> tuple[str, bytes, int, int]:
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    return name, packer.compress(data) + packer.flush(), zlib.crc32(data), len(data)


def _keras_with_config(path: Path, template: Path, edit) -> Path:
    """A copy of the .keras file ``template`` whose config.json is changed by ``edit(config)``."""
    with zipfile.ZipFile(template) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(parts["config.json"])
    edit(config)
    parts["config.json"] = json.dumps(config).encode()
    return _zip(path, [_deflated(name, data) for name, data in parts.items()])


def _zip_bomb(path: Path, template: Path, gigabytes: int = 1) -> Path:
    """A .keras file whose config.json is the real config followed by ``gigabytes`` GiB of spaces (valid JSON),
    about 1 MB on disk: deflate blocks of 1 MiB of spaces, each after a full flush, are identical."""
    with zipfile.ZipFile(template) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    head = parts.pop("config.json")
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = b" " * 2**20
    first = packer.compress(head) + packer.flush(zlib.Z_FULL_FLUSH)
    block = packer.compress(chunk) + packer.flush(zlib.Z_FULL_FLUSH)
    count = 1024 * gigabytes
    crc = zlib.crc32(head)
    for _ in range(count):
        crc = zlib.crc32(chunk, crc)
    data = first + block * count + packer.flush()
    bomb = ("config.json", data, crc, len(head) + count * len(chunk))
    return _zip(path, [bomb] + [_deflated(name, raw) for name, raw in parts.items()])


def _layer(config: dict, class_name: str) -> dict:
    return next(layer for layer in config["config"]["layers"] if layer["class_name"] == class_name)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    keras.utils.set_random_seed(0)
    d = tmp_path_factory.mktemp("safety")
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="feat")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(x), name="tiny")
    model.save(d / "gap.keras")
    (d / "FREE.KERAS").write_bytes((d / "gap.keras").read_bytes())

    @keras.saving.register_keras_serializable("camtutor_test")
    class TinySubclassed(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.feat = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="feat")
            self.gap = keras.layers.GlobalAveragePooling2D()
            self.out = keras.layers.Dense(3, activation="softmax")

        def call(self, images):
            return self.out(self.gap(self.feat(images)))

    subclassed = TinySubclassed()
    subclassed(np.zeros((1, SIZE, SIZE, 3), np.float32))
    subclassed.save(d / "subclassed.keras")

    template = d / "gap.keras"
    files = types.SimpleNamespace(
        template=template,
        subclassed_model=subclassed,
        dense_1e9=_keras_with_config(d / "dense_1e9.keras", template,
                                     lambda c: _layer(c, "Dense")["config"].update(units=10**9)),
        huge_input=_keras_with_config(d / "huge_input.keras", template,
                                      lambda c: _layer(c, "InputLayer")["config"].update(
                                          batch_shape=[None, 100000, 100000, 3])),
        conv_1e9=_keras_with_config(d / "conv_1e9.keras", template,
                                    lambda c: _layer(c, "Conv2D")["config"].update(filters=10**9)),
        kernel_1e5=_keras_with_config(d / "kernel_1e5.keras", template,
                                      lambda c: _layer(c, "Conv2D")["config"].update(kernel_size=[100000, 100000])),
        dense_1e6=_keras_with_config(d / "dense_1e6.keras", template,  # 16 MB of weights, in a few-KB file
                                     lambda c: _layer(c, "Dense")["config"].update(units=10**6)),
        infinite=_keras_with_config(d / "infinite.keras", template,
                                    lambda c: _layer(c, "Dense")["config"].update(units=float("inf"))),
        bomb=_zip_bomb(d / "bomb.keras", template),
        fifo=d / "pipe.keras",
        fifo_image=d / "pipe.png",
        fifo_labels=d / "pipe.txt",
        image=_png(d / "photo.png"),
        image2=_png(d / "photo2.png", seed=1),
        labels_bom=d / "labels_bom.txt",
        a_file=d / "a_file",
    )
    for fifo in (files.fifo, files.fifo_image, files.fifo_labels):
        os.mkfifo(fifo)
    files.labels_bom.write_bytes("circle\nsquare\ntriangle\n".encode("utf-8-sig"))
    files.a_file.write_text("not a folder\n")
    return types.SimpleNamespace(d=d, files=files, model=model)


# --------------------------------------------------------------------------- 1. files: never lose or overwrite data
def _rerun_over_outputs(c, d):  # camtutor explain out/*.png --out out/, with earlier outputs among the inputs
    out = d / "out"
    return [_png(out / "cat.png"), _png(out / "cat_gradcam.png", 2), _png(out / "cat-2_gradcam.png", 3)], out


def _same_names(c, d):  # a/cat.png, b/cat.png and cat-2.png (today: two of them write cat-2_gradcam.png)
    return [_png(d / "a" / "cat.png"), _png(d / "b" / "cat.png", 1), _png(d / "cat-2.png", 2)], d / "out"


def _names_differing_by_case(c, d):  # a/Cat.png, b/cat.png (today: Cat_ and cat_gradcam.png, one file on macOS)
    return [_png(d / "a" / "Cat.png"), _png(d / "b" / "cat.png", 1)], d / "out"


FILE_CASES = [
    # (case, make(ctx, tmp) -> (inputs, out), number of outputs expected)
    ("re-run over earlier outputs", _rerun_over_outputs, 3),
    ("same file name in two folders", _same_names, 3),
    ("names differing only by case", _names_differing_by_case, 2),
]


@pytest.mark.parametrize("case, make, n_outputs", FILE_CASES, ids=[row[0] for row in FILE_CASES])
def test_outputs_are_distinct_ignoring_case_and_never_replace_an_input(ctx, tmp_path, capsys, case, make, n_outputs):
    inputs, out = make(ctx, tmp_path)
    before = {path: _digest(path) for path in inputs}
    assert main(["explain", *map(str, inputs), "--model", str(ctx.files.template), "--out", str(out)]) == 0
    assert {path: _digest(path) for path in inputs} == before, f"{case}: an input was overwritten"
    written = [Path(line.split(" -> ")[1].split("  (")[0]) for line in capsys.readouterr().out.splitlines()
               if line.startswith("[")]
    assert len(written) == n_outputs == len({str(p).casefold() for p in written}), written
    assert all(p.is_file() and p not in inputs for p in written)
    assert not [name for name in _files(out) if name.endswith(".tmp")]


def _folder_in_the_way(c, d):
    (d / "out" / "photo2_gradcam.png").mkdir(parents=True)
    return d / "out", d / "out" / "photo2_gradcam.png"


WRITE_FAILURES = [
    # (case, make(ctx, tmp) -> (--out, the path the message must name)); today: the first output is written
    # before the folder in the way fails, and /proc or a path under a file pass os.access and end "unexpected".
    ("a folder in the way at an output path", _folder_in_the_way),
    ("--out under /proc", lambda c, d: (Path("/proc/camtutor-test-out/maps"), "/proc/camtutor-test-out")),
    ("--out under a regular file", lambda c, d: (c.files.a_file / "maps", c.files.a_file / "maps")),
    ("--out is a regular file", lambda c, d: (c.files.a_file, c.files.a_file)),
]


@pytest.mark.parametrize("case, make", WRITE_FAILURES, ids=[row[0] for row in WRITE_FAILURES])
def test_all_or_nothing_when_an_output_cannot_be_written(ctx, tmp_path, capfd, case, make):
    out, failing = make(ctx, tmp_path)
    before = _files(out) if out.is_dir() else None
    code = main(["explain", str(ctx.files.image), str(ctx.files.image2), "--model", str(ctx.files.template),
                 "--out", str(out)])
    err = capfd.readouterr().err
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("camtutor: error: ") and "unexpected" not in err, err
    assert f"'{failing}'" in err, f"{case}: the message does not name {failing}: {err}"
    assert (_files(out) if out.is_dir() else None) == before, f"{case}: wrote {_files(out)}"


def test_a_failure_after_the_first_batch_leaves_nothing(ctx, tmp_path, monkeypatch, capfd):
    """Batches are written to temporary files as they finish; an error later removes them and the new folder."""
    monkeypatch.setattr(cli, "BATCH_SIZE", 1)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(ctx.files.image.read_bytes()[:60])  # a PNG header, then nothing
    out = tmp_path / "new" / "maps"
    code = main(["explain", str(ctx.files.image), str(corrupt), "--model", str(ctx.files.template),
                 "--out", str(out)])
    captured = capfd.readouterr()
    assert code == 1 and "[1/2]" in captured.out and "corrupt.png" in captured.err
    assert not (tmp_path / "new").exists()


def test_help_says_where_outputs_go_and_the_folder_is_ignored(capsys):
    assert main(["explain", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"./{cli.DEFAULT_OUT}" in text and "never replaces one of this run's inputs" in text
    assert "All or nothing" in text
    assert f"{cli.DEFAULT_OUT}/" in (ROOT / ".gitignore").read_text().splitlines()


# --------------------------------------------------------------------------- 2. hostile and huge model files
HOSTILE_MODELS = [
    # (case, file, fragment of the ModelError). Today: the first four try to allocate gigabytes (or more) in
    # Keras, the bomb is read whole (1 GiB) and loads, the FIFO blocks forever, the subclassed model gets a fix
    # that does not work (camtutor.grad_cam refuses a subclassed model).
    ("Dense layer of 10^9 units", "dense_1e9", "parameters"),
    ("100000 x 100000 input", "huge_input", "values per image"),
    ("Conv2D of 10^9 filters", "conv_1e9", "parameters"),
    ("kernel of 100000 x 100000", "kernel_1e5", "kernel_size"),
    ("more parameters than weight bytes", "dense_1e6", "weights file holds only"),
    ("non-finite layer size", "infinite", "non-finite"),
    ("config.json zip bomb (1 GiB of spaces)", "bomb", "config.json"),
    ("a FIFO named .keras", "fifo", "named pipe"),
    ("a character device", Path(os.devnull), "character device"),
    ("a subclassed model", "subclassed", "keras.Model(inputs, model.call(inputs))"),
]


@pytest.mark.parametrize("case, file, fragment", HOSTILE_MODELS, ids=[row[0] for row in HOSTILE_MODELS])
def test_hostile_model_files_are_refused_before_keras_reads_them(ctx, case, file, fragment, monkeypatch):
    """Refused by camtutor's own checks: Keras's loader is never called (how fast that is: benchmarks.bench_startup)."""
    import keras

    def never(*args, **kwargs):
        raise AssertionError(f"{case}: Keras was asked to load a file camtutor should have refused")

    monkeypatch.setattr(keras.saving, "load_model", never)
    path = file if isinstance(file, Path) else getattr(ctx.files, file, ctx.d / f"{file}.keras")
    with _deadline(20), pytest.raises(ct.ModelError) as raised:
        load_model(path)
    assert fragment in str(raised.value), f"{case}: {raised.value}"
    assert "\n" not in str(raised.value)


def test_real_models_pass_and_the_parameter_bound_is_tight(tmp_path):
    """No false alarm: Sequential and Functional files with dense, grouped, depthwise, separable and nested
    layers pass, and the bound counted from the file is a lower bound within 10% of the truth."""
    from camtutor.loading import check_keras_archive, check_model_config

    inputs = keras.Input((SIZE, SIZE, 8))
    x = keras.layers.Conv2D(16, 3, groups=4, padding="same")(inputs)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2)(x)
    x = keras.layers.SeparableConv2D(24, 3, name="feat")(x)
    inner = keras.Sequential([keras.Input(x.shape[1:]), keras.layers.Conv2D(12, 1)], name="nested")
    x = keras.layers.GlobalAveragePooling2D()(inner(x))
    model = keras.Model(inputs, keras.layers.Dense(5)(keras.layers.Dense(40)(x)))
    sequential = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(8, 3), keras.layers.Flatten(),
                                   keras.layers.Dense(10)])
    for m in (model, sequential):
        m.save(tmp_path / "m.keras")
        with zipfile.ZipFile(tmp_path / "m.keras") as archive:
            weights = archive.getinfo("model.weights.h5").file_size
        bound = check_model_config(check_keras_archive(tmp_path / "m.keras"), "m", weights)
        assert 0.9 * m.count_params() <= bound <= m.count_params(), (bound, m.count_params())
        assert load_model(tmp_path / "m.keras").count_params() == m.count_params()


def test_the_subclassed_model_fix_in_the_message_works(ctx, tmp_path):
    """The message's recipe, followed literally, gives a file camtutor explains with the same predictions."""
    model = ctx.files.subclassed_model
    inputs = keras.Input((SIZE, SIZE, 3))
    keras.Model(inputs, model.call(inputs)).save(tmp_path / "functional.keras")
    functional = load_model(tmp_path / "functional.keras")
    images = np.random.default_rng(0).random((2, SIZE, SIZE, 3), dtype=np.float32)
    np.testing.assert_allclose(functional.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)
    assert ct.grad_cam(functional, images, 0).shape == (2, SIZE, SIZE)


def test_safe_mode_stays_on(ctx, monkeypatch):
    calls = []
    real = keras.saving.load_model
    monkeypatch.setattr(keras.saving, "load_model", lambda *a, **k: calls.append(k) or real(*a, **k))
    load_model(ctx.files.template)
    assert calls and all(k.get("safe_mode") is True and k.get("compile") is False for k in calls)


# --------------------------------------------------------------------------- 3. one line, never "unexpected"
_DRIVER = r"""
import json, os, sys, tempfile
from camtutor.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    with tempfile.TemporaryFile() as err:
        sys.stderr.flush(); saved = os.dup(2); os.dup2(err.fileno(), 2)
        try:
            code = main(argv)
        except BaseException as exc:
            code = repr(exc)
        finally:
            sys.stderr.flush(); os.dup2(saved, 2); os.close(saved)
        err.seek(0)
        results.append([code, err.read().decode("utf-8", "replace")])
open(sys.argv[2], "w").write(json.dumps(results))
"""


def _explain(c, *extra, model="template", images=("image",)):
    model_arg = str(getattr(c.files, model)) if hasattr(c.files, model) else model
    return ["explain", *(str(getattr(c.files, i)) for i in images), "--model", model_arg,
            "--out", str(c.d / "never"), *extra]


BAD_INVOCATIONS = [
    # (case, argv(ctx), fragment of the one line, any case). Today: ³ and the two --out cases end
    # "unexpected ...", the empty item is taken for a class name, the subclassed model gets a fix that does not
    # work, the Dense layer prints TensorFlow's OOM log lines, the zip bomb loads and exits 0, a bare
    # 'camtutor' exits 2 without a word on stderr.
    ("--class=³ (a unicode superscript digit)", lambda c: _explain(c, "--class=³"), "'³'"),
    ("--class with an empty item", lambda c: _explain(c, "--class=0,,1"), "empty item"),
    ("--out under /proc", lambda c: _explain(c)[:-1] + ["/proc/camtutor-test/out"], "/proc/camtutor-test"),
    ("--out under a regular file", lambda c: _explain(c)[:-1] + [str(c.files.a_file / "out")], "a_file"),
    ("a subclassed model", lambda c: _explain(c, model=str(c.d / "subclassed.keras")), "Functional"),
    ("a Dense layer of 10^9 units", lambda c: _explain(c, model="dense_1e9"), "parameters"),
    ("a zip bomb", lambda c: _explain(c, model="bomb"), "zip bomb"),
    ("/dev/null as the model", lambda c: _explain(c, model=os.devnull), "character device"),
    ("a folder as an image", lambda c: ["explain", str(c.d), "--out", str(c.d / "never")], "is a "),
    ("a missing image", lambda c: ["explain", str(c.d / "nope.png"), "--out", str(c.d / "never")], "no such image"),
    ("a text file as an image", lambda c: ["explain", str(c.files.a_file), "--out", str(c.d / "never")],
     "not an image"),
    ("a missing model", lambda c: _explain(c, model=str(c.d / "missing.keras")), "no such model"),
    ("an unknown bundled model", lambda c: _explain(c, model="shapez"), "bundled"),
    ("a class out of range", lambda c: _explain(c, "--class", "9"), "out of range"),
    ("an unknown layer", lambda c: _explain(c, "--layer", "nope"), "nope"),
    ("--top 0", lambda c: _explain(c, "--top", "0"), "--top"),
    ("--alpha nan", lambda c: _explain(c, "--alpha", "nan"), "--alpha"),
    ("--top abc (usage)", lambda c: _explain(c, "--top", "abc"), "invalid int"),
    ("unknown method (usage)", lambda c: _explain(c, "--method", "grad-cam"), "invalid choice"),
    ("unknown option (usage)", lambda c: _explain(c, "--colour", "red"), "unrecognized"),
    ("no image (usage)", lambda c: ["explain"], "required"),
    ("no command (usage)", lambda c: [], "no command"),
    ("layers of a FIFO-free missing model", lambda c: ["layers", str(c.d / "missing.keras")], "no such model"),
]


def test_bad_invocations_print_one_line_in_a_real_process(ctx, tmp_path):
    """All rows in one process (TensorFlow starts once, with its C++ log level at 0 to prove the silencing)."""
    report = tmp_path / "report.json"
    argvs = [argv(ctx) for _, argv, _ in BAD_INVOCATIONS]
    env = {**ENV, "TF_CPP_MIN_LOG_LEVEL": "0"}
    run = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps(argvs), str(report)],
                         capture_output=True, text=True, env=env, timeout=240, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads(report.read_text())
    failures = []
    for (case, _, fragment), (code, err) in zip(BAD_INVOCATIONS, results):
        lines = err.splitlines()
        ok = (code in (1, 2) and len(lines) == 1 and lines[0].startswith("camtutor: error: ")
              and "unexpected" not in err and "Traceback" not in err and fragment.lower() in err.lower())
        if not ok:
            failures.append(f"{case}: exit {code}, stderr {err!r}")
    assert not failures, "\n".join(failures)
    assert not (ctx.d / "never").exists()
    assert run.stderr == "", run.stderr[-2000:]  # nothing leaked outside the cases either


SPECIAL_FILES = [
    # (case, argv(ctx), fragment). Today each blocks forever reading the FIFO.
    ("a FIFO as the model", lambda c: ["layers", str(c.files.fifo)], "named pipe"),
    ("a FIFO as an image", lambda c: _explain(c, images=("image", "fifo_image")), "named pipe"),
    ("a FIFO as the labels file", lambda c: _explain(c, "--labels", str(c.files.fifo_labels)), "named pipe"),
]


@pytest.mark.parametrize("case, argv, fragment", SPECIAL_FILES, ids=[row[0] for row in SPECIAL_FILES])
def test_special_files_are_refused_at_once(ctx, capfd, case, argv, fragment):
    with _deadline(30):
        code = main(argv(ctx))
    err = capfd.readouterr().err
    assert code == 1 and len(err.splitlines()) == 1 and fragment in err, err


# --------------------------------------------------------------------------- inputs that now work
def test_upper_case_keras_suffix_loads(ctx, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["explain", str(ctx.files.image), "--model", str(ctx.d / "FREE.KERAS"), "--out", str(out)]) == 0
    assert _files(out) == ["photo_gradcam.png"]
    assert load_model(ctx.d / "FREE.KERAS").name == "tiny"


def test_labels_file_with_a_byte_order_mark(ctx, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["explain", str(ctx.files.image), "--model", str(ctx.files.template), "--out", str(out),
            "--labels", str(ctx.files.labels_bom), "--class", "circle"]
    assert main(argv) == 0
    assert "explained class 0 'circle'" in capsys.readouterr().out


# --------------------------------------------------------------------------- 4. a newcomer's command
_TF_FREE = r"""
import sys, time
start = time.perf_counter()
from camtutor.cli import main
code = main(sys.argv[1:])
print("RESULT", code, "tensorflow" in sys.modules, "keras" in sys.modules, time.perf_counter() - start)
"""


@pytest.mark.parametrize("argv", [["--help"], ["explain", "--help"], ["models"], ["explain", "--top", "x", "a.png"],
                                  ["layers"], [], ["explain", "missing.png"],
                                  ["explain", "missing.png", "--model", "net.keras", "--out", "/proc/x"]])
def test_help_models_and_usage_errors_never_import_tensorflow(argv):
    """Also a missing image: checked before TensorFlow starts (seconds) rather than after."""
    run = subprocess.run([sys.executable, "-c", _TF_FREE, *argv], capture_output=True, text=True, env=ENV,
                         timeout=60)
    result = run.stdout.strip().splitlines()[-1].split()
    assert result[0] == "RESULT" and result[2:4] == ["False", "False"], run.stdout[-500:]
    assert int(result[1]) in (0, 1, 2)


def test_a_misspelt_model_an_undecodable_image_and_a_too_long_name_are_refused_before_tensorflow(tmp_path):
    """Checked before TensorFlow starts (how much time that saves: benchmarks.bench_startup)."""
    import cv2

    image = tmp_path / "ok.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image at all")
    long_name = tmp_path / ("x" * 240 + ".png")  # a legal name whose overlay name is not: x..x_gradcam.png + temp
    long_name.write_bytes(image.read_bytes())
    cases = [
        (["explain", str(long_name), "--out", str(tmp_path / "o")], "has too long a name for its overlay"),
        (["explain", str(image), "--model", "face", "--out", str(tmp_path / "o")], "did you mean 'faces'?"),
        (["layers", "shapez"], "did you mean 'shapes'?"),
        (["explain", str(junk), "--model", "faces", "--out", str(tmp_path / "o")], "could not decode"),
    ]
    for argv, fragment in cases:
        run = subprocess.run([sys.executable, "-c", _TF_FREE, *argv], capture_output=True, text=True, env=ENV,
                             timeout=60)
        result = run.stdout.strip().splitlines()[-1].split()
        assert result[:4] == ["RESULT", "1", "False", "False"], (argv, run.stdout[-500:])
        assert fragment in run.stderr and len(run.stderr.splitlines()) == 1, (argv, run.stderr)
    assert not (tmp_path / "o").exists()


def test_import_camtutor_drawing_and_localisation_never_import_tensorflow():
    """``import camtutor`` is lazy; drawing, localisation, baselines and map post-processing (numpy and OpenCV,
    also through the top-level ``ct.normalize``, ``ct.upsample``, ``ct.overlay``...) never import TensorFlow;
    the first CAM function does. The public names themselves are tested in test_api.py."""
    code = (
        "import os, sys, numpy as np, camtutor as ct\n"
        "def tf(): return str('tensorflow' in sys.modules or 'keras' in sys.modules)\n"
        "print(tf(), os.environ['TF_CPP_MIN_LOG_LEVEL'], os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset'))\n"
        "import camtutor.draw, camtutor.localize, camtutor.figures, camtutor.baselines, camtutor.mapops\n"
        "maps = np.random.default_rng(0).random((2, 4, 4), dtype=np.float32)\n"
        "up = ct.upsample(ct.normalize(maps), 16)\n"
        "ct.overlay(np.zeros((16, 16, 3), np.float32), up[0]); ct.box_from_map(maps[0], size=16); ct.peak(maps[0], 16)\n"
        "ct.figures.symmetric_limit(up); ct.baselines.brightness(np.zeros((1, 8, 8, 3), np.float32))\n"
        "print(ct.normalize.__module__, ct.upsample.__module__, ct.draw.colorize.__module__, tf())\n"
        "print(ct.grad_cam.__module__, tf())\n"
    )
    env = {k: v for k, v in ENV.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    # the log level is set at import, before TensorFlow is (on first use of ct.grad_cam); a script keeps
    # TensorFlow's fast oneDNN default
    assert run.stdout.split() == ["False", "3", "unset", "camtutor.mapops", "camtutor.mapops", "camtutor.draw", "False",
                                  "camtutor.explain", "True"], run.stdout + run.stderr[-2000:]
    # in a Jupyter kernel (ipykernel imported first), oneDNN is turned off for stable notebook outputs
    kernel = subprocess.run([sys.executable, "-c", "import ipykernel, os, camtutor; print(os.environ['TF_ENABLE_ONEDNN_OPTS'])"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert kernel.stdout.split() == ["0"], kernel.stdout + kernel.stderr


def test_the_default_model_says_what_it_knows(ctx, tmp_path, capsys):
    assert main(["explain", str(ctx.files.image), "--out", str(tmp_path / "out")]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "circles, squares and triangles" in first and "--model" in first


def test_progress_is_printed_per_batch_and_memory_stays_flat(tmp_path, monkeypatch):
    """With batches of 2, the first line is out after the first batch (today: after every map), at most
    BATCH_SIZE images are in flight, and the numpy memory peak does not grow with the number of images."""
    import tracemalloc

    import camtutor.explain as explain

    inputs = keras.Input((64, 64, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3, name="feat")(inputs))
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x)).save(tmp_path / "m64.keras")
    monkeypatch.setattr(cli, "BATCH_SIZE", 2)
    calls: list[int] = []
    real = explain.heatmap
    monkeypatch.setattr(explain, "heatmap", lambda model, images, *a, **k: calls.append(len(images)) or
                        real(model, images, *a, **k))

    class Recorder(io.StringIO):
        first_line_after: int | None = None

        def write(self, text):
            if text.startswith("[") and self.first_line_after is None:
                self.first_line_after = len(calls)
            return super().write(text)

    images = [_png(tmp_path / "in" / f"{i:03d}.png", i, shape=(64, 64)) for i in range(60)]
    peaks = []
    for n in (10, 60):
        recorder = Recorder()
        calls.clear()
        tracemalloc.start()
        with contextlib.redirect_stdout(recorder):
            code = main(["explain", *map(str, images[:n]), "--model", str(tmp_path / "m64.keras"),
                         "--out", str(tmp_path / f"out{n}")])
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert code == 0
        assert recorder.first_line_after == 1, recorder.first_line_after
        assert max(calls) <= 2 and sum(calls) == n
        assert len(_files(tmp_path / f"out{n}")) == n
    # 50 more 64x64 images: today +2.4 MB of model-ready float32 images held until the end
    assert peaks[1] - peaks[0] < 1_000_000, peaks


# --------------------------------------------------------------------------- packaging
def test_ci_runs_the_readme_commands_in_its_own_venv():
    readme = (ROOT / "README.md").read_text()
    script = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = [line for line in script if line.startswith("python -m ")]
    assert commands and all(command in readme for command in commands)
    assert "python3 -m venv .venv && . .venv/bin/activate" in readme and "--allow-root" in readme
    assert not [line for line in script if ".venv" in line.replace(".ci-venv", "") and not line.startswith("#")]
    assert ".ci-venv/" in (ROOT / ".gitignore").read_text().splitlines()
    assert "Python 3.10–3.13" in readme and "camtutor layers shapes" in readme
