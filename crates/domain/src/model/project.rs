use time::OffsetDateTime;
use uuid::Uuid;

use super::{Environment, ResourceName, UserId};

/// The example protected resource: something a caller owns in one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: Uuid,
    pub user_id: UserId,
    pub name: ResourceName,
    pub environment: Environment,
    pub created_at: OffsetDateTime,
}
