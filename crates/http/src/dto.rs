//! Request and response bodies. Requests deliberately do not derive `Debug`:
//! they hold passwords.

use portcullis_domain::{
    AuthMethod, IssuedToken, MfaTokenSecret, Password, Registration, SessionView, SignIn, User,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::macros::format_description;
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /v1/auth/register`.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"email": "user@example.com", "password": "SecurePass123!", "full_name": "John Doe"}))]
pub(crate) struct RegisterRequest {
    /// Trimmed and lower-cased before use.
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub full_name: Option<String>,
}

impl From<RegisterRequest> for Registration {
    fn from(r: RegisterRequest) -> Self {
        Self { email: r.email, password: Password::new(r.password), full_name: r.full_name }
    }
}

/// `POST /v1/auth/login-json`, and the form of `POST /v1/auth/login`.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"username": "user@example.com", "password": "SecurePass123!"}))]
pub(crate) struct LoginRequest {
    /// The email.
    pub username: String,
    pub password: String,
}

/// `POST /v1/auth/change-password`.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"current_password": "OldPass123!", "new_password": "NewPass456!"}))]
pub(crate) struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// `POST /v1/test-auth/create-test-user` and `/test-login`.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"email": "test@example.com", "password": "TestPass123!"}))]
pub(crate) struct TestUserRequest {
    pub email: String,
    pub password: String,
}

/// A freshly issued access token.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenResponse {
    #[schema(example = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9...")]
    pub access_token: String,
    /// Always `bearer`.
    #[schema(example = "bearer")]
    pub token_type: &'static str,
    /// Seconds until the token expires.
    #[schema(example = 28800)]
    pub expires_in: i64,
    /// The session's new refresh token (`rt_...`), for `POST /v1/auth/refresh`
    /// with `{"refresh_token"}`: spent by its first use. Absent when the
    /// session's refresh token did not change (a password change).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "rt_2Yp0...")]
    pub refresh_token: Option<String>,
    /// Seconds until the session's absolute end, which no refresh extends.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 2592000)]
    pub refresh_expires_in: Option<i64>,
}

impl From<IssuedToken> for TokenResponse {
    fn from(token: IssuedToken) -> Self {
        let (refresh_token, refresh_expires_in) = match token.refresh {
            Some(refresh) => (Some(refresh.token.expose().to_owned()), Some(refresh.expires_in)),
            None => (None, None),
        };
        Self {
            access_token: token.access_token.as_str().to_owned(),
            token_type: "bearer",
            expires_in: token.expires_in,
            refresh_token,
            refresh_expires_in,
        }
    }
}

/// `200` of a sign-in of an account with a second factor: no session yet;
/// `POST /v1/auth/mfa/verify` with the token and a code starts it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MfaRequiredResponse {
    /// Always `true`.
    pub mfa_required: bool,
    #[schema(example = "mfa_3hJq...")]
    pub mfa_token: String,
    /// `totp` and `recovery_code`.
    pub methods: [&'static str; 2],
    /// Seconds the token works (300).
    #[schema(example = 300)]
    pub expires_in: i64,
}

/// What a sign-in answers: a token, or the second step it waits for.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum SignInResponse {
    Token(TokenResponse),
    Mfa(MfaRequiredResponse),
}

impl MfaRequiredResponse {
    pub(crate) fn new(mfa_token: &MfaTokenSecret, expires_in: i64) -> Self {
        Self {
            mfa_required: true,
            mfa_token: mfa_token.expose().to_owned(),
            methods: ["totp", "recovery_code"],
            expires_in,
        }
    }
}

impl From<SignIn> for SignInResponse {
    fn from(signed_in: SignIn) -> Self {
        match signed_in {
            SignIn::Session(token) => Self::Token(token.into()),
            SignIn::MfaRequired { mfa_token, expires_in } => {
                Self::Mfa(MfaRequiredResponse::new(&mfa_token, expires_in))
            }
        }
    }
}

/// `POST /v1/auth/mfa/verify`.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"mfa_token": "mfa_...", "code": "123456"}))]
pub(crate) struct MfaVerifyRequest {
    pub mfa_token: String,
    /// A current code of the authenticator app, or an unused recovery code.
    pub code: String,
}

/// `POST /v1/auth/mfa/totp/confirm` and `POST /v1/auth/mfa/recovery-codes`.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"code": "123456"}))]
pub(crate) struct MfaCodeRequest {
    pub code: String,
}

/// `DELETE /v1/auth/mfa/totp`.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"password": "SecurePass123!", "code": "123456"}))]
pub(crate) struct MfaDisableRequest {
    /// Required for an account that has a password.
    #[serde(default)]
    pub password: Option<String>,
    pub code: String,
}

/// `200` of `POST /v1/auth/mfa/totp/setup`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TotpSetupResponse {
    /// The secret in base32, to type into an authenticator app.
    #[schema(example = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")]
    pub secret: String,
    #[schema(
        example = "otpauth://totp/portcullis%3Auser%40example.com?secret=...&issuer=portcullis&algorithm=SHA1&digits=6&period=30"
    )]
    pub otpauth_uri: String,
    /// The `otpauth_uri` as a QR code, an SVG document.
    pub qr_svg: String,
}

/// Recovery codes, shown this once: each works once in place of a code.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RecoveryCodesResponse {
    #[schema(example = json!(["k3vq2-mzt7a", "..."]))]
    pub recovery_codes: Vec<String>,
}

/// `POST /v1/auth/refresh` by refresh token.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct RefreshRequest {
    /// The refresh token of the last TokenResponse.
    #[schema(example = "rt_2Yp0...")]
    pub refresh_token: String,
}

/// One of the caller's live sessions.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionResponse {
    pub id: Uuid,
    pub created_at: String,
    /// The last refresh, or the sign-in.
    pub last_used_at: String,
    /// The absolute end.
    pub expires_at: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// How the user signed in: `password`, or a provider's name (`github`, `google`...).
    #[schema(example = "password")]
    pub method: String,
    /// A second factor completed the sign-in.
    pub mfa: bool,
    /// The session of the token that asked.
    pub current: bool,
}

impl From<SessionView> for SessionResponse {
    fn from(view: SessionView) -> Self {
        let s = view.session;
        Self {
            id: s.id.as_uuid(),
            created_at: rfc3339(s.created_at),
            last_used_at: rfc3339(s.last_used_at),
            expires_at: rfc3339(s.expires_at),
            ip: s.ip,
            user_agent: s.user_agent,
            method: s.method.as_str().to_owned(),
            mfa: s.mfa,
            current: view.current,
        }
    }
}

/// `200` of `POST /v1/auth/logout-all`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LogoutAllResponse {
    #[schema(example = "Signed out of every session")]
    pub message: &'static str,
    pub sessions_ended: u64,
}

/// `200` of `DELETE /v1/admin/users/{id}/sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionsEndedResponse {
    pub sessions_ended: u64,
}

/// A user as clients see them. Never holds the password hash.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserResponse {
    pub id: Uuid,
    #[schema(example = "user@example.com")]
    pub email: String,
    #[schema(example = "John Doe")]
    pub full_name: Option<String>,
    /// `USER` or `ADMIN`.
    #[schema(example = "USER")]
    pub role: &'static str,
    pub is_active: bool,
    /// Whether the user proved they own the address: a verification link, a
    /// password reset, or a provider that verified it.
    pub email_verified: bool,
    /// Whether sign-ins need a second factor.
    pub mfa_enabled: bool,
    /// RFC 3339, UTC.
    #[schema(example = "2026-02-03T12:00:00Z")]
    pub created_at: String,
    /// How the user can sign in: `password`, then each linked provider by its configured name (`github`, `linkedin`, `google`, ...).
    #[schema(example = json!(["password"]))]
    pub providers: Vec<String>,
}

