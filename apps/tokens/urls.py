from django.urls import path

from apps.tokens import views

app_name = "tokens"
urlpatterns = [
    path(".well-known/openid-configuration", views.discovery, name="discovery"),
    path(".well-known/oauth-authorization-server", views.discovery, name="oauth_metadata"),
    path("oauth/jwks", views.jwks, name="jwks"),
    path("oauth/authorize", views.authorize, name="authorize"),
    path("oauth/authorize/consent", views.consent, name="consent"),
    path("oauth/token", views.token, name="token"),
    path("oauth/par", views.par, name="par"),
    path("oauth/userinfo", views.userinfo, name="userinfo"),
    path("oauth/introspect", views.introspect, name="introspect"),
    path("oauth/revoke", views.revoke, name="revoke"),
    path("oauth/logout", views.end_session, name="end_session"),
    path("oauth/logout/confirm", views.end_session_confirm, name="end_session_confirm"),
]
