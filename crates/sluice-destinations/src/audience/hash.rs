//! Hashing identifiers for the ad platforms: SHA-256 (and MD5 where TikTok takes it) kept as
//! digest bytes on the stack and written as lowercase hex (or the Base64 form Google's Data
//! Manager also takes) into request bodies, and the check for values that arrive already hashed
//! (`^[0-9a-fA-F]{64}$`: taken as they are, in lowercase, never hashed again).

use base64::Engine;
use md5::Md5;
use sha2::digest::generic_array::GenericArray;
use sha2::digest::typenum::U64;
use sha2::{Digest, Sha256};

/// A digest, sent as lowercase hex (or Base64): 32 bytes for SHA-256, 16 for MD5. The bytes
/// are kept (half the size of their hex, so rows of them move cheaply) and written out as text
/// only into a request body.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hex {
    bytes: [u8; 32],
    len: u8,
}

/// The lowercase hex digit of a nibble (0 to 15).
fn hex_digit(nibble: u8) -> u8 {
    nibble + if nibble < 10 { b'0' } else { b'a' - 10 }
}

impl Hex {
    fn from_digest(digest: &[u8]) -> Hex {
        let len = digest.len().min(32);
        let mut bytes = [0u8; 32];
        bytes[..len].copy_from_slice(&digest[..len]);
        Hex {
            bytes,
            // At most 32: capped above.
            len: u8::try_from(len).unwrap_or(32),
        }
    }

    /// A value that is already a SHA-256 in hex (any case); `None` otherwise.
    pub fn from_sha256_hex(value: &str) -> Option<Hex> {
        if !is_sha256_hex(value) {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (slot, pair) in bytes.iter_mut().zip(value.as_bytes().chunks_exact(2)) {
            *slot = (nibble(pair[0]) << 4) | nibble(pair[1]);
        }
        Some(Hex { bytes, len: 32 })
    }

    /// The digest's bytes.
    fn digest(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Appends the digest as lowercase hex (64 digits for SHA-256, 32 for MD5) in double
    /// quotes, as a JSON string. Written as plain loops over fixed arrays, which the compiler
    /// turns into vector instructions, and copied out once.
    pub fn push_quoted(&self, out: &mut Vec<u8>) {
        let mut high = [0u8; 32];
        let mut low = [0u8; 32];
        for at in 0..32 {
            high[at] = hex_digit(self.bytes[at] >> 4);
            low[at] = hex_digit(self.bytes[at] & 0x0F);
        }
        let mut text = [b'"'; 66];
        for at in 0..32 {
            text[1 + 2 * at] = high[at];
            text[2 + 2 * at] = low[at];
        }
        let end = 1 + 2 * usize::from(self.len);
        text[end] = b'"';
        out.extend_from_slice(&text[..=end]);
    }

    /// The digest as lowercase hex.
    pub fn text(&self) -> String {
        let mut out = Vec::with_capacity(66);
        self.push_quoted(&mut out);
        // Only ASCII hex digits and quotes were written.
        String::from_utf8(out)
            .unwrap_or_default()
            .trim_matches('"')
            .to_string()
    }

    /// The digest in standard Base64 (Google's `encoding: BASE64`).
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.digest())
    }
}

impl std::fmt::Debug for Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A hash of personal data is still personal data: never shown whole.
        let prefix = Hex::from_digest(&self.digest()[..4.min(self.digest().len())]).text();
        write!(f, "Hex({prefix}…)")
    }
}

/// The value of a hex digit (any case); 0 for anything else, which callers have excluded.
fn nibble(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => 0,
    }
}

