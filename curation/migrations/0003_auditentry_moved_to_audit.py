# AuditEntry now belongs to the audit app (audit/migrations/0001_initial.py); its table and rows
# stay where they are. Its content type follows it, so the permissions staff hold on it (and the
# entries' own links) keep working.

from django.db import migrations


def content_type_to_audit(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label="audit", model="auditentry").exists():
        ContentType.objects.filter(app_label="curation", model="auditentry").update(app_label="audit")


def content_type_to_curation(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label="curation", model="auditentry").exists():
        ContentType.objects.filter(app_label="audit", model="auditentry").update(app_label="curation")


class Migration(migrations.Migration):
    dependencies = [
        ("curation", "0002_label_quality_and_data_card"),
        ("audit", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="AuditEntry")],
            database_operations=[],
        ),
        migrations.RunPython(content_type_to_audit, content_type_to_curation),
    ]
