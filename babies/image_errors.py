"""The errors an upload can raise, each with a sentence a parent understands (``babies.images``).

A ``ValidationError`` subclass per kind, with the HTTP status the upload view answers with.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError


class ImageError(ValidationError):
    """A problem with the uploaded file itself; ``message`` is a sentence for the parent."""

    default_message = "We could not use this file. Please try another image."
    code = "invalid_image"
    status_code = 400

    def __init__(self, message: str | None = None):
        super().__init__(message or self.default_message, code=self.code)

    def __str__(self) -> str:
        return self.message


class EmptyFile(ImageError):
    default_message = "This file is empty. Please choose the scan again."
    code = "empty_file"


class FileTooLarge(ImageError):
    code = "file_too_large"
    status_code = 413


class NotAnImage(ImageError):
    code = "not_an_image"


class UnsupportedFormat(ImageError):
    code = "unsupported_format"
    status_code = 415


class DamagedImage(ImageError):
    default_message = (
        "This image seems to be damaged or incomplete, so we could not read it. "
        "Please export it from your phone or computer again and upload the new copy."
    )
    code = "damaged_image"


class TooManyPixels(ImageError):
    code = "too_many_pixels"
    status_code = 413


class InvalidCropBox(ImageError):
    default_message = "The selected area is not inside the picture. Please select the area again."
    code = "invalid_crop_box"


class ImageTooSmall(ImageError):
    code = "image_too_small"
