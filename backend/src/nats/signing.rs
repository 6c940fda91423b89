//! Authenticated wire messages: the swarm key, HMAC-SHA256 tags, and replay protection.
//!
//! NATS lets anyone who may publish on a subject publish anything on it. With a swarm key,
//! every hub seals what it publishes (directory messages and frames) with a tag that only
//! holders of the key can compute, and opens what it receives before reading it:
//!
//! ```text
//! sealed = body tag                                     the tag is a trailer: the body
//! tag    = "SWS" version:u8 key_id:4 mac:32             parser never sees it (40 bytes)
//! mac    = HMAC-SHA256(key, "swarmbus-tag" 0x00 "SWS" version key_id
//!                           subject_len:u64le subject body)
//! key_id = SHA-256(key)[0..4]
//! ```
//!
//! The MAC covers the subject as well as the body, so a frame sealed for hub A's subject
//! does not open on hub B's, a topic frame does not open on another topic, and nothing
//! crosses from one swarm to another. Tags are compared in constant time (`hmac`'s
//! `verify_slice`).
//!
//! - [`SwarmKey`] is one secret (at least 32 bytes, written as hex: `openssl rand -hex 32`);
//!   its `Debug` never shows it.
//! - [`Keyring`] holds the current key and up to [`MAX_PREVIOUS_KEYS`] previous ones: it
//!   seals with the current key and opens with whichever key the tag's key id names, so keys
//!   rotate without a flag day (add the new key as current, keep the old one as previous on
//!   every hub, restart hubs one by one, then drop the old key).
//!
//! Order on receipt: [`Keyring::open`] first (nothing unauthenticated reaches a decoder or
//! the replay checks, so a forger can neither fill memory nor move a stream's numbers),
//! then decode, then the sequence checks of `nats/directory.rs` (`StreamRx` for frames,
//! `RemoteNode::accept_control` for directory messages).
//!
//! Nothing here does I/O but [`SwarmKey::from_file`]: these are pure types the bridge calls.

use crate::{Error, Result};
use bytes::{BufMut, Bytes, BytesMut};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

type HmacSha256 = Hmac<Sha256>;

/// Smallest swarm key, in bytes (256 bits, the HMAC-SHA256 output size).
pub const MIN_KEY_LEN: usize = 32;
/// Largest swarm key, in bytes.
pub const MAX_KEY_LEN: usize = 512;
/// Previous keys a [`Keyring`] keeps for verification at most.
pub const MAX_PREVIOUS_KEYS: usize = 4;
/// Bytes of a key id.
pub const KEY_ID_LEN: usize = 4;
/// Bytes of the MAC inside a tag (the full HMAC-SHA256 output).
pub const MAC_LEN: usize = 32;
/// Bytes a tag adds to a message.
pub const TAG_LEN: usize = TAG_HEADER_LEN + MAC_LEN;

const TAG_MAGIC: &[u8; 3] = b"SWS";
const TAG_VERSION: u8 = 1;
const TAG_HEADER_LEN: usize = 3 + 1 + KEY_ID_LEN;
const DOMAIN: &[u8] = b"swarmbus-tag\0";
/// A key file larger than this is not a key file.
const MAX_KEY_FILE_LEN: u64 = 4096;
/// Hex digits to generate a key with.
const HINT: &str = "generate one with `openssl rand -hex 32`";

// ===== errors =====

/// Why a sealed message was refused; the label is a metric label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The message carries no tag (it is shorter than one, or does not end in one): a
    /// sender without the swarm key, or a forger.
    #[error("message is not signed with a swarm key")]
    Unsigned,
    /// The tag does not match the subject and body under the key it names (tampered,
    /// re-addressed, or forged), or has an unknown tag version.
    #[error("message signature does not match")]
    BadTag,
    /// The tag names a key id this hub does not hold (a key rotated out, or another swarm's).
    #[error("message is signed with a key this hub does not hold")]
    UnknownKey,
}

impl SignError {
    #[cfg(test)]
    /// Every variant, in label order (for pre-registering metric labels).
    pub const ALL: [SignError; 3] = [
        SignError::Unsigned,
        SignError::BadTag,
        SignError::UnknownKey,
    ];

