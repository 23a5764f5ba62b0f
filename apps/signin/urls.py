from django.urls import path

from apps.signin import account, recovery_views, registration, views

app_name = "signin"
urlpatterns = [
    path("login", views.login_view, name="login"),
    path("account/", account.account, name="account"),
    path("account/verify", recovery_views.verify_resend, name="verify_resend"),
    path("account/verify/<str:token>", recovery_views.verify, name="verify"),
    path("password/forgot", recovery_views.password_forgot, name="password_forgot"),
    path("password/reset/<str:token>", recovery_views.password_reset, name="password_reset"),
    path("register", registration.register, name="register"),
    path("register/confirm/<str:token>", registration.register_confirm, name="register_confirm"),
    path("invite/<str:token>", registration.invite, name="invite"),
]
