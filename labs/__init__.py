"""Graded labs: the course's reference solutions and hidden tests, kept out of the installed package.

``questions.py`` lists the graded questions of each notebook, ``solutions/`` holds their reference solutions,
``hidden/`` their hidden test cases and ``runner.py`` runs the cases inside a submission's kernel.
``python -m tools.labs release OUT`` copies this folder into ``OUT/autograder/camtutor_lab/`` and
``python -m tools.labs grade`` uses that copy. See docs/instructor-guide.md, "Running a graded lab".
"""
