"""Template filters for the curation admin."""

import json

from django import template
from django.core.serializers.json import DjangoJSONEncoder

register = template.Library()


@register.filter
def audit_value(value) -> str:
    """A value from an audit entry as a person reads it: "—" for nothing, JSON for structures."""
    if value is None or value == "":
        return "—"
    if isinstance(value, dict | list):
        return json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False)
    return str(value)
