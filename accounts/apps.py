from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Parents and staff"

    def ready(self):
        from django.contrib.auth.signals import user_logged_in

        from accounts import middleware, sign_in_audit

        sign_in_audit.connect()
        user_logged_in.connect(middleware.staff_activity_start, dispatch_uid="accounts.staff_activity_start")
