"""The password confirmation asked for before sessions are signed out (when configured)."""

from __future__ import annotations

from typing import Any

from crispy_forms.helper import FormHelper
from django import forms
from django.contrib.auth.base_user import AbstractBaseUser
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from user_sessions.conf import app_settings


class ConfirmPasswordForm(forms.Form):
    """Ask for the signed-in user's own password.

    The form renders only its field (``form_tag = False``): the surrounding
    ``<form>`` belongs to the dialog template, which carries the htmx
    attributes and the CSRF token.
    """

    password = forms.CharField(
        label=pgettext_lazy("form field", "Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "class": "us-input"}),
    )

    error_messages = {
        "password_incorrect": _("The password is not correct."),
        "too_many_attempts": _("Too many wrong passwords. Try again in a few minutes."),
    }

    def __init__(
        self, user: AbstractBaseUser, *args: Any, locked: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        # Out of attempts (see user_sessions.throttle): no password is checked.
        self.locked = locked
        self.helper = FormHelper()
        self.helper.form_tag = False
        self.helper.disable_csrf = True
        # Read per form, so a site switching packs (or a test overriding the
        # setting) takes effect without a restart.
        self.helper.template_pack = app_settings.CRISPY_TEMPLATE_PACK

    def clean_password(self) -> str:
        password: str = self.cleaned_data["password"]
        if self.locked:
            raise forms.ValidationError(
                self.error_messages["too_many_attempts"], code="too_many_attempts"
            )
        # Same check as Django's PasswordChangeForm.
        if not self.user.check_password(password):
            raise forms.ValidationError(
                self.error_messages["password_incorrect"], code="password_incorrect"
            )
        return password
