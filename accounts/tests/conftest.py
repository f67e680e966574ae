"""Fixtures of the staff tests (the data itself: ``accounts.tests.staff_world``)."""

import pytest

from accounts.tests.staff_world import admin_world, role_accounts


@pytest.fixture
def staff(db):
    """One staff account per role (with an authenticator app), a superuser and staff with no role."""
    return role_accounts()


@pytest.fixture
def world(staff):
    """One object of every admin's model, made through the services."""
    return admin_world(staff)
