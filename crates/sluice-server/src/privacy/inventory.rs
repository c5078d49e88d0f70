//! The data inventory's consumer: follows every source's events in the log and counts, per
//! source and event, each field path under `properties`, `traits` and `context` with its PII
//! class and when it was first and last seen — never a value (see
//! `sluice_store::inventory`). Runs in [`crate::follow`]'s loop, so it holds back while
//! ingestion is busy.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use sluice_store::{
    EventLog, FieldSeen, InventoryStore, SourceScope, StateStore, StoreError, StoredEvent,
};

use crate::follow::Consumer;
use crate::store_call;

/// Events counted in one batch (one transaction).
const BATCH: usize = 5_000;

/// The inventory store and the consumer that fills it.
pub struct Inventory {
    pub store: Arc<InventoryStore>,
    log: Arc<dyn EventLog>,
    state: Arc<StateStore>,
}

impl Inventory {
    pub fn new(
        store: Arc<InventoryStore>,
        log: Arc<dyn EventLog>,
        state: Arc<StateStore>,
    ) -> Inventory {
        Inventory { store, log, state }
    }
}

impl Consumer for Inventory {
    const NAME: &'static str = "data inventory";

    async fn pass(&self) -> Result<bool, StoreError> {
        let state = Arc::clone(&self.state);
        let sources = store_call(move || state.all_sources()).await?;
        let mut progressed = false;
        for source in sources {
            let store = Arc::clone(&self.store);
            let (ws, id) = (source.workspace_id.clone(), source.id.clone());
            let cursor = store_call(move || store.cursor(&ws, &id)).await?;
            let scope = SourceScope {
                workspace_id: source.workspace_id.clone(),
                source_id: source.id.clone(),
            };
            let events = self.log.read(&scope, cursor, BATCH).await?;
            let Some(last) = events.last().map(|event| event.seq) else {
                continue;
            };
            progressed = true;
            let store = Arc::clone(&self.store);
            store_call(move || {
                let seen = count_fields(&events);
                store.record(&scope.workspace_id, &scope.source_id, last, &seen)
            })
            .await?;
        }
        Ok(progressed)
    }
}

/// The fields of a batch of events, counted per event type, name and path.
pub fn count_fields(events: &[StoredEvent]) -> Vec<FieldSeen> {
    let mut counted: HashMap<(String, String, String), FieldSeen> = HashMap::new();
    for stored in events {
        let Ok(body) = serde_json::from_str::<Value>(&stored.event.body) else {
            continue;
        };
        let event_type = body.get("type").and_then(Value::as_str).unwrap_or("");
        let event_name = match event_type {
            "track" => body.get("event").and_then(Value::as_str).unwrap_or(""),
            _ => "",
        };
        let at = stored.event.received_at_ms;
        for field in sluice_privacy::fields(&body) {
            let class = field.class.map(|class| class.as_str().to_owned());
            let key = (event_type.to_owned(), event_name.to_owned(), field.path);
            match counted.get_mut(&key) {
                Some(seen) => {
                    seen.count += 1;
                    seen.first_seen_ms = seen.first_seen_ms.min(at);
                    seen.last_seen_ms = seen.last_seen_ms.max(at);
                    if seen.class.is_none() {
                        seen.class = class;
                    }
                }
                None => {
                    let seen = FieldSeen {
                        event_type: key.0.clone(),
                        event_name: key.1.clone(),
                        path: key.2.clone(),
                        class,
                        first_seen_ms: at,
                        last_seen_ms: at,
                        count: 1,
                    };
                    counted.insert(key, seen);
                }
            }
        }
    }
    let mut seen: Vec<FieldSeen> = counted.into_values().collect();
    seen.sort_by(|a, b| {
        (&a.event_type, &a.event_name, &a.path).cmp(&(&b.event_type, &b.event_name, &b.path))
    });
    seen
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sluice_store::{NewEvent, WorkspaceId};

    use super::*;

    fn stored(seq: i64, at: i64, body: Value) -> StoredEvent {
        StoredEvent {
            seq,
            event: NewEvent {
                workspace_id: WorkspaceId("ws".into()),
                source_id: "src".into(),
                message_id: format!("m{seq}"),
                user_id: Some("u".into()),
                anonymous_id: None,
                received_at_ms: at,
                body: body.to_string(),
            },
        }
    }

    #[test]
    fn fields_are_counted_per_event_with_their_class_and_never_a_value() {
        let events = [
            stored(
                1,
                100,
                json!({"type": "track", "event": "Order Completed",
                "properties": {"total": 30, "email": "jane@example.com"}}),
            ),
            stored(
                2,
                50,
                json!({"type": "track", "event": "Order Completed",
                "properties": {"total": 12}}),
            ),
            stored(
                3,
                70,
                json!({"type": "identify", "traits": {"email": "bob@example.com"}}),
            ),
            stored(4, 80, json!({"type": "track", "event": "Signed Up"})),
        ];
        let seen = count_fields(&events);
        let row = |kind: &str, name: &str, path: &str| {
            seen.iter()
                .find(|s| s.event_type == kind && s.event_name == name && s.path == path)
                .cloned()
        };
        let total = row("track", "Order Completed", "properties.total").unwrap();
        assert_eq!(
            (
                total.count,
                total.first_seen_ms,
                total.last_seen_ms,
                total.class
            ),
            (2, 50, 100, None)
        );
        let email = row("track", "Order Completed", "properties.email").unwrap();
        assert_eq!((email.count, email.class.as_deref()), (1, Some("email")));
        let trait_email = row("identify", "", "traits.email").unwrap();
        assert_eq!(trait_email.class.as_deref(), Some("email"));
        assert_eq!(seen.len(), 3, "an event without fields adds none: {seen:?}");
        let text = format!("{seen:?}");
        assert!(!text.contains("jane@example.com") && !text.contains("bob@"));
    }
}
