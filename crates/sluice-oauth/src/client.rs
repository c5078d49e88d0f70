//! The app's credentials at a provider: the OAuth client a workspace registered there (Google
//! OAuth client, Meta app, TikTok developer app). The server reads them from configuration.

use sluice_destinations::Secret;

/// An OAuth client: its public id and its secret. For TikTok these are the app's `app_id` and
/// `secret`. `Debug` hides the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: Secret,
}

impl ClientCredentials {
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> ClientCredentials {
        ClientCredentials {
            client_id: client_id.into(),
            client_secret: Secret::new(client_secret),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_secret() {
        let client = ClientCredentials::new("1234.apps.example", "very-secret-value");
        let shown = format!("{client:?}");
        assert!(shown.contains("1234.apps.example"));
        assert!(!shown.contains("very-secret-value"));
    }
}
