//! Reading a destination's settings: one checked accessor per kind of value, each failing with
//! [`SettingsError::Invalid`] naming the field. Every adapter's `settings.rs` goes through here.

use std::ops::RangeInclusive;

use serde_json::{Map, Value};

use crate::SettingsError;
use crate::secret::Secret;

/// A settings error for `field`.
pub(crate) fn invalid(field: &str, message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Checked access to a settings object whose keys are all known.
pub(crate) struct Reader<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Reader<'a> {
    /// Refuses any key not in `known` (a typo would otherwise be silently ignored).
    pub(crate) fn new(
        map: &'a Map<String, Value>,
        known: &[&str],
    ) -> Result<Reader<'a>, SettingsError> {
        if let Some(key) = map.keys().find(|key| !known.contains(&key.as_str())) {
            return Err(invalid(key, "unknown setting"));
        }
        Ok(Reader { map })
    }

    /// The value of `field`; `null` counts as absent.
    fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|value| !value.is_null())
    }

    /// A string; absent, `null` and `""` are `None`.
    pub(crate) fn optional_str(&self, field: &str) -> Result<Option<&'a str>, SettingsError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.as_str())),
            Some(_) => Err(invalid(field, "must be a string")),
        }
    }

    /// A string that must be there.
    pub(crate) fn required_str(&self, field: &str) -> Result<&'a str, SettingsError> {
        self.optional_str(field)?
            .ok_or_else(|| invalid(field, "is required"))
    }

    /// A credential: a string without spaces or control characters.
    pub(crate) fn optional_secret(&self, field: &str) -> Result<Option<Secret>, SettingsError> {
        let Some(text) = self.optional_str(field)? else {
            return Ok(None);
        };
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                field,
                "must not contain spaces or control characters",
            ));
        }
        Ok(Some(Secret::new(text)))
    }

    /// A credential that must be there.
    pub(crate) fn required_secret(&self, field: &str) -> Result<Secret, SettingsError> {
        self.optional_secret(field)?
            .ok_or_else(|| invalid(field, "is required"))
    }

    /// A boolean, `default` when absent.
    pub(crate) fn bool_or(&self, field: &str, default: bool) -> Result<bool, SettingsError> {
        match self.get(field) {
            None => Ok(default),
            Some(Value::Bool(value)) => Ok(*value),
            Some(_) => Err(invalid(field, "must be true or false")),
        }
    }

    /// A whole number within `range`, `default` when absent.
    pub(crate) fn int_in(
        &self,
        field: &str,
        range: RangeInclusive<u64>,
        default: u64,
    ) -> Result<u64, SettingsError> {
        let Some(value) = self.get(field) else {
            return Ok(default);
        };
        let message = || {
            format!(
                "must be a whole number from {} to {}",
                range.start(),
                range.end()
            )
        };
        let number = value.as_u64().ok_or_else(|| invalid(field, message()))?;
        if !range.contains(&number) {
            return Err(invalid(field, message()));
        }
        Ok(number)
    }

    /// One of `choices`, `default` when absent.
    pub(crate) fn choice(
        &self,
        field: &str,
        choices: &[&'static str],
        default: &'static str,
    ) -> Result<&'static str, SettingsError> {
        let Some(text) = self.optional_str(field)? else {
            return Ok(default);
        };
        choices
            .iter()
            .find(|choice| **choice == text)
            .copied()
            .ok_or_else(|| invalid(field, format!("must be one of {}", choices.join(", "))))
    }

    /// An `http` or `https` URL without a trailing slash.
    pub(crate) fn optional_url(&self, field: &str) -> Result<Option<String>, SettingsError> {
        let Some(text) = self.optional_str(field)? else {
            return Ok(None);
        };
        check_http_url(text).map_err(|message| invalid(field, message))?;
        Ok(Some(text.trim_end_matches('/').to_string()))
    }

    /// The API's base URL: `api_url` when set (tests, proxies), else the host of `region`,
    /// one of `regions` (name, base URL; the first is the default).
    pub(crate) fn base_url(
        &self,
        regions: &[(&'static str, &'static str)],
    ) -> Result<String, SettingsError> {
        let names: Vec<&'static str> = regions.iter().map(|(name, _)| *name).collect();
        let default = names.first().copied().unwrap_or_default();
        let region = self.choice("region", &names, default)?;
        let host = regions
            .iter()
            .find(|(name, _)| *name == region)
            .map(|(_, host)| *host)
            .unwrap_or_default();
        Ok(self
            .optional_url("api_url")?
            .unwrap_or_else(|| host.to_string()))
    }

    /// An `http` or `https` URL that must be there, kept exactly as written.
    pub(crate) fn required_url(&self, field: &str) -> Result<&'a str, SettingsError> {
        let text = self.required_str(field)?;
        check_http_url(text).map_err(|message| invalid(field, message))?;
        Ok(text)
    }

    /// An object of string values, in the order written.
    pub(crate) fn string_map(&self, field: &str) -> Result<Vec<(String, String)>, SettingsError> {
        let Some(value) = self.get(field) else {
            return Ok(Vec::new());
        };
        let Value::Object(object) = value else {
            return Err(invalid(field, "must be an object of names to text"));
        };
        object
            .iter()
            .map(|(key, value)| match value {
                Value::String(text) => Ok((key.clone(), text.clone())),
                _ => Err(invalid(&format!("{field}.{key}"), "must be a string")),
            })
            .collect()
    }
}

