from django.urls import path

from apps.signin import account, registration, views

app_name = "signin"
urlpatterns = [
    path("login", views.login_view, name="login"),
    path("account/", account.account, name="account"),
    path("register", registration.register, name="register"),
    path("register/confirm/<str:token>", registration.register_confirm, name="register_confirm"),
    path("invite/<str:token>", registration.invite, name="invite"),
]
