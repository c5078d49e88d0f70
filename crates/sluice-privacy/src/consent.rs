//! Consent: whether an event may reach a destination, by Segment's consent rules and Sluice's
//! stricter options.
//!
//! Segment's rules (the consent object is `context.consent.categoryPreferences`, a map of
//! category id → `true`/`false`):
//! - a destination mapped to no category receives every event;
//! - an event with no consent object (no `context`, no `consent`, an empty `consent`, or no
//!   `categoryPreferences` in it) is not checked;
//! - a mapped destination receives an event only when every one of its categories is `true`
//!   in the preferences — a category missing from them is `false`, so an empty
//!   `categoryPreferences` stops every mapped destination;
//! - categories the destination is not mapped to do not matter.
//!
//! Beyond Segment:
//! - a workspace may **require consent**: then an event without a consent object does not
//!   reach mapped destinations either;
//! - a destination marked **advertising or sale** never receives an event that carries a
//!   Global Privacy Control signal (`context.globalPrivacyControl: true`, recorded from the
//!   browser's `Sec-GPC: 1`), nor an event of a person who opted out of sale and sharing.
//!
//! The `integrations` object is applied after consent (by the delivery engine), so it can still
//! keep a consented event from a destination.

use serde_json::Value;

pub use sluice_spec::normalize::GLOBAL_PRIVACY_CONTROL;

/// What a destination declares about consent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DestinationConsent {
    /// The consent categories it is mapped to (all must be granted).
    pub categories: Vec<String>,
    /// It uses data for advertising, or sells or shares it.
    pub advertising: bool,
}

/// Why an event does not reach a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A category of the destination is not granted in the event's preferences.
    CategoryNotGranted,
    /// The workspace requires consent and the event carries none.
    NoConsent,
    /// Global Privacy Control, to an advertising or sale destination.
    GlobalPrivacyControl,
    /// The person opted out of sale and sharing, to an advertising or sale destination.
    OptedOut,
}

impl Refusal {
    /// The reason as counted in metrics and shown in delivery status.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::CategoryNotGranted => "consent_category",
            Refusal::NoConsent => "consent_required",
            Refusal::GlobalPrivacyControl => "global_privacy_control",
            Refusal::OptedOut => "do_not_sell",
        }
    }
}

/// The event's category preferences, or `None` when it carries no consent object.
pub fn preferences(message: &Value) -> Option<&serde_json::Map<String, Value>> {
    message
        .get("context")?
        .get("consent")?
        .get("categoryPreferences")?
        .as_object()
}

/// Whether the event carries a Global Privacy Control signal.
pub fn global_privacy_control(message: &Value) -> bool {
    message
        .get("context")
        .and_then(|context| context.get(GLOBAL_PRIVACY_CONTROL))
        == Some(&Value::Bool(true))
}

/// Decides whether `message` may reach a destination. `require_consent` is the workspace's
/// policy; `opted_out` says whether the event's person opted out of sale and sharing.
pub fn check(
    message: &Value,
    destination: &DestinationConsent,
    require_consent: bool,
    opted_out: bool,
) -> Result<(), Refusal> {
    if destination.advertising {
        if global_privacy_control(message) {
            return Err(Refusal::GlobalPrivacyControl);
        }
        if opted_out {
            return Err(Refusal::OptedOut);
        }
    }
    if destination.categories.is_empty() {
        return Ok(());
    }
    let Some(granted) = preferences(message) else {
        if require_consent {
            return Err(Refusal::NoConsent);
        }
        return Ok(());
    };
    for category in &destination.categories {
        if granted.get(category) != Some(&Value::Bool(true)) {
            return Err(Refusal::CategoryNotGranted);
        }
    }
    Ok(())
}

