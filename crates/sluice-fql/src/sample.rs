//! Deterministic sampling: whether a `SAMPLE` action keeps an event.
//!
//! The value at the action's path (`messageId` when it has none) is written as
//! `JSON.stringify` would (`undefined` when missing), hashed with MD5, and the digest is read
//! as a number in `[0, 1)` the way Campbell's `random_real` reads random bits (the method
//! Segment's Go sampler and tsub's comments name): the first 64 bits are the significand,
//! shifted left past their leading zeros and refilled from the next 64, then `| 1`, times
//! `2^-64` (times `2^-leading_zeros`). The event is kept when that number is below `percent`.
//! The same value always gives the same answer, so sampling by `userId` keeps or drops whole
//! users.

use md5::{Digest, Md5};
use serde_json::Value;

use crate::js;

/// The path sampled when an action names none.
pub const DEFAULT_SAMPLE_PATH: &str = "messageId";

/// Whether a `SAMPLE` action of `percent` (0 to 1) on `path` keeps `event`.
pub(crate) fn keeps(event: &Value, percent: f64, path: Option<&str>) -> bool {
    if percent <= 0.0 {
        return false;
    }
    if percent >= 1.0 {
        return true;
    }
    let path = path
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_SAMPLE_PATH);
    let value = js::lookup(event, path.split('.'));
    let text = js::stringify_js(&value).unwrap_or_else(|| "undefined".to_owned());
    fraction(text.as_bytes()) < percent
}

/// `bytes` mapped to `[0, 1)` through their MD5 digest.
pub fn fraction(bytes: &[u8]) -> f64 {
    let digest = Md5::digest(bytes);
    let mut high = [0u8; 8];
    let mut low = [0u8; 8];
    high.copy_from_slice(&digest[..8]);
    low.copy_from_slice(&digest[8..]);
    let (high, low) = (u64::from_be_bytes(high), u64::from_be_bytes(low));
    let zeros = high.leading_zeros();
    let (significand, exponent) = match zeros {
        0 => (high, -64),
        64 => (low, -128),
        z => ((high << z) | (low >> (64 - z)), -64 - z as i32),
    };
    (significand | 1) as f64 * 2f64.powi(exponent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fraction_reads_the_digest_as_a_uniform_number() {
        // md5("\"abc\"") = ebd9f4c7b06cb0aaf5d13d80e49d8b90: no leading zero bit.
        let expected = (0xebd9_f4c7_b06c_b0aa_u64 | 1) as f64 / 2f64.powi(64);
        assert_eq!(fraction(b"\"abc\""), expected);
        for i in 0..1000 {
            let f = fraction(format!("\"user-{i}\"").as_bytes());
            assert!((0.0..1.0).contains(&f), "{f}");
        }
    }

    #[test]
    fn sampling_keeps_about_the_percent_and_is_stable() {
        for percent in [0.1, 0.5, 0.9] {
            let kept = (0..10_000)
                .filter(|i| {
                    keeps(
                        &json!({"userId": format!("user-{i}")}),
                        percent,
                        Some("userId"),
                    )
                })
                .count();
            let share = kept as f64 / 10_000.0;
            assert!((share - percent).abs() < 0.02, "{percent}: kept {share}");
        }
        let event = json!({"userId": "u1", "messageId": "m1"});
        let first = keeps(&event, 0.5, Some("userId"));
        assert!((0..10).all(|_| keeps(&event, 0.5, Some("userId")) == first));
    }

    #[test]
    fn without_a_path_the_message_id_decides() {
        let a = json!({"messageId": "m-1", "userId": "x"});
        let b = json!({"messageId": "m-1", "userId": "y"});
        let hashed = fraction(b"\"m-1\"");
        assert_eq!(keeps(&a, 0.5, None), hashed < 0.5);
        assert_eq!(keeps(&a, 0.5, None), keeps(&b, 0.5, None));
        assert_eq!(keeps(&a, 0.5, Some("")), keeps(&a, 0.5, None));
    }

    #[test]
    fn bounds_and_missing_values() {
        let event = json!({});
        assert!(!keeps(&event, 0.0, None));
        assert!(keeps(&event, 1.0, None));
        let missing = fraction(b"undefined");
        assert_eq!(keeps(&event, 0.5, Some("userId")), missing < 0.5);
        // Values hash as their JSON text: the number 1 and the string "1" differ.
        assert_ne!(fraction(b"1"), fraction(b"\"1\""));
    }
}
