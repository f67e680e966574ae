"""Gestational weeks: from dates, and whether a scan is old enough to predict from.

The tubercle that "nub theory" reads is not yet told apart reliably early on: sonographers are
right about 70-90 % of the time at 11-12 weeks and 98-100 % from 13 weeks. So a scan below
``settings.PREDICTION_MIN_GESTATIONAL_WEEK`` (default 12) is stored but not used for a
prediction, and the parent is told why. Pure functions, no Django: the upload form, the
prediction service and the training evaluation all use them.

Weeks are *completed* weeks, as obstetric notes count them: 12 weeks and 3 days is week 12.
"""

from __future__ import annotations

import datetime

# A pregnancy is dated from the last menstrual period; the due date is 280 days (40 weeks) on.
FULL_TERM_DAYS = 280
# The weeks a scan can be recorded with (the Scan model's validators say the same).
FIRST_PLAUSIBLE_WEEK = 4
LAST_PLAUSIBLE_WEEK = 42


def _as_date(value: datetime.date | datetime.datetime) -> datetime.date:
    # A datetime is a date too, but subtracting one from a date raises: compare calendar days.
    return value.date() if isinstance(value, datetime.datetime) else value


def gestational_week_from_dates(
    due_date: datetime.date | None, scan_date: datetime.date | None
) -> int | None:
    """The completed gestational week on ``scan_date`` for a baby due on ``due_date``.

    40 at the due date, 12 for a scan 28 weeks before it. ``None`` when either date is missing
    or the result is outside 4-42 weeks: a scan dated before the pregnancy could be seen, or
    weeks after a due date no pregnancy runs to, means one of the dates is wrong, and a wrong
    week would gate a scan in or out for nothing. The caller then asks the parent for the week.
    """
    if due_date is None or scan_date is None:
        return None
    days_before_due = (_as_date(due_date) - _as_date(scan_date)).days
    week = (FULL_TERM_DAYS - days_before_due) // 7
    if not FIRST_PLAUSIBLE_WEEK <= week <= LAST_PLAUSIBLE_WEEK:
        return None
    return week


def is_scan_usable(week: int | None, minimum: int) -> bool:
    """Whether a scan at gestational ``week`` may count in a prediction.

    An unknown week (``None``) counts as usable: most parents know roughly when their scan was
    taken but many will not type it in, and refusing every scan without a week would refuse
    most predictions. The cost is that an early scan with no week slips through; the parent is
    asked for the week at upload, and the answer says which scans it used.
    """
    return week is None or week >= minimum


def usable_scan_indices(weeks: list[int | None], minimum: int) -> list[int]:
    """The positions in ``weeks`` of the scans :func:`is_scan_usable` lets through, in order."""
    return [index for index, week in enumerate(weeks) if is_scan_usable(week, minimum)]
