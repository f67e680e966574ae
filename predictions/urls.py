from django.urls import path

from predictions import views

app_name = "predictions"

urlpatterns = [
    path("babies/<int:baby_id>/predict/", views.predict, name="predict"),
    path("outcome/<str:token>/", views.outcome, name="outcome"),
    path("outcome/<str:token>/thanks/", views.outcome_thanks, name="outcome_thanks"),
]
