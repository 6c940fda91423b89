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
