//! Normalizing identifiers before they are hashed: one rule per (platform, identifier kind),
//! in the table [`RULES`], because the platforms' rules differ (Gmail dots and `+suffix` are
//! removed for Google only; TikTok drops `+suffix` for every domain; Meta wants phones as
//! digits with the country code and no `+`, Google and TikTok E.164 with `+`; only Meta takes
//! names, city, state, ZIP, gender and birth date as separate hashed keys).
//!
//! A rule says what the platform does with the value ([`Output`]): hash it, take it raw
//! (normalized, never hashed: a value that looks hashed is refused), or take it opaque (an id,
//! as given). [`identifier`] applies a rule: a value that is already a SHA-256 in hex goes
//! through lowercased without normalizing; a value that normalizes to nothing is dropped (that
//! identifier only, never the member). The text is NFC-normalized first, so `Zoë` typed either
//! way hashes the same; ASCII text (nearly every email and phone) skips that step.
//!
//! Normalizers write into a caller's buffer, and hashes stay on the stack ([`Hex`]): reading a
//! member allocates only the raw identifiers it keeps.

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

use super::hash::{Hex, is_sha256_hex, md5_hex, sha256_category, sha256_hex};
use super::tables;

/// The ad platforms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    Meta,
    Google,
    TikTok,
}

/// What a value identifies. Not every platform takes every kind (see [`rule`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentifierKind {
    Email,
    Phone,
    FirstName,
    LastName,
    /// Meta `FI`, from the first name.
    FirstInitial,
    Gender,
    BirthYear,
    BirthMonth,
    BirthDay,
    City,
    State,
    PostalCode,
    Country,
    /// IDFA or AAID/GAID.
    MobileAdId,
    /// The CDP's own user id (Meta `EXTERN_ID`, Google `userId`).
    ExternalId,
}

impl IdentifierKind {
    /// A kind whose values are a small set of categories shared by many people (their hashes
    /// are remembered: [`sha256_category`]).
    fn is_category(self) -> bool {
        matches!(
            self,
            K::FirstInitial
                | K::Gender
                | K::BirthYear
                | K::BirthMonth
                | K::BirthDay
                | K::State
                | K::Country
        )
    }
}

/// What the platform does with a normalized value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Hashed (SHA-256, or MD5 where the rule allows it); a 64-hex value is taken as already
    /// hashed.
    Hashed,
    /// Sent normalized but unhashed; a 64-hex value is refused (it cannot be un-hashed).
    Raw,
    /// An opaque id, sent as given (hex ids are fine).
    Opaque,
}

/// The hash function for a hashed identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Digest {
    Sha256,
    /// TikTok's `*_MD5` schemas (mobile ad ids only).
    Md5,
}

/// A country as an ISO 3166-1 alpha-2 code, uppercase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// A country written as a two-letter code or an English name (`us`, `United States`,
    /// `UK`...).
    pub fn parse(text: &str) -> Option<CountryCode> {
        // The letters, lowercased, on the stack: longer than any name in the tables means no
        // country.
        let mut key = [0u8; 32];
        let mut len = 0;
        for byte in text.bytes().filter(u8::is_ascii_alphabetic) {
            if len == key.len() {
                return None;
            }
            key[len] = byte.to_ascii_lowercase();
            len += 1;
        }
        let key = &key[..len];
        // `UK` is only reserved in ISO 3166: the United Kingdom is `GB`.
        if len == 2 && key != b"uk" {
            return Some(CountryCode([
                key[0].to_ascii_uppercase(),
                key[1].to_ascii_uppercase(),
            ]));
        }
        // ASCII letters only, so always UTF-8.
        let code = tables::country_code(std::str::from_utf8(key).ok()?)?.as_bytes();
        Some(CountryCode([code[0], code[1]]))
    }

    /// The code, uppercase.
    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// What a normalizer may need beyond the value: the person's country (their own `country`
/// trait, else the destination's `default_country`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Context {
    pub country: Option<CountryCode>,
}

/// Writes the normalized form of a value into the (empty) buffer; leaves it empty when the
/// value has nothing usable.
pub type Normalizer = fn(&str, &Context, &mut String);

/// How one platform takes one kind of identifier.
#[derive(Clone, Copy)]
pub struct Rule {
    pub normalize: Normalizer,
    pub output: Output,
    /// Whether the platform also takes an MD5 of it.
    pub md5: bool,
}

const fn hashed(normalize: Normalizer) -> Rule {
    Rule {
        normalize,
        output: Output::Hashed,
        md5: false,
    }
}

const fn raw(normalize: Normalizer) -> Rule {
    Rule {
        normalize,
        output: Output::Raw,
        md5: false,
    }
}

const fn opaque(normalize: Normalizer) -> Rule {
    Rule {
        normalize,
        output: Output::Opaque,
        md5: false,
    }
}

use IdentifierKind as K;
use Platform as P;

