"""How long ago a session was last used, as one translatable phrase.

Django's ``timesince`` gives "5 minutes" for the caller to wrap in "... ago",
which reads wrong where "ago" changes the noun's case (German "vor 5
Minuten", Czech "před 5 minutami"), and several of Django's own catalogues
(el, hi, th, vi) leave its current strings untranslated, so those pages
showed English. A whole phrase per unit and plural form lets each catalogue
say it properly. One unit only, the largest, as ``timesince(depth=1)``.
"""

from __future__ import annotations

import datetime

from django.utils import timezone
from django.utils.translation import npgettext_lazy

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR
WEEK = 7 * DAY
MONTH = 30 * DAY
YEAR = 365 * DAY

# (seconds in the unit, phrase), largest unit first. The phrases choose
# their plural form from the "count" they are formatted with.
UNITS = (
    (YEAR, npgettext_lazy("last activity", "%(count)d year ago", "%(count)d years ago", "count")),
    (
        MONTH,
        npgettext_lazy("last activity", "%(count)d month ago", "%(count)d months ago", "count"),
    ),
    (WEEK, npgettext_lazy("last activity", "%(count)d week ago", "%(count)d weeks ago", "count")),
    (DAY, npgettext_lazy("last activity", "%(count)d day ago", "%(count)d days ago", "count")),
    (HOUR, npgettext_lazy("last activity", "%(count)d hour ago", "%(count)d hours ago", "count")),
    (
        MINUTE,
        npgettext_lazy("last activity", "%(count)d minute ago", "%(count)d minutes ago", "count"),
    ),
)


def ago(then: datetime.datetime, now: datetime.datetime | None = None) -> str:
    """ "2 hours ago" in the active language; anything under a minute counts as one."""
    seconds = int(((now or timezone.now()) - then).total_seconds())
    for size, phrase in UNITS:
        if seconds >= size:
            return str(phrase % {"count": seconds // size})
    return str(UNITS[-1][1] % {"count": 1})
