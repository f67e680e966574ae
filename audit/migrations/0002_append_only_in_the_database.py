# Append-only, in the database itself: a row of the audit log cannot be deleted, and an update
# may only empty ``actor_id`` or ``content_type_id`` (what ON DELETE SET NULL does when the user
# or the content type goes). Any other UPDATE or DELETE, through the ORM's update()/delete(),
# raw SQL or a shell, fails. PostgreSQL (every deployment, and CI) gets both guards. SQLite, the
# zero-config development database, gets the UPDATE guard only: Django's test runner empties
# tables between browser tests with DELETE there (PostgreSQL uses TRUNCATE, which row triggers
# do not see), and the ORM refuses deletes anyway (``AuditEntryQuerySet``).

from django.db import migrations

TABLE = "curation_auditentry"

POSTGRESQL = [
    """
    CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION 'audit entries cannot be deleted';
        END IF;
        IF (NEW.id, NEW.actor_repr, NEW.action, NEW.object_id, NEW.object_repr, NEW.data::text,
            NEW.batch, NEW.created_at)
           IS DISTINCT FROM
           (OLD.id, OLD.actor_repr, OLD.action, OLD.object_id, OLD.object_repr, OLD.data::text,
            OLD.batch, OLD.created_at)
           OR (NEW.actor_id IS DISTINCT FROM OLD.actor_id AND NEW.actor_id IS NOT NULL)
           OR (NEW.content_type_id IS DISTINCT FROM OLD.content_type_id AND NEW.content_type_id IS NOT NULL)
        THEN
            RAISE EXCEPTION 'audit entries cannot be changed once written';
        END IF;
        RETURN NEW;
    END;
    $$ LANGUAGE plpgsql;
    """,
    f"DROP TRIGGER IF EXISTS audit_entry_append_only ON {TABLE};",
    f"""
    CREATE TRIGGER audit_entry_append_only BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only();
    """,
]
POSTGRESQL_REVERSE = [
    f"DROP TRIGGER IF EXISTS audit_entry_append_only ON {TABLE};",
    "DROP FUNCTION IF EXISTS audit_entry_append_only();",
]

SQLITE = [
    f"""
    CREATE TRIGGER IF NOT EXISTS audit_entry_no_update BEFORE UPDATE ON {TABLE}
    WHEN NEW.id IS NOT OLD.id OR NEW.actor_repr IS NOT OLD.actor_repr OR NEW.action IS NOT OLD.action
      OR NEW.object_id IS NOT OLD.object_id OR NEW.object_repr IS NOT OLD.object_repr
      OR NEW.data IS NOT OLD.data OR NEW.batch IS NOT OLD.batch OR NEW.created_at IS NOT OLD.created_at
      OR (NEW.actor_id IS NOT OLD.actor_id AND NEW.actor_id IS NOT NULL)
      OR (NEW.content_type_id IS NOT OLD.content_type_id AND NEW.content_type_id IS NOT NULL)
    BEGIN SELECT RAISE(ABORT, 'audit entries cannot be changed once written'); END;
    """,
]
SQLITE_REVERSE = ["DROP TRIGGER IF EXISTS audit_entry_no_update;"]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"postgresql": POSTGRESQL, "sqlite": SQLITE}),
            _run({"postgresql": POSTGRESQL_REVERSE, "sqlite": SQLITE_REVERSE}),
        ),
    ]
