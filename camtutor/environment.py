"""Is this environment ready for the notebooks? Versions of the libraries, and whether the bundled models load.

::

    from camtutor import environment
    environment.report()          # one line per check, "missing: pip install ..." for what is absent
    environment.check()           # [(name, ok, detail), ...] to test yourself

``report()`` prints only stable text by default ("numpy: OK (>= 1.26)"), so a notebook that calls
it gives the same output on every machine; ``report(versions=True)`` adds the exact versions.
"""

from __future__ import annotations

import importlib
import platform
import sys
from dataclasses import dataclass

__all__ = ["REQUIREMENTS", "Requirement", "can_reach", "check", "pretrained_or_random", "report", "version_tuple"]


@dataclass(frozen=True)
class Requirement:
    """One library the notebooks need: its import name, minimum version and the pip requirement that installs it."""

    name: str
    module: str
    minimum: str
    pip: str


#: What the notebooks need, with pyproject.toml's minimums and ranges (tests/test_install.py compares them).
REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement("tensorflow", "tensorflow", "2.16.1", "tensorflow>=2.16.1,<2.22"),
    Requirement("keras", "keras", "3.3.3", "keras>=3.3.3,<3.16"),
    Requirement("numpy", "numpy", "1.26", "numpy>=1.26"),
    Requirement("opencv", "cv2", "4.8", "opencv-python-headless>=4.8"),
    Requirement("matplotlib", "matplotlib", "3.8", "matplotlib>=3.8"),
    Requirement("ipywidgets", "ipywidgets", "8", "ipywidgets>=8"),
    Requirement("scikit-image", "skimage", "0.22", "scikit-image>=0.22"),
)
PYTHON_MINIMUM = "3.10"


def version_tuple(version: str) -> tuple[int, ...]:
    """The leading numeric parts of a version string: "2.21.0rc1" -> (2, 21, 0), "4.10.0-dev" -> (4, 10, 0)."""
    parts = []
    for piece in str(version).split("."):
        digits = ""
        for char in piece:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        parts.append(int(digits))
        if len(digits) < len(piece):
            break
    return tuple(parts)


def _at_least(version: str, minimum: str) -> bool:
    return version_tuple(version) >= version_tuple(minimum)


def _check_python() -> tuple[str, bool, str]:
    version = platform.python_version()
    if _at_least(version, PYTHON_MINIMUM):
        return ("python", True, version)
    return ("python", False, f"{version} is too old: camtutor needs Python >= {PYTHON_MINIMUM}")


def _check_library(req: Requirement) -> tuple[str, bool, str]:
    try:
        module = importlib.import_module(req.module)
    except ImportError:
        return (req.name, False, f"missing: pip install '{req.pip}'")
    version = str(getattr(module, "__version__", "unknown"))
    if not _at_least(version, req.minimum):
        return (req.name, False, f"{version} is too old: pip install -U '{req.pip}'")
    return (req.name, True, version)


def _check_model(name: str) -> tuple[str, bool, str]:
    label = f"bundled model {name!r}"
    try:
        from camtutor import models

        model = models.load(name)
    except Exception as error:  # report, never raise: this is a diagnostic
        return (label, False, f"does not load ({type(error).__name__}: {error})")
    return (label, True, f"loads ({model.count_params()} parameters)")


def check(models: bool = True) -> list[tuple[str, bool, str]]:
    """Run every check: a list of ``(name, ok, detail)``.

    ``detail`` is the version for a library that is fine, and for a problem a sentence that
    ends with the command that fixes it. With ``models=True`` each bundled model is loaded too.
    """
    results = [_check_python()]
    results += [_check_library(req) for req in REQUIREMENTS]
    if models and all(ok for name, ok, _ in results if name in ("tensorflow", "keras", "numpy")):
        from camtutor import models as bundled

        results += [_check_model(name) for name in bundled.available()]
    return results


def _minimum(name: str) -> str:
    if name == "python":
        return PYTHON_MINIMUM
    return next(req.minimum for req in REQUIREMENTS if req.name == name)


def report(versions: bool = False, models: bool = True, file=None) -> bool:
    """Print one line per check and a final verdict; return True when everything is ready.

    By default a passing library prints as ``"numpy: OK (>= 1.26)"`` (stable text, same on
    every machine); ``versions=True`` prints the installed version instead.
    """
    out = file if file is not None else sys.stdout
    results = check(models=models)
    for name, ok, detail in results:
        if ok and name.startswith("bundled model"):
            line = f"{name}: OK" + (f", {detail}" if versions else "")
        elif ok:
            line = f"{name}: OK ({detail if versions else '>= ' + _minimum(name)})"
        else:
            line = f"{name}: PROBLEM, {detail}"
        print(line, file=out)
    problems = [name for name, ok, _ in results if not ok]
    if problems:
        print(f"Not ready: fix {', '.join(problems)} (commands above), then restart the kernel.", file=out)
    else:
        print("Everything is ready.", file=out)
    return not problems


def can_reach(host: str = "storage.googleapis.com", port: int = 443, timeout: float = 2.0) -> bool:
    """True when a TCP connection to ``host:port`` opens within ``timeout`` seconds (no data is sent)."""
    import socket

    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def pretrained_or_random(factory, host: str = "storage.googleapis.com", timeout: float = 2.0, file=None):
    """``(model, pretrained)``: ``factory(weights="imagenet")`` when its weights can be downloaded, else random weights.

    ``factory`` is a ``keras.applications`` constructor such as ``keras.applications.MobileNetV2``. The host is
    probed first (:func:`can_reach`, ``timeout`` seconds) so that an offline machine does not wait for Keras to
    give up; a failed download (proxy, full disk...) is reported on ``file`` (stdout by default) and also falls back
    to ``factory(weights=None)``, the same architecture with random weights. ``pretrained`` says which one you got.
    """
    if can_reach(host, timeout=timeout):
        try:
            return factory(weights="imagenet"), True
        except Exception as error:  # noqa: BLE001 - any download failure means: fall back
            print(f"could not download the ImageNet weights: {type(error).__name__}", file=file or sys.stdout)
    return factory(weights=None), False
