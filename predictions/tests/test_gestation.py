"""Gestational weeks from dates, and the gate that keeps early scans out of predictions."""

import datetime

import pytest

from ml.gestation import gestational_week_from_dates, is_scan_usable, usable_scan_indices

DUE = datetime.date(2027, 3, 1)


@pytest.mark.parametrize(
    ("days_before_due", "week"),
    [
        (0, 40),  # the due date is 40 weeks
        (7 * 28, 12),  # 28 weeks before: week 12
        (7 * 28 - 3, 12),  # 12 weeks and 3 days is still week 12 (completed weeks)
        (7 * 28 - 6, 12),
        (7 * 28 - 7, 13),
        (7 * 28 + 1, 11),  # a day short of 12 weeks
        (-14, 42),  # two weeks overdue: the last plausible week
        (-20, 42),  # 42 weeks and 6 days
        (7 * 36, 4),  # the first plausible week
    ],
)
def test_week_from_due_date_and_scan_date(days_before_due, week):
    assert gestational_week_from_dates(DUE, DUE - datetime.timedelta(days=days_before_due)) == week


@pytest.mark.parametrize(
    ("due", "scan"),
    [
        (None, DUE),
        (DUE, None),
        (DUE, DUE + datetime.timedelta(days=21)),  # week 43: three weeks overdue
        (DUE, DUE + datetime.timedelta(days=400)),  # a scan after the birth
        (DUE, DUE - datetime.timedelta(days=7 * 36 + 1)),  # before week 4
        (DUE, DUE - datetime.timedelta(days=1000)),  # before the pregnancy
    ],
)
def test_missing_or_nonsense_dates_give_no_week(due, scan):
    assert gestational_week_from_dates(due, scan) is None


def test_datetimes_count_as_their_calendar_day():
    scan_time = datetime.datetime(2026, 8, 16, 23, 59, tzinfo=datetime.UTC)  # 197 days before DUE
    assert gestational_week_from_dates(DUE, scan_time) == 11
    assert gestational_week_from_dates(datetime.datetime(2027, 3, 1, 8, 0), DUE) == 40


@pytest.mark.parametrize(
    ("week", "minimum", "usable"),
    [(11, 12, False), (12, 12, True), (20, 12, True), (12, 13, False), (None, 12, True), (4, 4, True)],
)
def test_scans_below_the_minimum_week_are_not_used_and_unknown_weeks_are(week, minimum, usable):
    assert is_scan_usable(week, minimum) is usable


def test_usable_scan_indices_keep_the_order():
    assert usable_scan_indices([11, None, 14, 9, 12], 12) == [1, 2, 4]
    assert usable_scan_indices([10, 11], 12) == []
