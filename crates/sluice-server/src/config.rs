//! The settings of a node. Every field has a default, so an empty file is a valid config.
//!
//! The binary layers them: defaults, then a TOML file, then `SLUICE_*` environment variables,
//! then command-line flags.
//!
//! Master keys (the vault's key ring) come from `master_keys` + `active_master_key`, from
//! `master_key` (`ID:BASE64`, the form of `SLUICE_MASTER_KEY`), and from the data directory's
//! `master.key` file that a first start without keys generates: [`Config::key_ring`] puts them
//! together, [`read_key_file`] and [`write_key_file`] handle the file.
//!
//! OAuth connections to ad platforms read `public_url` (the redirect URI is
//! `<public_url>/oauth/callback`) and [`OAuthConfig`]: each workspace's apps at Google, Meta
//! and TikTok (client id and secret), and the providers' endpoints when they are replaced.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;
use sluice_privacy::{KeyId, KeyRing, MasterKey, VaultError};
use sluice_spec::Limits;

/// A secret from configuration: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<SecretString, D::Error> {
        text(deserializer).map(SecretString)
    }
}

/// Text from configuration. Numbers are taken as their digits: the environment layer reads
/// `SLUICE_…=1234` as a number, and some ids and secrets (Meta's app id) are all digits.
fn text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct Text;
    impl serde::de::Visitor<'_> for Text {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<String, E> {
            Ok(value.to_owned())
        }
        fn visit_string<E: serde::de::Error>(self, value: String) -> Result<String, E> {
            Ok(value)
        }
        fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<String, E> {
            Ok(value.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<String, E> {
            Ok(value.to_string())
        }
        fn visit_u128<E: serde::de::Error>(self, value: u128) -> Result<String, E> {
            Ok(value.to_string())
        }
    }
    deserializer.deserialize_any(Text)
}

impl SecretString {
    pub fn new(value: impl Into<String>) -> SecretString {
        SecretString(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(redacted)")
    }
}

/// One master key of the vault's key ring.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MasterKeyConfig {
    /// Its name, written into everything sealed under it (1 to 64 letters, digits, `-_.`).
    pub id: String,
    /// 32 random bytes in base64 (`openssl rand -base64 32`).
    pub key: SecretString,
}

/// Master keys that do not make a key ring.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("master key {id}: {source}")]
    Key { id: String, source: VaultError },
    #[error("master_key must be ID:BASE64, for example k1:<32 bytes in base64>")]
    Format,
    #[error(transparent)]
    Ring(#[from] VaultError),
    #[error("{path} names key {id}, which the configuration gives with other key material")]
    FileConflict { path: String, id: KeyId },
    #[error("master key file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
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
    /// The vault's master keys (destination credentials are sealed with them).
    pub master_keys: Vec<MasterKeyConfig>,
    /// The id of the key new secrets are sealed with; may be left out with a single key.
    pub active_master_key: Option<String>,
    /// One more master key as `ID:BASE64` (the environment form, `SLUICE_MASTER_KEY`); active
    /// unless `active_master_key` says otherwise.
    pub master_key: Option<SecretString>,
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
    /// How often the retention job runs (expired events, the children policy's sweep).
    pub retention_interval_secs: u64,
    /// The address users and providers reach this node at (`https://sluice.example.com`, a
    /// path prefix allowed): OAuth providers send the browser back to
    /// `<public_url>/oauth/callback`.
    pub public_url: Option<String>,
    /// OAuth connections to ad platforms.
    pub oauth: OAuthConfig,
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
            master_keys: Vec::new(),
            active_master_key: None,
            master_key: None,
            dedup_window_secs: 24 * 60 * 60,
            dedup_capacity: 400_000,
            max_event_bytes: limits.max_event_bytes,
            max_request_bytes: limits.max_request_bytes,
            max_batch_events: limits.max_batch_events,
            max_commit_events: 4096,
            request_timeout_secs: 30,
            retention_interval_secs: 3600,
            public_url: None,
            oauth: OAuthConfig::default(),
            log_format: LogFormat::Text,
            log_level: "info".to_owned(),
        }
    }
}

