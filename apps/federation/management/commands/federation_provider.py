"""`manage.py federation_provider`: list, add, edit, enable, disable and delete upstream
identity providers through apps.federation.providers (the console's and the API's road).

The client secret (or private_key_jwt's PEM key) is read from a file or standard input,
never from an argument: arguments are visible to every user of the machine in `ps`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TextIO

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.federation.models import ClientAuthMethod, Provider, ProviderKind
from apps.federation.providers import (
    provider_create,
    provider_delete,
    provider_find,
    provider_linked_count,
    provider_list,
    provider_set_enabled,
    provider_settings,
    provider_update,
)


class _Parser(CommandParser):
    """One line and exit status 1 for a wrong argument, like every other error here."""

    def error(self, message: str) -> NoReturn:
        if self.called_from_command_line:
            self.exit(1, f"CommandError: {message}\n")
        raise CommandError(message)


class Command(BaseCommand):
    help = (
        "Manage upstream identity providers (generic OpenID Connect, GitHub, Google). The "
        "secret is read from --client-secret-file or --client-secret-stdin, never an argument."
    )
    stealth_options = ("stdin",)

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.__class__ = _Parser
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True, parser_class=_Parser)
        sub.add_parser("list", help="every provider with its linked people")
        add = sub.add_parser("add", help="a new provider")
        add.add_argument("--slug", required=True, help="in the callback URL: lower-case, digits, -")
        add.add_argument("--name", required=True, help='on the button: "Sign in with <name>"')
        add.add_argument("--kind", required=True, choices=ProviderKind.values)
        add.add_argument("--client-id", required=True)
        _fields(add, adding=True)
        edit = sub.add_parser("edit", help="change what is given; the rest stays")
        edit.add_argument("provider", help="the provider's slug or id")
        edit.add_argument("--slug")
        edit.add_argument("--name")
        edit.add_argument("--kind", choices=ProviderKind.values)
        edit.add_argument("--client-id")
        _fields(edit, adding=False)
        for name, what in (
            ("enable", "show its button and take its callbacks"),
            ("disable", "hide its button and refuse its callbacks; links stay"),
            ("delete", "remove a provider nobody is linked through"),
        ):
            sub.add_parser(name, help=what).add_argument(
                "provider", help="the provider's slug or id"
            )
        for subcommand in sub.choices.values():
            subcommand.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        action: Callable[[Command, dict[str, Any]], Any] = _ACTIONS[options["subcommand"]]
        try:
            answer = action(self, options)
        except ValidationError as error:
            raise CommandError(_one_line(error)) from None
        if options["json"]:
            self.stdout.write(json.dumps(answer, default=str))
        else:
            self.stdout.write(_text(answer))


def _fields(parser: argparse.ArgumentParser, *, adding: bool) -> None:
    parser.add_argument(
        "--issuer",
        help="the issuer URL (OIDC Discovery); Google and GitHub have theirs by default",
    )
    parser.add_argument("--client-auth-method", choices=ClientAuthMethod.values)
    secret = parser.add_mutually_exclusive_group(required=adding)
    secret.add_argument(
        "--client-secret-file",
        metavar="PATH",
        help="a file holding the client secret (private_key_jwt: the PEM private key)",
    )
    secret.add_argument(
        "--client-secret-stdin", action="store_true", help="read the secret from standard input"
    )
    parser.add_argument("--scopes", help='space-separated, e.g. "openid email profile"')
    parser.add_argument(
        "--extra-param",
        action="append",
        metavar="NAME=VALUE",
        help="added to the authorization request (repeat); edit: replaces them all",
    )
    parser.add_argument("--hosted-domain", action="append", help="Google: an accepted hd (repeat)")
    parser.add_argument(
        "--login-domain",
        action="append",
        help="a login_hint in this e-mail domain goes to this provider (repeat)",
    )
    parser.add_argument(
        "--mapping-rule",
        action="append",
        nargs=4,
        metavar=("CLAIM", "VALUE", "ORGANIZATION", "ROLE"),
        help="a membership from a claim: the role in the organization (slug) (repeat)",
    )
    for flag, what in (
        ("--use-userinfo", "read the userinfo endpoint too"),
        ("--enabled", "shown on the sign-in page"),
        ("--jit-provisioning", "create an account at a first sign-in with none"),
    ):
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=what)
    if not adding:
        for name in ("extra-params", "hosted-domains", "login-domains", "mapping-rules"):
            parser.add_argument(f"--clear-{name}", action="store_true", help=f"no {name} at all")


def _given(options: dict[str, Any]) -> dict[str, Any]:
    """The provider's fields the options give."""
    fields: dict[str, Any] = {}
    for name in (
        "slug",
        "name",
        "kind",
        "client_id",
        "issuer",
        "client_auth_method",
        "scopes",
        "use_userinfo",
        "enabled",
        "jit_provisioning",
    ):
        if options.get(name) is not None:
            fields[name] = options[name]
    if options.get("clear_extra_params"):
        fields["extra_params"] = {}
    if options.get("extra_param") is not None:
        params: dict[str, str] = {}
        for spelled in options["extra_param"]:
            name, equals, value = spelled.partition("=")
            if not equals or not name:
                raise CommandError(f"--extra-param {spelled!r}: write NAME=VALUE.")
            params[name] = value
        fields["extra_params"] = params
    for option, field in (("hosted_domain", "hosted_domains"), ("login_domain", "login_domains")):
        if options.get(f"clear_{field}"):
            fields[field] = []
        if options.get(option) is not None:
            fields[field] = list(options[option])
    if options.get("clear_mapping_rules"):
        fields["mapping_rules"] = []
    if options.get("mapping_rule") is not None:
        fields["mapping_rules"] = [
            dict(zip(("claim", "value", "organization", "role"), rule, strict=True))
            for rule in options["mapping_rule"]
        ]
    return fields


