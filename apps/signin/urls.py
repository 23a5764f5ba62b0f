from django.urls import path

from apps.signin import account, views

app_name = "signin"
urlpatterns = [
    path("login", views.login_view, name="login"),
    path("account/", account.account, name="account"),
]
