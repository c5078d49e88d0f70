//! The OAuth part of the configuration, checked once at startup: the redirect URI, each
//! provider's endpoints, the workspaces' apps, and the renewal timing.

use std::collections::BTreeMap;
use std::time::Duration;

use sluice_oauth::{ClientCredentials, Provider, ProviderEndpoints};
use sluice_store::{StateStore, StoreError, WorkspaceId};

use crate::config::{Config, EndpointOverride, OAuthApp, WorkspaceApps};

/// The path of the callback, after `public_url`.
pub const CALLBACK_PATH: &str = "/oauth/callback";

/// OAuth settings that do not make a working configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct OAuthConfigError {
    pub field: String,
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> OAuthConfigError {
    OAuthConfigError {
        field: field.into(),
        message: message.into(),
    }
}

/// A workspace's app at a provider, ready for the flows.
#[derive(Debug, Clone)]
pub struct App {
    pub client: ClientCredentials,
    /// The scopes to ask for.
    pub scopes: Vec<String>,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    redirect_uri: Option<String>,
    apps: BTreeMap<String, WorkspaceApps>,
    endpoints: Vec<ProviderEndpoints>,
    pub request_timeout: Duration,
    pub refresh_interval: Duration,
    refresh_margin: Duration,
}

impl OAuthSettings {
    /// Checks and reads the configuration: `public_url` and every replaced endpoint must be an
    /// `http(s)://` URL without query or fragment, every app needs a client id and secret.
    pub fn from_config(config: &Config) -> Result<OAuthSettings, OAuthConfigError> {
        let oauth = &config.oauth;
        let redirect_uri = match &config.public_url {
            None => None,
            Some(url) => Some(format!("{}{CALLBACK_PATH}", check_url("public_url", url)?)),
        };
        let mut endpoints = Vec::with_capacity(Provider::ALL.len());
        for provider in Provider::ALL {
            let replaced = match provider {
                Provider::Google => &oauth.endpoints.google,
                Provider::Meta => &oauth.endpoints.meta,
                Provider::TikTok => &oauth.endpoints.tiktok,
            };
            endpoints.push(endpoints_of(provider, replaced.as_ref())?);
        }
        for (workspace, apps) in &oauth.workspaces {
            for provider in Provider::ALL {
                if let Some(app) = app_of(apps, provider) {
                    let field = format!("oauth.workspaces.{workspace}.{provider}");
                    if app.client_id.trim().is_empty() {
                        return Err(invalid(format!("{field}.client_id"), "is empty"));
                    }
                    if app.client_secret.expose().trim().is_empty() {
                        return Err(invalid(format!("{field}.client_secret"), "is empty"));
                    }
                }
            }
        }
        Ok(OAuthSettings {
            redirect_uri,
            apps: oauth.workspaces.clone(),
            endpoints,
            request_timeout: Duration::from_secs(oauth.request_timeout_secs.clamp(1, 300)),
            refresh_interval: Duration::from_secs(oauth.refresh_interval_secs.max(1)),
            refresh_margin: Duration::from_secs(oauth.refresh_margin_secs),
        })
    }

    /// `<public_url>/oauth/callback`, when `public_url` is set.
    pub fn redirect_uri(&self) -> Option<&str> {
        self.redirect_uri.as_deref()
    }

    /// Where `provider`'s endpoints are.
    pub fn endpoints(&self, provider: Provider) -> &ProviderEndpoints {
        let index = Provider::ALL
            .iter()
            .position(|p| *p == provider)
            .unwrap_or_default();
        // `endpoints` holds one entry per provider, in `Provider::ALL` order.
        &self.endpoints[index]
    }

    /// How long before its expiry a token of `provider` is renewed: the configured margin,
    /// or a tenth of the provider's token lifetime when that is longer.
    pub fn margin(&self, provider: Provider) -> Duration {
        let tenth = provider
            .access_lifetime()
            .and_then(|lifetime| Duration::try_from(lifetime / 10).ok())
            .unwrap_or_default();
        self.refresh_margin.max(tenth)
    }

    /// The longest margin of any provider (how far ahead renewals are looked for).
    pub fn longest_margin(&self) -> Duration {
        Provider::ALL
            .into_iter()
            .map(|provider| self.margin(provider))
            .max()
            .unwrap_or(self.refresh_margin)
    }

    /// The app `workspace` registered at `provider`: configured under the workspace's id, or
    /// else under its name. `None` when there is none.
    pub fn app(
        &self,
        state: &StateStore,
        workspace: &WorkspaceId,
        provider: Provider,
    ) -> Result<Option<App>, StoreError> {
        let mut apps = self.apps.get(&workspace.0);
        if apps.is_none() {
            for (key, candidate) in &self.apps {
                if state
                    .workspace_by_name(key)?
                    .is_some_and(|found| found.id == *workspace)
                {
                    apps = Some(candidate);
                    break;
                }
            }
        }
        Ok(apps.and_then(|apps| app_of(apps, provider)).map(|app| App {
            client: ClientCredentials::new(app.client_id.trim(), app.client_secret.expose()),
            scopes: app.scopes.clone().unwrap_or_else(|| {
                provider
                    .default_scopes()
                    .iter()
                    .map(|scope| scope.to_string())
                    .collect()
            }),
        }))
    }
}