/// OAuth connections to ad platforms: the apps (OAuth clients) each workspace registered at
/// Google, Meta and TikTok, and the providers' endpoints when they are replaced.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthConfig {
    /// Per workspace (its name, such as `default`, or its id): its app at each provider.
    pub workspaces: BTreeMap<String, WorkspaceApps>,
    /// Endpoints replacing a provider's own (a proxy, or a fake in tests).
    pub endpoints: ProviderEndpointsConfig,
    /// Time limit of one request to a provider (token exchange, renewal, revocation).
    pub request_timeout_secs: u64,
    /// How often connections are checked for tokens to renew.
    pub refresh_interval_secs: u64,
    /// An access token is renewed at least this long before it expires (or a tenth of its
    /// lifetime before, when that is longer: Meta's 60-day tokens six days before).
    pub refresh_margin_secs: u64,
}

impl Default for OAuthConfig {
    fn default() -> OAuthConfig {
        OAuthConfig {
            workspaces: BTreeMap::new(),
            endpoints: ProviderEndpointsConfig::default(),
            request_timeout_secs: 10,
            refresh_interval_secs: 60,
            refresh_margin_secs: 600,
        }
    }
}

/// A workspace's apps, one per provider at most.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct WorkspaceApps {
    pub google: Option<OAuthApp>,
    pub meta: Option<OAuthApp>,
    pub tiktok: Option<OAuthApp>,
}

/// An app registered at a provider: Google's OAuth client, Meta's app, TikTok's developer
/// app. `Debug` hides the secret.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OAuthApp {
    /// The client id (Meta: the app id; TikTok: the `app_id`).
    #[serde(deserialize_with = "text")]
    pub client_id: String,
    /// The client secret (Meta: the app secret; TikTok: the `secret`).
    pub client_secret: SecretString,
    /// Scopes to ask for instead of Sluice's defaults (Google: the Data Manager scope; Meta:
    /// `ads_management`, `ads_read`, `business_management`; TikTok takes none).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

/// Replacement endpoints, per provider.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderEndpointsConfig {
    pub google: Option<EndpointOverride>,
    pub meta: Option<EndpointOverride>,
    pub tiktok: Option<EndpointOverride>,
}

/// Where one provider's endpoints are instead; what is left out stays the provider's own.
/// The paths stay the provider's.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct EndpointOverride {
    /// Origin of the consent page (`https://accounts.google.com`).
    pub auth_base: Option<String>,
    /// Origin of the token, refresh and revoke endpoints (`https://oauth2.googleapis.com`).
    pub api_base: Option<String>,
    /// Meta's Graph API version (`v25.0`).
    pub meta_version: Option<String>,
}

impl Config {
    pub fn limits(&self) -> Limits {
        Limits {
            max_event_bytes: self.max_event_bytes,
            max_request_bytes: self.max_request_bytes,
            max_batch_events: self.max_batch_events,
        }
    }

    /// Where a generated master key is kept.
    pub fn key_file(&self) -> PathBuf {
        self.data_dir.join("master.key")
    }

    /// Whether any master key is configured (file, environment or flags; not `master.key`).
    pub fn has_master_keys(&self) -> bool {
        !self.master_keys.is_empty() || self.master_key.is_some()
    }

    /// The key ring: the configured keys plus the key of `master.key` when there is one
    /// (so what it sealed still opens after its key moved into the configuration). The
    /// active key is `active_master_key`, else `master_key`, else the only configured key,
    /// else the file's.
    pub fn key_ring(
        &self,
        file_key: Option<(KeyId, MasterKey)>,
    ) -> Result<KeyRing, MasterKeyError> {
        let mut keys = Vec::new();
        for entry in &self.master_keys {
            let id = KeyId::parse(&entry.id)?;
            let key = MasterKey::from_base64(entry.key.expose()).map_err(|source| {
                MasterKeyError::Key {
                    id: entry.id.clone(),
                    source,
                }
            })?;
            keys.push((id, key));
        }
        let single = match &self.master_key {
            Some(spec) => Some(parse_key_spec(spec.expose())?),
            None => None,
        };
        let single_id = single.as_ref().map(|(id, _)| id.clone());
        keys.extend(single);
        let only_configured = match keys.as_slice() {
            [(id, _)] => Some(id.clone()),
            _ => None,
        };
        let file_id = file_key.as_ref().map(|(id, _)| id.clone());
        let active = match (&self.active_master_key, single_id) {
            (Some(id), _) => Some(KeyId::parse(id)?),
            (None, Some(id)) => Some(id),
            (None, None) if keys.is_empty() => file_id,
            (None, None) => only_configured,
        };
        if let Some((id, key)) = file_key {
            match keys.iter().find(|(known, _)| *known == id) {
                Some((_, known)) if *known == key => {}
                Some(_) => {
                    return Err(MasterKeyError::FileConflict {
                        path: self.key_file().display().to_string(),
                        id,
                    });
                }
                None => keys.push((id, key)),
            }
        }
        Ok(KeyRing::new(keys, active.as_ref())?)
    }
}

