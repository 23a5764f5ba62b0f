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
"""

from __future__ import annotations

import json
import sys

import django


def main() -> None:
    django.setup()
    from django.conf import settings

    from apps.accounts.services import user_create
    from apps.sessions.services import session_start
    from apps.tokens.claims import ACCESS_TOKEN_TYPE, access_token_claims, sign
    from apps.tokens.services import client_create

    service, service_secret = client_create(
        name="benchmark service", redirect_uris=[], grant_types=["client_credentials"]
    )
    webapp, _ = client_create(
        name="benchmark web app",
        redirect_uris=["http://127.0.0.1:9/callback"],
        grant_types=["authorization_code", "refresh_token"],
    )
    user = user_create(email="benchmark@example.com", name="Benchmark User")
    session = session_start(user=user, amr=["pwd"])
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
    json.dump(
        {
            "service_client_id": service.client_id,
            "service_client_secret": service_secret,
            "user_tokens": user_tokens,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
