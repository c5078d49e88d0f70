//! Mixpanel settings: credentials (a service account with `project_id`, the project's
//! `api_secret`, or its `project_token`: exactly one), `region` (`us`, `eu`, `in`) or an
//! `api_url` override, `page_events` and `id_merge`; and for forwarded deletions
//! `gdpr_api_token` with `project_token` (which may then sit beside the import credential).

use serde_json::{Map, Value};

use crate::SettingsError;
use crate::page::PageEvents;
use crate::request::basic_auth;
use crate::secret::Secret;
use crate::settings::{Reader, invalid};

/// Which of Mixpanel's identity systems the project uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum IdMerge {
    /// Simplified ID Merge: `$device_id` + `$user_id` merge; `$create_alias` does nothing.
    Simplified,
    /// Original ID Merge: `alias` calls become `$create_alias` events.
    Original,
}

/// Validated Mixpanel settings.
#[derive(Debug)]
pub(super) struct MixpanelSettings {
    /// The full import URL, query included.
    pub(super) endpoint: String,
    /// The `Authorization` header value.
    pub(super) authorization: Secret,
    pub(super) page_events: PageEvents,
    pub(super) id_merge: IdMerge,
    /// Where and how to forward deletions; `None` without `gdpr_api_token`.
    pub(super) deletion: Option<DeletionAccess>,
}

/// The GDPR API of the project.
#[derive(Debug)]
pub(super) struct DeletionAccess {
    /// `<base>/api/app/data-deletions/v3.0/?token=<project token>`: a secret, since it holds
    /// the token.
    pub(super) url: Secret,
    /// `Bearer <gdpr_api_token>`.
    pub(super) authorization: Secret,
}

const CREDENTIALS: &str = "set one of: a service account (service_account_username, \
    service_account_secret, project_id), api_secret, or project_token (project_token may \
    also be set beside the others when gdpr_api_token is set)";

impl MixpanelSettings {
    pub(super) fn read(map: &Map<String, Value>) -> Result<MixpanelSettings, SettingsError> {
        let reader = Reader::new(
            map,
            &[
                "service_account_username",
                "service_account_secret",
                "project_id",
                "api_secret",
                "project_token",
                "region",
                "api_url",
                "page_events",
                "id_merge",
                "gdpr_api_token",
            ],
        )?;
        let (authorization, project_id) = credentials(&reader)?;
        let deletion = deletion_access(&reader)?;
        let base = reader.base_url(&[
            ("us", "https://api.mixpanel.com"),
            ("eu", "https://api-eu.mixpanel.com"),
            ("in", "https://api-in.mixpanel.com"),
        ])?;
        let endpoint = match project_id {
            Some(project) => format!("{base}/import?strict=1&project_id={project}"),
            None => format!("{base}/import?strict=1"),
        };
        let id_merge = match reader.choice("id_merge", &["simplified", "original"], "simplified")? {
            "original" => IdMerge::Original,
            _ => IdMerge::Simplified,
        };
        Ok(MixpanelSettings {
            endpoint,
            authorization,
            page_events: PageEvents::read(&reader, "all")?,
            id_merge,
            deletion,
        })
    }
}

/// The GDPR API access, when `gdpr_api_token` is set: it names the project by its token.
fn deletion_access(reader: &Reader<'_>) -> Result<Option<DeletionAccess>, SettingsError> {
    let Some(gdpr_token) = reader.optional_secret("gdpr_api_token")? else {
        return Ok(None);
    };
    let token = reader.optional_secret("project_token")?.ok_or_else(|| {
        invalid(
            "project_token",
            "is required with gdpr_api_token (the deletion api names the project by its token)",
        )
    })?;
    // The GDPR API is on the web app's hosts, not the ingestion ones; `api_url` replaces both.
    let base = reader.base_url(&[
        ("us", "https://mixpanel.com"),
        ("eu", "https://eu.mixpanel.com"),
        ("in", "https://in.mixpanel.com"),
    ])?;
    let token = query_escape(token.expose());
    Ok(Some(DeletionAccess {
        url: Secret::new(format!("{base}/api/app/data-deletions/v3.0/?token={token}")),
        authorization: Secret::new(format!("Bearer {}", gdpr_token.expose())),
    }))
}

/// `text` percent-encoded for a query value: every byte but RFC 3986's unreserved ones.
fn query_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    escaped
}

/// The `Authorization` value and the `project_id` to send, from exactly one kind of credential.
fn credentials(reader: &Reader<'_>) -> Result<(Secret, Option<String>), SettingsError> {
    let username = reader.optional_str("service_account_username")?;
    let secret = reader.optional_secret("service_account_secret")?;
    let project_id = reader.optional_str("project_id")?;
    let api_secret = reader.optional_secret("api_secret")?;
    let mut token = reader.optional_secret("project_token")?;
    if project_id.is_some_and(|project| !project.chars().all(|c| c.is_ascii_digit())) {
        return Err(invalid("project_id", "must be the project's numeric id"));
    }
    let service_account = username.is_some() || secret.is_some();
    // With gdpr_api_token, project_token names the project for deletions and may sit beside
    // another credential, which then imports.
    let deletions_only = reader.optional_secret("gdpr_api_token")?.is_some()
        && (service_account || api_secret.is_some());
    if deletions_only {
        token = None;
    }
    let kinds = usize::from(service_account)
        + usize::from(api_secret.is_some())
        + usize::from(token.is_some());
    if kinds > 1 {
        let field = if api_secret.is_some() {
            "api_secret"
        } else {
            "project_token"
        };
        return Err(invalid(field, CREDENTIALS));
    }
    if service_account {
        let username = username.ok_or_else(|| {
            invalid(
                "service_account_username",
                "is required with service_account_secret",
            )
        })?;
        let secret = secret.ok_or_else(|| {
            invalid(
                "service_account_secret",
                "is required with service_account_username",
            )
        })?;
        let project = project_id
            .ok_or_else(|| invalid("project_id", "is required with a service account"))?;
        let header = basic_auth(username, secret.expose());
        return Ok((Secret::new(header), Some(project.to_string())));
    }
    if let Some(api_secret) = api_secret {
        if project_id.is_some() {
            return Err(invalid(
                "project_id",
                "goes with a service account or project_token, not api_secret",
            ));
        }
        return Ok((Secret::new(basic_auth(api_secret.expose(), "")), None));
    }
    if let Some(token) = token {
        return Ok((
            Secret::new(basic_auth(token.expose(), "")),
            project_id.map(str::to_string),
        ));
    }
    Err(invalid("service_account_username", CREDENTIALS))
}
