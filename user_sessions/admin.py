"""A read-only admin for sessions, named by their handle and never by their key.

The session key is the primary key and also the cookie value, so the usual
admin URLs, checkboxes and popups would print it into pages an operator may
share or screenshot. Here every place the admin would use the pk uses the
``handle`` instead, ``session_key`` and ``session_data`` are never shown, and
sessions end only through ``revoke()`` (which also drops cached copies).

Nor may the admin answer questions about a key: Django's changelist applies
any query parameter as a lookup (``?session_key__startswith=a``), and whether
a row stays tells a right guess from a wrong one. Only the declared filters'
parameters are accepted; anything else is refused before it reaches the
database, with the same "400 Bad Request" whatever its value.

The history of ended sessions (``EndedSession``) is shown under the same
rules, read-only: its records never held a key, and are written by
``user_sessions.endings`` alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.exceptions import DisallowedModelAdminLookup
from django.contrib.admin.filters import ListFilter
from django.contrib.admin.options import IS_FACETS_VAR
from django.contrib.admin.utils import quote
from django.contrib.admin.views.main import ALL_VAR, ORDER_VAR, PAGE_VAR, SEARCH_VAR, ChangeList
from django.contrib.auth import get_permission_codename, get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import FieldDoesNotExist
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from user_sessions.events import EndedBy, Reason
from user_sessions.models import EndedSession, Session, SessionQuerySet

if TYPE_CHECKING:
    from django.contrib.admin.filters import _ListFilterChoices
    from django.db.models.query import _OrderByFieldName
    from django.utils.functional import _StrOrPromise

    ModelAdmin = admin.ModelAdmin[Any]
else:
    ModelAdmin = admin.ModelAdmin

# What the changelist reads besides its filters; the rest of Django's own
# parameters (popups, ``_to_field``, the error flag) are not carried between pages.
CHANGELIST_PARAMETERS = frozenset({SEARCH_VAR, ORDER_VAR, PAGE_VAR, ALL_VAR, IS_FACETS_VAR})


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


class DeclaredFiltersChangeList(ChangeList):
    """A changelist that turns no query parameter into a lookup unless a filter declares it."""

    def get_filters(
        self, request: HttpRequest
    ) -> tuple[list[ListFilter], bool, dict[str, bool | str], bool, bool]:
        filters = super().get_filters(request)
        # Django turns whatever no declared filter consumed into queryset
        # lookups. Refused here, before any query, so the answer cannot depend
        # on whether a guessed value matches.
        unclaimed = set(filters[2])
        if self.date_hierarchy:
            # What Django makes of the date hierarchy's year, month and day.
            unclaimed -= {f"{self.date_hierarchy}__gte", f"{self.date_hierarchy}__lt"}
        if unclaimed:
            raise DisallowedModelAdminLookup(f"Filtering by {', '.join(sorted(unclaimed))}")
        return filters


class SessionChangeList(DeclaredFiltersChangeList):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A popup row hands its pk (the session key) to the opening window.
        # Nothing relates to a session, so popups have no use here.
        self.is_popup = False

    def get_ordering(
        self, request: HttpRequest, queryset: QuerySet[Any]
    ) -> list[_OrderByFieldName]:
        # Django breaks ties by the primary key, which is the session key:
        # where rows an attacker owns fall around someone else's would say
        # how that key sorts. The handle is as unique and says nothing.
        ordering = [
            term
            for term in super().get_ordering(request, queryset)
            if term not in {"pk", "-pk", "session_key", "-session_key"}
        ]
        if not {"handle", "-handle"} & set(ordering):
            ordering.append("-handle")
        return ordering

    def url_for_result(self, result: Session) -> str:  # type: ignore[override]
        return reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
            args=(quote(result.handle),),
            current_app=self.model_admin.admin_site.name,
        )


class BaseSessionAdmin(ModelAdmin):
    """What the sessions' and the ended sessions' admin share.

    The owner, device and place columns; search by the owner's name or email
    and by IP, and nothing else; and no answer to a question no filter
    declared (see the module docstring).
    """

    @admin.display(description=_("owner"), ordering="user")
    def owner(self, obj: Any) -> AbstractBaseUser | None:
        user: AbstractBaseUser | None = obj.user
        return user

    @admin.display(description=_("device"))
    def device(self, obj: Any) -> str | None:
        device: str | None = obj.device
        return device

    @admin.display(description=_("location"))
    def location(self, obj: Any) -> str | None:
        location: str | None = obj.location
        return location

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

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # Django allows any lookup on a local field, ``session_key__regex``
        # included; here only a declared filter's parameters. ``request`` is
        # optional: Django 5.2 passes it, Django 6 requires it.
        list_filter = self.get_list_filter(request) if request else self.list_filter
        for list_filter_item in list_filter:
            if isinstance(list_filter_item, type):
                if lookup == getattr(list_filter_item, "parameter_name", None):
                    return True
                continue
            if isinstance(list_filter_item, (list, tuple)):
                list_filter_item = list_filter_item[0]
            field = str(list_filter_item)
            if lookup == field or lookup.startswith(f"{field}__"):
                # A field filter's parameters; Django's own rule still refuses
                # walks across relations (``user__password__startswith``).
                return super().lookup_allowed(lookup, value, request)  # type: ignore[arg-type]
        # None here, but a subclass may declare a date hierarchy.
        hierarchy = self.date_hierarchy
        return bool(hierarchy) and lookup in {f"{hierarchy}__{p}" for p in ("year", "month", "day")}

    def to_field_allowed(self, request: HttpRequest, to_field: str) -> bool:
        # ``_to_field`` serves the popup and autocomplete widgets of models that
        # point at sessions: they would be handed the key. Nothing needs them
        # (nor here for records, which nothing points at either).
        return False

    def get_preserved_filters(self, request: HttpRequest) -> str:
        # A change page echoes ``_changelist_filters`` into its links; keep only
        # what the changelist would accept, so no guess travels with them.
        preserved = super().get_preserved_filters(request)
        if not preserved:
            return preserved
        query = QueryDict(QueryDict(preserved).get("_changelist_filters", ""), mutable=True)
        for name in list(query):
            if name not in CHANGELIST_PARAMETERS and not self.lookup_allowed(
                name, query.get(name) or "", request
            ):
                del query[name]
        return urlencode({"_changelist_filters": query.urlencode()}) if query else ""


@admin.register(Session)
class SessionAdmin(BaseSessionAdmin):
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

    # Translators: admin column heading (yes/no icons): the session has not expired.
    @admin.display(description=_("active"), boolean=True, ordering="expire_date")
    def is_active(self, obj: Session) -> bool:
        return obj.is_active

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
        count = queryset.revoke(Reason.ADMIN, ended_by=EndedBy.ADMIN)
        message = ngettext(
            "%(count)d session was signed out.",
            "%(count)d sessions were signed out.",
            count,
        ) % {"count": count}
        self.message_user(request, message, messages.SUCCESS)


@admin.register(EndedSession)
class EndedSessionAdmin(BaseSessionAdmin):
    """The history of ended sessions, read-only: records are written by endings alone.

    Records name sessions by handle, as everything else does; they never
    held a key. They go with their owner, or when ``clearsessions`` finds
    them older than ``USER_SESSIONS_HISTORY_DAYS``.
    """

    list_display = [
        "owner",
        "device",
        "location",
        "ip",
        "created_at",
        "ended_at",
        "reason",
        "ended_by",
    ]
    list_filter = ["reason", "ended_by", OwnerFilter]
    list_select_related = ["user"]
    ordering = ["-ended_at"]
    show_full_result_count = False
    fields = readonly_fields = (
        "user",
        "handle",
        "device",
        "location",
        "ip",
        "user_agent",
        "created_at",
        "last_activity",
        "ended_at",
        "reason",
        "ended_by",
        "by_handle",
    )

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return DeclaredFiltersChangeList

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # Records are never edited, so Django's change log has nothing to show.
        raise Http404

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: EndedSession | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: EndedSession | None = None) -> bool:
        # A record is what happened: it leaves with its owner or its age only.
        return False
