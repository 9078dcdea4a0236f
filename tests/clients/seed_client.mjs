// The product page's JavaScript example, run against a live Portcullis with
// node's built-in fetch: register, login-json, then /me with the Bearer token,
// then refresh. Only the base URL differs: PORTCULLIS_URL.

import assert from 'node:assert/strict';

const BASE = process.env.PORTCULLIS_URL;
const EMAIL = process.env.PORTCULLIS_EMAIL ?? 'user@example.com';
const PASSWORD = 'SecurePass123!';

const registerResponse = await fetch(`${BASE}/v1/auth/register`, {
  method: 'POST',
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify({ email: EMAIL, password: PASSWORD, full_name: 'John Doe' }),
});
assert.equal(registerResponse.status, 201, await registerResponse.clone().text());

// Login and get token
const loginResponse = await fetch(`${BASE}/v1/auth/login-json`, {
  method: 'POST',
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify({ username: EMAIL, password: PASSWORD }),
});
assert.equal(loginResponse.status, 200);
const { access_token, token_type, expires_in } = await loginResponse.json();
assert.equal(token_type, 'bearer');
assert.equal(expires_in, 28800);

// Use token for authenticated requests
const userResponse = await fetch(`${BASE}/v1/auth/me`, {
  headers: { Authorization: `Bearer ${access_token}` },
});
assert.equal(userResponse.status, 200);
const userData = await userResponse.json();
assert.equal(userData.email, EMAIL);
assert.deepEqual(userData.providers, ['password']);

// Token refresh
const refreshResponse = await fetch(`${BASE}/v1/auth/refresh`, {
  method: 'POST',
  headers: { Authorization: `Bearer ${access_token}` },
});
assert.equal(refreshResponse.status, 200);
const refreshed = await refreshResponse.json();
assert.notEqual(refreshed.access_token, access_token);

const again = await fetch(`${BASE}/v1/auth/me`, {
  headers: { Authorization: `Bearer ${refreshed.access_token}` },
});
assert.equal(again.status, 200);

// Logout blacklists the token.
const logout = await fetch(`${BASE}/v1/auth/logout`, {
  method: 'POST',
  headers: { Authorization: `Bearer ${refreshed.access_token}` },
});
assert.deepEqual(await logout.json(), { message: 'Successfully logged out' });
const afterLogout = await fetch(`${BASE}/v1/auth/me`, {
  headers: { Authorization: `Bearer ${refreshed.access_token}` },
});
assert.equal(afterLogout.status, 401);
assert.equal((await afterLogout.json()).code, 'token_revoked');
assert.match(afterLogout.headers.get('www-authenticate'), /^Bearer/);

console.log('javascript client: ok');
