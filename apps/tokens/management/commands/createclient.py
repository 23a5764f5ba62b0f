from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.tokens import mtls
from apps.tokens.models import Client
from apps.tokens.services import GRANT_TYPES, client_create


class Command(BaseCommand):
    help = "Register an OAuth 2.0 / OpenID Connect client and print its id and secret."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--redirect-uri", action="append", default=[], dest="redirect_uris")
        parser.add_argument(
            "--post-logout-redirect-uri", action="append", default=[], dest="post_logout_uris"
        )
        parser.add_argument("--grant", action="append", choices=GRANT_TYPES, dest="grants")
        parser.add_argument("--public", action="store_true", help="no secret; PKCE only")
        parser.add_argument("--skip-consent", action="store_true", help="first-party client")
        parser.add_argument(
            "--allow-no-pkce",
            action="store_true",
            help="confidential client whose library cannot do PKCE: its authorization "
            "requests must carry a nonce instead (RFC 9700 §2.1.1)",
        )
        parser.add_argument(
            "--require-mfa",
            action="store_true",
            help="every authorization needs the MFA level (urn:tessera:acr:mfa): a session "
            "signed in with one factor steps up first",
        )
        parser.add_argument(
            "--require-par",
            action="store_true",
            help="every authorization request must be pushed first to /oauth/par (RFC 9126 §6)",
        )
        parser.add_argument("--client-id")
        parser.add_argument("--client-secret")
        parser.add_argument(
            "--id-token-alg", choices=[a.value for a in Client.SigningAlg], default="RS256"
        )
        parser.add_argument(
            "--backchannel-logout-uri", default="", help="Back-Channel Logout 1.0 §2.2"
        )
        parser.add_argument(
            "--frontchannel-logout-uri", default="", help="Front-Channel Logout 1.0 §2"
        )
        # RFC 8705: mutual-TLS client authentication and certificate-bound tokens
        parser.add_argument(
            "--auth-method",
            choices=[m for m in Client.AuthMethod.values if m],
            default="",
            help="authenticate with a certificate instead of a secret (RFC 8705 §2): "
            "tls_client_auth needs one --tls-subject-dn or --tls-san-*, "
            "self_signed_tls_client_auth a --jwks-file with the certificate in x5c",
        )
        parser.add_argument(
            "--tls-subject-dn", default="", help="the certificate's subject DN (RFC 4514)"
        )
        for kind in ("dns", "uri", "ip", "email"):
            parser.add_argument(
                f"--tls-san-{kind}", default="", help=f"the certificate's subjectAltName {kind}"
            )
        parser.add_argument(
            "--jwks-file", type=Path, help="JWK Set (JSON) whose keys carry x5c certificates"
        )
        parser.add_argument(
            "--bound-tokens",
            action="store_true",
            help="every access token is bound to the client's certificate: a token request "
            "without one is refused (tls_client_certificate_bound_access_tokens, RFC 8705 §3)",
        )
        parser.add_argument(
            "--scope",
            action="append",
            dest="allowed_scopes",
            help="a scope the client may be granted, once per scope (OWASP ASVS 10.4.11); "
            "default: openid profile email with authorization_code, offline_access with "
            "refresh_token too, admin when first-party",
        )
        parser.add_argument(
            "--resource",
            action="append",
            default=[],
            dest="allowed_resources",
            help="an absolute URI the client may name as `resource` (RFC 8707), once per "
            "resource; default: none, the default audience only",
        )
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            jwks = None
            if options["jwks_file"] is not None:
                try:
                    text = options["jwks_file"].read_text()
                except (OSError, UnicodeDecodeError) as error:
                    raise CommandError(f"--jwks-file: {error}") from None
                jwks = mtls.jwks_parse(text)
            client, secret = client_create(
                name=options["name"],
                redirect_uris=options["redirect_uris"],
                post_logout_redirect_uris=options["post_logout_uris"],
                grant_types=options["grants"],
                public=options["public"],
                skip_consent=options["skip_consent"],
                client_id=options["client_id"],
                client_secret=options["client_secret"],
                id_token_alg=options["id_token_alg"],
                backchannel_logout_uri=options["backchannel_logout_uri"],
                frontchannel_logout_uri=options["frontchannel_logout_uri"],
                require_pkce=not options["allow_no_pkce"],
                require_mfa=options["require_mfa"],
                require_par=options["require_par"],
                token_endpoint_auth_method=options["auth_method"],
                tls_client_auth_subject_dn=options["tls_subject_dn"],
                tls_client_auth_san_dns=options["tls_san_dns"],
                tls_client_auth_san_uri=options["tls_san_uri"],
                tls_client_auth_san_ip=options["tls_san_ip"],
                tls_client_auth_san_email=options["tls_san_email"],
                jwks=jwks,
                tls_client_certificate_bound_access_tokens=options["bound_tokens"],
                allowed_scopes=options["allowed_scopes"],
                allowed_resources=options["allowed_resources"],
            )
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from None
        if options["json"]:
            self.stdout.write(json.dumps({"client_id": client.client_id, "client_secret": secret}))
        else:
            self.stdout.write(f"client_id:     {client.client_id}")
            if secret:
                self.stdout.write(f"client_secret: {secret}")
                self.stdout.write("Store the secret now: it is kept only as a hash.")
