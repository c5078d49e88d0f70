//! Keyed hashing: HMAC-SHA-256 over parts, the one primitive behind suppression digests,
//! keyed PII hashes and the keys derived for them.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// HMAC-SHA-256 under `key` of the parts, fed one after another.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("hmac accepts keys of any length"),
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_fed_in_order_and_the_key_matters() {
        let whole = hmac_sha256(b"key", &[b"ab", b"c"]);
        assert_eq!(whole, hmac_sha256(b"key", &[b"abc"]));
        assert_ne!(whole, hmac_sha256(b"other", &[b"abc"]));
        assert_ne!(whole, hmac_sha256(b"key", &[b"acb"]));
    }
}
