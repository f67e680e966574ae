"""What a baby's card shows (the dashboard; the baby page's sex and prediction panels), worked
out in Python once per page.

The dashboard renders one card per baby, and the template engine's work per tag made the cards
cost more than the rest of the page put together (issue 13: 50 requests/s with 20 babies,
against 2,000 for the bare health check): a ``{% url %}`` reverse for each of a dozen links, a
localised date in every scan's label, ``baby|in_sentence`` in every accessible name. Here each
kind of link is reversed once per process (``link_maker``) and each string is made once per
baby; the templates only place them, so the markup, the labels and the wording (but a scan's
``alt`` text, made here whole) stay in the templates. Those are Jinja2's
(``templates/jinja2/``, ``instagender/jinja2.py``): Django's engine took 11.8 ms to place
twenty cards' strings, Jinja2 about 2.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.conf import settings
from django.template import engines
from django.template.backends.utils import csrf_input
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.safestring import SafeString, mark_safe

from babies.models import Baby, Scan
from babies.selectors import DashboardBaby
from babies.templatetags.baby_tags import baby_in_sentence
from instagender.dates import long_date
from instagender.templating import TemplateFields

# How many thumbnails a dashboard card shows; the rest are a "+N more" link.
CARD_THUMBNAILS = 8

# Stands for the object's id while a link is reversed once for every object of a page: a
# number no route of ours otherwise contains.
_ID_PLACEHOLDER = 7_130_462_985


def link_maker(url_name: str) -> Callable[[int], str]:
    """``reverse(url_name, args=[id])`` for many ids at the cost of one ``reverse`` per process.

    The route's only argument is an ``<int:…>`` converter, whose URL form is the number's
    digits, so the reversed link with a placeholder id is the same for every id around it.
    Should the placeholder not come back exactly once, every id is reversed on its own. Kept
    per script prefix and URLconf, what a reversed link depends on besides the route.
    """
    key = (url_name, get_script_prefix(), get_urlconf() or settings.ROOT_URLCONF)
    maker = _link_makers.get(key)
    if maker is None:
        placeholder = str(_ID_PLACEHOLDER)
        before, found, after = reverse(url_name, args=[_ID_PLACEHOLDER]).partition(placeholder)
        if not found or placeholder in after:
            maker = functools.partial(_reverse_one, url_name)
        else:
            maker = functools.partial(_fill_in, before, after)
        _link_makers[key] = maker
    return maker


_link_makers: dict[tuple, Callable[[int], str]] = {}


def _fill_in(before: str, after: str, object_id: int) -> str:
    return f"{before}{object_id}{after}"


def _reverse_one(url_name: str, object_id: int) -> str:
    return reverse(url_name, args=[object_id])


class CardLinks:
    """The links of a page's cards: each route's pattern (``link_maker``), filled in per baby or scan."""

    def __init__(self):
        self.baby_detail = link_maker("babies:baby_detail")
        self.baby_update = link_maker("babies:baby_update")
        self.baby_delete = link_maker("babies:baby_delete")
        self.baby_confirm_sex = link_maker("babies:baby_confirm_sex")
        self.scan_upload = link_maker("babies:scan_upload")
        self.scan_image = link_maker("babies:scan_image")
        self.scan_thumbnail = link_maker("babies:scan_thumbnail")
        self.predict = link_maker("predictions:predict")


@dataclass(frozen=True)
class ScanThumbnail(TemplateFields):
    """One thumbnail on a card; ``number`` matches "Scan 2" in the prediction panel."""

    scan: Scan
    number: int
    image_url: str
    thumbnail_url: str
    # The image's accessible name: number, baby, week, upload date, and what to know about it.
    alt: str
    is_too_early: bool
    has_markers: bool

    @property
    def is_flagged(self) -> bool:
        return self.is_too_early or self.has_markers


@dataclass(frozen=True)
class BabyCard(TemplateFields):
    """Everything a card prints about one baby. ``id`` is the baby's id as text (ids appear in a
    dozen attributes per card; a number would be localised each time)."""

    baby: Baby
    id: str
    display_name: str
    in_sentence: str
    is_born: bool
    has_name: bool
    birth_date: str  # "3 May 2025", or "" before the birth
    due_date: str  # "3 May 2027", or "" without a due date
    due_date_iso: str  # "2027-05-03" for the upload script, or ""
    weeks_until_due: int | None
    scans: list[Scan]
    scan_count: int
    thumbnails: list[ScanThumbnail]
    more_scans: int  # scans beyond the thumbnails
    detail_url: str
    update_url: str
    delete_url: str
    confirm_sex_url: str
    upload_url: str
    predict_url: str
    sex: str  # the confirmed sex as stored ("female", "male" or "")
    confirmed_sex: str  # "girl" or "boy" once the parent said, else ""
    # What the prediction panel shows (``predictions.cards.PredictionPanel``).
    prediction: object


def _scan_alt(scan: Scan, number: int, in_sentence: str) -> str:
    parts = [f"Scan {number} of {in_sentence}"]
    if scan.gestational_week:
        parts.append(f" at week {scan.gestational_week}")
    parts.append(f", uploaded {long_date(scan.uploaded_at)}")
    if scan.is_too_early:
        parts.append(", too early to predict from")
    if scan.has_markers:
        parts.append(", with text or marks on it")
    parts.append(" (opens full size)")
    return "".join(parts)


def baby_card(baby: Baby, *, scans: Iterable[Scan], links: CardLinks | None = None, **prediction) -> BabyCard:
    """The card of one baby with its current ``scans`` (oldest first). ``links`` is shared by
    every card of a page; ``prediction=`` (the latest prediction, or None), when the caller has
    it, saves looking it up (``predictions.cards.prediction_panel``)."""
    # Imported here: predictions builds on babies, not the other way round.
    from predictions.cards import prediction_panel

    links = links or CardLinks()
    scans = list(scans)
    in_sentence = baby_in_sentence(baby)
    thumbnails = [
        ScanThumbnail(
            scan=scan,
            number=number,
            image_url=links.scan_image(scan.pk),
            thumbnail_url=links.scan_thumbnail(scan.pk),
            alt=_scan_alt(scan, number, in_sentence),
            is_too_early=scan.is_too_early,
            has_markers=scan.has_markers,
        )
        for number, scan in enumerate(scans[:CARD_THUMBNAILS], start=1)
    ]
    return BabyCard(
        baby=baby,
        id=str(baby.pk),
        display_name=baby.display_name,
        in_sentence=in_sentence,
        is_born=baby.is_born,
        has_name=bool(baby.name),
        birth_date=long_date(baby.birth_date),
        due_date=long_date(baby.due_date),
        due_date_iso=baby.due_date.isoformat() if baby.due_date else "",
        weeks_until_due=baby.weeks_until_due,
        scans=scans,
        scan_count=len(scans),
        thumbnails=thumbnails,
        more_scans=max(0, len(scans) - CARD_THUMBNAILS),
        detail_url=links.baby_detail(baby.pk),
        update_url=links.baby_update(baby.pk),
        delete_url=links.baby_delete(baby.pk),
        confirm_sex_url=links.baby_confirm_sex(baby.pk),
        upload_url=links.scan_upload(baby.pk),
        predict_url=links.predict(baby.pk),
        sex=baby.confirmed_sex,
        confirmed_sex=baby.get_confirmed_sex_display().lower() if baby.confirmed_sex else "",
        prediction=prediction_panel(baby=baby, scans=scans, **prediction),
    )


def baby_cards(dashboard: Iterable[DashboardBaby]) -> list[BabyCard]:
    """The dashboard's cards (``selectors.babies_for_dashboard``), in its order."""
    links = CardLinks()
    return [
        baby_card(entry.baby, scans=entry.scans, links=links, prediction=entry.prediction)
        for entry in dashboard
    ]


def _render(template_name: str, context: dict, request, csrf_field: str | None = None) -> SafeString:
    # The CSRF field made once per page: the backend's own ``csrf_input`` is lazy and masks a
    # fresh token for every form it is printed in (two per card).
    context = {**context, "csrf_field": mark_safe(csrf_field) if csrf_field else csrf_input(request)}  # noqa: S308
    # Jinja2's templates come back as plain text already escaped where needed: mark it so.
    return mark_safe(engines["jinja2"].get_template(template_name).render(context, request))  # noqa: S308


def render_cards(request, cards: list[BabyCard], *, csrf_field: str | None = None) -> SafeString:
    """The dashboard's cards, one column each (``templates/jinja2/babies/cards.jinja``);
    ``csrf_field`` instead of the request's own (``babies.card_cache`` keeps them drawn)."""
    return _render("babies/cards.jinja", {"cards": cards}, request, csrf_field)


def render_panels(request, card: BabyCard) -> SafeString:
    """The baby page's sex and prediction panels, the same as the card's."""
    return _render("babies/baby_panels.jinja", {"card": card}, request)
