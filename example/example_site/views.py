from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from example_site.csp import strict_csp


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


@login_required
def account(request: HttpRequest, htmx_version: int = 2) -> HttpResponse:
    return render(request, "account.html", {"htmx_version": htmx_version})


@strict_csp
@login_required
def account_strict_csp(request: HttpRequest, htmx_version: int = 2) -> HttpResponse:
    return render(request, "account_strict_csp.html", {"htmx_version": htmx_version})
