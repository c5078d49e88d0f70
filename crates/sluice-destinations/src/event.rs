//! Reading a normalized Segment event (`type`, ids, times, `context`), the way every adapter
//! needs it. Values are borrowed from the event: numbers keep their digits.

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The Segment call types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Identify,
    Track,
    Page,
    Screen,
    Group,
    Alias,
}

/// One event, read-only.
#[derive(Clone, Copy)]
pub(crate) struct Event<'a>(pub(crate) &'a Value);

impl<'a> Event<'a> {
    pub(crate) fn kind(self) -> Option<Kind> {
        match self.str_at(&["type"])? {
            "identify" => Some(Kind::Identify),
            "track" => Some(Kind::Track),
            "page" => Some(Kind::Page),
            "screen" => Some(Kind::Screen),
            "group" => Some(Kind::Group),
            "alias" => Some(Kind::Alias),
            _ => None,
        }
    }

    /// The value at a path of object keys.
    pub(crate) fn at(self, path: &[&str]) -> Option<&'a Value> {
        let mut value = self.0;
        for key in path {
            value = value.as_object()?.get(*key)?;
        }
        Some(value)
    }

    /// A non-empty string at `path`.
    pub(crate) fn str_at(self, path: &[&str]) -> Option<&'a str> {
        self.at(path)
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
    }

    /// An object at `path`.
    pub(crate) fn object_at(self, path: &[&str]) -> Option<&'a Map<String, Value>> {
        self.at(path).and_then(Value::as_object)
    }

    /// An identifier: a non-empty string, or a number's digits (some SDKs send numbers).
    fn id_at(self, key: &str) -> Option<String> {
        match self.at(&[key])? {
            Value::String(text) if !text.is_empty() => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        }
    }

    pub(crate) fn user_id(self) -> Option<String> {
        self.id_at("userId")
    }

    pub(crate) fn anonymous_id(self) -> Option<String> {
        self.id_at("anonymousId")
    }

    pub(crate) fn previous_id(self) -> Option<String> {
        self.id_at("previousId")
    }

    pub(crate) fn message_id(self) -> Option<&'a str> {
        self.str_at(&["messageId"])
    }

    /// `properties` (track, page, screen), or an empty object.
    pub(crate) fn properties(self) -> Option<&'a Map<String, Value>> {
        self.object_at(&["properties"])
    }

    /// `traits` (identify, group), or `context.traits` for the other calls.
    pub(crate) fn traits(self) -> Option<&'a Map<String, Value>> {
        self.object_at(&["traits"])
            .or_else(|| self.object_at(&["context", "traits"]))
    }

    /// When the event happened, in milliseconds since the epoch: `timestamp`, else
    /// `originalTimestamp`, else `receivedAt`.
    pub(crate) fn time_millis(self) -> Option<i64> {
        ["timestamp", "originalTimestamp", "receivedAt"]
            .iter()
            .filter_map(|key| self.str_at(&[key]))
            .find_map(parse_millis)
    }
}

/// An RFC 3339 date-time as milliseconds since the epoch.
pub(crate) fn parse_millis(text: &str) -> Option<i64> {
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Copies each `context` field of `table` (path below `context`, target key) that is there.
pub(crate) fn copy_context(
    target: &mut Map<String, Value>,
    event: Event<'_>,
    table: &[(&[&str], &str)],
) {
    for (path, to) in table.iter().copied() {
        let mut full = Vec::with_capacity(path.len() + 1);
        full.push("context");
        full.extend_from_slice(path);
        copy(target, to, event.at(&full));
    }
}

/// Sets `target[to]` to `source` when it is there, not `null` and not `""`.
pub(crate) fn copy(target: &mut Map<String, Value>, to: &str, source: Option<&Value>) {
    let useful = |value: &&Value| !value.is_null() && value.as_str() != Some("");
    if let Some(value) = source.filter(useful) {
        target.insert(to.to_string(), value.clone());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_ids_kinds_and_times() {
        let value = json!({
            "type": "track",
            "userId": 12345678901234567890_u64,
            "anonymousId": "",
            "timestamp": "not a time",
            "originalTimestamp": "2026-11-22T10:08:09.231Z",
            "context": {"traits": {"email": "a@b.c"}}
        });
        let event = Event(&value);
        assert_eq!(event.kind(), Some(Kind::Track));
        assert_eq!(event.user_id().as_deref(), Some("12345678901234567890"));
        assert_eq!(event.anonymous_id(), None);
        assert_eq!(event.time_millis(), Some(1_795_342_089_231));
        assert_eq!(
            event.traits().and_then(|t| t.get("email")),
            Some(&json!("a@b.c"))
        );
        assert_eq!(Event(&json!({"type": "merge"})).kind(), None);
    }

    #[test]
    fn offsets_are_honoured() {
        assert_eq!(parse_millis("1970-01-01T01:00:00.5+01:00"), Some(500));
        assert_eq!(parse_millis("1969-12-31T23:59:59Z"), Some(-1000));
        assert_eq!(parse_millis("2026-13-01T00:00:00Z"), None);
    }
}
