//! The vault: secrets at rest, sealed with AES-256-GCM under a ring of master keys.
//!
//! A [`KeyRing`] holds master keys by [`KeyId`], one of them active. [`Vault::seal`] encrypts
//! under the active key with a fresh random 96-bit nonce; the sealed bytes name the key, so
//! after a rotation old data still opens with the old key, and [`Vault::reseal`] moves it to
//! the active one. Every seal is bound to a context (for example workspace id, destination id,
//! `"settings"`) given as associated data: a sealed blob copied to another row does not open.
//!
//! Sealed format, version 1:
//!
//! ```text
//! [1: version = 1][1: key id length n][n: key id][12: nonce][ciphertext][16: GCM tag]
//! ```
//!
//! The associated data is the header (version, key id length and key id) followed by each
//! context part as a 4-byte big-endian length and its bytes, so neither the key id nor the
//! context can be changed without the tag failing.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The version byte of sealed data written today.
pub const VERSION: u8 = 1;
const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;
const MAX_KEY_ID: usize = 64;

/// What can go wrong sealing, opening or building a key ring.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error("unknown key id {0}")]
    UnknownKey(KeyId),
    #[error("cannot open: wrong key or tampered data")]
    CannotOpen,
    #[error("sealed data is malformed: {0}")]
    Malformed(&'static str),
    #[error("unsupported sealed data version {0}")]
    UnsupportedVersion(u8),
    #[error("invalid key id {0:?}: use 1 to 64 letters, digits, '-', '_' or '.'")]
    InvalidKeyId(String),
    #[error("invalid master key: must be 32 bytes, base64-encoded")]
    InvalidKey,
    #[error("master key {0} is configured twice")]
    DuplicateKey(KeyId),
    #[error("the active master key {0} is not in the key ring")]
    ActiveMissing(KeyId),
    #[error("several master keys are configured and none is marked active")]
    NoActiveKey,
    #[error("no master key is configured")]
    Empty,
    #[error("random number generator failed: {0}")]
    Random(String),
    #[error("cannot seal: encryption failed")]
    SealFailed,
}

/// The name of a master key (`k1`, `2025-01`...): 1 to 64 letters, digits, `-`, `_` or `.`.
/// Not secret; it is written in clear into every blob sealed under the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    pub fn parse(text: &str) -> Result<KeyId, VaultError> {
        let valid = !text.is_empty()
            && text.len() <= MAX_KEY_ID
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid {
            return Err(VaultError::InvalidKeyId(text.to_owned()));
        }
        Ok(KeyId(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// 32 bytes of key material. No `Display`, a redacted `Debug`, zeroed on drop, compared in
/// constant time.
pub struct MasterKey(Zeroizing<[u8; KEY_BYTES]>);

impl MasterKey {
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> MasterKey {
        MasterKey(Zeroizing::new(bytes))
    }

    /// Reads a key written in standard base64 (surrounding white space is ignored).
    pub fn from_base64(text: &str) -> Result<MasterKey, VaultError> {
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| VaultError::InvalidKey)?,
        );
        let mut key = Zeroizing::new([0u8; KEY_BYTES]);
        if decoded.len() != KEY_BYTES {
            return Err(VaultError::InvalidKey);
        }
        key.copy_from_slice(&decoded);
        Ok(MasterKey(key))
    }

    /// A new random key.
    pub fn generate() -> Result<MasterKey, VaultError> {
        let mut key = Zeroizing::new([0u8; KEY_BYTES]);
        getrandom::fill(key.as_mut_slice()).map_err(|e| VaultError::Random(e.to_string()))?;
        Ok(MasterKey(key))
    }

    /// The key in base64, for writing a generated key to its file once.
    pub fn expose_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0.as_slice()))
    }

    fn cipher(&self) -> Result<Aes256Gcm, VaultError> {
        // From the slice, so no stray copy of the key is left on the stack.
        Aes256Gcm::new_from_slice(self.0.as_slice()).map_err(|_| VaultError::InvalidKey)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(redacted)")
    }
}

impl PartialEq for MasterKey {
    fn eq(&self, other: &MasterKey) -> bool {
        self.0.as_slice().ct_eq(other.0.as_slice()).into()
    }
}

impl Eq for MasterKey {}

/// Master keys by id, one of them active (the one new seals use).
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<(KeyId, MasterKey)>,
    active: usize,
}

