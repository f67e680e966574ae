"""Dates as the pages write them ("3 May 2027"), made once per day and language.

``{{ value|date:"j F Y" }}`` runs Django's date formatter (a parse of the format, the month's
name through gettext) every time; a dashboard writes a few dates per baby and per scan, on every
request, and they are mostly the same few days. The text of a day in a language never changes,
so it is kept.
"""

from __future__ import annotations

import datetime
import functools

from django.utils import timezone
from django.utils.dateformat import format as format_date
from django.utils.translation import get_language


def long_date(value: datetime.date | datetime.datetime | None) -> str:
    """ "3 May 2027", as ``{{ value|date:"j F Y" }}`` writes it; a time in the local zone."""
    if value is None:
        return ""
    if isinstance(value, datetime.datetime):
        value = (timezone.localtime(value) if timezone.is_aware(value) else value).date()
    return _long_date(value, get_language())


def long_date_and_time(value: datetime.datetime | None) -> str:
    """ "3 May 2027, 14:05" in the local zone, as ``{{ value|date:"j F Y, H:i" }}`` writes it."""
    if value is None:
        return ""
    local = timezone.localtime(value)
    return f"{_long_date(local.date(), get_language())}, {local.hour:02d}:{local.minute:02d}"


@functools.lru_cache(maxsize=4096)
def _long_date(day: datetime.date, language: str | None) -> str:
    # The month's name is translated into the active language: part of the key for that.
    return format_date(day, "j F Y")
