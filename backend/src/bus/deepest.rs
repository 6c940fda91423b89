//! The deepest mailboxes, kept as they grow instead of found by visiting every agent: a
//! snapshot costs the same with 100 agents or 1,000,000.
//!
//! A mailbox is offered when a send leaves it holding at least one full batch
//! (`max_messages`) and more than the shallowest one kept; the list holds [`KEPT`] entries
//! and a snapshot reads their depths now.

use super::mailbox::Mailbox;
use crate::AgentId;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

/// Mailboxes kept; a snapshot shows the 10 deepest.
const KEPT: usize = 16;

#[derive(Debug, Default)]
pub(crate) struct Deepest {
    kept: Mutex<Vec<(AgentId, Weak<Mailbox>)>>,
    /// Depth a mailbox needs to be offered: the shallowest kept once the list is full.
    floor: AtomicUsize,
}

impl Deepest {
    /// Offers a mailbox that now holds `depth` messages, when that may put it in the list.
    #[inline]
    pub(crate) fn offer(&self, id: AgentId, mailbox: &Arc<Mailbox>, depth: usize, min: usize) {
        if depth < min || depth <= self.floor.load(Ordering::Relaxed) || mailbox.is_watched() {
            return;
        }
        let mut kept = self.kept.lock();
        if kept.iter().any(|(k, _)| *k == id) {
            return;
        }
        kept.retain(|(_, m)| m.upgrade().is_some_and(|m| !m.is_gone()));
        if kept.len() >= KEPT {
            let shallowest = kept
                .iter()
                .enumerate()
                .map(|(i, (_, m))| (m.upgrade().map_or(0, |m| m.depth()), i))
                .min();
            match shallowest {
                Some((d, i)) if d < depth => {
                    if let Some(m) = kept.swap_remove(i).1.upgrade() {
                        m.set_watched(false);
                    }
                }
                _ => return,
            }
        }
        mailbox.set_watched(true);
        kept.push((id, Arc::downgrade(mailbox)));
        let floor = if kept.len() >= KEPT {
            kept.iter()
                .map(|(_, m)| m.upgrade().map_or(0, |m| m.depth()))
                .min()
                .unwrap_or(0)
        } else {
            0
        };
        self.floor.store(floor, Ordering::Relaxed);
    }

    /// The kept mailboxes that still hold messages, deepest first, at most `n`; the
    /// drained ones leave the list.
    pub(crate) fn top(&self, n: usize) -> Vec<(AgentId, usize)> {
        let mut kept = self.kept.lock();
        let mut out = Vec::with_capacity(kept.len());
        kept.retain(|(id, m)| match m.upgrade() {
            Some(m) if !m.is_gone() && m.depth() > 0 => {
                out.push((*id, m.depth()));
                true
            }
            Some(m) => {
                m.set_watched(false);
                false
            }
            None => false,
        });
        if kept.len() < KEPT {
            self.floor.store(0, Ordering::Relaxed);
        }
        out.sort_unstable_by_key(|&(_, d)| std::cmp::Reverse(d));
        out.truncate(n);
        out
    }
}
