"""Synthetic babies for demos and benchmarks, through the same upload path as a parent's."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from babies.models import Baby

logger = logging.getLogger(__name__)


def synthetic_babies_create(
    *,
    owner,
    babies: int,
    scans_per_baby: int = 3,
    seed: int = 0,
    config=None,
) -> tuple[int, int]:
    """Give ``owner`` synthetic babies with generated scans, through the babies services.

    For demos and manual testing: the scans go through the same upload path as a parent's.
    Babies are named "Synthetic baby demo00000", …; one that already exists is left alone, so
    running this twice adds nothing. Returns (babies created, scans created). Sexes are not
    confirmed: the demo is to ask the model.
    """
    import datetime

    from django.core.files.uploadedfile import SimpleUploadedFile

    from babies.services import baby_create, scan_create
    from ml.synthetic import SyntheticConfig, generate_baby

    config = config or SyntheticConfig()
    existing = set(Baby.all_objects.filter(owner=owner).values_list("name", flat=True))
    today = timezone.localdate()
    babies_created = scans_created = 0
    for index in range(babies):
        scans = generate_baby(
            seed=seed, split="demo", index=index, scans_per_baby=scans_per_baby, config=config
        )
        name = f"Synthetic baby {scans[0].baby_key}"
        if name in existing:
            continue
        with transaction.atomic():
            baby = baby_create(
                owner=owner,
                name=name,
                due_date=today + datetime.timedelta(weeks=40 - scans[0].gestational_week),
                is_synthetic=True,
            )
            for scan in scans:
                upload = SimpleUploadedFile(f"{scan.baby_key}_{scan.scan_index}.jpg", scan.jpeg, "image/jpeg")
                _, created = scan_create(
                    baby=baby, uploaded_file=upload, gestational_week=scan.gestational_week
                )
                scans_created += int(created)
        babies_created += 1
    return babies_created, scans_created