impl KeyRing {
    /// A ring of `keys`. `active` may be left out when there is only one key.
    pub fn new(
        keys: Vec<(KeyId, MasterKey)>,
        active: Option<&KeyId>,
    ) -> Result<KeyRing, VaultError> {
        if keys.is_empty() {
            return Err(VaultError::Empty);
        }
        for (index, (id, _)) in keys.iter().enumerate() {
            if keys[..index].iter().any(|(other, _)| other == id) {
                return Err(VaultError::DuplicateKey(id.clone()));
            }
        }
        let active = match active {
            Some(wanted) => keys
                .iter()
                .position(|(id, _)| id == wanted)
                .ok_or_else(|| VaultError::ActiveMissing(wanted.clone()))?,
            None if keys.len() == 1 => 0,
            None => return Err(VaultError::NoActiveKey),
        };
        Ok(KeyRing { keys, active })
    }

    /// The id of the key new seals use.
    pub fn active(&self) -> &KeyId {
        &self.keys[self.active].0
    }

    /// Every key id of the ring, in the order given.
    pub fn ids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys.iter().map(|(id, _)| id)
    }

    pub fn contains(&self, id: &KeyId) -> bool {
        self.key(id).is_some()
    }

    fn key(&self, id: &KeyId) -> Option<&MasterKey> {
        self.keys.iter().find(|(k, _)| k == id).map(|(_, key)| key)
    }
}

/// Seals and opens secrets with a key ring.
#[derive(Debug)]
pub struct Vault {
    ring: KeyRing,
}

/// The parts of sealed bytes, borrowed.
struct Envelope<'a> {
    header: &'a [u8],
    key_id: KeyId,
    nonce: &'a [u8],
    ciphertext: &'a [u8],
}

