"""idp.urls plus /bench/bare: the cheapest JSON view Django can serve, behind the same
middleware stack as every product endpoint. It is the reference the endpoint rates are
compared with."""

from django.http import HttpRequest, JsonResponse
from django.urls import path

from idp import urls as idp_urls
from idp.urls import handler400, handler403, handler404, handler500

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]


def bare(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


urlpatterns = [path("bench/bare", bare, name="bench_bare"), *idp_urls.urlpatterns]