    #[cfg(test)]
    /// The metric label: `unsigned`, `bad_tag` or `unknown_key`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SignError::Unsigned => "unsigned",
            SignError::BadTag => "bad_tag",
            SignError::UnknownKey => "unknown_key",
        }
    }
}

// ===== KeyId =====

/// A key's short id: the first 4 bytes of SHA-256 of the key. Public, not secret; it lets a
/// receiver pick the one key to verify with. `Display` is 8 lower-case hex digits, the same
/// as `xxd -r -p key.hex | sha256sum | cut -c1-8`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl KeyId {
    #[cfg(test)]
    /// The id's bytes, as carried in a tag.
    pub const fn as_bytes(&self) -> &[u8; KEY_ID_LEN] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

// ===== SwarmKey =====

/// A swarm's shared secret: at least [`MIN_KEY_LEN`] bytes, written as hex.
///
/// Only the keyed HMAC state and the key id are kept; `Debug` prints `SwarmKey(<redacted>)`.
///
/// ```ignore
/// let key: SwarmKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff".parse()?;
/// let key = SwarmKey::from_file(Path::new("/etc/swarmbus/swarm.key"))?;
/// ```
#[derive(Clone)]
pub struct SwarmKey {
    id: KeyId,
    /// HMAC-SHA256 keyed with the secret, cloned for each tag (saves re-keying).
    mac: HmacSha256,
}

impl SwarmKey {
    /// A key from raw bytes.
    ///
    /// # Errors
    /// `Error::Config` when the key is shorter than [`MIN_KEY_LEN`] or longer than
    /// [`MAX_KEY_LEN`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<SwarmKey> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(Error::Config(format!(
                "swarm key is {} bytes; at least {MIN_KEY_LEN} are needed ({} hex digits): {HINT}",
                bytes.len(),
                MIN_KEY_LEN * 2
            )));
        }
        if bytes.len() > MAX_KEY_LEN {
            return Err(Error::Config(format!(
                "swarm key is {} bytes; at most {MAX_KEY_LEN} are allowed",
                bytes.len()
            )));
        }
        let digest = Sha256::digest(bytes);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        let mac = HmacSha256::new_from_slice(bytes)
            .map_err(|_| Error::Config("swarm key has an unusable length".into()))?;
        Ok(SwarmKey { id: KeyId(id), mac })
    }

    /// A key written as hex digits (upper or lower case); surrounding whitespace, such as a
    /// trailing newline, is ignored.
    ///
    /// # Errors
    /// `Error::Config` when the text is empty, not hex, of odd length, or decodes to fewer
    /// than [`MIN_KEY_LEN`] or more than [`MAX_KEY_LEN`] bytes. The message never quotes the
    /// text.
    pub fn from_hex(text: &str) -> Result<SwarmKey> {
        let text = text.trim().as_bytes();
        if text.is_empty() {
            return Err(Error::Config(format!("swarm key is empty: {HINT}")));
        }
        if let Some(at) = text.iter().position(|c| nibble(*c).is_none()) {
            return Err(Error::Config(format!(
                "swarm key must be hex digits (0-9, a-f): character {} is not: {HINT}",
                at + 1
            )));
        }
        if !text.len().is_multiple_of(2) {
            return Err(Error::Config(
                "swarm key must have an even number of hex digits".into(),
            ));
        }
        let bytes: Vec<u8> = text
            .chunks_exact(2)
            .map(|pair| (nibble(pair[0]).unwrap_or(0) << 4) | nibble(pair[1]).unwrap_or(0))
            .collect();
        SwarmKey::from_bytes(&bytes)
    }

    /// A key read from a file holding its hex digits (surrounding whitespace is ignored).
    ///
    /// On Unix the file must not be accessible to others (`chmod 600` or `640`): a file
    /// that others may read or write is refused, and one that the group may read is used
    /// with a warning.
    ///
    /// # Errors
    /// `Error::Config`, naming the path, when the file cannot be read, is not a regular file,
    /// is larger than 4 KiB, is accessible to others, or does not hold a valid key (see
    /// [`SwarmKey::from_hex`]).
    pub fn from_file(path: &Path) -> Result<SwarmKey> {
        let shown = path.display();
        let fail = |what: String| Error::Config(format!("swarm key file {shown}: {what}"));
        let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
        let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
        if !meta.is_file() {
            return Err(fail("not a regular file".into()));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o007 != 0 {
                return Err(fail(format!(
                    "is accessible to other users (mode {mode:03o}); run `chmod 600 {shown}`"
                )));
            }
            if mode & 0o070 != 0 {
                tracing::warn!(
                    target: "swarmbus::nats",
                    "swarm key file {shown} is accessible to its group (mode {mode:03o}); \
                     `chmod 600` unless the group is the service's own"
                );
            }
        }
        if meta.len() > MAX_KEY_FILE_LEN {
            return Err(fail(format!(
                "is {} bytes; a key file holds one hex key",
                meta.len()
            )));
        }
        let mut text = String::new();
        file.take(MAX_KEY_FILE_LEN)
            .read_to_string(&mut text)
            .map_err(|e| fail(e.to_string()))?;
        SwarmKey::from_hex(&text).map_err(|e| match e {
            Error::Config(m) => fail(m),
            other => other,
        })
    }

    #[cfg(test)]
    /// The key's id, carried in every tag it makes.
    pub const fn id(&self) -> KeyId {
        self.id
    }

    /// The MAC of one message, keyed with this key.
    fn mac(&self, header: &[u8], subject: &str, body: &[u8]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(DOMAIN);
        mac.update(header);
        let subject_len = u64::try_from(subject.len()).unwrap_or(u64::MAX);
        mac.update(&subject_len.to_le_bytes());
        mac.update(subject.as_bytes());
        mac.update(body);
        mac
    }
}

