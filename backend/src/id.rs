//! Identifiers: agents and messages are named by v4 UUIDs.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random (v4) id.
            pub fn new_v4() -> Self {
                Self(Uuid::new_v4())
            }

            /// The underlying UUID.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// An agent's identity: a v4 UUID assigned by the hub at registration.
    ///
    /// Any UUID is a valid `AgentId`; sending to one no hub registered is
    /// [`Error::UnknownAgent`](crate::Error::UnknownAgent).
    ///
    /// ```
    /// use swarmbus::AgentId;
    /// let id = AgentId::new_v4();
    /// let parsed: AgentId = id.to_string().parse().unwrap();
    /// assert_eq!(id, parsed);
    /// assert_eq!(id.as_uuid().get_version_num(), 4);
    /// ```
    AgentId
);

uuid_id!(
    /// A message's identity (v4 UUID); a request's id correlates its reply.
    MessageId
);

/// A `Hasher` for maps keyed by v4 UUIDs: their bits are already random, so
/// folding the two halves is as good as SipHash and about ten times cheaper.
#[derive(Default, Clone, Copy)]
pub(crate) struct UuidHasher(u64);

impl std::hash::Hasher for UuidHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Uuid hashes as a length prefix then 16 bytes; fold everything.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(word)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// `BuildHasher` for [`UuidHasher`].
pub(crate) type UuidBuildHasher = std::hash::BuildHasherDefault<UuidHasher>;

/// A `HashMap` keyed by an id.
pub(crate) type IdMap<K, V> = std::collections::HashMap<K, V, UuidBuildHasher>;
