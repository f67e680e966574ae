from django.urls import path

from babies import views

app_name = "babies"

urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
]
