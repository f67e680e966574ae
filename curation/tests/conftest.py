"""Fixtures for curation tests (the helpers they use live in ``curation/tests/factories.py``)."""

from __future__ import annotations

import pytest

from curation.tests.factories import labelled_baby, reviewed_scan


@pytest.fixture
def eligible_scans(staff_user):
    """Four babies (two girls, two boys) of consenting parents, two accepted scans each."""
    scans = []
    for sex in ("female", "male", "female", "male"):
        baby = labelled_baby(sex=sex)
        scans += [reviewed_scan(baby, reviewer=staff_user) for _ in range(2)]
    return scans
