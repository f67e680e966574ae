# Burned-in text and caliper marks found at upload (ml.markers).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("babies", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="scan",
            name="has_markers",
            field=models.BooleanField(
                default=False, help_text="Text or measurement marks were found on the normalised scan."
            ),
        ),
        migrations.AddField(
            model_name="scan",
            name="marker_score",
            field=models.FloatField(
                blank=True,
                null=True,
                help_text="0-1; 0.5 or more means marks were found. Empty: not checked.",
            ),
        ),
    ]
