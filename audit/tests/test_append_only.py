"""The audit log is append-only: in the ORM, and in the database against raw SQL."""

import pytest
from django.db import DatabaseError, connection, transaction

from accounts.tests.factories import StaffFactory
from audit.models import AuditEntry
from audit.services import audit_log

pytestmark = pytest.mark.django_db


@pytest.fixture
def entry():
    return audit_log(actor=StaffFactory(), action="test.done", data={"before": {"a": 1}, "after": {"a": 2}})


def test_the_orm_refuses_to_change_or_delete_entries(entry):
    with pytest.raises(ValueError, match="cannot be changed"):
        AuditEntry.objects.filter(pk=entry.pk).update(action="test.rewritten")
    with pytest.raises(ValueError, match="cannot be deleted"):
        AuditEntry.objects.filter(pk=entry.pk).delete()
    with pytest.raises(ValueError, match="cannot be changed"):
        entry.action = "test.rewritten"
        entry.save()
    with pytest.raises(ValueError, match="cannot be deleted"):
        entry.delete()
    assert AuditEntry.objects.get(pk=entry.pk).action == "test.done"


def test_the_database_refuses_raw_sql_that_rewrites_history(entry):
    table = AuditEntry._meta.db_table
    for statement in (
        f"UPDATE {table} SET action = 'test.rewritten' WHERE id = %s",  # noqa: S608 - a fixed table name
        f"UPDATE {table} SET actor_repr = 'someone else' WHERE id = %s",  # noqa: S608
    ):
        with (
            pytest.raises(DatabaseError, match="cannot be changed"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, [entry.pk])
    if connection.vendor == "postgresql":  # SQLite, for development only, guards updates alone
        with (
            pytest.raises(DatabaseError, match="cannot be deleted"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(f"DELETE FROM {table} WHERE id = %s", [entry.pk])  # noqa: S608
    assert AuditEntry.objects.get(pk=entry.pk).action == "test.done"


def test_deleting_the_actor_only_empties_the_link_and_the_entry_stays(entry):
    actor = entry.actor
    actor_repr = entry.actor_repr
    actor.delete()
    entry = AuditEntry.objects.get(pk=entry.pk)
    assert entry.actor is None and entry.actor_repr == actor_repr and entry.action == "test.done"
