"""Forms of the curation admin pages."""

from __future__ import annotations

from django import forms

from babies.models import LabelSource, Sex
from curation.models import QUALITY_FLAGS, ReviewQueueScan, ReviewState
from curation.selectors import DEFAULT_DUPLICATE_DISTANCE


class ScanReviewForm(forms.ModelForm):
    """The review of one scan on its admin page; the scan's own fields are read-only there."""

    review_state = forms.ChoiceField(
        label="Review", choices=ReviewState.choices, widget=forms.RadioSelect, initial=ReviewState.PENDING
    )
    review_note = forms.CharField(
        label="Note", required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 60})
    )
    # One per QUALITY_FLAGS, in its order (the admin's fieldsets name them from there).
    is_corrupt = forms.BooleanField(label=QUALITY_FLAGS["is_corrupt"], required=False)
    is_not_ultrasound = forms.BooleanField(label=QUALITY_FLAGS["is_not_ultrasound"], required=False)
    is_duplicate = forms.BooleanField(label=QUALITY_FLAGS["is_duplicate"], required=False)
    is_3d_or_4d = forms.BooleanField(label=QUALITY_FLAGS["is_3d_or_4d"], required=False)
    is_unfocused = forms.BooleanField(label=QUALITY_FLAGS["is_unfocused"], required=False)
    is_poor_quality = forms.BooleanField(label=QUALITY_FLAGS["is_poor_quality"], required=False)
    needs_crop = forms.BooleanField(label=QUALITY_FLAGS["needs_crop"], required=False)

    class Meta:
        model = ReviewQueueScan
        fields: list[str] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        review = getattr(self.instance, "review", None) if self.instance.pk else None
        if review is not None:
            self.initial.setdefault("review_state", review.state)
            self.initial.setdefault("review_note", review.note)
            for name in QUALITY_FLAGS:
                self.initial.setdefault(name, getattr(review, name))

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("review_state") == ReviewState.ACCEPTED and any(cleaned.get(n) for n in QUALITY_FLAGS):
            raise forms.ValidationError(
                "A scan with quality flags cannot be accepted: clear the flags or reject it."
            )
        return cleaned

    @property
    def review_flags(self) -> dict[str, bool]:
        return {name: bool(self.cleaned_data.get(name)) for name in QUALITY_FLAGS}


class BabyStaffForm(forms.ModelForm):
    """Staff may correct a confirmed sex; everything else about a baby is the parent's."""

    relabel_as = forms.ChoiceField(
        label="Correct the confirmed sex",
        required=False,
        choices=[("", "Leave as it is"), *Sex.choices],
        help_text="Sets the label source to “Staff”. Recorded in the audit trail.",
    )

    class Meta:
        fields: list[str] = []


class TrainingSetCreateForm(forms.Form):
    note = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why this set, and what changed since the last one.",
    )
    label_sources = forms.MultipleChoiceField(
        choices=LabelSource.choices,
        initial=list(LabelSource.values),
        widget=forms.CheckboxSelectMultiple,
        help_text="Labels from these sources are used; babies labelled otherwise are left out.",
        error_messages={"required": "Choose at least one label source."},
    )


class DuplicateSearchForm(forms.Form):
    max_distance = forms.IntegerField(
        label="Bits that may differ",
        min_value=0,
        max_value=16,
        initial=DEFAULT_DUPLICATE_DISTANCE,
        help_text="0 finds identical dHashes only; re-encoded or slightly cropped copies differ by a few "
        "bits.",
    )
    across_babies_only = forms.BooleanField(label="Only groups across different babies", required=False)
