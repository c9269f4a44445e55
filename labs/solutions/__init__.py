"""Reference solutions of the course exercises, one module per ``camtutor.exercises`` module.

Each function has the name and signature of the student's function in the notebook (``my_peak``...).
They are not part of the installed package: ``python -m tools.labs release`` puts them into the
instructor notebooks and the autograder folder only; ``ex.<name>.solution()`` reads them from here
when the course repository is at hand (a clone, Binder).
"""
