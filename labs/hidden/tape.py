"""Hidden tests of notebook 05, exercise 2 (grad_cam_tape), on the bundled models."""

import functools

import numpy as np

from ..solutions import tape as ref
from . import assert_close, case


@functools.lru_cache(maxsize=None)
def _model(name):
    import camtutor as ct
    from camtutor.exercises.tape import logit_copy

    return logit_copy(ct.models.load(name))


def _run(f, name, layer, seed):
    import camtutor as ct

    data = ct.data.shapes(4, seed=seed)
    classes = np.array([2, 0, 1, 2])
    model = _model(name)
    expected = ref.my_grad_cam_tape(model, data.images, classes, layer)
    assert_close(f(model, data.images.copy(), classes.copy(), layer), expected, atol=2e-4, relative=True)


@case("grad_cam_tape")
def tape_last_conv(f):
    _run(f, "shapes", "last_conv", 241)


@case("grad_cam_tape")
def tape_inner_layer(f):
    _run(f, "shapes", "conv2", 242)


@case("grad_cam_tape")
def tape_model_without_gap(f):
    _run(f, "shapes-flat", "last_conv", 243)
