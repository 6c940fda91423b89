//! Streamed replies: the caller's [`ReplyStream`] and the callee's [`Responder`].
//!
//! Chunks skip mailboxes and the linger, like replies: on one hub a responder writes into
//! its requester's bounded channel (and waits when the reader falls behind); across hubs
//! chunks travel in the link to the requester's hub, which hands them to the stream
//! without waiting. Cancelling (or dropping) the stream cancels the request: its callee
//! sees [`Envelope::cancelled`] resolve, and [`Responder::send`] fails.

use crate::bus::Bus;
use crate::bus::Wait;
use crate::call::{Call, CancelBy};
use crate::envelope::Kind;
use crate::headers::Headers;
use crate::metrics::DropReason;
use crate::{AgentId, Envelope, Error, MessageId, Payload, Priority, Result};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// The chunks of a streamed reply, as a [`futures_core::Stream`] of `Result<Envelope>`.
///
/// It yields each chunk in the order the responder sent it, then ends (`None`) after the
/// final one ([`Envelope::is_final`]). It ends with an `Err` item, then `None`, when the
/// responder failed ([`Error::StreamFailed`] with its reason) or went away unfinished
/// ([`Error::StreamFailed`]), when the timeout passed ([`Error::RequestTimeout`]), or when
/// the hub shut down ([`Error::ShuttingDown`], after every chunk that had arrived).
///
/// [`cancel`](Self::cancel) or dropping the stream cancels the request.
pub struct ReplyStream {
    bus: Arc<Bus>,
    id: MessageId,
    from: AgentId,
    to: AgentId,
    rx: flume::r#async::RecvStream<'static, Envelope>,
    call: Arc<Call>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// The deadline the callee sees (nanoseconds since 1970): a responder that stopped
    /// for it may go away before `deadline` fires here.
    wall_deadline: u64,
    timeout: Duration,
    /// Sent to the callee (a stream whose request never left cancels nothing).
    sent: bool,
    done: bool,
    /// Counted in the load of the group member it went to while the stream is open.
    _member_load: Option<crate::bus::InFlight>,
}

impl std::fmt::Debug for ReplyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyStream")
            .field("request", &self.id)
            .field("to", &self.to)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl ReplyStream {
    /// Registers the stream; the request is sent by the caller, then [`sent`](Self::sent).
    pub(crate) fn open(
        bus: Arc<Bus>,
        id: MessageId,
        (from, to): (AgentId, AgentId),
        call: Arc<Call>,
        (timeout, wall_deadline): (Duration, u64),
    ) -> ReplyStream {
        let capacity = bus.config.mailbox_capacity;
        let rx = bus
            .requests
            .insert_stream(id, to, call.clone(), capacity)
            .into_stream();
        let deadline = Box::pin(tokio::time::sleep_until(crate::bus::deadline_after(
            timeout,
        )));
        ReplyStream {
            bus,
            id,
            from,
            to,
            rx,
            call,
            deadline,
            wall_deadline,
            timeout,
            sent: false,
            done: false,
            _member_load: None,
        }
    }

    /// Counts this stream in a group member's load until it drops.
    pub(crate) fn hold(&mut self, load: crate::bus::InFlight) {
        self._member_load = Some(load);
    }

    pub(crate) fn sent(&mut self) {
        self.sent = true;
        self.bus.metrics.requests.add(1);
    }

    /// Ends with `parent`: when the parent request is cancelled, this one is too, and the
    /// stream ends with [`Error::Cancelled`]. The watch lasts until one of the two is
    /// cancelled, or the parent's deadline.
    pub(crate) fn cancel_with(&self, parent: Envelope) {
        let (bus, call) = (self.bus.clone(), self.call.clone());
        let (id, from, to) = (self.id, self.from, self.to);
        tokio::spawn(async move {
            tokio::select! {
                () = parent.cancelled() => {
                    if bus.requests.cancel(&call, CancelBy::Caller) {
                        bus.send_cancel(id, from, to);
                    }
                    // Without its channel's sender the stream ends.
                    bus.requests.close(id);
                }
                () = call.cancelled() => {}
            }
        });
    }

    /// The id of the request this stream answers.
    pub fn request_id(&self) -> MessageId {
        self.id
    }

    /// Cancels the request: the callee sees it cancelled, on this hub or another, and the
    /// stream ends (`None`). Never blocks; a stream that already ended is left as it is.
    pub fn cancel(&mut self) {
        self.end(CancelBy::Caller);
    }

    fn end(&mut self, by: CancelBy) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        self.bus.requests.close(self.id);
        if self.sent && self.bus.requests.cancel(&self.call, by) {
            self.bus.send_cancel(self.id, self.from, self.to);
        }
    }

    /// The deadline passed: the request is cancelled for it, the stream ends.
    fn timed_out(&mut self) -> Result<Envelope> {
        self.end(CancelBy::Deadline);
        let (id, after) = (self.id, self.timeout);
        self.bus.metrics.fail(Error::RequestTimeout { id, after })
    }

    fn finished(&mut self) {
        self.done = true;
        self.bus.requests.close(self.id);
    }
}

