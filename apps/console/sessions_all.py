"""End every session of every person (OWASP ASVS 7.4.5), from the Sessions page: incident
response, such as a suspected compromise of the session store. The confirmation page says how
many sessions will end and asks the operator to type a phrase, as for any act that cannot be
undone and reaches everyone (a click alone is too easy to give by mistake).

The operator's own session is kept, its browser session key renewed: they are in the middle
of the response and must be able to go on (see what ended, end more), and a copy of their old
key taken from the store is worthless after the renewal. `manage.py end_all_sessions` ends
every session without exception."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from apps.console.permissions import operator_required
from apps.sessions.selectors import session_current
from apps.sessions.services import (
    END_EVERYONE_REQUEST_SECONDS,
    sessions_end_everyone,
    sessions_live_count,
)

# What the operator types to confirm.
PHRASE = "end all sessions"


class EndAllForm(forms.Form):
    confirmation = forms.CharField(
        label=f"Type “{PHRASE}” to confirm",
        max_length=64,
        strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    def clean_confirmation(self) -> str:
        typed: str = self.cleaned_data["confirmation"]
        if typed.casefold() != PHRASE:
            raise forms.ValidationError(f"Type “{PHRASE}” exactly; nothing was ended.")
        return typed


@operator_required
@require_http_methods(["GET", "POST"])
def sessions_end_all(request: HttpRequest) -> HttpResponse:
    own = session_current(request)
    kept = own.pk if own is not None else None
    form = EndAllForm(request.POST if request.method == "POST" else None)
    if request.method != "POST" or not form.is_valid():
        context = {"form": form, "count": sessions_live_count(exclude=kept), "kept": own}
        status = 400 if request.method == "POST" else 200
        return render(request, "console/sessions_end_all.html", context, status=status)
    run = sessions_end_everyone(
        reason="operator", actor_id=request.user.pk, keep=kept, seconds=END_EVERYONE_REQUEST_SECONDS
    )
    request.session.cycle_key()  # the kept session, under a key the store never held
    ended = f"{run.ended} session{'s' * (run.ended != 1)} ended"
    if run.remaining:
        # One request works for END_EVERYONE_REQUEST_SECONDS: the same page again, to go on.
        messages.warning(
            request,
            f"{ended}; {run.remaining} still live (one request ends what it can in "
            f"{END_EVERYONE_REQUEST_SECONDS:.0f} seconds). Confirm again to end the rest.",
        )
        return redirect("console:sessions_end_all")
    messages.success(request, f"{ended}. Yours was kept, under a new key.")
    return redirect("console:sessions")
