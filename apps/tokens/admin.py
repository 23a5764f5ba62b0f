from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.tokens.models import Consent
from apps.tokens.services import consent_revoke


@admin.register(Consent)
class ConsentAdmin(admin.ModelAdmin[Consent]):
    """What each person allowed each client. People give consent on the consent page; an
    operator withdraws it only with the revoke action, which also revokes the client's tokens
    for them and records consent.revoked (a plain delete would do neither)."""

    list_display = ("user", "client", "scopes", "updated_at")
    list_select_related = ("user", "client")
    search_fields = ("user__email", "client__client_id", "client__name")
    actions = ("revoke",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Consent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Consent | None = None) -> bool:
        return False

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("tokens.delete_consent")

    @admin.action(description="Revoke selected consents and their tokens", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[Consent]) -> None:
        revoked = sum(
            consent_revoke(user_id=consent.user_id, client=consent.client, actor_id=request.user.pk)
            for consent in queryset.select_related("client")
        )
        self.message_user(
            request, f"{revoked} consent{'s' * (revoked != 1)} revoked.", messages.SUCCESS
        )
