//! Data-subject export: everything Sluice holds about a person, as one JSON document — the
//! profile (identifiers with first and last seen, traits, merges, accounts), every logged
//! event, what happened to each event at each destination connected to its source, and
//! whether the person is suppressed or opted out of sale and sharing.
//!
//! Built from the stores' own reads (the log file read-only, so the CLI can export while a
//! node runs). A destination's status of an event is read from the delivery ledger, its dead
//! letters and its cursor: `delivered` (with when), `dead_lettered` (with when and why),
//! `filtered` (its cursor passed the event without sending it: consent, the `integrations`
//! object, a filter or the PII policy kept it away) or `pending`.

use std::path::Path;

use serde_json::{Value, json};
use sluice_delivery::consumer_name;
use sluice_identity::{Collection, Identifier};
use sluice_store::log::sqlite::{cursors_in_file, find_person_in_file};
use sluice_store::{StateStore, StoreError, WorkspaceId};

use super::PersonStores;
use super::lists::Lists;
use crate::admin::identity::graph_json;

/// Most traits exported per profile.
const MAX_TRAITS: usize = 10_000;

/// The export of the person holding `subject`.
pub fn export(
    data_dir: &Path,
    state: &StateStore,
    stores: &PersonStores<'_>,
    lists: [&Lists; 2],
    workspace: &WorkspaceId,
    subject: &Identifier,
) -> Result<Value, StoreError> {
    let mut values = vec![subject.value.clone()];
    let (profiles, delivery) = (stores.profiles, stores.delivery);
    let mut profile_json = Value::Null;
    if let Some(profile) = profiles.lookup(workspace, Collection::Users, subject)? {
        let graph = profiles.graph(&profile)?;
        for entry in &graph.identifiers {
            if !values.contains(&entry.id.value) {
                values.push(entry.id.value.clone());
            }
        }
        let traits = profiles.traits(&profile, &[], None, MAX_TRAITS)?;
        let mut trait_map = serde_json::Map::new();
        for value in traits {
            trait_map.insert(value.name, value.value);
        }
        profile_json = graph_json(&graph);
        profile_json["traits"] = Value::Object(trait_map);
    }

    let log_path = data_dir.join("log.db");
    let events = find_person_in_file(&log_path, workspace, &values)?;
    let cursors = cursors_in_file(&log_path, workspace)?;
    let letters = delivery.find_person(workspace, &values)?;
    let mut ledger = Vec::new();
    let mut sources: Vec<&str> = Vec::new();
    for stored in &events {
        if !sources.contains(&stored.event.source_id.as_str()) {
            sources.push(&stored.event.source_id);
        }
    }
    for source in sources {
        let seqs: Vec<i64> = events
            .iter()
            .filter(|stored| stored.event.source_id == source)
            .map(|stored| stored.seq)
            .collect();
        ledger.extend(delivery.deliveries_of(workspace, source, &seqs)?);
    }
    let mut destinations = Vec::new();
    for destination in state.list_destinations(workspace)? {
        let consumer = consumer_name(&destination.id.0);
        let mut statuses = Vec::new();
        for stored in &events {
            if !destination.sources.contains(&stored.event.source_id) {
                continue;
            }
            let letter = letters.iter().find(|l| {
                l.letter.destination_id == destination.id.0
                    && l.letter.message_id == stored.event.message_id
            });
            let cursor = cursors
                .iter()
                .find(|(source, name, _)| *source == stored.event.source_id && *name == consumer)
                .map_or(0, |(_, _, seq)| *seq);
            let delivered = ledger.iter().find(|entry| {
                entry.destination_id == destination.id.0
                    && entry.source_id == stored.event.source_id
                    && entry.seq == stored.seq
            });
            let status = match (delivered, letter) {
                (Some(entry), _) => json!({
                    "messageId": stored.event.message_id,
                    "status": "delivered",
                    "deliveredAt": crate::admin::time_json(entry.delivered_at_ms),
                }),
                (None, Some(letter)) => json!({
                    "messageId": stored.event.message_id,
                    "status": "dead_lettered",
                    "failedAt": crate::admin::time_json(letter.letter.failed_at_ms),
                    "reason": letter.letter.reason,
                }),
                (None, None) if stored.seq <= cursor => {
                    json!({"messageId": stored.event.message_id, "status": "filtered"})
                }
                (None, None) => json!({"messageId": stored.event.message_id, "status": "pending"}),
            };
            statuses.push(status);
        }
        destinations.push(json!({
            "id": destination.id.as_str(),
            "name": destination.name,
            "type": destination.kind,
            "events": statuses,
        }));
    }

    let mut event_list = Vec::with_capacity(events.len());
    for stored in &events {
        let body: Value = serde_json::from_str(&stored.event.body).unwrap_or(Value::Null);
        event_list.push(json!({
            "sourceId": stored.event.source_id,
            "receivedAt": crate::admin::time_json(stored.event.received_at_ms),
            "event": body,
        }));
    }
    let probe = |lists: &Lists| {
        lists
            .checker(workspace)
            .is_some_and(|checker| values.iter().any(|value| checker.holds_value(value)))
    };
    let [suppressed, do_not_sell] = lists;
    Ok(json!({
        "subject": {"type": subject.kind, "id": subject.value},
        "exportedAt": sluice_spec::timestamp::format(time::OffsetDateTime::now_utc()),
        "profile": profile_json,
        "events": event_list,
        "destinations": destinations,
        "audiences": audiences(stores, workspace, subject)?,
        "suppressed": probe(suppressed),
        "doNotSell": probe(do_not_sell),
    }))
}

/// The person's audience memberships, computed traits and the history of their changes.
fn audiences(
    stores: &PersonStores<'_>,
    workspace: &WorkspaceId,
    subject: &Identifier,
) -> Result<Value, StoreError> {
    let person = stores
        .profiles
        .find_person(workspace, std::slice::from_ref(subject))?;
    let mut memberships: Vec<String> = Vec::new();
    let mut computed = serde_json::Map::new();
    for row in stores.audiences.load(workspace, &person.profile_ids)? {
        let outputs: sluice_audience::Outputs =
            serde_json::from_str(&row.outputs).unwrap_or_default();
        for key in outputs.audiences {
            if !memberships.contains(&key) {
                memberships.push(key);
            }
        }
        for (key, value) in outputs.traits {
            computed.entry(key).or_insert(value);
        }
    }
    let mut changes = Vec::new();
    for profile in &person.profile_ids {
        for change in stores
            .audiences
            .changes(workspace, None, Some(*profile), MAX_TRAITS)?
        {
            let mut entry = json!({
                "key": change.key,
                "change": change.kind,
                "at": crate::admin::time_json(change.at),
            });
            if let Some(value) = change.value {
                entry["value"] = serde_json::from_str(&value).unwrap_or(Value::Null);
            }
            changes.push(entry);
        }
    }
    memberships.sort();
    Ok(json!({
        "memberships": memberships,
        "computedTraits": computed,
        "changes": changes,
    }))
}
