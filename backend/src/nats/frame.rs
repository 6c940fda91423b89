//! The wire frame: a versioned binary batch of envelopes, one NATS message per frame.
//!
//! Every length is checked against what is left of the frame and against the configured
//! limits before anything is allocated, so a corrupt, truncated, oversized or hostile frame
//! is an error, never a panic or a large allocation. Payloads are not copied: each is a
//! slice of the received buffer, still compressed if it was compressed on the sender.
//!
//! ```text
//! frame    = "SWB" version:u8 kind:u8 epoch:u64 link:u64 seq:u64 msg_seq:u64
//!            node_len:u8 node count:u32 envelope*
//! envelope = id:16 from:16 to:16 kind:u8 [request:16] priority:u8 topic_len:u16 topic
//!            headers flags:u8 original_len:u32 wire_len:u32 payload
//! headers  = present:u8 [correlation:16] [len:u8 traceparent] [len:u8 content_type]
//!            [deadline:u64]
//! ```
//! `kind` is 0 message, 1 request, 2 reply, 3 chunk, 4 failed stream, 5 cancel; the last
//! four carry the id of their request. `present` has a bit per header (1 correlation, 2
//! traceparent, 4 content type, 8 deadline, in nanoseconds since 1970), each at most
//! [`MAX_HEADER_VALUE`] bytes. Version 2 frames, without headers and with kinds 0-2 only,
//! still decode.
//! Integers are little-endian. `epoch` is the sending hub's start, `link` its link
//! instance, `seq` the frame's number in that link (from 1) and `msg_seq` the number of
//! its first message (from 0): the receiver counts lost frames and messages from them and
//! refuses replays (`nats/directory.rs`). When the swarm has a key, a tag over the subject
//! and these bytes follows them (`nats/signing.rs`).

use crate::envelope::Kind;
use crate::headers::{Headers, MAX_HEADER_VALUE};
use crate::{AgentId, Envelope, MessageId, Payload, Priority};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::sync::Arc;
use uuid::Uuid;

const MAGIC: &[u8; 3] = b"SWB";
/// The version this build writes.
pub(crate) const VERSION: u8 = 3;
/// The previous version, which this build still reads: no headers, kinds 0-2 only.
const VERSION_2: u8 = 2;
const KIND_ENVELOPES: u8 = 1;
const HEADER_MIN: usize = 3 + 1 + 1 + 8 + 8 + 8 + 8 + 1 + 4;
/// Smallest possible envelope on the wire (version 2, which has no headers byte): a bound
/// on `count` before reading any.
const ENVELOPE_MIN: usize = 16 * 3 + 1 + 1 + 2 + 1 + 4 + 4;
/// Header bits of `present`.
const H_CORRELATION: u8 = 1;
const H_TRACE_PARENT: u8 = 2;
const H_CONTENT_TYPE: u8 = 4;
const H_DEADLINE: u8 = 8;
const MAX_NODE_LEN: usize = 64;
const MAX_TOPIC_LEN: usize = crate::bus::MAX_TOPIC_LEN;

/// Why a frame was refused; the label is a metric label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("frame is truncated")]
    Truncated,
    #[error("not a swarmbus frame")]
    BadMagic,
    #[error("unsupported frame version")]
    UnknownVersion,
    #[error("frame is larger than the configured maximum")]
    TooLarge,
    #[error("frame has an invalid field")]
    BadField,
    #[error("frame has a header over the size bound")]
    OversizedHeaders,
}

/// Bounds a decoder enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_frame: usize,
    pub(crate) max_payload: usize,
}

/// Bytes of a frame's header with the longest node name.
pub(crate) const HEADER_MAX: usize = HEADER_MIN + MAX_NODE_LEN;

/// Where a frame comes from and where it stands in its link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Numbers {
    pub(crate) epoch: u64,
    pub(crate) link: u64,
    pub(crate) seq: u64,
    pub(crate) msg_seq: u64,
}

/// A decoded frame.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) node: String,
    pub(crate) numbers: Numbers,
    pub(crate) envelopes: Vec<Envelope>,
}

/// Bytes the headers take at most.
const HEADERS_MAX: usize = 1 + 16 + 2 * (1 + MAX_HEADER_VALUE) + 8;