/// Every (platform, kind) the adapters send, and how.
pub const RULES: &[(Platform, IdentifierKind, Rule)] = &[
    // Meta: "Hashing and Normalizing Data" (Customer File Custom Audiences).
    (P::Meta, K::Email, hashed(email_trim_lower)),
    (P::Meta, K::Phone, hashed(phone_digits)),
    (P::Meta, K::FirstName, hashed(meta_name)),
    (P::Meta, K::LastName, hashed(meta_name)),
    (P::Meta, K::FirstInitial, hashed(meta_first_initial)),
    (P::Meta, K::Gender, hashed(meta_gender)),
    (P::Meta, K::BirthYear, hashed(birth_year)),
    (P::Meta, K::BirthMonth, hashed(birth_month)),
    (P::Meta, K::BirthDay, hashed(birth_day)),
    (P::Meta, K::City, hashed(meta_city)),
    (P::Meta, K::State, hashed(meta_state)),
    (P::Meta, K::PostalCode, hashed(meta_zip)),
    (P::Meta, K::Country, hashed(country_lower)),
    (P::Meta, K::MobileAdId, raw(mobile_id_lower)),
    (P::Meta, K::ExternalId, opaque(as_given)),
    // Google Data Manager: "Format user data".
    (P::Google, K::Email, hashed(google_email)),
    (P::Google, K::Phone, hashed(phone_e164)),
    (P::Google, K::FirstName, hashed(google_given_name)),
    (P::Google, K::LastName, hashed(google_family_name)),
    (P::Google, K::Country, raw(country_upper)),
    (P::Google, K::PostalCode, raw(trimmed)),
    (P::Google, K::MobileAdId, raw(mobile_id_as_given)),
    (P::Google, K::ExternalId, opaque(as_given)),
    // TikTok: "Supported IDs and formats for a customer file" (Aug 2025).
    (P::TikTok, K::Email, hashed(tiktok_email)),
    (P::TikTok, K::Phone, hashed(phone_e164)),
    (
        P::TikTok,
        K::MobileAdId,
        Rule {
            normalize: mobile_id_lower,
            output: Output::Hashed,
            md5: true,
        },
    ),
];

/// Identifier kinds.
const KINDS: usize = IdentifierKind::ExternalId as usize + 1;

/// [`RULES`] by platform and kind, so a lookup is an index.
static BY_KIND: [[Option<Rule>; KINDS]; 3] = {
    let mut table = [[None; KINDS]; 3];
    let mut index = 0;
    while index < RULES.len() {
        let (platform, kind, rule) = RULES[index];
        table[platform as usize][kind as usize] = Some(rule);
        index += 1;
    }
    table
};

/// How `platform` takes `kind`, or `None` when it does not take it.
pub fn rule(platform: Platform, kind: IdentifierKind) -> Option<&'static Rule> {
    BY_KIND[platform as usize][kind as usize].as_ref()
}

/// The normalized text of a value (before hashing), `None` when the platform does not take the
/// kind or nothing usable is left.
pub fn normalize(
    platform: Platform,
    kind: IdentifierKind,
    value: &str,
    context: &Context,
) -> Option<String> {
    let rule = rule(platform, kind)?;
    let mut out = String::new();
    (rule.normalize)(value, context, &mut out);
    (!out.is_empty()).then_some(out)
}

/// One identifier as the platform takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identifier {
    /// A digest in lowercase hex.
    Hashed(Hex),
    /// A value sent as text (raw or opaque).
    Plain(String),
}

impl Identifier {
    /// The text sent (hex for hashed identifiers).
    pub fn text(&self) -> String {
        match self {
            Identifier::Hashed(hex) => hex.text(),
            Identifier::Plain(text) => text.clone(),
        }
    }
}

/// `value` as `platform` takes a `kind` identifier: normalized and hashed with `digest`, raw
/// or opaque, per [`rule`]. `scratch` is a reusable buffer. `None` when the platform does not
/// take the kind (or an MD5 of it), when nothing is left after normalizing, when a raw field
/// holds what looks like a hash, or when an MD5 is asked for a value already hashed with
/// SHA-256.
pub fn identifier(
    platform: Platform,
    kind: IdentifierKind,
    value: &str,
    context: &Context,
    digest: Digest,
    scratch: &mut String,
) -> Option<Identifier> {
    let rule = rule(platform, kind)?;
    let trimmed = trim(value);
    scratch.clear();
    match rule.output {
        Output::Hashed => {
            if digest == Digest::Md5 && !rule.md5 {
                return None;
            }
            if is_sha256_hex(trimmed) {
                return match digest {
                    Digest::Sha256 => Hex::from_sha256_hex(trimmed).map(Identifier::Hashed),
                    Digest::Md5 => None,
                };
            }
            (rule.normalize)(value, context, scratch);
            if scratch.is_empty() {
                return None;
            }
            Some(Identifier::Hashed(match digest {
                Digest::Sha256 if kind.is_category() => sha256_category(scratch),
                Digest::Sha256 => sha256_hex(scratch),
                Digest::Md5 => md5_hex(scratch),
            }))
        }
        Output::Raw => {
            if is_sha256_hex(trimmed) {
                return None;
            }
            (rule.normalize)(value, context, scratch);
            (!scratch.is_empty()).then(|| Identifier::Plain(scratch.clone()))
        }
        Output::Opaque => {
            (rule.normalize)(value, context, scratch);
            (!scratch.is_empty()).then(|| Identifier::Plain(scratch.clone()))
        }
    }
}

