from django.apps import AppConfig


class PredictionsConfig(AppConfig):
    name = "predictions"
    verbose_name = "Predictions and models"

    def ready(self):
        # A prediction or its model version on a dashboard card renews the owner's card stamp.
        from django.db.models.signals import post_delete, post_save

        from babies import card_cache
        from predictions.models import ModelVersion, Prediction

        for action, signal in (("save", post_save), ("delete", post_delete)):
            signal.connect(
                card_cache.on_scan_or_prediction_changed,
                sender=Prediction,
                dispatch_uid=f"cards.prediction.{action}",
            )
            signal.connect(
                card_cache.on_model_version_changed,
                sender=ModelVersion,
                dispatch_uid=f"cards.version.{action}",
            )