/// SHA-256's initial state (FIPS 180-4 §5.3.3).
const SHA256_INITIAL: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// SHA-256 of `value`. Identifiers are short: up to 119 bytes fit in two padded blocks, which
/// are built here on the stack and compressed directly (the compression function uses the
/// CPU's SHA instructions where it has them); longer values go through the streaming hasher.
fn sha256(value: &[u8]) -> [u8; 32] {
    if value.len() > 119 {
        return Sha256::digest(value).into();
    }
    // FIPS 180-4 §5.1.1: the message, a 1 bit, zeros, the length in bits as 64 bits. Most
    // identifiers fit in one block, built in place.
    let bits = ((value.len() as u64) * 8).to_be_bytes();
    let mut state = SHA256_INITIAL;
    if value.len() <= 55 {
        let mut block = GenericArray::<u8, U64>::default();
        block[..value.len()].copy_from_slice(value);
        block[value.len()] = 0x80;
        block[56..].copy_from_slice(&bits);
        sha2::compress256(&mut state, std::slice::from_ref(&block));
    } else {
        let mut flat = [0u8; 128];
        flat[..value.len()].copy_from_slice(value);
        flat[value.len()] = 0x80;
        flat[120..].copy_from_slice(&bits);
        let mut blocks = [GenericArray::<u8, U64>::default(); 2];
        blocks[0].copy_from_slice(&flat[..64]);
        blocks[1].copy_from_slice(&flat[64..]);
        sha2::compress256(&mut state, &blocks);
    }
    let mut digest = [0u8; 32];
    for (out, word) in digest.chunks_exact_mut(4).zip(state) {
        out.copy_from_slice(&word.to_be_bytes());
    }
    digest
}

/// SHA-256 of the UTF-8 bytes.
pub fn sha256_hex(value: &str) -> Hex {
    Hex {
        bytes: sha256(value.as_bytes()),
        len: 32,
    }
}

/// Slots of the per-thread table of [`sha256_category`].
const CATEGORY_SLOTS: usize = 512;

/// A remembered category: its bytes (at most 8, zero-padded), its length, its hash.
#[derive(Clone, Copy)]
struct CategorySlot {
    key: u64,
    len: u8,
    hash: Hex,
}

