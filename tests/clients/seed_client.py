"""The product page's Python examples, run against a live Portcullis.

Same calls, headers and bodies as the seed: register (method 1), login-json
(method 2), GET /v1/auth/me with the Bearer token, and the AuthClient's
refresh. Only the base URL differs: PORTCULLIS_URL.
"""

import os
import sys
from datetime import datetime, timedelta

import requests

BASE = os.environ["PORTCULLIS_URL"]
EMAIL = os.environ.get("PORTCULLIS_EMAIL", "user@example.com")
PASSWORD = "SecurePass123!"


def check(condition, message):
    if not condition:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)


# Method 1: email/password registration.
register = requests.post(
    f"{BASE}/v1/auth/register",
    json={"email": EMAIL, "password": PASSWORD, "full_name": "John Doe"},
)
check(register.status_code == 201, f"register: {register.status_code} {register.text}")
registered = register.json()
for field in ("id", "email", "access_token", "token_type", "expires_in"):
    check(field in registered, f"register response has {field}")

# Method 2: email/password login, then the token on /me.
login_response = requests.post(
    f"{BASE}/v1/auth/login-json",
    json={"username": EMAIL, "password": PASSWORD},
)
check(login_response.status_code == 200, f"login-json: {login_response.text}")
token = login_response.json()["access_token"]
headers = {"Authorization": f"Bearer {token}"}
user_response = requests.get(f"{BASE}/v1/auth/me", headers=headers)
check(user_response.status_code == 200, f"/me: {user_response.text}")
check(user_response.json()["email"] == EMAIL, "/me returns the user")
check(user_response.json()["id"] == registered["id"], "/me is the registered user")


class AuthClient:
    """The seed's automatic-refresh client, with the base URL as a parameter."""

    def __init__(self, email, password):
        self.email = email
        self.password = password
        self.token = None
        self.token_expires_at = None
        self.login()

    def login(self):
        response = requests.post(
            f"{BASE}/v1/auth/login-json",
            json={"username": self.email, "password": self.password},
        )
        data = response.json()
        self.token = data["access_token"]
        self.token_expires_at = datetime.now() + timedelta(seconds=data["expires_in"])

    def get_token(self):
        if datetime.now() >= self.token_expires_at - timedelta(minutes=5):
            self.refresh_token()
        return self.token

    def refresh_token(self):
        response = requests.post(
            f"{BASE}/v1/auth/refresh",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        data = response.json()
        self.token = data["access_token"]
        self.token_expires_at = datetime.now() + timedelta(seconds=data["expires_in"])

    def make_request(self, url, **kwargs):
        headers = kwargs.get("headers", {})
        headers["Authorization"] = f"Bearer {self.get_token()}"
        kwargs["headers"] = headers
        return requests.get(url, **kwargs)


client = AuthClient(EMAIL, PASSWORD)
check(client.token_expires_at > datetime.now() + timedelta(hours=7), "expires_in is about 8 hours")
old_token = client.token
client.token_expires_at = datetime.now()  # as if the token were about to expire
response = client.make_request(f"{BASE}/v1/auth/me")
check(response.status_code == 200, f"request after refresh: {response.text}")
check(client.token != old_token, "the client holds a new token")
stale = requests.get(f"{BASE}/v1/auth/me", headers={"Authorization": f"Bearer {old_token}"})
check(stale.status_code == 401, "the refreshed-away token is refused")
check(stale.json()["code"] == "token_revoked", f"with token_revoked: {stale.text}")

# Troubleshooting section: a 401 means refresh or log in again.
bad = requests.get(f"{BASE}/v1/auth/me", headers={"Authorization": "Bearer not-a-token"})
check(bad.status_code == 401, "an invalid token gets 401")

print("python client: ok")
