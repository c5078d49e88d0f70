//! A connection's tokens at rest: sealed by the vault, bound to (workspace, connection,
//! `"oauth"`), and opened only to send them to the provider or to an adapter. The sealed text
//! is `{"access_token": …, "refresh_token": …, "appsecret_proof": …}`, written and read
//! through zeroized buffers. `appsecret_proof` (Meta only) is made with the connected app's
//! secret whenever a token is sealed (connecting, renewing), so a Meta app that requires
//! proofs takes the connection's calls without its secret in any destination's settings.

use serde::{Deserialize, Serialize};
use sluice_oauth::{Provider, Secret, Tokens};
use sluice_privacy::{Vault, VaultError};
use sluice_store::{Connection, WorkspaceId, tokens_context};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::ConnectionError;
use super::settings::App;

#[derive(Serialize)]
struct Sealing<'a> {
    access_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    appsecret_proof: Option<&'a str>,
}

#[derive(Deserialize)]
struct Opened {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    appsecret_proof: Option<String>,
}

impl Drop for Opened {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.access_token);
        for text in [&mut self.refresh_token, &mut self.appsecret_proof]
            .into_iter()
            .flatten()
        {
            zeroize::Zeroize::zeroize(text);
        }
    }
}

/// Meta's `appsecret_proof` of `tokens`' access token, made with the secret of `app` (the app
/// the connection is authorized for); no other provider has one.
pub(crate) fn appsecret_proof(
    provider: Provider,
    app: &App,
    tokens: &Tokens,
) -> Option<Zeroizing<String>> {
    (provider == Provider::Meta).then(|| {
        Zeroizing::new(sluice_destinations::meta_audiences::appsecret_proof(
            app.client.client_secret.expose(),
            tokens.access.expose(),
        ))
    })
}

/// The tokens sealed for connection `id` of `workspace`, with the access token's
/// `appsecret_proof` when the provider has one ([`appsecret_proof`]).
pub(crate) fn seal_tokens(
    vault: &Vault,
    workspace: &WorkspaceId,
    id: &str,
    tokens: &Tokens,
    proof: Option<&str>,
) -> Result<Vec<u8>, VaultError> {
    let sealing = Sealing {
        access_token: tokens.access.expose(),
        refresh_token: tokens.refresh.as_ref().map(Secret::expose),
        appsecret_proof: proof,
    };
    let mut text = Zeroizing::new(Vec::with_capacity(256));
    serde_json::to_writer(&mut *text, &sealing)
        .map_err(|_| VaultError::Malformed("tokens cannot be encoded"))?;
    vault.seal(&text, &tokens_context(workspace, id))
}

/// A connection's tokens, opened, with what the store knows about them (expiry, scopes,
/// advertisers). `disconnected` when it holds none.
pub(crate) fn open_tokens(
    vault: &Vault,
    connection: &Connection,
) -> Result<Tokens, ConnectionError> {
    Ok(open_sealed(vault, connection)?.0)
}

/// [`open_tokens`] and the access token's `appsecret_proof`, when one was sealed with it
/// (Meta connections sealed before proofs were kept have none).
pub(crate) fn open_sealed(
    vault: &Vault,
    connection: &Connection,
) -> Result<(Tokens, Option<Secret>), ConnectionError> {
    let Some(sealed) = &connection.tokens else {
        return Err(ConnectionError::Disconnected(connection.id.clone()));
    };
    let text = vault.open(
        sealed,
        &tokens_context(&connection.workspace_id, &connection.id),
    )?;
    let opened: Opened = serde_json::from_slice(&text)
        .map_err(|_| VaultError::Malformed("sealed tokens are not the expected json"))?;
    let tokens = Tokens {
        access: Secret::new(opened.access_token.as_str()),
        refresh: opened
            .refresh_token
            .as_ref()
            .map(|token| Secret::new(token.as_str())),
        expires_at: connection.access_expires_at_ms.and_then(time_of_ms),
        scopes: connection.scopes.clone(),
        advertiser_ids: connection.accounts.clone(),
    };
    let proof = opened
        .appsecret_proof
        .as_ref()
        .map(|proof| Secret::new(proof.as_str()));
    Ok((tokens, proof))
}

