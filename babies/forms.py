"""Forms of the parent's pages. They check what a person typed; services enforce the rules."""

from __future__ import annotations

import datetime

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Submit
from django import forms
from django.conf import settings
from django.utils import timezone

from babies import images
from babies.models import Baby, Sex

# A due date further away than a pregnancy lasts is a typo (often the wrong year).
MAX_DAYS_UNTIL_DUE = 42 * 7


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%d", **kwargs)


class BabyForm(forms.ModelForm):
    class Meta:
        model = Baby
        fields = ["name", "due_date", "birth_date"]
        labels = {"name": "Name (optional)", "due_date": "Due date", "birth_date": "Birth date"}
        help_texts = {
            "name": "Leave it empty if you have not chosen one yet.",
            "due_date": "For a baby who is not born yet.",
            "birth_date": "Once your baby is born (you may keep the due date too).",
        }
        widgets = {"due_date": DateInput(), "birth_date": DateInput()}

    def __init__(self, *args, submit_label: str = "Save", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["name"].widget.attrs["autocomplete"] = "off"
        self.helper = FormHelper()
        self.helper.add_input(Submit("submit", submit_label, css_class="btn-brand"))

    def clean_due_date(self) -> datetime.date | None:
        due_date = self.cleaned_data.get("due_date")
        if due_date and due_date > timezone.localdate() + datetime.timedelta(days=MAX_DAYS_UNTIL_DUE):
            raise forms.ValidationError("That is more than 42 weeks from today. Please check the year.")
        return due_date


class ConfirmSexForm(forms.Form):
    sex = forms.ChoiceField(
        label="Is your baby a girl or a boy?",
        choices=Sex.choices,
        widget=forms.RadioSelect,
        error_messages={"required": "Please choose girl or boy."},
    )


def gestational_week_help_text() -> str:
    """Says how an empty week is filled in (``babies.views.scan_week_and_source``)."""
    return (
        "If you leave it empty, we count it from the due date and the day the photo was taken "
        "(or today, if the file has no date); for an older scan, please type the week it was taken. "
        f"Predictions only use scans from week {settings.PREDICTION_MIN_GESTATIONAL_WEEK} on."
    )


class ScanUploadForm(forms.Form):
    """The fields the crop modal sends with ``fetch``; the file itself is checked by ``images``."""

    file = forms.FileField(
        allow_empty_file=True,  # images.check_size gives the parent a better sentence
        error_messages={
            "required": "Please choose a scan to upload.",
            "invalid": "Please choose a scan to upload.",
        },
    )
    crop_box = forms.CharField(required=False, max_length=500)
    gestational_week = forms.IntegerField(
        required=False,
        min_value=4,
        max_value=42,
        error_messages={
            "invalid": "The week of pregnancy must be a number between 4 and 42.",
            "min_value": "The week of pregnancy must be a number between 4 and 42.",
            "max_value": "The week of pregnancy must be a number between 4 and 42.",
        },
    )

    # The photo's own date (EXIF DateTimeOriginal), read by the browser; the server reads the file
    # itself when this is missing (babies.exif). A typed week always wins over either.
    taken_on = forms.DateField(required=False, input_formats=["%Y-%m-%d"])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["gestational_week"].help_text = gestational_week_help_text()

    def clean_taken_on(self) -> datetime.date | None:
        # A clock set wrong (a date in the future) says nothing about the scan: ignore it.
        taken_on = self.cleaned_data.get("taken_on")
        if taken_on is not None and taken_on > timezone.localdate():
            return None
        return taken_on

    def clean_crop_box(self):
        return images.parse_crop_box(self.cleaned_data.get("crop_box"))

    def first_error(self) -> str:
        for errors in self.errors.values():
            return errors[0]
        return "Please check the upload and try again."
