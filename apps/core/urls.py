from django.urls import path

from apps.core import csp_reports, views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("csp-report", csp_reports.csp_report, name="csp_report"),
]
