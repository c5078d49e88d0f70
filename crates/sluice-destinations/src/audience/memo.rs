//! What one planning thread keeps while it plans its share of a batch: a scratch buffer, and
//! the hashes of the names, cities and postal codes it has already normalized and hashed.
//!
//! People share first names, family names, cities and postal codes: in a batch of thousands
//! of members most of these values come again, and normalizing and hashing each again (NFC,
//! lowercasing, SHA-256) is most of what they cost. The memo lives only as long as one share
//! of one batch (it is dropped when the adapter's `build` returns), so nothing about a person
//! outlasts the batch that already holds their event. Emails, phones and ids are never kept:
//! they are one person's own.

use super::hash::Hex;
use super::normalize::{
    Context, CountryCode, Digest, Identifier, IdentifierKind, Output, Platform, identifier, rule,
};

/// A planning thread's working state for one share of a batch.
#[derive(Default)]
pub(crate) struct Scratch {
    /// A reusable buffer for normalized values.
    pub(crate) text: String,
    memo: Memo,
}

impl Scratch {
    /// [`identifier`], remembered for the kinds people share when the platform hashes them.
    pub(crate) fn identifier(
        &mut self,
        platform: Platform,
        kind: IdentifierKind,
        value: &str,
        context: &Context,
        digest: Digest,
    ) -> Option<Identifier> {
        let hashed = rule(platform, kind).is_some_and(|rule| rule.output == Output::Hashed);
        let tally = match shared(kind) {
            Some(at) if hashed && !self.memo.tallies[at].off => at,
            _ => return identifier(platform, kind, value, context, digest, &mut self.text),
        };
        let key = Key {
            platform,
            kind,
            digest,
            country: context.country,
        };
        let hash = key.hash(value);
        let found = self.memo.find(hash, &key, value);
        self.memo.tallies[tally].count(found.is_some());
        if let Some(known) = found {
            return known.map(Identifier::Hashed);
        }
        let found = identifier(platform, kind, value, context, digest, &mut self.text);
        let hex = match &found {
            Some(Identifier::Hashed(hex)) => Some(*hex),
            // A hashed rule gives a digest or nothing.
            Some(Identifier::Plain(_)) => return found,
            None => None,
        };
        self.memo.insert(hash, key, value, hex);
        found
    }
}

/// The kinds whose values many people share, as their place in [`Memo::tallies`].
fn shared(kind: IdentifierKind) -> Option<usize> {
    match kind {
        IdentifierKind::FirstName => Some(0),
        IdentifierKind::LastName => Some(1),
        IdentifierKind::City => Some(2),
        IdentifierKind::PostalCode => Some(3),
        _ => None,
    }
}

/// Everything besides the value that decides a result (the country: postal codes are
/// normalized by it).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key {
    platform: Platform,
    kind: IdentifierKind,
    digest: Digest,
    country: Option<CountryCode>,
}

impl Key {
    /// A 64-bit hash of the key and `value`, eight bytes at a time.
    fn hash(&self, value: &str) -> u64 {
        const MIX: u64 = 0x9E37_79B9_7F4A_7C15;
        let country = self.country.map_or([0; 2], |code| {
            let bytes = code.as_str().as_bytes();
            [bytes[0], bytes[1]]
        });
        let tag = u64::from_le_bytes([
            self.platform as u8,
            self.kind as u8,
            self.digest as u8,
            country[0],
            country[1],
            0,
            0,
            0,
        ]);
        let mut hash = tag.wrapping_mul(MIX);
        for chunk in value.as_bytes().chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            hash = (hash.rotate_left(23) ^ u64::from_le_bytes(word)).wrapping_mul(MIX);
        }
        hash ^ (hash >> 29)
    }
}

/// One remembered value: where its text is in [`Memo::texts`], and its result (`None`: nothing
/// was left after normalizing).
struct Entry {
    hash: u64,
    key: Key,
    start: usize,
    len: usize,
    hex: Option<Hex>,
}

/// How the memo has served one kind so far.
#[derive(Default, Clone, Copy)]
struct Tally {
    lookups: u32,
    hits: u32,
    /// Too few of the kind's values came again: it is no longer looked up or kept.
    off: bool,
}

/// Lookups of a kind after which the memo judges whether it pays for that kind.
const TRIAL: u32 = 512;

impl Tally {
    fn count(&mut self, hit: bool) {
        self.lookups += 1;
        self.hits += u32::from(hit);
        // Fewer than one in four found: what a miss costs (a hash, a probe, a copy of the
        // value) is then more than what the hits save.
        if self.lookups == TRIAL && self.hits * 4 < self.lookups {
            self.off = true;
        }
    }
}

/// Most values kept: enough for the names and places of a batch's share, and a table small
/// enough to stay in the CPU's cache.
const MAX_ENTRIES: usize = 4096;

/// An open-addressing table of results: slots hold an entry's place (plus one; zero is empty),
/// entries hold the results, and the values' texts are kept back to back in one string.
#[derive(Default)]
struct Memo {
    slots: Vec<u32>,
    entries: Vec<Entry>,
    texts: String,
    tallies: [Tally; 4],
}

/// Slots the table has once it is used: a power of two, at least twice [`MAX_ENTRIES`], so a
/// probe always ends at an empty slot.
const SLOTS: usize = 2 * MAX_ENTRIES;

