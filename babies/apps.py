from django.apps import AppConfig


class BabiesConfig(AppConfig):
    name = "babies"
    verbose_name = "Babies and scans"

    def ready(self):
        # HEIC support and the decompression-bomb guard are process-wide: set them once.
        from babies import images

        images.configure_pillow()

        # The drawn dashboard cards are kept under a stamp that these changes renew.
        from django.db.models.signals import post_delete, post_save

        from babies import card_cache
        from babies.models import Baby, Scan

        for action, signal in (("save", post_save), ("delete", post_delete)):
            signal.connect(card_cache.on_baby_changed, sender=Baby, dispatch_uid=f"cards.baby.{action}")
            signal.connect(
                card_cache.on_scan_or_prediction_changed, sender=Scan, dispatch_uid=f"cards.scan.{action}"
            )
