"""The product page's API-key examples, run against a live Portcullis.

Creates a key with a JWT, calls GET /v1/database/projects with X-API-Key and
with a Bearer key, lists and revokes keys, and rotates a key the way the
page's rotate_api_key does: create a new key, switch to it, revoke the old
one, see the old one refused. Only the base URL differs: PORTCULLIS_URL.
"""

import os
import sys
from datetime import datetime

import requests

BASE = os.environ["PORTCULLIS_URL"]
EMAIL = os.environ.get("PORTCULLIS_EMAIL", "keys@example.com")
PASSWORD = "SecurePass123!"


def check(condition, message):
    if not condition:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)


registered = requests.post(f"{BASE}/v1/auth/register", json={"email": EMAIL, "password": PASSWORD})
check(registered.status_code == 201, f"register: {registered.text}")
jwt_token = requests.post(
    f"{BASE}/v1/auth/login-json", json={"username": EMAIL, "password": PASSWORD}
).json()["access_token"]

# Creating an API key.
created = requests.post(
    f"{BASE}/v1/api-keys",
    headers={"Authorization": f"Bearer {jwt_token}"},
    json={"name": "Production Server Key", "expires_in_days": 90},
)
check(created.status_code == 201, f"create key: {created.text}")
key = created.json()
for field in ("id", "api_key", "name", "prefix", "expires_at", "created_at"):
    check(field in key, f"create response has {field}")
check(key["id"].startswith("key_"), "key ids start with key_")
check(key["api_key"].startswith("sk_live_"), "live keys start with sk_live_")
check(key["prefix"] == "sk_live", "prefix is sk_live")
API_KEY = key["api_key"]

# Python example with API key.
headers = {"X-API-Key": API_KEY}
response = requests.get(f"{BASE}/v1/database/projects", headers=headers)
check(response.status_code == 200, f"projects with X-API-Key: {response.text}")
check(response.json() == [], "no projects yet")

# Option 2: Authorization header.
response = requests.get(f"{BASE}/v1/database/projects", headers={"Authorization": f"Bearer {API_KEY}"})
check(response.status_code == 200, f"projects with a Bearer key: {response.text}")

# List all your API keys.
listed = requests.get(f"{BASE}/v1/api-keys", headers={"Authorization": f"Bearer {jwt_token}"})
check(listed.status_code == 200, f"list: {listed.text}")
entries = listed.json()
check(len(entries) == 1 and entries[0]["id"] == key["id"], "the key is listed")
for field in ("id", "name", "prefix", "is_active", "last_used_at", "usage_count", "expires_at", "created_at"):
    check(field in entries[0], f"list entry has {field}")
check(API_KEY not in listed.text, "the secret is never listed")


def rotate_api_key(old_key_id: str, jwt: str):
    """Create a new key, switch to it, revoke the old one (as the page does)."""
    create_response = requests.post(
        f"{BASE}/v1/api-keys",
        headers={"Authorization": f"Bearer {jwt}"},
        json={"name": f"Rotated Key {datetime.now()}", "expires_in_days": 90},
    )
    new_key = create_response.json()["api_key"]
    # "Update your services with this new key": they use it from now on.
    in_use = requests.get(f"{BASE}/v1/database/projects", headers={"X-API-Key": new_key})
    check(in_use.status_code == 200, "the new key works before the old one is revoked")
    revoke_response = requests.delete(
        f"{BASE}/v1/api-keys/{old_key_id}",
        headers={"Authorization": f"Bearer {jwt}"},
    )
    check(revoke_response.status_code == 200, f"revoke: {revoke_response.text}")
    check(revoke_response.json() == {"message": "API key revoked successfully"}, "revoke message")
    return new_key


new_key = rotate_api_key(key["id"], jwt_token)
old = requests.get(f"{BASE}/v1/database/projects", headers={"X-API-Key": API_KEY})
check(old.status_code == 401, "the old key is refused after rotation")
check(old.json()["code"] == "api_key_revoked", f"with api_key_revoked: {old.text}")
new = requests.get(f"{BASE}/v1/database/projects", headers={"X-API-Key": new_key})
check(new.status_code == 200, "the new key works")

# Keys cannot manage keys.
forbidden = requests.get(f"{BASE}/v1/api-keys", headers={"X-API-Key": new_key})
check(forbidden.status_code == 403 and forbidden.json()["code"] == "jwt_required", "keys need a JWT to manage keys")

print("python api-key client: ok")
