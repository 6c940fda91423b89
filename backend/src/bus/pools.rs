//! The buffer pools the bus draws from.

use crate::pool::{BufferPool, PoolConfig, PoolStats};
use crate::{AgentId, Envelope};
use std::sync::Arc;

/// The bus's pools: strings, bytes (compression scratch), recipient lists, batch buffers.
#[derive(Debug)]
pub(crate) struct Pools {
    pub(crate) strings: BufferPool<String>,
    pub(crate) bytes: BufferPool<Vec<u8>>,
    pub(crate) uuids: BufferPool<Vec<AgentId>>,
    pub(crate) batches: Arc<BufferPool<Vec<Envelope>>>,
}

impl Pools {
    pub(crate) fn new(config: &PoolConfig) -> Self {
        let p = |name, sizing| (name, sizing, config.enabled, config.idle_shrink_after);
        let (n, s, e, i) = p("strings", config.strings);
        let strings = BufferPool::new(n, s, e, i);
        let (n, s, e, i) = p("bytes", config.bytes);
        let bytes = BufferPool::new(n, s, e, i);
        let (n, s, e, i) = p("uuids", config.uuids);
        let uuids = BufferPool::new(n, s, e, i);
        let (n, s, e, i) = p("batches", config.batches);
        let batches = Arc::new(BufferPool::new(n, s, e, i));
        Self {
            strings,
            bytes,
            uuids,
            batches,
        }
    }

    pub(crate) fn stats(&self) -> Vec<PoolStats> {
        vec![
            self.strings.stats(),
            self.bytes.stats(),
            self.uuids.stats(),
            self.batches.stats(),
        ]
    }
}