// ---- shared steps ----

/// `text` without the whitespace around it, as `str::trim` has it. Text that starts and ends
/// with visible ASCII, as nearly every identifier does, is returned without decoding
/// characters from both ends.
pub(crate) fn trim(text: &str) -> &str {
    let visible = |byte: Option<&u8>| byte.is_some_and(|byte| (0x21..0x80).contains(byte));
    let bytes = text.as_bytes();
    if visible(bytes.first()) && visible(bytes.last()) {
        return text;
    }
    text.trim()
}

/// Pushes `text` NFC-normalized, lowercased, keeping the characters `keep` accepts (after
/// lowercasing). ASCII text skips NFC (it is always NFC).
fn push_lower(text: &str, out: &mut String, keep: impl Fn(char) -> bool) {
    let ascii = text.is_ascii();
    if ascii
        && text
            .bytes()
            .all(|b| keep(char::from(b.to_ascii_lowercase())))
    {
        // Nothing to drop: copied whole and lowercased in place, not character by character.
        let start = out.len();
        out.push_str(text);
        out[start..].make_ascii_lowercase();
        return;
    }
    if ascii || is_nfc_quick(text.chars()) == IsNormalized::Yes {
        // Already NFC, as text from an SDK nearly always is: no need to recompose. Character
        // by character, ASCII without the general lowercase mapping.
        out.reserve(text.len());
        for c in text.chars() {
            if c.is_ascii() {
                let lower = c.to_ascii_lowercase();
                if keep(lower) {
                    out.push(lower);
                }
            } else {
                for lower in c.to_lowercase() {
                    if keep(lower) {
                        out.push(lower);
                    }
                }
            }
        }
    } else {
        out.extend(text.nfc().flat_map(char::to_lowercase).filter(|c| keep(*c)));
    }
}

/// Pushes the ASCII letters of `text`, lowercased, after taking accents off (NFD, marks
/// dropped: `Köln` → `koln`); other characters are dropped.
fn push_ascii_letters(text: &str, out: &mut String) {
    let keep = |c: &char| c.is_ascii_alphabetic();
    if text.is_ascii() {
        out.extend(text.chars().filter(keep).map(|c| c.to_ascii_lowercase()));
    } else {
        out.extend(text.nfd().filter(keep).map(|c| c.to_ascii_lowercase()));
    }
}

/// Whether a normalized email has a non-empty local part and domain around its last `@`.
fn email_ok(email: &str) -> bool {
    email
        .rsplit_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
}

/// The all-zero advertising id a device sends when tracking is not allowed.
const ZERO_AD_ID: &str = "00000000-0000-0000-0000-000000000000";

// ---- email ----

/// Meta: trim, lowercase; no Gmail handling.
fn email_trim_lower(value: &str, _: &Context, out: &mut String) {
    push_lower(trim(value), out, |_| true);
    if !email_ok(out) {
        out.clear();
    }
}

/// Google: lowercase, no whitespace anywhere; for `gmail.com` and `googlemail.com` only, no
/// dots and no `+suffix` in the local part.
fn google_email(value: &str, _: &Context, out: &mut String) {
    push_lower(value, out, |c| !c.is_whitespace());
    let Some(at) = out.rfind('@') else {
        out.clear();
        return;
    };
    let domain = &out[at + 1..];
    if domain == "gmail.com" || domain == "googlemail.com" {
        // In place: the `+suffix` cut, then the dots of the local part.
        let mut at = at;
        if let Some(plus) = out[..at].find('+') {
            out.replace_range(plus..at, "");
            at = plus;
        }
        while let Some(dot) = out[..at].rfind('.') {
            out.remove(dot);
            at -= 1;
        }
    }
    if !email_ok(out) {
        out.clear();
    }
}

/// TikTok: no spaces, lowercase, no `+suffix` in the local part (any domain). Dots are kept:
/// TikTok's rule since August 2025 (the older "remove all dots" is gone).
fn tiktok_email(value: &str, _: &Context, out: &mut String) {
    push_lower(value, out, |c| !c.is_whitespace());
    let Some(at) = out.rfind('@') else {
        out.clear();
        return;
    };
    if let Some(plus) = out[..at].find('+') {
        out.replace_range(plus..at, "");
    }
    if !email_ok(out) {
        out.clear();
    }
}

// ---- phone ----

/// Most digits a phone number may have before cleaning.
const MAX_PHONE_DIGITS: usize = 24;

