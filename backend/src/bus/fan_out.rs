//! One payload to many recipients: every agent (broadcast) or a topic's subscribers, and
//! one copy for every other hub through the transport's fan-out link.

use super::mailbox::{Mailbox, Refused};
use super::send::{Deadline, Wait};
use super::state::Bus;
use crate::envelope::Kind;
use crate::headers::Headers;
use crate::metrics::DropReason;
use crate::{AgentId, Error, Payload, Priority, Result};
use std::sync::Arc;

/// Who a fan-out reaches.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Audience<'a> {
    Everyone,
    Topic(&'a str),
}

impl Bus {
    /// Sends one payload to many recipients, sharing it. Returns how many accepted it;
    /// recipients whose mailbox stayed full are counted as dropped (`mailbox_full`), those
    /// the queued-bytes budget refused as `memory_budget`. Under `Block` the refused
    /// recipients share one deadline: the fan-out waits at most one timeout in all, however
    /// many of them are full.
    pub(crate) async fn fan_out(
        &self,
        from: AgentId,
        audience: Audience<'_>,
        priority: Priority,
        payload: Payload,
    ) -> Result<usize> {
        let topic_name = match audience {
            Audience::Everyone => None,
            Audience::Topic(name) => Some(name),
        };
        // Refuse what cannot reach the other hubs before any local delivery.
        let link = match self.transport() {
            Some(t) => match t.fan_out_link(topic_name, payload.wire_len()) {
                Ok(link) => Some((link, t.fan_out_recipient())),
                Err(e) => return self.metrics.fail(e),
            },
            None => None,
        };
        let subscribers = match topic_name {
            None => None,
            Some(name) => match self.registry.subscribers(name, &self.pools.uuids) {
                Ok(found) => Some(found),
                Err(e) => return self.metrics.fail(e),
            },
        };
        // How many envelopes share the payload, for their budget charge (an estimate: the
        // sender and agents that leave meanwhile are not recipients).
        let recipients = match &subscribers {
            None => self.registry.len().saturating_sub(1),
            Some((_, ids)) => ids.len(),
        };
        let mut accepted = 0;
        let mut refused = self.pools.uuids.take();
        let mut failure = None;
        // One set of headers (the topic) shared by every copy.
        let topic: Option<Arc<str>> = match (&subscribers, topic_name) {
            (Some((Some(topic), _)), _) => Some(topic.clone()),
            (_, Some(name)) => Some(Arc::from(name)),
            (_, None) => None,
        };
        let trace_parent = crate::trace::current();
        let headers: Option<Arc<Headers>> =
            (topic.is_some() || trace_parent.is_some()).then(|| {
                Arc::new(Headers {
                    topic,
                    trace_parent,
                    ..Headers::default()
                })
            });
        let mut each = |to: AgentId, mailbox: &Arc<Mailbox>| {
            if to == from || failure.is_some() {
                return;
            }
            let env = self.fan_out_copy(from, to, priority, &headers, &payload);
            match self.admit_to(mailbox, env, false, recipients) {
                Ok(()) => accepted += 1,
                Err(Refused::Full(_) | Refused::OverBudget(..)) => refused.push(to),
                // Left between the lookup and the lock: not a recipient any more.
                Err(Refused::Error(Error::UnknownAgent(_), _)) => {}
                Err(Refused::Error(e, _)) => failure = Some(e),
            }
        };
        match &subscribers {
            None => self.registry.for_each(|slot| each(slot.id, &slot.mailbox)),
            Some((_, ids)) => {
                for &to in ids.iter() {
                    self.registry.with_mailbox(to, |mailbox| each(to, mailbox));
                }
            }
        }
        drop(subscribers);
        if let Some(e) = failure {
            return self.metrics.fail(e);
        }
        if let Some((link, to)) = link {
            // One copy for every other hub, compressed for the wire: it buffers during an
            // outage and fails fast when full, never waits for NATS.
            let mut wire = payload.clone();
            self.compress(&mut wire);
            let env = self.envelope(from, to, Kind::Message, priority, headers.clone(), wire);
            match self.admit_to(&link, env, false, 1) {
                Ok(()) => {}
                Err(Refused::Full(_) | Refused::OverBudget(..)) => {
                    return self.metrics.fail(Error::MailboxFull(to))
                }
                Err(Refused::Error(e, _)) => return self.metrics.fail(e),
            }
        }
        let mut deadline = Deadline::default();
        for &to in refused.iter() {
            let env = self.fan_out_copy(from, to, priority, &headers, &payload);
            match self
                .send_until(env, Wait::Policy, false, recipients, &mut deadline)
                .await
            {
                Ok(_) => accepted += 1,
                Err(Error::ShuttingDown) => return self.metrics.fail(Error::ShuttingDown),
                // Left while we waited: not a recipient any more.
                Err(Error::UnknownAgent(_)) => {}
                Err(e) => {
                    let reason = match e {
                        Error::Overloaded { .. } => DropReason::MemoryBudget,
                        _ => DropReason::MailboxFull,
                    };
                    let copy = self.fan_out_copy(from, to, priority, &headers, &payload);
                    self.dead_letter(reason, copy);
                }
            }
        }
        Ok(accepted)
    }

    /// One recipient's copy of a fan-out: its own envelope, the shared payload and headers.
    fn fan_out_copy(
        &self,
        from: AgentId,
        to: AgentId,
        priority: Priority,
        headers: &Option<Arc<Headers>>,
        payload: &Payload,
    ) -> crate::Envelope {
        self.envelope(
            from,
            to,
            Kind::Message,
            priority,
            headers.clone(),
            payload.clone(),
        )
    }
}
