//! The fake's authorization server, whatever the platform: the codes it handed out, the grants
//! (one per consent) and the tokens of each grant, and the rules: a code works once, before it
//! expires, for its redirect URI and PKCE challenge; a token works until it expires or its
//! grant is revoked. The platform modules read requests into these calls and write the
//! outcomes in the platform's shapes.

use time::{Duration, OffsetDateTime};

use super::credentials;
use super::{IssuedToken, TokenKind};
use crate::form;
use crate::pkce::CodeChallenge;
use crate::provider::Provider;

/// Why the authorization server refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    BadClientId,
    BadClientSecret,
    UnknownCode,
    UsedCode,
    ExpiredCode,
    RedirectMismatch,
    MissingVerifier,
    VerifierMismatch,
    UnknownToken,
    RevokedToken,
    ExpiredToken,
}

/// A code exchange as asked.
pub(super) struct Exchange<'a> {
    pub(super) client_id: &'a str,
    pub(super) client_secret: &'a str,
    pub(super) code: &'a str,
    /// `None` where the platform's exchange has no redirect URI (TikTok).
    pub(super) redirect_uri: Option<&'a str>,
    /// Whether the platform's exchange carries the PKCE verifier (not TikTok's).
    pub(super) pkce: bool,
    pub(super) verifier: Option<&'a str>,
}

/// What was issued.
pub(super) struct Issued {
    pub(super) access: String,
    pub(super) expires_in: Option<i64>,
    pub(super) refresh: Option<String>,
    pub(super) scopes: Vec<String>,
}

struct Code {
    value: String,
    redirect_uri: String,
    challenge: CodeChallenge,
    offline: bool,
    scopes: Vec<String>,
    expires_at: OffsetDateTime,
    used: bool,
    /// The grant its exchange created.
    grant: Option<usize>,
}

/// A consent page's query, read.
struct Consent {
    params: Vec<(String, String)>,
    redirect_uri: String,
    state: String,
}

struct Grant {
    revoked: bool,
    scopes: Vec<String>,
}

struct Token {
    value: String,
    kind: TokenKind,
    grant: usize,
    expires_at: Option<OffsetDateTime>,
}

/// The state of one fake platform's authorization server.
pub(super) struct Authority {
    provider: Provider,
    /// The one redirect URI registered for the app.
    redirect_uri: String,
    code_lifetime: Duration,
    codes: Vec<Code>,
    grants: Vec<Grant>,
    tokens: Vec<Token>,
    counter: u64,
}

/// Google's access tokens live an hour (answered as 3599 s).
const GOOGLE_ACCESS_SECONDS: i64 = 3599;
/// Meta's short-lived token: about an hour.
const META_SHORT_SECONDS: i64 = 3600;
/// Meta's long-lived token: about 60 days (the `expires_in` Meta documents).
pub(super) const META_LONG_SECONDS: i64 = 5_183_944;

impl Authority {
    pub(super) fn new(provider: Provider) -> Authority {
        Authority {
            provider,
            redirect_uri: credentials::redirect_uri(provider),
            // Google's and Meta's codes last minutes; TikTok's auth_code an hour.
            code_lifetime: match provider {
                Provider::TikTok => Duration::hours(1),
                Provider::Google | Provider::Meta => Duration::minutes(10),
            },
            codes: Vec::new(),
            grants: Vec::new(),
            tokens: Vec::new(),
            counter: 0,
        }
    }

    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// The user allows the app on the consent page reached at `url` (the page's address with
    /// its query). The redirect URL with `code` (TikTok: `auth_code` and `code`) and `state`,
    /// or why the page refuses to show.
    pub(super) fn authorize(
        &mut self,
        page: &str,
        url: &str,
        now: OffsetDateTime,
    ) -> Result<String, String> {
        let Consent {
            params,
            redirect_uri,
            state,
        } = self.consent_page(page, url)?;
        let get = |name: &str| form::get(&params, name);
        let (Some(challenge), Some(method)) = (get("code_challenge"), get("code_challenge_method"))
        else {
            return Err("code_challenge and code_challenge_method are required".into());
        };
        if method != "S256" {
            return Err(format!("code_challenge_method {method} is not S256"));
        }
        if challenge.len() != 43 {
            return Err("code_challenge is not a base64url SHA-256".into());
        }
        let offline = self.provider != Provider::Google || get("access_type") == Some("offline");
        let scopes = match self.provider {
            Provider::Google => get("scope")
                .unwrap_or("")
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            Provider::Meta => Vec::new(),
            Provider::TikTok => ["4", "5", "12"].map(str::to_string).to_vec(),
        };
        let n = self.next();
        let value = match self.provider {
            Provider::Google => format!("4/0Afake-code-{n:04}"),
            Provider::Meta => format!("AQDfakecode{n:04}"),
            Provider::TikTok => format!("fakeauthcode{n:04}"),
        };
        self.codes.push(Code {
            value: value.clone(),
            redirect_uri: redirect_uri.clone(),
            challenge: CodeChallenge::new(challenge),
            offline,
            scopes,
            expires_at: now.saturating_add(self.code_lifetime),
            used: false,
            grant: None,
        });
        let code = form::encode(&value);
        let params = match self.provider {
            Provider::TikTok => format!("auth_code={code}&code={code}"),
            Provider::Google | Provider::Meta => format!("code={code}"),
        };
        Ok(redirect(
            &redirect_uri,
            &format!("{params}&state={}", form::encode(&state)),
        ))
    }