/// The international form of a phone number as digits (country code first, no `+`, no
/// leading zeros), or `None`. A number written with `+` or an international `00` prefix is
/// international; any other is national, completed with the calling code of the person's
/// country (`Context::country`) after its trunk prefix is dropped — or, for a country with a
/// trunk prefix, taken as international when it starts with the calling code instead. Without
/// a known country a national number cannot be completed. E.164 allows 15 digits at most.
fn international_digits(value: &str, context: &Context, out: &mut String) {
    let text = trim(value);
    let plus = text.starts_with('+');
    let mut digits = [0u8; MAX_PHONE_DIGITS];
    let mut len = 0;
    // Byte by byte: digits and `(0)` are ASCII, and no byte of another character is.
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        // `+44 (0)20 …`: the bracketed trunk zero is not dialled from abroad.
        if plus && bytes[at..].starts_with(b"(0)") {
            at += 3;
            continue;
        }
        if byte.is_ascii_digit() {
            if len == MAX_PHONE_DIGITS {
                return;
            }
            digits[len] = byte;
            len += 1;
        }
        at += 1;
    }
    let digits = &digits[..len];
    let start = out.len();
    if plus || digits.starts_with(b"00") {
        push_digits(digits, out);
    } else {
        let Some(country) = context
            .country
            .and_then(|code| tables::country(code.as_str()))
        else {
            return;
        };
        let trunk = country.trunk.as_bytes();
        let calling = country.calling.as_bytes();
        if calling == b"1" && digits.starts_with(b"011") {
            // The North American international prefix.
            push_digits(&digits[3..], out);
        } else if !trunk.is_empty() && digits.starts_with(trunk) {
            out.push_str(country.calling);
            push_digits(&digits[trunk.len()..], out);
        } else if !trunk.is_empty() && digits.starts_with(calling) {
            push_digits(digits, out);
        } else {
            out.push_str(country.calling);
            push_digits(digits, out);
        }
    }
    // No leading zeros (`0044…` → `44…`), and a plausible length.
    let zeros = out[start..].bytes().take_while(|b| *b == b'0').count();
    out.replace_range(start..start + zeros, "");
    let count = out.len() - start;
    if !(7..=15).contains(&count) {
        out.truncate(start);
    }
}

fn push_digits(digits: &[u8], out: &mut String) {
    out.extend(digits.iter().map(|d| char::from(*d)));
}

/// Meta: digits only, country code first, no `+`, no leading zeros.
fn phone_digits(value: &str, context: &Context, out: &mut String) {
    international_digits(value, context, out);
}

/// Google and TikTok: E.164 (`+` and the digits).
fn phone_e164(value: &str, context: &Context, out: &mut String) {
    out.push('+');
    international_digits(value, context, out);
    if out.len() == 1 {
        out.clear();
    }
}

// ---- names ----

/// Meta FN/LN: lowercase, letters only (no punctuation, spaces or digits); letters outside
/// a–z kept as UTF-8 (NFC).
fn meta_name(value: &str, _: &Context, out: &mut String) {
    push_lower(trim(value), out, char::is_alphabetic);
}

/// Meta FI: the first letter of the normalized first name.
fn meta_first_initial(value: &str, context: &Context, out: &mut String) {
    let bytes = trim(value).as_bytes();
    if let [first, next, ..] = bytes
        && first.is_ascii_alphabetic()
        && next.is_ascii()
    {
        // An ASCII letter followed by ASCII: no accent can combine with it, so it is the
        // initial, lowercased.
        out.push(char::from(first.to_ascii_lowercase()));
        return;
    }
    meta_name(value, context, out);
    if let Some(first) = out.chars().next() {
        out.truncate(first.len_utf8());
    }
}

/// Titles Google wants taken off the front of a given name.
const NAME_PREFIXES: &[&str] = &[
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "madam", "mme", "mlle", "herr", "frau",
];

/// Suffixes Google wants taken off the end of a family name.
const NAME_SUFFIXES: &[&str] = &[
    "jr", "sr", "ii", "iii", "iv", "v", "phd", "md", "dds", "esq", "jnr", "snr",
];

/// Lowercase, punctuation dropped, inner whitespace collapsed to single spaces, trimmed.
fn google_name_words(value: &str, out: &mut String) {
    if value.is_ascii() {
        // Word by word, straight into `out`: a word of punctuation alone leaves nothing.
        for word in value.split_whitespace() {
            let letters = word.bytes().filter(u8::is_ascii_alphabetic);
            if letters.clone().next().is_none() {
                continue;
            }
            if !out.is_empty() {
                out.push(' ');
            }
            out.extend(letters.map(|b| char::from(b.to_ascii_lowercase())));
        }
        return;
    }
    let mut lowered = String::with_capacity(value.len());
    push_lower(value, &mut lowered, |c| {
        c.is_alphabetic() || c.is_whitespace()
    });
    for word in lowered.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
}

/// Google `givenName`: lowercase, trimmed, no punctuation, no title in front (`Mrs. Mary` →
/// `mary`).
fn google_given_name(value: &str, _: &Context, out: &mut String) {
    google_name_words(value, out);
    let cut = match out.split_once(' ') {
        Some((first, _)) if NAME_PREFIXES.contains(&first) => first.len() + 1,
        _ => 0,
    };
    out.replace_range(..cut, "");
}

/// Google `familyName`: lowercase, trimmed, no punctuation, no suffix at the end (`Smith Jr.`
/// → `smith`).
fn google_family_name(value: &str, _: &Context, out: &mut String) {
    google_name_words(value, out);
    let keep = match out.rsplit_once(' ') {
        Some((rest, last)) if NAME_SUFFIXES.contains(&last) => rest.len(),
        _ => out.len(),
    };
    out.truncate(keep);
}

// ---- Meta demographics ----

