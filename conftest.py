"""Test-wide setup shared by the unit tests and nbval.

* TensorFlow is silenced before anything imports it; nbval's kernels inherit
  this environment.
* nbval compares text, HTML and streams. Only stderr is left out of the
  comparison: it carries warnings and log lines whose wording changes between
  library versions, never a claim a notebook makes.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("PYTHONHASHSEED", "0")

try:
    from nbval import plugin as _nbval_plugin
except ImportError:  # nbval not installed: plain pytest still works
    _nbval_plugin = None


def _without_stderr(outputs):
    return [out for out in outputs if not (out.get("output_type") == "stream" and out.get("name") == "stderr")]


if _nbval_plugin is not None:
    _compare = _nbval_plugin.IPyNbCell.compare_outputs

    def _compare_outputs_without_stderr(self, test, ref, skip_compare=None):
        return _compare(self, _without_stderr(test), _without_stderr(ref), skip_compare)

    _nbval_plugin.IPyNbCell.compare_outputs = _compare_outputs_without_stderr
