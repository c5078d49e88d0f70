//! The privacy gate: what each workspace's policy does to an event before it is written.
//!
//! - The PII policy's `block` classes refuse the event (it is answered 200, listed with the
//!   code `pii_blocked` and the field's path, never written); its `redact` classes remove the
//!   fields. `hash` and per-destination rules are applied at delivery, not here.
//! - The children policy drops an event whose traits show an age under the threshold, and
//!   asks the regulation worker to suppress and delete the person.
//!
//! Policies live in memory, read from the state store at start, after every change made
//! through the admin API, and every few seconds (changes made with the CLI). A workspace
//! whose policy does nothing at the gate costs one map lookup per request; otherwise each
//! event is parsed once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::Value;
use sluice_privacy::children::event_shows_child;
use sluice_privacy::{Applied, PiiClass, PrivacySettings, Rules, apply};
use sluice_store::{NewEvent, StateStore, StoreError, WorkspaceId};
use time::Date;

/// What one workspace's policy does at the gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatePolicy {
    /// The `redact` and `block` classes.
    pub pii: Option<Rules>,
    /// The children policy's threshold, when it is on.
    pub children_under: Option<u32>,
}

impl GatePolicy {
    /// The gate's part of a workspace's settings; `None` when it does nothing there.
    pub fn from_settings(settings: &PrivacySettings) -> Option<GatePolicy> {
        let pii = settings.pii.gate();
        let children_under = settings
            .children
            .enabled
            .then_some(settings.children.minimum_age);
        if pii.is_none() && children_under.is_none() {
            return None;
        }
        Some(GatePolicy {
            pii,
            children_under,
        })
    }
}

/// What the gate decided for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Written (perhaps with fields redacted).
    Keep,
    /// Refused by the PII policy because of this field.
    Blocked { path: String, class: PiiClass },
    /// Dropped by the children policy.
    Child,
}

/// Applies `policy` to one event, rewriting its body when fields are redacted.
pub fn check(policy: &GatePolicy, event: &mut NewEvent, today: Date) -> Verdict {
    let Ok(mut value) = serde_json::from_str::<Value>(&event.body) else {
        // Normalized bodies always parse; nothing to decide on otherwise.
        return Verdict::Keep;
    };
    if let Some(minimum_age) = policy.children_under
        && event_shows_child(&value, minimum_age, today)
    {
        return Verdict::Child;
    }
    if let Some(rules) = &policy.pii {
        // The gate never hashes: no key is needed.
        match apply(rules, &mut value, &[]) {
            Applied::Unchanged => {}
            Applied::Changed => event.body = value.to_string(),
            Applied::Blocked { path, class } => return Verdict::Blocked { path, class },
        }
    }
    Verdict::Keep
}

/// Every workspace's gate policy. See the module documentation.
#[derive(Default)]
pub struct Gate {
    policies: RwLock<HashMap<WorkspaceId, Arc<GatePolicy>>>,
    /// People the children policy already reported to the regulation worker, forgotten at
    /// each reload (by then the worker has suppressed them).
    reported: Mutex<HashSet<(WorkspaceId, String)>>,
}

impl Gate {
    /// The workspace's policy, when it does something at the gate.
    pub fn policy(&self, workspace: &WorkspaceId) -> Option<Arc<GatePolicy>> {
        let policies = self.policies.read().ok()?;
        policies.get(workspace).cloned()
    }

    /// Reads every workspace's policy from the state store (blocking), replacing what was
    /// held.
    pub fn reload(&self, state: &StateStore) -> Result<(), StoreError> {
        let mut loaded = HashMap::new();
        for (workspace, settings) in state.all_privacy_settings()? {
            if let Some(policy) = GatePolicy::from_settings(&settings) {
                loaded.insert(workspace, Arc::new(policy));
            }
        }
        if let Ok(mut policies) = self.policies.write() {
            *policies = loaded;
        }
        if let Ok(mut reported) = self.reported.lock() {
            reported.clear();
        }
        Ok(())
    }

    /// Whether this person is reported for the first time since the last reload.
    pub fn first_report(&self, workspace: &WorkspaceId, subject: &str) -> bool {
        match self.reported.lock() {
            Ok(mut reported) => reported.insert((workspace.clone(), subject.to_owned())),
            Err(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::date;

    use super::*;

    fn event(body: Value) -> NewEvent {
        NewEvent {
            workspace_id: WorkspaceId("ws".into()),
            source_id: "src".into(),
            message_id: "m1".into(),
            user_id: Some("u1".into()),
            anonymous_id: None,
            received_at_ms: 0,
            body: body.to_string(),
        }
    }

    fn policy(settings: Value) -> Option<GatePolicy> {
        let settings: PrivacySettings = serde_json::from_value(settings).unwrap();
        GatePolicy::from_settings(&settings)
    }

    const TODAY: Date = date!(2026 - 11 - 23);

    #[test]
    fn a_policy_with_nothing_for_the_gate_is_none() {
        assert_eq!(policy(json!({})), None);
        assert_eq!(
            policy(json!({"pii": {"classes": {"email": "hash"}}})),
            None,
            "hashing happens at delivery"
        );
        assert!(policy(json!({"children": {"enabled": true}})).is_some());
    }

    #[test]
    fn redact_rewrites_and_block_refuses() {
        let gate =
            policy(json!({"pii": {"classes": {"email": "redact", "payment_card": "block"}}}))
                .unwrap();
        let mut redacted = event(json!({"type": "identify", "userId": "u1",
            "traits": {"email": "jane@example.com", "plan": "pro"}}));
        assert_eq!(check(&gate, &mut redacted, TODAY), Verdict::Keep);
        let body: Value = serde_json::from_str(&redacted.body).unwrap();
        assert_eq!(body["traits"], json!({"plan": "pro"}));

        let mut untouched = event(json!({"type": "track", "event": "A", "userId": "u1"}));
        let before = untouched.body.clone();
        assert_eq!(check(&gate, &mut untouched, TODAY), Verdict::Keep);
        assert_eq!(
            untouched.body, before,
            "an event without PII keeps its bytes"
        );

        let mut blocked = event(json!({"type": "track", "event": "Paid", "userId": "u1",
            "properties": {"card": "4111 1111 1111 1111"}}));
        assert_eq!(
            check(&gate, &mut blocked, TODAY),
            Verdict::Blocked {
                path: "properties.card".into(),
                class: PiiClass::PaymentCard
            }
        );
    }

    #[test]
    fn the_children_policy_comes_first() {
        let gate = policy(json!({"children": {"enabled": true, "minimum_age": 16},
            "pii": {"classes": {"date_of_birth": "redact"}}}))
        .unwrap();
        let mut child = event(json!({"type": "identify", "userId": "u1",
            "traits": {"birthday": "2015-03-02"}}));
        assert_eq!(check(&gate, &mut child, TODAY), Verdict::Child);
        let mut adult = event(json!({"type": "identify", "userId": "u1",
            "traits": {"age": 30}}));
        assert_eq!(check(&gate, &mut adult, TODAY), Verdict::Keep);
    }

    #[test]
    fn a_person_is_reported_once_until_the_next_reload() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateStore::open(&dir.path().join("state.db")).unwrap();
        let gate = Gate::default();
        let ws = WorkspaceId("ws".into());
        assert!(gate.first_report(&ws, "u1"));
        assert!(!gate.first_report(&ws, "u1"));
        assert!(gate.first_report(&WorkspaceId("other".into()), "u1"));
        gate.reload(&state).unwrap();
        assert!(gate.first_report(&ws, "u1"));
    }
}
