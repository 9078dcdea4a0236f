use std::sync::Arc;

use uuid::Uuid;

use crate::error::DomainError;
use crate::model::{Principal, Project, ResourceName};

use super::cache::AuthCache;
use super::{Ports, Shared};

/// The example resource: each caller sees only their own projects, in the
/// environment they authenticated in.
#[derive(Debug, Clone)]
pub struct ProjectService {
    ports: Arc<Ports>,
    cache: Arc<AuthCache>,
}

impl ProjectService {
    pub(super) fn new((ports, _, cache): Shared) -> Self {
        Self { ports, cache }
    }

    /// The caller's projects, newest first. Kept for the auth cache's TTL;
    /// a project created through this instance shows at once.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn list(&self, caller: &Principal) -> Result<Vec<Project>, DomainError> {
        let (owner, now) = ((caller.user.id, caller.environment), self.ports.clock.now());
        if let Some(cached) = self.cache.projects(owner, now) {
            return Ok(cached);
        }
        let list = self.ports.projects.list_projects(caller.user.id, caller.environment).await?;
        self.cache.keep_projects(owner, list.clone(), now);
        Ok(list)
    }

    /// # Errors
    /// 422 `invalid_field` for a bad name; `Unavailable`.
    pub async fn create(&self, caller: &Principal, name: &str) -> Result<Project, DomainError> {
        let name =
            ResourceName::parse(name).map_err(|e| DomainError::invalid_field("name", e.to_string()))?;
        let project = Project {
            id: Uuid::now_v7(),
            user_id: caller.user.id,
            name,
            environment: caller.environment,
            created_at: self.ports.clock.now(),
        };
        let project = self.ports.projects.insert_project(project).await?;
        self.cache.forget_projects((caller.user.id, caller.environment));
        Ok(project)
    }
}
