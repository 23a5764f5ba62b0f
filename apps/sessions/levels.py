"""What a login session proves: its authentication methods (`amr`, RFC 8176) read as a level,
published as an Authentication Context Class Reference (`acr`, OIDC Core §2).

Three ordered levels, each satisfying every level below it, after NIST SP 800-63B's
authenticator assurance levels:

| level | acr                   | proves                                          | NIST 800-63B |
|-------|-----------------------|-------------------------------------------------|--------------|
| 1     | urn:tessera:acr:pwd   | one factor (a password, or a passkey without    | AAL1 (§4.1)  |
|       |                       | user verification)                              |              |
| 2     | urn:tessera:acr:mfa   | two factors of different kinds                  | AAL2 (§4.2)  |
| 3     | urn:tessera:acr:hwk   | two factors, one a hardware-bound key (a        | AAL3 (§4.3)  |
|       |                       | security key or device-bound passkey verified   |              |
|       |                       | with a PIN or biometric): phishing-resistant    |              |

The factors, by kind (NIST 800-63B §5.1; RFC 8176 §2 names the methods):
- knowledge: `pwd` (password), `pin` (a PIN or pattern, e.g. a WebAuthn user verification
  by PIN), `kba`;
- possession: `otp` (TOTP, recovery codes), `sms`, `tel`, `hwk` (proof of a hardware-
  secured key), `swk` (a software-secured key, e.g. a synced passkey), `sc`;
- inherence: `fpt`, `face`, `iris`, `retina`, `vbm` (biometrics).
`mfa` (RFC 8176: "multiple-factor authentication") counts as two kinds on its own: a method
that verified two factors at once and says so. `user` (user presence), `geo`, `rba`, `wia`
and `mca` prove no factor of their own; they are kept in `amr` but add no level.

The contract for apps/mfa: a WebAuthn assertion adds `hwk` (not backup-eligible: bound to
the device) or `swk` (backup-eligible: synced), then `user` for presence only, or the user
verification it performed (`pin`, `fpt`, `face`), or `mfa` when the authenticator verified
the person without saying how; a TOTP code or a recovery code adds `otp`.
"""

from __future__ import annotations

from dataclasses import dataclass

ACR_PASSWORD = "urn:tessera:acr:pwd"
ACR_MFA = "urn:tessera:acr:mfa"
ACR_HARDWARE_KEY = "urn:tessera:acr:hwk"

# Lowest level first: discovery's acr_values_supported (OIDC Discovery 1.0 §3) lists them so.
ACR_LEVELS: dict[str, int] = {ACR_PASSWORD: 1, ACR_MFA: 2, ACR_HARDWARE_KEY: 3}
ACR_VALUES_SUPPORTED: tuple[str, ...] = tuple(ACR_LEVELS)
LEVEL_ACR: dict[int, str] = {level: acr for acr, level in ACR_LEVELS.items()}
LEVEL_PASSWORD, LEVEL_MFA, LEVEL_HARDWARE_KEY = 1, 2, 3

KNOWLEDGE = frozenset({"pwd", "pin", "kba"})
POSSESSION = frozenset({"otp", "sms", "tel", "hwk", "swk", "sc"})
INHERENCE = frozenset({"fpt", "face", "iris", "retina", "vbm"})
FACTOR_KINDS = (KNOWLEDGE, POSSESSION, INHERENCE)
MULTIPLE_FACTORS = "mfa"
HARDWARE_KEY = "hwk"


@dataclass(frozen=True)
class Level:
    security_level: int
    acr: str


def level_of(amr: list[str]) -> Level:
    """The level an authentication by these methods reached (see the module's table).

    A session with no recognised factor (an upstream provider that sent no amr) is level 1:
    someone authenticated it, and nothing says with more than one factor.
    """
    methods = set(amr)
    kinds = sum(1 for kind in FACTOR_KINDS if methods & kind)
    if MULTIPLE_FACTORS in methods:
        kinds = max(kinds, 2)
    if kinds < 2:
        level = LEVEL_PASSWORD
    elif HARDWARE_KEY in methods:
        level = LEVEL_HARDWARE_KEY
    else:
        level = LEVEL_MFA
    return Level(level, LEVEL_ACR[level])


def acr_level(acr: str) -> int | None:
    """The level an acr value of ours names; None for a value we do not know."""
    return ACR_LEVELS.get(acr)


def amr_with(amr: list[str], added: list[str]) -> list[str]:
    """`amr` then the methods of `added` it lacks, in order (RFC 8176 §1: a set, sent as an
    array; kept in the order they were proven)."""
    return list(dict.fromkeys([*amr, *added]))
