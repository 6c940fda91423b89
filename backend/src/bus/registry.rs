//! Who is registered, and who subscribes to what.
//!
//! Agents live in a concurrent hash map built for read-mostly use (papaya): a send looks
//! its recipient up without taking a lock or writing a shared cache line, and registering
//! or removing an agent costs the same with 100 agents or 1,000,000 (the map grows in
//! small incremental steps, never by copying itself in one go). The copy-on-write shards
//! this replaced copied 1/512 of all agents on every registration.

use super::mailbox::Mailbox;
use crate::id::UuidBuildHasher;
use crate::pool::{BufferPool, Pooled};
use crate::{AgentId, Error, Result};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Longest topic name accepted.
pub(crate) const MAX_TOPIC_LEN: usize = 256;

/// One registered agent: its mailbox and its subscriptions.
#[derive(Debug)]
pub(crate) struct AgentSlot {
    pub(crate) id: AgentId,
    pub(crate) name: Arc<str>,
    pub(crate) mailbox: Arc<Mailbox>,
    pub(crate) topics: Mutex<Vec<Arc<str>>>,
    /// Groups it joined.
    pub(crate) groups: Mutex<Vec<Arc<str>>>,
    /// Capabilities it registered with.
    pub(crate) capabilities: Mutex<Vec<Arc<str>>>,
    /// Its round-robin turn among a group's members (its own: a shared one would be a
    /// word every sender writes).
    pub(crate) turn: std::sync::atomic::AtomicUsize,
}

/// A topic's shared name (when it has subscribers) and a pooled copy of their ids.
pub(crate) type Subscribers<'p> = (Option<Arc<str>>, Pooled<'p, Vec<AgentId>>);

type AgentMap = papaya::HashMap<AgentId, Arc<AgentSlot>, UuidBuildHasher>;

/// Agents by id, and topic subscribers.
#[derive(Debug)]
pub(crate) struct Registry {
    agents: AgentMap,
    topics: RwLock<HashMap<Arc<str>, Vec<AgentId>>>,
    /// Registered agents, kept here so counting them is one load (a broadcast counts its
    /// recipients, `/metrics` reports them).
    count: AtomicUsize,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            agents: papaya::HashMap::builder()
                .hasher(UuidBuildHasher::default())
                .resize_mode(papaya::ResizeMode::Incremental(1024))
                .build(),
            topics: RwLock::default(),
            count: AtomicUsize::new(0),
        }
    }
}

impl Registry {
    /// Inserts `slot` unless its id is registered; false when it is.
    pub(crate) fn insert_new(&self, slot: Arc<AgentSlot>) -> bool {
        let fresh = self.agents.pin().try_insert(slot.id, slot).is_ok();
        if fresh {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        fresh
    }

    /// Runs `f` on the agent's mailbox; `None` if no such agent.
    #[inline]
    pub(crate) fn with_mailbox<R>(
        &self,
        id: AgentId,
        f: impl FnOnce(&Arc<Mailbox>) -> R,
    ) -> Option<R> {
        self.agents.pin().get(&id).map(|slot| f(&slot.mailbox))
    }

    /// The name `id` registered with.
    pub(crate) fn name_of(&self, id: AgentId) -> Option<Arc<str>> {
        self.agents.pin().get(&id).map(|slot| slot.name.clone())
    }

    /// Whether `id` is registered here.
    pub(crate) fn contains(&self, id: AgentId) -> bool {
        self.agents.pin().contains_key(&id)
    }

    /// Runs `f` on every agent.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&AgentSlot)) {
        for (_, slot) in self.agents.pin().iter() {
            f(slot);
        }
    }

