"""The ``camtutor`` command: explain image files with any Keras classifier, from a terminal.

::

    camtutor explain cat.png dog.jpg --model my_model.keras --method gradcam --out out/
    camtutor layers my_model.keras
    camtutor models

Everything is validated (images readable, model loadable, class and layer
valid, CAM possible) before the first output file is written. Errors print one
line ``camtutor: error: <message>`` on stderr and exit with a non-zero code
(1 for bad input, 2 for a bad command line); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_MODEL = "shapes"
DEFAULT_OUT = "camtutor_out"
BATCH_SIZE = 16

_EXPLAIN_EPILOG = """\
images:
  Any size and format OpenCV reads (PNG, JPEG, BMP, TIFF, WebP...). Each file is
  read as RGB float in [0, 1] (greyscale -> 3 channels, transparency over white),
  resized to the model's input size, then preprocessed with --preprocess.
  The overlay is drawn on the original image, at its own size, and written as
  OUT/<name>_<method>.png.

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
  camtutor explain photo.jpg                                # bundled 'shapes' model
  camtutor explain *.png --model faces --method cam --out maps/
  camtutor explain cat.jpg --model net.keras --preprocess mobilenet_v2 --layer out_relu
"""


def _preprocessing_help() -> str:
    from camtutor.loading import PREPROCESSING

    return "\n".join(f"  {name:<14}{description}" for name, (_, description) in PREPROCESSING.items())


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: ``camtutor: error: ...`` (exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"camtutor: error: {message} (see: {self.prog} --help)\n")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``camtutor`` with its three subcommands."""
    from camtutor.explain import METHODS
    from camtutor.loading import PREPROCESSING

    debug = _Parser(add_help=False)
    debug.add_argument("--debug", action="store_true", help="show the Python traceback on errors")

    parser = _Parser(
        prog="camtutor",
        description="Class activation maps (CAM, Grad-CAM, HiResCAM) for Keras image classifiers.",
        epilog="Run 'camtutor COMMAND --help' for the options of each command. Exit status: 0 on success, "
        "1 when an input is refused (one line on stderr: 'camtutor: error: ...'; add --debug for the traceback), "
        "2 for a malformed command line.",
        parents=[debug],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    explain = commands.add_parser(
        "explain",
        parents=[debug],
        help="write a heatmap overlay PNG for each image and print the top predictions",
        description="Write one heatmap overlay PNG per image and print the model's top predictions.",
        epilog=_EXPLAIN_EPILOG.format(preprocessing=_preprocessing_help()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    explain.add_argument("images", nargs="+", metavar="IMAGE", help="image files to explain")
    explain.add_argument(
        "--model", default=DEFAULT_MODEL, metavar="NAME|PATH.keras",
        help=f"a bundled model name (see 'camtutor models') or a .keras file (default: {DEFAULT_MODEL})",
    )
    explain.add_argument("--method", default="gradcam", choices=METHODS, help="default: gradcam")
    explain.add_argument(
        "--class", dest="target", default="top", metavar="INDEX|NAME|top",
        help="the class to explain: top, an index, a name, or a comma list with one per image (default: top)",
    )
    explain.add_argument("--layer", default=None, metavar="NAME", help="feature-map layer (default: the last one)")
    explain.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"output folder (default: {DEFAULT_OUT})")
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


# --------------------------------------------------------------------------- explain
@dataclass
class _Plan:
    """Everything ``explain`` needs, validated before any file is written."""

    model: object
    paths: list[Path]
    batch: list[np.ndarray]  # model-ready images (H, W, C), one per path
    outputs: list[Path]
    class_names: tuple[str, ...] | None


def _read_labels(path: str, num_classes: int) -> tuple[str, ...]:
    from camtutor.errors import TargetError

    try:
        lines = Path(path).expanduser().read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetError(f"could not read the labels file '{path}': {exc}; pass a UTF-8 text file") from None
    names = tuple(line.strip() for line in lines if line.strip())
    if len(names) != num_classes:
        raise TargetError(
            f"the labels file '{path}' has {len(names)} names but the model has {num_classes} classes; "
            "write one class name per line, in the model's output order"
        )
    return names


def _model_ready(image: np.ndarray, input_shape: tuple, preprocessing: str, source: Path) -> np.ndarray:
    """RGB [0, 1] (H, W, 3) -> resized, channel-matched, preprocessed (h, w, c) float32."""
    import cv2

    from camtutor.errors import ImageError
    from camtutor.inputs import resize_images
    from camtutor.loading import preprocess

    _, height, width, channels = input_shape
    if height is not None and width is not None and image.shape[:2] != (height, width):
        image = resize_images(image, (height, width))
    image = preprocess(image[None], preprocessing)[0]
    if channels == 1:
        image = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)[..., None]
    elif channels not in (None, 3):
        raise ImageError(
            f"the model expects {channels} channels, but '{source}' is read as RGB (3 channels); the command "
            "handles 1- and 3-channel models: explain this one from Python with camtutor.grad_cam(model, images, ...)"
        )
    return np.ascontiguousarray(image, dtype=np.float32)


def _output_paths(paths: Sequence[Path], out: Path, method: str) -> list[Path]:
    """OUT/<stem>_<method>.png, made unique when two inputs share a name (a/cat.png, b/cat.png)."""
    seen: dict[str, int] = {}
    result = []
    for path in paths:
        stem = path.stem or "image"
        seen[stem] = seen.get(stem, 0) + 1
        suffix = "" if seen[stem] == 1 else f"-{seen[stem]}"
        result.append(out / f"{stem}{suffix}_{method}.png")
    return result


def _check_writable(out: Path) -> None:
    from camtutor.errors import CamTutorError

    if out.exists() and not out.is_dir():
        raise CamTutorError(f"--out '{out}' is a file, not a folder; pass a folder name")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not os.access(existing, os.W_OK):
        raise CamTutorError(f"cannot write to '{existing}' (permission denied); choose another --out folder")


def _parse_target(text: str, n_images: int):
    """'top' -> None; '3' -> 3; 'cat' -> 'cat'; '3,0,cat' -> [3, 0, 'cat']."""
    items = [item.strip() for item in text.split(",")]
    values: list[int | str] = [int(item) if item.lstrip("-").isdigit() else item for item in items]
    if values == ["top"]:
        return None
    return values[0] if len(values) == 1 else values


def _plan(args: argparse.Namespace) -> _Plan:
    from camtutor.data import load_image
    from camtutor.errors import CamTutorError, ModelError
    from camtutor.explain import explainer
    from camtutor.layers import find_layer, gap_dense_head
    from camtutor.loading import load_model, model_class_names

    if args.top < 1:
        raise CamTutorError(f"--top must be at least 1, got {args.top}")
    if not 0.0 <= args.alpha <= 1.0:
        raise CamTutorError(f"--alpha must be in [0, 1], got {args.alpha}")
    model = load_model(args.model)
    info = explainer(model).info
    names = _read_labels(args.labels, info.num_classes) if args.labels else model_class_names(args.model)
    if args.method == "cam":
        try:
            gap_dense_head(model)
        except ModelError as error:
            raise ModelError(f"{error} (on the command line: --method gradcam)") from None
    if args.layer is not None:
        find_layer(model, args.layer)
    paths = [Path(p) for p in args.images]
    batch = []
    for path in paths:
        batch.append(_model_ready(load_image(path), tuple(model.inputs[0].shape), args.preprocess, path))
    out = Path(args.out).expanduser()
    _check_writable(out)
    return _Plan(model, paths, batch, _output_paths(paths, out, args.method), names)


def _chunks(plan: _Plan) -> list[slice]:
    sizes = {image.shape for image in plan.batch}
    step = BATCH_SIZE if len(sizes) == 1 else 1  # a model with free H, W: one image at a time
    return [slice(i, i + step) for i in range(0, len(plan.batch), step)]


def _compute(plan: _Plan, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """-> (probabilities (B, C), classes (B,), maps: one (h, w) per image). Raises before writing anything."""
    from camtutor.errors import TargetError
    from camtutor.explain import class_probabilities, heatmap
    from camtutor.targets import resolve_class_indices

    chunks = _chunks(plan)
    probabilities = np.concatenate([class_probabilities(plan.model, np.stack(plan.batch[s])) for s in chunks])
    target = _parse_target(args.target, len(plan.batch))
    if target is None:
        classes = probabilities.argmax(axis=1).astype(np.int32)
    elif plan.class_names is None and any(isinstance(t, str) for t in np.atleast_1d(np.asarray(target, object))):
        raise TargetError(
            f"--class {args.target!r} names a class, but this model file has no class names; pass --labels FILE "
            "(one class name per line, in the model's output order) or a class index"
        )
    else:
        classes = resolve_class_indices(target, len(plan.batch), probabilities.shape[1], plan.class_names)
    maps: list[np.ndarray] = []
    for s in chunks:
        maps.extend(heatmap(plan.model, np.stack(plan.batch[s]), classes[s], method=args.method, layer=args.layer))
    return probabilities, classes, maps


def _class_label(index: int, names: tuple[str, ...] | None) -> str:
    return f"{index} {names[index]!r}" if names else f"{index}"


def _write_png(path: Path, rgb: np.ndarray) -> None:
    import cv2

    from camtutor.errors import CamTutorError

    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))  # OpenCV writes BGR
    if not ok:
        raise CamTutorError(f"could not encode the overlay for '{path}'")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(encoded.tobytes())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CamTutorError(f"could not write '{path}': {exc.strerror or exc}; check the --out folder") from None