    /// The user refuses on the consent page: the redirect URL with `error=access_denied`.
    pub(super) fn deny(&mut self, page: &str, url: &str) -> Result<String, String> {
        let Consent {
            redirect_uri,
            state,
            ..
        } = self.consent_page(page, url)?;
        let error = match self.provider {
            Provider::Meta => {
                "error=access_denied&error_code=200&error_description=Permissions+error\
                 &error_reason=user_denied"
            }
            Provider::Google | Provider::TikTok => "error=access_denied",
        };
        Ok(redirect(
            &redirect_uri,
            &format!("{error}&state={}", form::encode(&state)),
        ))
    }

    /// The consent page's checks: the address, the client, the registered redirect URI, the
    /// response type, a state.
    fn consent_page(&self, page: &str, url: &str) -> Result<Consent, String> {
        let Some((address, query)) = url.split_once('?') else {
            return Err("the url has no query".into());
        };
        if address != page {
            return Err(format!("{address} is not the consent page {page}"));
        }
        let params = form::parse(query).ok_or("the query is not url-encoded")?;
        let get = |name: &str| form::get(&params, name);
        let id_name = match self.provider {
            Provider::TikTok => "app_id",
            Provider::Google | Provider::Meta => "client_id",
        };
        if get(id_name) != Some(credentials::client_id(self.provider)) {
            return Err(format!("{id_name} is not the app's"));
        }
        let redirect_uri = get("redirect_uri").ok_or("redirect_uri is required")?;
        if redirect_uri != self.redirect_uri {
            return Err("redirect_uri is not registered for the app".into());
        }
        if self.provider != Provider::TikTok && get("response_type") != Some("code") {
            return Err("response_type must be code".into());
        }
        let state = match get("state") {
            Some(state) if !state.is_empty() => state.to_string(),
            _ => return Err("state is required".into()),
        };
        let redirect_uri = redirect_uri.to_string();
        Ok(Consent {
            params,
            redirect_uri,
            state,
        })
    }

    /// Checks the app's credentials.
    pub(super) fn check_client(&self, client_id: &str, secret: &str) -> Result<(), Refusal> {
        if client_id != credentials::client_id(self.provider) {
            return Err(Refusal::BadClientId);
        }
        if secret != credentials::client_secret(self.provider) {
            return Err(Refusal::BadClientSecret);
        }
        Ok(())
    }

    /// Exchanges a code. Reusing a code also revokes the grant its first exchange created
    /// (RFC 6749 §4.1.2: a code used twice may have been stolen).
    pub(super) fn exchange(
        &mut self,
        ask: &Exchange<'_>,
        now: OffsetDateTime,
    ) -> Result<Issued, Refusal> {
        self.check_client(ask.client_id, ask.client_secret)?;
        let index = self
            .codes
            .iter()
            .position(|code| code.value == ask.code)
            .ok_or(Refusal::UnknownCode)?;
        let code = &self.codes[index];
        if code.used {
            if let Some(grant) = code.grant {
                self.grants[grant].revoked = true;
            }
            return Err(Refusal::UsedCode);
        }
        if now >= code.expires_at {
            return Err(Refusal::ExpiredCode);
        }
        if ask.redirect_uri.is_some_and(|uri| uri != code.redirect_uri) {
            return Err(Refusal::RedirectMismatch);
        }
        if ask.pkce {
            let verifier = ask.verifier.ok_or(Refusal::MissingVerifier)?;
            if !code.challenge.is_challenge_of(verifier) {
                return Err(Refusal::VerifierMismatch);
            }
        }
        let offline = code.offline;
        let scopes = code.scopes.clone();
        let grant = self.grants.len();
        self.grants.push(Grant {
            revoked: false,
            scopes: scopes.clone(),
        });
        let code = &mut self.codes[index];
        code.used = true;
        code.grant = Some(grant);
        let expires_in = match self.provider {
            Provider::Google => Some(GOOGLE_ACCESS_SECONDS),
            Provider::Meta => Some(META_SHORT_SECONDS),
            Provider::TikTok => None,
        };
        let access = self.issue(TokenKind::Access, grant, expires_in, now);
        let refresh = (self.provider == Provider::Google && offline)
            .then(|| self.issue(TokenKind::Refresh, grant, None, now));
        Ok(Issued {
            access,
            expires_in,
            refresh,
            scopes,
        })
    }

