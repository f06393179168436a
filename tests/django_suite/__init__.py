"""Django's own session tests (``tests/sessions_tests``), run against this package.

The tests come from Django's source distribution of the installed version,
fetched at run time (``source.py``) and never copied into this repository.
``suite.py`` subclasses Django's test classes and swaps in our engines, model
and middleware; no assertion is changed. Run ``scripts/django-session-tests``.
"""
