"""{% registration_link %}: the sign-in page's "Create an account" link, when registration is
open (IDP_REGISTRATION)."""

from __future__ import annotations

from django import template
from django.conf import settings
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()


@register.simple_tag
def registration_link() -> SafeString | str:
    if settings.REGISTRATION != "open":
        return ""
    return format_html(
        '<p>New here? <a href="{}">Create an account</a></p>', reverse("signin:register")
    )
