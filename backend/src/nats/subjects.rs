//! Subject names, all under `swarmbus.<swarm>.` so swarms sharing a server stay apart.

use crate::Result;

/// The subjects of one swarm.
#[derive(Debug, Clone)]
pub(crate) struct Subjects {
    prefix: String,
}

impl Subjects {
    pub(crate) fn new(swarm: &str) -> Self {
        Self {
            prefix: format!("swarmbus.{swarm}"),
        }
    }

    /// Frames addressed to one hub.
    pub(crate) fn node(&self, node: &str) -> String {
        format!("{}.node.{node}", self.prefix)
    }

    /// Dead letters of one hub, in durable mode (the dead-letter stream's subject).
    pub(crate) fn dead_letters(&self, node: &str) -> String {
        format!("{}.dlq.{node}", self.prefix)
    }

    /// Broadcast frames, heard by every hub.
    pub(crate) fn all(&self) -> String {
        format!("{}.all", self.prefix)
    }

    /// The directory's control messages.
    pub(crate) fn directory(&self) -> String {
        format!("{}.dir", self.prefix)
    }

    /// Every topic (one wildcard subscription per hub).
    pub(crate) fn topics(&self) -> String {
        format!("{}.topic.>", self.prefix)
    }

    /// One topic. Topic names follow the hub's one rule (`registry::validate_topic`), so
    /// every valid name maps to subject tokens.
    pub(crate) fn topic(&self, topic: &str) -> Result<String> {
        crate::bus::validate_topic(topic)?;
        Ok(format!("{}.topic.{topic}", self.prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_namespaced_and_topics_checked() {
        let s = Subjects::new("prod");
        assert_eq!(s.node("a"), "swarmbus.prod.node.a");
        assert_eq!(
            s.topic("plans.step").unwrap(),
            "swarmbus.prod.topic.plans.step"
        );
        assert!(s.topic("a..b").is_err());
        assert!(s.topic("a.*").is_err());
        assert!(s.topic(">").is_err());
        assert!(s.topic(".a").is_err());
        assert!(!Subjects::new("other").all().starts_with("swarmbus.prod"));
    }
}
