use std::sync::Arc;

use uuid::Uuid;

use crate::error::DomainError;
use crate::model::{Principal, Project, ResourceName};

use super::Ports;

/// The example resource: each caller sees only their own projects, in the
/// environment they authenticated in.
#[derive(Debug, Clone)]
pub struct ProjectService {
    ports: Arc<Ports>,
}

impl ProjectService {
    pub(super) fn new(ports: Arc<Ports>) -> Self {
        Self { ports }
    }

    /// # Errors
    /// `Unavailable`.
    pub async fn list(&self, caller: &Principal) -> Result<Vec<Project>, DomainError> {
        Ok(self.ports.projects.list_projects(caller.user.id, caller.environment).await?)
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
        Ok(self.ports.projects.insert_project(project).await?)
    }
}
