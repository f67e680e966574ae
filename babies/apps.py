from django.apps import AppConfig


class BabiesConfig(AppConfig):
    name = "babies"
    verbose_name = "Babies and scans"

    def ready(self):
        # HEIC support and the decompression-bomb guard are process-wide: set them once.
        from babies import images

        images.configure_pillow()
