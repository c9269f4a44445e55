import nbformat, sys
from nbformat.v4 import new_notebook, new_markdown_cell, new_code_cell

NAME = "13_vit_class_activation_maps.ipynb"
cells = []
def md(s): cells.append(new_markdown_cell(s.strip("\n")))
def code(s): cells.append(new_code_cell(s.strip("\n")))

md(f"""
# 13 · Class activation maps for a Vision Transformer

[![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/camtutor/camtutor/HEAD?labpath=notebooks%2F{NAME}) [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/camtutor/camtutor/blob/main/notebooks/{NAME})

## Learning objectives

- See a Vision Transformer's layers as **tokens** (B, T, D): a class token, then one token per image patch. Lay the
  patch tokens out on their **grid** by hand, and run Grad-CAM on that grid as on a convolutional feature map.
- Explain the **class-token pitfall** from the gradient: when the head reads only the class token, the patch tokens
  after the last attention get a gradient of **exactly zero**, so Grad-CAM there is a map of zeros. Know which
  layer to explain instead.
- Measure **which block** to explain with notebook 09's two-object **discrimination share**, block by block.
- Compare the bundled CNN (`shapes`) and the bundled ViT (`shapes-vit`) on the same images, with the baselines
  and the Wilson intervals of notebook 09.
- Compute **attention rollout** (Abnar & Zuidema 2020), the transformer's own baseline, and measure what it shows
  (where the class token draws from) and what it cannot (which class: it is the same map for every class).

**Prerequisites:** [04 · Gradients](04_gradients.ipynb), [05 · ReLU and Grad-CAM](05_relu_and_grad_cam.ipynb),
[09 · Can you trust a map?](09_can_you_trust_a_map.ipynb) (pointing game, discrimination share, baselines) and
[11 · The CAM family](11_the_cam_family.ipynb).

Previous: [12 · What a class activation map cannot show](12_what_a_cam_cannot_show.ipynb) · Next: back to
[00 · Start here](00_start_here.ipynb)
""")
code("""
import os, sys
if "google.colab" in sys.modules:  # on Colab: install camtutor first
    !pip install -q git+https://github.com/camtutor/camtutor  # noqa
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
%matplotlib inline
""")
code("""
import numpy as np, matplotlib.pyplot as plt, keras, tensorflow as tf, camtutor as ct
from camtutor import metrics, trust, rollout
from camtutor.course import show_shared_scale
%config InlineBackend.figure_formats = ["jpeg"]  # photo-like figures: a small notebook

cnn = ct.models.load("shapes")       # convolutions -> last_conv (16x16x32) -> GAP -> Dense
vit = ct.models.load("shapes-vit")   # 8-px patches -> tokens -> 2 attention blocks -> head
names = ct.models.class_names("shapes-vit")
one = ct.data.shapes(200, seed=9301)      # one object per image (training used seed=0)
two = ct.data.two_shapes(200, seed=9302)  # two objects of different classes per image
fmt = "{:.3f} [{:.3f}, {:.3f}]".format    # value [low, high]
relu = lambda m: np.maximum(m, 0.0)
for label, model in (("CNN shapes", cnn), ("ViT shapes-vit", vit)):
    right = ct.class_probabilities(model, one.images).argmax(axis=1) == one.labels
    print(f"{label:15s} accuracy on 200 new images {fmt(*metrics.rate_interval(right))}")
    assert right.mean() >= 0.9
""")
md("""
## 1. A transformer's layers are tokens

The ViT cuts the 64×64 image into an 8×8 grid of 8-px patches (`patch_embed`, a `Conv2D` with kernel 8 and
stride 8), flattens the grid into 64 **tokens** (`patch_tokens`), puts one learned **class token** in front
(`class_token`: 65 tokens) and adds a position embedding. Each block then mixes the tokens with self-attention and
transforms each token alone with an MLP. The head reads **only the class token** at the end.
""")
code("""
for layer in ("patch_embed", "patch_tokens", "class_token", "block1_norm1",
              "block1_attention", "block2_out", "final_norm", "class_vector"):
    print(f"{layer:17s} {str(vit.get_layer(layer).output.shape):18s}")
print("parameters:", vit.count_params(), "(the CNN:", cnn.count_params(), ")")
""")
md("""
A token layer (B, T, D) is not a feature map (B, h, w, K), but it holds one: drop the **prefix** (the class token,
token 0), and the remaining 64 tokens are the grid's cells in row-major order, token `1 + r * 8 + c` for row `r`,
column `c`. That is exactly what `Reshape((64, D))` did to the patch embedding, so reshaping back must give the
patch embedding itself:
""")
code("""
def to_grid(tokens, grid=(8, 8), prefix=1):
    \"\"\"(B, T, D) tokens -> (B, h, w, D): drop the prefix, reshape row-major.\"\"\"
    return tokens[:, prefix:].reshape(len(tokens), *grid, tokens.shape[-1])

probe = keras.Model(vit.input, [vit.get_layer("patch_embed").output,
                                 vit.get_layer("class_token").output])
patches, tokens = (t.numpy() for t in probe(one.images[:8]))
print("tokens", tokens.shape, "-> grid", to_grid(tokens).shape)
assert np.array_equal(to_grid(tokens), patches)        # exactly the patch embedding
print("class token, the same for every image:", np.ptp(tokens[:, 0], axis=0).max() == 0)
""")