impl From<&User> for UserResponse {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.as_uuid(),
            email: user.email.as_str().to_owned(),
            full_name: user.full_name.as_ref().map(|n| n.as_str().to_owned()),
            role: user.role.as_str(),
            is_active: user.is_active,
            email_verified: user.email_verified,
            mfa_enabled: user.mfa_enabled,
            created_at: rfc3339(user.created_at),
            providers: user.providers().into_iter().map(|p| p.as_str().to_owned()).collect(),
        }
    }
}

/// RFC 3339 in UTC, to the second: `2026-02-03T12:00:00Z`. Written digit
/// by digit: it is in every user body (`/me`), and the `time` crate's
/// formatter costs as much as the rest of the body's serialisation.
pub(crate) fn rfc3339(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let Ok(year) = u16::try_from(at.year()) else { return rfc3339_by_description(at) };
    if year > 9999 {
        return rfc3339_by_description(at);
    }
    let fields = [
        (year, 4),
        (u16::from(u8::from(at.month())), 2),
        (u16::from(at.day()), 2),
        (u16::from(at.hour()), 2),
        (u16::from(at.minute()), 2),
        (u16::from(at.second()), 2),
    ];
    let mut out = String::with_capacity(20);
    for ((value, width), after) in fields.into_iter().zip(['-', '-', 'T', ':', ':', 'Z']) {
        for place in (0..width).rev() {
            let digit = value / 10u16.pow(place) % 10;
            out.push(char::from(b'0' + u8::try_from(digit).unwrap_or(0)));
        }
        out.push(after);
    }
    out
}

