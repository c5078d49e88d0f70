//! What the ad-platform fakes hold: each audience's members (a member is its identifiers, key →
//! value, in the platform's own key names), the audiences created through the API, and Meta's
//! upload sessions. Matching is the platforms' multi-key matching: an added member that shares
//! an identifier with one already there is merged into it, and a removal removes every member
//! that shares an identifier with it. Each fake takes its fixed access token
//! ([`credentials`](super::credentials)) unless a test gave it a [`TokenCheck`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// One member: identifier key (`EMAIL`, `emailAddress`, `EMAIL_SHA256`...) → value.
pub type Member = BTreeMap<String, String>;

/// An audience id no fake knows: member changes and lookups for it get the platform's
/// "not found" answer.
pub const MISSING_AUDIENCE_ID: &str = "404404404";

/// One Meta upload session.
#[derive(Clone, Debug, Default)]
pub(crate) struct Session {
    /// The `batch_seq`s seen.
    pub(crate) seen: BTreeSet<u64>,
    /// `batch_seq` of the batch that carried `last_batch_flag`.
    pub(crate) closed_at: Option<u64>,
}

/// Which access tokens an ad-platform fake takes, in place of its fixed one: for example the
/// live tokens of a fake OAuth provider, so that a token it revokes stops working here too.
pub type TokenCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The state of an ad-platform fake.
#[derive(Default)]
pub(crate) struct AdState {
    members: BTreeMap<String, Vec<Member>>,
    created: Vec<(String, String)>,
    next_id: u64,
    pub(crate) sessions: HashMap<u64, Session>,
    pub(crate) token_check: Option<TokenCheck>,
}

impl AdState {
    /// Whether `token` is one the fake takes: `fixed` (its credential), or what the test's
    /// [`TokenCheck`] accepts when it set one.
    pub(crate) fn takes(&self, token: &str, fixed: &str) -> bool {
        match &self.token_check {
            Some(check) => check(token),
            None => token == fixed,
        }
    }

    /// Adds a member (merged with the members it shares an identifier with).
    pub(crate) fn add(&mut self, audience: &str, member: Member) {
        if member.is_empty() {
            return;
        }
        let members = self.members.entry(audience.to_string()).or_default();
        let (mut same, mut others): (Vec<Member>, Vec<Member>) = std::mem::take(members)
            .into_iter()
            .partition(|existing| shares(existing, &member));
        let mut merged = member;
        for existing in same.drain(..) {
            for (key, value) in existing {
                merged.entry(key).or_insert(value);
            }
        }
        others.push(merged);
        *members = others;
    }

    /// Removes every member sharing an identifier with `member`.
    pub(crate) fn remove(&mut self, audience: &str, member: &Member) {
        if let Some(members) = self.members.get_mut(audience) {
            members.retain(|existing| !shares(existing, member));
        }
    }

    /// The members of an audience, in the order they were first added.
    pub(crate) fn members(&self, audience: &str) -> Vec<Member> {
        self.members.get(audience).cloned().unwrap_or_default()
    }

    /// Creates an audience: a new numeric id, from `first_id` on.
    pub(crate) fn create(&mut self, first_id: u64, name: &str) -> String {
        let id = (first_id + self.next_id).to_string();
        self.next_id += 1;
        self.created.push((id.clone(), name.to_string()));
        self.members.entry(id.clone()).or_default();
        id
    }

    /// The audiences created, (id, name), in order.
    pub(crate) fn created(&self) -> Vec<(String, String)> {
        self.created.clone()
    }
}

fn shares(a: &Member, b: &Member) -> bool {
    b.iter().any(|(key, value)| a.get(key) == Some(value))
}

/// Whether `text` is `len` lowercase hex digits.
pub(crate) fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `text` looks like a SHA-256 in hex (either case): never right where a raw value
/// belongs.
pub(crate) fn looks_hashed(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A short deterministic id from a request body (request ids, trace ids).
pub(crate) fn request_id(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    crate::request::hex(&Sha256::digest(body)[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(pairs: &[(&str, &str)]) -> Member {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn members_merge_on_any_shared_identifier_and_leave_on_any() {
        let mut state = AdState::default();
        state.add("1", member(&[("EMAIL", "e1")]));
        state.add("1", member(&[("EMAIL", "e1"), ("PHONE", "p1")]));
        state.add("1", member(&[("EMAIL", "e2")]));
        assert_eq!(
            state.members("1"),
            vec![
                member(&[("EMAIL", "e1"), ("PHONE", "p1")]),
                member(&[("EMAIL", "e2")])
            ]
        );
        state.remove("1", &member(&[("PHONE", "p1")]));
        assert_eq!(state.members("1"), vec![member(&[("EMAIL", "e2")])]);
        assert!(state.members("2").is_empty());
        assert_eq!(state.create(100, "a"), "100");
        assert_eq!(state.create(100, "b"), "101");
        assert_eq!(state.created().len(), 2);
    }
}
