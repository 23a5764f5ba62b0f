"""Creates what the OIDC benchmark requests need, in the server's database, and prints it as
one JSON object: `python -m benchmarks.fixtures` with the server's environment.

- a confidential client registered for client_credentials (token and introspection calls);
- a confidential authorization-code client, a user and a login session for that user;
- one user access token per algorithm (ES256, RS256) for that client, user and session, built
  by the code the token endpoint runs (claims.access_token_claims + claims.sign, the body of
  oauth_validator.generate_access_token). A client_credentials token has no user, so userinfo
  answers it 403; minting the user token here, rather than driving the browser login, consent
  and code exchange, gives userinfo and introspection the same token the token endpoint would
  have issued after a login. Neither endpoint reads the AccessToken row the token endpoint
  also stores (validation is the JWT plus the Redis revocation list), so none is written.
- with BENCH_REFRESH_TOKENS=N and BENCH_REFRESH_TOKENS_FILE=path: N refresh tokens of the web
  app, one per line in that file, each from its own real code flow (a person signed in through
  Django's test client, authorize with PKCE, the code exchanged at the token endpoint: the
  steps of tests/tokens/conftest.py's Flow). Refresh tokens rotate (RFC 9700 §4.14.2), so the
  refresh benchmark spends each exactly once; a replayed one would be refused and revoke its
  family. Each token has its own person and login session (see mint_refresh_tokens).
- with BENCH_SIGNIN_USERS=N (benchmarks/signin.py): a first-party authorization-code client
  (registered with skip_consent, as `createclient --skip-consent` does: authorize answers with
  the code without a consent page) and N people `signin-<i>@example.com`, all with the
  password BENCH_SIGNIN_PASSWORD hashed once with the project's PASSWORD_HASHERS (each row
  the same argon2id hash: verifying it costs what verifying any of theirs would), plus that
  hash, for the benchmark's argon2id reference.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import django


def main() -> None:
    django.setup()
    from django.conf import settings

    from apps.accounts.services import user_create
    from apps.sessions.services import SessionRefused, session_start
    from apps.tokens.claims import ACCESS_TOKEN_TYPE, access_token_claims, sign
    from apps.tokens.models import Client
    from apps.tokens.services import client_create

    service, service_secret = client_create(
        name="benchmark service", redirect_uris=[], grant_types=["client_credentials"]
    )
    from tests.rp import REDIRECT_URI

    webapp, webapp_secret = client_create(
        name="benchmark web app",
        redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code", "refresh_token"],
        # As benchmarks/node_reference/server.js registers its client: ID tokens (issued on
        # every refresh with openid) signed ES256, not the OIDC default RS256 (~1 ms a token).
        id_token_alg=Client.SigningAlg.ES256,
    )
    user = user_create(email="benchmark@example.com", name="Benchmark User")
    session = session_start(user=user, amr=["pwd"])
    assert not isinstance(session, SessionRefused), session.message
    user_tokens = {}
    for alg in ("ES256", "RS256"):
        claims = access_token_claims(
            client_id=webapp.client_id,
            user=user,
            scopes=["openid", "profile", "email"],
            session=session,
            audience=[settings.ACCESS_TOKEN_AUDIENCE],
            refreshed=False,
        )
        user_tokens[alg] = sign(claims, alg=alg, typ=ACCESS_TOKEN_TYPE)
    refresh_count = int(os.environ.get("BENCH_REFRESH_TOKENS", "0"))
    if refresh_count:
        tokens = mint_refresh_tokens(webapp.client_id, webapp_secret, refresh_count)
        Path(os.environ["BENCH_REFRESH_TOKENS_FILE"]).write_text("\n".join(tokens) + "\n")
    signin = make_signin_fixtures(int(os.environ.get("BENCH_SIGNIN_USERS", "0")))
    json.dump(
        {
            **signin,
            "service_client_id": service.client_id,
            "service_client_secret": service_secret,
            "webapp_client_id": webapp.client_id,
            "webapp_client_secret": webapp_secret,
            "user_tokens": user_tokens,
        },
        sys.stdout,
    )


def make_signin_fixtures(count: int) -> dict[str, str]:
    if not count:
        return {}
    from django.contrib.auth.hashers import make_password

    from apps.accounts.models import User
    from apps.tokens.services import client_create
    from tests.rp import REDIRECT_URI

    first_party, _ = client_create(
        name="benchmark first party",
        redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code", "refresh_token"],
        skip_consent=True,
    )
    encoded = make_password(os.environ["BENCH_SIGNIN_PASSWORD"])
    User.objects.bulk_create(
        [User(email=f"signin-{i}@example.com", password=encoded) for i in range(count)],
        batch_size=1000,
    )
    return {"signin_client_id": first_party.client_id, "signin_password_hash": encoded}


def mint_refresh_tokens(client_id: str, secret: str, count: int) -> list[str]:
    """One person, one login session and one code flow per token: refreshes of different
    people, as a server sees them. (Every family on one session made the 8 concurrent
    refreshes queue on that session's row: 13/s at p50 558 ms, a figure about lock
    contention, not about the grant.)"""
    from urllib.parse import urlsplit

    from django.conf import settings
    from django.test import Client as HttpClient

    from apps.accounts.services import user_create
    from apps.tokens.models import Client
    from apps.tokens.services import consent_grant
    from tests.rp import RegisteredClient
    from tests.signin.browser import force_sign_in
    from tests.tokens.conftest import SCOPE, Flow

    client = Client.objects.get(client_id=client_id)
    scopes = [*SCOPE.split(), "offline_access"]
    tokens = []
    for index in range(count):
        person = user_create(email=f"refresh-{index}@example.com", name=f"Refresh {index}")
        browser = HttpClient(HTTP_HOST=urlsplit(settings.ISSUER).netloc)
        force_sign_in(browser, person)
        consent_grant(user_id=person.pk, client=client, scopes=scopes)
        flow = Flow(browser, RegisteredClient(client_id, secret))
        tokens.append(flow.tokens(scope=" ".join(scopes))["refresh_token"])
    return tokens


if __name__ == "__main__":
    main()
