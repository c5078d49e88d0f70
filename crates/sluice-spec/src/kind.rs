//! The six message types and the URL paths that carry them.

use std::fmt;

/// The type of a tracking message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Identify,
    Track,
    Page,
    Screen,
    Group,
    Alias,
}

impl MessageType {
    pub const ALL: [MessageType; 6] = [
        MessageType::Identify,
        MessageType::Track,
        MessageType::Page,
        MessageType::Screen,
        MessageType::Group,
        MessageType::Alias,
    ];

    /// The value of the `type` field.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Identify => "identify",
            MessageType::Track => "track",
            MessageType::Page => "page",
            MessageType::Screen => "screen",
            MessageType::Group => "group",
            MessageType::Alias => "alias",
        }
    }

    /// Parses the value of a `type` field (exact, lowercase).
    pub fn parse(value: &str) -> Option<MessageType> {
        MessageType::ALL
            .into_iter()
            .find(|kind| kind.as_str() == value)
    }

    /// The one-letter short path the browser SDK uses (`/v1/t` for track).
    pub fn short_path(self) -> &'static str {
        match self {
            MessageType::Identify => "i",
            MessageType::Track => "t",
            MessageType::Page => "p",
            MessageType::Screen => "s",
            MessageType::Group => "g",
            MessageType::Alias => "a",
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_and_is_exact() {
        for kind in MessageType::ALL {
            assert_eq!(MessageType::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(MessageType::parse("Track"), None);
        assert_eq!(MessageType::parse("batch"), None);
        assert_eq!(MessageType::parse(""), None);
    }

    #[test]
    fn short_paths_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for kind in MessageType::ALL {
            assert!(seen.insert(kind.short_path()));
        }
    }
}