md("""
## 2. Grad-CAM on the grid, by hand

With the tokens on their grid, Grad-CAM is notebook 05's formula unchanged: the gradient $g$ of the class
**logit** with respect to the layer's activations $A$ (B, h, w, D), one weight per channel
$\alpha_k = \frac{1}{hw}\sum_{ij} g_{ijk}$, and $L = \mathrm{ReLU}(\sum_k \alpha_k A_k)$. The logit is the head's
`Dense` before its softmax: `class_vector @ kernel + bias`.

Which layer? Take `block2_norm1`, the input of the **last** attention (section 3 says why). One `GradientTape`
gives the tokens and their gradients for a whole batch:
""")
code("""
def token_gradients(model, images, classes, layer):
    \"\"\"Tokens (B, T, D) of `layer` and d(class logit) / d(tokens), one pass.\"\"\"
    probe = keras.Model(model.input, [model.get_layer(layer).output,
                                       model.get_layer("class_vector").output])
    kernel, bias = model.get_layer("predictions").get_weights()
    with tf.GradientTape() as tape:
        tokens, vector = probe(tf.constant(images))
        logits = tf.matmul(vector, kernel) + bias            # the score before softmax
        score = tf.gather(logits, np.asarray(classes), batch_dims=1)
    return tokens.numpy(), tape.gradient(score, tokens).numpy()

def grad_cam_tokens(model, images, classes, layer):
    \"\"\"Grad-CAM on the token grid: ReLU(sum_k alpha_k A_k), (B, 8, 8).\"\"\"
    A, g = (to_grid(t) for t in token_gradients(model, images, classes, layer))
    return relu(np.einsum("bhwk,bk->bhw", A, g.mean(axis=(1, 2))))

vit_maps = grad_cam_tokens(vit, one.images, one.labels, "block2_norm1")
print("maps", vit_maps.shape, "- one value per 8x8-px patch")
""")
md("""
camtutor does the same without the reshape: it finds the grid (8×8) and the prefix (1 token) from the model (the
`Conv2D` patch embedding the tokens are computed from), and lists token layers among the layers it can explain.
Its default layer for this ViT is the last one listed:
""")
code("""
listed = ct.conv_layers(vit)
print("explainable layers:", ", ".join(listed))
library = ct.grad_cam(vit, one.images, one.labels)      # default layer
gap = np.abs(library - vit_maps).max() / vit_maps.max()
print(f"default layer {listed[-1]}; largest difference from ours, relative to the "
      f"largest value: {'< 1e-5' if gap < 1e-5 else gap}")
assert listed[-1] == "block2_norm1" and gap < 1e-5
""")
code("""
show = range(6)
cnn_maps = ct.grad_cam(cnn, one.images, one.labels)        # last_conv, 16x16
panels = [trust.positive_over_max(m[i:i + 1])[0] for m in (cnn_maps, vit_maps)
          for i in show]
_ = show_shared_scale([one.images[i] for i in show] * 2, panels,
                      [f"CNN, {names[one.labels[i]]}" for i in show]
                      + [f"ViT, {names[one.labels[i]]}" for i in show],
                      ncols=6, size=1.6, vmax=1.0, label="map / its own max",
                      suptitle="Grad-CAM of the true class; each map on its own scale")
plt.show()
""")
md("""
The ViT's map has one cell per 8×8-px patch (the CNN's `last_conv`: one per 4 px), so it is coarser, but it sits
on the object too. Section 5 measures how often.

## 3. The class-token pitfall

Why not the last block's output, `block2_out`, the layer a CNN user would pick by analogy with "the last conv
layer"? Look at the gradient of the class logit there, and at every layer of the last block:
""")
code("""
x, c = one.images[:16], one.labels[:16]
for layer in ("block2_norm1", "block2_attention", "block2_add", "block2_out",
              "final_norm"):
    _, g = token_gradients(vit, x, c, layer)
    patch = "exactly 0" if np.abs(g[:, 1:]).max() == 0 else "not 0"
    print(f"{layer:17s} gradient on the class token: not 0 "
          f"({np.abs(g[:, 0]).max() > 0}); on the 64 patch tokens: {patch}")
    assert np.abs(g[:, 0]).max() > 0
    assert (np.abs(g[:, 1:]).max() == 0) == (layer != "block2_norm1")
zeros = grad_cam_tokens(vit, x, c, "block2_out")
print("Grad-CAM at block2_out: every cell 0 on all 16 images:", (zeros == 0).all())
assert (zeros == 0).all()
""")
md("""
The zeros are exact, not small. The head reads token 0 only (`class_state` crops it). Every operation after the
last attention works **token by token**: the residual adds token $t$ to token $t$, LayerNorm normalises each token
over its own $D$ features, the MLP's two `Dense` layers act on each token alone. So a patch token after the last
attention can change only itself, and itself is cropped away: $\partial S / \partial x_t = 0$ for every patch
token $t$. Grad-CAM there multiplies activations by zero weights: a map of zeros, for every image and class.

camtutor knows this: it leaves such layers out of `ct.conv_layers` and refuses them with the fix.
""")
code("""
try:
    ct.grad_cam(vit, x, c, layer="block2_out")
except ct.CamTutorError as error:
    print(type(error).__name__ + ":", error)
else:
    raise AssertionError("block2_out should be refused")
assert "block2_out" not in listed
""")
md("""
The last layer whose patch tokens still reach the class token is the input of the last attention,
`block2_norm1`: there they are the **keys and values** the class token's query attends to. This is why
pytorch-grad-cam's documentation tells ViT users to explain `blocks[-1].norm1`, and why the `gradient` column above
is non-zero only there. (A ViT whose head **averages** the tokens has no such pitfall: every token reaches the
head.)
""")
md("""
## 4. Which block to explain?

Before the last attention there are several token layers: the embedded patches (`position`, before any attention),
the input and output of block 1, and the input of block 2. On notebook 09's two-object images, score each with the
**discrimination share**: of the map peaks that land on an object, the share on the object of the asked class
(0.5 for any class-blind map, `trust.discrimination_scores`; intervals resample images).
""")
code("""
images2, classes2, masks2, boxes2, groups2 = trust.two_object_rows(two)
other2 = np.concatenate([two.masks[:, 1], two.masks[:, 0]])   # each row's other object
blocks = ("position", "block1_norm1", "block1_out", "block2_norm1")
per_block = {layer: ct.grad_cam(vit, images2, classes2, layer=layer) for layer in blocks}
by_block = trust.discrimination_scores(per_block, masks2, other2, groups=groups2)
print(trust.format_table(by_block, ("right", "either", "discrimination")))
""")
code(r"""
shares = {layer: by_block[layer]["discrimination"] for layer in blocks}
best = max(blocks, key=lambda layer: shares[layer][0])
print(f"highest share: {best} {fmt(*shares[best])}")
assert best == "block2_norm1" and shares[best][1] > 0.9
assert shares["position"][0] < shares["block2_norm1"][1]  # before attention: lower
""")
md("""
BLOCK_TEXT
""")
md("""
## 5. CNN against ViT, on the same images

Notebook 09's measurements for both bundled models on the same 200 one-object and 200 two-object images: the
pointing game (Wilson intervals) for Grad-CAM at each model's explained layer (`last_conv`; `block2_norm1`), beside
the strongest model-free baselines, colour deviation and the centre prior, and a random map.
""")
code("""
baselines = ("deviation", "centre", "random")
maps_one = {"CNN Grad-CAM": cnn_maps, "ViT Grad-CAM": vit_maps,
            **trust.baseline_maps(one.images, names=baselines)}
table_one = trust.localisation_scores(maps_one, one.masks, one.boxes)
print(trust.format_table(table_one, ("pointing", "energy")))
""")
code("""
point = {name: table_one[name]["pointing"] for name in maps_one}
for model_name in ("CNN Grad-CAM", "ViT Grad-CAM"):
    assert point[model_name][0] >= 0.8
    for b in baselines:                       # Wilson intervals apart
        assert point[model_name][1] > point[b][2], (model_name, b)
print(f"ViT {fmt(*point['ViT Grad-CAM'])}, CNN {fmt(*point['CNN Grad-CAM'])}, "
      f"best baseline (deviation) {fmt(*point['deviation'])}")
CNN_VIT_ASSERT
""")
code("""
maps_two = {"CNN Grad-CAM": ct.grad_cam(cnn, images2, classes2),
            "ViT Grad-CAM": per_block["block2_norm1"],
            **trust.baseline_maps(images2, names=baselines)}
two_table = trust.discrimination_scores(maps_two, masks2, other2, groups=groups2)
print(trust.format_table(two_table, ("right", "either", "discrimination")))
for b in ("deviation", "centre"):
    assert two_table[b]["discrimination"] == (0.5, 0.5, 0.5)   # class-blind
TWO_ASSERT
""")
md("""
CNN_VIT_TEXT

## 6. Attention rollout: the transformer's own baseline

A transformer offers a map that needs no gradient: its attention. **Attention rollout** (Abnar & Zuidema 2020)
follows how much of each input token can flow into the class token through all the blocks. For each layer
$l$, average the attention weights over the heads, $A_l$ (T×T, rows sum to 1); model the residual connection by
adding the identity, $\\tilde A_l = (A_l + I)/2$; multiply through the layers,
$R = \\tilde A_L \\cdots \\tilde A_1$. Row 0 of $R$ (the class token), without its own column, on the 8×8 grid,
is the map. `rollout.attention_matrices` reads the attention weights of every `MultiHeadAttention` layer (a clone
of the model that shares its layers and also returns them), `rollout.rollout_map` does the rest. By hand:
""")
code("""
att = rollout.attention_matrices(vit, one.images)          # per block: (B, heads, T, T)
print("attention:", [a.shape for a in att], "rows sum to 1:",
      np.allclose(att[0].sum(axis=-1), 1, atol=1e-5))
eye = np.eye(att[0].shape[-1])
mixed = [(a.mean(axis=1) + eye) / 2 for a in att]           # heads averaged, + residual
by_hand = (mixed[1] @ mixed[0])[:, 0, 1:].reshape(-1, 8, 8)  # later block on the left
roll_one = rollout.rollout_map(att, (8, 8))
print("largest difference from rollout.rollout_map:",
      "< 1e-6" if np.abs(by_hand - roll_one).max() < 1e-6 else "too large")
assert np.abs(by_hand - roll_one).max() < 1e-6
""")
code("""
maps_one["rollout"] = roll_one
table_roll = trust.localisation_scores(
    {k: maps_one[k] for k in ("ViT Grad-CAM", "rollout", "deviation", "centre")},
    one.masks, one.boxes)
print(trust.format_table(table_roll, ("pointing", "energy")))
ROLL_ASSERT
""")
code("""
roll = rollout.rollout_map(rollout.attention_matrices(vit, two.images), (8, 8))
roll_two = np.concatenate([roll, roll])   # no class argument: one map for both objects
roll_share = trust.discrimination_scores({"rollout": roll_two, **maps_two},
                                         masks2, other2, groups=groups2)
print(trust.format_table(roll_share, ("right", "either", "discrimination")))
assert roll_share["rollout"]["discrimination"] == (0.5, 0.5, 0.5)
""")
code("""
show = range(4)
rows = (("ViT Grad-CAM", vit_maps), ("rollout", roll_one), ("deviation", maps_one["deviation"]))
panels = [trust.positive_over_max(m[i:i + 1])[0] for _, m in rows for i in show]
_ = show_shared_scale([one.images[i] for i in show] * 3, panels,
                      [f"{name}, {names[one.labels[i]]}" for name, _ in rows for i in show],
                      ncols=4, size=1.8, vmax=1.0, label="map / its own max",
                      suptitle="each map on its own scale: ViT Grad-CAM, rollout, deviation")
plt.show()
""")
md("""
ROLL_TEXT
""")
md("""
## Exercise: tokens to grid

Write `my_tokens_to_grid(tokens, grid, prefix)`: `tokens` is a token layer's output (B, T, D), `grid` is (h, w)
(not always square), and `prefix` the number of leading non-patch tokens (1 for a class token; 0 if none; more
with register tokens). Return the patch tokens as (B, h, w, D), token `prefix + r * w + c` at row r, column c.
The checker tries several grids and prefixes and names the usual mistakes; `ex.tokens_to_grid.hint()` gives
staged hints.
""")
code("""
from camtutor.exercises import vit as ex


def my_tokens_to_grid(tokens, grid, prefix):
    # YOUR CODE HERE
    return None
""")
code("""
_ = ex.tokens_to_grid.check(my_tokens_to_grid)
""")
code("""
if ex.tokens_to_grid.evaluate(my_tokens_to_grid)[0]:   # runs once your function passes
    tokens, grads = token_gradients(vit, one.images[:8], one.labels[:8], "block2_norm1")
    A, g = my_tokens_to_grid(tokens, (8, 8), 1), my_tokens_to_grid(grads, (8, 8), 1)
    mine = relu(np.einsum("bhwk,bk->bhw", A, g.mean(axis=(1, 2))))
    print("your Grad-CAM equals section 2's:", np.allclose(mine, vit_maps[:8]))
""")
md("""
## Closing note: the numbers
""")
code("""
closing = {**table_one, **table_roll}
for name in ("CNN Grad-CAM", "ViT Grad-CAM", "rollout", "deviation", "centre", "random"):
    print(f"one object   pointing game  {name:13s} {fmt(*closing[name]['pointing'])}")
for name in ("CNN Grad-CAM", "ViT Grad-CAM", "rollout", "deviation"):
    share = fmt(*roll_share[name]["discrimination"])
    print(f"two objects  discrimination {name:13s} {share}")
for layer in blocks:
    print(f"ViT Grad-CAM discrimination {layer:13s} {fmt(*shares[layer])}")
""")
md("""
## Summary

SUMMARY

## Questions

1. Why is the gradient of the class logit at `block2_out`'s patch tokens exactly zero, and not just small? Which
   change to the model would give them a gradient?
2. The ViT's map has one cell per 8 px, the CNN's one per 4 px. What can that cost on the pointing game for small
   objects, and how would you check it?
3. Attention rollout scores exactly 0.5 on the discrimination share. Why must it? Which question can it still
   answer?
4. Rollout multiplies attention weights and ignores the MLPs and the value vectors. Describe a token that gets a
   high rollout but contributes nothing to the class score.
5. In a ViT whose head averages all the tokens, which layer would you explain, and does the pitfall of section 3
   arise?
""")
nb = new_notebook(cells=cells, metadata={"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                                         "language_info": {"name": "python"}})
for i, cell in enumerate(nb.cells):
    cell["id"] = f"vit13-{i:02d}"
import json
SUBS = json.load(open("/tmp/h6/subs.json")) if len(sys.argv) > 1 else {}
for cell in nb.cells:
    for k, v in SUBS.items():
        cell.source = cell.source.replace(k, v)
nbformat.write(nb, "/work/wt/h6/notebooks/" + NAME)
