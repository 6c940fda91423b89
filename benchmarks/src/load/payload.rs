//! Payloads the load generator sends, with a send timestamp stamped into sampled ones.

use bytes::{BufMut, Bytes, BytesMut};
use rand::{Rng, SeedableRng};
use std::str::FromStr;
use std::time::Instant;

/// Bytes at the front of a payload used for the latency stamp: a marker and a u64.
pub const STAMP_LEN: usize = 9;
const STAMPED: u8 = 0xA5;

/// What payloads a run sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadSpec {
    /// Every payload has this many bytes.
    Fixed(usize),
    /// A rotation: 64 B, 512 B, 2 KiB of compressible JSON, 4 KiB of incompressible bytes.
    Mixed,
}

impl FromStr for PayloadSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "mixed" {
            return Ok(PayloadSpec::Mixed);
        }
        let n: usize = s
            .parse()
            .map_err(|_| format!("--payload takes a byte count or `mixed`, not `{s}`"))?;
        if n < STAMP_LEN {
            return Err(format!(
                "--payload must be at least {STAMP_LEN} bytes (the latency stamp)"
            ));
        }
        Ok(PayloadSpec::Fixed(n))
    }
}

impl std::fmt::Display for PayloadSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PayloadSpec::Fixed(n) => write!(f, "{n}"),
            PayloadSpec::Mixed => f.write_str("mixed"),
        }
    }
}

/// Makes payloads from pre-built templates: one allocation and copy per message, as a user
/// building a fresh message would pay.
#[derive(Debug, Clone)]
pub struct PayloadMaker {
    templates: Vec<Bytes>,
    next: usize,
    epoch: Instant,
}

impl PayloadMaker {
    /// Templates for `spec`; `epoch` is the run's time origin.
    pub fn new(spec: &PayloadSpec, epoch: Instant, seed: u64) -> Self {
        let templates = match spec {
            PayloadSpec::Fixed(n) => vec![compressible_json(*n, seed)],
            PayloadSpec::Mixed => vec![
                Bytes::from(vec![b'x'; 64]),
                compressible_json(512, seed),
                compressible_json(2048, seed),
                random_bytes(4096, seed),
            ],
        };
        Self {
            templates,
            next: 0,
            epoch,
        }
    }

    /// The next payload; stamped with the send time when `stamp` is true.
    pub fn make(&mut self, stamp: bool) -> Bytes {
        let template = &self.templates[self.next % self.templates.len()];
        self.next = self.next.wrapping_add(1);
        let mut buf = BytesMut::with_capacity(template.len());
        if stamp {
            buf.put_u8(STAMPED);
            buf.put_u64_le(self.epoch.elapsed().as_nanos() as u64);
            buf.extend_from_slice(&template[STAMP_LEN.min(template.len())..]);
        } else {
            buf.extend_from_slice(template);
        }
        buf.freeze()
    }
}

/// Nanoseconds since the epoch stamped into `bytes`, if it carries a stamp.
pub fn read_stamp(bytes: &[u8]) -> Option<u64> {
    if bytes.len() >= STAMP_LEN && bytes[0] == STAMPED {
        let mut n = [0u8; 8];
        n.copy_from_slice(&bytes[1..STAMP_LEN]);
        Some(u64::from_le_bytes(n))
    } else {
        None
    }
}

/// JSON-like text, as agents exchange: compresses about 3-5×.
fn compressible_json(len: usize, seed: u64) -> Bytes {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut s = String::with_capacity(len + 128);
    s.push_str("\0\0\0\0\0\0\0\0\0[");
    let mut i = 0u32;
    while s.len() < len {
        let score: u32 = rng.random_range(0..1000);
        s.push_str(&format!(
            "{{\"task\":{i},\"agent\":\"planner-{}\",\"status\":\"ok\",\"score\":{score}}},",
            i % 7
        ));
        i += 1;
    }
    let mut bytes = s.into_bytes();
    bytes.truncate(len);
    Bytes::from(bytes)
}

fn random_bytes(len: usize, seed: u64) -> Bytes {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed ^ 0xDEAD_BEEF);
    let mut v = vec![0u8; len];
    rng.fill(&mut v[..]);
    v[0] = 0;
    Bytes::from(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_sizes_hold() {
        let epoch = Instant::now();
        let mut m = PayloadMaker::new(&PayloadSpec::Fixed(64), epoch, 1);
        let p = m.make(true);
        assert_eq!(p.len(), 64);
        assert!(read_stamp(&p).is_some());
        assert_eq!(read_stamp(&m.make(false)), None);
        let mut mixed = PayloadMaker::new(&PayloadSpec::Mixed, epoch, 1);
        let sizes: Vec<usize> = (0..4).map(|_| mixed.make(false).len()).collect();
        assert_eq!(sizes, [64, 512, 2048, 4096]);
    }

    #[test]
    fn parse_payload_spec() {
        assert_eq!("mixed".parse::<PayloadSpec>().unwrap(), PayloadSpec::Mixed);
        assert_eq!("64".parse::<PayloadSpec>().unwrap(), PayloadSpec::Fixed(64));
        assert!("4".parse::<PayloadSpec>().is_err());
        assert!("big".parse::<PayloadSpec>().is_err());
    }
}