/// Bytes an envelope takes in a frame besides its payload, at most.
pub(crate) const ENVELOPE_FIXED_MAX: usize = ENVELOPE_MIN + 16 + MAX_TOPIC_LEN + HEADERS_MAX;

/// Bytes one envelope takes in a frame.
pub(crate) fn envelope_len(e: &Envelope) -> usize {
    let request = if e.kind.request().is_some() { 16 } else { 0 };
    ENVELOPE_MIN
        + request
        + e.topic().map_or(0, |t| t.len().min(MAX_TOPIC_LEN))
        + headers_len(e.headers.as_deref())
        + e.payload.wire_len()
}

/// How many of `rest` go in the next frame: as many as fit `budget` (at least one), and
/// for topic links only messages of the first one's topic (one subject per frame).
pub(crate) fn frame_end(rest: &[Envelope], budget: usize, by_topic: bool) -> usize {
    let topic = rest[0].topic();
    let mut size = 0;
    let mut end = 0;
    while end < rest.len() {
        let len = envelope_len(&rest[end]);
        if end > 0 && (size + len > budget || (by_topic && rest[end].topic() != topic)) {
            break;
        }
        size += len;
        end += 1;
    }
    end
}

/// A header value as sent: cut to the bound (the API refuses longer ones before this).
fn header_value(value: &str) -> &[u8] {
    let mut end = value.len().min(MAX_HEADER_VALUE);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value.as_bytes()[..end]
}

fn headers_len(h: Option<&Headers>) -> usize {
    let Some(h) = h else { return 1 };
    1 + h.correlation.map_or(0, |_| 16)
        + h.trace_parent
            .as_deref()
            .map_or(0, |v| 1 + header_value(v).len())
        + h.content_type
            .as_deref()
            .map_or(0, |v| 1 + header_value(v).len())
        + h.deadline.map_or(0, |_| 8)
}

fn put_headers(out: &mut BytesMut, h: Option<&Headers>) {
    let Some(h) = h else {
        out.put_u8(0);
        return;
    };
    let bit = |on: bool, bit: u8| if on { bit } else { 0 };
    let present = bit(h.correlation.is_some(), H_CORRELATION)
        | bit(h.trace_parent.is_some(), H_TRACE_PARENT)
        | bit(h.content_type.is_some(), H_CONTENT_TYPE)
        | bit(h.deadline.is_some(), H_DEADLINE);
    out.put_u8(present);
    if let Some(id) = h.correlation {
        out.put_slice(id.as_uuid().as_bytes());
    }
    for value in [&h.trace_parent, &h.content_type].into_iter().flatten() {
        let value = header_value(value);
        out.put_u8(value.len() as u8);
        out.put_slice(value);
    }
    if let Some(deadline) = h.deadline {
        out.put_u64_le(deadline);
    }
}

/// Encodes envelopes from one node into a frame, with `spare` bytes of capacity left for
/// a tag.
pub(crate) fn encode_with_room(
    node: &str,
    numbers: Numbers,
    envelopes: &[Envelope],
    spare: usize,
) -> BytesMut {
    let node = &node.as_bytes()[..node.len().min(MAX_NODE_LEN)];
    let size: usize = HEADER_MIN + node.len() + envelopes.iter().map(envelope_len).sum::<usize>();
    let mut out = BytesMut::with_capacity(size + spare);
    out.put_slice(MAGIC);
    out.put_u8(VERSION);
    out.put_u8(KIND_ENVELOPES);
    out.put_u64_le(numbers.epoch);
    out.put_u64_le(numbers.link);
    out.put_u64_le(numbers.seq);
    out.put_u64_le(numbers.msg_seq);
    out.put_u8(node.len() as u8);
    out.put_slice(node);
    out.put_u32_le(envelopes.len() as u32);
    for e in envelopes {
        out.put_slice(e.id.as_uuid().as_bytes());
        out.put_slice(e.from.as_uuid().as_bytes());
        out.put_slice(e.to.as_uuid().as_bytes());
        out.put_u8(match &e.kind {
            Kind::Message | Kind::Topic => 0,
            Kind::Request => 1,
            Kind::Reply(_) => 2,
            Kind::Chunk(_) => 3,
            Kind::Failed(_) => 4,
            Kind::Cancel(_) => 5,
        });
        if let Some(request) = e.kind.request() {
            out.put_slice(request.as_uuid().as_bytes());
        }
        out.put_u8(e.priority as u8);
        let topic = e.topic().unwrap_or("").as_bytes();
        let topic = &topic[..topic.len().min(MAX_TOPIC_LEN)];
        out.put_u16_le(topic.len() as u16);
        out.put_slice(topic);
        put_headers(&mut out, e.headers.as_deref());
        out.put_u8(u8::from(e.payload.is_compressed()));
        out.put_u32_le(e.payload.len() as u32);
        out.put_u32_le(e.payload.wire_len() as u32);
        out.put_slice(e.payload.wire_bytes());
    }
    out
}

