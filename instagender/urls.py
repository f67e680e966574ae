from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path

from instagender import views

admin.site.site_header = "Instagender curation"
admin.site.site_title = "Instagender admin"
admin.site.index_title = "Curation"
# The admin has no sign-in of its own: allauth's (rate limits, two-factor codes, audit) for everyone.
admin.site.login = secure_admin_login(admin.site.login)

urlpatterns = [
    path("", views.HomeView.as_view(), name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/", include("accounts.urls")),
    path("accounts/", include("allauth.urls")),
    path("", include("babies.urls")),
    path("", include("predictions.urls")),
    path("admin/", admin.site.urls),
]

# A database outage outside a view (e.g. saving the session) is a 503 with a sentence, not a 500.
handler500 = "instagender.middleware.server_error"
