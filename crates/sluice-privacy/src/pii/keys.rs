//! Classes named by a field's key.
//!
//! A key is split into lowercase words at `_`, `-`, `.`, spaces and camelCase boundaries
//! (`billingCardNumber` → `billing card number`); a class is named by a word or by two words
//! in a row. Matching whole words keeps `zip` from reading as `ip` and `tokens_used` from
//! reading as a token.

use super::PiiClass;

/// Words that name a class on their own.
const WORDS: &[(&str, PiiClass)] = &[
    ("password", PiiClass::Secret),
    ("passwd", PiiClass::Secret),
    ("pwd", PiiClass::Secret),
    ("passphrase", PiiClass::Secret),
    ("secret", PiiClass::Secret),
    ("token", PiiClass::Secret),
    ("apikey", PiiClass::Secret),
    ("credentials", PiiClass::Secret),
    ("credential", PiiClass::Secret),
    ("authorization", PiiClass::Secret),
    ("cvv", PiiClass::Secret),
    ("cvc", PiiClass::Secret),
    ("dob", PiiClass::DateOfBirth),
    ("birthdate", PiiClass::DateOfBirth),
    ("birthday", PiiClass::DateOfBirth),
    ("ssn", PiiClass::UsSsn),
    ("iban", PiiClass::Iban),
    ("email", PiiClass::Email),
    ("emails", PiiClass::Email),
    ("phone", PiiClass::Phone),
    ("phones", PiiClass::Phone),
    ("telephone", PiiClass::Phone),
    ("msisdn", PiiClass::Phone),
    ("ip", PiiClass::IpAddress),
    ("ipv4", PiiClass::IpAddress),
    ("ipv6", PiiClass::IpAddress),
    ("ipaddress", PiiClass::IpAddress),
    ("pan", PiiClass::PaymentCard),
];

/// Two words in a row that name a class.
const PAIRS: &[(&str, &str, PiiClass)] = &[
    ("api", "key", PiiClass::Secret),
    ("private", "key", PiiClass::Secret),
    ("access", "key", PiiClass::Secret),
    ("secret", "key", PiiClass::Secret),
    ("birth", "date", PiiClass::DateOfBirth),
    ("of", "birth", PiiClass::DateOfBirth),
    ("social", "security", PiiClass::UsSsn),
    ("card", "number", PiiClass::PaymentCard),
    ("credit", "card", PiiClass::PaymentCard),
    ("debit", "card", PiiClass::PaymentCard),
    ("cc", "number", PiiClass::PaymentCard),
    ("e", "mail", PiiClass::Email),
    ("mobile", "number", PiiClass::Phone),
];

/// The class a key names, if any. Secrets win over everything else
/// (`email_password` is a password).
pub fn class_of_key(key: &str) -> Option<PiiClass> {
    let words = words(key);
    let mut named = None;
    for (index, word) in words.iter().enumerate() {
        let mut found = WORDS
            .iter()
            .find(|(known, _)| known == word)
            .map(|(_, class)| *class);
        if found.is_none()
            && let Some(next) = words.get(index + 1)
        {
            found = PAIRS
                .iter()
                .find(|(first, second, _)| first == word && second == next)
                .map(|(_, _, class)| *class);
        }
        match found {
            Some(PiiClass::Secret) => return Some(PiiClass::Secret),
            Some(class) if named.is_none() => named = Some(class),
            _ => {}
        }
    }
    named
}

/// Lowercase words of a key.
pub fn words(key: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut previous: Option<char> = None;
    for c in key.chars() {
        if c == '_' || c == '-' || c == '.' || c == ' ' || c == '$' || c == ':' {
            push_word(&mut words, &mut current);
        } else {
            // camelCase: a capital after a lowercase letter or digit starts a word.
            if c.is_uppercase() && previous.is_some_and(|p| p.is_lowercase() || p.is_ascii_digit())
            {
                push_word(&mut words, &mut current);
            }
            current.extend(c.to_lowercase());
        }
        previous = Some(c);
    }
    push_word(&mut words, &mut current);
    words
}

fn push_word(words: &mut Vec<String>, current: &mut String) {
    if !current.is_empty() {
        words.push(std::mem::take(current));
    }
}