/// Encodes envelopes from one node into a frame.
#[cfg(test)]
pub(crate) fn encode(node: &str, numbers: Numbers, envelopes: &[Envelope]) -> Bytes {
    encode_with_room(node, numbers, envelopes, 0).freeze()
}

/// Decodes a frame; `sent_at` is stamped on every envelope (clocks differ across hosts).
pub(crate) fn decode(mut buf: Bytes, limits: Limits, sent_at: u64) -> Result<Frame, FrameError> {
    if buf.len() > limits.max_frame {
        return Err(FrameError::TooLarge);
    }
    // Judge the magic and version on whatever arrived, so the reason is the useful one.
    if buf[..buf.len().min(3)] != MAGIC[..buf.len().min(3)] {
        return Err(FrameError::BadMagic);
    }
    if buf.len() > 3 && buf[3] != VERSION && buf[3] != VERSION_2 {
        return Err(FrameError::UnknownVersion);
    }
    if buf.len() < HEADER_MIN {
        return Err(FrameError::Truncated);
    }
    buf.advance(3);
    let version = buf.get_u8();
    if buf.get_u8() != KIND_ENVELOPES {
        return Err(FrameError::BadField);
    }
    let numbers = Numbers {
        epoch: buf.get_u64_le(),
        link: buf.get_u64_le(),
        seq: buf.get_u64_le(),
        msg_seq: buf.get_u64_le(),
    };
    let node_len = buf.get_u8() as usize;
    if node_len > MAX_NODE_LEN {
        return Err(FrameError::BadField);
    }
    let node = take(&mut buf, node_len)?;
    let node = std::str::from_utf8(&node)
        .map_err(|_| FrameError::BadField)?
        .to_string();
    need(&buf, 4)?;
    let count = buf.get_u32_le() as usize;
    if count > buf.len() / ENVELOPE_MIN {
        return Err(FrameError::Truncated);
    }
    let mut envelopes = Vec::with_capacity(count);
    for _ in 0..count {
        envelopes.push(decode_envelope(&mut buf, limits, sent_at, version)?);
    }
    if buf.has_remaining() {
        return Err(FrameError::BadField);
    }
    Ok(Frame {
        node,
        numbers,
        envelopes,
    })
}

