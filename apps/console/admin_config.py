"""Django's admin app with Tessera's site (apps.console.admin_site), named in INSTALLED_APPS
in place of "django.contrib.admin". Its own module: INSTALLED_APPS imports it before any
model can be, so it names the site by path and imports nothing else."""

from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig


class AdminConfig(DjangoAdminConfig):
    default_site = "apps.console.admin_site.AdministratorsAdminSite"