thread_local! {
    /// Hashes of short categorical values, direct-mapped by value (a collision replaces).
    static CATEGORIES: std::cell::RefCell<Vec<Option<CategorySlot>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// SHA-256 of a normalized categorical value — a gender, a birth year, month or day, a first
/// initial, a state or country code — remembered per thread: a few hundred such values repeat
/// across nearly every member, so most are looked up instead of hashed. Values longer than 8
/// bytes are hashed each time. Only categories go through here, never names or contact
/// details, so nothing remembered points at a person.
pub fn sha256_category(value: &str) -> Hex {
    let bytes = value.as_bytes();
    if bytes.len() > 8 {
        return sha256_hex(value);
    }
    let mut packed = [0u8; 8];
    packed[..bytes.len()].copy_from_slice(bytes);
    let key = u64::from_le_bytes(packed);
    // At most 8: checked above.
    let len = u8::try_from(bytes.len()).unwrap_or(8);
    let slot = (key ^ u64::from(len)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 55;
    // `slot` has 9 bits: below CATEGORY_SLOTS.
    let slot = usize::try_from(slot).unwrap_or(0) % CATEGORY_SLOTS;
    CATEGORIES.with(|table| {
        let mut table = table.borrow_mut();
        if table.is_empty() {
            table.resize(CATEGORY_SLOTS, None);
        }
        match table[slot] {
            Some(known) if known.key == key && known.len == len => known.hash,
            _ => {
                let hash = sha256_hex(value);
                table[slot] = Some(CategorySlot { key, len, hash });
                hash
            }
        }
    })
}

/// MD5 of the UTF-8 bytes (TikTok's `IDFA_MD5` / `AAID_MD5`).
pub fn md5_hex(value: &str) -> Hex {
    Hex::from_digest(&Md5::digest(value.as_bytes()))
}

/// Whether `value` is exactly 64 hex digits (a SHA-256 someone already computed).
pub fn is_sha256_hex(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|byte| byte.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_short_values_matches_the_streaming_hasher() {
        // Every length around the one- and two-block limits, and the streaming path beyond.
        let text: String = (0..300u32)
            .map(|i| char::from(b'a' + u8::try_from(i % 26).unwrap_or(0)))
            .collect();
        for len in 0..=200 {
            let value = &text[..len];
            let expected = Hex::from_digest(&Sha256::digest(value.as_bytes()));
            assert_eq!(sha256_hex(value), expected, "length {len}");
        }
    }

    #[test]
    fn remembered_categories_hash_as_anything_else() {
        // Twice each (the second from the table), values that share bytes but not length,
        // and values too long to remember.
        let values = [
            "f",
            "m",
            "1985",
            "01",
            "1",
            "10",
            "ca",
            "us",
            "",
            "a\0",
            "newyorkstate",
        ];
        for _ in 0..2 {
            for value in values {
                assert_eq!(sha256_category(value), sha256_hex(value), "{value:?}");
            }
        }
        for year in 1900..2100 {
            let year = year.to_string();
            assert_eq!(sha256_category(&year), sha256_hex(&year));
        }
    }

    #[test]
    fn hex_digits_of_every_byte_in_every_place() {
        for len in [4u8, 8, 13, 16, 32] {
            for byte in 0..=255u8 {
                let digest: Vec<u8> = (0..len)
                    .map(|at| byte.wrapping_add(at.wrapping_mul(37)))
                    .collect();
                let expected: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                let mut quoted = Vec::new();
                Hex::from_digest(&digest).push_quoted(&mut quoted);
                assert_eq!(quoted, format!("\"{expected}\"").into_bytes(), "{digest:?}");
            }
        }
    }

    #[test]
    fn hex_digits_of_every_byte() {
        for byte in 0..=255u8 {
            let hex = Hex::from_digest(&[byte, 0, byte, 255]);
            assert_eq!(hex.text(), format!("{byte:02x}00{byte:02x}ff"));
        }
        let digest: Vec<u8> = (0..32u8).map(|n| n.wrapping_mul(37)).collect();
        let expected: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(Hex::from_digest(&digest).text(), expected);
    }

    #[test]
    fn sha256_is_lowercase_hex() {
        let hash = sha256_hex("mary@example.com");
        assert_eq!(
            hash.text(),
            "f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79"
        );
        assert_eq!(sha256_hex("").text().len(), 64);
    }

    #[test]
    fn md5_is_lowercase_hex() {
        // T12.
        assert_eq!(
            md5_hex("6d92078a-8246-4ba4-ae5b-76104861e7dc").text(),
            "0c2074fb86930fc4a2a7bb791240a7d3"
        );
    }

    #[test]
    fn base64_form_of_a_digest() {
        // G15.
        assert_eq!(
            sha256_hex("mary@example.com").to_base64(),
            "8ZBM8anXOlX6XeCsgjxEA97XGv1MMkjQC9zQhmVSu3k="
        );
        let given = Hex::from_sha256_hex(
            "F1904CF1A9D73A55FA5DE0AC823C4403DED71AFD4C3248D00BDCD0866552BB79",
        );
        assert_eq!(
            given.map(|hex| hex.to_base64()).as_deref(),
            Some("8ZBM8anXOlX6XeCsgjxEA97XGv1MMkjQC9zQhmVSu3k=")
        );
    }

    #[test]
    fn already_hashed_values_are_recognised_and_lowercased() {
        let upper = "F1904CF1A9D73A55FA5DE0AC823C4403DED71AFD4C3248D00BDCD0866552BB79";
        assert!(is_sha256_hex(upper));
        assert_eq!(
            Hex::from_sha256_hex(upper).map(|hex| hex.text()),
            Some("f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79".into())
        );
        for not in [
            "",
            "f1904cf1",
            // 63 and 65 digits.
            "f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb7",
            "f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb790",
            // A `g`.
            "g1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79",
            // Surrounding spaces are not trimmed here.
            " f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79",
        ] {
            assert!(!is_sha256_hex(not), "{not:?}");
            assert!(Hex::from_sha256_hex(not).is_none());
        }
    }

    #[test]
    fn debug_shows_only_a_prefix() {
        let text = format!("{:?}", sha256_hex("mary@example.com"));
        assert_eq!(text, "Hex(f1904cf1…)");
    }
}
