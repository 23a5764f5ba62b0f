"""The threat rules Tessera ships (builtin=True): administrators may change or disable them
(apps.threat.services), not delete them. docs/threat.md, "Rules", has the table.

Written so that real people are not locked out: most rules alert or ask for a second factor,
which the person has and an attacker with only a password has not (OWASP Authentication
Cheat Sheet, "Risk-based authentication"); a rule that refuses the sign-in needs a success
on a new device from a new network right after an attack on the account, and only a score
of 85 or more blocks, for an hour. The failure thresholds sit above what the failed-attempt
lockout lets one person reach from their own address (5 per identifier and IP,
IDP_LOCKOUT_IP_THRESHOLD), so a person's own typing does not trip them.

Session activity (a public client's refresh, code exchange or userinfo call from another
network than the session's) is judged by the same rules, as a success (`activity` true):
impossible travel, a new country and network, and a listed network apply to it as to a
sign-in; the rules that speak of a sign-in say `not activity` (an app's calls are scripted by
nature, and a score made for sign-ins is not one to block on).

A rule of the same name an administrator made before this migration is left as it is.
Rules are data from here on: this file is not read again (a change to a default in a later
release is a new migration), and what it installs is not an administrator's change, so no
threat.rule_changed is recorded for it.
"""

from django.db import migrations

DEFAULT_RULES = [
    {
        "name": "credential_stuffing_source",
        "condition": "not success and accounts_ip_1h >= 10",
        "action": "alert",
        "severity": "high",
        "description": (
            "One IP address tried ten or more different accounts in the last hour and this "
            "attempt failed: a credential-stuffing list being worked through. Block the "
            "address at the edge or add it to a reputation list."
        ),
    },
    {
        "name": "stuffing_success",
        "condition": "success and accounts_ip_1h >= 5 and failures_ip_1h >= 10",
        "action": "require_mfa",
        "severity": "high",
        "description": (
            "A correct password from an address that tried five or more accounts and failed "
            "ten or more times this hour: a stuffing list found a reused password. The sign-in "
            "must pass a second factor; reset the person's password if it does not."
        ),
    },
    {
        "name": "password_spraying",
        "condition": "not success and spray_accounts_1h >= 5",
        "action": "alert",
        "severity": "high",
        "description": (
            "The same password was tried against five or more accounts in the last hour: "
            "password spraying (one common password, many people)."
        ),
    },
    {
        "name": "sprayed_password_success",
        "condition": "success and spray_accounts_1h >= 5",
        "action": "require_mfa",
        "severity": "high",
        "description": (
            "A password being sprayed against many accounts worked on this one. The sign-in "
            "must pass a second factor, and the person should change that password."
        ),
    },
    {
        "name": "brute_force",
        "condition": "not success and failures_user_1h >= 10",
        "action": "alert",
        "severity": "medium",
        "description": (
            "Ten or more failed attempts on one account in the last hour: someone is guessing "
            "this person's password (the lockout slows them; this tells you)."
        ),
    },
    {
        "name": "distributed_brute_force",
        "condition": "not success and ips_user_1h >= 5 and failures_user_1h >= 5",
        "action": "alert",
        "severity": "high",
        "description": (
            "Failed attempts on one account from five or more addresses in the last hour: a "
            "guessing attack spread over many addresses to stay under per-address limits."
        ),
    },
    {
        "name": "impossible_travel",
        "condition": (
            "success and impossible_travel and (activity or new_device or no_device_cookie)"
        ),
        "action": "require_mfa",
        "severity": "high",
        "description": (
            "Nobody could have travelled from the person's previous sign-in to here in the "
            "time between (faster than an airliner, beyond a tolerance for VPNs and city-level "
            "geolocation), on a device the person never used: the password may be in someone "
            "else's hands. Their own device on a VPN is let through; a session used from there "
            "(a stolen refresh token) is not."
        ),
    },
    {
        "name": "new_country_new_network",
        "condition": (
            "success and not activity and known_person and new_country and new_asn"
            " and (new_device or no_device_cookie)"
        ),
        "action": "require_mfa",
        "severity": "medium",
        "description": (
            "A person signs in from a country and a network operator never seen for them, on "
            "a device they never used. Travellers and VPN users on their own devices are not "
            "asked (measured: 2.46 % of ordinary sign-ins were, without the device clause)."
        ),
    },
    {
        "name": "listed_network",
        "condition": "success and ip_listed",
        "action": "require_mfa",
        "severity": "medium",
        "description": (
            "A sign-in from an address on one of the operator's reputation lists (Tor exits, "
            "hosting providers; docs/threat.md). It asks for a second factor rather than "
            "refusing: some people use those networks on purpose."
        ),
    },
    {
        "name": "scripted_success",
        "condition": (
            "success and not activity and headless_ua and no_device_cookie and known_person"
        ),
        "action": "alert",
        "severity": "medium",
        "description": (
            "A correct password from a script (a headless browser or an HTTP library, no "
            "device cookie) on an account that normally signs in from a browser."
        ),
    },
    {
        "name": "low_and_slow",
        "condition": (
            "not success and known_person and (no_device_cookie or new_device)"
            " and failures_user_7d >= 8 and failures_user_1h < 5"
        ),
        "action": "alert",
        "severity": "medium",
        "description": (
            "Eight or more failures on the account this week, never many in one hour, from "
            "devices it does not know: guessing kept slow to stay under the lockout."
        ),
    },
    {
        "name": "takeover_after_attack",
        "condition": (
            "success and not activity and known_person and failures_user_24h >= 10"
            " and new_device and new_asn"
        ),
        "action": "invalidate_sessions",
        "severity": "critical",
        "description": (
            "A correct password on a new device from a new network after ten or more failures "
            "on the account today: the attack has likely succeeded. This sign-in is refused and "
            "every session of the person ends; they sign in again from a device they use."
        ),
    },
    {
        "name": "high_score",
        "condition": (
            "success and not activity and score >= 85 and (new_device or no_device_cookie)"
        ),
        "action": "block",
        "severity": "critical",
        "block_minutes": 60,
        "description": (
            "The risk score is 85 or more on a device the person never used: many strong "
            "signals at once. The sign-in is refused and the person blocked for an hour (or "
            "until an operator unblocks them)."
        ),
    },
    {
        "name": "takeover_after_failures",
        "condition": (
            "success and not activity and known_person and new_device and new_asn"
            " and failures_user_1h >= 1"
        ),
        "action": "require_mfa",
        "severity": "high",
        "description": (
            "A correct password on a new device from a new network right after a failure on "
            "the account: a guessed or bought password being tried. A second factor settles "
            "it; the person on their own new phone passes it."
        ),
    },
]


def install_default_rules(apps, schema_editor):
    ThreatRule = apps.get_model("threat", "ThreatRule")
    taken = set(ThreatRule.objects.values_list("name", flat=True))
    ThreatRule.objects.bulk_create(
        ThreatRule(builtin=True, enabled=True, **rule)
        for rule in DEFAULT_RULES
        if rule["name"] not in taken
    )


def remove_default_rules(apps, schema_editor):
    ThreatRule = apps.get_model("threat", "ThreatRule")
    names = [rule["name"] for rule in DEFAULT_RULES]
    ThreatRule.objects.filter(builtin=True, name__in=names).delete()


class Migration(migrations.Migration):
    dependencies = [("threat", "0001_initial")]

    operations = [migrations.RunPython(install_default_rules, remove_default_rules)]
