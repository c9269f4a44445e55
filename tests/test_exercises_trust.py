"""The notebook 09 exercise pointing_game: the reference passes; typical mistakes are caught and named."""

from __future__ import annotations

import numpy as np

from camtutor.exercises import trust as ex
from labs.solutions import trust as ref
from camtutor.metrics import pointing_game, resize_maps


def _evaluate(function):
    return ex.pointing_game.evaluate(function)


def test_reference_passes_and_matches_the_library():
    passed, message = _evaluate(ref.my_pointing_game)
    assert passed, message
    rng = np.random.default_rng(0)
    maps, masks = rng.random((5, 8, 8)), rng.random((5, 32, 32)) > 0.7
    np.testing.assert_array_equal(ref.my_pointing_game(maps, masks), pointing_game(maps, masks))


def _student(swap=False, resize=True, constant_is_miss=True, rate=False, batch_max=False):
    def student(maps, masks):
        big = resize_maps(np.asarray(maps, np.float32), masks.shape[1:]) if resize else np.asarray(maps)
        flat = big.reshape(len(big), -1)
        peak = np.full(len(big), flat.argmax()) % flat.shape[1] if batch_max else flat.argmax(axis=1)
        r, c = np.unravel_index(peak, big.shape[1:])
        hits = masks[np.arange(len(masks)), c, r] if swap else masks[np.arange(len(masks)), r, c]
        if constant_is_miss:
            hits = hits & (flat.max(axis=1) > flat.min(axis=1))
        return hits.mean() if rate else hits
    return student


def test_a_correct_student_version_passes():
    passed, message = _evaluate(_student())
    assert passed, message


def test_none_and_typical_mistakes_get_specific_feedback():
    assert "returned None" in _evaluate(lambda maps, masks: None)[1]
    assert "(row, column)" in _evaluate(_student(swap=True))[1]
    assert "resize" in _evaluate(_student(resize=False))[1]
    assert "constant map" in _evaluate(_student(constant_is_miss=False))[1]
    assert "one hit per image" in _evaluate(_student(rate=True))[1]
    passed, message = _evaluate(_student(batch_max=True))
    assert not passed and "scored wrongly" in message


def test_last_hint_is_not_the_answer():
    last = ex.pointing_game.hints[-1]
    assert "max(axis=1) ==" not in last and "min(" not in last


# --------------------------------------------------------------------------- notebook 10: Spearman
def test_spearman_reference_passes_and_mistakes_are_named():
    passed, message = ex.spearman.evaluate(ref.my_spearman)
    assert passed, message
    from scipy.stats import rankdata

    def pearson(a, b):
        a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
        return np.array([np.corrcoef(x, y)[0, 1] for x, y in zip(a, b)])

    def ordinal(a, b):     # ties broken by position
        return pearson(rankdata(a.reshape(len(a), -1), axis=1, method="ordinal"),
                       rankdata(b.reshape(len(b), -1), axis=1, method="ordinal"))

    def whole_batch(a, b):  # ranks over the whole batch
        ra = rankdata(a.ravel()).reshape(len(a), -1)
        rb = rankdata(b.ravel()).reshape(len(b), -1)
        return pearson(ra, rb)

    assert "Pearson" in ex.spearman.evaluate(pearson)[1]
    assert "average of their ranks" in ex.spearman.evaluate(ordinal)[1]
    message = ex.spearman.evaluate(whole_batch)[1]
    assert "not yet" in message
    assert "returned None" in ex.spearman.evaluate(lambda a, b: None)[1]
