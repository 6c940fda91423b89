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

/// A keyed hasher for ids that others choose (ids from the wire, in the directory of remote
/// agents): the key is random per map, so nobody can craft ids that collide (with the fast
/// unseeded [`UuidHasher`], one crafted 936 KB hello took 2 s to digest instead of 24 ms).
/// It folds each 8-byte word with a 64×64→128-bit multiply by the key (the core of
/// wyhash), which keeps a lookup at a few nanoseconds where SipHash took about 15.
#[derive(Clone, Copy)]
pub(crate) struct KeyedIdHasher {
    state: u64,
    key: u64,
}

/// `BuildHasher` for [`KeyedIdHasher`], with a random key.
#[derive(Clone, Copy)]
pub(crate) struct KeyedIdState {
    seed: u64,
    key: u64,
}

impl Default for KeyedIdState {
    fn default() -> Self {
        // uuid's v4 generator draws from the operating system's randomness.
        let r = Uuid::new_v4().as_u128();
        Self {
            seed: r as u64,
            key: ((r >> 64) as u64) | 1,
        }
    }
}

impl std::fmt::Debug for KeyedIdState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyedIdState(<random key>)")
    }
}

impl std::hash::BuildHasher for KeyedIdState {
    type Hasher = KeyedIdHasher;

    fn build_hasher(&self) -> KeyedIdHasher {
        KeyedIdHasher {
            state: self.seed,
            key: self.key,
        }
    }
}

/// The 128-bit product of `a` and `b`, folded to 64 bits.
fn folded_multiply(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

impl std::hash::Hasher for KeyedIdHasher {
    fn finish(&self) -> u64 {
        folded_multiply(self.state, self.key ^ 0x9E37_79B9_7F4A_7C15)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.state = folded_multiply(self.state ^ u64::from_le_bytes(word), self.key);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.state = folded_multiply(self.state ^ n, self.key);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}
