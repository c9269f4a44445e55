"""Builds notebooks/13_vit_class_activation_maps.ipynb (unexecuted); run tools.notebooks 13 after."""
import nbformat
from nbformat.v4 import new_notebook, new_markdown_cell, new_code_cell

NAME = "13_vit_class_activation_maps.ipynb"
cells = []
def md(s): cells.append(new_markdown_cell(s.strip("\n")))
def code(s): cells.append(new_code_cell(s.strip("\n")))

md(f"""
# 13 · Class activation maps for a Vision Transformer

[![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/camtutor/camtutor/HEAD?labpath=notebooks%2F{NAME}) [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/camtutor/camtutor/blob/main/notebooks/{NAME})

## Learning objectives

- See a Vision Transformer's layers as **tokens** (B, T, D): perhaps a class token, then one token per image
  patch. Lay the patch tokens out on their **grid** by hand, check that this is what camtutor explains, and run
  Grad-CAM on that grid as on a convolutional feature map.
- Explain the **class-token pitfall** from the gradient: when the head reads only the class token, the patch
  tokens after the last attention get a gradient of **exactly zero**, so Grad-CAM there is a map of zeros. Know
  which layer to explain instead, and see camtutor refuse the dead layer with the fix.
- Measure **which block** to explain with notebook 09's two-object **discrimination share**, block by block.
- Compare the bundled CNN (`shapes`) and the bundled ViT (`shapes-vit`) on the same images, with the baselines
  and the Wilson intervals of notebook 09, and state only what the intervals support.
- Compute **attention rollout** (Abnar & Zuidema 2020), the transformer's own baseline, and measure what it shows
  (where the attention routes the image into what the head reads) and what it cannot (which class: it is the same
  map for every class).

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
tf.get_logger().setLevel("ERROR")  # a TF warning on the bool attention mask

cnn = ct.models.load("shapes")       # convolutions -> last_conv 16x16 -> GAP -> Dense
vit = ct.models.load("shapes-vit")   # 8-px patches -> tokens -> attention -> head
names = ct.models.class_names("shapes-vit")
one = ct.data.shapes(200, seed=9301)      # one object per image (not a training seed)
two = ct.data.two_shapes(200, seed=9302)  # two objects of different classes per image
fmt = "{:.3f} [{:.3f}, {:.3f}]".format    # value [low, high]: 95 % interval
for label, model in (("CNN shapes", cnn), ("ViT shapes-vit", vit)):
    right = ct.class_probabilities(model, one.images).argmax(axis=1) == one.labels
    accuracy = fmt(*metrics.rate_interval(right))
    print(f"{label:15s} accuracy on 200 new images {accuracy}")
    assert right.mean() >= 0.85
""")
md("""
Both models classify most new images right: whatever their maps show below, they are maps of working
classifiers.

## 1. A transformer's layers are tokens

The ViT cuts the 64×64 image into an 8×8 grid of 8-px patches (`patch_embed`, a strided `Conv2D`), flattens the
grid into 64 **tokens** (`patch_tokens`), may put a learned **class token** in front, and adds a position
embedding (`position`). Each block then mixes the tokens with self-attention (with an `attention_window` layer,
each patch attends only to its nearby patches: local attention) and transforms each token alone with an MLP.
The head reads the class token alone, or pools all the tokens (their mean, or their per-channel maximum); the
list shows which:
""")
code("""
for layer in vit.layers[1:]:
    print(f"{layer.name:17s} {layer.output.shape}")
T, D = vit.get_layer("position").output.shape[1:]
h, w = vit.get_layer("patch_embed").output.shape[1:3]
prefix = T - h * w                     # leading tokens that are not patches
pooling = vit.layers[-2].name                # the layer the head's Dense reads
print(f"\\n{T} tokens = {prefix} non-patch + {h}x{w} patches; head reads {pooling}")
""")
md("""
A token layer (B, T, D) is not a feature map (B, h, w, K), but it holds one: drop the **prefix** (the class
token, if any), and the remaining 64 tokens are the grid's cells in row-major order, token `prefix + r * 8 + c`
for row `r`, column `c`. That is exactly what `Reshape((64, D))` did to the patch embedding. So reshaping the
tokens back must give the patch embedding (before the position embedding is added), and, at any token layer,
the very feature maps camtutor hands to Grad-CAM (`ct.gradients` returns them with their gradients):
""")
code("""
def to_grid(tokens, grid=(h, w), prefix=prefix):
    \"\"\"(B, T, D) tokens -> (B, h, w, D): drop the prefix, reshape row-major.\"\"\"
    return tokens[:, prefix:].reshape(len(tokens), *grid, tokens.shape[-1])

x8, c8 = one.images[:8], one.labels[:8]
before = "class_token" if prefix else "patch_tokens"   # the tokens before position
probe = keras.Model(vit.input, [vit.get_layer(n).output
                                for n in ("patch_embed", before, "block1_norm1")])
patches, first, normed = (t.numpy() for t in probe(x8))
print("tokens", first.shape, "-> grid", to_grid(first).shape)
assert np.array_equal(to_grid(first), patches)        # exactly the patch embedding
captured, _ = ct.gradients(vit, x8, c8, layer="block1_norm1")
gap = np.abs(to_grid(normed) - captured).max()
print("block1_norm1: our grid vs camtutor's:", "< 1e-5" if gap < 1e-5 else gap)
assert captured.shape == (8, h, w, D) and gap < 1e-5
""")
md("""
## 2. Grad-CAM on the grid, by hand

With the tokens on their grid, Grad-CAM is notebook 05's formula unchanged: the gradient $g$ of the class
**logit** with respect to the layer's activations $A$ (B, h, w, D), one weight per channel
$\\alpha_k = \\frac{1}{hw}\\sum_{ij} g_{ijk}$, and $L = \\mathrm{ReLU}(\\sum_k \\alpha_k A_k)$. The logit is the
head's `Dense` before its softmax: its input times its kernel plus its bias.

Which layer? camtutor's default for a ViT is the **last token layer whose patch tokens reach the score**
(section 3 says why "reach" matters). One `GradientTape` gives the tokens and their gradients for a batch:
""")
code("""
def token_gradients(model, images, classes, layer):
    \"\"\"Tokens (B, T, D) of `layer` and d(class logit) / d(tokens), one pass.\"\"\"
    head = model.get_layer("predictions")                    # Dense + softmax
    probe = keras.Model(model.input, [model.get_layer(layer).output, head.input])
    kernel, bias = head.get_weights()
    with tf.GradientTape() as tape:
        tokens, vector = probe(tf.constant(images))
        logits = tf.matmul(vector, kernel) + bias            # the score before softmax
        score = tf.gather(logits, np.asarray(classes), batch_dims=1)
    grads = tape.gradient(score, tokens, unconnected_gradients="zero")
    return tokens.numpy(), grads.numpy()

def grad_cam_tokens(model, images, classes, layer, prefix=prefix):
    \"\"\"Grad-CAM on the token grid: ReLU(sum_k alpha_k A_k), (B, 8, 8).\"\"\"
    tokens, grads = token_gradients(model, images, classes, layer)
    A, g = to_grid(tokens, prefix=prefix), to_grid(grads, prefix=prefix)
    return np.maximum(np.einsum("bhwk,bk->bhw", A, g.mean(axis=(1, 2))), 0)
""")
code("""
listed = ct.conv_layers(vit)
default = listed[-1]
vit_maps = grad_cam_tokens(vit, one.images, one.labels, default)
library = ct.grad_cam(vit, one.images, one.labels)      # camtutor, its default layer
gap = np.abs(library - vit_maps).max() / max(vit_maps.max(), 1e-12)
print(f"default layer {default}; maps {vit_maps.shape}, one value per 8x8-px patch")
print("largest difference from ours, relative to the largest value:",
      "< 1e-4" if gap < 1e-4 else gap)
assert gap < 1e-4
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
The ViT's map has one cell per 8×8-px patch (the CNN's `last_conv`: one per 4 px), so it is coarser. Whether
its peak sits on the object more often than a baseline's is not for the eye to judge on six images: section 5
measures it on 200.

## 3. The class-token pitfall

A CNN user would explain "the last layer", here the last block's output. In a ViT whose head reads **only the
class token**, that gives nothing. The pitfall does not depend on the weights, only on the wiring, so an untrained
class-token ViT built with `ct.models.vit_classifier` shows it. The gradient of the class logit at every layer of
its last block:
""")
code("""
keras.utils.set_random_seed(13)
class_vit = ct.models.vit_classifier(3)          # head on the class token, untrained
last = [n.name for n in class_vit.layers if n.name.startswith("block2_")]
last.append("final_norm")
x, c = one.images[:16], one.labels[:16]
for layer in last:
    _, g = token_gradients(class_vit, x, c, layer)
    patch = np.abs(g[:, 1:]).max()
    cls = np.abs(g[:, 0]).max() > 0
    print(f"{layer:17s} |gradient| on the class token > 0: {cls}; "
          f"on the 64 patch tokens: {'exactly 0' if patch == 0 else 'not 0'}")
    assert cls and (patch == 0) == (layer != "block2_norm1")
zeros = grad_cam_tokens(class_vit, x, c, "block2_out", prefix=1)
print("Grad-CAM at block2_out: every cell 0 on all 16 images:", (zeros == 0).all())
assert (zeros == 0).all()
""")
md("""
The zeros are exact, not small. The head reads token 0 only (`class_state` crops it). Every operation after the
last attention works **token by token**: the residual adds token $t$ to token $t$, LayerNorm normalises each token
over its own $D$ features, the MLP's two `Dense` layers act on each token alone. So a patch token after the last
attention can change only itself, and itself is cropped away: $\\partial S / \\partial x_t = 0$ for every patch
token $t$. Even the last attention's *output* at a patch position is such a token. Grad-CAM there multiplies
activations by zero weights: a map of zeros, for every image and class.

The last layer whose patch tokens still reach the class token is the input of the last attention,
`block2_norm1`: there they are the **keys and values** the class token's query attends to. That is why
pytorch-grad-cam's documentation tells ViT users to explain `blocks[-1].norm1`. camtutor finds this itself (one
probe gradient): it leaves the dead layers out of `ct.conv_layers`, picks `block2_norm1` by default, and refuses a
dead layer with the fix:
""")
code("""
print("explainable layers end with:", ct.conv_layers(class_vit)[-3:])
assert ct.conv_layers(class_vit)[-1] == "block2_norm1"
ours = grad_cam_tokens(class_vit, x, c, "block2_norm1", prefix=1)
assert np.allclose(ct.grad_cam(class_vit, x, c), ours, atol=1e-5 * ours.max())
try:
    ct.grad_cam(class_vit, x, c, layer="block2_out")
except ct.CamTutorError as error:
    print(type(error).__name__ + ":", error)
else:
    raise AssertionError("block2_out should be refused")
""")
md("""
A ViT whose head **pools all the tokens** (their mean or maximum) has no such pitfall: the tokens after the last
attention feed the pooling. The same test on the bundled model, at its last block's output, agrees with what
camtutor lists for it:
""")
code("""
out = [n.name for n in vit.layers if n.name.endswith("_out")][-1]
_, g = token_gradients(vit, x, c, out)
reaches = np.abs(g[:, prefix:]).max() > 0
print(f"bundled ViT, {out}: patch tokens reach the score: {reaches}; "
      f"camtutor lists {out}: {out in listed}")
assert reaches == (out in listed)
""")
md("""
## 4. Which block to explain?

A ViT has several token layers whose patch tokens reach the score: the embedded patches (`position`, before any
attention), each block's input (`blockN_norm1`) and output (`blockN_out`), and, with a head that pools all
tokens, the final normalisation. On notebook 09's two-object images, score Grad-CAM at each with the **discrimination share**: of
the map peaks that land on an object, the share on the object of the asked class (`trust.discrimination_scores`;
exactly 0.5 for any class-blind map; intervals resample images). `either` says how often the peak lands on an
object at all: the share is computed from those rows only, so a low `either` leaves a wide interval.
""")
code("""
images2, classes2, masks2, boxes2, groups2 = trust.two_object_rows(two)
other2 = np.concatenate([two.masks[:, 1], two.masks[:, 0]])   # each row's other object
blocks = [n for n in listed if n == "position" or n == "final_norm"
          or n.endswith(("_norm1", "_out"))]
per_block = {n: ct.grad_cam(vit, images2, classes2, layer=n) for n in blocks}
per_block |= trust.baseline_maps(images2, names=("deviation",))
by_block = trust.discrimination_scores(per_block, masks2, other2, groups=groups2)
print(trust.format_table(by_block, ("right", "either", "discrimination")))
assert by_block["deviation"]["discrimination"] == (0.5, 0.5, 0.5)   # class-blind
""")
code("""
def against_half(share):
    \"\"\"Read a discrimination share (value, low, high) against 0.5, a class-blind map.\"\"\"
    return ("above 0.5: its peaks on an object favour the asked class"
            if share[1] > 0.5 else
            "below 0.5: it prefers the other object" if share[2] < 0.5 else
            "0.5 is inside its interval: not told apart from a class-blind map")

shares = {n: by_block[n]["discrimination"] for n in blocks}
for n in blocks:
    print(f"{n:13s} {fmt(*shares[n])}  {against_half(shares[n])}")
best = max(blocks, key=lambda n: shares[n][0])
right = metrics.pointing_game(per_block[best], masks2)       # the share, re-derived
wrong = metrics.pointing_game(per_block[best], other2)
assert np.isclose(right.sum() / (right | wrong).sum(), shares[best][0])
print(f"highest share: {best}; camtutor's default layer: {default}")
""")
md("""
How to read it: pick the block with the highest share **whose interval lies above 0.5**; a share whose interval
holds 0.5 is what a map that ignores the class scores, whatever its value. A share above 0.5 with a low
`either` says only that the *few* peaks that land on an object favour the asked class, not that the map finds
objects. If no block's interval is above 0.5, no block's Grad-CAM of this model tells the two classes apart on
these images, and there is no "best block" to explain, only a least bad one. The default layer is chosen by wiring (the last one that reaches the score), not by
this measurement: the table is how you check it.

## 5. CNN against ViT, on the same images

Notebook 09's measurements for both bundled models on the same 200 one-object images: the pointing game (Wilson
intervals) and its energy form for Grad-CAM at each model's default layer, beside the strongest model-free
baseline (colour deviation), the centre prior, and a random map. `(area)` is the energy a uniform map gets.
""")
code("""
baselines = ("deviation", "centre", "random")
maps_one = {"CNN Grad-CAM": cnn_maps, "ViT Grad-CAM": vit_maps,
            **trust.baseline_maps(one.images, names=baselines)}
table_one = trust.localisation_scores(maps_one, one.masks, one.boxes)
print(trust.format_table(table_one, ("pointing", "energy")))
""")
code("""
def versus(a, b):
    \"\"\"Two (value, low, high): 'above' / 'below' when the intervals are apart.\"\"\"
    return "above" if a[1] > b[2] else "below" if a[2] < b[1] else "overlaps"

point = {n: table_one[n]["pointing"] for n in maps_one}
verdicts = {}
for name in ("CNN Grad-CAM", "ViT Grad-CAM"):
    verdicts[name] = {b: versus(point[name], point[b]) for b in baselines}
    print(f"{name} {fmt(*point[name])} against", ", ".join(
        f"{b}: {v}" for b, v in verdicts[name].items()))
print("ViT Grad-CAM above a random map (above chance):",
      verdicts["ViT Grad-CAM"]["random"] == "above")
assert set(verdicts["CNN Grad-CAM"].values()) == {"above"}
assert versus(point["deviation"], point["random"]) == "above"
""")
md("""
"above" means the two Wilson intervals do not overlap, a conservative test; "overlaps" means 200 images do not
separate them. The CNN's Grad-CAM is above every baseline, the strongest included (asserted). Read the ViT's line
the same way, and do not claim more than it says:

- above deviation: its map finds the object better than the best map that ignores the model;
- above random but not above deviation: it finds the object, but not better than a map that knows nothing
  of the model, so the pointing game is no evidence that it shows the model's reasons;
- not above random: its peak lands on the object **at chance**. That does not mean the model looks nowhere (it
  classifies accurately, first code cell): it means that this map, at this layer, does not show where the
  evidence is. Why it fails is a separate question, which this notebook does not settle (question 5).

The same question on two objects, where only a map that sees the class can beat 0.5:
""")
code("""
maps_two = {"CNN Grad-CAM": ct.grad_cam(cnn, images2, classes2),
            "ViT Grad-CAM": ct.grad_cam(vit, images2, classes2),
            **trust.baseline_maps(images2, names=("deviation", "centre"))}
two_table = trust.discrimination_scores(maps_two, masks2, other2, groups=groups2)
print(trust.format_table(two_table, ("right", "either", "discrimination")))
for name in ("CNN Grad-CAM", "ViT Grad-CAM"):
    print(f"{name}: {against_half(two_table[name]['discrimination'])}")
assert two_table["CNN Grad-CAM"]["discrimination"][1] > 0.5
for b in ("deviation", "centre"):
    assert two_table[b]["discrimination"] == (0.5, 0.5, 0.5)          # class-blind
""")
md("""
## 6. Attention rollout: the transformer's own baseline

A transformer offers a map that needs no gradient: its attention. One layer's attention is not an explanation of
the input, because after the first block every token already mixes many patches (Abnar & Zuidema's reason). **Attention rollout** (Abnar & Zuidema
2020) follows the mixing through all the blocks: for each layer $l$, average the attention weights over the
heads, $A_l$ (T×T, rows sum to 1); model the residual connection by adding the identity,
$\\tilde A_l = (A_l + I)/2$; multiply through the layers, $R = \\tilde A_L \\cdots \\tilde A_1$. Row $i$ of $R$ says
how much of each input token can reach token $i$ at the top. The map is the row the head reads (the class
token's), or, for a head that pools all tokens, the mean of all rows, over the patch tokens, on the grid. For a
max head the mean of the rows is only a stand-in: the maximum reads one token per channel, which the attention
weights cannot tell. `rollout.attention_matrices` reads the
attention weights of every `MultiHeadAttention` layer. By hand:
""")
code("""
def rollout_by_hand(att):
    \"\"\"Attention (per block: B, heads, T, T) -> rollout maps (B, h, w).\"\"\"
    R = np.eye(att[0].shape[-1])
    for a in att:                                     # first block first
        R = (a.mean(axis=1) + np.eye(R.shape[-1])) / 2 @ R  # heads averaged, + residual
    read = R[:, :1] if prefix else R                  # class token's row, or all rows
    return read.mean(axis=1)[:, prefix:].reshape(-1, h, w), R

att = rollout.attention_matrices(vit, one.images)   # per block: (B, heads, T, T)
roll_one, R = rollout_by_hand(att)
gap = np.abs(R - rollout.attention_rollout(att)).max()
print(len(att), "attention layers of", att[0].shape,
      "; R vs rollout.attention_rollout:",
      "< 1e-6" if gap < 1e-6 else gap)
assert gap < 1e-6 and np.allclose(R.sum(axis=-1), 1)
""")
code("""
maps_roll = {"ViT Grad-CAM": vit_maps, "rollout": roll_one,
             **{b: maps_one[b] for b in baselines}}
table_roll = trust.localisation_scores(maps_roll, one.masks, one.boxes)
print(trust.format_table(table_roll, ("pointing", "energy")))
point["rollout"] = table_roll["rollout"]["pointing"]
verdicts["rollout"] = {b: versus(point["rollout"], point[b])
                       for b in ("ViT Grad-CAM", *baselines)}
print("rollout against", ", ".join(f"{b}: {v}" for b, v in verdicts["rollout"].items()))
""")
md("""
That is what rollout can show: where the attention gathers the image into what the head reads, one map per
image (its pointing line says how often that is the object). What it cannot show is **which class**. Nothing in the formula names a class, so on two-object images it
must draw the same map for both objects' rows, and its discrimination share is exactly 0.5, like any baseline:
""")
code("""
roll_two, _ = rollout_by_hand(rollout.attention_matrices(vit, two.images))
roll_two = np.concatenate([roll_two, roll_two])   # no class argument: one map for both
roll_table = trust.discrimination_scores({"rollout": roll_two}, masks2, other2,
                                         groups=groups2)
print(trust.format_table(roll_table, ("right", "either", "discrimination")))
assert roll_table["rollout"]["discrimination"] == (0.5, 0.5, 0.5)
""")
md("""
It cannot show **how much** either: it multiplies attention weights and ignores the value vectors and the MLPs,
so a patch that is attended to but whose value the head does not use still gets a high rollout. Treat it as the
transformer's own baseline: a class-specific map that does not beat it on localisation, and does not beat 0.5 on
two objects, has shown nothing that attention alone did not. The maps side by side (each on its own scale):
""")
code("""
show = range(4)
rows = (("ViT Grad-CAM", vit_maps), ("rollout", roll_one),
        ("deviation", maps_one["deviation"]))
panels = [trust.positive_over_max(m[i:i + 1])[0] for _, m in rows for i in show]
_ = show_shared_scale([one.images[i] for i in show] * 3, panels,
                      [f"{name}, {names[one.labels[i]]}"
                       for name, _ in rows for i in show],
                      ncols=4, size=1.8, vmax=1.0, label="map / its own max",
                      suptitle="each map on its own scale")
plt.show()
""")
md("""
## Exercise: tokens to grid

Write `my_tokens_to_grid(tokens, grid, prefix)`: `tokens` is a token layer's output (B, T, D), `grid` is (h, w)
(not always square), and `prefix` the number of leading non-patch tokens (1 for a class token; 0 if none; more
with register tokens). Return the patch tokens as (B, h, w, D), token `prefix + r * w + c` at row r, column c.
The checker tries several grids and prefixes and names the usual mistakes; `ex.tokens_to_grid.hint()` gives
staged hints; `ex.tokens_to_grid.solution()` shows one answer.
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
    tokens, grads = token_gradients(vit, x8, c8, default)
    A, g = (my_tokens_to_grid(t, (h, w), prefix) for t in (tokens, grads))
    mine = np.maximum(np.einsum("bhwk,bk->bhw", A, g.mean(axis=(1, 2))), 0)
    same = np.abs(mine - vit_maps[:8]).max() <= 1e-4 * vit_maps.max()
    print("your Grad-CAM equals section 2's:", same)
""")
md("""
## The measured conclusions

Every comparison of this notebook in one place, each computed from the intervals above, not written in
advance:
""")
code("""
print(f"ViT's default layer: {default}; highest two-object share: {best} "
      f"{fmt(*shares[best])} ({against_half(shares[best]).split(':')[0]})")
for name, row in verdicts.items():
    print(f"one object, pointing  {name:12s} {fmt(*point[name])}:",
          ", ".join(f"{v} {b}" for b, v in row.items()))
for name in ("CNN Grad-CAM", "ViT Grad-CAM"):
    share = two_table[name]["discrimination"]
    print(f"two objects, share    {name:12s} {fmt(*share)}:",
          against_half(share).split(":")[0])
print("two objects, share    rollout       0.500 exactly: class-blind")
""")
md("""
## Summary

- A ViT's token layer (B, T, D) is a feature map once the non-patch tokens are dropped and the rest reshaped
  row-major to (B, h, w, D): exactly the patch embedding, and exactly what camtutor explains (asserted).
  Grad-CAM on that grid is notebook 05's formula unchanged.
- **The class-token pitfall.** With a head on the class token, every patch token after the last attention has a
  gradient of exactly zero (everything after it works token by token, and the head crops the class token), so
  Grad-CAM there is a map of zeros for every image and class. Explain the last attention's input
  (`blocks[-1].norm1`); camtutor does by default and refuses the dead layers, naming the fix. A head that pools
  all the tokens (mean or maximum, like the bundled model's) has no dead layers.
- **Which block, and how good.** The block to explain is measured, not assumed: the discrimination share per
  block, against 0.5. The comparison with the CNN uses the same images, the same baselines and Wilson intervals
  as notebook 09; the verdicts above are computed from them. A map whose pointing rate is not above a random
  map's is at chance: it says nothing about where the model's evidence is, even when the model is accurate.
- **Attention rollout** (Abnar & Zuidema 2020) is the transformer's own baseline: where attention routes the image
  into what the head reads. It names no class (discrimination share exactly 0.5) and ignores values and MLPs;
  a class map that does not beat it has shown nothing attention alone did not.

## Questions

1. Why is the gradient of the class logit at `block2_out`'s patch tokens exactly zero in a class-token ViT, and
   not just small? Which change to the model would give them a gradient?
2. The ViT's map has one cell per 8 px, the CNN's one per 4 px. What can that cost on the pointing game for small
   objects, and how would you check it?
3. Attention rollout scores exactly 0.5 on the discrimination share. Why must it? Which question can it still
   answer?
4. Rollout multiplies attention weights and ignores the MLPs and the value vectors. Describe a token that gets a
   high rollout but contributes nothing to the class score.
5. Suppose a ViT classifies 95 % of images right, but its Grad-CAM's pointing rate is inside a random map's
   interval. What may you conclude about the model, and what about the map? Name two things to try next.
""")
nb = new_notebook(cells=cells, metadata={
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"}})
for i, cell in enumerate(nb.cells):
    cell["id"] = f"vit13-{i:02d}"
nbformat.write(nb, "/work/wt/h8/notebooks/" + NAME)
