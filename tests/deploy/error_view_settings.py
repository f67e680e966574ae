"""Production settings plus one view that fails, to see what a 500 does under gunicorn."""

from instagender.settings import *  # noqa: F403

ROOT_URLCONF = "tests.deploy.error_view_urls"
