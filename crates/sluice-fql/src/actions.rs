//! Filter actions: what happens to an event a filter's condition matches.
//!
//! The JSON shape is Segment's Public API (`{"type": "DROP"}`,
//! `{"type": "SAMPLE", "percent": 0.5, "path": "userId"}`,
//! `{"type": "DROP_PROPERTIES", "fields": {"properties": ["email"]}}`). Property actions work
//! as tsub's `drop_properties`/`allow_properties` transformers: each key of `fields` is a
//! dotted path to an object (`""` is the event itself); an array there is processed element by
//! element; anything that is not an object is left alone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::FilterError;
use crate::js;
use crate::sample::DEFAULT_SAMPLE_PATH;

/// Property names to act on, by the path of the object holding them (`""` = the event).
pub type Fields = BTreeMap<String, Vec<String>>;

/// One action of a destination filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    /// Drop the event.
    Drop,
    /// Keep only `percent` (0 to 1) of events, chosen by a hash of the value at `path`
    /// (`messageId` when absent), so the choice is the same every time for the same value.
    Sample {
        /// Share of events kept, from 0 to 1.
        percent: f64,
        /// Dotted path of the value that decides.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
    },
    /// Remove the named properties.
    DropProperties {
        /// Names to remove, by object path.
        fields: Fields,
    },
    /// Remove every property but the named ones.
    AllowProperties {
        /// Names to keep, by object path.
        fields: Fields,
    },
}

impl Action {
    /// Refuses a percent outside `0..=1` or an empty sample path; `index` names the action.
    pub(crate) fn validate(&self, index: usize) -> Result<(), FilterError> {
        if let Action::Sample { percent, path } = self {
            if !(0.0..=1.0).contains(percent) {
                return Err(FilterError::SamplePercent {
                    action: index,
                    percent: *percent,
                });
            }
            if path.as_deref() == Some("") {
                return Err(FilterError::EmptySamplePath { action: index });
            }
        }
        Ok(())
    }

    /// Where the action runs in Segment's order: sample, drop, drop properties, allow
    /// properties.
    pub(crate) fn phase(&self) -> usize {
        match self {
            Action::Sample { .. } => 0,
            Action::Drop => 1,
            Action::DropProperties { .. } => 2,
            Action::AllowProperties { .. } => 3,
        }
    }

    /// The action as a tsub transformer (`{"type": "drop"}`, `{"type": "sample_event",
    /// "config": {"sample": {"percent", "path"}}}`...). A sample without a path names
    /// `messageId`, which is what Sluice samples on.
    pub fn to_tsub(&self) -> Value {
        match self {
            Action::Drop => json!({"type": "drop"}),
            Action::Sample { percent, path } => json!({
                "type": "sample_event",
                "config": {"sample": {
                    "percent": percent,
                    "path": path.as_deref().unwrap_or(DEFAULT_SAMPLE_PATH),
                }},
            }),
            Action::DropProperties { fields } => {
                json!({"type": "drop_properties", "config": {"drop": fields}})
            }
            Action::AllowProperties { fields } => {
                json!({"type": "allow_properties", "config": {"allow": fields}})
            }
        }
    }
}

/// Removes the named properties (`DROP_PROPERTIES`).
pub(crate) fn drop_properties(event: &mut Value, fields: &Fields) {
    for_each_target(event, fields, |target, names| match target {
        Value::Object(map) => {
            for name in names {
                map.shift_remove(name);
            }
        }
        // JavaScript's `delete array[i]` leaves a hole, which JSON writes as `null`.
        Value::Array(items) => {
            for index in names.iter().filter_map(|n| js::array_index(n)) {
                if let Some(item) = items.get_mut(index) {
                    *item = Value::Null;
                }
            }
        }
        _ => {}
    });
}

/// Removes every property but the named ones (`ALLOW_PROPERTIES`).
pub(crate) fn allow_properties(event: &mut Value, fields: &Fields) {
    for_each_target(event, fields, |target, names| match target {
        Value::Object(map) => map.retain(|key, _| names.contains(key)),
        Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                if !names.iter().any(|n| js::array_index(n) == Some(index)) {
                    *item = Value::Null;
                }
            }
        }
        _ => {}
    });
}

