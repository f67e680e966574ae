from django.urls import path

from accounts import views

# Included before allauth's URLs, so these take precedence over allauth's views of the same name.
urlpatterns = [
    path("confirm-email/<str:key>/", views.ConfirmEmailView.as_view(), name="account_confirm_email"),
    path("settings/", views.account_settings, name="account_settings"),
    path("settings/export/", views.account_export, name="account_export"),
    path("settings/delete/", views.account_delete, name="account_delete"),
]
