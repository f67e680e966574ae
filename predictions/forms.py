"""The parent's answer to the outcome e-mail: was the prediction right?"""

from __future__ import annotations

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Submit
from django import forms

from babies.models import Sex


def parse_answer(value: str | None) -> bool | None:
    """The original Flask app's ``?oc=True`` / ``?oc=False``; anything else pre-selects nothing."""
    return {"true": True, "false": False}.get((value or "").strip().lower())


class OutcomeAnswerForm(forms.Form):
    prediction_was_right = forms.TypedChoiceField(
        label="Was the prediction right?",
        choices=[("True", "Yes"), ("False", "No")],
        coerce=lambda value: value == "True",
        widget=forms.RadioSelect,
        error_messages={
            "required": "Please choose yes or no.",
            "invalid_choice": "Please choose yes or no.",
        },
    )

    def __init__(self, *args, prediction, baby, **kwargs):
        super().__init__(*args, **kwargs)
        predicted = Sex(prediction.predicted_sex)
        other = Sex.FEMALE if predicted == Sex.MALE else Sex.MALE
        name = baby.display_name
        field = self.fields["prediction_was_right"]
        field.label = f"Is {name} a {predicted.label.lower()}?"
        field.choices = [
            ("True", f"Yes, a {predicted.label.lower()}: the prediction was right"),
            ("False", f"No, a {other.label.lower()}: the prediction was wrong"),
        ]
        self.helper = FormHelper()
        self.helper.add_input(Submit("submit", "Save my answer", css_class="btn-brand"))
