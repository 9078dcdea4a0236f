"""Verify a Portcullis access token the way a downstream Python service does:
with the public keys from the JWKS URL, never with a secret.

    pip install "pyjwt[crypto]"
    python3 verify_token.py https://auth.example.com <token> [audience] [issuer]

Prints the verified claims as JSON; exits 1 (with the reason) when the token is
refused. PyJWKClient fetches /.well-known/jwks.json, keeps it, and fetches it
again when a token names a kid it has not seen (a rotated key).
"""

import json
import sys

import jwt


def main() -> int:
    base, token = sys.argv[1].rstrip("/"), sys.argv[2]
    audience = sys.argv[3] if len(sys.argv) > 3 else "portcullis"
    issuer = sys.argv[4] if len(sys.argv) > 4 else "portcullis"
    jwks = jwt.PyJWKClient(f"{base}/.well-known/jwks.json", cache_keys=True)
    try:
        key = jwks.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key,
            # Pin the algorithms: never let the token's header choose.
            algorithms=["ES256", "EdDSA"],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            leeway=5,
        )
    except jwt.PyJWTError as error:
        print(f"refused: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(claims))
    return 0


if __name__ == "__main__":
    sys.exit(main())
