from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.core.health import readiness


@staff_member_required
def home(request: HttpRequest) -> HttpResponse:
    """The operator's landing page: the state of every dependency, as /readyz sees it."""
    return render(request, "console/home.html", {"checks": readiness()})
