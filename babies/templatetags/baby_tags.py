"""How a baby is named inside a sentence.

``Baby.display_name`` ("Baby due 1 March 2027") is a label for headings and lists. In a sentence
people write "your baby due on 1 March 2027", so templates use ``{{ baby|in_sentence }}`` (and
``|capfirst`` at the start of one).
"""

from django import template

from instagender.dates import long_date

register = template.Library()


def baby_in_sentence(baby) -> str:
    if baby.name:
        return baby.name
    if baby.birth_date:
        return f"your baby born on {long_date(baby.birth_date)}"
    if baby.due_date:
        return f"your baby due on {long_date(baby.due_date)}"
    return "your baby"


register.filter("in_sentence", baby_in_sentence)
