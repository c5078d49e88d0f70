//! Webhook settings: `url` (http or https), `headers` (secret), `secret` (signing key, secret)
//! and `batch_size` (1 to 1000, default 1).

use serde_json::{Map, Value};

use crate::SettingsError;
use crate::secret::Secret;
use crate::settings::{Reader, invalid};

/// Headers the adapter sets itself, which the user cannot override.
const RESERVED: [&str; 6] = [
    "content-type",
    "content-length",
    "host",
    "connection",
    "transfer-encoding",
    "x-signature",
];

/// The largest `batch_size`.
pub(super) const MAX_BATCH: u64 = 1000;

/// Validated webhook settings.
#[derive(Debug)]
pub(super) struct WebhookSettings {
    pub(super) url: String,
    pub(super) headers: Vec<(String, Secret)>,
    pub(super) secret: Option<Secret>,
    pub(super) batch_size: usize,
}

impl WebhookSettings {
    pub(super) fn read(map: &Map<String, Value>) -> Result<WebhookSettings, SettingsError> {
        let reader = Reader::new(map, &["url", "headers", "secret", "batch_size"])?;
        let url = reader.required_url("url")?.to_string();
        let mut headers = Vec::new();
        for (name, value) in reader.string_map("headers")? {
            let field = format!("headers.{name}");
            check_header(&name, &value).map_err(|message| invalid(&field, message))?;
            headers.push((name, Secret::new(value)));
        }
        let secret = reader.optional_secret("secret")?;
        let batch_size = reader.int_in("batch_size", 1..=MAX_BATCH, 1)?;
        Ok(WebhookSettings {
            url,
            headers,
            secret,
            batch_size: usize::try_from(batch_size).unwrap_or(1),
        })
    }
}

/// A header the user may set: an RFC 9110 token name, not one the adapter owns, and a value of
/// visible ASCII.
fn check_header(name: &str, value: &str) -> Result<(), String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err("is not a valid header name".into());
    }
    if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
        return Err("is set by sluice and cannot be overridden".into());
    }
    if !value.chars().all(|c| c == '\t' || (' '..='~').contains(&c)) {
        return Err("must be printable ASCII without line breaks".into());
    }
    Ok(())
}
