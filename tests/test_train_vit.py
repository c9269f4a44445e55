"""camtutor.train for the bundled Vision Transformer: its epoch views, its determinism, its errors."""

import numpy as np
import pytest

from camtutor import data, train as training
from camtutor.errors import CamTutorError, ModelError


def test_unknown_setting_is_a_camtutor_error_naming_the_known_ones():
    with pytest.raises(ModelError, match="pass only these keyword settings") as info:
        training.train("shapes-vit", None, n_images=10)
    assert isinstance(info.value, CamTutorError)
    for key in training.DEFAULTS["shapes-vit"]:
        assert key in str(info.value)


def test_vit_views_are_mirror_and_inverse_views_of_each_image():
    shapes = data.shapes(12, seed=3)
    x, y = training._vit_views(shapes.images, shapes.labels, np.random.default_rng(0))
    assert x.shape == (24, 64, 64, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(y, np.concatenate([shapes.labels, shapes.labels]))
    assert 0.0 <= x.min() and x.max() <= 1.0
    first, second = x[:12], x[12:]
    np.testing.assert_allclose(second, 1.0 - first[:, :, ::-1], atol=1e-6)   # the opposite view
    for view, image in zip(first, shapes.images):                            # one of the 4 views of its image
        candidates = [image, image[:, ::-1], 1.0 - image, 1.0 - image[:, ::-1]]
        assert min(np.abs(view - c).max() for c in candidates) < 1e-6
    # the views are random: not all the identity
    assert np.abs(first - shapes.images).max() > 0.1


def test_vit_training_is_deterministic(tmp_path):
    """Two runs with the same seed write the same weights (a tiny run: 1 epoch on 32 images)."""
    for run in ("a", "b"):
        training.train("shapes-vit", tmp_path / run, epochs=1, n_train=32)
    from camtutor import models

    weights = []
    for run in ("a", "b"):
        model = models.build("shapes-vit")
        model.load_weights(tmp_path / run / "shapes-vit.weights.h5")
        weights.append(model.get_weights())
    assert len(weights[0]) > 10
    for w1, w2 in zip(*weights):
        np.testing.assert_array_equal(w1, w2)