def run_explain(args: argparse.Namespace) -> int:
    """``camtutor explain``: validate, compute every map, then write the overlays and print predictions."""
    from camtutor.data import load_image
    from camtutor.draw import overlay

    plan = _plan(args)
    probabilities, classes, maps = _compute(plan, args)
    plan.outputs[0].parent.mkdir(parents=True, exist_ok=True)
    n = len(plan.paths)
    width = len(str(n))
    for i, (path, output) in enumerate(zip(plan.paths, plan.outputs)):
        picture = overlay(load_image(path), maps[i], alpha=args.alpha)  # drawn at the image's own size
        _write_png(output, picture)
        top = np.argsort(-probabilities[i], kind="stable")[: args.top]
        ranked = " | ".join(f"{_class_label(int(c), plan.class_names)} {probabilities[i, c]:.3f}" for c in top)
        print(f"[{i + 1:>{width}}/{n}] {path} -> {output}  (explained class {_class_label(int(classes[i]), plan.class_names)})")
        print(f"{'':>{2 * width + 3}} top: {ranked}", flush=True)
    return EXIT_OK


# --------------------------------------------------------------------------- layers, models
def run_layers(args: argparse.Namespace) -> int:
    """``camtutor layers MODEL``: the feature-map layers with output shapes; default, CAM and 1x1 layers marked."""
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