impl fmt::Debug for SwarmKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SwarmKey(<redacted>)")
    }
}

impl FromStr for SwarmKey {
    type Err = Error;

    /// Same as [`SwarmKey::from_hex`].
    fn from_str(s: &str) -> Result<SwarmKey> {
        SwarmKey::from_hex(s)
    }
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

// ===== Tag =====

/// The tag of one message: `"SWS" version key_id mac`, [`TAG_LEN`] bytes. Not comparable
/// with `==`: check tags with [`Keyring::verify`], which compares in constant time.
#[derive(Clone, Copy)]
pub struct Tag([u8; TAG_LEN]);

impl Tag {
    /// The tag's bytes, as appended to a message.
    pub const fn as_bytes(&self) -> &[u8; TAG_LEN] {
        &self.0
    }

    /// The id of the key that made it.
    pub fn key_id(&self) -> KeyId {
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&self.0[4..TAG_HEADER_LEN]);
        KeyId(id)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag(key {})", self.key_id())
    }
}

// ===== Keyring =====

/// The current swarm key, which seals, and the previous ones, which still open.
///
/// ```ignore
/// use swarmbus::nats::signing::{Keyring, SwarmKey}; // crate-internal: the same runs as a unit test
///
/// let key: SwarmKey = "4f".repeat(32).parse()?;        // in production: `openssl rand -hex 32`
/// let ring = Keyring::new(key);
/// let sealed = ring.seal("swarmbus.prod.node.hub-b", b"frame");
/// assert_eq!(&ring.open("swarmbus.prod.node.hub-b", sealed.clone())?[..], b"frame");
/// assert!(ring.open("swarmbus.prod.node.hub-c", sealed).is_err()); // readdressed: refused
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Keyring {
    /// The current key first, then the previous ones; ids are distinct.
    keys: Vec<SwarmKey>,
}

impl Keyring {
    #[cfg(test)]
    /// A keyring with one key.
    pub fn new(current: SwarmKey) -> Keyring {
        Keyring {
            keys: vec![current],
        }
    }

