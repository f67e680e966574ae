# The audit log moved here from curation. The table already exists (curation_auditentry, made by
# curation's first migration): this migration only tells Django's state that audit owns it now.

import django.core.serializers.json
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("curation", "0002_label_quality_and_data_card"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AuditEntry",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("actor_repr", models.CharField(blank=True, max_length=254, verbose_name="actor")),
                        (
                            "action",
                            models.CharField(
                                db_index=True, help_text="A dotted name, e.g. scan.reviewed.", max_length=64
                            ),
                        ),
                        ("object_id", models.CharField(blank=True, max_length=64)),
                        ("object_repr", models.CharField(blank=True, max_length=200, verbose_name="object")),
                        (
                            "data",
                            models.JSONField(
                                blank=True,
                                default=dict,
                                encoder=django.core.serializers.json.DjangoJSONEncoder,
                            ),
                        ),
                        ("batch", models.UUIDField(blank=True, db_index=True, null=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        (
                            "actor",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "content_type",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                to="contenttypes.contenttype",
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "audit entry",
                        "verbose_name_plural": "audit log",
                        "db_table": "curation_auditentry",
                        "ordering": ["-created_at", "-id"],
                        "indexes": [
                            models.Index(fields=["content_type", "object_id"], name="auditentry_object")
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
