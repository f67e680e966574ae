from django.urls import path

from babies import views

app_name = "babies"

urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("babies/new/", views.baby_create, name="baby_create"),
    path("babies/<int:baby_id>/", views.baby_detail, name="baby_detail"),
    path("babies/<int:baby_id>/edit/", views.baby_update, name="baby_update"),
    path("babies/<int:baby_id>/delete/", views.baby_delete, name="baby_delete"),
    path("babies/<int:baby_id>/sex/", views.baby_confirm_sex, name="baby_confirm_sex"),
    path("babies/<int:baby_id>/scans/", views.scan_upload, name="scan_upload"),
    path("scans/<int:scan_id>/delete/", views.scan_delete, name="scan_delete"),
    path("scans/<int:scan_id>/image.jpg", views.scan_image, name="scan_image"),
    path("scans/<int:scan_id>/thumbnail.jpg", views.scan_thumbnail, name="scan_thumbnail"),
]
