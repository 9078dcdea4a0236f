// Verify a Portcullis access token the way a downstream Node.js service does:
// with the public keys from the JWKS URL, never with a secret.
//
//   npm install jose
//   node verify_token.mjs https://auth.example.com <token> [audience] [issuer]
//
// Prints the verified claims as JSON; exits 1 (with the reason) when the token
// is refused. createRemoteJWKSet fetches /.well-known/jwks.json, keeps it, and
// fetches it again when a token names a kid it has not seen (a rotated key).
import { createRemoteJWKSet, jwtVerify } from 'jose';

const [base, token, audience = 'portcullis', issuer = 'portcullis'] = process.argv.slice(2);
const jwks = createRemoteJWKSet(new URL('/.well-known/jwks.json', base));

try {
  const { payload } = await jwtVerify(token, jwks, {
    audience,
    issuer,
    // Pin the algorithms: never let the token's header choose.
    algorithms: ['ES256', 'EdDSA'],
    requiredClaims: ['exp', 'iat', 'sub'],
    clockTolerance: 5,
  });
  console.log(JSON.stringify(payload));
} catch (error) {
  console.error(`refused: ${error.code ?? error.name}: ${error.message}`);
  process.exit(1);
}
