"""Make docs/overlay.png, the README picture: Grad-CAM of the bundled shapes model, made by camtutor itself.

Run from the repository root: python docs/make_figure.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import camtutor as ct  # noqa: E402


def main() -> Path:
    model = ct.models.load("shapes")
    data = ct.data.shapes(6, seed=3)
    two = ct.data.two_shapes(2, seed=5)
    probabilities = ct.class_probabilities(model, data.images)
    predicted = probabilities.argmax(axis=1)
    maps = ct.grad_cam(model, data.images, predicted)
    names = data.class_names
    panels, titles = [], []
    for image, heat, c, p in zip(data.images, maps, predicted, probabilities):
        panels += [image, ct.overlay(image, heat)]
        titles += ["input", f"{names[c]} ({p[c]:.2f})"]
    for image, labels in zip(two.images, two.labels):
        class_maps = ct.grad_cam(model, image[None].repeat(2, axis=0), list(labels))
        panels += [ct.overlay(image, class_maps[0]), ct.overlay(image, class_maps[1])]
        titles += [f"evidence: {names[labels[0]]}", f"evidence: {names[labels[1]]}"]
    figure = ct.show_grid(panels, titles, ncols=8, size=1.6)
    out = Path(__file__).with_name("overlay.png")
    figure.savefig(out, dpi=80, bbox_inches="tight")
    return out


if __name__ == "__main__":
    print(main())
