"""Every OAuth error we answer says what went wrong (RFC 6749 §4.1.2.1, §5.2: the
error_description helps the client developer). oauthlib leaves most of its errors without a
description; where our code knows the precise cause it says it, and this table is the floor
for everything else, so no answer, redirect or JSON, goes out with an empty one.

A description holds only the characters those sections allow (%x20-21 / %x23-5B / %x5D-7E:
printable ASCII but the double quote and the backslash); anything else, a scope value as the
client sent it say, is replaced, so a description never reflects raw input and fits a
WWW-Authenticate header."""

from __future__ import annotations

import re

DESCRIPTIONS = {
    "invalid_request": "The request is missing a required parameter, repeats one, or has a "
    "malformed one.",
    "invalid_client": "Client authentication failed: check the client id and secret.",
    "invalid_grant": "The authorization code, refresh token or code_verifier is invalid, "
    "expired, revoked, or was issued to another client.",
    "unauthorized_client": "This client is not registered for this grant or response type.",
    "unsupported_grant_type": "grant_type must be authorization_code, refresh_token or "
    "client_credentials.",
    "unsupported_response_type": "Only response_type=code is supported.",
    "invalid_scope": "None of the scopes asked for is available to this client.",
    "access_denied": "The person or the server refused the request.",
    "unsupported_token_type": "This token type cannot be revoked here.",
    "invalid_target": "resource must be an absolute URI without a fragment.",
    "login_required": "The person must sign in.",
    "consent_required": "The person must approve this client.",
    "interaction_required": "The person must interact with the sign-in page.",
    "account_selection_required": "The person must choose an account.",
    "server_error": "The server could not complete the request; try again.",
    "temporarily_unavailable": "The server is temporarily unavailable; try again shortly.",
}


_NOT_ALLOWED = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")


def safe(description: str) -> str:
    """The description with every character RFC 6749 §5.2 does not allow replaced by ?."""
    return _NOT_ALLOWED.sub("?", description)


def describe(error: str, description: str | None) -> str:
    """The description to send with `error`: the one given, else the table's; always safe."""
    if description and description.strip():
        return safe(description)
    return DESCRIPTIONS.get(error, safe(f"The request failed: {error}."))
