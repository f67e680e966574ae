"""Test data for curation: labelled, reviewed scans made through the real services."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from accounts.tests.factories import UserFactory
from babies import services as baby_services
from babies.models import LabelSource
from babies.tests.factories import BabyFactory, create_scan
from curation import services


def distinct_image(seed: int, size: tuple[int, int] = (96, 72), image_format: str = "PNG") -> bytes:
    """A blocky random image: two seeds give dHashes about 32 bits apart, one seed the same."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(6, 8), dtype=np.uint8)
    image = Image.fromarray(blocks, "L").resize(size, Image.Resampling.NEAREST).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, image_format, **({"quality": 70} if image_format == "JPEG" else {}))
    return buffer.getvalue()


def labelled_baby(*, owner=None, sex="female", source=LabelSource.DASHBOARD, consent=True, **baby_fields):
    owner = owner or UserFactory(allows_training_use=consent)
    baby = BabyFactory(owner=owner, born=True, **baby_fields)
    baby_services.baby_confirm_sex(baby=baby, sex=sex, source=source)
    return baby


_seed = iter(range(1000, 100_000))


def reviewed_scan(baby, *, reviewer, state="accepted", data: bytes | None = None, **kwargs):
    """A scan of ``baby`` (a distinct image unless ``data`` is given), reviewed as ``state``."""
    scan = create_scan(baby, data=data or distinct_image(next(_seed)), **kwargs)
    if state != "pending":
        services.scan_review_update(scan=scan, reviewer=reviewer, state=state)
    return scan