fn decode_envelope(
    buf: &mut Bytes,
    limits: Limits,
    sent_at: u64,
    version: u8,
) -> Result<Envelope, FrameError> {
    need(buf, 16 * 3 + 1)?;
    let id = MessageId::from(uuid(buf));
    let from = AgentId::from(uuid(buf));
    let to = AgentId::from(uuid(buf));
    let code = buf.get_u8();
    let request = |buf: &mut Bytes| -> Result<MessageId, FrameError> {
        need(buf, 16)?;
        Ok(MessageId::from(uuid(buf)))
    };
    let kind = match code {
        0 => Kind::Message,
        1 => Kind::Request,
        2 => Kind::Reply(request(buf)?),
        3 if version > VERSION_2 => Kind::Chunk(request(buf)?),
        4 if version > VERSION_2 => Kind::Failed(request(buf)?),
        5 if version > VERSION_2 => Kind::Cancel(request(buf)?),
        _ => return Err(FrameError::BadField),
    };
    need(buf, 1 + 2)?;
    let priority = match buf.get_u8() {
        0 => Priority::Low,
        1 => Priority::Normal,
        2 => Priority::High,
        3 => Priority::Critical,
        _ => return Err(FrameError::BadField),
    };
    let topic_len = buf.get_u16_le() as usize;
    if topic_len > MAX_TOPIC_LEN {
        return Err(FrameError::BadField);
    }
    let topic = take(buf, topic_len)?;
    let topic: Option<Arc<str>> = if topic.is_empty() {
        None
    } else {
        Some(Arc::from(
            std::str::from_utf8(&topic).map_err(|_| FrameError::BadField)?,
        ))
    };
    let headers = if version > VERSION_2 {
        decode_headers(buf)?
    } else {
        None
    };
    need(buf, 1 + 4 + 4)?;
    let flags = buf.get_u8();
    let original_len = buf.get_u32_le() as usize;
    let wire_len = buf.get_u32_le() as usize;
    // Both sizes are bounded: a compressed payload claiming a small original size must not
    // smuggle a large stored one.
    if original_len > limits.max_payload || wire_len > limits.max_payload {
        return Err(FrameError::TooLarge);
    }
    let payload = match flags {
        0 if wire_len == original_len => Payload::new(take(buf, wire_len)?),
        1 => Payload::from_compressed(take(buf, wire_len)?, original_len),
        _ => return Err(FrameError::BadField),
    };
    let (kind, headers) = match (kind, topic) {
        (Kind::Message, Some(topic)) => {
            let mut h = headers.map_or_else(Headers::default, Arc::unwrap_or_clone);
            h.topic = Some(topic);
            (Kind::Topic, Some(Arc::new(h)))
        }
        (Kind::Message, None) => (Kind::Message, headers),
        // A request or reply never carries a topic.
        (_, Some(_)) => return Err(FrameError::BadField),
        (kind, None) => (kind, headers),
    };
    Ok(Envelope {
        id,
        from,
        to,
        kind,
        priority,
        payload,
        sent_at,
        headers,
        redelivered: false,
    })
}

fn decode_headers(buf: &mut Bytes) -> Result<Option<Arc<Headers>>, FrameError> {
    need(buf, 1)?;
    let present = buf.get_u8();
    if present & !(H_CORRELATION | H_TRACE_PARENT | H_CONTENT_TYPE | H_DEADLINE) != 0 {
        return Err(FrameError::BadField);
    }
    if present == 0 {
        return Ok(None);
    }
    let mut h = Headers::default();
    if present & H_CORRELATION != 0 {
        need(buf, 16)?;
        h.correlation = Some(MessageId::from(uuid(buf)));
    }
    let text = |buf: &mut Bytes| -> Result<Arc<str>, FrameError> {
        need(buf, 1)?;
        let len = buf.get_u8() as usize;
        if len > MAX_HEADER_VALUE {
            return Err(FrameError::OversizedHeaders);
        }
        let bytes = take(buf, len)?;
        let value = std::str::from_utf8(&bytes).map_err(|_| FrameError::BadField)?;
        Ok(Arc::<str>::from(value))
    };
    if present & H_TRACE_PARENT != 0 {
        h.trace_parent = Some(text(buf)?);
    }
    if present & H_CONTENT_TYPE != 0 {
        h.content_type = Some(text(buf)?);
    }
    if present & H_DEADLINE != 0 {
        need(buf, 8)?;
        h.deadline = Some(buf.get_u64_le());
    }
    Ok(Some(Arc::new(h)))
}

fn need(buf: &Bytes, n: usize) -> Result<(), FrameError> {
    if buf.remaining() < n {
        Err(FrameError::Truncated)
    } else {
        Ok(())
    }
}

fn take(buf: &mut Bytes, n: usize) -> Result<Bytes, FrameError> {
    need(buf, n)?;
    Ok(buf.split_to(n))
}

