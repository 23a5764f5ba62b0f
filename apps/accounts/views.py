from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods


@never_cache
@require_http_methods(["GET"])
def home(request: HttpRequest) -> HttpResponse:
    """Where a person lands after signing in directly: who they are, and the way out."""
    return render(request, "accounts/home.html")