/// Calls `act` on the object each path of `fields` leads to, or on each element when the path
/// leads to an array.
fn for_each_target(event: &mut Value, fields: &Fields, act: impl Fn(&mut Value, &[String])) {
    for (path, names) in fields {
        let target = if path.is_empty() {
            Some(&mut *event)
        } else {
            js::lookup_mut(event, path.split('.'))
        };
        match target {
            Some(Value::Array(items)) => items.iter_mut().for_each(|item| act(item, names)),
            Some(target) => act(target, names),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(path: &str, names: &[&str]) -> Fields {
        Fields::from([(
            path.to_owned(),
            names.iter().map(|n| (*n).to_owned()).collect(),
        )])
    }

    #[test]
    fn public_api_shape() {
        let actions: Vec<Action> = serde_json::from_value(json!([
            {"type": "DROP"},
            {"type": "SAMPLE", "percent": 0.25, "path": "userId"},
            {"type": "SAMPLE", "percent": 1},
            {"type": "DROP_PROPERTIES", "fields": {"properties": ["email"]}},
            {"type": "ALLOW_PROPERTIES", "fields": {"": ["event", "type"]}},
        ]))
        .expect("actions");
        assert_eq!(actions[0], Action::Drop);
        assert_eq!(
            actions[1],
            Action::Sample {
                percent: 0.25,
                path: Some("userId".into())
            }
        );
        assert_eq!(
            actions[3],
            Action::DropProperties {
                fields: fields("properties", &["email"])
            }
        );
        let back = serde_json::to_value(&actions).expect("serializes");
        assert_eq!(back[2], json!({"type": "SAMPLE", "percent": 1.0}));
        assert_eq!(
            back[4],
            json!({"type": "ALLOW_PROPERTIES", "fields": {"": ["event", "type"]}})
        );
        assert!(serde_json::from_value::<Action>(json!({"type": "REDACT"})).is_err());
        assert!(serde_json::from_value::<Action>(json!({"type": "SAMPLE"})).is_err());
        assert!(serde_json::from_value::<Action>(json!({"type": "DROP_PROPERTIES"})).is_err());
    }

    #[test]
    fn validation() {
        let sample = |percent: f64, path: Option<&str>| Action::Sample {
            percent,
            path: path.map(str::to_owned),
        };
        assert!(sample(0.0, None).validate(0).is_ok());
        assert!(sample(1.0, Some("userId")).validate(0).is_ok());
        assert_eq!(
            sample(1.5, None).validate(2),
            Err(FilterError::SamplePercent {
                action: 2,
                percent: 1.5
            })
        );
        assert!(sample(-0.1, None).validate(0).is_err());
        assert!(sample(f64::NAN, None).validate(0).is_err());
        assert_eq!(
            sample(0.5, Some("")).validate(1),
            Err(FilterError::EmptySamplePath { action: 1 })
        );
    }

    #[test]
    fn drop_properties_by_path_root_and_array() {
        let mut event = json!({
            "userId": "u", "event": "E",
            "properties": {"email": "a@b.c", "keep": 1, "products": [{"price": 1, "sku": "a"}, {"price": 2}, 7]},
        });
        drop_properties(&mut event, &fields("", &["userId"]));
        drop_properties(&mut event, &fields("properties", &["email", "absent"]));
        drop_properties(&mut event, &fields("properties.products", &["price"]));
        drop_properties(&mut event, &fields("properties.missing.deeper", &["x"]));
        assert_eq!(
            event,
            json!({"event": "E", "properties": {"keep": 1, "products": [{"sku": "a"}, {}, 7]}})
        );
        let order: Vec<&String> = event.as_object().expect("object").keys().collect();
        assert_eq!(
            order,
            ["event", "properties"],
            "order of the remaining keys is kept"
        );
    }

    #[test]
    fn allow_properties_keeps_only_the_names() {
        let mut event = json!({
            "type": "track", "event": "E", "userId": "u",
            "properties": {"a": 1, "b": 2, "c": {"d": 1}},
        });
        allow_properties(&mut event, &fields("properties", &["a", "c"]));
        assert_eq!(event["properties"], json!({"a": 1, "c": {"d": 1}}));
        allow_properties(&mut event, &fields("", &["event", "properties"]));
        assert_eq!(
            event,
            json!({"event": "E", "properties": {"a": 1, "c": {"d": 1}}})
        );
        allow_properties(&mut event, &fields("event", &["x"]));
        assert_eq!(event["event"], "E", "a string is not an object: left alone");
    }

    #[test]
    fn arrays_inside_arrays_lose_elements_like_javascript_delete() {
        let mut event = json!({"p": {"rows": [[1, 2, 3], {"0": "x", "1": "y"}]}});
        drop_properties(&mut event, &fields("p.rows", &["1"]));
        assert_eq!(event, json!({"p": {"rows": [[1, null, 3], {"0": "x"}]}}));
        let mut event = json!({"p": [[1, 2, 3]]});
        allow_properties(&mut event, &fields("p", &["0", "2"]));
        assert_eq!(event, json!({"p": [[1, null, 3]]}));
        let mut event = json!({"p": {"rows": [10, 20]}});
        drop_properties(&mut event, &fields("p.rows.1", &["x"]));
        drop_properties(&mut event, &fields("p", &["rows.0"]));
        assert_eq!(
            event,
            json!({"p": {"rows": [10, 20]}}),
            "names are not paths"
        );
    }

    #[test]
    fn tsub_transformers() {
        assert_eq!(Action::Drop.to_tsub(), json!({"type": "drop"}));
        assert_eq!(
            Action::Sample {
                percent: 0.5,
                path: None
            }
            .to_tsub(),
            json!({"type": "sample_event", "config": {"sample": {"percent": 0.5, "path": "messageId"}}})
        );
        assert_eq!(
            Action::AllowProperties {
                fields: fields("", &["a"])
            }
            .to_tsub(),
            json!({"type": "allow_properties", "config": {"allow": {"": ["a"]}}})
        );
    }
}
