"""Helpers for objects that templates read many fields of."""

from __future__ import annotations


class TemplateFields:
    """``obj[name]`` is ``obj.name``, so that a template reads a field without an exception.

    Django's template engine tries ``obj[name]`` before ``getattr(obj, name)``; for an object
    without ``__getitem__`` that first try is a ``TypeError`` raised and caught on every lookup,
    about a fifth of the cost of each ``{{ card.id }}``, and a dashboard of twenty babies makes
    some two thousand of them (``babies.cards``).
    """

    __slots__ = ()

    def __getitem__(self, name: str):
        try:
            return getattr(self, name)
        except AttributeError:
            raise KeyError(name) from None
