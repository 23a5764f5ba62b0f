// A relying party with DPoP (RFC 9449) on a real npm client library, driven by
// tests/dpop/test_node_clients.py over JSON lines, as rp.mjs is by tests/e2e/test_rp_node.py:
//
//   stdin  1  {"issuer", "client_id", "client_secret"?, "redirect_uri", "scope", "par"?}
//   stdout 1  {"authorization_url": "..."}
//   stdin  2  {"callback": "<redirect_uri>?code=...&state=...&iss=..."}
//   stdout 2  {"result": {...}}                      exit 0
//   or, at any step, {"error": {"name", "message", ...}}  exit 1
//
// Usage: node rp_dpop.mjs --lib openid-client|oauth4webapi
// Each library makes the proofs, answers the server's nonce demands (use_dpop_nonce) and binds
// the code: with "par" the proof goes with the pushed request (§10.1), otherwise the
// authorization URL carries dpop_jkt (§10). No client_secret: a public client. Every HTTP
// exchange is recorded (customFetch) so that the test sees the nonce rounds.

import { setDefaultResultOrder } from 'node:dns';
import { createInterface } from 'node:readline';

// as in rp.mjs: the suite's server listens on 127.0.0.1 and the issuer says localhost
setDefaultResultOrder('ipv4first');
const { webcrypto } = await import('node:crypto');
globalThis.crypto ??= webcrypto;
globalThis.CryptoKey ??= webcrypto.CryptoKey;

const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

function send(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

function finish(message, code) {
  process.stdout.write(`${JSON.stringify(message)}\n`, () => process.exit(code));
}

async function receive() {
  const { value, done } = await stdin.next();
  if (done) throw new Error('stdin closed before the expected JSON line');
  return JSON.parse(value);
}

function describe(err) {
  const out = { name: err?.name ?? typeof err, message: err?.message ?? String(err) };
  for (const key of ['code', 'error', 'error_description', 'status']) {
    if (err?.[key] !== undefined) out[key] = err[key];
  }
  if (err?.cause !== undefined) {
    try {
      out.cause = JSON.parse(JSON.stringify(err.cause));
    } catch {
      out.cause = String(err.cause);
    }
  }
  return out;
}

// Every request the library makes, with what the server answered: the path, the method,
// whether a DPoP proof went out, the status, the error (JSON body or WWW-Authenticate) and
// whether a DPoP-Nonce came back.
const exchanges = [];

async function recordingFetch(url, options) {
  const response = await fetch(url, options);
  const headers = new Headers(options?.headers);
  const entry = {
    method: options?.method ?? 'GET',
    path: new URL(url).pathname,
    dpop: headers.has('dpop'),
    status: response.status,
    dpop_nonce: response.headers.has('dpop-nonce'),
  };
  const challenge = response.headers.get('www-authenticate');
  if (challenge) entry.www_authenticate = challenge;
  if (response.status >= 400) {
    try {
      entry.error = (await response.clone().json()).error;
    } catch {
      entry.error = null;
    }
  }
  exchanges.push(entry);
  return response;
}

function tokenSummary(tokens) {
  return {
    token_type: tokens.token_type,
    access_token: tokens.access_token,
    has_refresh_token: typeof tokens.refresh_token === 'string',
  };
}

// openid-client 6: https://github.com/panva/openid-client#dpop (it retries a request once
// when the server answers use_dpop_nonce)
async function withOpenidClient(config) {
  const client = await import('openid-client');
  const auth = config.client_secret
    ? client.ClientSecretBasic(config.client_secret)
    : client.None();
  const server = await client.discovery(
    new URL(config.issuer), config.client_id, config.client_secret, auth,
    // the test server's issuer is http://localhost:PORT; production never sets this
    { execute: [client.allowInsecureRequests] },
  );
  server[client.customFetch] = recordingFetch;
  const DPoP = client.getDPoPHandle(server, await client.randomDPoPKeyPair('ES256'));
  const jkt = await DPoP.calculateThumbprint();

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
  };
  let url;
  if (config.par) {
    url = await client.buildAuthorizationUrlWithPAR(server, parameters, { DPoP });
  } else {
    url = client.buildAuthorizationUrl(server, { ...parameters, dpop_jkt: jkt });
  }
  send({ authorization_url: url.href });

  const { callback } = await receive();
  const tokens = await client.authorizationCodeGrant(
    server, new URL(callback),
    { pkceCodeVerifier: codeVerifier, expectedState: state, expectedNonce: nonce,
      idTokenExpected: true },
    undefined, { DPoP },
  );
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(server, tokens.access_token, claims.sub, { DPoP });
  const refreshed = await client.refreshTokenGrant(server, tokens.refresh_token, undefined, { DPoP });
  return { jkt, token: tokenSummary(tokens), id_token_claims: claims, userinfo,
           refreshed: tokenSummary(refreshed) };
}

