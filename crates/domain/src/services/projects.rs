use std::sync::Arc;

use uuid::Uuid;

use crate::error::DomainError;
use crate::model::{Principal, Project, ResourceName};

use crate::ports::{Change, ChangeFeed, Clock, HotReads, ProjectRepository};

use super::{Ports, from_ports, opaque_debug};

/// The example resource: each caller sees only their own projects, in the
/// environment they authenticated in.
#[derive(Clone)]
pub struct ProjectService {
    projects: Arc<dyn ProjectRepository>,
    reads: Arc<dyn HotReads>,
    clock: Arc<dyn Clock>,
    changes: Arc<dyn ChangeFeed>,
}

opaque_debug!(ProjectService);

impl ProjectService {
    #[must_use]
    pub fn new(ports: &Ports) -> Self {
        from_ports!(ports => Self { projects, reads; clock, changes; })
    }

    /// # Errors
    /// `Unavailable`.
    pub async fn list(&self, caller: &Principal) -> Result<Vec<Project>, DomainError> {
        Ok(self.reads.list_projects(caller.user.id, caller.environment).await?)
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
            created_at: self.clock.now(),
        };
        let owner = (project.user_id, project.environment);
        let written = self.projects.insert_project(project).await;
        self.changes.changed(Change::Projects(owner.0, owner.1));
        Ok(written?)
    }
}
