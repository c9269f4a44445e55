"""The graded questions of each course notebook.

``QUESTIONS[notebook number]`` is a tuple of ``(question, module, function)``: the question is the name of
the exercise in ``camtutor.exercises.<module>`` (``ex.<question>.check``), ``function`` the student's
function defined in the notebook's answer cell (``def my_peak(...)``), whose reference is
``labs/solutions/<module>.py:<function>`` and whose hidden cases are the ``@case(question)`` functions of
``labs/hidden/<module>.py`` (one point each).
"""

QUESTIONS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "00": (("peak", "gap_cam", "my_peak"),),
    "01": (("gap", "gap_cam", "my_gap"),),
    "02": (("cam", "gap_cam", "my_cam"), ("box", "gap_cam", "my_box")),
    "03": (("target", "gradients", "my_target"), ("contrast", "gradients", "my_contrast")),
    "04": (("weights", "gradients", "my_weights"),),
    "05": (("grad_cam", "gradients", "my_grad_cam"), ("grad_cam_tape", "tape", "my_grad_cam_tape")),
    "06": (("predicted_maps", "explorer", "my_predicted_maps"), ("own_object_share", "explorer", "my_own_object_share")),
    "07": (("mobilenet_input", "your_model", "my_to_mobilenet"),),
    "08": (("own_object_share", "explorer", "my_own_object_share"),),
    "09": (("pointing_game", "trust", "my_pointing_game"),),
    "10": (("spearman", "trust", "my_spearman"),),
    "11": (("xgradcam", "family", "my_xgradcam_weights"),),
    "12": (("cells_that_see", "limits", "my_cells_that_see"),),
    "13": (("tokens_to_grid", "vit", "my_tokens_to_grid"),),
}
