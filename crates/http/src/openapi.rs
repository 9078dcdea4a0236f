use actix_web::web::ServiceConfig;
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::dto::{
    ApiKeyResponse, AuditEventResponse, AuditEventsPage, AuthStatusResponse, AuthorizeResponse,
    CallbackRequest, ChangePasswordRequest, ChangePasswordResponse, CreateApiKeyRequest,
    CreatedApiKeyResponse, ForgotPasswordRequest, GithubCallbackResponse, GithubLoginResponse, GithubUser,
    LoginRequest, LogoutAllResponse, MessageResponse, MfaCodeRequest, MfaDisableRequest, MfaRequiredResponse,
    MfaVerifyRequest, PasswordPolicyResponse, PasswordRuleBody, ProjectRequest, ProjectResponse,
    ProviderCallbackResponse, ProviderLoginResponse, ProviderUser, RecoveryCodesResponse, RefreshRequest,
    RegisterRequest, RegisterResponse, ResetPasswordRequest, SessionResponse, SessionsEndedResponse,
    SignInResponse, StatusResponse, TestUserRequest, TokenResponse, TotpSetupResponse, UpdateUserRequest,
    UserResponse, UsersPage, VerifiedEmailResponse, VerifyEmailRequest,
};
use crate::error::{ErrorBody, FieldErrorBody};
use crate::routes::discovery::{Jwk, JwksResponse, ProviderMetadata};
use crate::routes::introspect::{IntrospectRequest, IntrospectionResponse};
use crate::routes::{
    admin, api_keys, auth, discovery, introspect, mfa, oauth, ops, passwords, projects, sessions, test_auth,
    verification,
};

/// Every route, listed once: the OpenAPI document's `paths` and the app's
/// registrations ([`register`]) both come from this list, so a handler cannot
/// be served undocumented or documented unserved. `api` routes are always
/// served; `metrics` on the main port unless `/metrics` has a port of its
/// own; `test` outside production.
macro_rules! routes {
    (
        api: [$($am:ident::$ah:ident),* $(,)?],
        metrics: [$($mm:ident::$mh:ident),* $(,)?],
        test: [$($tm:ident::$th:ident),* $(,)?] $(,)?
    ) => {
        /// The OpenAPI document of every route.
        #[derive(Debug, OpenApi)]
        #[openapi(
            info(
                title = "Portcullis",
                description = "Authentication service: accounts, JWT sessions, API keys, password reset by email, GitHub, LinkedIn, Google and OpenID Connect login.",
            ),
            paths($($am::$ah,)* $($mm::$mh,)* $($tm::$th,)*),
            components(schemas(
                RegisterRequest, LoginRequest, ChangePasswordRequest, TestUserRequest, TokenResponse, UserResponse,
                RegisterResponse, MessageResponse, ChangePasswordResponse, AuthStatusResponse, StatusResponse,
                ErrorBody, FieldErrorBody, CreateApiKeyRequest, CreatedApiKeyResponse, ApiKeyResponse, ProjectRequest,
                ProjectResponse, UsersPage, AuditEventsPage, AuditEventResponse, UpdateUserRequest, ForgotPasswordRequest, ResetPasswordRequest,
                PasswordPolicyResponse, PasswordRuleBody, AuthorizeResponse, CallbackRequest, GithubLoginResponse, ProviderLoginResponse, GithubUser, ProviderUser,
                RefreshRequest, SessionResponse, LogoutAllResponse, SessionsEndedResponse, Jwk, JwksResponse, ProviderMetadata, IntrospectRequest, IntrospectionResponse,
                VerifyEmailRequest, VerifiedEmailResponse, MfaRequiredResponse, SignInResponse, GithubCallbackResponse, ProviderCallbackResponse,
                MfaVerifyRequest, MfaCodeRequest, MfaDisableRequest, TotpSetupResponse, RecoveryCodesResponse,
            )),
            modifiers(&SecuritySchemes, &CommonResponses),
            tags(
                (name = "accounts", description = "Registration and profile"),
                (name = "sessions", description = "Login, refresh, logout, and the caller's sessions"),
                (name = "mfa", description = "Two-factor sign-in: TOTP and recovery codes"),
                (name = "oauth", description = "Sign-in with GitHub, LinkedIn and OpenID Connect providers"),
                (name = "api-keys", description = "Long-lived keys for servers and jobs (JWT only)"),
                (name = "projects", description = "The example protected resource"),
                (name = "admin", description = "User administration (ADMIN JWT)"),
                (name = "test", description = "Only outside production"),
                (name = "operations", description = "Health, readiness, metrics, and the keys and metadata verifiers fetch"),
            )
        )]
        pub struct ApiDoc;

        /// Registers the routes of the list that are on.
        pub(crate) fn register(config: &mut ServiceConfig, metrics_on_main: bool, test_endpoints: bool) {
            $(config.service($am::$ah);)*
            if metrics_on_main {
                $(config.service($mm::$mh);)*
            }
            if test_endpoints {
                $(config.service($tm::$th);)*
            }
        }
    };
}

