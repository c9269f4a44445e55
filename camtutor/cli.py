"""The ``camtutor`` command: explain image files with any Keras classifier, from a terminal.

::

    camtutor explain cat.png dog.jpg --model my_model.keras --method gradcam --out out/
    camtutor layers my_model.keras
    camtutor models

Everything that can be checked cheaply is checked before TensorFlow starts (arguments, image
files exist and have an image header, the output folder is writable, output names are distinct
and replace no input); then the model, class, layer and method are checked; then the images are
explained in batches of :data:`BATCH_SIZE`, each batch's overlays written to temporary files and
reported at once, and every temporary file is renamed into place only when all images succeeded
(all or nothing). Errors print one line ``camtutor: error: <message>`` on stderr and exit with a
non-zero code (1 for bad input, 2 for a bad command line); ``--debug`` shows the traceback and
TensorFlow's own log lines. ``--help``, ``models`` and argument errors never import TensorFlow.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_MODEL = "shapes"
DEFAULT_OUT = "camtutor_out"
#: Images loaded, explained and written per step: memory stays flat however many images are given.
BATCH_SIZE = 16
#: Largest --labels file read.
MAX_LABELS_BYTES = 16 * 2**20

_EXPLAIN_EPILOG = """\
images:
  Any size and format OpenCV reads (PNG, JPEG, BMP, TIFF, WebP...). Each file is
  read as RGB float in [0, 1] (greyscale -> 3 channels, transparency over white),
  resized to the model's input size, then preprocessed with --preprocess. A model
  with a free input size (None, None, C) runs on each image as it is, up to
  camtutor.images.MAX_MODEL_PIXELS = 1024 x 1024 pixels (a larger image is refused
  before the model runs; shrink it, or raise CAMTUTOR_MAX_MODEL_PIXELS).

outputs:
  One overlay PNG per image, drawn on the original image at its own size (longest
  side capped at camtutor.draw.MAX_OVERLAY_SIDE = 2048 px), written
  as OUT/<name>_<method>.png; OUT is --out, by default ./{default_out} (created if
  needed). A file of that name from an earlier run is replaced. Names are kept
  distinct ignoring case: a/cat.png and b/Cat.png give cat_gradcam.png and
  Cat-2_gradcam.png. An output never replaces one of this run's inputs (as in
  'camtutor explain out/*.png --out out/'): it takes the next free -2, -3... name.
  All or nothing: the overlays go to temporary files in OUT, renamed into place
  only when every image succeeded; on any error no output file is left. Images
  go through in batches of {batch}: each line is printed as its batch is done.

methods (--method):
{methods}

preprocessing (--preprocess NAME): for a keras.applications model, pass its module
name: the [0, 1] image is multiplied by 255 and keras.applications.NAME.preprocess_input
is applied (a copy; your files are never changed):
{preprocessing}

class (--class):
  top (default)   each image's top predicted class
  3               class index 3 for every image
  cat             a class name (bundled models know theirs; otherwise --labels FILE)
  3,0,cat         one class per image, in the order of the images

examples:
  camtutor explain photo.jpg --model faces                 # bundled face / not-face teaching model*
  camtutor explain *.png --model faces --method cam --out maps/
  camtutor explain cat.jpg --model net.keras --preprocess mobilenet_v2 --layer out_relu
  (without --model, the bundled 'shapes' model: it only knows circles, squares, triangles)
  * 'faces' learnt from 25-px grey LFW crops: it calls many photos 'face' (scikit-image's
    cat 0.85, rocket 0.77, coffee cup 1.00); practise reading maps with it, not detecting faces.
