"""instagender.dates writes dates as the template's date filter does, from a kept text per day."""

import datetime

import pytest
from django.template.defaultfilters import date as date_filter
from django.utils import timezone, translation

from instagender.dates import long_date, long_date_and_time


@pytest.mark.parametrize(
    "moment",
    [
        datetime.datetime(2027, 1, 5, 23, 30, tzinfo=datetime.UTC),  # winter: London is UTC
        datetime.datetime(2027, 7, 5, 23, 30, tzinfo=datetime.UTC),  # summer: already the 6th in London
        datetime.datetime(2027, 3, 28, 0, 59, tzinfo=datetime.UTC),  # the night the clocks change
    ],
)
def test_times_are_written_in_the_local_zone_as_the_date_filter_does(moment):
    local = timezone.localtime(moment)
    assert long_date(moment) == date_filter(local, "j F Y")
    assert long_date_and_time(moment) == date_filter(local, "j F Y, H:i")


def test_days_and_missing_values():
    assert long_date(datetime.date(2027, 5, 3)) == "3 May 2027"
    assert long_date(None) == long_date_and_time(None) == ""


def test_the_month_is_in_the_active_language():
    day = datetime.date(2027, 5, 3)
    with translation.override("de"):
        assert long_date(day) == date_filter(day, "j F Y") == "3 Mai 2027"
    assert long_date(day) == "3 May 2027"
