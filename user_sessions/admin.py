"""A read-only admin for sessions, named by their handle and never by their key.

The session key is the primary key and also the cookie value, so the usual
admin URLs, checkboxes and popups would print it into pages an operator may
share or screenshot. Here every place the admin would use the pk uses the
``handle`` instead, ``session_key`` and ``session_data`` are never shown, and
sessions end only through ``revoke()`` (which also drops cached copies).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import quote
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_permission_codename, get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import FieldDoesNotExist
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from user_sessions.models import Session, SessionQuerySet

if TYPE_CHECKING:
    from django.contrib.admin.filters import _ListFilterChoices
    from django.utils.functional import _StrOrPromise

    SessionModelAdmin = admin.ModelAdmin[Session]
else:
    SessionModelAdmin = admin.ModelAdmin


class StatusFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "status"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, _StrOrPromise]]:
        return [("active", _("Active")), ("expired", _("Expired"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        sessions: SessionQuerySet = queryset  # type: ignore[assignment]
        if self.value() == "active":
            return sessions.active()
        if self.value() == "expired":
            return sessions.expired()
        return queryset


class OwnerFilter(admin.SimpleListFilter):
    # Deliberately not a filter by user: listing every account in the sidebar
    # would load the whole user table on each changelist request.
    title = _("owner")
    parameter_name = "owner"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, _StrOrPromise]]:
        return [("mine", _("Mine"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "mine":
            queryset = queryset.filter(user=request.user.pk)
        return queryset

    def choices(self, changelist: ChangeList) -> Iterator[_ListFilterChoices]:
        choices = super().choices(changelist)
        # The unfiltered choice is everyone's sessions; "All" reads oddly next to "Mine".
        everyone = next(choices)
        yield {**everyone, "display": _("Everyone")}
        yield from choices


class SessionChangeList(ChangeList):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A popup row hands its pk (the session key) to the opening window.
        # Nothing relates to a session, so popups have no use here.
        self.is_popup = False

    def url_for_result(self, result: Session) -> str:  # type: ignore[override]
        return reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
            args=(quote(result.handle),),
            current_app=self.model_admin.admin_site.name,
        )


@admin.register(Session)
class SessionAdmin(SessionModelAdmin):
    list_display = [
        "owner",
        "device",
        "location",
        "ip",
        "created_at",
        "last_activity",
        "expire_date",
        "is_active",
    ]
    list_filter = [StatusFilter, OwnerFilter]
    list_select_related = ["user"]
    ordering = ["-last_activity"]
    # The unfiltered total is one more COUNT(*) over a table that can hold
    # millions of rows; the filtered count is enough to paginate.
    show_full_result_count = False
    # Everything but session_key and session_data, which must never be shown.
    fields = readonly_fields = (
        "user",
        "device",
        "location",
        "ip",
        "user_agent",
        "created_at",
        "last_activity",
        "expire_date",
        "is_active",
    )
    exclude = ["session_key", "session_data"]
    actions = ["revoke_sessions"]

    # -- columns -----------------------------------------------------------

    @admin.display(description=_("owner"), ordering="user")
    def owner(self, obj: Session) -> AbstractBaseUser | None:
        return obj.user

    @admin.display(description=_("device"))
    def device(self, obj: Session) -> str | None:
        return obj.device

    @admin.display(description=_("location"))
    def location(self, obj: Session) -> str | None:
        return obj.location

    # Translators: admin column heading (yes/no icons): the session has not expired.
    @admin.display(description=_("active"), boolean=True, ordering="expire_date")
    def is_active(self, obj: Session) -> bool:
        return obj.is_active

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        user_model = get_user_model()
        fields = [f"user__{user_model.USERNAME_FIELD}"]
        # Custom user models need not have an email column.
        try:
            user_model._meta.get_field("email")
        except FieldDoesNotExist:
            pass
        else:
            if user_model.USERNAME_FIELD != "email":
                fields.append("user__email")
        return [*fields, "ip"]

    # -- naming sessions by handle ----------------------------------------

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return SessionChangeList

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> Session | None:
        # URLs carry the handle whatever field a ``_to_field`` asks for, so
        # no admin URL can be used to probe for a session key.
        session: Session | None = self.get_queryset(request).filter(handle=object_id).first()
        return session

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # Sessions are never edited here, so there is no history to show, and
        # Django's history page names its object by pk in the breadcrumbs.
        raise Http404

    def action_checkbox(self, obj: Session) -> SafeString:
        attrs = {
            "class": "action-select",
            "aria-label": format_html(gettext("Select this object for an action - {}"), obj),
        }
        checkbox = forms.CheckboxInput(attrs, lambda value: False)
        return checkbox.render(helpers.ACTION_CHECKBOX_NAME, obj.handle)

    def response_action(
        self, request: HttpRequest, queryset: QuerySet[Any], *args: Any, **kwargs: Any
    ) -> HttpResponse | None:
        # The checkboxes carry handles; Django selects the rows by pk.
        handles = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        if handles:
            keys = queryset.filter(handle__in=handles).values_list("pk", flat=True)
            post = request.POST.copy()
            post.setlist(helpers.ACTION_CHECKBOX_NAME, list(keys))
            request.POST = post  # type: ignore[assignment]
        return super().response_action(request, queryset, *args, **kwargs)

    # -- permissions: look, and sign out; nothing else ---------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Session | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Session | None = None) -> bool:
        # Ending sessions goes through the revoke action alone. This also
        # drops Django's "delete selected", whose confirmation page lists pks.
        return False

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        codename = get_permission_codename("delete", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    @admin.action(description=_("Sign out selected sessions"), permissions=["revoke"])
    def revoke_sessions(self, request: HttpRequest, queryset: SessionQuerySet) -> None:
        count = queryset.revoke()
        message = ngettext(
            "%(count)d session was signed out.",
            "%(count)d sessions were signed out.",
            count,
        ) % {"count": count}
        self.message_user(request, message, messages.SUCCESS)
