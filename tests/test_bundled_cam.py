"""The bundled shapes model looks where the object is: CAM's peak falls inside the true box."""

from __future__ import annotations

import numpy as np

import camtutor as ct


def test_cam_peak_falls_inside_the_true_box_on_fresh_images():
    model = ct.models.load("shapes")
    data = ct.data.shapes(300, seed=2024)  # a seed never used for training
    maps = ct.cam(model, data.images, data.labels, relu=True)
    size = data.images.shape[1:3]
    inside = []
    for heat, (x0, y0, x1, y1) in zip(maps, data.boxes):
        x, y = ct.peak(heat, size=size)
        inside.append(x0 <= x < x1 and y0 <= y < y1)
    share = float(np.mean(inside))
    assert share >= 0.95, f"CAM peak inside the true box on only {share:.1%} of images"


def test_grad_cam_equals_cam_on_the_bundled_gap_model():
    model = ct.models.load("shapes")
    data = ct.data.shapes(16, seed=7)
    cam = ct.normalize(ct.cam(model, data.images, data.labels, relu=True))
    grad = ct.normalize(ct.grad_cam(model, data.images, data.labels))
    assert np.abs(cam - grad).max() <= 1e-5