impl futures_core::Stream for ReplyStream {
    type Item = Result<Envelope>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.rx).poll_next(cx) {
            Poll::Ready(Some(env)) => {
                if env.is_final() {
                    this.finished();
                }
                return Poll::Ready(Some(match crate::bus::failure(&env) {
                    Some(e) => Err(e),
                    None => Ok(env),
                }));
            }
            // The responder stopped for the deadline before our timer fired: a timeout.
            Poll::Ready(None) if crate::headers::passed(this.wall_deadline) => {
                return Poll::Ready(Some(this.timed_out()));
            }
            Poll::Ready(None) => {
                this.finished();
                let e = match this.call.cancelled_by() {
                    Some(CancelBy::Shutdown) => Error::ShuttingDown,
                    _ if this.bus.is_closing() => Error::ShuttingDown,
                    // Its parent request was cancelled (`request_stream_within`).
                    Some(CancelBy::Caller) => Error::Cancelled,
                    Some(CancelBy::Deadline) => Error::DeadlineExceeded,
                    None => Error::StreamFailed(crate::bus::RESPONDER_GONE.into()),
                };
                return Poll::Ready(Some(Err(e)));
            }
            Poll::Pending => {}
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(this.timed_out()));
        }
        Poll::Pending
    }
}

impl Drop for ReplyStream {
    fn drop(&mut self) {
        self.end(CancelBy::Caller);
    }
}

/// What a reply to `request` carries: the conversation's correlation id when the request
/// belongs to a longer one (a reply's own default is the request's id), and its trace.
pub(crate) fn reply_headers(request: &Envelope) -> Option<Arc<Headers>> {
    let h = request.headers.as_deref();
    let correlation = h.and_then(|h| h.correlation);
    let trace_parent = crate::trace::current().or_else(|| h.and_then(|h| h.trace_parent.clone()));
    if correlation.is_none() && trace_parent.is_none() {
        return None;
    }
    Some(Arc::new(Headers {
        correlation,
        trace_parent,
        ..Headers::default()
    }))
}

/// Where a responder's chunks go.
#[derive(Debug)]
enum Route {
    /// A stream on this hub: straight into its channel. Weak: the requests table holds
    /// the one strong sender, so a stream it drops (the caller cancelled, the hub shut
    /// down) ends at once, after the chunks already in it.
    Local(flume::WeakSender<Envelope>),
    /// A plain `request` on this hub: it takes the final chunk only.
    Once,
    /// The requester is on another hub (or gone): through the link.
    Remote,
}

