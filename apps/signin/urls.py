from django.urls import path

from apps.signin import views

app_name = "signin"
urlpatterns = [
    path("login", views.login_view, name="login"),
]
