// A relying party built on a real npm OpenID client library, driven by
// tests/e2e/test_rp_node.py over JSON lines:
//
//   stdin  1  {"issuer", "client_id", "client_secret", "redirect_uri", "scope", "par"?}
//   stdout 1  {"authorization_url": "..."}
//   stdin  2  {"callback": "<redirect_uri>?code=...&state=...&iss=..."}
//   stdout 2  {"result": {...}}                      exit 0
//   or, at any step, {"error": {"name", "message", ...}}  exit 1
//
// Usage: node rp.mjs --lib openid-client|oauth4webapi
// Each library is used the way its README shows; nothing here checks tokens by hand. With
// "par": true the parameters are pushed first (RFC 9126) and the authorization URL carries
// only client_id and request_uri.

import { setDefaultResultOrder } from 'node:dns';
import { createInterface } from 'node:readline';

// The suite's server listens on 127.0.0.1, and the issuer is http://localhost:PORT. Debian's
// /etc/hosts also names ::1 localhost, which Node 18 (no happy eyeballs by default) tries
// first and alone: ask for the IPv4 address first, as Python's clients do.
setDefaultResultOrder('ipv4first');

// Node 18 (Debian 12's nodejs) has WebCrypto only as node:crypto's webcrypto; both libraries
// (and jose) expect the globals of Node 20+. Set them before the libraries load.
const { webcrypto } = await import('node:crypto');
globalThis.crypto ??= webcrypto;
globalThis.CryptoKey ??= webcrypto.CryptoKey;

const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

