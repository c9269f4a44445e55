"""Properties every method of the registry must have, tested once over the whole registry.

The method lists are read from :data:`camtutor.methods.REGISTRY`, so a method added there is tested here
without an edit. The model is the bundled, trained shapes model (a random network has no class evidence to
find); the images are two-object shapes, two objects of different classes per image.
"""

from __future__ import annotations

import numpy as np
import pytest

import camtutor as ct
from camtutor import metrics, trust
from camtutor.methods import REGISTRY

CLASS_SPECIFIC = [name for name, entry in REGISTRY.items() if entry.class_specific]
CLASS_BLIND = [name for name, entry in REGISTRY.items() if not entry.class_specific]
#: the methods whose map reads the class score chosen by ``score=`` (here the logit)
READS_THE_LOGIT = [name for name, entry in REGISTRY.items() if entry.reads == "score"]
N = 30


@pytest.fixture(scope="module")
def setting():
    model = ct.models.load("shapes")
    two = ct.data.two_shapes(N, seed=2024)
    images, classes, masks, _, groups = trust.two_object_rows(two)  # row k*N + i: object k of image i
    other = np.concatenate([two.masks[:, 1], two.masks[:, 0]])
    return model, images, classes, masks, other, groups


def _maps(model, images, classes, method, **options):
    return ct.heatmap(model, images, classes, method=method, layer=None if method == "cam" else "last_conv",
                      **options)


def _between_classes(maps):
    """Mean Spearman between the map for object 0's class and the map for object 1's class, per image."""
    rho = metrics.similarity(maps[:N], maps[N:])["spearman"]
    return float(np.nanmean(rho))


def test_the_lists_come_from_the_registry():
    assert set(CLASS_SPECIFIC) | set(CLASS_BLIND) == set(REGISTRY)
    assert {"gradcam", "scorecam", "scorecam_code", "ablationcam"} <= set(CLASS_SPECIFIC)


@pytest.mark.parametrize("method", CLASS_SPECIFIC)
def test_every_class_specific_map_changes_with_the_class(setting, method):
    """Two classes, two objects: the maps differ, and more peaks land on the asked class's object than on
    the other one (a class-blind map scores exactly 0.5 and a between-class Spearman of 1)."""
    model, images, classes, masks, other, groups = setting
    maps = _maps(model, images, classes, method)
    share = trust.discrimination_scores({method: maps}, masks, other, groups=groups)[method]["discrimination"]
    rho = _between_classes(maps)
    assert rho < 0.9, (method, rho)
    assert share[0] > 0.6, (method, share)


@pytest.mark.parametrize("method", CLASS_BLIND)
def test_a_class_blind_method_gives_the_same_map_for_both_classes(setting, method):
    model, images, classes, _, _, _ = setting
    maps = _maps(model, images, classes, method)
    np.testing.assert_array_equal(maps[:N], maps[N:])


def test_score_cam_with_probabilities_and_a_channel_softmax_is_class_blind(setting):
    """The control that shows the property test can fail: Score-CAM's weights as a softmax over channels of
    *probability* increases (in [-1, 1]) lie within a factor e of each other, so the two classes' maps
    nearly coincide and the share of peaks on the right object is chance."""
    model, images, classes, masks, other, groups = setting
    maps = _maps(model, images, classes, "scorecam", score="probability")
    share = trust.discrimination_scores({"mix": maps}, masks, other, groups=groups)["mix"]["discrimination"]
    assert _between_classes(maps) > 0.95
    assert abs(share[0] - 0.5) < 0.05


def test_score_cam_weights_within_a_factor_e_for_probabilities():
    """maths.score_cam_weights: probability increases for one image and class span at most 1, so the
    weights are within a factor e of each other; logit increases many units apart give one dominant channel."""
    rng = np.random.default_rng(0)
    p = rng.random((4, 32)).astype(np.float32)
    w = np.asarray(ct.maths.score_cam_weights(p, np.full(4, 0.5, np.float32)))
    assert (w.max(-1) / w.min(-1) <= np.e ** (p.max(-1) - p.min(-1)) * (1 + 1e-5)).all()
    z = (10 * rng.standard_normal((4, 32))).astype(np.float32)
    w = np.asarray(ct.maths.score_cam_weights(z, np.zeros(4, np.float32)))
    assert (w.max(-1) > 0.5).all()


@pytest.fixture(scope="module")
def shifted():
    """The shapes model and a copy whose logit of each image's top class is lowered by a constant (the final
    Dense bias), so that it is negative on every image; one-object shapes."""
    import keras

    model = ct.models.load("shapes")
    images = ct.data.shapes(12, seed=3).images
    logits = np.asarray(ct.explain.explainer(model).scores_function("logit")(images))
    top = int(np.bincount(logits.argmax(axis=1)).argmax())
    keep = logits.argmax(axis=1) == top
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    kernel, bias = copy.get_layer("predictions").get_weights()
    bias[top] -= float(logits[keep, top].max()) + 5.0
    copy.get_layer("predictions").set_weights([kernel, bias])
    shifted_logits = np.asarray(ct.explain.explainer(copy).scores_function("logit")(images[keep]))
    assert (logits[keep, top] > 0).all() and (shifted_logits[:, top] < 0).all()
    return model, copy, images[keep], np.full(int(keep.sum()), top)


def test_the_logit_readers_come_from_the_registry():
    assert {"gradcam", "scorecam", "ablationcam"} <= set(READS_THE_LOGIT)
    assert not {"cam", "eigencam", "scorecam_code"} & set(READS_THE_LOGIT)


@pytest.mark.parametrize("method", READS_THE_LOGIT)
def test_a_drop_in_score_never_flips_its_sign(shifted, method):
    """Shifting the class's logit by a constant (positive -> negative on every image) changes no gradient, no
    score difference and no drop: every map that reads the logit is unchanged after min-max normalisation."""
    model, copy, images, classes = shifted
    before = ct.normalize(ct.heatmap(model, images, classes, method=method))
    after = ct.normalize(ct.heatmap(copy, images, classes, method=method))
    assert before.max() > 0
    np.testing.assert_allclose(after, before, atol=1e-3)
