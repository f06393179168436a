from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from example_site.csp import strict_csp
from example_site.outbox import read_outbox


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


@login_required
def account(request: HttpRequest, htmx_version: int = 2) -> HttpResponse:
    return render(request, "account.html", {"htmx_version": htmx_version})


@strict_csp
@login_required
def account_strict_csp(request: HttpRequest, htmx_version: int = 2) -> HttpResponse:
    return render(request, "account_strict_csp.html", {"htmx_version": htmx_version})


def outbox(request: HttpRequest) -> HttpResponse:
    """The demo outbox: every user's mail, to anyone.

    It stands in for each person's mailbox, which stays open when the site
    signs them out. No real site shows mail like this.
    """
    mails = read_outbox(Path(settings.EXAMPLE_OUTBOX_DIR))
    return render(request, "outbox.html", {"mails": mails})