"""

_DEFAULT_MODEL_NOTE = (
    "note: no --model given, so this is the bundled 'shapes' model, which only knows circles, squares and "
    "triangles; for your own photos pass --model your_model.keras, or --model faces (face / not face: a small "
    "teaching model trained on 25-px grey LFW crops, which calls many non-face photos 'face')"
)


def _preprocessing_help() -> str:
    from camtutor.loading import PREPROCESSING

    return "\n".join(f"  {name:<14}{description}" for name, (_, description) in PREPROCESSING.items())


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: ``camtutor: error: ...`` (exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        message = " ".join(message.split())
        sys.stderr.write(f"camtutor: error: {message} (see: {self.prog} --help)\n")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``camtutor`` with its three subcommands. Imports no TensorFlow."""
    from camtutor.loading import PREPROCESSING  # TF-free: keras is imported only to load a model
    from camtutor.methods import METHODS, method_help

    debug = _Parser(add_help=False)
    debug.add_argument("--debug", action="store_true", help="show the Python traceback and TensorFlow's log on errors")

    parser = _Parser(
        prog="camtutor",
        description="Class activation maps (CAM, Grad-CAM, HiResCAM) for Keras image classifiers.",
        epilog="Run 'camtutor COMMAND --help' for the options of each command. 'explain' writes its overlays to "
        f"./{DEFAULT_OUT}/ unless you pass --out DIR. Exit status: 0 on success, "
        "1 when an input is refused (one line on stderr: 'camtutor: error: ...'; add --debug for the traceback), "
        "2 for a malformed command line.",
        parents=[debug],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    explain = commands.add_parser(
        "explain",
        parents=[debug],
        help=f"write a heatmap overlay PNG for each image (to ./{DEFAULT_OUT}/ or --out) and print the top predictions",
        description="Write one heatmap overlay PNG per image and print the model's top predictions.",
        epilog=_EXPLAIN_EPILOG.format(
            default_out=DEFAULT_OUT, batch=BATCH_SIZE, methods=method_help(), preprocessing=_preprocessing_help()
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    explain.add_argument("images", nargs="+", metavar="IMAGE", help="image files to explain")
    explain.add_argument(
        "--model", default=None, metavar="NAME|PATH.keras",
        help=f"a bundled model name (see 'camtutor models') or a .keras file (default: {DEFAULT_MODEL}, "
        "synthetic shapes only)",
    )
    explain.add_argument("--method", default="gradcam", choices=METHODS, help="default: gradcam; see below")
    explain.add_argument(
        "--class", dest="target", default="top", metavar="INDEX|NAME|top",
        help="the class to explain: top, an index, a name, or a comma list with one per image (default: top)",
    )
    explain.add_argument("--layer", default=None, metavar="NAME", help="feature-map layer (default: the last one)")
    explain.add_argument(
        "--grid", default=None, metavar="HxW[+P]",
        help="the --layer is Vision Transformer tokens on an H x W patch grid after P class/register tokens "
        "(default 0); needed only where camtutor cannot read the grid from the model",
    )
    explain.add_argument(
        "--out", default=DEFAULT_OUT, metavar="DIR",
        help=f"output folder, created if needed (default: ./{DEFAULT_OUT}); see 'outputs' below",
    )
    explain.add_argument(
        "--preprocess", default="none", choices=list(PREPROCESSING), metavar="NAME",
        help="how the model expects its pixels (default: none = RGB in [0, 1]); choices below",
    )
    explain.add_argument("--labels", default=None, metavar="FILE", help="text file with one class name per line")
    explain.add_argument("--top", type=int, default=3, metavar="K", help="print the K best classes (default: 3)")
    explain.add_argument("--alpha", type=float, default=0.4, help="heatmap opacity in [0, 1] (default: 0.4)")
    explain.set_defaults(run=run_explain)

    layers = commands.add_parser(
        "layers", parents=[debug],
        help="list a model's feature-map layers (choices for --layer) with their output shapes",
        description="List the layers whose output is a (B, H, W, K) feature map, from input to output.",
    )
    layers.add_argument("model", metavar="MODEL", help="a bundled model name or a .keras file")
    layers.set_defaults(run=run_layers)

    models = commands.add_parser(
        "models", parents=[debug], help="list the bundled models", description="List the bundled models."
    )
    models.set_defaults(run=run_models)
    return parser


# --------------------------------------------------------------------------- cheap checks (no TensorFlow)
def _check_image_files(paths: Sequence[Path]) -> None:
    """Every image path is a regular, non-empty file whose header is readable and within the pixel limit.

    :func:`camtutor.images.check_image_file` reads only the header (no pixels, no TensorFlow), so a
    decompression bomb or a FIFO is refused before the model loads. A file whose header Pillow does
    not recognise (not an image at all, or a format only OpenCV reads) is decoded now, also without
    TensorFlow, so that an undecodable file is refused at once rather than after the model loads.
    """
    from camtutor.images import check_image_file, load_image

    for path in paths:
        if check_image_file(path) is None:
            load_image(path)


def _check_model_name(model: str) -> None:
    """Refuse a model that is neither a bundled name nor a path, before TensorFlow starts (seconds).

    The same rule as :func:`camtutor.loading.is_model_path` (a slash or a dot makes a path; a bare
    name that exists in the working directory is a path too), read without importing Keras.
    """
    import difflib

    from camtutor.errors import ModelError

    bundled = _bundled_models()
    if any(mark in model for mark in ("/", "\\", ".")) or model in bundled or Path(model).expanduser().exists():
        return
    close = difflib.get_close_matches(model, list(bundled), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise ModelError(
        f"unknown model {model!r}: not a bundled model ({', '.join(bundled)}) and not a path; {hint}"
        "pass a bundled name or the path of a .keras file"
    )


def _read_labels(path: str, num_classes: int) -> tuple[str, ...]:
    """One class name per non-blank line, UTF-8 (a byte-order mark is ignored); exactly ``num_classes`` of them."""
    from camtutor.errors import TargetError
    from camtutor.loading import file_problem

    file = Path(path).expanduser()
    problem = file_problem(file, "labels")
    if problem is None and file.stat().st_size > MAX_LABELS_BYTES:
        problem = f"the labels file '{path}' is larger than {MAX_LABELS_BYTES:,} bytes; pass one name per line"
    if problem is not None:
        raise TargetError(problem)
    try:
        lines = file.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetError(f"could not read the labels file '{path}': {exc}; pass a UTF-8 text file") from None
    names = tuple(line.strip() for line in lines if line.strip())
    if len(names) != num_classes:
        raise TargetError(
            f"the labels file '{path}' has {len(names)} names but the model has {num_classes} classes; "
            "write one class name per line, in the model's output order"
        )
    return names


def _parse_target(text: str, n_images: int):
    """'top' -> None; '3' -> 3; 'cat' -> 'cat'; '3,0,cat' -> [3, 0, 'cat']. Only ASCII digits make an index."""
    from camtutor.errors import TargetError

    items = [item.strip() for item in text.split(",")]
    if any(not item for item in items):
        raise TargetError(f"--class {text!r} has an empty item; pass top, an index, a name or a comma list")
    values: list[int | str] = [
        int(item) if item.isascii() and item.lstrip("-").isdigit() else item for item in items
    ]
    if values == ["top"]:
        return None
    return values[0] if len(values) == 1 else values


def _identity(path: Path) -> str:
    """A path's key for collisions: absolute, symlinks resolved, case-folded (case-insensitive file systems)."""
    return os.path.normcase(str(path.expanduser().resolve())).casefold()


def _output_paths(paths: Sequence[Path], out: Path, method: str) -> list[Path]:
    """OUT/<stem>_<method>.png, one per input, distinct ignoring case, and never one of the inputs.

    a/cat.png, b/Cat.png -> cat_gradcam.png, Cat-2_gradcam.png. A name that is one of the inputs
    (``explain out/*.png --out out/``; symlinks resolved) takes the next free -2, -3... suffix.
    """
    inputs = {_identity(path) for path in paths}
    taken: set[str] = set()
    result = []
    for path in paths:
        stem = path.stem or "image"
        for k in itertools.count(1):
            name = f"{stem}{'' if k == 1 else f'-{k}'}_{method}.png"
            if name.casefold() not in taken and _identity(out / name) not in inputs:
                break
        taken.add(name.casefold())
        result.append(out / name)
    return result


def _make_out_folder(out: Path) -> list[Path]:
    """Create ``out`` (and missing parents) and prove it writable by writing and removing a probe file.

    Returns the folders created (to remove on failure). Tries instead of ``os.access`` (root passes every
    ``os.access`` test, and /proc or a path under a regular file fail only when tried).
    """
    from camtutor.errors import CamTutorError

    missing = []
    folder = out
    while not os.path.lexists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    created: list[Path] = []
    try:
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except OSError as exc:
                raise CamTutorError(
                    f"cannot create the output folder '{folder}': {exc.strerror or exc}; choose another --out folder"
                ) from None
            created.append(folder)
        if not out.is_dir():
            raise CamTutorError(f"--out '{out}' is a file, not a folder; pass a folder name")
        try:
            handle, probe = tempfile.mkstemp(prefix=".camtutor-probe-", dir=out)
            try:
                os.write(handle, b"camtutor")
            finally:
                os.close(handle)
                os.unlink(probe)
        except OSError as exc:
            raise CamTutorError(
                f"cannot write in the output folder '{out}': {exc.strerror or exc}; choose another --out folder"
            ) from None
    except BaseException:
        _remove_folders(created)
        raise
    return created


def _remove_folders(created: Sequence[Path]) -> None:
    for folder in reversed(created):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if still empty


#: What ``tempfile.mkstemp`` adds around an output's name: ".<name>." + 8 random characters + ".tmp".
_TEMPORARY_EXTRA_BYTES = len(".") + len(".") + 8 + len(".tmp")


def _name_max(folder: Path) -> int:
    """The longest file name (bytes) the folder's file system takes; 255 where it does not say."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):  # pragma: no cover - Windows, or an unusual file system
        return 255


def _check_outputs(paths: Sequence[Path], outputs: Sequence[Path]) -> None:
    """Every output name fits the folder's file system, and nothing but a regular file (replaced) sits at an
    output path (a folder in the way is an error). Checked before the model loads."""
    from camtutor.errors import CamTutorError

    for path, output in zip(paths, outputs):
        limit = _name_max(output.parent)
        size = len(os.fsencode(output.name)) + _TEMPORARY_EXTRA_BYTES
        if size > limit:
            raise CamTutorError(
                f"the input '{path}' has too long a name for its overlay: '{output.name}' and its temporary "
                f"file need {size} bytes, over the {limit}-byte limit of file names in '{output.parent}'; "
                "rename or copy the image to a shorter name"
            )
        if os.path.lexists(output) and not output.is_file():
            kind = "a folder" if output.is_dir() else "something that is not a regular file"
            raise CamTutorError(
                f"cannot write '{output}': {kind} is in the way; move it or choose another --out folder"
            )


# --------------------------------------------------------------------------- explain
@dataclass
class _Plan:
    """Everything ``explain`` needs, validated before any output file is written."""

    model: object
    paths: list[Path]
    outputs: list[Path]
    class_names: tuple[str, ...] | None
    classes: np.ndarray | None  # one class per image, or None for each image's top class
    created: list[Path]  # output folders this run created (removed again on failure)


def _load_batch(paths: Sequence[Path | str | np.ndarray], model, preprocessing: str) -> np.ndarray:
    """Image files (or RGB [0, 1] (H, W, 3) arrays) -> one model-ready batch (B, h, w, c) float32.

    :func:`camtutor.images.prepare_images`, the one path shared with the explorer's upload: each image is
    read as RGB float in [0, 1], resized to the model's input (H, W) when it is fixed, preprocessed with
    ``preprocessing`` (a key of :data:`camtutor.loading.PREPROCESSING`) and converted to the model's 1 or
    3 channels. A model with a free input size needs images of one size per batch.
    """
    from camtutor.images import prepare_images

    return prepare_images(list(paths), model, preprocessing)


def _parse_grid(grid: str | None, layer: str | None) -> tuple[int, int, int] | None:
    """``--grid HxW[+P]`` -> (h, w, prefix), checked without TensorFlow; CamTutorError naming the form."""
    import re

    from camtutor.errors import LayerError

    if grid is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*(?:\+\s*(\d+))?\s*", grid)
    if match is None or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise LayerError(f"--grid must be HxW or HxW+P (patch rows x columns, P class/register tokens before them), "
                         f"e.g. --grid 6x10+1; got {grid!r}")
    if layer is None:
        raise LayerError("--grid states the grid of a token layer: pass the layer too, e.g. --layer NAME --grid 6x10+1")
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def _plan(args: argparse.Namespace) -> _Plan:
    """Check everything before the first output file: cheap checks first (no TensorFlow), then the model's."""
    from camtutor.errors import CamTutorError, TargetError
    from camtutor.loading import file_problem

    if args.top < 1:
        raise CamTutorError(f"--top must be at least 1, got {args.top}")
    if not 0.0 <= args.alpha <= 1.0:
        raise CamTutorError(f"--alpha must be in [0, 1], got {args.alpha}")
    args.grid = _parse_grid(args.grid, args.layer)
    _check_model_name(args.model)
    paths = [Path(p).expanduser() for p in args.images]
    _check_image_files(paths)
    if args.labels:  # a missing file or a FIFO is refused now, before TensorFlow starts
        problem = file_problem(Path(args.labels).expanduser(), "labels")
        if problem is not None:
            raise TargetError(problem)
    target = _parse_target(args.target, len(paths))
    out = Path(args.out).expanduser()
    created = _make_out_folder(out)
    try:
        outputs = _output_paths(paths, out, args.method)
        _check_outputs(paths, outputs)
        print(f"loading TensorFlow and model '{args.model}'...", flush=True)  # the next step takes seconds
        model, names, classes = _check_model(args, target, len(paths))
        _check_free_input_size(model, paths)
    except BaseException:
        _remove_folders(created)
        raise
    return _Plan(model, paths, outputs, names, classes, created)


def _check_free_input_size(model, paths: Sequence[Path]) -> None:
    """A model with a free input size runs on each image as it is: refuse one above
    :data:`camtutor.images.MAX_MODEL_PIXELS` now, from its header, before any map is computed."""
    from camtutor.images import check_image_file, check_model_input_size

    shape = tuple(model.inputs[0].shape)
    if shape[1] is None or shape[2] is None:
        for path in paths:
            size = check_image_file(path)
            if size is not None:  # a header only the full decoder reads: prepare_images checks it
                check_model_input_size(*size, shape, str(path))


def _check_model(args: argparse.Namespace, target, n_images: int):
    """Load the model; check labels, --method cam, --layer and --class against it. -> (model, names, classes)."""
    import numpy as np

    from camtutor import methods
    from camtutor.errors import ModelError, TargetError
    from camtutor.layers import find_layer, gap_dense_head, output_info
    from camtutor.loading import load_model, model_class_names
    from camtutor.targets import resolve_class_indices

    model = load_model(args.model)
    num_classes = output_info(model).num_classes
    names = _read_labels(args.labels, num_classes) if args.labels else model_class_names(args.model)
    entry = methods.get(args.method)
    if entry.gap_layer:
        try:
            gap_dense_head(model)
        except ModelError as error:
            raise ModelError(f"{error} (on the command line: --method gradcam)") from None
    methods.default_score(entry, output_info(model).logits_reachable)  # refuses a class-blind fallback
    if getattr(args, "grid", None) is not None:  # the layer becomes camtutor.TokenLayer(name, grid, prefix)
        from camtutor.feature_maps import TokenLayer

        args.layer = TokenLayer(args.layer, args.grid[:2], args.grid[2])
    if args.layer is not None:
        find_layer(model, args.layer)
    if target is None:
        return model, names, None
    if names is None and any(isinstance(t, str) for t in np.atleast_1d(np.asarray(target, object))):
        raise TargetError(
            f"--class {args.target!r} names a class, but this model file has no class names; pass --labels FILE "
            "(one class name per line, in the model's output order) or a class index"
        )
    return model, names, resolve_class_indices(target, n_images, num_classes, names)


def _class_label(index: int, names: tuple[str, ...] | None) -> str:
    return f"{index} {names[index]!r}" if names else f"{index}"


def _write_temporary(output: Path, rgb: np.ndarray) -> Path:
    """Write ``rgb`` (H, W, 3) uint8 as a PNG to a new hidden temporary file beside ``output``; -> its path."""
    import cv2

    from camtutor.errors import CamTutorError

    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))  # OpenCV writes BGR
    if not ok:
        raise CamTutorError(f"could not encode the overlay for '{output}'")
    try:
        handle, name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    except OSError as exc:
        raise CamTutorError(f"could not write '{output}': {exc.strerror or exc}; check the --out folder") from None
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(encoded.tobytes())
            os.fchmod(file.fileno(), 0o666 & ~_umask())  # mkstemp makes 0600; a plain file would follow the umask
    except OSError as exc:
        Path(name).unlink(missing_ok=True)
        raise CamTutorError(f"could not write '{output}': {exc.strerror or exc}; check the --out folder") from None
    return Path(name)


def _umask() -> int:
    """The process's file-creation mask (read by setting it and setting it back; the command is single-threaded)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _batches(plan: _Plan) -> Iterator[slice]:
    _, height, width, _ = tuple(plan.model.inputs[0].shape)
    step = BATCH_SIZE if height is not None and width is not None else 1  # free H, W: one image at a time
    for start in range(0, len(plan.paths), step):
        yield slice(start, start + step)


def run_explain(args: argparse.Namespace) -> int:
    """``camtutor explain``: check everything, then per batch: load, compute, write temporary files, report.

    The temporary files are renamed to their final names only when every image succeeded; on any
    error (or Ctrl-C) they are removed, as are the output folders this run created. (Only a failure
    during the renaming itself, e.g. a folder made meanwhile at an output name by another program,
    can leave the outputs renamed before it.)
    """
    if args.model is None:
        print(_DEFAULT_MODEL_NOTE, flush=True)
        args.model = DEFAULT_MODEL
    plan = _plan(args)
    import numpy as np

    from camtutor.data import load_image
    from camtutor.draw import overlay
    from camtutor.explain import class_probabilities, explainer, heatmap
    from camtutor.methods import default_score, get as get_method

    # A softmax hidden inside a custom layer leaves no pre-activation score: explain the probability, and say so.
    score = default_score(get_method(args.method), explainer(plan.model).info.logits_reachable)
    if score == "probability":
        print("note: this model's pre-softmax scores cannot be reached; explaining the softmax probability", flush=True)
    n = len(plan.paths)
    width = len(str(n))
    written: list[tuple[Path, Path]] = []  # (temporary file, final name)
    try:
        for batch in _batches(plan):
            images = _load_batch(plan.paths[batch], plan.model, args.preprocess)
            probabilities = class_probabilities(plan.model, images)
            classes = probabilities.argmax(axis=1).astype(np.int32) if plan.classes is None else plan.classes[batch]
            maps = heatmap(plan.model, images, classes, method=args.method, layer=args.layer, score=score)
            for j, i in enumerate(range(n)[batch]):
                output = plan.outputs[i]
                # drawn on the image read again at its own size: one full-size photo in memory at a time
                picture = overlay(load_image(plan.paths[i]), maps[j], alpha=args.alpha)
                written.append((_write_temporary(output, picture), output))
                top = np.argsort(-probabilities[j], kind="stable")[: args.top]
                ranked = " | ".join(f"{_class_label(int(c), plan.class_names)} {probabilities[j, c]:.3f}" for c in top)
                label = _class_label(int(classes[j]), plan.class_names)
                print(f"[{i + 1:>{width}}/{n}] {plan.paths[i]} -> {output}  (explained class {label})")
                print(f"{'':>{2 * width + 3}} top: {ranked}")
            sys.stdout.flush()
        for temporary, output in written:
            os.replace(temporary, output)
    except BaseException:
        for temporary, _ in written:
            temporary.unlink(missing_ok=True)
        _remove_folders(plan.created)
        raise
    return EXIT_OK


# --------------------------------------------------------------------------- layers, models
def run_layers(args: argparse.Namespace) -> int:
    """``camtutor layers MODEL``: the feature-map layers with output shapes; default, CAM and 1x1 layers marked."""
    _check_model_name(args.model)  # before the imports below start TensorFlow
    from camtutor.errors import CamTutorError
    from camtutor.layers import (
        conv_layers, default_layer, find_layer, gap_dense_head, is_spatial, layer_name, output_info,
    )
    from camtutor.loading import load_model

    model = load_model(args.model)
    info = output_info(model)
    names = conv_layers(model)
    try:
        cam_layer = layer_name(model, gap_dense_head(model).feature_layer)
    except CamTutorError:
        cam_layer = None
    kind = "one output unit = 2 classes" if info.binary else f"{info.num_classes} classes"
    hidden = "" if info.logits_reachable else f" (inside {info.source}: use score='probability')"
    print(
        f"model {model.name!r}: input {tuple(model.inputs[0].shape)} -> output {tuple(model.outputs[0].shape)}, "
        f"{info.activation}{hidden}, {kind}"
    )
    if not names:
        print("no feature-map layers: camtutor needs a conv net with (B, H, W, K) layer outputs")
        return EXIT_OK
    try:
        default = layer_name(model, default_layer(model))
    except CamTutorError:
        default = None
    print("feature-map layers, input to output (pass one to --layer):")
    width = max(len(name) for name in names)
    for name in names:
        layer = find_layer(model, name)
        notes = []
        if name == default:
            notes.append("default")
        if name == cam_layer:
            notes.append("CAM layer (feeds GAP -> Dense)")
        if not is_spatial(layer):
            notes.append("1x1: no spatial map")
        shape = str(tuple(layer.output.shape))
        print(f"  {name:<{width}}  {shape:<22}{'  ' + ', '.join(notes) if notes else ''}".rstrip())
    if default is None:
        print("every feature map is 1x1: no layer gives a spatial map; build the model with a larger input size")
    if cam_layer is None:
        print("no GlobalAveragePooling2D -> Dense head: use --method gradcam or hirescam (CAM is undefined)")
    return EXIT_OK


def _bundled_models() -> dict[str, str]:
    """Bundled model name -> description, read from camtutor/models.py's ``BUNDLED`` literal without importing it.

    camtutor.models imports Keras (and so TensorFlow, seconds); ``camtutor models`` only lists names.
    Falls back to importing the module if the literal cannot be read.
    """
    import ast

    try:
        tree = ast.parse(Path(__file__).with_name("models.py").read_text(encoding="utf-8"))
        for node in tree.body:
            target = node.target if isinstance(node, ast.AnnAssign) else (
                node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None)
            if isinstance(target, ast.Name) and target.id == "BUNDLED" and node.value is not None:
                return dict(ast.literal_eval(node.value))
    except (OSError, SyntaxError, ValueError):  # pragma: no cover - a changed models.py
        pass
    from camtutor import models  # pragma: no cover

    return dict(models.BUNDLED)  # pragma: no cover


def run_models(args: argparse.Namespace) -> int:
    """``camtutor models``: bundled model names, descriptions, and whether their weights are present."""
    bundled = _bundled_models()
    weights = Path(__file__).with_name("weights")  # camtutor.models.WEIGHTS_DIR, without importing Keras
    width = max(len(name) for name in bundled)
    for name, description in bundled.items():
        present = (weights / f"{name}.weights.h5").is_file()
        missing = "" if present else f"  [weights missing: python -m camtutor.train {name}]"
        print(f"{name:<{width}}  {description}{missing}")
    return EXIT_OK


# --------------------------------------------------------------------------- entry point
_OUT_OF_MEMORY = ("camtutor: error: out of memory; pass fewer or smaller images, or a smaller model "
                  "(run again with --debug for the traceback)")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


@contextlib.contextmanager
def _stderr_silenced(enabled: bool) -> Iterator[None]:
    """Send everything written to stderr meanwhile (TensorFlow's C++ log, absl, Keras and OpenCV warnings,
    Python warnings) to /dev/null, so that an error is the one line the command prints after this block."""
    if not enabled:
        yield
        return
    import io
    import logging
    import warnings

    sys.stderr.flush()
    saved_fd = None
    try:
        saved_fd = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    except OSError:  # pragma: no cover - no fd 2 (e.g. a GUI launcher): Python-level silencing only
        saved_fd = None
    saved_stderr, sys.stderr = sys.stderr, io.StringIO()
    logging_disabled = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging_disabled)
        sys.stderr = saved_stderr
        if saved_fd is not None:
            os.dup2(saved_fd, 2)
            os.close(saved_fd)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    0 on success; 1 when camtutor refuses the input (one line on stderr);
    2 for a malformed command line; 130 on Ctrl-C.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2, already printed)
        return int(exit_.code or 0)
    if getattr(args, "run", None) is None:  # bare 'camtutor': the help, and why it did nothing
        build_parser().print_help()
        sys.stderr.write("camtutor: error: no command given; choose one of explain, layers, models\n")
        return EXIT_USAGE
    from camtutor.errors import CamTutorError

    message = None
    with _stderr_silenced(enabled=not debug):
        try:
            return args.run(args)
        except KeyboardInterrupt:
            message, code = "camtutor: interrupted", EXIT_INTERRUPTED
        except CamTutorError as error:
            if debug:
                raise
            message, code = f"camtutor: error: {_one_line(error)}", EXIT_ERROR
        except MemoryError:
            if debug:
                raise
            message, code = _OUT_OF_MEMORY, EXIT_ERROR
        except Exception as error:  # last resort: still one line, the traceback on request
            if debug:
                raise
            message = (
                f"camtutor: error: unexpected {type(error).__name__}: {_one_line(error)} "
                "(run again with --debug for the traceback)"
            )
            if type(error).__name__ == "ResourceExhaustedError":  # TensorFlow's MemoryError
                message = _OUT_OF_MEMORY
            code = EXIT_ERROR
    sys.stderr.write(message + "\n")
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