    /// A keyring that seals with `current` and also opens with `previous`.
    ///
    /// # Errors
    /// `Error::Config` with more than [`MAX_PREVIOUS_KEYS`] previous keys, or when two keys
    /// have the same id (the same key given twice).
    pub fn with_previous(
        current: SwarmKey,
        previous: impl IntoIterator<Item = SwarmKey>,
    ) -> Result<Keyring> {
        let mut keys = vec![current];
        for key in previous {
            if keys.len() > MAX_PREVIOUS_KEYS {
                return Err(Error::Config(format!(
                    "at most {MAX_PREVIOUS_KEYS} previous swarm keys are kept"
                )));
            }
            if keys.iter().any(|k| k.id == key.id) {
                return Err(Error::Config(format!(
                    "swarm key {} is given twice",
                    key.id
                )));
            }
            keys.push(key);
        }
        Ok(Keyring { keys })
    }

    /// The keyring a hub's `[nats]` settings describe: `nats.swarm_key` (hex) or
    /// `nats.swarm_key_file` (a path), plus `nats.previous_keys` (hex). `None` when no key
    /// is set: the swarm is unsigned.
    ///
    /// # Errors
    /// `Error::Config`, naming the setting, when both `swarm_key` and `swarm_key_file` are
    /// set, when `previous_keys` is set without a current key, or when a key is invalid.
    pub fn from_config(
        swarm_key: Option<&str>,
        swarm_key_file: Option<&Path>,
        previous_keys: &[String],
    ) -> Result<Option<Keyring>> {
        let prefix = |name: String| {
            move |e: Error| match e {
                Error::Config(m) => Error::Config(format!("{name}: {m}")),
                other => other,
            }
        };
        let current = match (swarm_key, swarm_key_file) {
            (Some(_), Some(_)) => {
                return Err(Error::Config(
                    "nats.swarm_key and nats.swarm_key_file are exclusive".into(),
                ))
            }
            (Some(hex), None) => {
                SwarmKey::from_hex(hex).map_err(prefix("nats.swarm_key".into()))?
            }
            (None, Some(path)) => {
                SwarmKey::from_file(path).map_err(prefix("nats.swarm_key_file".into()))?
            }
            (None, None) if previous_keys.is_empty() => return Ok(None),
            (None, None) => {
                return Err(Error::Config(
                    "nats.previous_keys needs nats.swarm_key or nats.swarm_key_file".into(),
                ))
            }
        };
        let previous = previous_keys
            .iter()
            .enumerate()
            .map(|(i, hex)| {
                SwarmKey::from_hex(hex).map_err(prefix(format!("nats.previous_keys[{i}]")))
            })
            .collect::<Result<Vec<_>>>()?;
        Keyring::with_previous(current, previous)
            .map(Some)
            .map_err(prefix("nats.previous_keys".into()))
    }

    #[cfg(test)]
    /// The id of the key that seals.
    pub fn current_id(&self) -> KeyId {
        self.current().id
    }

