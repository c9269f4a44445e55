"""``python -m camtutor``: the same as the ``camtutor`` command (see :mod:`camtutor.cli`)."""

from camtutor.cli import main

raise SystemExit(main())
