//! The hub's book of spawned agents: which run, their counters, the recent failures.

use super::handle::Spawned;
use crate::id::IdMap;
use crate::metrics::{Counter, RestartedAgent, SupervisionStats};
use crate::AgentId;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

/// Restart events kept for the dashboard, the newest.
const RECENT: usize = 64;

/// How a handler failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// It returned an error.
    Error,
    /// It panicked.
    Panic,
}

/// Spawned agents and their counters.
#[derive(Debug, Default)]
pub(crate) struct Book {
    live: Mutex<IdMap<AgentId, Arc<Spawned>>>,
    recent: Mutex<VecDeque<RestartedAgent>>,
    spawned: Counter,
    handler_errors: Counter,
    handler_panics: Counter,
    restarts: Counter,
    gave_up: Counter,
}

impl Book {
    /// A spawned agent starts.
    pub(crate) fn started(&self, spawned: &Arc<Spawned>) {
        self.live.lock().insert(spawned.id, spawned.clone());
        self.spawned.add(1);
    }

    /// The loop of `spawned` has ended.
    pub(crate) fn ended(&self, spawned: &Spawned) {
        self.live.lock().remove(&spawned.id);
    }

    /// Every agent running now.
    pub(crate) fn running(&self) -> Vec<Arc<Spawned>> {
        self.live.lock().values().cloned().collect()
    }

    /// A handler failure, with what the loop decided.
    pub(crate) fn failed(
        &self,
        spawned: &Spawned,
        failure: Failure,
        message: String,
        gave_up: bool,
    ) {
        match failure {
            Failure::Error => self.handler_errors.add(1),
            Failure::Panic => self.handler_panics.add(1),
        }
        if gave_up {
            self.gave_up.add(1);
        } else {
            self.restarts.add(1);
        }
        let mut recent = self.recent.lock();
        recent.retain(|r| r.id != spawned.id);
        if recent.len() >= RECENT {
            recent.pop_front();
        }
        recent.push_back(RestartedAgent {
            id: spawned.id,
            name: spawned.name.to_string(),
            restarts: spawned.restarts.load(Ordering::Acquire),
            last_failure: message,
            at: SystemTime::now(),
            gave_up,
        });
    }

    /// The figures for `MetricsSnapshot::supervision`.
    pub(crate) fn stats(&self) -> SupervisionStats {
        SupervisionStats {
            running: self.live.lock().len() as u64,
            spawned: self.spawned.get(),
            handler_errors: self.handler_errors.get(),
            handler_panics: self.handler_panics.get(),
            restarts: self.restarts.get(),
            gave_up: self.gave_up.get(),
            recent: self.recent.lock().iter().rev().cloned().collect(),
        }
    }
}
