//! Classes recognised from a value's shape, with the checksums that keep random numbers out.

use std::net::IpAddr;

use super::PiiClass;

/// Longer strings are not looked at: no class here is longer than a PEM key's first line,
/// and a free-text field is not one value.
const MAX_LEN: usize = 256;

/// The class of a value that shows it on its own, in this order: secrets, email, card, SSN,
/// IBAN, IP address, phone.
pub fn class_of_value(text: &str) -> Option<PiiClass> {
    let text = text.trim();
    if text.is_empty() || text.len() > MAX_LEN {
        return pem_key(text).then_some(PiiClass::Secret);
    }
    if is_known_secret(text) {
        Some(PiiClass::Secret)
    } else if is_email(text) {
        Some(PiiClass::Email)
    } else if is_card(text) {
        Some(PiiClass::PaymentCard)
    } else if is_ssn(text, true) {
        Some(PiiClass::UsSsn)
    } else if is_iban(text) {
        Some(PiiClass::Iban)
    } else if is_ip(text) {
        Some(PiiClass::IpAddress)
    } else if is_written_phone(text) {
        Some(PiiClass::Phone)
    } else {
        None
    }
}

/// Whether a value fits `class` once a key has named the class: bare digits count then.
pub fn matches_loosely(class: PiiClass, text: &str) -> bool {
    let text = text.trim();
    if text.is_empty() || text.len() > MAX_LEN {
        return false;
    }
    match class {
        PiiClass::Email => is_email(text),
        PiiClass::Phone => is_written_phone(text) || is_bare_phone(text),
        PiiClass::PaymentCard => is_card(text),
        PiiClass::UsSsn => is_ssn(text, false),
        PiiClass::Iban => is_iban(text),
        PiiClass::IpAddress => is_ip(text),
        PiiClass::DateOfBirth | PiiClass::Secret => true,
    }
}

/// `local@domain.tld`: one `@`, no spaces, a dotted domain whose last label is letters.
pub fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return false;
    }
    if text
        .chars()
        .any(|c| c.is_whitespace() || c == '<' || c == '>' || c == ',')
    {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 || labels.iter().any(|label| label.is_empty()) {
        return false;
    }
    let tld = labels[labels.len() - 1];
    tld.len() >= 2 && tld.chars().all(|c| c.is_alphabetic())
}

/// Digits of a value made of digits and the separators people write numbers with; `None`
/// when anything else is in it.
fn digits_of(text: &str, separators: &[char]) -> Option<String> {
    let mut digits = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else if !separators.contains(&c) {
            return None;
        }
    }
    Some(digits)
}

/// A payment card number: 13 to 19 digits (spaces or dashes between groups), a card network's
/// prefix, and a valid Luhn check digit.
pub fn is_card(text: &str) -> bool {
    let Some(digits) = digits_of(text, &[' ', '-']) else {
        return false;
    };
    (13..=19).contains(&digits.len()) && has_card_prefix(&digits) && luhn_valid(&digits)
}

/// Issuer prefixes of the major networks (Visa, Mastercard, American Express, Discover, JCB,
/// Diners Club, UnionPay, Maestro).
fn has_card_prefix(digits: &str) -> bool {
    let prefix = |n: usize| digits[..n].parse::<u32>().unwrap_or(0);
    let length = digits.len();
    let two = prefix(2);
    let four = prefix(4);
    let three = prefix(3);
    digits.starts_with('4')
        || (51..=55).contains(&two)
        || (2221..=2720).contains(&four)
        || ((two == 34 || two == 37) && length == 15)
        || four == 6011
        || two == 65
        || (644..=649).contains(&three)
        || (3528..=3589).contains(&four)
        || two == 36
        || two == 38
        || (300..=305).contains(&three)
        || two == 62
        || two == 50
        || (56..=69).contains(&two)
}

