//! Slack message text: a user template with `{{path}}` placeholders, or the default format.
//!
//! A placeholder names a dotted path into the event (`{{properties.total}}`, `{{userId}}`,
//! `{{context.traits.email}}`), or `{{name}}`: the person, found as Segment's Slack destination
//! finds it (`context.traits.name`, first + last name, `username`, `properties.email`,
//! `context.traits.email`, `User <userId>`, `Anonymous user <anonymousId>`). Text values are
//! inserted as they are, numbers with their digits, objects and arrays as compact JSON, a
//! missing value as nothing. Inserted values are escaped for Slack (`&`, `<`, `>`); the
//! template's own text is not, so it may hold Slack markup such as `<https://..|links>`.
//!
//! Default format: the event name in bold, ` by ` and the person, then one line per property:
//! `• key: value`.

use serde_json::Value;

use crate::event::Event;

/// One piece of a parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(Vec<String>),
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Template(Vec<Piece>);

impl Template {
    /// Parses `{{path}}` placeholders. Returns why the text is not a template.
    pub(super) fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                return Err("has a {{ without a closing }}".into());
            };
            let path = after[..end].trim();
            if path.is_empty() || path.split('.').any(str::is_empty) {
                return Err(format!(
                    "has an empty or malformed placeholder {{{{{path}}}}}"
                ));
            }
            pieces.push(Piece::Field(path.split('.').map(str::to_string).collect()));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template(pieces))
    }

    /// The message for `event`.
    pub(super) fn render(&self, event: Event<'_>) -> String {
        let mut text = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(literal) => text.push_str(literal),
                Piece::Field(path) if path.len() == 1 && path[0] == "name" => {
                    text.push_str(&escape(&person(event)));
                }
                Piece::Field(path) => {
                    let path: Vec<&str> = path.iter().map(String::as_str).collect();
                    if let Some(value) = event.at(&path) {
                        text.push_str(&escape(&display(value)));
                    }
                }
            }
        }
        text
    }
}

/// The default message: `*Event* by person` and a line per property.
pub(super) fn default_message(event: Event<'_>) -> String {
    let name = event.str_at(&["event"]).unwrap_or("event");
    let mut text = format!("*{}* by {}", escape(name), escape(&person(event)));
    for (key, value) in event.properties().into_iter().flatten() {
        text.push_str(&format!("\n• {}: {}", escape(key), escape(&display(value))));
    }
    text
}

/// Who did it, found the way Segment's Slack destination finds it.
fn person(event: Event<'_>) -> String {
    let traits = |key: &str| event.str_at(&["context", "traits", key]);
    if let Some(name) = traits("name") {
        return name.to_string();
    }
    if let (Some(first), Some(last)) = (traits("firstName"), traits("lastName")) {
        return format!("{first} {last}");
    }
    if let Some(found) = traits("username")
        .or_else(|| event.str_at(&["properties", "email"]))
        .or_else(|| traits("email"))
    {
        return found.to_string();
    }
    match (event.user_id(), event.anonymous_id()) {
        (Some(user_id), _) => format!("User {user_id}"),
        (None, Some(anonymous_id)) => format!("Anonymous user {anonymous_id}"),
        (None, None) => "Someone".to_string(),
    }
}

/// A value as message text.
fn display(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Escapes the three characters Slack treats as markup: `&`, `<`, `>`.
pub(super) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            other => escaped.push(other),
        }
    }
    escaped
}