/// [`rfc3339`] by the `time` crate's formatter, for years outside 0-9999.
fn rfc3339_by_description(at: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    at.format(&format).unwrap_or_default()
}

/// `201` of `POST /v1/auth/register`: the user and a token; the user alone
/// while verified addresses are required (`AUTH_REQUIRE_VERIFIED_EMAIL`).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RegisterResponse {
    #[serde(flatten)]
    pub user: UserResponse,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenResponse>,
}

/// `POST /v1/auth/verify-email`.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"token": "pev_..."}))]
pub(crate) struct VerifyEmailRequest {
    /// The `token` parameter of the emailed link.
    pub token: String,
}

/// `200` of `POST /v1/auth/verify-email`: a message and the verified user.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct VerifiedEmailResponse {
    #[schema(example = "Email address verified")]
    pub message: &'static str,
    pub user: UserResponse,
}

/// A message for people.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MessageResponse {
    #[schema(example = "Successfully logged out")]
    pub message: &'static str,
}

/// `200` of `POST /v1/auth/change-password`: a message and the new token.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChangePasswordResponse {
    #[schema(example = "Password changed successfully")]
    pub message: &'static str,
    #[serde(flatten)]
    pub token: TokenResponse,
}

/// `GET /v1/test-auth/auth-status`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuthStatusResponse {
    pub authenticated: bool,
    /// `jwt`, `api_key`, or null.
    #[schema(value_type = Option<String>, example = "jwt")]
    pub method: Option<AuthMethod>,
    pub user: Option<UserResponse>,
    /// Why credentials that were sent were refused (the error code), else absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "token_expired")]
    pub reason: Option<&'static str>,
}

/// `GET /healthz` and `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StatusResponse {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// `POST /v1/api-keys`.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"name": "Production Server Key", "expires_in_days": 90, "environment": "live"}))]
pub(crate) struct CreateApiKeyRequest {
    /// 1 to 100 characters, trimmed.
    pub name: String,
    /// 1 to 365; default 90 (`AUTH_API_KEY_DEFAULT_DAYS`).
    #[serde(default)]
    pub expires_in_days: Option<i64>,
    /// `live` (default) or `test`.
    #[serde(default)]
    pub environment: Option<String>,
}

/// `201` of `POST /v1/api-keys`: the only response that ever holds the key.
#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedApiKeyResponse {
    #[schema(example = "key_550e8400-e29b-41d4-a716-446655440000")]
    pub id: String,
    /// Shown once: store it now.
    #[schema(example = "sk_live_4Fq...")]
    pub api_key: String,
    pub name: String,
    #[schema(example = "sk_live")]
    pub prefix: &'static str,
    #[schema(example = "live")]
    pub environment: &'static str,
    #[schema(example = "2026-05-03T12:00:00Z")]
    pub expires_at: String,
    #[schema(example = "2026-02-03T12:00:00Z")]
    pub created_at: String,
}