    /// Removes the agent and all its subscriptions.
    pub(crate) fn remove(&self, slot: &AgentSlot) {
        if self.agents.pin().remove(&slot.id).is_some() {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        let topics = std::mem::take(&mut *slot.topics.lock());
        if !topics.is_empty() {
            let mut map = self.topics.write();
            for topic in topics {
                remove_subscriber(&mut map, &topic, slot.id);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    pub(crate) fn slots(&self) -> Vec<Arc<AgentSlot>> {
        let mut all = Vec::with_capacity(self.len());
        all.extend(self.agents.pin().iter().map(|(_, slot)| slot.clone()));
        all
    }

    pub(crate) fn topic_count(&self) -> usize {
        self.topics.read().len()
    }

    /// Subscribes; a second subscription to the same topic is a no-op.
    pub(crate) fn subscribe(&self, slot: &AgentSlot, topic: &str) -> Result<()> {
        validate_topic(topic)?;
        let mut mine = slot.topics.lock();
        if mine.iter().any(|t| &**t == topic) {
            return Ok(());
        }
        let mut map = self.topics.write();
        let key = match map.get_key_value(topic) {
            Some((k, _)) => k.clone(),
            None => Arc::from(topic),
        };
        map.entry(key.clone()).or_default().push(slot.id);
        mine.push(key);
        Ok(())
    }

    /// Unsubscribes; returns whether the agent was subscribed.
    pub(crate) fn unsubscribe(&self, slot: &AgentSlot, topic: &str) -> bool {
        let mut mine = slot.topics.lock();
        let Some(pos) = mine.iter().position(|t| &**t == topic) else {
            return false;
        };
        let key = mine.swap_remove(pos);
        remove_subscriber(&mut self.topics.write(), &key, slot.id);
        true
    }

    /// The topic's shared name and its subscribers, copied into a pooled vector.
    pub(crate) fn subscribers<'p>(
        &self,
        topic: &str,
        pool: &'p BufferPool<Vec<AgentId>>,
    ) -> Result<Subscribers<'p>> {
        validate_topic(topic)?;
        let mut ids = pool.take();
        let map = self.topics.read();
        let key = map.get_key_value(topic).map(|(k, subs)| {
            ids.extend_from_slice(subs);
            k.clone()
        });
        Ok((key, ids))
    }
}

fn remove_subscriber(map: &mut HashMap<Arc<str>, Vec<AgentId>>, topic: &str, id: AgentId) {
    if let Some(subs) = map.get_mut(topic) {
        subs.retain(|s| *s != id);
        if subs.is_empty() {
            map.remove(topic);
        }
    }
}

/// The one rule for topic names, with or without NATS: 1 to 256 bytes of dot-separated
/// levels, each non-empty, without whitespace, control characters, `*` or `>` (NATS would
/// read those as wildcards, so a topic valid here is valid on every hub).
pub(crate) fn validate_topic(topic: &str) -> Result<()> {
    let bad_level = |level: &str| {
        level.is_empty()
            || level
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '*' || c == '>')
    };
    if topic.len() > MAX_TOPIC_LEN || topic.split('.').any(bad_level) {
        return Err(Error::InvalidTopic(topic.chars().take(64).collect()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate_topic;

    #[test]
    fn one_rule_for_topic_names() {
        for good in [
            "plans",
            "plans.step-1",
            "a.b.c",
            "ünïcode.topic",
            &"x".repeat(256),
        ] {
            assert!(validate_topic(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a..b",
            ".a",
            "a.",
            "a.*",
            ">",
            "a.>",
            "a b",
            "a\tb",
            "wild*card",
            &"x".repeat(257),
        ] {
            assert!(validate_topic(bad).is_err(), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod registry_tests {
    use super::*;

    fn slot(registry: &Registry, name: &str) -> Arc<AgentSlot> {
        let (mailbox, _) = Mailbox::standalone(16, crate::OverflowPolicy::Reject, 50);
        let slot = Arc::new(AgentSlot {
            id: AgentId::new_v4(),
            name: Arc::from(name),
            mailbox: Arc::new(mailbox),
            topics: Mutex::new(Vec::new()),
            groups: Mutex::new(Vec::new()),
            capabilities: Mutex::new(Vec::new()),
            turn: Default::default(),
        });
        assert!(registry.insert_new(slot.clone()));
        assert!(!registry.insert_new(slot.clone()), "an id registers once");
        slot
    }

    #[test]
    fn agents_come_and_go_and_are_counted() {
        let registry = Registry::default();
        let slots: Vec<_> = (0..1_000)
            .map(|i| slot(&registry, &format!("a{i}")))
            .collect();
        assert_eq!(registry.len(), 1_000);
        assert!(slots.iter().all(|s| registry.contains(s.id)));
        assert_eq!(registry.name_of(slots[7].id).as_deref(), Some("a7"));
        let mut seen = 0;
        registry.for_each(|_| seen += 1);
        assert_eq!(seen, 1_000);
        for s in &slots[..500] {
            registry.remove(s);
            registry.remove(s);
        }
        assert_eq!(registry.len(), 500);
        assert!(!registry.contains(slots[0].id));
        assert!(registry.with_mailbox(slots[999].id, |_| ()).is_some());
        assert_eq!(registry.slots().len(), 500);
    }

    #[test]
    fn leaving_removes_every_subscription() {
        let registry = Registry::default();
        let a = slot(&registry, "a");
        let b = slot(&registry, "b");
        registry.subscribe(&a, "plans").unwrap();
        registry.subscribe(&a, "plans").unwrap();
        registry.subscribe(&b, "plans").unwrap();
        registry.subscribe(&a, "other").unwrap();
        let pool = BufferPool::new(
            "uuids",
            crate::pool::PoolSizing {
                initial: 0,
                max: 1,
                item_capacity: 4,
            },
            true,
            Default::default(),
        );
        assert_eq!(registry.subscribers("plans", &pool).unwrap().1.len(), 2);
        registry.remove(&a);
        assert_eq!(registry.subscribers("plans", &pool).unwrap().1.len(), 1);
        assert_eq!(registry.topic_count(), 1, "`other` had only a");
        assert!(registry.subscribers("bad topic", &pool).is_err());
    }
}
