"""User models a site might swap in, each in a process of its own.

``AUTH_USER_MODEL`` is fixed for the life of a process, so
``tests/test_custom_users.py`` runs ``cases.py`` under ``settings.py`` once
per model.
"""
