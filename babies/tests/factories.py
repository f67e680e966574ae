"""Factories and image helpers for babies and scans. Odd images are made here, not committed."""

from __future__ import annotations

import datetime
import io
import itertools

import factory
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from accounts.tests.factories import UserFactory
from babies import services
from babies.models import Baby

_colour_counter = itertools.count(1)


def image_bytes(
    image_format: str = "PNG",
    size: tuple[int, int] = (64, 48),
    mode: str = "RGB",
    colour=None,
    **save_kwargs,
) -> bytes:
    """An image with a gradient (so crops and rotations are visible) in any format and mode."""
    if colour is None:
        # Each call differs, so two scans made by the factory never share a SHA-256.
        step = next(_colour_counter)
        colour = (step * 37 % 256, step * 91 % 256, step * 53 % 256)
    image = Image.new("RGB", size, colour)
    # A white left half and a black top band make orientation and cropping checkable.
    image.paste((255, 255, 255), (0, 0, size[0] // 2, size[1]))
    image.paste((0, 0, 0), (0, 0, size[0], max(1, size[1] // 8)))
    if mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, image_format, **save_kwargs)
    return buffer.getvalue()


def upload(data: bytes, name: str = "scan.png", content_type: str = "image/png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


class BabyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Baby

    owner = factory.SubFactory(UserFactory)
    name = ""
    due_date = factory.LazyFunction(lambda: timezone.localdate() + datetime.timedelta(days=120))
    birth_date = None

    class Params:
        born = factory.Trait(
            due_date=None,
            birth_date=factory.LazyFunction(lambda: timezone.localdate() - datetime.timedelta(days=30)),
        )


def create_scan(baby: Baby | None = None, *, data: bytes | None = None, **kwargs):
    """A scan made the real way, through ``services.scan_create`` (so its files exist)."""
    baby = baby or BabyFactory()
    scan, created = services.scan_create(baby=baby, uploaded_file=upload(data or image_bytes()), **kwargs)
    assert created
    return scan


# --- Hostile and odd files -----------------------------------------------------------------
def png_bomb(width: int = 20_000, height: int = 20_000) -> bytes:
    """A real decompression bomb: a 1-bit PNG of ``width`` x ``height`` zeros in a few kilobytes."""
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        checksum = struct.pack(">I", zlib.crc32(kind + payload))
        return struct.pack(">I", len(payload)) + kind + payload + checksum

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    rows_per_block = 1000
    blocks = [compressor.compress(row * rows_per_block) for _ in range(height // rows_per_block)]
    idat = b"".join(blocks) + compressor.compress(row * (height % rows_per_block)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg_claiming_size(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header claims ``width`` x ``height`` pixels."""
    import struct

    data = bytearray(image_bytes("JPEG", (16, 16)))
    marker = data.index(b"\xff\xc0")  # baseline frame header: length, precision, height, width
    data[marker + 5 : marker + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: int(len(data) * keep)]


def noisy_jpeg(size: tuple[int, int] = (400, 300), **save_kwargs) -> bytes:
    """A JPEG large enough that cutting it leaves the header intact but the pixels incomplete."""
    import numpy as np

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90, **save_kwargs)
    return buffer.getvalue()


ELF_EXECUTABLE = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00" + b"\x00" * 200


# The original, the JPEG, the thumbnail and the model-ready derivative (a test in test_files checks
# this against Scan's file fields).
FILES_PER_SCAN = 4


def stored_files(media_root) -> list[str]:
    """Every file under MEDIA_ROOT, so a test can prove that nothing was left behind."""
    from pathlib import Path

    root = Path(media_root)
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())