/// An API key in a listing: never its secret or digest.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ApiKeyResponse {
    #[schema(example = "key_550e8400-e29b-41d4-a716-446655440000")]
    pub id: String,
    pub name: String,
    #[schema(example = "sk_live")]
    pub prefix: &'static str,
    #[schema(example = "live")]
    pub environment: &'static str,
    /// False once revoked or expired.
    pub is_active: bool,
    pub last_used_at: Option<String>,
    /// Requests authenticated with the key (may lag a few seconds).
    pub usage_count: i64,
    pub expires_at: String,
    pub created_at: String,
}

impl From<portcullis_domain::ListedKey> for ApiKeyResponse {
    fn from(listed: portcullis_domain::ListedKey) -> Self {
        let key = listed.key;
        Self {
            id: key.id.to_string(),
            name: key.name.as_str().to_owned(),
            prefix: key_prefix(key.environment),
            environment: key.environment.as_str(),
            is_active: listed.is_active,
            last_used_at: key.last_used_at.map(rfc3339),
            usage_count: key.usage_count,
            expires_at: rfc3339(key.expires_at),
            created_at: rfc3339(key.created_at),
        }
    }
}

/// `sk_live` / `sk_test`: the prefix without its trailing underscore.
pub(crate) fn key_prefix(environment: portcullis_domain::Environment) -> &'static str {
    environment.key_prefix().trim_end_matches('_')
}

/// `POST /v1/database/projects`.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"name": "My project"}))]
pub(crate) struct ProjectRequest {
    /// 1 to 100 characters, trimmed.
    pub name: String,
}

/// A project of the caller's, in the caller's environment.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProjectResponse {
    pub id: Uuid,
    pub name: String,
    #[schema(example = "live")]
    pub environment: &'static str,
    pub created_at: String,
}

impl From<portcullis_domain::Project> for ProjectResponse {
    fn from(p: portcullis_domain::Project) -> Self {
        Self {
            id: p.id,
            name: p.name.as_str().to_owned(),
            environment: p.environment.as_str(),
            created_at: rfc3339(p.created_at),
        }
    }
}

/// `GET /v1/admin/users`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UsersPage {
    pub items: Vec<UserResponse>,
    /// All users, not just this page.
    pub total: u64,
    /// When another page follows: its `after` (this page's last user). `null` on the last page.
    pub next_after: Option<Uuid>,
}

/// `?limit=&after=` (or `&offset=`) of `GET /v1/admin/users`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// 1 to 100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The users after this one (`next_after` of the previous page): as fast
    /// deep in the list as at its start. Not with `offset`.
    pub after: Option<Uuid>,
    /// Skips this many users (default 0). Kept for compatibility: the
    /// database walks every skipped user, so deep pages get slower; prefer `after`.
    pub offset: Option<u64>,
}

/// `PATCH /v1/admin/users/{id}`: the fields to change.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"is_active": false}))]
pub(crate) struct UpdateUserRequest {
    #[serde(default)]
    pub is_active: Option<bool>,
    /// `USER` or `ADMIN`.
    #[serde(default)]
    pub role: Option<String>,
}

/// `POST /v1/auth/forgot-password`.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"email": "user@example.com"}))]
pub(crate) struct ForgotPasswordRequest {
    pub email: String,
}

/// `POST /v1/auth/reset-password`.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"token": "prt_...", "new_password": "NewSecurePass456!"}))]
pub(crate) struct ResetPasswordRequest {
    /// The `token` parameter of the emailed link.
    pub token: String,
    pub new_password: String,
}

/// `?redirect_uri=` of `GET /v1/auth/{provider}/authorize`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuthorizeQuery {
    /// Where the provider sends the user back; the same value goes to the callback.
    pub redirect_uri: Option<String>,
}

/// `200` of `GET /v1/auth/{provider}/authorize`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuthorizeResponse {
    /// Send the user's browser here.
    pub authorization_url: String,
    /// Signed by us, valid 10 minutes, bound to the provider and `redirect_uri`, accepted once: pass it to the callback.
    pub state: String,
    /// The PKCE verifier (RFC 7636), random: keep it with `state` in the user's session and pass it to the callback.
    pub code_verifier: String,
}

