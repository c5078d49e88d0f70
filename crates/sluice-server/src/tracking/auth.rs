//! Finding the source of a request from its write key.
//!
//! The key comes from HTTP Basic auth (the key as user name, any password) or from a
//! `writeKey` in the body. It is hashed and looked up; the stored hash is compared in
//! constant time. Lookups are cached for a second so a busy source does not hit the state
//! database on every request, and so keys created, rotated or disabled through the CLI take
//! effect within a second; changes through the admin API clear the cache at once.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sluice_store::{KeyHash, SourceAuth, StateStore};

use crate::error::ApiError;

const TTL: Duration = Duration::from_secs(1);
/// Entries kept at most; unknown keys are cached too, so the map is bounded.
const CAPACITY: usize = 10_000;

/// A lookup result and when it was made.
type CacheEntry = (Instant, Option<SourceAuth>);

#[derive(Clone)]
pub struct KeyCache {
    entries: Arc<RwLock<HashMap<KeyHash, CacheEntry>>>,
    state: Arc<StateStore>,
}

impl KeyCache {
    pub fn new(state: Arc<StateStore>) -> KeyCache {
        KeyCache {
            entries: Arc::new(RwLock::new(HashMap::new())),
            state,
        }
    }

    /// Forgets every cached lookup (after a change through the admin API).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
    }

    /// The enabled source of a write key, or the 401 to answer.
    pub async fn authenticate(&self, key: &str) -> Result<SourceAuth, ApiError> {
        let hash = KeyHash::of(key);
        let cached = match self.entries.read() {
            Ok(entries) => entries
                .get(&hash)
                .filter(|(at, _)| at.elapsed() < TTL)
                .map(|(_, found)| found.clone()),
            Err(_) => None,
        };
        let found = match cached {
            Some(found) => found,
            None => {
                let state = Arc::clone(&self.state);
                let found = tokio::task::spawn_blocking(move || state.source_by_key(&hash))
                    .await
                    .map_err(|_| ApiError::internal("key lookup failed"))??;
                if let Ok(mut entries) = self.entries.write() {
                    if entries.len() >= CAPACITY {
                        entries.clear();
                    }
                    entries.insert(hash, (Instant::now(), found.clone()));
                }
                found
            }
        };
        match found {
            Some(source) if source.key_hash.matches(&hash) => {
                if source.enabled {
                    Ok(source)
                } else {
                    Err(ApiError::unauthorized(
                        "source_disabled",
                        "the source of this write key is disabled",
                    ))
                }
            }
            _ => Err(ApiError::unauthorized(
                "invalid_write_key",
                "the write key is not valid",
            )),
        }
    }
}

/// The write key from `Authorization: Basic base64(key:)`, if that header is present.
pub fn basic_auth_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::unauthorized(
            "invalid_write_key",
            "the authorization header is not basic auth with a write key",
        )
    };
    let text = value.to_str().map_err(|_| invalid())?;
    let Some((scheme, encoded)) = text.trim().split_once(' ') else {
        return Err(invalid());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        // Bearer tokens (OAuth) come with the write key in the body; ignore the header.
        return Ok(None);
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| invalid())?;
    let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
    let user = decoded
        .split_once(':')
        .map_or(decoded.as_str(), |(user, _)| user);
    if user.is_empty() {
        return Ok(None);
    }
    Ok(Some(user.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn basic_auth_forms() {
        let with_colon = format!("Basic {}", STANDARD.encode("wk123:"));
        assert_eq!(
            basic_auth_key(&header(&with_colon)).unwrap().as_deref(),
            Some("wk123")
        );
        let without_colon = format!("basic {}", STANDARD.encode("wk123"));
        assert_eq!(
            basic_auth_key(&header(&without_colon)).unwrap().as_deref(),
            Some("wk123")
        );
        let with_password = format!("Basic {}", STANDARD.encode("wk123:ignored"));
        assert_eq!(
            basic_auth_key(&header(&with_password)).unwrap().as_deref(),
            Some("wk123")
        );
        assert_eq!(basic_auth_key(&header("Bearer abc")).unwrap(), None);
        assert_eq!(basic_auth_key(&HeaderMap::new()).unwrap(), None);
        assert_eq!(
            basic_auth_key(&header(&format!("Basic {}", STANDARD.encode(":")))).unwrap(),
            None
        );
        assert_eq!(
            basic_auth_key(&header("Basic %%%")).unwrap_err().code,
            "invalid_write_key"
        );
        assert_eq!(
            basic_auth_key(&header("Basic")).unwrap_err().code,
            "invalid_write_key"
        );
    }
}