/// The Luhn (mod 10) check over a string of ASCII digits.
pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0u32;
    for (index, c) in digits.bytes().rev().enumerate() {
        let mut digit = u32::from(c - b'0');
        if index % 2 == 1 {
            digit *= 2;
            if digit > 9 {
                digit -= 9;
            }
        }
        sum += digit;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// A US social security number: `AAA-GG-SSSS` (or nine bare digits when `dashed_only` is
/// false), with an area other than 000, 666 and 900–999, a group other than 00 and a serial
/// other than 0000.
pub fn is_ssn(text: &str, dashed_only: bool) -> bool {
    let digits = if text.len() == 11 {
        let bytes = text.as_bytes();
        if bytes[3] != b'-' || bytes[6] != b'-' {
            return false;
        }
        match digits_of(text, &['-']) {
            Some(digits) => digits,
            None => return false,
        }
    } else if text.len() == 9 && !dashed_only && text.bytes().all(|b| b.is_ascii_digit()) {
        text.to_string()
    } else {
        return false;
    };
    if digits.len() != 9 {
        return false;
    }
    let area = &digits[..3];
    area != "000"
        && area != "666"
        && !area.starts_with('9')
        && &digits[3..5] != "00"
        && &digits[5..] != "0000"
}

/// An IBAN: a country code, two check digits and 11 to 30 letters or digits (spaces between
/// groups allowed), whose ISO 7064 mod-97 remainder is 1.
pub fn is_iban(text: &str) -> bool {
    let compact: String = text.chars().filter(|c| *c != ' ').collect();
    let bytes = compact.as_bytes();
    if !(15..=34).contains(&bytes.len())
        || !bytes[..2].iter().all(u8::is_ascii_uppercase)
        || !bytes[2..4].iter().all(u8::is_ascii_digit)
        || !bytes[4..]
            .iter()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    {
        return false;
    }
    // Move the first four characters to the end, read letters as 10–35, take the remainder
    // digit by digit.
    let mut remainder = 0u32;
    for b in bytes[4..].iter().chain(&bytes[..4]) {
        let value = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b - b'A') + 10
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

/// An IPv4 address in dotted-quad form or an IPv6 address.
pub fn is_ip(text: &str) -> bool {
    text.parse::<IpAddr>().is_ok()
}

/// A phone number written the way people write them: an international `+` with 8 to 15
/// digits, or a punctuated national form such as `(415) 555-0100` or `415-555-0100`.
pub fn is_written_phone(text: &str) -> bool {
    let Some(digits) = digits_of(text, &[' ', '-', '.', '(', ')', '+']) else {
        return false;
    };
    let plus = text.starts_with('+') && text.matches('+').count() == 1;
    if plus {
        return (8..=15).contains(&digits.len());
    }
    if text.contains('+') || !(10..=11).contains(&digits.len()) {
        return false;
    }
    // National forms: `(415) 555-0100`, `415-555-0100`, `415.555.0100`, `415 555 0100`.
    let groups: Vec<usize> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|group| !group.is_empty())
        .map(str::len)
        .collect();
    groups.len() >= 3 && groups[groups.len() - 1] == 4 && groups.iter().all(|n| *n <= 4)
}

/// Seven to fifteen digits, optionally punctuated: a phone number once a key says so.
fn is_bare_phone(text: &str) -> bool {
    digits_of(text, &[' ', '-', '.', '(', ')', '+'])
        .is_some_and(|digits| (7..=15).contains(&digits.len()))
}

/// Secrets whose format gives them away: JSON web tokens, AWS access key ids, PEM private keys.
pub fn is_known_secret(text: &str) -> bool {
    is_jwt(text) || is_aws_access_key(text) || pem_key(text)
}

fn is_jwt(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts[1].starts_with("eyJ")
        && parts.iter().all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn is_aws_access_key(text: &str) -> bool {
    text.len() == 20
        && (text.starts_with("AKIA") || text.starts_with("ASIA"))
        && text[4..]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

fn pem_key(text: &str) -> bool {
    text.trim_start().starts_with("-----BEGIN ") && text.contains("PRIVATE KEY-----")
}