impl Memo {
    /// The result remembered for `value`, if any.
    fn find(&self, hash: u64, key: &Key, value: &str) -> Option<Option<Hex>> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        // Only the hash's low bits are used: truncation is intended.
        let mut at = hash as usize & mask;
        loop {
            let place = self.slots[at].checked_sub(1)?;
            let entry = &self.entries[place as usize];
            if entry.hash == hash
                && entry.key == *key
                && self.texts.get(entry.start..entry.start + entry.len) == Some(value)
            {
                return Some(entry.hex);
            }
            at = (at + 1) & mask;
        }
    }

    /// Remembers `value`'s result (not already there), unless the memo is full.
    fn insert(&mut self, hash: u64, key: Key, value: &str, hex: Option<Hex>) {
        if self.entries.len() == MAX_ENTRIES {
            return;
        }
        if self.slots.is_empty() {
            self.slots = vec![0; SLOTS];
        }
        let mask = self.slots.len() - 1;
        let mut at = hash as usize & mask;
        while self.slots[at] != 0 {
            at = (at + 1) & mask;
        }
        // At most MAX_ENTRIES entries: the place fits a u32.
        self.slots[at] = u32::try_from(self.entries.len() + 1).unwrap_or(u32::MAX);
        let start = self.texts.len();
        self.texts.push_str(value);
        self.entries.push(Entry {
            hash,
            key,
            start,
            len: value.len(),
            hex,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audience::normalize::CountryCode;

    fn plain(
        platform: Platform,
        kind: IdentifierKind,
        value: &str,
        country: &str,
    ) -> Option<Identifier> {
        let context = Context {
            country: CountryCode::parse(country),
        };
        identifier(
            platform,
            kind,
            value,
            &context,
            Digest::Sha256,
            &mut String::new(),
        )
    }

    #[test]
    fn remembered_results_are_the_results() {
        let kinds = [
            IdentifierKind::FirstName,
            IdentifierKind::LastName,
            IdentifierKind::City,
            IdentifierKind::PostalCode,
            IdentifierKind::Email,
            IdentifierKind::Phone,
        ];
        // Values that normalize alike, differently per country, to nothing, or are hashed
        // already; each asked several times in a shuffled order.
        let values = [
            "Mary",
            " MARY ",
            "Zoë",
            "Zoe\u{308}",
            "O'Brien",
            "",
            "!!",
            "94105-1234",
            "SW1A 1AA",
            "Köln",
            "mary@example.com",
            "+1 415 555 0100",
            "0A6E2B8E4C3F5D7A9B1C0D2E4F6A8B0C1D3E5F7A9B0C2D4E6F8A0B1C3D5E7F9A",
        ];
        let mut scratch = Scratch::default();
        for round in 0..3 {
            for at in 0..values.len() {
                let value = values[(at * 7 + round) % values.len()];
                for platform in [Platform::Meta, Platform::Google, Platform::TikTok] {
                    for kind in kinds {
                        for country in ["", "US", "GB"] {
                            let context = Context {
                                country: CountryCode::parse(country),
                            };
                            let got =
                                scratch.identifier(platform, kind, value, &context, Digest::Sha256);
                            assert_eq!(
                                got,
                                plain(platform, kind, value, country),
                                "{platform:?} {kind:?} {value:?} {country:?} round {round}"
                            );
                        }
                    }
                }
            }
        }
        assert!(!scratch.memo.entries.is_empty());
    }

    #[test]
    fn a_full_memo_and_a_kind_that_does_not_repeat_still_give_the_results() {
        let mut scratch = Scratch::default();
        let context = Context::default();
        // Every first name its own: the memo fills, then first names stop being looked up.
        let names: Vec<String> = (0..6000).map(|n| format!("name{n}")).collect();
        for name in names.iter().chain(&names) {
            let got = scratch.identifier(
                Platform::Meta,
                IdentifierKind::FirstName,
                name,
                &context,
                Digest::Sha256,
            );
            assert_eq!(
                got,
                plain(Platform::Meta, IdentifierKind::FirstName, name, "")
            );
        }
        assert!(scratch.memo.tallies[0].off);
        assert_eq!(scratch.memo.tallies[0].lookups, TRIAL);
        assert!(scratch.memo.entries.len() <= MAX_ENTRIES);
        // Family names that repeat are still remembered.
        for round in 0..3 {
            for n in 0..600 {
                let name = format!("family{}", n % 50);
                let got = scratch.identifier(
                    Platform::Meta,
                    IdentifierKind::LastName,
                    &name,
                    &context,
                    Digest::Sha256,
                );
                assert_eq!(
                    got,
                    plain(Platform::Meta, IdentifierKind::LastName, &name, ""),
                    "round {round}"
                );
            }
        }
        assert!(!scratch.memo.tallies[1].off);
        assert!(scratch.memo.tallies[1].hits >= 1700);
        // Cities asked twice each: half are found, until the memo is full.
        for n in 0..12_000 {
            let city = format!("city{}", n / 2);
            let got = scratch.identifier(
                Platform::Meta,
                IdentifierKind::City,
                &city,
                &context,
                Digest::Sha256,
            );
            assert_eq!(got, plain(Platform::Meta, IdentifierKind::City, &city, ""));
        }
        assert!(!scratch.memo.tallies[2].off);
        assert_eq!(scratch.memo.entries.len(), MAX_ENTRIES);
    }
}
