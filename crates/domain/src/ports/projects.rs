use async_trait::async_trait;

use crate::error::StoreError;
use crate::model::Project;

/// Where the example resource is kept.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait ProjectRepository: Send + Sync {
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn insert_project(&self, project: Project) -> Result<Project, StoreError>;
}
