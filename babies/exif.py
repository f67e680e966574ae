"""The date a photo was taken, read from its EXIF block on the server.

The crop modal reads ``DateTimeOriginal`` in the browser (exifr) and sends it as ``taken_on``;
this module is the fallback for uploads without JavaScript, or when the browser could not read
the file (HEIC in most browsers). The week of pregnancy is then counted from the day the photo
was taken instead of the upload day, so an old scan does not get today's week.

Only the header is read: ``Image.open`` parses the container and the EXIF block, never the
pixels, through the same decoders ``babies.images`` allows. Anything odd gives ``None`` (the
date only advises; ``babies.images`` decides whether the file is acceptable).
"""

from __future__ import annotations

import datetime
import io
import logging

from PIL import Image, UnidentifiedImageError

from babies import images

logger = logging.getLogger(__name__)

EXIF_IFD_POINTER = 0x8769
DATE_TIME_ORIGINAL = 0x9003
DATE_TIME_DIGITIZED = 0x9004
# EXIF writes dates as "YYYY:MM:DD HH:MM:SS"; some phones use dashes in the date part.
_DATE_FORMATS = ("%Y:%m:%d", "%Y-%m-%d")

_EXPECTED_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    UnidentifiedImageError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


def parse_exif_date(value) -> datetime.date | None:
    """The calendar day of an EXIF date-time string, or ``None`` for a blank or malformed one."""
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="ignore")
    if not isinstance(value, str):
        return None
    day = value.strip().strip("\x00")[:10]
    for date_format in _DATE_FORMATS:
        try:
            taken_on = datetime.datetime.strptime(day, date_format).date()
        except ValueError:
            continue
        # Cameras with a flat clock battery write 0000:00:00 or 1970:01:01: not a date.
        return taken_on if taken_on.year >= 1990 else None
    return None


def photo_taken_on(data: bytes) -> datetime.date | None:
    """``DateTimeOriginal`` (or ``DateTimeDigitized``) of the image in ``data``, as a date."""
    try:
        with Image.open(io.BytesIO(data), formats=images._decoders(images.allowed_formats())) as image:
            if image.format == "PNG" and "exif" not in image.info:
                # Pillow looks for an eXIf chunk after the pixels by decoding them all: up to
                # 200 MB for a PNG within the pixel cap, before normalise() would refuse it.
                # Phones write their dates into JPEG and HEIC; a PNG is a screenshot.
                return None
            exif_ifd = image.getexif().get_ifd(EXIF_IFD_POINTER)
    except _EXPECTED_ERRORS:
        return None
    except Exception:
        # A bug in a decoder's header parser must not cost the parent the upload.
        logger.exception("reading the EXIF date failed; the week is worked out without it")
        return None
    for tag in (DATE_TIME_ORIGINAL, DATE_TIME_DIGITIZED):
        taken_on = parse_exif_date(exif_ifd.get(tag))
        if taken_on is not None:
            return taken_on
    return None