    /// Google: a new access token for a live refresh token.
    pub(super) fn refresh(
        &mut self,
        client_id: &str,
        secret: &str,
        refresh: &str,
        now: OffsetDateTime,
    ) -> Result<Issued, Refusal> {
        self.check_client(client_id, secret)?;
        let grant = self.live(refresh, TokenKind::Refresh, now)?;
        let access = self.issue(TokenKind::Access, grant, Some(GOOGLE_ACCESS_SECONDS), now);
        Ok(Issued {
            access,
            expires_in: Some(GOOGLE_ACCESS_SECONDS),
            refresh: None,
            scopes: self.grants[grant].scopes.clone(),
        })
    }

    /// Meta: a new long-lived token for a live token of the same grant.
    pub(super) fn exchange_long_lived(
        &mut self,
        client_id: &str,
        secret: &str,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Issued, Refusal> {
        self.check_client(client_id, secret)?;
        let grant = self.live(token, TokenKind::Access, now)?;
        let access = self.issue(TokenKind::Access, grant, Some(META_LONG_SECONDS), now);
        Ok(Issued {
            access,
            expires_in: Some(META_LONG_SECONDS),
            refresh: None,
            scopes: Vec::new(),
        })
    }

    /// Revokes the grant of a live token (Meta: every grant, the user removed the app).
    pub(super) fn revoke(&mut self, token: &str, now: OffsetDateTime) -> Result<(), Refusal> {
        let found = self
            .tokens
            .iter()
            .find(|t| t.value == token)
            .ok_or(Refusal::UnknownToken)?;
        let grant = self.live(token, found.kind, now)?;
        if self.provider == Provider::Meta {
            self.grants.iter_mut().for_each(|g| g.revoked = true);
        } else {
            self.grants[grant].revoked = true;
        }
        Ok(())
    }

    /// The grant of a token of `kind` that is known, not revoked and not expired.
    fn live(&self, value: &str, kind: TokenKind, now: OffsetDateTime) -> Result<usize, Refusal> {
        let token = self
            .tokens
            .iter()
            .find(|t| t.value == value && t.kind == kind)
            .ok_or(Refusal::UnknownToken)?;
        if self.grants[token.grant].revoked {
            return Err(Refusal::RevokedToken);
        }
        if token.expires_at.is_some_and(|at| now >= at) {
            return Err(Refusal::ExpiredToken);
        }
        Ok(token.grant)
    }

    fn issue(
        &mut self,
        kind: TokenKind,
        grant: usize,
        expires_in: Option<i64>,
        now: OffsetDateTime,
    ) -> String {
        let n = self.next();
        let value = match (self.provider, kind) {
            (Provider::Google, TokenKind::Access) => format!("ya29.fake-access-{n:04}"),
            (Provider::Google, TokenKind::Refresh) => format!("1//fake-refresh-{n:04}"),
            (Provider::Meta, _) => format!("EAAfaketoken{n:04}"),
            (Provider::TikTok, _) => format!("act.faketoken{n:04}"),
        };
        self.tokens.push(Token {
            value: value.clone(),
            kind,
            grant,
            expires_at: expires_in.map(|seconds| now.saturating_add(Duration::seconds(seconds))),
        });
        value
    }

    pub(super) fn is_valid(&self, value: &str, now: OffsetDateTime) -> bool {
        self.tokens
            .iter()
            .find(|t| t.value == value)
            .is_some_and(|t| self.live(value, t.kind, now).is_ok())
    }

    /// Makes a token expired from now on; `false` when it is unknown.
    pub(super) fn expire_token(&mut self, value: &str, now: OffsetDateTime) -> bool {
        let Some(token) = self.tokens.iter_mut().find(|t| t.value == value) else {
            return false;
        };
        token.expires_at = Some(now - Duration::seconds(1));
        true
    }

    /// Every code handed out so far is expired from now on.
    pub(super) fn expire_codes(&mut self, now: OffsetDateTime) {
        for code in &mut self.codes {
            code.expires_at = now - Duration::seconds(1);
        }
    }

    pub(super) fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    pub(super) fn set_redirect_uri(&mut self, uri: &str) {
        self.redirect_uri = uri.to_string();
    }

    pub(super) fn set_code_lifetime(&mut self, lifetime: Duration) {
        self.code_lifetime = lifetime;
    }

    pub(super) fn issued(&self) -> Vec<IssuedToken> {
        self.tokens
            .iter()
            .map(|t| IssuedToken {
                kind: t.kind,
                value: t.value.clone(),
                expires_at: t.expires_at,
                revoked: self.grants[t.grant].revoked,
            })
            .collect()
    }
}

/// `redirect_uri` with `params` added to its query.
fn redirect(redirect_uri: &str, params: &str) -> String {
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    format!("{redirect_uri}{separator}{params}")
}