def _secret(command: Command, options: dict[str, Any]) -> str | None:
    path = options.get("client_secret_file")
    if path:
        try:
            with open(path, encoding="utf-8") as file:
                secret = file.read(64 * 1024)
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"--client-secret-file: cannot read {path}: {error}") from None
        return _one_newline_off(secret, "--client-secret-file", path)
    if options.get("client_secret_stdin"):
        stream: TextIO = options.get("stdin") or sys.stdin
        return _one_newline_off(stream.read(64 * 1024), "--client-secret-stdin", "standard input")
    return None


def _one_newline_off(secret: str, option: str, where: str) -> str:
    if secret.endswith("\n"):  # the one newline an editor or `echo` adds
        secret = secret[:-1].removesuffix("\r")
    if not secret:
        raise CommandError(f"{option}: no secret in {where}.")
    return secret


def _provider(options: dict[str, Any]) -> Provider:
    found = provider_find(options["provider"])
    if found is None:
        raise CommandError(f"No provider {options['provider']!r}; see `federation_provider list`.")
    return found


def _view(provider: Provider, *, status: str, linked: int | None = None) -> dict[str, Any]:
    return {
        "status": status,
        "id": str(provider.pk),
        **provider_settings(provider),
        "linked": provider_linked_count(provider) if linked is None else linked,
    }


def _list(command: Command, options: dict[str, Any]) -> list[dict[str, Any]]:
    return [_view(row.provider, status="listed", linked=row.linked) for row in provider_list()]


def _add(command: Command, options: dict[str, Any]) -> dict[str, Any]:
    fields = _given(options)
    secret = _secret(command, options) or ""
    provider = provider_create(actor_id=None, client_secret=secret, **fields)
    return _view(provider, status="created", linked=0)


def _edit(command: Command, options: dict[str, Any]) -> dict[str, Any]:
    provider = _provider(options)
    before = provider_settings(provider)
    fields = _given(options)
    secret = _secret(command, options)
    if secret is not None:
        fields["client_secret"] = secret
    provider_update(provider=provider, actor_id=None, **fields)
    changed = before != provider_settings(provider) or secret is not None
    return _view(provider, status="changed" if changed else "unchanged")


def _enabled(enabled: bool) -> Callable[[Command, dict[str, Any]], dict[str, Any]]:
    def run(command: Command, options: dict[str, Any]) -> dict[str, Any]:
        provider = _provider(options)
        was = provider.enabled
        provider_set_enabled(provider=provider, enabled=enabled, actor_id=None)
        status = "unchanged" if was == enabled else ("enabled" if enabled else "disabled")
        return _view(provider, status=status)

    return run


def _delete(command: Command, options: dict[str, Any]) -> dict[str, Any]:
    provider = _provider(options)
    pk, slug = provider.pk, provider.slug
    provider_delete(provider=provider, actor_id=None)
    return {"status": "deleted", "id": str(pk), "slug": slug}


_ACTIONS: dict[str, Callable[[Command, dict[str, Any]], Any]] = {
    "list": _list,
    "add": _add,
    "edit": _edit,
    "enable": _enabled(True),
    "disable": _enabled(False),
    "delete": _delete,
}


def _one_line(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "; ".join(
            f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items()
        )
    return " ".join(error.messages)


def _text(answer: Any) -> str:
    if isinstance(answer, list):
        if not answer:
            return "No providers."
        return "\n".join(
            f"{row['slug']:<20} {row['kind']:<7} {'enabled ' if row['enabled'] else 'disabled'} "
            f"{row['linked']:>6} linked  {row['issuer']}  ({row['name']})"
            for row in answer
        )
    if answer["status"] == "deleted":
        return f"deleted: {answer['slug']} ({answer['id']})"
    return (
        f"{answer['status']}: {answer['slug']} ({answer['id']}), {answer['kind']}, "
        f"{'enabled' if answer['enabled'] else 'disabled'}, {answer['linked']} linked"
    )
