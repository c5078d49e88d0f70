//! The settings of a node. Every field has a default, so an empty file is a valid config.
//!
//! The binary layers them: defaults, then a TOML file, then `SLUICE_*` environment variables,
//! then command-line flags.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;
use sluice_spec::Limits;

/// A secret from configuration: never printed by `Debug`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> SecretString {
        SecretString(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(redacted)")
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where `state.db` and `log.db` live.
    pub data_dir: PathBuf,
    /// Address of the HTTP listener (tracking API, admin API, health, metrics).
    pub listen: SocketAddr,
    /// The default workspace's admin token. When unset, one is generated at first start and
    /// printed once.
    pub admin_token: Option<SecretString>,
    /// Peers allowed to set the client address with `X-Forwarded-For`.
    pub trusted_proxies: Vec<IpNet>,
    /// How long a `messageId` is remembered for deduplication.
    pub dedup_window_secs: u64,
    /// Most message ids one dedup generation remembers (two generations, allocated up front:
    /// ~18 MB for both at the default 400,000); under a flood the window shrinks to the last
    /// this-many messages.
    pub dedup_capacity: usize,
    /// Largest message, in bytes.
    pub max_event_bytes: usize,
    /// Largest request body after decompression, in bytes.
    pub max_request_bytes: usize,
    /// Most messages in one batch.
    pub max_batch_events: usize,
    /// Most events the log writer commits in one transaction.
    pub max_commit_events: usize,
    /// Time limit of one HTTP request, reading the body included.
    pub request_timeout_secs: u64,
    pub log_format: LogFormat,
    /// A tracing filter (`info`, `sluice_server=debug`...).
    pub log_level: String,
}

impl Default for Config {
    fn default() -> Config {
        let limits = Limits::default();
        Config {
            data_dir: PathBuf::from("sluice-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8088)),
            admin_token: None,
            trusted_proxies: Vec::new(),
            dedup_window_secs: 24 * 60 * 60,
            dedup_capacity: 400_000,
            max_event_bytes: limits.max_event_bytes,
            max_request_bytes: limits.max_request_bytes,
            max_batch_events: limits.max_batch_events,
            max_commit_events: 4096,
            request_timeout_secs: 30,
            log_format: LogFormat::Text,
            log_level: "info".to_owned(),
        }
    }
}

impl Config {
    pub fn limits(&self) -> Limits {
        Limits {
            max_event_bytes: self.max_event_bytes,
            max_request_bytes: self.max_request_bytes,
            max_batch_events: self.max_batch_events,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let config = Config {
            admin_token: Some(SecretString::new("super-secret-token-value")),
            ..Config::default()
        };
        assert!(!format!("{config:?}").contains("super-secret"));
    }
}