/// Checks that `text` is an absolute `http`/`https` URL with a host. Returns why not.
pub(crate) fn check_http_url(text: &str) -> Result<(), String> {
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must be a URL without spaces".into());
    }
    let lower = text.to_ascii_lowercase();
    let rest = if let Some(rest) = lower.strip_prefix("https://") {
        rest
    } else if let Some(rest) = lower.strip_prefix("http://") {
        rest
    } else {
        return Err("must be an http or https URL".into());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = match host_port.strip_prefix('[') {
        // An IPv6 literal: `[::1]:8080`.
        Some(v6) => match v6.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':')),
            None => return Err("has an unterminated IPv6 address".into()),
        },
        None => match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    if host.is_empty() {
        return Err("must name a host".into());
    }
    if port.is_some_and(|port| port.parse::<u16>().is_err()) {
        return Err("has an invalid port".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    fn field_of(error: SettingsError) -> String {
        match error {
            SettingsError::Invalid { field, .. } => field,
            SettingsError::UnknownType(kind) => kind,
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let settings = map(json!({"url": "https://x.test", "ulr": 1}));
        let error = Reader::new(&settings, &["url"]).err();
        assert_eq!(error.map(field_of), Some("ulr".to_string()));
    }

    #[test]
    fn accessors_name_the_field_and_check_the_type() {
        let settings = map(json!({
            "s": 5, "b": "yes", "n": 5000, "c": "mars", "m": {"a": 1}, "k": "a b", "e": ""
        }));
        let reader = Reader::new(&settings, &["s", "b", "n", "c", "m", "k", "e"]);
        let Ok(reader) = reader else {
            panic!("reader");
        };
        assert_eq!(
            reader.optional_str("s").err().map(field_of),
            Some("s".into())
        );
        assert_eq!(
            reader.bool_or("b", true).err().map(field_of),
            Some("b".into())
        );
        assert_eq!(
            reader.int_in("n", 1..=1000, 1).err().map(field_of),
            Some("n".into())
        );
        assert_eq!(
            reader.choice("c", &["us", "eu"], "us").err().map(field_of),
            Some("c".into())
        );
        assert_eq!(
            reader.string_map("m").err().map(field_of),
            Some("m.a".into())
        );
        assert_eq!(
            reader.optional_secret("k").err().map(field_of),
            Some("k".into())
        );
        assert_eq!(
            reader.required_str("e").err().map(field_of),
            Some("e".into())
        );
        assert_eq!(
            reader.required_str("absent").err().map(field_of),
            Some("absent".into())
        );
        assert_eq!(reader.int_in("absent", 1..=1000, 7).ok(), Some(7));
        assert_eq!(reader.choice("absent", &["us"], "us").ok(), Some("us"));
    }

    #[test]
    fn urls_must_be_http_with_a_host() {
        for good in [
            "https://example.com",
            "http://127.0.0.1:8080/hook?x=1",
            "https://user:pw@example.com/a",
            "http://[::1]:9/",
            "HTTPS://EXAMPLE.COM",
        ] {
            assert_eq!(check_http_url(good), Ok(()), "{good}");
        }
        for bad in [
            "ftp://example.com",
            "example.com",
            "https://",
            "https:///path",
            "https://host:port/",
            "https://exa mple.com",
            "javascript:alert(1)",
            "http://[::1",
        ] {
            assert!(check_http_url(bad).is_err(), "{bad}");
        }
    }
}