/// Milliseconds since the epoch as a time.
pub(crate) fn time_of_ms(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// A time as milliseconds since the epoch.
pub(crate) fn ms_of_time(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use sluice_privacy::{KeyId, KeyRing, MasterKey};
    use sluice_store::ConnectionStatus;

    use super::*;

    fn vault() -> Vault {
        let id = KeyId::parse("k1").unwrap();
        let ring = KeyRing::new(
            vec![(id.clone(), MasterKey::generate().unwrap())],
            Some(&id),
        );
        Vault::new(ring.unwrap())
    }

    fn connection(workspace: &str, id: &str, sealed: Vec<u8>) -> Connection {
        Connection {
            id: id.into(),
            workspace_id: WorkspaceId(workspace.into()),
            provider: "google".into(),
            label: None,
            scopes: vec!["s".into()],
            accounts: vec![],
            status: ConnectionStatus::Active,
            status_message: None,
            tokens: Some(sealed),
            access_expires_at_ms: Some(1_700_000_000_000),
            refreshed_at_ms: None,
            revocation: None,
            version: 1,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn tokens_round_trip_sealed_and_bound_to_their_connection() {
        let vault = vault();
        let tokens = Tokens {
            access: Secret::new("ya29.access-token-value"),
            refresh: Some(Secret::new("1//refresh-token-value")),
            expires_at: None,
            scopes: vec![],
            advertiser_ids: vec![],
        };
        let workspace = WorkspaceId("ws_1".into());
        let sealed = seal_tokens(&vault, &workspace, "conn_a", &tokens, None).unwrap();
        let text = String::from_utf8_lossy(&sealed);
        assert!(!text.contains("access-token-value") && !text.contains("refresh-token"));

        let opened = open_tokens(&vault, &connection("ws_1", "conn_a", sealed.clone())).unwrap();
        assert_eq!(opened.access, tokens.access);
        assert_eq!(opened.refresh, tokens.refresh);
        assert_eq!(opened.scopes, ["s"]);
        assert_eq!(opened.expires_at.map(ms_of_time), Some(1_700_000_000_000));
        let (_, proof) =
            open_sealed(&vault, &connection("ws_1", "conn_a", sealed.clone())).unwrap();
        assert!(proof.is_none());

        // Copied to another connection or workspace, it does not open.
        assert!(open_tokens(&vault, &connection("ws_1", "conn_b", sealed.clone())).is_err());
        assert!(open_tokens(&vault, &connection("ws_2", "conn_a", sealed)).is_err());
        let mut gone = connection("ws_1", "conn_a", vec![]);
        gone.tokens = None;
        assert!(matches!(
            open_tokens(&vault, &gone),
            Err(ConnectionError::Disconnected(_))
        ));
    }

    #[test]
    fn a_meta_connection_keeps_the_proof_made_with_its_apps_secret() {
        let vault = vault();
        let tokens = Tokens {
            access: Secret::new("EAAB-meta-access-token"),
            refresh: None,
            expires_at: None,
            scopes: vec![],
            advertiser_ids: vec![],
        };
        let app = App {
            client: sluice_oauth::ClientCredentials::new("123", "meta-app-secret"),
            scopes: vec![],
        };
        assert!(appsecret_proof(Provider::Google, &app, &tokens).is_none());
        assert!(appsecret_proof(Provider::TikTok, &app, &tokens).is_none());
        let proof = appsecret_proof(Provider::Meta, &app, &tokens).unwrap();
        assert_eq!(
            proof.as_str(),
            sluice_destinations::meta_audiences::appsecret_proof(
                "meta-app-secret",
                "EAAB-meta-access-token"
            )
        );
        let workspace = WorkspaceId("ws_1".into());
        let sealed =
            seal_tokens(&vault, &workspace, "conn_m", &tokens, Some(proof.as_str())).unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains(proof.as_str()));
        let (opened, kept) = open_sealed(&vault, &connection("ws_1", "conn_m", sealed)).unwrap();
        assert_eq!(opened.access, tokens.access);
        assert_eq!(kept.as_ref().map(Secret::expose), Some(proof.as_str()));
    }
}