fn app_of(apps: &WorkspaceApps, provider: Provider) -> Option<&OAuthApp> {
    match provider {
        Provider::Google => apps.google.as_ref(),
        Provider::Meta => apps.meta.as_ref(),
        Provider::TikTok => apps.tiktok.as_ref(),
    }
}

fn endpoints_of(
    provider: Provider,
    replaced: Option<&EndpointOverride>,
) -> Result<ProviderEndpoints, OAuthConfigError> {
    let mut endpoints = provider.endpoints();
    let Some(replaced) = replaced else {
        return Ok(endpoints);
    };
    let field = |name: &str| format!("oauth.endpoints.{provider}.{name}");
    if let Some(base) = &replaced.auth_base {
        endpoints.auth_base = check_origin(&field("auth_base"), base)?;
    }
    if let Some(base) = &replaced.api_base {
        endpoints.api_base = check_origin(&field("api_base"), base)?;
    }
    if let Some(version) = &replaced.meta_version {
        let valid = version
            .strip_prefix('v')
            .and_then(|rest| rest.split_once('.'))
            .is_some_and(|(major, minor)| {
                let digits =
                    |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
                digits(major) && digits(minor)
            });
        if !valid {
            return Err(invalid(field("meta_version"), "must be like v25.0"));
        }
        endpoints = endpoints.with_meta_version(version.clone());
    }
    Ok(endpoints)
}

/// An `http(s)://` URL without query, fragment or whitespace, trailing slashes removed.
fn check_url(field: &str, url: &str) -> Result<String, OAuthConfigError> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| invalid(field, "must start with https:// or http://"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.contains('@') {
        return Err(invalid(field, "must name a host (and no user information)"));
    }
    if url.contains(['?', '#']) || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(field, "must have no query, fragment or spaces"));
    }
    Ok(url.to_string())
}

/// As [`check_url`], and without a path: the provider's paths are added to it.
fn check_origin(field: &str, url: &str) -> Result<String, OAuthConfigError> {
    let url = check_url(field, url)?;
    let rest = url.split_once("://").map_or("", |(_, rest)| rest);
    if rest.contains('/') {
        return Err(invalid(field, "must be an origin without a path"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::config::ProviderEndpointsConfig;

    #[test]
    fn urls_are_checked() {
        assert_eq!(
            check_url("public_url", " https://sluice.example.com/cdp/ ").unwrap(),
            "https://sluice.example.com/cdp"
        );
        for bad in [
            "sluice.example.com",
            "ftp://x",
            "https://",
            "https://a@b",
            "https://x?y",
            "https://x#y",
            "https://x y",
        ] {
            assert!(check_url("public_url", bad).is_err(), "{bad}");
        }
        assert!(check_origin("x", "http://127.0.0.1:4000/").is_ok());
        assert!(check_origin("x", "http://127.0.0.1:4000/path").is_err());
    }

    #[test]
    fn settings_from_config() {
        let mut config = Config {
            public_url: Some("https://sluice.example.com/".into()),
            ..Config::default()
        };
        config.oauth.endpoints = ProviderEndpointsConfig {
            meta: Some(EndpointOverride {
                auth_base: Some("http://127.0.0.1:9".into()),
                api_base: Some("http://127.0.0.1:9".into()),
                meta_version: Some("v24.0".into()),
            }),
            ..ProviderEndpointsConfig::default()
        };
        let settings = OAuthSettings::from_config(&config).unwrap();
        assert_eq!(
            settings.redirect_uri(),
            Some("https://sluice.example.com/oauth/callback")
        );
        assert_eq!(
            settings.endpoints(Provider::Meta).token_url(),
            "http://127.0.0.1:9/v24.0/oauth/access_token"
        );
        assert_eq!(
            settings.endpoints(Provider::Google).token_url(),
            "https://oauth2.googleapis.com/token"
        );
        // Google: the configured 10 minutes; Meta: six days of sixty.
        assert_eq!(settings.margin(Provider::Google), Duration::from_secs(600));
        assert_eq!(
            settings.margin(Provider::Meta),
            Duration::from_secs(6 * 24 * 3600)
        );
        assert_eq!(settings.margin(Provider::TikTok), Duration::from_secs(600));
        assert_eq!(
            settings.longest_margin(),
            Duration::from_secs(6 * 24 * 3600)
        );

        config.oauth.endpoints.google = Some(EndpointOverride {
            api_base: Some("localhost:4000".into()),
            ..EndpointOverride::default()
        });
        let error = OAuthSettings::from_config(&config).unwrap_err();
        assert_eq!(error.field, "oauth.endpoints.google.api_base");
    }
}
