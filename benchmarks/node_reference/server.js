// node-oidc-provider 9, the reference benchmarks/reference_compare.py measures Tessera against.
//
//   PORT=3000 ISSUER=http://127.0.0.1:3000 CLIENT_SECRET=... REFRESH_TOKENS=20000 \
//   REFRESH_TOKENS_FILE=/tmp/rt.txt node server.js
//
// In-memory adapter (the library's own MemoryAdapter on its own LRU store, whose default bound
// of 1,000 entries is raised to 10 million so the seeded tokens are not evicted), ES256 JWT access tokens through
// resource indicators (RFC 8707; accessTokenFormat 'jwt'), one confidential client
// (client_secret_basic) allowed client_credentials, authorization_code and refresh_token,
// refresh tokens rotated on every use (rotateRefreshToken: true, as Tessera does; RFC 9700
// §4.14.2).
//
// Refresh tokens: each request of the refresh benchmark presents a fresh one (rotation would
// answer a replayed one invalid_grant and revoke its grant). At start-up this process seeds
// its adapter with REFRESH_TOKENS grants, each with one refresh token, through the library's
// own models (provider.Grant, provider.RefreshToken: what the authorization_code grant saves
// after a code exchange), and writes their values, one per line, to REFRESH_TOKENS_FILE. The
// benchmark then spends them on the real refresh_token grant (lib/actions/grants/
// refresh_token.js): lookup, client check, grant validation, rotation, a new JWT access token
// and ID token. "listening" is printed once the file is written.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';

import Provider from 'oidc-provider';
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import LRU from 'oidc-provider/lib/helpers/lru.js';

const port = Number(process.env.PORT || 3000);
const issuer = process.env.ISSUER || `http://127.0.0.1:${port}`;
const clientSecret = process.env.CLIENT_SECRET || 'benchmark-secret-0123456789abcdef';
const refreshTokens = Number(process.env.REFRESH_TOKENS || 0);
const resource = 'https://api.benchmark.example';

function signingKey(type, options, alg) {
  const jwk = generateKeyPairSync(type, options).privateKey.export({ format: 'jwk' });
  return { ...jwk, alg, use: 'sig', kid: `${alg.toLowerCase()}-${randomUUID()}` };
}

const store = new LRU({ maxSize: 10_000_000 });
const day = 24 * 60 * 60;

const provider = new Provider(issuer, {
  adapter: (model) => new MemoryAdapter(model, store),
  ttl: {
    AccessToken: 300,
    ClientCredentials: 300,
    IdToken: 3600,
    Grant: 14 * day,
    RefreshToken: 14 * day,
  },
  clients: [{
    client_id: 'benchmark-client',
    client_secret: clientSecret,
    grant_types: ['client_credentials', 'authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1:9/callback'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256',
  }],
  jwks: {
    keys: [
      signingKey('ec', { namedCurve: 'P-256' }, 'ES256'),
      signingKey('rsa', { modulusLength: 2048 }, 'RS256'),
    ],
  },
  findAccount: (ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  scopes: ['openid', 'offline_access', 'api'],
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'api',
        audience: resource,
        accessTokenTTL: 300,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
  rotateRefreshToken: true,
});
provider.proxy = false;

async function seedRefreshTokens(count) {
  const client = await provider.Client.find('benchmark-client');
  const values = [];
  const now = Math.floor(Date.now() / 1000);
  for (let i = 0; i < count; i += 1) {
    const accountId = `user-${i}`;
    const grant = new provider.Grant({ accountId, clientId: client.clientId });
    grant.addOIDCScope('openid offline_access');
    grant.addResourceScope(resource, 'api');
    const grantId = await grant.save();
    const token = new provider.RefreshToken({
      accountId,
      client,
      grantId,
      gty: 'authorization_code',
      scope: 'openid offline_access api',
      resource,
      authTime: now,
      iiat: now,
      sessionUid: randomUUID(),
      sid: randomUUID(),
      expiresWithSession: false,
    });
    values.push(await token.save());
  }
  return values;
}

const values = await seedRefreshTokens(refreshTokens);
if (process.env.REFRESH_TOKENS_FILE) {
  writeFileSync(process.env.REFRESH_TOKENS_FILE, values.length ? `${values.join('\n')}\n` : '');
}
provider.listen(port, '127.0.0.1', () => {
  console.log(`listening on ${port} refresh_tokens=${values.length}`);
});
