"""Re-execute the teaching notebooks in place, for authors, the same way every time.

Command line (from the repository root)::

    python -m tools.notebooks                 # every notebooks/*.ipynb
    python -m tools.notebooks 01 02_cam       # by number, file-name prefix or stem

Each notebook runs top to bottom in a fresh ``python3`` kernel whose working directory is
``notebooks/``, with TensorFlow's logging quiet, oneDNN custom ops off (CPU results less machine
dependent) and ``PYTHONHASHSEED=0``. No widget state and no per-cell timing metadata are stored,
so re-running an unchanged notebook changes only what the code changes. The tool prints each
notebook's run time, its kernel's peak resident memory (RSS, polled every 0.1 s with psutil) and
its size, and exits non-zero when a notebook raises, writes to stderr, is larger than the size
limit (1.5 MB), or exceeds the course's budget on the machine it ran on (120 s, 1.8 GB peak RSS:
Binder gives 2 GB): fix the notebook rather than strip the output or raise the budget.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Sequence

__all__ = [
    "MAX_BYTES",
    "MAX_SECONDS",
    "MAX_RSS_BYTES",
    "NOTEBOOK_DIR",
    "KERNEL_ENV",
    "select",
    "problems",
    "execute",
    "main",
]

#: Default folder: the repository's ``notebooks/`` (this tool lives in ``tools/``, beside it; it is not part of the package).
NOTEBOOK_DIR: Path = Path(__file__).resolve().parent.parent / "notebooks"
#: Largest committed notebook, in bytes.
MAX_BYTES: int = 1_500_000
#: The course's run-time budget per notebook, on 2 cores.
MAX_SECONDS: float = 120.0
#: The course's memory budget per notebook: peak RSS of the kernel and its children (Binder gives 2 GB).
MAX_RSS_BYTES: int = 1_800_000_000
#: Environment the kernel runs with.
KERNEL_ENV: dict[str, str] = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "PYTHONHASHSEED": "0",
}


def select(directory: Path, names: Sequence[str] = ()) -> list[Path]:
    """The notebooks to run, sorted: all ``*.ipynb`` in ``directory`` when ``names`` is empty.

    A name selects the notebooks whose file name equals it, whose stem equals it, or which start
    with it ("01", "01_global", "01_global_average_pooling.ipynb"); a path to an existing
    notebook is taken as is. Raises ``ValueError`` naming the available notebooks when a name
    matches nothing.
    """
    available = sorted(p for p in Path(directory).glob("*.ipynb") if not p.name.startswith("."))
    if not names:
        return available
    chosen: list[Path] = []
    for name in names:
        as_path = Path(name)
        if as_path.suffix == ".ipynb" and as_path.is_file() and as_path.parent.resolve() != Path(directory).resolve():
            matches = [as_path]
        else:
            key = as_path.name
            matches = [p for p in available if p.name == key or p.stem == key or p.name.startswith(key)]
        if not matches:
            listing = ", ".join(p.name for p in available) or "none"
            raise ValueError(f"no notebook matches {name!r} in {directory}; available: {listing}")
        chosen += [p for p in matches if p not in chosen]
    return sorted(chosen)


def problems(notebook) -> list[str]:
    """What a committed notebook must not contain: error outputs and stderr streams (one message each)."""
    found = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                found.append(f"cell {index}: error {output.get('ename')}: {output.get('evalue')}")
            elif output.get("output_type") == "stream" and output.get("name") == "stderr":
                first = str(output.get("text", "")).strip().splitlines()[:1]
                found.append(f"cell {index}: writes to stderr: {first[0] if first else ''!r}")
    return found


class _PeakRSS:
    """Polls the summed RSS of this process's descendants (the kernel) in a thread; ``peak`` in bytes."""

    def __init__(self, interval: float = 0.1):
        import threading

        self.peak = 0
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self._interval)

    def __enter__(self) -> "_PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def execute(path: Path, timeout: int = 600, kernel: str = "python3") -> tuple[float, int, int, list[str]]:
    """Run one notebook in place: ``(seconds, size in bytes, peak kernel RSS in bytes, problems)``.

    On a cell error the notebook file is left unchanged and the error is the only problem.
    """
    import nbformat
    from nbconvert.preprocessors import CellExecutionError, ExecutePreprocessor

    path = Path(path)
    notebook = nbformat.read(path, as_version=4)
    runner = ExecutePreprocessor(timeout=timeout, kernel_name=kernel, store_widget_state=False, record_timing=False)
    start = time.perf_counter()
    with _PeakRSS() as memory:
        try:
            runner.preprocess(notebook, {"metadata": {"path": str(path.parent)}})
        except CellExecutionError as error:
            message = str(error).strip().splitlines()
            failure = f"execution failed: {message[-1] if message else error}"
            return time.perf_counter() - start, path.stat().st_size, memory.peak, [failure]
    seconds = time.perf_counter() - start
    notebook.metadata.pop("widgets", None)
    nbformat.write(notebook, path)
    return seconds, path.stat().st_size, memory.peak, problems(notebook)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.notebooks", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="notebooks to run (number, prefix, stem or file name); default all")
    parser.add_argument("--dir", type=Path, default=NOTEBOOK_DIR, help="notebook folder (default: %(default)s)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell (default: %(default)s)")
    parser.add_argument("--max-mb", type=float, default=MAX_BYTES / 1e6, help="size limit in MB (default: %(default)s)")
    parser.add_argument("--list", action="store_true", help="only list the selected notebooks")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: 0 when every selected notebook ran cleanly and is small enough."""
    args = _parser().parse_args(argv)
    try:
        paths = select(args.dir, args.names)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not paths:
        print(f"error: no notebooks in {args.dir}", file=sys.stderr)
        return 2
    if args.list:
        print("\n".join(str(p) for p in paths))
        return 0
    os.environ.update(KERNEL_ENV)
    os.environ.pop("MPLBACKEND", None)  # let the kernel use its inline backend so figures are stored
    limit = int(args.max_mb * 1e6)
    failed = 0
    for path in paths:
        seconds, size, peak, found = execute(path, timeout=args.timeout)
        if size > limit:
            found.append(f"{size / 1e6:.2f} MB is over the {limit / 1e6:.2f} MB limit: use smaller figures")
        if seconds > MAX_SECONDS:
            found.append(f"{seconds:.0f} s is over the course's {MAX_SECONDS:.0f} s budget")
        if peak > MAX_RSS_BYTES:
            found.append(f"peak RSS {peak / 1e9:.2f} GB is over the course's {MAX_RSS_BYTES / 1e9:.1f} GB budget")
        status = "ok" if not found else "FAILED"
        print(f"{path.name}: {seconds:.1f} s, peak RSS {peak / 1e9:.2f} GB, {size / 1e3:.0f} kB, {status}")
        for message in found:
            print(f"    {message}")
        failed += bool(found)
    if failed:
        print(f"{failed} of {len(paths)} notebooks failed.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
