//! Message and task priority.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How urgent a message or a task is.
///
/// Ordered `Low < Normal < High < Critical`; `Normal` is the default.
/// On the bus a message at or above [`HubConfig::flush_priority`](crate::HubConfig::flush_priority)
/// flushes its batch at once, and a mailbox hands out higher priorities first.
/// On the worker pool priorities are strict, with an anti-starvation rule for `Low`.
///
/// ```
/// use swarmbus::Priority;
/// assert!(Priority::Critical > Priority::High);
/// assert_eq!(Priority::default(), Priority::Normal);
/// assert_eq!("high".parse::<Priority>().unwrap(), Priority::High);
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Background work; may wait behind everything else (but never forever).
    Low = 0,
    /// The default.
    #[default]
    Normal = 1,
    /// Ahead of normal traffic.
    High = 2,
    /// Skips the batch linger and goes first.
    Critical = 3,
}

impl Priority {
    /// Every priority, lowest first.
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Critical,
    ];

    /// The lowercase name, as used in metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }

    /// Index `0..4`, lowest first.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Priority {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "low" => Ok(Priority::Low),
            "normal" => Ok(Priority::Normal),
            "high" => Ok(Priority::High),
            "critical" => Ok(Priority::Critical),
            _ => Err(crate::Error::Config(format!("unknown priority `{s}`"))),
        }
    }
}