/// `POST /v1/auth/{provider}/callback`.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"code": "github_authorization_code", "redirect_uri": "https://yourapp.com/callback", "state": "...", "code_verifier": "..."}))]
pub(crate) struct CallbackRequest {
    pub code: String,
    pub redirect_uri: String,
    /// The `state` from `/authorize` (required when `AUTH_OAUTH_REQUIRE_STATE=true`, the default in production).
    #[serde(default)]
    pub state: Option<String>,
    /// The `code_verifier` from `/authorize` (required when `AUTH_OAUTH_REQUIRE_STATE=true`).
    #[serde(default)]
    pub code_verifier: Option<String>,
}

/// The user of a GitHub login.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GithubUser {
    /// The Portcullis user id.
    pub id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
}

/// The user of a LinkedIn or OpenID Connect login.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProviderUser {
    /// The Portcullis user id.
    pub id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub picture: Option<String>,
}

/// `200` of `POST /v1/auth/github/callback`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GithubLoginResponse {
    #[serde(flatten)]
    pub token: TokenResponse,
    pub user: GithubUser,
}

/// What the GitHub callback answers: the seed's shape, or the second step
/// of a sign-in with MFA.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum GithubCallbackResponse {
    Session(GithubLoginResponse),
    Mfa(MfaRequiredResponse),
}

/// What the other callbacks answer: the seed's shape, or the second step
/// of a sign-in with MFA.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum ProviderCallbackResponse {
    Session(ProviderLoginResponse),
    Mfa(MfaRequiredResponse),
}

/// `200` of `POST /v1/auth/linkedin/callback` and `POST /v1/auth/{provider}/callback`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProviderLoginResponse {
    #[serde(flatten)]
    pub token: TokenResponse,
    pub user: ProviderUser,
}

/// One rule of the password policy.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PasswordRuleBody {
    /// The `code` a 422 uses when the rule fails.
    #[schema(example = "password_missing_digit")]
    pub code: &'static str,
    #[schema(example = "must contain a digit")]
    pub message: String,
}

/// `GET /v1/auth/password-policy`: the rules a new password must meet.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PasswordPolicyResponse {
    /// `composition` (the default) or `nist`.
    #[schema(example = "composition")]
    pub mode: &'static str,
    pub min_length: usize,
    pub max_length: usize,
    pub require_uppercase: bool,
    pub require_lowercase: bool,
    pub require_digit: bool,
    /// A character from `!@#$%^&*` or any other punctuation or symbol.
    pub require_special: bool,
    /// Passwords may not contain the email's local part when it has at least this many characters.
    pub email_local_part_min: Option<usize>,
    pub rules: Vec<PasswordRuleBody>,
}

impl From<&portcullis_domain::PasswordPolicy> for PasswordPolicyResponse {
    fn from(policy: &portcullis_domain::PasswordPolicy) -> Self {
        Self {
            mode: policy.rules.as_str(),
            min_length: policy.min_length,
            max_length: policy.max_length,
            require_uppercase: policy.require_uppercase,
            require_lowercase: policy.require_lowercase,
            require_digit: policy.require_digit,
            require_special: policy.require_special,
            email_local_part_min: policy.email_local_part_min,
            rules: policy
                .rules_in_force()
                .into_iter()
                .map(|rule| PasswordRuleBody { code: rule.code(), message: rule.message(policy) })
                .collect(),
        }
    }
}

