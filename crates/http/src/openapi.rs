use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::dto::{
    ApiKeyResponse, AuthStatusResponse, AuthorizeResponse, CallbackRequest, ChangePasswordRequest,
    ChangePasswordResponse, CreateApiKeyRequest, CreatedApiKeyResponse, ForgotPasswordRequest,
    GithubLoginResponse, GithubUser, LinkedinLoginResponse, LinkedinUser, LoginRequest, MessageResponse,
    PasswordPolicyResponse, PasswordRuleBody, ProjectRequest, ProjectResponse, RegisterRequest,
    RegisterResponse, ResetPasswordRequest, StatusResponse, TestUserRequest, TokenResponse,
    UpdateUserRequest, UserResponse, UsersPage,
};
use crate::error::{ErrorBody, FieldErrorBody};
use crate::routes::{admin, api_keys, auth, oauth, ops, passwords, projects, test_auth};

/// The OpenAPI document of every route.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Portcullis",
        description = "Authentication service: accounts, JWT sessions, API keys, password reset by email, GitHub and LinkedIn login.",
    ),
    paths(
        auth::register, auth::login_json, auth::login_form, auth::me, auth::refresh, auth::logout,
        auth::change_password, passwords::forgot, passwords::reset, passwords::policy, oauth::authorize, oauth::github_callback,
        oauth::linkedin_callback, api_keys::create, api_keys::list, api_keys::revoke, projects::list,
        projects::create, admin::list_users, admin::update_user, ops::healthz, ops::readyz,
        test_auth::auth_status, test_auth::create_test_user, test_auth::test_login,
    ),
    components(schemas(
        RegisterRequest, LoginRequest, ChangePasswordRequest, TestUserRequest, TokenResponse, UserResponse,
        RegisterResponse, MessageResponse, ChangePasswordResponse, AuthStatusResponse, StatusResponse,
        ErrorBody, FieldErrorBody, CreateApiKeyRequest, CreatedApiKeyResponse, ApiKeyResponse, ProjectRequest,
        ProjectResponse, UsersPage, UpdateUserRequest, ForgotPasswordRequest, ResetPasswordRequest,
        PasswordPolicyResponse, PasswordRuleBody, AuthorizeResponse, CallbackRequest, GithubLoginResponse, LinkedinLoginResponse, GithubUser, LinkedinUser,
    )),
    modifiers(&SecuritySchemes),
    tags(
        (name = "accounts", description = "Registration and profile"),
        (name = "sessions", description = "Login, refresh, logout"),
        (name = "oauth", description = "GitHub and LinkedIn login"),
        (name = "api-keys", description = "Long-lived keys for servers and jobs (JWT only)"),
        (name = "projects", description = "The example protected resource"),
        (name = "admin", description = "User administration (ADMIN JWT)"),
        (name = "test", description = "Only outside production"),
        (name = "operations", description = "Health and readiness"),
    )
)]
pub struct ApiDoc;

impl ApiDoc {
    /// The document as served: without the test endpoints when they are off.
    #[must_use]
    pub fn document(test_endpoints: bool) -> Document {
        let mut doc = Self::openapi();
        if !test_endpoints {
            doc.paths.paths.retain(|path, _| !path.starts_with("/v1/test-auth/"));
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
