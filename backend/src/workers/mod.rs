//! The elastic worker pool (placeholder until the worker-pool issue lands).

use crate::Result;
use serde::{Deserialize, Serialize};

/// Settings of the elastic worker pool.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct WorkerConfig {}

impl WorkerConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        Ok(())
    }
}

/// Worker pool figures (placeholder until the worker-pool issue lands).
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkerStats {}

/// Placeholder pool: runs units on tokio's blocking pool until the elastic pool lands.
#[derive(Debug)]
pub struct WorkerPool {}

impl WorkerPool {
    /// Starts the pool.
    pub fn start(config: &WorkerConfig) -> Result<WorkerPool> {
        config.validate()?;
        Ok(WorkerPool {})
    }

    /// Runs one unit.
    pub async fn submit<F, T>(&self, _priority: crate::Priority, work: F) -> Result<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| crate::Error::TaskPanicked(e.to_string()))
    }

    /// Runs units, results in order.
    pub async fn submit_batch<I, F, T>(&self, priority: crate::Priority, units: I) -> Result<Vec<T>>
    where
        I: IntoIterator<Item = F>,
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let mut out = Vec::new();
        for unit in units {
            out.push(self.submit(priority, unit).await?);
        }
        Ok(out)
    }

    /// Figures.
    pub fn stats(&self) -> WorkerStats {
        WorkerStats {}
    }

    /// Stops.
    pub async fn shutdown(&self) {}
}