/// One security event of the audit log.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193f0a4-5b6c-7d8e-9f00-112233445566",
    "at": "2026-11-28T10:15:02Z",
    "type": "login_failed",
    "user_id": "8b0c3c9e-2f5d-4f0e-9a41-6f1f2d3c4b5a",
    "detail": "bad_password",
    "ip": "203.0.113.7",
    "user_agent": "curl/8.5.0",
    "request_id": "5f2b8e0c-7d1a-4b3e-9c6f-0a1b2c3d4e5f"
}))]
pub(crate) struct AuditEventResponse {
    /// Time-ordered (UUIDv7): pass the last one as `before` for the next page.
    pub id: Uuid,
    /// RFC 3339, whole seconds.
    pub at: String,
    /// `register`, `login_succeeded`, `login_failed`, `account_locked`, `logout`,
    /// `token_refreshed`, `password_changed`, `password_reset_requested`,
    /// `password_reset`, `api_key_created`, `api_key_revoked`, `api_key_new_ip`,
    /// `oauth_login`, `oauth_linked`, `admin_user_updated`, `refresh_token_reused`,
    /// `sessions_ended`, `email_verification_requested`, `email_verified`,
    /// `account_claimed`, `mfa_enabled`, `mfa_disabled`, `recovery_code_used`,
    /// `recovery_codes_replaced`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub user_id: Option<Uuid>,
    /// A reason (`bad_password`, `locked`...), a key id or provider, or what an admin changed.
    pub detail: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl From<portcullis_domain::AuditEvent> for AuditEventResponse {
    fn from(e: portcullis_domain::AuditEvent) -> Self {
        Self {
            id: e.id,
            at: rfc3339(e.at),
            kind: e.kind.as_str(),
            user_id: e.user_id.map(|u| u.as_uuid()),
            detail: e.detail,
            ip: e.ip,
            user_agent: e.user_agent,
            request_id: e.request_id,
        }
    }
}

/// A page of audit events, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditEventsPage {
    pub items: Vec<AuditEventResponse>,
    /// The `before` that gives the next (older) page; null on the last page.
    pub next_before: Option<Uuid>,
}

impl AuditEventsPage {
    pub(crate) fn new(events: Vec<portcullis_domain::AuditEvent>, limit: u32) -> Self {
        let full = events.len() == usize::try_from(limit).unwrap_or(usize::MAX);
        let next_before = if full { events.last().map(|e| e.id) } else { None };
        Self { items: events.into_iter().map(AuditEventResponse::from).collect(), next_before }
    }
}

/// `?user_id=&type=&limit=&before=` of `GET /v1/admin/audit-events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQueryParams {
    /// Only this user's events.
    pub user_id: Option<Uuid>,
    /// Only events of this type (see `AuditEventResponse.type`).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    /// 1 to 200, default 50.
    pub limit: Option<u32>,
    /// Only events older than this event id (`next_before` of the previous page).
    pub before: Option<Uuid>,
}

/// `?limit=&before=` of `GET /v1/auth/me/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct OwnEventsParams {
    /// 1 to 200, default 50.
    pub limit: Option<u32>,
    /// Only events older than this event id.
    pub before: Option<Uuid>,
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;
    use time::macros::datetime;

    use super::{rfc3339, rfc3339_by_description};

    #[test]
    fn rfc3339_writes_what_the_time_crate_writes() {
        let fixed = [
            datetime!(2026-02-03 12:00:00 UTC),
            datetime!(0000-01-01 00:00:00 UTC),
            datetime!(9999-12-31 23:59:59.999 UTC),
            datetime!(2024-02-29 07:08:09 +05:30),
            datetime!(1970-01-01 00:00:00 -11:00),
        ];
        let spread = (0..2_000i64).map(|i| {
            OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(i * 123_456_789_017 % 253_000_000_000)
        });
        for at in fixed.into_iter().chain(spread) {
            let utc = at.to_offset(time::UtcOffset::UTC);
            assert_eq!(rfc3339(at), rfc3339_by_description(utc), "{at}");
        }
        assert_eq!(rfc3339(datetime!(2026-02-03 12:00:00 UTC)), "2026-02-03T12:00:00Z");
        assert_eq!(rfc3339(datetime!(2024-02-29 07:08:09 +05:30)), "2024-02-29T01:38:09Z");
    }

    #[test]
    fn a_year_outside_four_digits_is_left_to_the_time_crate() {
        let before = datetime!(-0001-06-01 00:00:00 UTC);
        assert_eq!(rfc3339(before), rfc3339_by_description(before));
    }
}
