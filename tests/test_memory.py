"""Repeated explanations do not leak: 500 Grad-CAM calls on one model keep resident memory flat.

camtutor compiles one tf.function per (model, layer, options) and reuses it; a leak (a retrace per
call, tapes or tensors kept alive, a growing cache) would show up here as steadily growing memory.
The bound is generous (< 10 % growth after a warm-up) and says nothing about speed.
"""

from __future__ import annotations

import gc
import os

import keras
import numpy as np

import camtutor as ct
from camtutor.compiled import explainer

WARM_UP, CALLS = 20, 500


def resident_bytes() -> int:
    """This process's resident set size, from psutil when installed, else /proc/self/statm."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is in the test environment
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return psutil.Process().memory_info().rss


def test_500_grad_cam_calls_do_not_grow_memory():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="feat"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    images = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)
    for i in range(WARM_UP):
        ct.grad_cam(model, images, i % 3)
    gc.collect()
    cached = dict(explainer(model)._functions)
    traces = {key: f.experimental_get_tracing_count() for key, f in cached.items()}
    before = resident_bytes()
    for i in range(CALLS):
        maps = ct.grad_cam(model, images, [i % 3, (i + 1) % 3, 0, 2])
    gc.collect()
    after = resident_bytes()
    growth = (after - before) / before
    print(f"resident memory: {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB ({100 * growth:+.2f} %) "
          f"after {CALLS} calls")
    assert maps.shape == (4, 32, 32) and np.isfinite(maps).all()
    assert growth < 0.10
    assert explainer(model)._functions == cached  # the same compiled functions served every call ...
    assert {key: f.experimental_get_tracing_count() for key, f in cached.items()} == traces  # ... never re-traced
