"""Mount with ``path("account/sessions/", include("user_sessions.urls"))``; any prefix works."""

from __future__ import annotations

from django.urls import URLPattern, path

from user_sessions import api, stream, views
from user_sessions import report as report_views

app_name = "user_sessions"

urlpatterns: list[URLPattern] = [
    path("", views.SessionListView.as_view(), name="session_list"),
    # Live updates for the widget (Server-Sent Events; see user_sessions.push).
    path("stream/", stream.session_stream, name="session_stream"),
    # Before the handle pattern, although no handle is ever this short.
    path("others/delete/", views.SessionDeleteOtherView.as_view(), name="session_delete_other"),
    path("<str:handle>/delete/", views.SessionDeleteView.as_view(), name="session_delete"),
    # "This wasn't me" from a sign-in alert; the token is signed (user_sessions.alerts).
    path("report/done/", report_views.ReportDoneView.as_view(), name="report_done"),
    path("report/<str:token>/", report_views.ReportView.as_view(), name="report"),
    # The JSON API (user_sessions.api); its OpenAPI document describes each path.
    path("api/sessions/", api.SessionListApiView.as_view(), name="api_session_list"),
    # Before the handle pattern, as above.
    path("api/sessions/others/", api.OtherSessionsApiView.as_view(), name="api_session_others"),
    path("api/sessions/<str:handle>/", api.SessionApiView.as_view(), name="api_session"),
    path("api/openapi.json", api.OpenApiView.as_view(), name="api_schema"),
]
