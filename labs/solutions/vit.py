"""Notebook 13: a transformer's tokens laid out on their patch grid."""


def my_tokens_to_grid(tokens, grid, prefix):
    """(B, T, D) tokens -> (B, h, w, D): drop the first ``prefix`` tokens, reshape the rest row-major."""
    h, w = grid
    patches = tokens[:, prefix:, :]                       # (B, h * w, D), token prefix + r * w + c
    return patches.reshape(len(patches), h, w, patches.shape[-1])
