# The parent-facing answer of a prediction: a sex or "cannot tell yet" (ml.abstention).

from django.db import migrations, models


def answer_from_predicted_sex(apps, schema_editor):
    # Predictions made before abstention existed always answered with their predicted sex.
    Prediction = apps.get_model("predictions", "Prediction")
    Prediction.objects.filter(answer="").update(answer=models.F("predicted_sex"))


class Migration(migrations.Migration):
    dependencies = [
        ("predictions", "0004_model_activation"),
    ]

    operations = [
        migrations.AddField(
            model_name="prediction",
            name="answer",
            field=models.CharField(
                choices=[("female", "Girl"), ("male", "Boy"), ("cannot_tell", "Cannot tell yet")],
                default="",
                max_length=11,
            ),
            preserve_default=False,
        ),
        migrations.RunPython(answer_from_predicted_sex, migrations.RunPython.noop, elidable=True),
        migrations.AddField(
            model_name="prediction",
            name="abstain_reason",
            field=models.CharField(
                blank=True,
                choices=[("uncertain", "Too close to 50/50"), ("scans_disagree", "The scans disagree")],
                max_length=14,
            ),
        ),
        migrations.AddField(
            model_name="prediction",
            name="abstain_margin",
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="prediction",
            name="disagreement_threshold",
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="prediction",
            name="scan_errors",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text='One {"scan_id", "reason", "error"} per scan left out; reason "too_early" or "unreadable".',
            ),
        ),
    ]