    #[cfg(test)]
    /// Every key's id, the current one first.
    pub fn ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.keys.iter().map(|k| k.id)
    }

    /// The tag of `body` published on `subject`, made with the current key.
    pub fn sign(&self, subject: &str, body: &[u8]) -> Tag {
        let key = self.current();
        let mut tag = [0u8; TAG_LEN];
        tag[..3].copy_from_slice(TAG_MAGIC);
        tag[3] = TAG_VERSION;
        tag[4..TAG_HEADER_LEN].copy_from_slice(&key.id.0);
        let mac = key
            .mac(&tag[..TAG_HEADER_LEN], subject, body)
            .finalize()
            .into_bytes();
        tag[TAG_HEADER_LEN..].copy_from_slice(&mac);
        Tag(tag)
    }

    /// Checks that `tag` was made for `body` on `subject` by a key of this ring. Only the
    /// key the tag names is tried; the MAC is compared in constant time.
    ///
    /// # Errors
    /// [`SignError::Unsigned`] when `tag` is not a tag (wrong length or magic),
    /// [`SignError::UnknownKey`] when it names a key not in the ring, and
    /// [`SignError::BadTag`] when it does not match (or has an unknown version).
    pub fn verify(&self, subject: &str, body: &[u8], tag: &[u8]) -> Result<(), SignError> {
        if tag.len() != TAG_LEN || &tag[..3] != TAG_MAGIC {
            return Err(SignError::Unsigned);
        }
        if tag[3] != TAG_VERSION {
            return Err(SignError::BadTag);
        }
        let id = &tag[4..TAG_HEADER_LEN];
        let key = self
            .keys
            .iter()
            .find(|k| k.id.0 == id)
            .ok_or(SignError::UnknownKey)?;
        key.mac(&tag[..TAG_HEADER_LEN], subject, body)
            .verify_slice(&tag[TAG_HEADER_LEN..])
            .map_err(|_| SignError::BadTag)
    }

    #[cfg(test)]
    /// `body` followed by its tag: the message to publish on `subject`.
    pub fn seal(&self, subject: &str, body: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(body.len().saturating_add(TAG_LEN));
        out.put_slice(body);
        self.seal_in_place(subject, &mut out);
        out.freeze()
    }

    /// Appends the tag of `buf` on `subject` to `buf` (no copy of the body).
    pub fn seal_in_place(&self, subject: &str, buf: &mut BytesMut) {
        let tag = self.sign(subject, buf);
        buf.put_slice(tag.as_bytes());
    }

    /// The body of a sealed message received on `subject`, once its tag checks out. The
    /// body shares the message's buffer.
    ///
    /// # Errors
    /// As [`Keyring::verify`]; a message shorter than a tag is [`SignError::Unsigned`].
    pub fn open(&self, subject: &str, message: Bytes) -> Result<Bytes, SignError> {
        let body_len = self.open_slice(subject, &message)?.len();
        let mut body = message;
        body.truncate(body_len);
        Ok(body)
    }

    /// As [`Keyring::open`], on a borrowed message (directory messages, parsed in place).
    ///
    /// # Errors
    /// As [`Keyring::open`].
    pub fn open_slice<'m>(&self, subject: &str, message: &'m [u8]) -> Result<&'m [u8], SignError> {
        let body_len = message
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(SignError::Unsigned)?;
        let (body, tag) = message.split_at(body_len);
        self.verify(subject, body, tag)?;
        Ok(body)
    }

    fn current(&self) -> &SwarmKey {
        // `keys` is never empty: every constructor puts the current key first.
        &self.keys[0]
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current().id)
            .field(
                "previous",
                &self.keys[1..].iter().map(|k| k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEX_A: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const HEX_B: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
    const SUBJECT: &str = "swarmbus.prod.node.hub-b";

    fn key(hex: &str) -> SwarmKey {
        SwarmKey::from_hex(hex).unwrap()
    }

    fn key_n(n: u8) -> SwarmKey {
        SwarmKey::from_bytes(&[n; 32]).unwrap()
    }

    fn config_error(r: Result<impl fmt::Debug>) -> String {
        match r {
            Err(Error::Config(m)) => m,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    // ===== keys =====

    #[test]
    fn debug_never_shows_a_key() {
        let k = key(HEX_A);
        assert_eq!(format!("{k:?}"), "SwarmKey(<redacted>)");
        let ring = Keyring::with_previous(key(HEX_B), [key(HEX_A)]).unwrap();
        let shown = format!("{ring:?} {:?}", ring.sign(SUBJECT, b"x"));
        assert!(shown.contains("KeyId("), "{shown}");
        for secret in [HEX_A, HEX_B] {
            assert!(!shown.contains(&secret[..8]), "{shown}");
        }
    }

    #[test]
    fn key_id_is_the_sha256_prefix() {
        // SHA-256 of 32 zero bytes is 66687aad f862bd77 ...
        let k = SwarmKey::from_bytes(&[0; 32]).unwrap();
        assert_eq!(k.id().to_string(), "66687aad");
        assert_eq!(k.id().as_bytes(), &[0x66, 0x68, 0x7a, 0xad]);
    }

    #[test]
    fn hex_keys_parse_and_bad_ones_are_config_errors() {
        let a = key(HEX_A);
        assert_eq!(key(&HEX_A.to_uppercase()).id(), a.id());
        assert_eq!(key(&format!("  {HEX_A}\n")).id(), a.id());
        assert_eq!(HEX_A.parse::<SwarmKey>().unwrap().id(), a.id());
        assert_eq!(key(&"ab".repeat(MAX_KEY_LEN)).id().as_bytes().len(), 4);

        let cases = [
            (String::new(), "empty"),
            ("  \n".into(), "empty"),
            (HEX_A[..62].into(), "31 bytes; at least 32"),
            (HEX_A[..63].into(), "even number"),
            (format!("{}zz", &HEX_A[..62]), "character 63 is not"),
            (
                format!("{} {}", &HEX_A[..32], &HEX_A[32..]),
                "character 33 is not",
            ),
            (format!("0x{HEX_A}"), "character 2 is not"),
            ("ab".repeat(MAX_KEY_LEN + 1), "at most 512"),
        ];
        for (text, want) in cases {
            let message = config_error(SwarmKey::from_hex(&text));
            assert!(message.contains(want), "{text:?}: {message}");
            assert!(!message.contains(&HEX_A[..16]), "quotes the key: {message}");
        }
        let short = config_error(SwarmKey::from_hex(&HEX_A[..62]));
        assert!(short.contains("openssl rand -hex 32"), "{short}");
    }

    /// A file in the temp dir, removed on drop.
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(name: &str, text: &str, mode: u32) -> TempFile {
            let path = std::env::temp_dir()
                .join(format!("swarmbus-signing-{}-{name}", std::process::id()));
            std::fs::write(&path, text).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            }
            #[cfg(not(unix))]
            let _ = mode;
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn key_files() {
        let good = TempFile::new("good", &format!("{HEX_A}\n"), 0o600);
        assert_eq!(SwarmKey::from_file(&good.0).unwrap().id(), key(HEX_A).id());
        let group = TempFile::new("group", HEX_A, 0o640);
        assert_eq!(SwarmKey::from_file(&group.0).unwrap().id(), key(HEX_A).id());

        let empty = TempFile::new("empty", "\n", 0o600);
        let m = config_error(SwarmKey::from_file(&empty.0));
        assert!(
            m.contains("empty") && m.contains(&*empty.0.to_string_lossy()),
            "{m}"
        );
        let short = TempFile::new("short", &HEX_A[..40], 0o600);
        assert!(config_error(SwarmKey::from_file(&short.0)).contains("at least 32"));
        let big = TempFile::new("big", &"a".repeat(5000), 0o600);
        assert!(config_error(SwarmKey::from_file(&big.0)).contains("5000 bytes"));
        let missing = std::env::temp_dir().join("swarmbus-signing-no-such-key");
        assert!(config_error(SwarmKey::from_file(&missing)).contains("no-such-key"));
        let dir = std::env::temp_dir();
        assert!(config_error(SwarmKey::from_file(&dir)).contains("not a regular file"));
        #[cfg(unix)]
        {
            let world = TempFile::new("world", HEX_A, 0o644);
            let m = config_error(SwarmKey::from_file(&world.0));
            assert!(m.contains("mode 644") && m.contains("chmod 600"), "{m}");
            let writable = TempFile::new("writable", HEX_A, 0o602);
            assert!(config_error(SwarmKey::from_file(&writable.0)).contains("mode 602"));
        }
    }

    // ===== keyrings and tags =====

    #[test]
    fn tag_is_the_documented_hmac() {
        let ring = Keyring::new(key(HEX_A));
        let body = b"frame bytes";
        let tag = ring.sign(SUBJECT, body);
        let t = tag.as_bytes();
        assert_eq!(&t[..3], b"SWS");
        assert_eq!(t[3], 1);
        assert_eq!(&t[4..8], key(HEX_A).id().as_bytes());
        assert_eq!(tag.key_id(), ring.current_id());
        // Recompute from the layout in the module doc, without the module's helpers.
        let secret: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&HEX_A[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let mut mac = HmacSha256::new_from_slice(&secret).unwrap();
        mac.update(b"swarmbus-tag\0");
        mac.update(&t[..8]);
        mac.update(&(SUBJECT.len() as u64).to_le_bytes());
        mac.update(SUBJECT.as_bytes());
        mac.update(body);
        assert_eq!(&t[8..], &mac.finalize().into_bytes()[..]);
        assert_eq!(TAG_LEN, 40);
    }

    #[test]
    fn seal_open_and_readdressing() {
        let ring = Keyring::new(key(HEX_A));
        let sealed = ring.seal(SUBJECT, b"hello");
        assert_eq!(sealed.len(), 5 + TAG_LEN);
        assert_eq!(&ring.open(SUBJECT, sealed.clone()).unwrap()[..], b"hello");
        assert_eq!(ring.open_slice(SUBJECT, &sealed).unwrap(), b"hello");
        // The same bytes on another hub's subject, another swarm, or a topic do not open.
        for other in [
            "swarmbus.prod.node.hub-c",
            "swarmbus.test.node.hub-b",
            "swarmbus.prod.all",
            "",
        ] {
            assert_eq!(
                ring.open(other, sealed.clone()),
                Err(SignError::BadTag),
                "{other}"
            );
        }
        // Subject and body boundaries are not interchangeable.
        let a = ring.seal("swarmbus.prod.topic.ab", b"c");
        assert_eq!(
            ring.open(
                "swarmbus.prod.topic.a",
                Bytes::from([b"bc" as &[u8], &a[1..]].concat())
            ),
            Err(SignError::BadTag)
        );
        // An empty body and in-place sealing.
        let mut buf = BytesMut::new();
        ring.seal_in_place(SUBJECT, &mut buf);
        assert_eq!(ring.open(SUBJECT, buf.freeze()).unwrap().len(), 0);
    }

    #[test]
    fn unsigned_short_and_unknown_version() {
        let ring = Keyring::new(key(HEX_A));
        for len in [0, 1, TAG_LEN - 1] {
            assert_eq!(
                ring.open(SUBJECT, Bytes::from(vec![0u8; len])),
                Err(SignError::Unsigned)
            );
        }
        let plain = Bytes::from(vec![7u8; 300]);
        assert_eq!(ring.open(SUBJECT, plain), Err(SignError::Unsigned));
        let mut v = ring.seal(SUBJECT, b"body").to_vec();
        let version_at = v.len() - TAG_LEN + 3;
        v[version_at] = 2;
        assert_eq!(ring.open(SUBJECT, Bytes::from(v)), Err(SignError::BadTag));
        assert_eq!(
            ring.verify(SUBJECT, b"body", b"SWS"),
            Err(SignError::Unsigned)
        );
        let labels: Vec<_> = SignError::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(labels, ["unsigned", "bad_tag", "unknown_key"]);
    }

    #[test]
    fn wrong_key_and_rotation() {
        let (old, new) = (key(HEX_A), key(HEX_B));
        let before = Keyring::new(old.clone());
        let during = Keyring::with_previous(new.clone(), [old.clone()]).unwrap();
        let after = Keyring::new(new.clone());
        assert_eq!(during.current_id(), new.id());
        assert_eq!(during.ids().collect::<Vec<_>>(), [new.id(), old.id()]);

        let from_before = before.seal(SUBJECT, b"m1");
        let from_during = during.seal(SUBJECT, b"m2");
        // While the old key is in the ring, both generations open.
        assert!(during.open(SUBJECT, from_before.clone()).is_ok());
        assert!(during.open(SUBJECT, from_during.clone()).is_ok());
        assert!(after.open(SUBJECT, from_during.clone()).is_ok());
        // Once it is removed, it does not; and a hub without the new key refuses new tags.
        assert_eq!(after.open(SUBJECT, from_before), Err(SignError::UnknownKey));
        assert_eq!(
            before.open(SUBJECT, from_during.clone()),
            Err(SignError::UnknownKey)
        );
        // A ring whose key has the right id but other bytes cannot exist (the id is a hash),
        // but a forged tag naming a held key with a wrong MAC is a bad tag.
        let mut forged = from_during.to_vec();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(
            during.open(SUBJECT, Bytes::from(forged)),
            Err(SignError::BadTag)
        );
    }

    #[test]
    fn keyring_limits() {
        let five: Vec<SwarmKey> = (1..=MAX_PREVIOUS_KEYS as u8 + 1).map(key_n).collect();
        assert!(Keyring::with_previous(key_n(0), five[..MAX_PREVIOUS_KEYS].to_vec()).is_ok());
        assert!(config_error(Keyring::with_previous(key_n(0), five)).contains("at most 4"));
        assert!(
            config_error(Keyring::with_previous(key_n(1), [key_n(2), key_n(1)]))
                .contains("given twice")
        );
    }

    #[test]
    fn keyring_from_config() {
        assert!(Keyring::from_config(None, None, &[]).unwrap().is_none());
        let ring = Keyring::from_config(Some(HEX_B), None, &[HEX_A.to_string()])
            .unwrap()
            .unwrap();
        assert_eq!(
            ring.ids().collect::<Vec<_>>(),
            [key(HEX_B).id(), key(HEX_A).id()]
        );
        let file = TempFile::new("config", HEX_A, 0o600);
        let ring = Keyring::from_config(None, Some(&file.0), &[])
            .unwrap()
            .unwrap();
        assert_eq!(ring.current_id(), key(HEX_A).id());

        let both = config_error(Keyring::from_config(Some(HEX_A), Some(&file.0), &[]));
        assert!(both.contains("exclusive"), "{both}");
        let orphan = config_error(Keyring::from_config(None, None, &[HEX_A.into()]));
        assert!(orphan.contains("nats.previous_keys needs"), "{orphan}");
        let bad = config_error(Keyring::from_config(Some("abc"), None, &[]));
        assert!(bad.starts_with("nats.swarm_key: "), "{bad}");
        let bad = config_error(Keyring::from_config(
            Some(HEX_A),
            None,
            &[HEX_B.into(), "xx".into()],
        ));
        assert!(bad.starts_with("nats.previous_keys[1]: "), "{bad}");
        let twice = config_error(Keyring::from_config(Some(HEX_A), None, &[HEX_A.into()]));
        assert!(
            twice.starts_with("nats.previous_keys: ") && twice.contains("twice"),
            "{twice}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_message_round_trips(subject in "[a-z0-9._>*-]{0,80}", body in proptest::collection::vec(any::<u8>(), 0..600)) {
            let ring = Keyring::new(key(HEX_A));
            let sealed = ring.seal(&subject, &body);
            prop_assert_eq!(&ring.open(&subject, sealed).unwrap()[..], &body[..]);
        }

        #[test]
        fn any_single_bit_flip_is_refused(
            subject in "[a-z0-9.-]{1,60}",
            body in proptest::collection::vec(any::<u8>(), 0..300),
            at in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let ring = Keyring::new(key(HEX_A));
            let sealed = ring.seal(&subject, &body).to_vec();
            // In the body or the tag.
            let mut flipped = sealed.clone();
            flipped[at.index(sealed.len())] ^= 1 << bit;
            prop_assert!(ring.open(&subject, Bytes::from(flipped)).is_err());
            // In the subject (low 7 bits, so it stays a string).
            let mut s = subject.clone().into_bytes();
            let i = at.index(s.len());
            s[i] ^= 1 << (bit % 7);
            let s = String::from_utf8(s).unwrap();
            prop_assert_eq!(ring.open(&s, Bytes::from(sealed)), Err(SignError::BadTag));
        }

        #[test]
        fn truncated_or_arbitrary_input_never_panics(
            body in proptest::collection::vec(any::<u8>(), 0..200),
            cut in any::<prop::sample::Index>(),
            junk in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let ring = Keyring::new(key(HEX_A));
            let sealed = ring.seal(SUBJECT, &body);
            let cut = cut.index(sealed.len());
            prop_assert!(ring.open(SUBJECT, sealed.slice(..cut)).is_err());
            // Cut from the front: at least one byte.
            prop_assert!(ring.open_slice(SUBJECT, &sealed[cut + 1..]).is_err());
            prop_assert!(ring.open(SUBJECT, Bytes::from(junk)).is_err());
        }
    }
}