/// The callee's side of a streamed reply ([`AgentSender::respond`](crate::AgentSender::respond)):
/// [`send`](Self::send) chunks, then [`finish`](Self::finish) or [`fail`](Self::fail).
/// Dropped unfinished, it ends the caller's stream with an error, never a hang.
pub struct Responder {
    bus: Arc<Bus>,
    request: MessageId,
    requester: AgentId,
    callee: AgentId,
    priority: Priority,
    call: Option<Arc<Call>>,
    deadline: Option<u64>,
    headers: Option<Arc<Headers>>,
    route: Route,
    done: bool,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("request", &self.request)
            .field("requester", &self.requester)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Responder {
    pub(crate) fn new(bus: Arc<Bus>, callee: AgentId, request: &Envelope) -> Result<Responder> {
        if !request.is_request() {
            return Err(Error::NotARequest(request.id));
        }
        if bus.is_closing() {
            return bus.metrics.fail(Error::ShuttingDown);
        }
        let route = if bus.registry.contains(request.from) {
            match bus.requests.chunk_to(request.id, |_| true) {
                Ok(crate::bus::ChunkTo::Stream(tx)) => Route::Local(tx.downgrade()),
                _ => Route::Once,
            }
        } else {
            Route::Remote
        };
        let h = request.headers.as_deref();
        Ok(Responder {
            request: request.id,
            requester: request.from,
            callee,
            priority: request.priority,
            call: h.and_then(|h| h.call.as_ref()).map(|c| c.0.clone()),
            deadline: h.and_then(|h| h.deadline),
            headers: reply_headers(request),
            route,
            done: false,
            bus,
        })
    }

    /// Whether the caller cancelled (or dropped its stream), the deadline passed, or the
    /// hub shut down: the work can stop.
    pub fn is_cancelled(&self) -> bool {
        self.check().is_err()
    }

    fn check(&self) -> Result<()> {
        match self.call.as_ref().and_then(|c| c.cancelled_by()) {
            Some(CancelBy::Deadline) => return Err(Error::DeadlineExceeded),
            Some(CancelBy::Shutdown) => return Err(Error::ShuttingDown),
            Some(CancelBy::Caller) => return Err(Error::Cancelled),
            None => {}
        }
        if self.deadline.is_some_and(crate::headers::passed) {
            return Err(Error::DeadlineExceeded);
        }
        if self.bus.is_closing() {
            return Err(Error::ShuttingDown);
        }
        Ok(())
    }

    fn chunk(&self, kind: Kind, payload: Payload) -> Envelope {
        let mut env = self.bus.envelope(
            self.callee,
            self.requester,
            kind,
            self.priority,
            None,
            payload,
        );
        env.headers = self.headers.clone();
        env
    }

    /// Sends a partial answer. It is not held for the linger: the caller gets it at once.
    /// On one hub it waits while the caller's stream holds `mailbox_capacity` unread
    /// chunks; to another hub it waits, as a send does, for room in the link.
    ///
    /// # Errors
    ///
    /// - [`Error::Cancelled`]: the caller cancelled or dropped its stream (or request).
    /// - [`Error::DeadlineExceeded`]: the request's deadline passed.
    /// - [`Error::ShuttingDown`]: the hub is shutting down.
    /// - [`Error::PayloadTooLarge`]: the chunk is over `max_payload`.
    /// - [`Error::MailboxFull`]: the link to the caller's hub stayed full (overflow policy).
    pub async fn send(&mut self, payload: impl Into<Payload>) -> Result<()> {
        self.check()?;
        let payload = self.bus.prepare(payload.into())?;
        let env = self.chunk(Kind::Chunk(self.request), payload);
        match &self.route {
            Route::Local(weak) => {
                let Some(tx) = weak.upgrade() else {
                    self.check()?;
                    return Err(Error::Cancelled);
                };
                let sent = match &self.call {
                    Some(call) => tokio::select! {
                        sent = tx.send_async(env) => sent.is_ok(),
                        () = call.cancelled() => false,
                    },
                    None => tx.send_async(env).await.is_ok(),
                };
                if !sent {
                    self.check()?;
                    return Err(Error::Cancelled);
                }
                self.bus.metrics.chunks.add(1);
                Ok(())
            }
            Route::Once => {
                // `request` waits for the final answer only.
                self.bus.dead_letter(DropReason::StreamGone, env);
                Ok(())
            }
            Route::Remote => self.bus.send_one(env, Wait::Policy, true).await.map(|_| ()),
        }
    }

    /// Sends the final chunk; the caller's stream ends after it.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn finish(mut self, payload: impl Into<Payload>) -> Result<()> {
        self.check()?;
        let payload = self.bus.prepare(payload.into())?;
        let env = self.chunk(Kind::Reply(self.request), payload);
        self.last(env).await
    }

    /// Ends the stream with a failure: the caller's stream yields
    /// `Err(Error::StreamFailed(reason))`, then ends.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn fail(mut self, reason: impl Into<String>) -> Result<()> {
        self.check()?;
        let env = self.chunk(Kind::Failed(self.request), Payload::from(reason.into()));
        self.last(env).await
    }

    async fn last(&mut self, env: Envelope) -> Result<()> {
        self.done = true;
        self.bus.flush_to(self.requester);
        match &self.route {
            Route::Local(weak) => {
                let undelivered = match weak.upgrade() {
                    Some(tx) => tx.send_async(env).await.err().map(|e| e.into_inner()),
                    None => Some(env),
                };
                self.bus.requests.close(self.request);
                match undelivered {
                    None => self.bus.metrics.replies.add(1),
                    Some(env) => self.bus.dead_letter(DropReason::ReplyOrphaned, env),
                }
            }
            Route::Once | Route::Remote => self.bus.deliver_reply(env, self.request),
        }
        self.bus.calls.close(self.request);
        Ok(())
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        match self.route {
            // Without its senders, the caller's stream ends with an error.
            Route::Local(_) | Route::Once => self.bus.requests.close(self.request),
            Route::Remote => {
                let env = self.chunk(
                    Kind::Failed(self.request),
                    Payload::from(crate::bus::RESPONDER_GONE),
                );
                if let Err(refused) = self.bus.enqueue_now(env, true) {
                    self.bus
                        .dead_letter_refused(DropReason::ReplyOrphaned, refused);
                }
            }
        }
        self.bus.calls.close(self.request);
    }
}
