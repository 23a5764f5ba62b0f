from django.urls import path

from apps.federation import views

app_name = "federation"
urlpatterns = [
    # Before <slug>: "link" is no provider's slug (apps.federation.providers refuses it).
    path("login/federated/link", views.link, name="link"),
    path("login/federated/link/confirm", views.link_confirm, name="link_confirm"),
    path("login/federated/<slug:slug>", views.start, name="start"),
    path("login/federated/<slug:slug>/callback", views.callback, name="callback"),
    path("account/security/linked/<slug:slug>", views.link_start, name="link_start"),
    path("account/security/linked/<uuid:identity_id>/unlink", views.unlink, name="unlink"),
]