// oauth4webapi 3: https://github.com/panva/oauth4webapi/blob/main/examples/dpop.ts (the
// caller retries once on isDPoPNonceError; the handle keeps the nonce it was sent)
async function withOauth4webapi(config) {
  const oauth = await import('oauth4webapi');
  const http = { [oauth.allowInsecureRequests]: true, [oauth.customFetch]: recordingFetch };
  const issuer = new URL(config.issuer);
  const as = await oauth
    .discoveryRequest(issuer, { ...http, algorithm: 'oidc' })
    .then((response) => oauth.processDiscoveryResponse(issuer, response));
  const client = { client_id: config.client_id };
  const clientAuth = config.client_secret
    ? oauth.ClientSecretBasic(config.client_secret)
    : oauth.None();
  const keyPair = await oauth.generateKeyPair('ES256');
  const DPoP = oauth.DPoP(client, keyPair);
  const jkt = await DPoP.calculateThumbprint();

  async function onceMoreForNonce(request) {
    try {
      return await request();
    } catch (err) {
      if (!oauth.isDPoPNonceError(err)) throw err;
      return request(); // the handle took the DPoP-Nonce of the refusal
    }
  }

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
  });
  const url = new URL(as.authorization_endpoint);
  if (config.par) {
    const pushed = await onceMoreForNonce(async () => oauth.processPushedAuthorizationResponse(
      as, client,
      await oauth.pushedAuthorizationRequest(as, client, clientAuth, parameters, { ...http, DPoP }),
    ));
    url.searchParams.set('client_id', client.client_id);
    url.searchParams.set('request_uri', pushed.request_uri);
  } else {
    parameters.set('dpop_jkt', jkt);
    url.search = parameters.toString();
  }
  send({ authorization_url: url.href });

  const { callback } = await receive();
  const params = oauth.validateAuthResponse(as, client, new URL(callback), state);
  const tokens = await onceMoreForNonce(async () => oauth.processAuthorizationCodeResponse(
    as, client,
    await oauth.authorizationCodeGrantRequest(
      as, client, clientAuth, params, config.redirect_uri, codeVerifier, { ...http, DPoP },
    ),
    { expectedNonce: nonce, requireIdToken: true },
  ));
  const claims = oauth.getValidatedIdTokenClaims(tokens);

  // A new handle on the same key knows no nonce yet: userinfo (a resource, RFC 9449 §9)
  // demands one, and the library answers it.
  const resourceDPoP = oauth.DPoP(client, keyPair);
  const userinfo = await onceMoreForNonce(async () => oauth.processUserInfoResponse(
    as, client, claims.sub,
    await oauth.userInfoRequest(as, client, tokens.access_token, { ...http, DPoP: resourceDPoP }),
  ));
  const refreshed = await onceMoreForNonce(async () => oauth.processRefreshTokenResponse(
    as, client,
    await oauth.refreshTokenGrantRequest(
      as, client, clientAuth, tokens.refresh_token, { ...http, DPoP },
    ),
  ));
  return { jkt, token: tokenSummary(tokens), id_token_claims: claims, userinfo,
           refreshed: tokenSummary(refreshed) };
}

const LIBRARIES = { 'openid-client': withOpenidClient, oauth4webapi: withOauth4webapi };

try {
  const lib = process.argv[process.argv.indexOf('--lib') + 1];
  if (!process.argv.includes('--lib') || !(lib in LIBRARIES)) {
    throw new TypeError(`usage: node rp_dpop.mjs --lib ${Object.keys(LIBRARIES).join('|')}`);
  }
  const result = await LIBRARIES[lib](await receive());
  finish({ result: { ...result, exchanges } }, 0);
} catch (err) {
  finish({ error: { ...describe(err), exchanges } }, 1);
}