def run_models(args: argparse.Namespace) -> int:
    """``camtutor models``: bundled model names, descriptions, and whether their weights are present."""
    from camtutor import models

    width = max(len(name) for name in models.available())
    for name in models.available():
        missing = "" if models.weights_path(name).is_file() else f"  [weights missing: python -m camtutor.train {name}]"
        print(f"{name:<{width}}  {models.BUNDLED[name]}{missing}")
    return EXIT_OK


# --------------------------------------------------------------------------- entry point
def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _quiet_opencv() -> None:
    """OpenCV prints decoder warnings (e.g. a truncated PNG) on stderr; the command reports those itself."""
    try:
        import cv2

        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except (ImportError, AttributeError):  # pragma: no cover - other OpenCV builds
        pass


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
    if getattr(args, "run", None) is None:
        build_parser().print_help()
        return EXIT_USAGE
    from camtutor.errors import CamTutorError

    _quiet_opencv()
    try:
        return args.run(args)
    except KeyboardInterrupt:
        sys.stderr.write("camtutor: interrupted\n")
        return EXIT_INTERRUPTED
    except CamTutorError as error:
        if debug:
            raise
        sys.stderr.write(f"camtutor: error: {_one_line(error)}\n")
        return EXIT_ERROR
    except Exception as error:  # an unexpected failure: still one line, the traceback on request
        if debug:
            raise
        sys.stderr.write(
            f"camtutor: error: unexpected {type(error).__name__}: {_one_line(error)} "
            "(run again with --debug for the traceback)\n"
        )
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
