"""The Jinja2 environment of the few partials drawn once per baby (``templates/jinja2/``).

A parent's dashboard draws one card per baby; Django's template engine spent most of such a
request placing the cards' strings (``bench/dashboard.py``), Jinja2 compiles them to Python.
The cards' strings and links are made once in Python (``babies.cards``, ``predictions.cards``),
so these templates only place them, with the same autoescaping; pages stay Django templates and
take the rendered cards as one string (``babies.cards.render_cards``).
"""

from django.template.defaultfilters import pluralize
from jinja2 import Environment


def environment(**options) -> Environment:
    # Django's backend passes autoescape=True (settings say so too); never without it.
    options["autoescape"] = True
    env = Environment(**options)  # noqa: S701 (autoescape is on, set just above)
    env.filters["pluralize"] = pluralize
    return env