/// Whether deciding for this destination can need the event parsed at all (an unmapped,
/// non-advertising destination under no policy never refuses).
pub fn applies(destination: &DestinationConsent) -> bool {
    destination.advertising || !destination.categories.is_empty()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn mapped(categories: &[&str]) -> DestinationConsent {
        DestinationConsent {
            categories: categories.iter().map(|c| c.to_string()).collect(),
            advertising: false,
        }
    }

    fn with_preferences(preferences: Value) -> Value {
        json!({"type": "track", "context": {"consent": {"categoryPreferences": preferences}}})
    }

    #[test]
    fn segments_consent_rules() {
        let ads = mapped(&["Advertising"]);
        let two = mapped(&["Advertising", "Analytics"]);
        let unmapped = mapped(&[]);
        let cases = [
            // No consent object in any form: not checked.
            (json!({"type": "track"}), &ads, Ok(())),
            (json!({"type": "track", "context": {}}), &ads, Ok(())),
            (
                json!({"type": "track", "context": {"consent": {}}}),
                &ads,
                Ok(()),
            ),
            (
                json!({"type": "track", "context": {"consent": {"categoryPreferences": null}}}),
                &ads,
                Ok(()),
            ),
            // Empty preferences: every mapped destination stops; unmapped ones receive.
            (
                with_preferences(json!({})),
                &ads,
                Err(Refusal::CategoryNotGranted),
            ),
            (with_preferences(json!({})), &unmapped, Ok(())),
            // Granted, denied, missing, not a boolean.
            (with_preferences(json!({"Advertising": true})), &ads, Ok(())),
            (
                with_preferences(json!({"Advertising": false})),
                &ads,
                Err(Refusal::CategoryNotGranted),
            ),
            (
                with_preferences(json!({"Analytics": true})),
                &ads,
                Err(Refusal::CategoryNotGranted),
            ),
            (
                with_preferences(json!({"Advertising": "true"})),
                &ads,
                Err(Refusal::CategoryNotGranted),
            ),
            // Category ids are case-sensitive.
            (
                with_preferences(json!({"advertising": true})),
                &ads,
                Err(Refusal::CategoryNotGranted),
            ),
            // Several categories: all must be granted.
            (
                with_preferences(json!({"Advertising": true, "Analytics": false})),
                &two,
                Err(Refusal::CategoryNotGranted),
            ),
            (
                with_preferences(json!({"Advertising": true, "Analytics": true})),
                &two,
                Ok(()),
            ),
            // A category the CMP knows and Sluice does not changes nothing.
            (
                with_preferences(json!({"Advertising": true, "C0005": false})),
                &ads,
                Ok(()),
            ),
            (with_preferences(json!({"C0005": false})), &unmapped, Ok(())),
        ];
        for (message, destination, expected) in cases {
            assert_eq!(
                check(&message, destination, false, false),
                expected,
                "{message} to {destination:?}"
            );
        }
    }

    #[test]
    fn a_workspace_can_require_consent() {
        let ads = mapped(&["Advertising"]);
        let none = json!({"type": "track", "context": {}});
        assert_eq!(check(&none, &ads, true, false), Err(Refusal::NoConsent));
        assert_eq!(check(&none, &mapped(&[]), true, false), Ok(()), "unmapped");
        let granted = with_preferences(json!({"Advertising": true}));
        assert_eq!(check(&granted, &ads, true, false), Ok(()));
    }

    #[test]
    fn gpc_and_opt_outs_stop_only_advertising_destinations() {
        let seller = DestinationConsent {
            categories: Vec::new(),
            advertising: true,
        };
        let gpc = json!({"type": "page", "context": {"globalPrivacyControl": true}});
        let not_gpc = json!({"type": "page", "context": {"globalPrivacyControl": "1"}});
        assert_eq!(
            check(&gpc, &seller, false, false),
            Err(Refusal::GlobalPrivacyControl)
        );
        assert_eq!(check(&gpc, &mapped(&[]), false, false), Ok(()));
        assert_eq!(check(&not_gpc, &seller, false, false), Ok(()));
        let plain = json!({"type": "page"});
        assert_eq!(check(&plain, &seller, false, true), Err(Refusal::OptedOut));
        assert_eq!(check(&plain, &mapped(&["Analytics"]), false, true), Ok(()));
        // Consent granted does not override GPC for a seller.
        let granted_gpc = json!({"type": "page", "context": {"globalPrivacyControl": true,
            "consent": {"categoryPreferences": {"Advertising": true}}}});
        let mapped_seller = DestinationConsent {
            categories: vec!["Advertising".into()],
            advertising: true,
        };
        assert_eq!(
            check(&granted_gpc, &mapped_seller, false, false),
            Err(Refusal::GlobalPrivacyControl)
        );
        assert!(applies(&seller) && applies(&mapped(&["A"])) && !applies(&mapped(&[])));
    }
}