routes! {
    api: [
        auth::register, auth::login_json, auth::login_form, auth::me, auth::my_events, auth::refresh,
        auth::logout, auth::change_password, passwords::forgot, passwords::reset, passwords::policy,
        verification::verify, verification::resend, mfa::totp_setup, mfa::totp_confirm, mfa::totp_disable, mfa::replace_recovery_codes, mfa::mfa_verify,
        oauth::authorize, oauth::github_callback, oauth::linkedin_callback, oauth::provider_callback, api_keys::create, api_keys::list,
        api_keys::revoke, projects::list, projects::create, admin::list_users, admin::update_user,
        admin::audit_events, sessions::list, sessions::delete, sessions::logout_all,
        sessions::end_user_sessions, ops::healthz, ops::readyz, discovery::jwks, discovery::openid_configuration, introspect::introspect,
    ],
    metrics: [ops::metrics],
    test: [test_auth::auth_status, test_auth::create_test_user, test_auth::test_login],
}

impl ApiDoc {
    /// The document as served: without the test endpoints when they are off,
    /// and without `/metrics` when it has a port of its own.
    #[must_use]
    pub fn document(test_endpoints: bool, metrics_on_main: bool) -> Document {
        let mut doc = Self::openapi();
        if !test_endpoints {
            doc.paths.paths.retain(|path, _| !path.starts_with("/v1/test-auth/"));
        }
        if !metrics_on_main {
            doc.paths.paths.retain(|path, _| path != "/metrics");
        }
        doc
    }
}

#[derive(Debug)]
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer_jwt",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The answers any route may give, whatever its own documentation says: a body
/// that does not parse (400) or is too large (413), a rate limit (429), a
/// dependency that is down (503). Added here once rather than on every route.
#[derive(Debug)]
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut Document) {
        use utoipa::openapi::schema::Ref;
        use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};

        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                    )
                    .build(),
            )
        };
        let budget_headers = [
            ("X-RateLimit-Limit", "The budget's size (requests per window)"),
            ("X-RateLimit-Remaining", "Requests left in the budget"),
            ("X-RateLimit-Reset", "Seconds until the budget is whole again"),
        ];
        for (path, item) in &mut openapi.paths.paths {
            let operations =
                [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete];
            for operation in operations.into_iter().flatten() {
                let authenticated = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                let limited = crate::limits::declared_family(operation).is_some();
                let has_body = operation.request_body.is_some();
                let responses = &mut operation.responses.responses;
                if has_body {
                    responses.entry("400".to_owned()).or_insert_with(|| {
                        error("`malformed_body`: not JSON, data after the JSON value, or the wrong content type")
                    });
                    responses
                        .entry("413".to_owned())
                        .or_insert_with(|| error("`payload_too_large`: over 64 KiB"));
                    responses
                        .entry("422".to_owned())
                        .or_insert_with(|| error("`invalid_field`: a field is missing or of the wrong type"));
                }
                if authenticated || limited {
                    responses
                        .entry("429".to_owned())
                        .or_insert_with(|| error("`rate_limited`; see `Retry-After`"));
                    // The budget the request counted in (the principal's, or the client address's).
                    for (status, response) in responses.iter_mut() {
                        let RefOr::T(response) = response else { continue };
                        if !status.starts_with('2') {
                            continue;
                        }
                        for (name, description) in budget_headers {
                            let header = utoipa::openapi::HeaderBuilder::new()
                                .schema(Some(
                                    utoipa::openapi::ObjectBuilder::new()
                                        .schema_type(utoipa::openapi::Type::Integer),
                                ))
                                .description(Some(description))
                                .build();
                            response.headers.insert(name.to_owned(), RefOr::T(header));
                        }
                    }
                }
                if path != "/healthz" {
                    responses.entry("503".to_owned()).or_insert_with(|| {
                        error("`service_unavailable`: storage or another dependency is down")
                    });
                }
            }
        }
    }
}