/// `m` or `f`; anything else is dropped (not guessed).
fn meta_gender(value: &str, _: &Context, out: &mut String) {
    // Every accepted word is ASCII, and no other text lowercases to one of them (the one
    // non-ASCII letter that lowercases to ASCII is the Kelvin sign, to `k`), so an ASCII
    // comparison ignoring case decides.
    let text = trim(value);
    let is = |word: &str| text.eq_ignore_ascii_case(word);
    if is("m") || is("male") || is("man") {
        out.push('m');
    } else if is("f") || is("female") || is("woman") {
        out.push('f');
    }
}

/// The whole number of a short all-digit text.
fn small_number(value: &str, max_digits: usize) -> Option<u32> {
    let text = trim(value);
    if text.is_empty() || text.len() > max_digits || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Pushes `n` as exactly `digits` decimal digits (zero-padded; `n` has no more).
fn push_number(out: &mut String, n: u32, digits: u32) {
    for place in (0..digits).rev() {
        let digit = (n / 10u32.pow(place)) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

/// `YYYY`, from 1900 to this year.
fn birth_year(value: &str, _: &Context, out: &mut String) {
    let Some(year) = small_number(value, 4).filter(|_| trim(value).len() == 4) else {
        return;
    };
    // The clock is read only for a year that could be in the future: it is at least
    // `KNOWN_PAST` now, and reading it for every member costs more than the rest of this.
    const KNOWN_PAST: u32 = 2026;
    let past = (1900..=KNOWN_PAST).contains(&year)
        || (year > KNOWN_PAST
            && year <= u32::try_from(time::OffsetDateTime::now_utc().year()).unwrap_or(0));
    if past {
        push_number(out, year, 4);
    }
}

/// `MM`, 01 to 12.
fn birth_month(value: &str, _: &Context, out: &mut String) {
    if let Some(month) = small_number(value, 2).filter(|m| (1..=12).contains(m)) {
        push_number(out, month, 2);
    }
}

/// `DD`, 01 to 31.
fn birth_day(value: &str, _: &Context, out: &mut String) {
    if let Some(day) = small_number(value, 2).filter(|d| (1..=31).contains(d)) {
        push_number(out, day, 2);
    }
}

/// Meta CT: a–z only (accents taken off), lowercase.
fn meta_city(value: &str, _: &Context, out: &mut String) {
    push_ascii_letters(value, out);
}

/// Meta ST: a US state's two-letter code (from its name or code), lowercase; elsewhere a–z
/// only. A name is read as a US state when the person's country is the US or unknown.
fn meta_state(value: &str, context: &Context, out: &mut String) {
    push_ascii_letters(value, out);
    let us = context.country.is_none_or(|code| code.as_str() == "US");
    if let Some(code) = tables::us_state(out).filter(|_| us) {
        out.clear();
        out.push_str(code);
    }
}

/// Meta ZIP: lowercase, no spaces; US: the first five digits (`94105-1234` → `94105`); UK:
/// area, district and sector (`SW1A 1AA` → `sw1a1`).
fn meta_zip(value: &str, context: &Context, out: &mut String) {
    push_lower(trim(value), out, |c| !c.is_whitespace());
    let country = context.country.as_ref().map(CountryCode::as_str);
    match country {
        None | Some("US") => {
            let bytes = out.as_bytes();
            let digits = |range: std::ops::Range<usize>| {
                bytes
                    .get(range)
                    .is_some_and(|part| part.iter().all(u8::is_ascii_digit))
            };
            let zip5 = bytes.len() == 5 && digits(0..5);
            let zip9 = bytes.len() == 9 && digits(0..9);
            let zip_plus4 = bytes.len() == 10 && digits(0..5) && bytes[5] == b'-' && digits(6..10);
            if zip9 || zip_plus4 {
                out.truncate(5);
            } else if !zip5 && country.is_some() {
                // Not a US ZIP code although the person is in the US: not usable.
                out.clear();
            }
        }
        Some("GB") => {
            out.retain(|c| c.is_ascii_alphanumeric());
            if out.len() >= 5 {
                out.truncate(out.len() - 2);
            } else {
                out.clear();
            }
        }
        Some(_) => {}
    }
}

/// Meta COUNTRY: ISO alpha-2, lowercase.
fn country_lower(value: &str, _: &Context, out: &mut String) {
    if let Some(code) = CountryCode::parse(value) {
        out.extend(code.as_str().chars().map(|c| c.to_ascii_lowercase()));
    }
}

/// Google `regionCode`: ISO alpha-2, uppercase.
fn country_upper(value: &str, _: &Context, out: &mut String) {
    if let Some(code) = CountryCode::parse(value) {
        out.push_str(code.as_str());
    }
}

// ---- ids ----

/// Mobile ad id, trimmed and lowercased, hyphens kept (Meta MADID; TikTok before hashing).
fn mobile_id_lower(value: &str, _: &Context, out: &mut String) {
    out.push_str(trim(value));
    out.make_ascii_lowercase();
    if out == ZERO_AD_ID {
        out.clear();
    }
}

/// Mobile ad id, trimmed, otherwise as given (Google `mobileIds`).
fn mobile_id_as_given(value: &str, _: &Context, out: &mut String) {
    let text = trim(value);
    if !text.eq_ignore_ascii_case(ZERO_AD_ID) {
        out.push_str(text);
    }
}

/// Trimmed (Google `postalCode`).
fn trimmed(value: &str, _: &Context, out: &mut String) {
    out.push_str(trim(value));
}

/// Exactly as given (user ids).
fn as_given(value: &str, _: &Context, out: &mut String) {
    out.push_str(value);
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_quick_trim_is_str_trim() {
        let spaces = [
            "", " ", "\t", "\n", "\r", "\u{a0}", "\u{85}", "\u{2003}", "\u{3000}", "\u{7f}",
        ];
        let bodies = [
            "", "a", "a b", "Zoë", "é", "\u{7f}x", "x\u{7f}", "\u{a0}", "~",
        ];
        for before in spaces {
            for body in bodies {
                for after in spaces {
                    let text = format!("{before}{body}{after}");
                    assert_eq!(trim(&text), text.trim(), "{text:?}");
                }
            }
        }
    }

    use super::*;

    fn ctx(country: &str) -> Context {
        Context {
            country: CountryCode::parse(country),
        }
    }

    fn norm(platform: Platform, kind: IdentifierKind, value: &str, country: &str) -> String {
        normalize(platform, kind, value, &ctx(country)).unwrap_or_default()
    }

    #[test]
    fn every_platform_kind_pair_has_one_rule() {
        for (index, (platform, kind, _)) in RULES.iter().enumerate() {
            let same = RULES
                .iter()
                .filter(|(p, k, _)| p == platform && k == kind)
                .count();
            assert_eq!(same, 1, "rule {index}: {platform:?} {kind:?}");
        }
        assert!(rule(Platform::TikTok, IdentifierKind::FirstName).is_none());
        assert!(rule(Platform::Google, IdentifierKind::Gender).is_none());
    }

    #[test]
    fn countries_parse_from_codes_and_names() {
        for (text, code) in [
            ("us", "US"),
            (" US ", "US"),
            ("United States", "US"),
            ("USA", "US"),
            ("uk", "GB"),
            ("United Kingdom", "GB"),
            ("Deutschland", "DE"),
            ("zz", "ZZ"),
        ] {
            assert_eq!(
                CountryCode::parse(text).map(|c| c.as_str().to_string()),
                Some(code.to_string()),
                "{text}"
            );
        }
        for text in ["", "u", "Atlantis", "123"] {
            assert_eq!(CountryCode::parse(text), None, "{text}");
        }
    }

    #[test]
    fn phones_become_international() {
        use IdentifierKind::Phone;
        let meta = |value: &str, country: &str| norm(Platform::Meta, Phone, value, country);
        let google = |value: &str, country: &str| norm(Platform::Google, Phone, value, country);
        assert_eq!(meta("+1 (555) 987-6543", ""), "15559876543");
        assert_eq!(meta("1-555-987-6543", "US"), "15559876543");
        assert_eq!(meta("011 44 20 7183 8750", "US"), "442071838750");
        assert_eq!(google("+44 (0)20 7183 8750", ""), "+442071838750");
        // Characters of more than one byte are passed over, digits of other scripts too.
        assert_eq!(meta("+1 555 ☎ 987 6543 é", ""), "15559876543");
        assert_eq!(meta("+1 555 987 6543 ١٢", ""), "15559876543");
        // `(0)` is dropped only from an international number.
        assert_eq!(meta("(0)1 555 987 6543", "US"), "1015559876543");
        assert_eq!(google("442071838750", "GB"), "+442071838750");
        assert_eq!(google("06 1 234 5678", "HU"), "+3612345678");
        assert_eq!(google("06 1 234 5678", "Hungary"), "+3612345678");
        // Italy has no trunk prefix: the leading zero is part of the number.
        assert_eq!(google("06 1234 5678", "IT"), "+390612345678");
        // A national number without a country cannot be completed.
        assert_eq!(google("020 7183 8750", ""), "");
        assert_eq!(google("020 7183 8750", "ZZ"), "");
        // Nothing left, too short, too long.
        assert_eq!(meta("+0000000000", ""), "");
        assert_eq!(google("+0000000000", ""), "");
        assert_eq!(google("+1 23", ""), "");
        assert_eq!(google("+1234567890123456", ""), "");
        assert_eq!(google("not a phone", "US"), "");
        assert_eq!(google(&"9".repeat(40), "US"), "");
    }

    #[test]
    fn emails_without_an_at_sign_are_dropped() {
        for platform in [Platform::Meta, Platform::Google, Platform::TikTok] {
            for bad in [
                "",
                "   ",
                "mary",
                "@example.com",
                "mary@",
                "+promo@example.com",
            ] {
                let kept = normalize(platform, IdentifierKind::Email, bad, &Context::default());
                // Only TikTok strips `+suffix` outside Gmail: `+promo@` is a local part elsewhere.
                if platform != Platform::TikTok && bad.starts_with('+') {
                    assert_eq!(kept.as_deref(), Some("+promo@example.com"));
                } else {
                    assert_eq!(kept, None, "{platform:?} {bad:?}");
                }
            }
        }
    }

    #[test]
    fn meta_demographics_edge_cases() {
        use IdentifierKind::*;
        let meta = |kind, value: &str, country: &str| norm(Platform::Meta, kind, value, country);
        assert_eq!(meta(Gender, "MALE", ""), "m");
        assert_eq!(meta(Gender, "nonbinary", ""), "");
        assert_eq!(meta(BirthYear, "1899", ""), "");
        assert_eq!(meta(BirthYear, "3000", ""), "");
        let this_year = time::OffsetDateTime::now_utc().year();
        assert_eq!(
            meta(BirthYear, &this_year.to_string(), ""),
            this_year.to_string()
        );
        assert_eq!(meta(BirthYear, &(this_year + 1).to_string(), ""), "");
        assert_eq!(meta(BirthYear, " 1900", ""), "1900");
        assert_eq!(meta(BirthYear, "85", ""), "");
        assert_eq!(meta(BirthMonth, "13", ""), "");
        assert_eq!(meta(BirthMonth, "12", ""), "12");
        assert_eq!(meta(BirthDay, "0", ""), "");
        assert_eq!(meta(BirthDay, "x", ""), "");
        assert_eq!(meta(City, "Köln", "DE"), "koln");
        assert_eq!(meta(City, "St. Louis", "US"), "stlouis");
        assert_eq!(meta(State, "New York", ""), "ny");
        assert_eq!(meta(State, "new-york", "US"), "ny");
        assert_eq!(meta(State, "NY", "US"), "ny");
        // Outside the US a name stays a name.
        assert_eq!(meta(State, "Georgia", "GE"), "georgia");
        assert_eq!(meta(State, "Île-de-France", "FR"), "iledefrance");
        assert_eq!(meta(PostalCode, " 94105 ", "US"), "94105");
        assert_eq!(meta(PostalCode, "941051234", ""), "94105");
        assert_eq!(meta(PostalCode, "ABC", "US"), "");
        assert_eq!(meta(PostalCode, "SW1A 1AA", "GB"), "sw1a1");
        assert_eq!(meta(PostalCode, "75008", "FR"), "75008");
        assert_eq!(meta(PostalCode, "K1A 0B1", "CA"), "k1a0b1");
        assert_eq!(meta(Country, "United States", ""), "us");
        assert_eq!(meta(MobileAdId, ZERO_AD_ID, ""), "");
        assert_eq!(meta(FirstInitial, "Émile", ""), "é");
        assert_eq!(meta(FirstName, "  ", ""), "");
    }

    #[test]
    fn google_names_lose_titles_and_suffixes_only_when_more_is_left() {
        use IdentifierKind::*;
        let google = |kind, value: &str| norm(Platform::Google, kind, value, "");
        assert_eq!(google(FirstName, "Dr. Mary Ann"), "mary ann");
        assert_eq!(google(FirstName, "Dr"), "dr");
        assert_eq!(google(LastName, "de la Cruz III"), "de la cruz");
        assert_eq!(google(LastName, "Jr"), "jr");
        assert_eq!(google(LastName, "O'Brien-Smith"), "obriensmith");
    }

    #[test]
    fn raw_fields_refuse_hashes_and_opaque_ids_keep_them() {
        let hash = "f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79";
        let mut scratch = String::new();
        let context = Context::default();
        let take = |platform, kind, scratch: &mut String| {
            identifier(platform, kind, hash, &context, Digest::Sha256, scratch)
        };
        assert_eq!(
            take(Platform::Google, IdentifierKind::PostalCode, &mut scratch),
            None
        );
        assert_eq!(
            take(Platform::Google, IdentifierKind::Country, &mut scratch),
            None
        );
        assert_eq!(
            take(Platform::Google, IdentifierKind::MobileAdId, &mut scratch),
            None
        );
        assert_eq!(
            take(Platform::Meta, IdentifierKind::MobileAdId, &mut scratch),
            None
        );
        assert_eq!(
            take(Platform::Meta, IdentifierKind::ExternalId, &mut scratch),
            Some(Identifier::Plain(hash.into()))
        );
        // A SHA-256 cannot be sent where an MD5 is asked for, and MD5 is TikTok's mobile ids only.
        assert_eq!(
            identifier(
                Platform::TikTok,
                IdentifierKind::MobileAdId,
                hash,
                &context,
                Digest::Md5,
                &mut scratch
            ),
            None
        );
        assert_eq!(
            identifier(
                Platform::TikTok,
                IdentifierKind::Email,
                "a@b.c",
                &context,
                Digest::Md5,
                &mut scratch
            ),
            None
        );
        // A kind the platform does not take.
        assert_eq!(
            identifier(
                Platform::TikTok,
                IdentifierKind::City,
                "Paris",
                &context,
                Digest::Sha256,
                &mut scratch
            ),
            None
        );
    }

    /// The allocating forms these normalizers had before they wrote in place: the reference
    /// the property tests hold them to.
    mod reference {
        use super::super::*;

        /// What `push_lower` pushes: NFC, lowercased, filtered.
        pub(super) fn lower(text: &str, keep: impl Fn(char) -> bool) -> String {
            text.nfc()
                .flat_map(char::to_lowercase)
                .filter(|c| keep(*c))
                .collect()
        }

        pub(super) fn google_name_words(value: &str, out: &mut String) {
            let mut lowered = String::with_capacity(value.len());
            push_lower(value, &mut lowered, |c| {
                c.is_alphabetic() || c.is_whitespace()
            });
            for word in lowered.split_whitespace() {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(word);
            }
        }

        pub(super) fn meta_gender(value: &str, out: &mut String) {
            let mut lowered = String::with_capacity(value.len());
            push_lower(value.trim(), &mut lowered, |_| true);
            match lowered.as_str() {
                "m" | "male" | "man" => out.push('m'),
                "f" | "female" | "woman" => out.push('f'),
                _ => {}
            }
        }

        pub(super) fn google_email(value: &str, out: &mut String) {
            push_lower(value, out, |c| !c.is_whitespace());
            let Some(at) = out.rfind('@') else {
                out.clear();
                return;
            };
            let domain = &out[at + 1..];
            if domain == "gmail.com" || domain == "googlemail.com" {
                let local = &out[..at];
                let local = local.split_once('+').map_or(local, |(kept, _)| kept);
                let cleaned: String = local.chars().filter(|c| *c != '.').collect();
                out.replace_range(..at, &cleaned);
            }
            if !email_ok(out) {
                out.clear();
            }
        }

        pub(super) fn country(text: &str) -> Option<CountryCode> {
            let mut key = String::with_capacity(text.len());
            key.extend(
                text.chars()
                    .filter(char::is_ascii_alphabetic)
                    .map(|c| c.to_ascii_lowercase()),
            );
            if key.len() == 2 && key != "uk" {
                let bytes = key.as_bytes();
                return Some(CountryCode([
                    bytes[0].to_ascii_uppercase(),
                    bytes[1].to_ascii_uppercase(),
                ]));
            }
            let code = tables::country_code(&key)?.as_bytes();
            Some(CountryCode([code[0], code[1]]))
        }
    }

    /// Text with the characters that matter here: letters (some accented, the Kelvin sign),
    /// punctuation, every kind of whitespace, dots, `+` and `@`.
    fn text() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::string::string_regex(
            "[a-zA-Z .+@'\\-\t\n\u{0B}\u{0C}\r\u{A0}\u{2003}éÉöß\u{301}\u{212A}İ]{0,24}",
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    proptest::proptest! {
        #[test]
        fn in_place_normalizers_match_the_reference(
            value in text(),
            gmail in proptest::bool::ANY,
            word in proptest::sample::select(vec![
                "m", "Male", " MAN ", "f", "FEMALE", "Woman", "x", "mâle", "\u{212A}", "",
            ]),
        ) {
            let context = Context::default();
            let (mut got, mut want) = (String::new(), String::new());
            google_name_words(&value, &mut got);
            reference::google_name_words(&value, &mut want);
            proptest::prop_assert_eq!(&got, &want);

            for value in [value.as_str(), word] {
                let (mut got, mut want) = (String::new(), String::new());
                meta_gender(value, &context, &mut got);
                reference::meta_gender(value, &mut want);
                proptest::prop_assert_eq!(&got, &want);
            }

            let email = if gmail { format!("{value}@GMail.com") } else { value.clone() };
            let (mut got, mut want) = (String::new(), String::new());
            google_email(&email, &context, &mut got);
            reference::google_email(&email, &mut want);
            proptest::prop_assert_eq!(&got, &want);

            proptest::prop_assert_eq!(CountryCode::parse(&value), reference::country(&value));

            for ascii in [false, true] {
                let value: String = if ascii {
                    value.chars().filter(char::is_ascii).collect()
                } else {
                    value.clone()
                };
                let keeps: [&dyn Fn(char) -> bool; 3] =
                    [&|_| true, &|c: char| !c.is_whitespace(), &char::is_alphabetic];
                for keep in keeps {
                    let mut got = String::from("kept ");
                    push_lower(&value, &mut got, keep);
                    proptest::prop_assert_eq!(got, format!("kept {}", reference::lower(&value, keep)));
                }
                let (mut initial, mut name) = (String::new(), String::new());
                meta_first_initial(&value, &context, &mut initial);
                meta_name(&value, &context, &mut name);
                proptest::prop_assert_eq!(initial, name.chars().take(1).collect::<String>());
                let mut id = String::new();
                mobile_id_lower(&value, &context, &mut id);
                let lowered: String = value.trim().chars().map(|c| c.to_ascii_lowercase()).collect();
                if lowered != ZERO_AD_ID {
                    proptest::prop_assert_eq!(id, lowered);
                }
            }
        }
    }

    #[test]
    fn countries_by_name_and_code_match_the_reference() {
        for name in [
            "us",
            "U.S.A.",
            "United States",
            "united states of america",
            "UK",
            "Great Britain",
            "Deutschland",
            "  de ",
            "Korea",
            "nowhere",
            "",
            "a",
            "x".repeat(40).as_str(),
        ] {
            assert_eq!(CountryCode::parse(name), reference::country(name), "{name}");
        }
    }
}
