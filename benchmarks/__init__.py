"""Benchmarks: django-user-sessions against Django's own session stores.

Run ``python benchmarks/run.py`` (``--smoke`` for the quick count-only check);
see ``benchmarks/README.md`` for what each number means.
"""
