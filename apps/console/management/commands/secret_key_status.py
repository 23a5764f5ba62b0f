from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.core.secret_keys import key_id
from apps.mfa.selectors import recovery_code_sets_by_key
from apps.tokens.selectors import client_secrets_by_key


class Command(BaseCommand):
    help = (
        "What each IDP_SECRET_KEY still holds of the stored keyed hashes: client secrets (each "
        "moves to the current key at its client's next authentication) and recovery codes "
        "(they stay under their key until the person makes new ones). A fallback in "
        "IDP_SECRET_KEY_FALLBACKS can be dropped once nothing stored is under it and the "
        "signed values it made have expired (docs/operations.md, rotating the secret key)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        current = key_id(settings.SECRET_KEY)
        fallbacks = [key_id(key) for key in settings.SECRET_KEY_FALLBACKS]
        names = {current: "current", **dict.fromkeys(fallbacks, "fallback")}
        self.stdout.write(f"IDP_SECRET_KEY: {current}")
        self.stdout.write(f"IDP_SECRET_KEY_FALLBACKS: {' '.join(fallbacks) or '(none)'}")
        held: dict[str, int] = dict.fromkeys(fallbacks, 0)
        for what, counts in (
            ("client secrets", client_secrets_by_key()),
            ("recovery code sets with unused codes", recovery_code_sets_by_key()),
        ):
            for kid, count in sorted(counts.items(), key=lambda item: item[0] or ""):
                if kid is None:
                    name, label = "-", "made before key ids were recorded: under the key of then"
                else:
                    name, label = kid, names.get(kid, "a key no longer configured: void")
                    if kid in held:
                        held[kid] += count
                self.stdout.write(f"{what}\t{name}\t{count}\t{label}")
        for kid in fallbacks:
            verdict = "still holds stored hashes" if held[kid] else "holds no stored hash"
            self.stdout.write(f"fallback {kid} {verdict}")