fn uuid(buf: &mut Bytes) -> Uuid {
    let mut b = [0u8; 16];
    buf.copy_to_slice(&mut b);
    Uuid::from_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: Limits = Limits {
        max_frame: 1 << 20,
        max_payload: 1 << 16,
    };

    fn env(kind: Kind, topic: Option<&str>, payload: Payload, priority: Priority) -> Envelope {
        let (kind, headers) = match (kind, topic) {
            (Kind::Message, Some(t)) => (
                Kind::Topic,
                Some(Arc::new(Headers::with_topic(Arc::from(t)))),
            ),
            (kind, _) => (kind, None),
        };
        Envelope {
            id: MessageId::new_v4(),
            from: AgentId::new_v4(),
            to: AgentId::new_v4(),
            kind,
            priority,
            payload,
            sent_at: 0,
            headers,
            redelivered: false,
        }
    }

    fn nums(seq: u64) -> Numbers {
        Numbers {
            epoch: 1,
            link: 1,
            seq,
            msg_seq: 0,
        }
    }

    fn same(a: &Envelope, b: &Envelope) {
        assert_eq!(a.id, b.id);
        assert_eq!(a.from, b.from);
        assert_eq!(a.to, b.to);
        assert_eq!(a.kind, b.kind);
        assert_eq!(a.priority, b.priority);
        assert_eq!(a.topic(), b.topic());
        assert_eq!(a.payload, b.payload);
        assert_eq!(a.headers, b.headers);
    }

    fn with_headers(mut e: Envelope, h: Headers) -> Envelope {
        e.headers = Some(Arc::new(h));
        e
    }

    fn all_headers() -> Headers {
        Headers {
            topic: None,
            correlation: Some(MessageId::new_v4()),
            trace_parent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            content_type: Some("application/json".into()),
            deadline: Some(1_767_225_600_000_000_000),
            call: None,
            receipt: Default::default(),
        }
    }

    /// A version 2 frame, as the previous release wrote it: no headers byte.
    fn encode_v2(numbers: Numbers, envs: &[Envelope]) -> Bytes {
        let mut out = BytesMut::new();
        out.put_slice(MAGIC);
        out.put_u8(VERSION_2);
        out.put_u8(KIND_ENVELOPES);
        for n in [numbers.epoch, numbers.link, numbers.seq, numbers.msg_seq] {
            out.put_u64_le(n);
        }
        out.put_u8(2);
        out.put_slice(b"v2");
        out.put_u32_le(envs.len() as u32);
        for e in envs {
            out.put_slice(e.id.as_uuid().as_bytes());
            out.put_slice(e.from.as_uuid().as_bytes());
            out.put_slice(e.to.as_uuid().as_bytes());
            match &e.kind {
                Kind::Message | Kind::Topic => out.put_u8(0),
                Kind::Request => out.put_u8(1),
                Kind::Reply(to) => {
                    out.put_u8(2);
                    out.put_slice(to.as_uuid().as_bytes());
                }
                other => panic!("no {other:?} in version 2"),
            }
            out.put_u8(e.priority as u8);
            let topic = e.topic().unwrap_or("").as_bytes();
            out.put_u16_le(topic.len() as u16);
            out.put_slice(topic);
            out.put_u8(u8::from(e.payload.is_compressed()));
            out.put_u32_le(e.payload.len() as u32);
            out.put_u32_le(e.payload.wire_len() as u32);
            out.put_slice(e.payload.wire_bytes());
        }
        out.freeze()
    }

    #[test]
    fn version_2_frames_still_decode() {
        let envs = vec![
            env(Kind::Message, None, Payload::from("old"), Priority::Normal),
            env(Kind::Request, None, Payload::from("ask"), Priority::High),
            env(
                Kind::Reply(MessageId::new_v4()),
                None,
                Payload::from("answer"),
                Priority::High,
            ),
            env(
                Kind::Message,
                Some("t.a"),
                Payload::from("topic"),
                Priority::Low,
            ),
        ];
        let frame = decode(encode_v2(nums(5), &envs), LIMITS, 0).unwrap();
        assert_eq!(frame.node, "v2");
        assert_eq!(frame.envelopes.len(), envs.len());
        for (a, b) in envs.iter().zip(&frame.envelopes) {
            same(a, b);
            let own = b.kind.request().unwrap_or(b.id);
            assert_eq!(
                b.correlation_id(),
                own,
                "no headers: its own or its request's id"
            );
        }
        // A kind that version 2 did not have is refused in a version 2 frame.
        let mut v = encode_v2(nums(6), &envs[..1]).to_vec();
        let kind_at = HEADER_MIN + 2 + 48;
        v[kind_at] = 3;
        assert_eq!(
            decode(Bytes::from(v), LIMITS, 0).map(|_| ()),
            Err(FrameError::BadField)
        );
    }

    #[test]
    fn headers_and_stream_kinds_round_trip() {
        let request = MessageId::new_v4();
        let envs = vec![
            with_headers(
                env(Kind::Request, None, Payload::from("q"), Priority::High),
                all_headers(),
            ),
            with_headers(
                env(
                    Kind::Chunk(request),
                    None,
                    Payload::from("part"),
                    Priority::High,
                ),
                Headers {
                    correlation: Some(request),
                    ..Headers::default()
                },
            ),
            env(
                Kind::Failed(request),
                None,
                Payload::from("why"),
                Priority::High,
            ),
            env(
                Kind::Cancel(request),
                None,
                Payload::from(""),
                Priority::Critical,
            ),
            with_headers(
                env(
                    Kind::Message,
                    Some("t"),
                    Payload::from("{}"),
                    Priority::Normal,
                ),
                Headers {
                    content_type: Some("application/json".into()),
                    ..Headers::with_topic(Arc::from("t"))
                },
            ),
        ];
        let bytes = encode("n", nums(1), &envs);
        assert_eq!(
            bytes.len(),
            HEADER_MIN + 1 + envs.iter().map(envelope_len).sum::<usize>()
        );
        let frame = decode(bytes, LIMITS, 0).unwrap();
        for (a, b) in envs.iter().zip(&frame.envelopes) {
            same(a, b);
        }
        assert_eq!(frame.envelopes[1].correlation_id(), request);
        assert!(frame.envelopes[2].is_final() && !frame.envelopes[1].is_final());
    }

    #[test]
    fn oversized_or_unknown_headers_are_refused() {
        let e = with_headers(
            env(Kind::Message, None, Payload::from("x"), Priority::Normal),
            Headers {
                content_type: Some("text/plain".into()),
                ..Headers::default()
            },
        );
        let good = encode("n", nums(1), std::slice::from_ref(&e)).to_vec();
        // The content type's length byte: after the fixed part, the kind, priority and
        // topic length, and the `present` byte.
        let len_at = HEADER_MIN + 1 + 48 + 1 + 1 + 2 + 1;
        assert_eq!(good[len_at] as usize, "text/plain".len());
        let mut v = good.clone();
        v[len_at] = (MAX_HEADER_VALUE + 1) as u8;
        assert_eq!(
            decode(Bytes::from(v), LIMITS, 0).map(|_| ()),
            Err(FrameError::OversizedHeaders)
        );
        let mut v = good;
        v[len_at - 1] |= 0x80;
        assert_eq!(
            decode(Bytes::from(v), LIMITS, 0).map(|_| ()),
            Err(FrameError::BadField)
        );
    }

    #[test]
    fn round_trip_every_kind() {
        let gz = Payload::from_compressed(vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff], 5000);
        let envs = vec![
            env(
                Kind::Message,
                None,
                Payload::from("hello"),
                Priority::Normal,
            ),
            env(Kind::Request, None, Payload::from(""), Priority::High),
            env(
                Kind::Reply(MessageId::new_v4()),
                None,
                Payload::from("x"),
                Priority::Low,
            ),
            env(Kind::Message, Some("plans.a"), gz, Priority::Critical),
        ];
        let numbers = Numbers {
            epoch: 7,
            link: 3,
            seq: 42,
            msg_seq: 9,
        };
        let bytes = encode("node-a", numbers, &envs);
        assert_eq!(
            bytes.len(),
            HEADER_MIN + 6 + envs.iter().map(envelope_len).sum::<usize>()
        );
        let frame = decode(bytes, LIMITS, 0).unwrap();
        assert_eq!((frame.node.as_str(), frame.numbers), ("node-a", numbers));
        assert_eq!(frame.envelopes.len(), 4);
        for (a, b) in envs.iter().zip(&frame.envelopes) {
            same(a, b);
        }
    }

    #[test]
    fn refuses_bad_frames_with_the_right_reason() {
        let good = encode(
            "n",
            nums(1),
            &[env(
                Kind::Message,
                None,
                Payload::from("abc"),
                Priority::Normal,
            )],
        );
        let now = 0;
        let dec = |b: Vec<u8>| decode(Bytes::from(b), LIMITS, now).map(|_| ());
        assert_eq!(dec(b"XYZ".repeat(20)), Err(FrameError::BadMagic));
        let mut v = good.to_vec();
        v[3] = 9;
        assert_eq!(dec(v), Err(FrameError::UnknownVersion));
        assert_eq!(
            dec(good[..good.len() - 1].to_vec()),
            Err(FrameError::Truncated)
        );
        let mut v = good.to_vec();
        v.push(0);
        assert_eq!(dec(v), Err(FrameError::BadField));
        let small = Limits {
            max_frame: 10,
            max_payload: 10,
        };
        assert_eq!(
            decode(good.clone(), small, now).map(|_| ()),
            Err(FrameError::TooLarge)
        );
        // A compressed payload whose stored size is over the limit, whatever it claims.
        let big = env(
            Kind::Message,
            None,
            Payload::from_compressed(vec![0u8; 70_000], 10),
            Priority::Normal,
        );
        assert_eq!(
            decode(encode("n", nums(1), &[big]), LIMITS, now).map(|_| ()),
            Err(FrameError::TooLarge)
        );
        // A count that claims a million envelopes is refused before allocating.
        let mut v = good.to_vec();
        let count_at = HEADER_MIN - 4 + 1;
        v[count_at..count_at + 4].copy_from_slice(&1_000_000u32.to_le_bytes());
        assert_eq!(dec(v), Err(FrameError::Truncated));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_batch_round_trips(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20),
            prio in 0u8..4,
            topic in proptest::option::of("[a-z.]{1,40}"),
            seq in any::<u64>(),
        ) {
            let priority = Priority::ALL[prio as usize];
            let envs: Vec<Envelope> = bodies.into_iter()
                .map(|b| env(Kind::Message, topic.as_deref(), Payload::from(b), priority))
                .collect();
            let frame = decode(encode("node", nums(seq), &envs), LIMITS, 0).unwrap();
            prop_assert_eq!(frame.envelopes.len(), envs.len());
            prop_assert_eq!(frame.numbers.seq, seq);
            for (a, b) in envs.iter().zip(&frame.envelopes) {
                prop_assert_eq!(&a.payload, &b.payload);
                prop_assert_eq!(a.id, b.id);
                prop_assert_eq!(a.topic(), b.topic());
            }
        }

        #[test]
        fn any_headers_round_trip(
            kind in 0u8..6,
            correlation in any::<bool>(),
            trace in proptest::option::of("[0-9a-f-]{0,128}"),
            content in proptest::option::of("[ -~]{0,128}"),
            deadline in proptest::option::of(any::<u64>()),
        ) {
            let request = MessageId::new_v4();
            let kind = match kind {
                0 => Kind::Message,
                1 => Kind::Request,
                2 => Kind::Reply(request),
                3 => Kind::Chunk(request),
                4 => Kind::Failed(request),
                _ => Kind::Cancel(request),
            };
            let h = Headers {
                topic: None,
                correlation: correlation.then(MessageId::new_v4),
                trace_parent: trace.map(Arc::from),
                content_type: content.map(Arc::from),
                deadline,
                call: None,
                receipt: Default::default(),
            };
            let e = with_headers(env(kind, None, Payload::from("p"), Priority::High), h);
            let bytes = encode("node", nums(1), std::slice::from_ref(&e));
            prop_assert_eq!(bytes.len(), HEADER_MIN + 4 + envelope_len(&e));
            let frame = decode(bytes, LIMITS, 0).unwrap();
            let got = &frame.envelopes[0];
            prop_assert_eq!(&got.kind, &e.kind);
            // An empty header set decodes as none at all.
            let want = e.headers.clone().filter(|h| !h.is_empty());
            prop_assert_eq!(&got.headers, &want);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            // What the fuzz target runs: decode, then read every payload.
            let _ = crate::nats::decode_any_frame(&data);
            let _ = decode(Bytes::from(data), LIMITS, 0);
        }

        #[test]
        fn mutated_frames_never_panic(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let envs: Vec<Envelope> = (0..5)
                .map(|i| env(Kind::Message, Some("t"), Payload::from(vec![i as u8; 50]), Priority::Normal))
                .collect();
            let mut v = encode("node", nums(1), &envs).to_vec();
            prop_assert!(crate::nats::decode_any_frame(&v), "an intact frame is accepted");
            for (i, x) in flips {
                let i = i.index(v.len());
                v[i] ^= x;
            }
            v.truncate(cut.index(v.len() + 1));
            let _ = crate::nats::decode_any_frame(&v);
            let _ = decode(Bytes::from(v), LIMITS, 0);
        }
    }
}
