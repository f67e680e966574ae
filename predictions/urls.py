app_name = "predictions"

urlpatterns: list = []