impl<'a> Envelope<'a> {
    fn parse(sealed: &'a [u8]) -> Result<Envelope<'a>, VaultError> {
        let (&version, rest) = sealed.split_first().ok_or(VaultError::Malformed("empty"))?;
        if version != VERSION {
            return Err(VaultError::UnsupportedVersion(version));
        }
        let (&id_len, rest) = rest
            .split_first()
            .ok_or(VaultError::Malformed("no key id"))?;
        let id_len = usize::from(id_len);
        if rest.len() < id_len + NONCE_BYTES + TAG_BYTES {
            return Err(VaultError::Malformed("too short"));
        }
        let (id, rest) = rest.split_at(id_len);
        let id = std::str::from_utf8(id).map_err(|_| VaultError::Malformed("key id"))?;
        let key_id = KeyId::parse(id).map_err(|_| VaultError::Malformed("key id"))?;
        let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
        Ok(Envelope {
            header: &sealed[..2 + id_len],
            key_id,
            nonce,
            ciphertext,
        })
    }
}

fn associated_data(header: &[u8], context: &[&str]) -> Vec<u8> {
    let mut aad =
        Vec::with_capacity(header.len() + context.iter().map(|p| 4 + p.len()).sum::<usize>());
    aad.extend_from_slice(header);
    for part in context {
        // Context parts are ids and labels, far below 4 GiB; saturate rather than wrap.
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        aad.extend_from_slice(&len.to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

impl Vault {
    pub fn new(ring: KeyRing) -> Vault {
        Vault { ring }
    }

    pub fn ring(&self) -> &KeyRing {
        &self.ring
    }

    /// Encrypts `plaintext` under the active key, bound to `context`.
    pub fn seal(&self, plaintext: &[u8], context: &[&str]) -> Result<Vec<u8>, VaultError> {
        let id = self.ring.active();
        let key = &self.ring.keys[self.ring.active].1;
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|e| VaultError::Random(e.to_string()))?;

        let id_len = u8::try_from(id.as_str().len()).map_err(|_| VaultError::SealFailed)?;
        let mut sealed =
            Vec::with_capacity(2 + usize::from(id_len) + NONCE_BYTES + plaintext.len() + TAG_BYTES);
        sealed.push(VERSION);
        sealed.push(id_len);
        sealed.extend_from_slice(id.as_str().as_bytes());
        let aad = associated_data(&sealed, context);
        sealed.extend_from_slice(&nonce);
        let ciphertext = key
            .cipher()?
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::SealFailed)?;
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// Decrypts what [`Vault::seal`] made with the same `context`. The answer is zeroed when
    /// dropped.
    pub fn open(&self, sealed: &[u8], context: &[&str]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let envelope = Envelope::parse(sealed)?;
        let key = self
            .ring
            .key(&envelope.key_id)
            .ok_or_else(|| VaultError::UnknownKey(envelope.key_id.clone()))?;
        let nonce: [u8; NONCE_BYTES] = envelope
            .nonce
            .try_into()
            .map_err(|_| VaultError::Malformed("nonce"))?;
        let aad = associated_data(envelope.header, context);
        key.cipher()?
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: envelope.ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| VaultError::CannotOpen)
    }

    /// The id of the key `sealed` was sealed under (no key needed).
    pub fn key_id_of(sealed: &[u8]) -> Result<KeyId, VaultError> {
        Ok(Envelope::parse(sealed)?.key_id)
    }

    /// Re-encrypts `sealed` under the active key: `None` when it already is (nothing to
    /// write), the new bytes otherwise. Fails like [`Vault::open`].
    pub fn reseal(&self, sealed: &[u8], context: &[&str]) -> Result<Option<Vec<u8>>, VaultError> {
        let plaintext = self.open(sealed, context)?;
        if Vault::key_id_of(sealed)? == *self.ring.active() {
            return Ok(None);
        }
        self.seal(&plaintext, context).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTEXT: &[&str] = &["ws_1", "dest-1", "settings"];

    fn id(text: &str) -> KeyId {
        KeyId::parse(text).unwrap()
    }

    fn vault_with(active: &str, ids: &[&str]) -> (Vault, Vec<[u8; 32]>) {
        let mut raw = Vec::new();
        let mut keys = Vec::new();
        for name in ids {
            // The same id always gets the same key material, in every ring of a test.
            let bytes = [*name.as_bytes().last().unwrap(); 32];
            raw.push(bytes);
            keys.push((id(name), MasterKey::from_bytes(bytes)));
        }
        (
            Vault::new(KeyRing::new(keys, Some(&id(active))).unwrap()),
            raw,
        )
    }

    fn vault(active: &str) -> Vault {
        vault_with(active, &["k1", "k2"]).0
    }

    #[test]
    fn seals_and_opens() {
        let vault = vault("k1");
        let sealed = vault.seal(br#"{"api_key":"hunter2"}"#, CONTEXT).unwrap();
        assert_eq!(sealed[0], VERSION);
        assert_eq!(Vault::key_id_of(&sealed).unwrap(), id("k1"));
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        let opened = vault.open(&sealed, CONTEXT).unwrap();
        assert_eq!(opened.as_slice(), br#"{"api_key":"hunter2"}"#);
        // Random nonces: the same secret seals differently each time.
        assert_ne!(
            sealed,
            vault.seal(br#"{"api_key":"hunter2"}"#, CONTEXT).unwrap()
        );
        // Empty plaintext is fine too.
        let empty = vault.seal(b"", CONTEXT).unwrap();
        assert!(vault.open(&empty, CONTEXT).unwrap().is_empty());
    }

    #[test]
    fn every_tampered_byte_is_detected() {
        let vault = vault("k1");
        let sealed = vault.seal(b"secret settings", CONTEXT).unwrap();
        for index in 0..sealed.len() {
            for flip in [0x01u8, 0x80] {
                let mut tampered = sealed.clone();
                tampered[index] ^= flip;
                assert!(
                    vault.open(&tampered, CONTEXT).is_err(),
                    "byte {index} flipped with {flip:#x} still opened"
                );
            }
        }
        assert_eq!(
            vault.open(&sealed[..sealed.len() - 1], CONTEXT),
            Err(VaultError::CannotOpen)
        );
        let mut longer = sealed.clone();
        longer.push(0);
        assert_eq!(vault.open(&longer, CONTEXT), Err(VaultError::CannotOpen));
        assert!(matches!(
            vault.open(&sealed[..10], CONTEXT),
            Err(VaultError::Malformed(_))
        ));
        assert!(matches!(
            vault.open(&[], CONTEXT),
            Err(VaultError::Malformed(_))
        ));
    }

    #[test]
    fn another_context_does_not_open() {
        let vault = vault("k1");
        let sealed = vault.seal(b"secret", CONTEXT).unwrap();
        for other in [
            &["ws_2", "dest-1", "settings"][..],
            &["ws_1", "dest-2", "settings"],
            &["ws_1", "dest-1", "other"],
            &["ws_1", "dest-1"],
            &[],
            // Length prefixes keep part boundaries: "ws_1d" + "est-1" is not "ws_1" + "dest-1".
            &["ws_1d", "est-1", "settings"],
        ] {
            assert_eq!(
                vault.open(&sealed, other),
                Err(VaultError::CannotOpen),
                "{other:?}"
            );
        }
    }

    #[test]
    fn the_wrong_key_under_the_same_id_does_not_open() {
        let sealed = vault("k1").seal(b"secret", CONTEXT).unwrap();
        let impostor = Vault::new(
            KeyRing::new(vec![(id("k1"), MasterKey::from_bytes([9; 32]))], None).unwrap(),
        );
        assert_eq!(impostor.open(&sealed, CONTEXT), Err(VaultError::CannotOpen));
    }

    #[test]
    fn rotation_keeps_old_data_readable_and_reseal_moves_it() {
        let old = vault("k1");
        let sealed = old.seal(b"secret", CONTEXT).unwrap();
        let rotated = vault("k2");
        assert_eq!(
            rotated.open(&sealed, CONTEXT).unwrap().as_slice(),
            b"secret"
        );
        let new_sealed = rotated.reseal(&sealed, CONTEXT).unwrap().unwrap();
        assert_eq!(Vault::key_id_of(&new_sealed).unwrap(), id("k2"));
        assert_eq!(
            rotated.open(&new_sealed, CONTEXT).unwrap().as_slice(),
            b"secret"
        );
        // Already under the active key: nothing to do.
        assert_eq!(rotated.reseal(&new_sealed, CONTEXT).unwrap(), None);
        // Once k1 is retired, only the resealed copy opens.
        let (retired, _) = vault_with("k2", &["k2"]);
        assert_eq!(
            retired.open(&sealed, CONTEXT),
            Err(VaultError::UnknownKey(id("k1")))
        );
        assert_eq!(
            retired.open(&new_sealed, CONTEXT).unwrap().as_slice(),
            b"secret"
        );
        // Reseal refuses what it cannot open.
        assert_eq!(
            rotated.reseal(&new_sealed, &["elsewhere"]),
            Err(VaultError::CannotOpen)
        );
    }

    #[test]
    fn unknown_key_ids_are_named() {
        let sealed = vault("k1").seal(b"secret", CONTEXT).unwrap();
        let (other, _) = vault_with("k3", &["k3"]);
        let error = other.open(&sealed, CONTEXT).unwrap_err();
        assert_eq!(error, VaultError::UnknownKey(id("k1")));
        assert_eq!(error.to_string(), "unknown key id k1");
    }

    #[test]
    fn unsupported_versions_are_refused() {
        let mut sealed = vault("k1").seal(b"secret", CONTEXT).unwrap();
        sealed[0] = 2;
        assert_eq!(
            vault("k1").open(&sealed, CONTEXT),
            Err(VaultError::UnsupportedVersion(2))
        );
    }

    #[test]
    fn key_material_never_prints() {
        let (vault, raw) = vault_with("k1", &["k1", "k2"]);
        let key = MasterKey::from_bytes(raw[0]);
        let encoded = key.expose_base64();
        for shown in [
            format!("{key:?}"),
            format!("{vault:?}"),
            format!("{:?}", vault.ring()),
        ] {
            assert!(!shown.contains(encoded.as_str()), "{shown}");
            assert!(!shown.contains("49, 49"), "{shown}");
        }
        assert_eq!(format!("{key:?}"), "MasterKey(redacted)");
        assert!(format!("{vault:?}").contains("k1"), "ids are not secret");
    }

    #[test]
    fn keys_read_from_base64() {
        let key = MasterKey::generate().unwrap();
        let text = key.expose_base64();
        assert_eq!(
            MasterKey::from_base64(&format!(" {}\n", text.as_str())).unwrap(),
            key
        );
        assert_ne!(MasterKey::generate().unwrap(), key);
        for bad in [
            "",
            "not base64!",
            "AAAA",
            &STANDARD.encode([0u8; 31]),
            &STANDARD.encode([0u8; 33]),
        ] {
            assert_eq!(
                MasterKey::from_base64(bad),
                Err(VaultError::InvalidKey),
                "{bad}"
            );
        }
    }

    #[test]
    fn key_rings_are_checked() {
        let key = || MasterKey::from_bytes([7; 32]);
        assert_eq!(KeyRing::new(vec![], None).unwrap_err(), VaultError::Empty);
        assert_eq!(
            KeyRing::new(vec![(id("a"), key()), (id("a"), key())], None).unwrap_err(),
            VaultError::DuplicateKey(id("a"))
        );
        assert_eq!(
            KeyRing::new(vec![(id("a"), key()), (id("b"), key())], None).unwrap_err(),
            VaultError::NoActiveKey
        );
        assert_eq!(
            KeyRing::new(vec![(id("a"), key())], Some(&id("b"))).unwrap_err(),
            VaultError::ActiveMissing(id("b"))
        );
        let ring = KeyRing::new(vec![(id("a"), key()), (id("b"), key())], Some(&id("b"))).unwrap();
        assert_eq!(ring.active(), &id("b"));
        assert_eq!(
            ring.ids().map(KeyId::as_str).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(ring.contains(&id("a")) && !ring.contains(&id("c")));
        assert_eq!(
            KeyRing::new(vec![(id("a"), key())], None).unwrap().active(),
            &id("a")
        );
    }

    #[test]
    fn key_ids_are_checked() {
        for good in ["k1", "2025-01", "prod.main_key", &"x".repeat(64)] {
            assert!(KeyId::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "has space", "k1:x", "é", &"x".repeat(65)] {
            assert!(KeyId::parse(bad).is_err(), "{bad}");
        }
    }
}
