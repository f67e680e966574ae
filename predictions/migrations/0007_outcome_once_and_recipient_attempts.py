"""One answer per outcome link; outcome e-mail attempts count only the recipient's refusals.

Data: each link already answered keeps its latest answer (the one that set the label) as *the*
answer, so it cannot be answered again; earlier answers stay as history. Unsent outcome
e-mails given up because of our own SMTP failures (every failure used to count) are tried again:
only a last error that was the recipient's refusal keeps its count.
"""

from django.db import migrations, models


def forwards(apps, schema_editor):
    OutcomeAnswer = apps.get_model("predictions", "OutcomeAnswer")
    OutcomeRequest = apps.get_model("predictions", "OutcomeRequest")
    seen = set()
    for answer in OutcomeAnswer.objects.order_by("-answered_at", "-id").only(
        "pk", "baby_id", "prediction_id"
    ):
        key = (answer.baby_id, answer.prediction_id)
        if key not in seen:
            seen.add(key)
            OutcomeAnswer.objects.filter(pk=answer.pk).update(link=f"{key[0]}:{key[1]}")
    OutcomeRequest.objects.filter(sent_at__isnull=True).exclude(
        last_error__startswith="SMTPRecipientsRefused"
    ).update(attempts=0)


class Migration(migrations.Migration):
    dependencies = [
        ("predictions", "0006_model_version_baby_calibration"),
    ]

    operations = [
        migrations.AddField(
            model_name="outcomeanswer",
            name="label_applied",
            field=models.BooleanField(
                default=True,
                help_text="False when staff had set the label: the answer was kept, the label not changed.",
            ),
        ),
        migrations.AddField(
            model_name="outcomeanswer",
            name="link",
            field=models.CharField(
                blank=True,
                editable=False,
                help_text="<baby id>:<prediction id> of the link answered; one answer per link.",
                max_length=41,
                null=True,
                unique=True,
            ),
        ),
        migrations.AlterField(
            model_name="outcomerequest",
            name="attempts",
            field=models.PositiveSmallIntegerField(
                default=0,
                help_text="Sends the recipient's mail server refused; the baby is given up on at MAX_ATTEMPTS.",
            ),
        ),
        migrations.RunPython(forwards, migrations.RunPython.noop),
    ]
