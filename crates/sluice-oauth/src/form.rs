//! Percent-encoding of query strings and form bodies (`application/x-www-form-urlencoded`),
//! both ways.

/// `text` percent-encoded: every byte but RFC 3986's unreserved ones (`A-Z a-z 0-9 - . _ ~`).
pub(crate) fn encode(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            escaped.push(char::from(byte));
        } else {
            escaped.push('%');
            escaped.push(char::from(HEX[usize::from(byte >> 4)]));
            escaped.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    escaped
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// `name=value` pairs joined by `&`, both sides encoded.
pub(crate) fn pairs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// One encoded component decoded (`+` is a space); `None` when an escape is broken or the
/// bytes are not UTF-8.
pub(crate) fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' => {
                let high = hex_value(*bytes.get(index + 1)?)?;
                let low = hex_value(*bytes.get(index + 2)?)?;
                out.push(high << 4 | low);
                index += 2;
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8(out).ok()
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// A query string or form body (without `?`) as decoded pairs, in order; `None` when one is
/// broken.
pub(crate) fn parse(text: &str) -> Option<Vec<(String, String)>> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode(name)?, decode(value)?))
        })
        .collect()
}

/// The first value of `name` among decoded pairs.
pub(crate) fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_all_but_unreserved() {
        assert_eq!(encode("a-Z_0.~"), "a-Z_0.~");
        assert_eq!(
            encode("https://x.test/cb?a=1 b"),
            "https%3A%2F%2Fx.test%2Fcb%3Fa%3D1%20b"
        );
        assert_eq!(encode("é"), "%C3%A9");
    }

    #[test]
    fn decodes_what_it_encodes_and_plus_as_space() {
        let text = "4/0Af+ x=&é";
        assert_eq!(decode(&encode(text)).as_deref(), Some(text));
        assert_eq!(decode("a+b%20c").as_deref(), Some("a b c"));
        assert_eq!(decode("%zz"), None);
        assert_eq!(decode("%4"), None);
        assert_eq!(decode("%FF"), None);
    }

    #[test]
    fn parses_pairs() {
        let parsed = parse("code=4%2Fx&state=abc&flag&&empty=").unwrap_or_default();
        assert_eq!(get(&parsed, "code"), Some("4/x"));
        assert_eq!(get(&parsed, "state"), Some("abc"));
        assert_eq!(get(&parsed, "flag"), Some(""));
        assert_eq!(get(&parsed, "empty"), Some(""));
        assert_eq!(get(&parsed, "none"), None);
        assert_eq!(parse("a=%zz"), None);
        assert_eq!(
            pairs(&[("a b", "c&d"), ("e", "")]),
            "a%20b=c%26d&e=".to_string()
        );
    }
}