function send(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

function finish(message, code) {
  // exit once the line is flushed; the open stdin would otherwise keep the process alive
  process.stdout.write(`${JSON.stringify(message)}\n`, () => process.exit(code));
}

async function receive() {
  const { value, done } = await stdin.next();
  if (done) throw new Error('stdin closed before the expected JSON line');
  return JSON.parse(value);
}

function plain(value, depth = 0) {
  if (value === null || typeof value !== 'object' || depth > 3) return value;
  if (value instanceof URLSearchParams) return Object.fromEntries(value);
  if (value instanceof Error) return describe(value, depth + 1);
  if (typeof Response !== 'undefined' && value instanceof Response) {
    return { status: value.status, url: value.url };
  }
  try {
    return JSON.parse(JSON.stringify(value));
  } catch {
    return String(value);
  }
}

function describe(err, depth = 0) {
  const out = { name: err?.name ?? typeof err, message: err?.message ?? String(err) };
  for (const key of ['code', 'error', 'error_description', 'status']) {
    if (err?.[key] !== undefined) out[key] = err[key];
  }
  if (err?.cause !== undefined) out.cause = plain(err.cause, depth);
  return out;
}

// The body of a response the library gave up on before reading it (a WWW-Authenticate
// challenge): the server's error and error_description are there.
async function unreadBody(err) {
  const response = err?.response;
  if (typeof Response === 'undefined' || !(response instanceof Response) || response.bodyUsed) {
    return undefined;
  }
  try {
    const text = await response.text();
    try {
      return JSON.parse(text);
    } catch {
      return text.slice(0, 2000);
    }
  } catch {
    return undefined;
  }
}

function tokenSummary(tokens) {
  return {
    token_type: tokens.token_type,
    scope: tokens.scope,
    expires_in: tokens.expires_in,
    has_refresh_token: typeof tokens.refresh_token === 'string',
    has_id_token: typeof tokens.id_token === 'string',
  };
}

// openid-client 6: https://github.com/panva/openid-client#authorization-code-flow
async function withOpenidClient(config) {
  const client = await import('openid-client');
  const server = await client.discovery(
    new URL(config.issuer),
    config.client_id,
    config.client_secret,
    client.ClientSecretBasic(config.client_secret),
    // The test server's issuer is http://localhost:PORT; openid-client refuses plain HTTP
    // unless told otherwise. Production relying parties never set this.
    { execute: [client.allowInsecureRequests] },
  );
  // Verify the ID token's JWS signature against the issuer's jwks_uri too: by default the
  // library relies on TLS to the token endpoint instead (OIDC Core §3.1.3.7 step 6).
  client.enableNonRepudiationChecks(server);

  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const parameters = {
    redirect_uri: config.redirect_uri,
    scope: config.scope,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    prompt: 'consent',
  };
  const url = config.par
    ? await client.buildAuthorizationUrlWithPAR(server, parameters)
    : client.buildAuthorizationUrl(server, parameters);
  send({ authorization_url: url.href });

  const { callback } = await receive();
  // Checks state and iss of the response (RFC 9207), then the ID token: signature, iss, aud,
  // exp, iat, nonce (OIDC Core §3.1.3.7).
  const tokens = await client.authorizationCodeGrant(server, new URL(callback), {
    pkceCodeVerifier: codeVerifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(server, tokens.access_token, claims.sub);
  const refreshed = await client.refreshTokenGrant(server, tokens.refresh_token);
  return {
    token: tokenSummary(tokens),
    id_token_claims: claims,
    userinfo,
    refreshed: {
      ...tokenSummary(refreshed),
      access_token_changed: refreshed.access_token !== tokens.access_token,
    },
  };
}

// oauth4webapi 3: https://github.com/panva/oauth4webapi/blob/main/examples/oidc.ts
async function withOauth4webapi(config) {
  const oauth = await import('oauth4webapi');
  // The test server's issuer is http://localhost:PORT; oauth4webapi refuses plain HTTP unless
  // each request is told otherwise. Production relying parties never set this.
  const http = { [oauth.allowInsecureRequests]: true };
  const issuer = new URL(config.issuer);
  const as = await oauth
    .discoveryRequest(issuer, { ...http, algorithm: 'oidc' })
    .then((response) => oauth.processDiscoveryResponse(issuer, response));
  const client = { client_id: config.client_id };
  const clientAuth = oauth.ClientSecretBasic(config.client_secret);

  const codeVerifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const nonce = oauth.generateRandomNonce();
  const parameters = new URLSearchParams({
    client_id: client.client_id,
    redirect_uri: config.redirect_uri,
    response_type: 'code',
    scope: config.scope,
    code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    prompt: 'consent',
  });
  const url = new URL(as.authorization_endpoint);
  if (config.par) {
    // RFC 9126 §2: push the parameters, then send the browser with the request_uri alone
    const pushed = await oauth.processPushedAuthorizationResponse(
      as, client,
      await oauth.pushedAuthorizationRequest(as, client, clientAuth, parameters, http),
    );
    url.searchParams.set('client_id', client.client_id);
    url.searchParams.set('request_uri', pushed.request_uri);
  } else {
    url.search = parameters.toString();
  }
  send({ authorization_url: url.href });

  const { callback } = await receive();
  // state, iss (RFC 9207) and error parameters of the authorization response
  const params = oauth.validateAuthResponse(as, client, new URL(callback), state);
  const response = await oauth.authorizationCodeGrantRequest(
    as, client, clientAuth, params, config.redirect_uri, codeVerifier, http,
  );
  // ID token claims: iss, aud, exp, iat, nonce (OIDC Core §3.1.3.7) ...
  const tokens = await oauth.processAuthorizationCodeResponse(as, client, response, {
    expectedNonce: nonce,
    requireIdToken: true,
  });
  // ... and its JWS signature against the issuer's jwks_uri (by default the library relies on
  // TLS to the token endpoint instead, OIDC Core §3.1.3.7 step 6).
  await oauth.validateApplicationLevelSignature(as, response, http);
  const claims = oauth.getValidatedIdTokenClaims(tokens);

  const userinfo = await oauth.processUserInfoResponse(
    as, client, claims.sub, await oauth.userInfoRequest(as, client, tokens.access_token, http),
  );
  const refreshed = await oauth.processRefreshTokenResponse(
    as, client,
    await oauth.refreshTokenGrantRequest(as, client, clientAuth, tokens.refresh_token, http),
  );
  return {
    token: tokenSummary(tokens),
    id_token_claims: claims,
    userinfo,
    refreshed: {
      ...tokenSummary(refreshed),
      access_token_changed: refreshed.access_token !== tokens.access_token,
    },
  };
}

const LIBRARIES = { 'openid-client': withOpenidClient, oauth4webapi: withOauth4webapi };

try {
  const lib = process.argv[process.argv.indexOf('--lib') + 1];
  if (!process.argv.includes('--lib') || !(lib in LIBRARIES)) {
    throw new TypeError(`usage: node rp.mjs --lib ${Object.keys(LIBRARIES).join('|')}`);
  }
  finish({ result: await LIBRARIES[lib](await receive()) }, 0);
} catch (err) {
  const error = describe(err);
  const body = await unreadBody(err);
  if (body !== undefined) error.body = body;
  finish({ error }, 1);
}
