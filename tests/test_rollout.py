"""Attention rollout (Abnar & Zuidema 2020): the formula, its map, and the attention of a Keras ViT."""

import numpy as np
import pytest

from camtutor import rollout
from camtutor.errors import CamTutorError, ModelError


def _softmax_rows(rng, shape):
    logits = rng.normal(size=shape) * 2
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _reference(attentions):
    """The paper's recursion written out per image, with plain loops: Ã = 0.5 A + 0.5 I, R_l = Ã_l R_(l-1)."""
    batch, _, tokens, _ = attentions[0].shape
    out = np.zeros((batch, tokens, tokens))
    for b in range(batch):
        rolled = np.eye(tokens)
        for layer in attentions:
            mean = sum(layer[b, n] for n in range(layer.shape[1])) / layer.shape[1]
            rolled = (0.5 * mean + 0.5 * np.eye(tokens)) @ rolled
        out[b] = rolled
    return out


def test_rollout_matches_the_recursion_and_keeps_rows_stochastic():
    rng = np.random.default_rng(0)
    atts = [_softmax_rows(rng, (3, 4, 10, 10)) for _ in range(3)]
    got = rollout.attention_rollout(atts)
    np.testing.assert_allclose(got, _reference(atts), atol=1e-12)
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, atol=1e-12)
    assert (got >= 0).all()


def test_order_of_layers_matters_later_layers_on_the_left():
    rng = np.random.default_rng(1)
    a, b = (_softmax_rows(rng, (1, 1, 5, 5)) for _ in range(2))
    ta, tb = (0.5 * x[0, 0] + 0.5 * np.eye(5) for x in (a, b))
    np.testing.assert_allclose(rollout.attention_rollout([a, b])[0], tb @ ta, atol=1e-12)
    assert not np.allclose(tb @ ta, ta @ tb)


def test_identity_attention_rolls_out_to_identity_and_uniform_to_uniform():
    eye = np.broadcast_to(np.eye(6), (2, 3, 6, 6))
    np.testing.assert_allclose(rollout.attention_rollout([eye, eye]), np.broadcast_to(np.eye(6), (2, 6, 6)))
    uniform = np.full((1, 2, 6, 6), 1 / 6)
    # without the residual, one uniform layer already mixes everything
    np.testing.assert_allclose(rollout.attention_rollout([uniform], residual=False), 1 / 6)
    # with it, (U + I) / 2: the diagonal keeps half
    got = rollout.attention_rollout([uniform])[0]
    np.testing.assert_allclose(np.diag(got), 0.5 + 0.5 / 6)


def test_rollout_map_reads_the_class_row_on_the_grid():
    rng = np.random.default_rng(2)
    atts = [_softmax_rows(rng, (2, 2, 1 + 6, 1 + 6)) for _ in range(2)]
    maps = rollout.rollout_map(atts, (2, 3))
    full = _reference(atts)
    assert maps.shape == (2, 2, 3) and maps.dtype == np.float32
    np.testing.assert_allclose(maps[1, 1, 2], full[1, 0, 1 + 1 * 3 + 2], rtol=1e-6)
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1 - full[:, 0, 0], rtol=1e-5)
    no_prefix = rollout.rollout_map(atts, (1, 7), prefix=0)
    np.testing.assert_allclose(no_prefix[:, 0], full[:, 0].astype(np.float32), rtol=1e-6)


@pytest.mark.parametrize(
    "attentions, grid, message",
    [
        ([], (2, 3), "non-empty list"),
        ([np.ones((1, 1, 7, 6))], (2, 3), "T keys = T queries"),
        ([np.ones((1, 1, 7, 7)), np.ones((2, 1, 7, 7))], (2, 3), "same batch"),
        ([np.full((1, 1, 7, 7), np.nan)], (2, 3), "NaN"),
        ([np.ones((1, 1, 7, 7)) / 7], (3, 3), "leaves 6"),
    ],
)
def test_bad_input_names_the_fix(attentions, grid, message):
    with pytest.raises(CamTutorError, match=message):
        rollout.rollout_map(attentions, grid)


def test_attention_of_a_keras_vit_matches_its_own_softmax():
    import keras

    from camtutor import models

    keras.utils.set_random_seed(0)
    model = models.vit_classifier(3, input_shape=(16, 24, 3), patch=8, dim=8, depth=2, heads=2, mlp=8)
    images = np.random.default_rng(0).random((3, 16, 24, 3), dtype=np.float32)
    atts = rollout.attention_matrices(model, images, batch_size=2)
    assert [a.shape for a in atts] == [(3, 2, 7, 7)] * 2
    np.testing.assert_allclose(np.stack(atts).sum(axis=-1), 1.0, atol=1e-5)
    # the same softmax by hand from the first block's query / key projections
    mha = model.get_layer("block1_attention")
    x = keras.Model(model.input, model.get_layer("block1_norm1").output)(images)
    q = np.einsum("btd,dnk->btnk", np.asarray(x), np.asarray(mha._query_dense.kernel)) + np.asarray(mha._query_dense.bias)
    k = np.einsum("btd,dnk->btnk", np.asarray(x), np.asarray(mha._key_dense.kernel)) + np.asarray(mha._key_dense.bias)
    logits = np.einsum("bqnk,btnk->bnqt", q, k) / np.sqrt(q.shape[-1])
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(atts[0], expected, atol=1e-5)
    # the clone shares the layers: its prediction is the model's, and the model is unchanged
    out = rollout.attention_model(model)(images)[0]
    np.testing.assert_allclose(np.asarray(out), np.asarray(model(images)), atol=1e-6)
    assert len(model.outputs) == 1
    maps = rollout.rollout_map(atts, (2, 3))
    assert maps.shape == (3, 2, 3) and (maps >= 0).all()


def test_attention_model_refuses_a_model_without_attention():
    from camtutor import models

    with pytest.raises(ModelError, match="MultiHeadAttention"):
        rollout.attention_model(models.build("shapes"))
