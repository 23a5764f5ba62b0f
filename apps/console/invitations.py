"""The console's invitation pages for an organization: the list (every staff member reads),
a new invitation whose link is shown once (operators), and withdrawing one (operators).
Made and withdrawn by apps.accounts.invitations with the operator as the event's actor."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_safe

from apps.accounts import invitations
from apps.accounts.models import Organization, OrganizationInvitation, Role
from apps.accounts.selectors import roles_available_in
from apps.console.directory_forms import _role_field
from apps.console.forms import form_errors
from apps.console.permissions import operator_required, staff_required


class InvitationForm(forms.Form):
    email = forms.EmailField(
        required=False,
        max_length=254,
        label="Only for this address (optional)",
        help_text="Empty: anyone with the link may use it, as many times as allowed below.",
    )
    max_uses = forms.IntegerField(
        min_value=1, max_value=invitations.MAX_USES_LIMIT, initial=1, label="Uses allowed"
    )
    days = forms.IntegerField(
        min_value=1, max_value=invitations.DAYS_LIMIT, label="Valid for (days)"
    )

    def __init__(self, *args: Any, roles: QuerySet[Role], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"] = _role_field(roles)
        self.fields["days"].initial = settings.INVITATION_DAYS
        self.order_fields(["role", "email", "max_uses", "days"])


def _list_url(organization_id: uuid.UUID) -> str:
    return reverse("console:organization_invitations", kwargs={"organization_id": organization_id})


@staff_required
@require_safe
def organization_invitations(request: HttpRequest, organization_id: uuid.UUID) -> HttpResponse:
    organization = get_object_or_404(Organization, pk=organization_id)
    context = {
        "organization": organization,
        "invitations": invitations.invitation_list(organization=organization),
        "registration_open": settings.REGISTRATION == "open",
    }
    return render(request, "console/directory/invitations.html", context)


@operator_required
@require_http_methods(["GET", "POST"])
def organization_invitation_create(
    request: HttpRequest, organization_id: uuid.UUID
) -> HttpResponse:
    """POST answers the page with the link: the only time it is shown (only its digest is
    kept), never cached (the decorator's never_cache)."""
    organization = get_object_or_404(Organization, pk=organization_id)
    form = InvitationForm(request.POST or None, roles=roles_available_in(organization=organization))
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                invitation, token = invitations.invitation_create(
                    organization=organization,
                    role=data["role"],
                    email=data["email"] or "",
                    max_uses=data["max_uses"],
                    days=data["days"],
                    actor_id=request.user.pk,
                )
            except ValidationError as invalid:
                form_errors(form, invalid)
            else:
                context = {
                    "organization": organization,
                    "invitation": invitation,
                    "link": invitations.invitation_url(token),
                }
                return render(request, "console/directory/invitation_link.html", context)
        status = 400
    context = {
        "form": form,
        "title": f"Invite people to {organization.name}",
        "button": "Create invitation",
        "back": _list_url(organization.pk),
        "intro": "The link is shown once, on the next page. Whoever follows it registers (or "
        "signs in) and becomes a member with the role chosen here.",
    }
    return render(request, "console/directory/form.html", context, status=status)


@operator_required
@require_http_methods(["GET", "POST"])
def invitation_revoke(request: HttpRequest, invitation_id: uuid.UUID) -> HttpResponse:
    invitation = get_object_or_404(
        OrganizationInvitation.objects.select_related("organization"), pk=invitation_id
    )
    back = _list_url(invitation.organization_id)
    if request.method != "POST":
        context = {
            "question": f"Withdraw this invitation to {invitation.organization.name}?",
            "detail": "Its link stops working at once. People who joined through it stay "
            "members; pending registrations made with it create no account.",
            "button": "Withdraw invitation",
            "back": back,
        }
        return render(request, "console/confirm.html", context)
    if invitations.invitation_revoke(invitation=invitation, actor_id=request.user.pk):
        messages.success(request, "Invitation withdrawn.")
    else:
        messages.info(request, "This invitation was already withdrawn.")
    return redirect(back)
