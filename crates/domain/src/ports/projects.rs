use async_trait::async_trait;

use crate::error::StoreError;
use crate::model::{Environment, Project, UserId};

/// Where the example resource is kept.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait ProjectRepository: Send + Sync {
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn insert_project(&self, project: Project) -> Result<Project, StoreError>;

    /// The user's projects in one environment, newest first.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn list_projects(&self, user: UserId, environment: Environment)
    -> Result<Vec<Project>, StoreError>;
}
