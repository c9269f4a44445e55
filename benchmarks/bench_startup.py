"""How fast the command answers before any model work: the start-up targets that unit tests must not time.

Run from the repository root::

    python -m benchmarks.bench_startup            # ~1 min on 2 cores; writes benchmarks/results/startup.md and .json
    python -m benchmarks.bench_startup --quick    # 1 round; prints only

Each figure is a whole process (interpreter start included), best of ``repeats`` runs, and each target
is a ratio to a reference measured in the same run, so a slow or busy machine moves both sides:

* **help**: ``camtutor --help`` takes <= 0.25x the time of ``python -c "import tensorflow"``
  (it must never import TensorFlow; the unit tests check *that*, this checks what it buys);
* **typo**: ``camtutor explain ok.png --model face`` (a misspelt bundled name) is refused in <= 0.25x
  the same reference: names, paths and image headers are checked before TensorFlow starts;
* **hostile model**: loading a ``.keras`` file whose config declares a 10**12-unit layer is refused in
  <= 1x the time of loading the bundled ``shapes`` model in the same process (it is refused from its
  config, before Keras builds anything);
* **pixel bomb**: a 48 kB PNG declaring 20000 x 20000 pixels is refused in <= 5x the time of decoding a
  normal 64 x 64 PNG (from its header, without decoding).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
QUICK = {"repeats": 1}
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _process_seconds(argv: list[str], repeats: int) -> float:
    """Best wall time of ``repeats`` runs of a whole process (its exit code is not checked: errors are expected)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, env=ENV, cwd=ROOT, timeout=300)
        best = min(best, time.perf_counter() - start)
    return best


def _best(action: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        try:
            action()
        except Exception:  # noqa: BLE001 - the refusals raise; their time is what is measured
            pass
        best = min(best, time.perf_counter() - start)
    return best


def png_bomb(side: int = 20000) -> bytes:
    """A valid 1-bit greyscale PNG of side x side black pixels: about 48 kB, 400 MB once decoded to 8 bits."""
    row = b"\x00" * (1 + (side + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = side.to_bytes(4, "big") * 2 + bytes([1, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def _huge_layer_model(folder: Path) -> Path:
    """A .keras file whose config declares a Dense layer of 10**12 units (nothing is allocated to write it)."""
    config = {
        "module": "keras", "class_name": "Sequential", "registered_name": None,
        "config": {"name": "huge", "layers": [
            {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
             "config": {"batch_shape": [None, 8], "dtype": "float32", "name": "input"}},
            {"module": "keras.layers", "class_name": "Dense", "registered_name": None,
             "config": {"name": "dense", "units": 10**12, "activation": "softmax"}},
        ]},
    }
    path = folder / "huge.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", b"")
    return path


def run(repeats: int = 5, log: Callable[[str], None] = print) -> dict:
    """Measure the four targets; returns the timings and ``targets`` as (target, measured, detail, passed)."""
    import numpy as np
    import cv2

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        image = folder / "ok.png"
        cv2.imwrite(str(image), np.zeros((64, 64, 3), np.uint8))
        bomb = folder / "bomb.png"
        bomb.write_bytes(png_bomb())
        huge = _huge_layer_model(folder)
        python = sys.executable
        log("reference: python -c 'import tensorflow'")
        tf_import = _process_seconds([python, "-c", "import tensorflow"], repeats)
        log("camtutor --help, and a misspelt --model")
        help_s = _process_seconds([python, "-m", "camtutor", "--help"], repeats)
        typo_s = _process_seconds([python, "-m", "camtutor", "explain", str(image), "--model", "face",
                                   "--out", str(folder / "out")], repeats)
        import camtutor as ct
        from camtutor.loading import load_model

        log("in process: the bundled model, a hostile .keras file, a pixel bomb, a normal PNG")
        load_model("shapes")  # warm: TensorFlow and Keras imported once before either side is timed
        bundled_s = _best(lambda: load_model("shapes"), repeats)
        hostile_s = _best(lambda: load_model(huge), repeats)
        decode_s = _best(lambda: ct.images.load_image(image), repeats)
        bomb_s = _best(lambda: ct.images.load_image(bomb), repeats)
    timings = {"import tensorflow (process)": tf_import, "camtutor --help (process)": help_s,
               "misspelt --model refused (process)": typo_s, "load bundled shapes": bundled_s,
               "hostile .keras refused": hostile_s, "decode a 64x64 PNG": decode_s, "PNG bomb refused": bomb_s}
    targets = [
        ("camtutor --help <= 0.25x importing TensorFlow", f"{help_s / tf_import:.2f}x",
         f"{help_s:.2f} s vs {tf_import:.2f} s", help_s <= 0.25 * tf_import),
        ("misspelt --model refused <= 0.25x importing TensorFlow", f"{typo_s / tf_import:.2f}x",
         f"{typo_s:.2f} s vs {tf_import:.2f} s", typo_s <= 0.25 * tf_import),
        ("hostile .keras refused <= 1x loading the bundled model", f"{hostile_s / bundled_s:.2f}x",
         f"{hostile_s * 1e3:.1f} ms vs {bundled_s * 1e3:.1f} ms", hostile_s <= bundled_s),
        ("PNG bomb refused <= 5x decoding a 64x64 PNG", f"{bomb_s / decode_s:.2f}x",
         f"{bomb_s * 1e3:.2f} ms vs {decode_s * 1e3:.2f} ms", bomb_s <= 5 * decode_s),
    ]
    return {"repeats": repeats, "seconds": timings, "targets": targets}


def markdown(result: dict) -> str:
    lines = ["# Start-up and refusal times", "", f"Best of {result['repeats']} runs; ratios from this one run.", "",
             "## Targets", "", "| target | measured | detail | result |", "|---|---|---|---|"]
    lines += [f"| {t} | {m} | {d} | {'PASS' if ok else 'MISS'} |" for t, m, d, ok in result["targets"]]
    lines += ["", "## Timings (s)", "", "| what | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in result["seconds"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_startup", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round, print only")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = run(**(QUICK if args.quick else {"repeats": args.repeats}))
    if not args.quick:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "startup.md").write_text(markdown(result))
        raw = {**result, "targets": [dict(zip(("target", "measured", "detail", "passed"), t)) for t in result["targets"]]}
        (args.out / "startup.json").write_text(json.dumps(raw, indent=2))
    for target, measured, detail, passed in result["targets"]:
        print(f"{'PASS' if passed else 'MISS'}  {target}: {measured}  ({detail})")
    return 0 if all(ok for *_, ok in result["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