/// Reads `ID:BASE64`.
pub fn parse_key_spec(text: &str) -> Result<(KeyId, MasterKey), MasterKeyError> {
    let (id, key) = text.trim().split_once(':').ok_or(MasterKeyError::Format)?;
    let id = KeyId::parse(id)?;
    let key = MasterKey::from_base64(key).map_err(|source| MasterKeyError::Key {
        id: id.to_string(),
        source,
    })?;
    Ok((id, key))
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> MasterKeyError + '_ {
    move |source| MasterKeyError::File {
        path: path.display().to_string(),
        source,
    }
}

/// The key of a `master.key` file (`ID:BASE64`), if the file exists.
pub fn read_key_file(path: &Path) -> Result<Option<(KeyId, MasterKey)>, MasterKeyError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => zeroize::Zeroizing::new(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(file_error(path)(error)),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(file_error(path))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the master key file is readable by other users; chmod 600 it");
        }
    }
    parse_key_spec(&text).map(Some)
}

/// Writes a new key as `ID:BASE64` to a file only its owner can read, failing if the file
/// exists (two processes starting at once: the loser reads the winner's key).
pub fn write_key_file(path: &Path, id: &KeyId, key: &MasterKey) -> Result<(), MasterKeyError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(file_error(path))?;
    let line = zeroize::Zeroizing::new(format!("{id}:{}\n", key.expose_base64().as_str()));
    file.write_all(line.as_bytes()).map_err(file_error(path))?;
    file.sync_all().map_err(file_error(path))
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

    const KEY_A: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    const KEY_B: &str = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA=";

    fn key(id: &str, key: &str) -> MasterKeyConfig {
        MasterKeyConfig {
            id: id.into(),
            key: SecretString::new(key),
        }
    }

    fn file_key(id: &str, text: &str) -> Option<(KeyId, MasterKey)> {
        Some((
            KeyId::parse(id).unwrap(),
            MasterKey::from_base64(text).unwrap(),
        ))
    }

    fn active(config: &Config, file: Option<(KeyId, MasterKey)>) -> String {
        config.key_ring(file).unwrap().active().to_string()
    }

    #[test]
    fn oauth_apps_read_and_do_not_print() {
        let config: Config = serde_json::from_value(serde_json::json!({
            "public_url": "https://sluice.example.com",
            "oauth": {
                "workspaces": {"default": {
                    "google": {"client_id": "123.apps.example", "client_secret": "GOCSPX-very-secret"},
                    "meta": {"client_id": "42", "client_secret": "meta-app-secret", "scopes": ["ads_management"]}
                }},
                "endpoints": {"google": {"auth_base": "http://127.0.0.1:9", "api_base": "http://127.0.0.1:9"}},
                "refresh_margin_secs": 300
            }
        }))
        .unwrap();
        let apps = &config.oauth.workspaces["default"];
        let numeric: OAuthApp =
            serde_json::from_value(serde_json::json!({"client_id": 424242, "client_secret": 99}))
                .unwrap();
        assert_eq!(numeric.client_id, "424242");
        assert_eq!(numeric.client_secret.expose(), "99");
        assert_eq!(apps.google.as_ref().unwrap().client_id, "123.apps.example");
        assert_eq!(
            apps.meta.as_ref().unwrap().scopes.as_deref(),
            Some(&["ads_management".to_string()][..])
        );
        assert!(apps.tiktok.is_none());
        assert_eq!(config.oauth.refresh_margin_secs, 300);
        assert_eq!(config.oauth.request_timeout_secs, 10);
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("GOCSPX") && !shown.contains("meta-app-secret"),
            "{shown}"
        );
        let unknown = serde_json::from_value::<Config>(serde_json::json!({
            "oauth": {"workspaces": {"default": {"linkedin": {}}}}
        }));
        assert!(unknown.unwrap_err().to_string().contains("linkedin"));
    }

    #[test]
    fn master_keys_do_not_print() {
        let config = Config {
            master_keys: vec![key("k1", KEY_A)],
            master_key: Some(SecretString::new(format!("k2:{KEY_B}"))),
            ..Config::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains(KEY_A) && !shown.contains(KEY_B), "{shown}");
    }

    #[test]
    fn the_active_key_is_chosen_in_order() {
        let mut config = Config::default();
        assert!(matches!(
            config.key_ring(None),
            Err(MasterKeyError::Ring(VaultError::Empty))
        ));
        assert_eq!(active(&config, file_key("local", KEY_A)), "local");

        config.master_keys = vec![key("k1", KEY_A)];
        assert_eq!(active(&config, None), "k1");
        // A configured key wins over the file's, which stays readable.
        let ring = config.key_ring(file_key("local", KEY_B)).unwrap();
        assert_eq!(ring.active().as_str(), "k1");
        assert_eq!(ring.ids().count(), 2);

        config.master_keys.push(key("k2", KEY_B));
        assert!(matches!(
            config.key_ring(None),
            Err(MasterKeyError::Ring(VaultError::NoActiveKey))
        ));
        config.active_master_key = Some("k2".into());
        assert_eq!(active(&config, None), "k2");
        config.active_master_key = Some("k3".into());
        assert!(matches!(
            config.key_ring(None),
            Err(MasterKeyError::Ring(VaultError::ActiveMissing(_)))
        ));

        // The environment's single key is active unless told otherwise.
        config.active_master_key = None;
        config.master_keys = vec![key("k1", KEY_A)];
        config.master_key = Some(SecretString::new(format!("k2:{KEY_B}")));
        assert_eq!(active(&config, None), "k2");
        config.active_master_key = Some("k1".into());
        assert_eq!(active(&config, None), "k1");
    }

    #[test]
    fn bad_master_keys_are_named() {
        for (config, expected) in [
            (
                Config {
                    master_keys: vec![key("k1", "short")],
                    ..Config::default()
                },
                "master key k1: invalid master key",
            ),
            (
                Config {
                    master_keys: vec![key("bad id", KEY_A)],
                    ..Config::default()
                },
                "invalid key id",
            ),
            (
                Config {
                    master_keys: vec![key("k1", KEY_A), key("k1", KEY_B)],
                    ..Config::default()
                },
                "master key k1 is configured twice",
            ),
            (
                Config {
                    master_key: Some(SecretString::new(KEY_A)),
                    ..Config::default()
                },
                "master_key must be ID:BASE64",
            ),
        ] {
            let error = config.key_ring(None).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
            assert!(!error.contains(KEY_A) && !error.contains(KEY_B), "{error}");
        }
        // The file may repeat a configured key, not contradict it.
        let config = Config {
            master_keys: vec![key("k1", KEY_A)],
            ..Config::default()
        };
        assert_eq!(
            config
                .key_ring(file_key("k1", KEY_A))
                .unwrap()
                .ids()
                .count(),
            1
        );
        assert!(matches!(
            config.key_ring(file_key("k1", KEY_B)),
            Err(MasterKeyError::FileConflict { .. })
        ));
    }

    #[test]
    fn key_files_round_trip_privately() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        assert!(read_key_file(&path).unwrap().is_none());
        let id = KeyId::parse("local").unwrap();
        let generated = MasterKey::generate().unwrap();
        write_key_file(&path, &id, &generated).unwrap();
        let (read_id, read_key) = read_key_file(&path).unwrap().unwrap();
        assert_eq!((read_id, read_key), (id.clone(), generated));
        assert!(
            write_key_file(&path, &id, &MasterKey::generate().unwrap()).is_err(),
            "never overwritten"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
