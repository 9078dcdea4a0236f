use crate::error::DomainError;
use crate::model::{Claims, IssuedToken, User};

use super::{AuthSettings, Ports};

/// Issues an access token for `user` under the current session version.
pub(super) fn issue(ports: &Ports, settings: &AuthSettings, user: &User) -> Result<IssuedToken, DomainError> {
    let claims = Claims::for_user(
        user,
        ports.secrets.token_id(),
        &settings.issuer,
        ports.clock.now(),
        settings.token_ttl_secs,
    );
    let access_token = ports.tokens.encode(&claims)?;
    Ok(IssuedToken { access_token, expires_in: settings.token_ttl_secs, claims })
}
