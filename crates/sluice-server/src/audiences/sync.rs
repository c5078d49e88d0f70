//! Sending audiences and computed traits to destinations, as Segment does (segment-spec §4.6).
//!
//! Each sync (`sluice_store::syncs`) turns the audience store's changes into events appended
//! to the log under the sync's own output source, which the destination's runner reads like
//! any source (retries, dead letters, replays and per-person order come with it):
//!
//! - `identify` mode: `traits: {<key>: true|false}` for an audience, `{<key>: value}` for a
//!   computed trait, with the person's identifying traits;
//! - `track` mode: `Audience Entered` / `Audience Exited` with `properties: {audience_key,
//!   <key>: true|false}`, or `Trait Computed` with `properties: {trait_key, <key>: value}`,
//!   identifying traits in `context.traits`;
//! - `list` mode (ad platforms): the identify shape with `context.personas.external_audience_id`.
//!
//! Every event carries `context.personas` (`computation_class`, `computation_id`,
//! `computation_key`, `namespace`, `space_id`), the person's latest consent
//! (`context.consent.categoryPreferences`, `context.globalPrivacyControl`) and
//! `integrations: {All: false, <destination>: true}`.
//!
//! A new sync first sends every member (every profile with a value, for a trait), page by page,
//! remembering the last profile sent; then only the changes recorded after the point where it
//! began. A `list` sync also re-sends a member whose consent changed, so a withdrawal removes
//! them from the platform's audience (the adapter, or the runner's consent check, turns the
//! refused addition into a removal).
//!
//! Exactly once: an event's `messageId` is derived from the sync, the profile and the change
//! number (or the first sync), and events are appended before the progress is saved, so a
//! crash in between appends the same ids again and the log's deduplication drops them.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use sluice_audience::StoredState;
use sluice_destinations::audience::member::TRAIT_NAMES;
use sluice_privacy::keyed::hmac_sha256;
use sluice_store::{
    AudienceStore, AudienceSync, CONSENT_KIND, ChangeRow, EventLog, NewEvent, ProfileStore,
    SourceScope, StateStore, StoreError, SyncClass, SyncMode, SyncProgress, WorkspaceId,
};

use super::Audiences;
use crate::store_call;

/// Members, states or changes read per step.
const PAGE: usize = 1_000;
/// Steps per sync and pass (a large first sync goes on in the next pass).
const STEPS: usize = 20;

/// Metric: events generated for destinations.
pub const SYNC_EVENTS: &str = "sluice_audiences_sync_events_total";

/// A sync with what its events need to know about the destination.
#[derive(Clone)]
struct Target {
    sync: AudienceSync,
    /// The destination type's integration name (for the `integrations` object).
    integration: String,
}

/// What a step reads from.
struct Stores<'a> {
    audiences: &'a AudienceStore,
    profiles: &'a ProfileStore,
    workspace: &'a WorkspaceId,
    now: i64,
}

impl Audiences {
    /// Sends what the workspace's syncs have not sent yet. Runs under the gate, after the
    /// workspace's pass, so no change is committed while a step reads.
    pub(super) async fn sync(&self, workspace: &WorkspaceId) -> Result<bool, StoreError> {
        let (state, store) = (Arc::clone(&self.state), Arc::clone(&self.store));
        let ws = workspace.clone();
        let targets = store_call(move || {
            let targets = targets(&state, &ws)?;
            let ids: Vec<String> = targets.iter().map(|t| t.sync.id.clone()).collect();
            // The progress of deleted syncs goes.
            store.forget_syncs_except(&ws, &ids)?;
            Ok::<_, StoreError>(targets)
        })
        .await?;
        let mut progressed = false;
        for target in targets {
            for _ in 0..STEPS {
                let (store, profiles) = (Arc::clone(&self.store), Arc::clone(&self.profiles.store));
                let ws = workspace.clone();
                let now = self.clock.now_ms();
                let step_target = target.clone();
                let step = store_call(move || {
                    let stores = Stores {
                        audiences: &store,
                        profiles: &profiles,
                        workspace: &ws,
                        now,
                    };
                    step(&stores, &step_target)
                })
                .await?;
                let Some((events, progress)) = step else {
                    break;
                };
                progressed = true;
                if !events.is_empty() {
                    metrics::counter!(SYNC_EVENTS).increment(events.len() as u64);
                    self.log.append(events).await?;
                }
                let store = Arc::clone(&self.store);
                let (ws, id) = (workspace.clone(), target.sync.id.clone());
                store_call(move || store.save_sync_progress(&ws, &id, progress)).await?;
            }
        }
        Ok(progressed)
    }
}

impl Audiences {
    /// The events that take a person (these profile ids) out of every ad-platform audience a
    /// `list` sync put them in, by destination id. A deletion builds them before erasing the
    /// person and sends them itself: logged, they would be erased with the person.
    pub async fn removals(
        &self,
        workspace: &WorkspaceId,
        profiles: Vec<i64>,
    ) -> Result<HashMap<String, Vec<String>>, StoreError> {
        let (state, store) = (Arc::clone(&self.state), Arc::clone(&self.store));
        let people = Arc::clone(&self.profiles.store);
        let ws = workspace.clone();
        let now = self.clock.now_ms();
        store_call(move || {
            let stores = Stores {
                audiences: &store,
                profiles: &people,
                workspace: &ws,
                now,
            };
            let mut removals: HashMap<String, Vec<String>> = HashMap::new();
            for target in targets(&state, &ws)? {
                if target.sync.mode != SyncMode::List {
                    continue;
                }
                for profile in &profiles {
                    if !store.is_member(&ws, &target.sync.key, *profile)? {
                        continue;
                    }
                    let removal = Value::Bool(false);
                    if let Some(event) = build(&stores, &target, *profile, &removal, now, "erase")?
                    {
                        removals
                            .entry(target.sync.destination_id.clone())
                            .or_default()
                            .push(event.body);
                    }
                }
            }
            Ok(removals)
        })
        .await
    }
}

/// The workspace's syncs with their destination's integration name.
fn targets(state: &StateStore, workspace: &WorkspaceId) -> Result<Vec<Target>, StoreError> {
    let syncs = state.syncs(workspace, None)?;
    let mut targets = Vec::with_capacity(syncs.len());
    for sync in syncs {
        let destination = state.get_destination(workspace, &sync.destination_id)?;
        let Ok(kind) = sluice_destinations::find(&destination.kind) else {
            continue;
        };
        targets.push(Target {
            sync,
            integration: kind.integration_name.to_string(),
        });
    }
    Ok(targets)
}

/// The next batch of a sync's events and its progress after them; `None` when it has sent
/// everything.
fn step(
    stores: &Stores<'_>,
    target: &Target,
) -> Result<Option<(Vec<NewEvent>, SyncProgress)>, StoreError> {
    let sync = &target.sync;
    let progress = match stores.audiences.sync_progress(&sync.id)? {
        Some(progress) => progress,
        None => SyncProgress {
            change_id: stores.audiences.last_change_id(stores.workspace)?,
            initial_after: Some(0),
        },
    };
    if let Some(after) = progress.initial_after {
        let (events, last, full) = first_sync_page(stores, target, after)?;
        let next = if full { last } else { None };
        return Ok(Some((
            events,
            SyncProgress {
                change_id: progress.change_id,
                initial_after: next,
            },
        )));
    }
    let changes = stores
        .audiences
        .changes_after(stores.workspace, progress.change_id, PAGE)?;
    let Some(last) = changes.last().map(|(id, _)| *id) else {
        return Ok(None);
    };
    let mut events = Vec::new();
    for (_, change) in &changes {
        let Some(value) = sent_value(stores, sync, change)? else {
            continue;
        };
        let tag = format!("change:{}", change.n);
        if let Some(event) = build(stores, target, change.profile_id, &value, change.at, &tag)? {
            events.push(event);
        }
    }
    Ok(Some((
        events,
        SyncProgress {
            change_id: last,
            initial_after: None,
        },
    )))
}

/// What a change sends through this sync: the membership or trait value, or nothing.
fn sent_value(
    stores: &Stores<'_>,
    sync: &AudienceSync,
    change: &ChangeRow,
) -> Result<Option<Value>, StoreError> {
    if change.kind == CONSENT_KIND {
        // A list sync re-sends a member whose consent changed.
        let member = sync.mode == SyncMode::List
            && sync.class == SyncClass::Audience
            && stores
                .audiences
                .is_member(stores.workspace, &sync.key, change.profile_id)?;
        return Ok(member.then_some(Value::Bool(true)));
    }
    if change.key != sync.key {
        return Ok(None);
    }
    Ok(match (sync.class, change.kind.as_str()) {
        (SyncClass::Audience, "entered") => Some(Value::Bool(true)),
        (SyncClass::Audience, "exited") => Some(Value::Bool(false)),
        (SyncClass::Trait, "trait") => Some(
            change
                .value
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok())
                .unwrap_or(Value::Null),
        ),
        _ => None,
    })
}

/// One page of a sync's first full sync after profile `after`: the events, the last profile
/// read, and whether the page was full (more may follow).
fn first_sync_page(
    stores: &Stores<'_>,
    target: &Target,
    after: i64,
) -> Result<(Vec<NewEvent>, Option<i64>, bool), StoreError> {
    let sync = &target.sync;
    let mut events = Vec::new();
    let (last, read) = match sync.class {
        SyncClass::Audience => {
            let members = stores
                .audiences
                .members(stores.workspace, &sync.key, after, PAGE)?;
            for profile in &members {
                let built = build(
                    stores,
                    target,
                    *profile,
                    &Value::Bool(true),
                    stores.now,
                    "first",
                )?;
                events.extend(built);
            }
            (members.last().copied(), members.len())
        }
        SyncClass::Trait => {
            let rows = stores
                .audiences
                .states_after(stores.workspace, after, PAGE)?;
            for row in &rows {
                let stored = StoredState {
                    series: Default::default(),
                    outputs: serde_json::from_str(&row.outputs).unwrap_or_default(),
                };
                let Some(value) = stored.outputs.traits.get(&sync.key) else {
                    continue;
                };
                if value.is_null() {
                    continue;
                }
                let built = build(stores, target, row.profile_id, value, stores.now, "first")?;
                events.extend(built);
            }
            (rows.last().map(|row| row.profile_id), rows.len())
        }
    };
    Ok((events, last, read == PAGE))
}

/// The identifying traits an event carries: the top-level names the ad platforms read
/// (`TRAIT_NAMES`, `address` whole).
fn identifying_names() -> BTreeSet<&'static str> {
    let mut names = BTreeSet::new();
    for (_, spellings) in TRAIT_NAMES {
        for name in spellings {
            names.insert(name.split('.').next().unwrap_or(name));
        }
    }
    names
}

/// Who an event is about, as the profile store and the audience store know them now.
struct Person {
    user_id: Option<String>,
    anonymous_id: Option<String>,
    traits: Map<String, Value>,
    device: Option<Value>,
    consent: Option<Value>,
}

/// The person behind a profile id (following merges); `None` when the profile is gone.
fn person(stores: &Stores<'_>, profile: i64) -> Result<Option<Person>, StoreError> {
    let Some(live) = stores.profiles.profile_by_id(stores.workspace, profile)? else {
        return Ok(None);
    };
    let identifiers = stores
        .profiles
        .identifiers_by_id(stores.workspace, live.id)?;
    let latest = |kinds: &[&str]| {
        identifiers
            .iter()
            .filter(|found| kinds.contains(&found.id.kind.as_str()))
            .max_by_key(|found| found.last_seen_ms)
            .map(|found| (found.id.kind.clone(), found.id.value.clone()))
    };
    let names = identifying_names();
    let mut traits = Map::new();
    for (name, value) in stores.profiles.trait_map(stores.workspace, live.id)? {
        if names.contains(name.as_str()) && !value.is_null() {
            traits.insert(name, value);
        }
    }
    for kind in [
        sluice_identity::identifier::EMAIL,
        sluice_identity::identifier::PHONE,
    ] {
        if !traits.contains_key(kind)
            && let Some((_, value)) = latest(&[kind])
        {
            traits.insert(kind.to_string(), Value::String(value));
        }
    }
    let device = latest(&[
        sluice_identity::identifier::IOS_IDFA,
        sluice_identity::identifier::ANDROID_IDFA,
    ])
    .map(|(kind, value)| {
        let os = if kind == sluice_identity::identifier::IOS_IDFA {
            "ios"
        } else {
            "android"
        };
        json!({"advertisingId": value, "type": os})
    });
    let consent = stores
        .audiences
        .consent(stores.workspace, live.id)?
        .and_then(|text| serde_json::from_str(&text).ok());
    Ok(Some(Person {
        user_id: latest(&[sluice_identity::identifier::USER_ID]).map(|(_, value)| value),
        anonymous_id: latest(&[sluice_identity::identifier::ANONYMOUS_ID]).map(|(_, value)| value),
        traits,
        device,
        consent,
    }))
}

/// The event sending `value` for `profile` through the sync; `None` when the profile is gone
/// or has neither a user id nor an anonymous id to send under.
fn build(
    stores: &Stores<'_>,
    target: &Target,
    profile: i64,
    value: &Value,
    at: i64,
    tag: &str,
) -> Result<Option<NewEvent>, StoreError> {
    let Some(person) = person(stores, profile)? else {
        return Ok(None);
    };
    if person.user_id.is_none() && person.anonymous_id.is_none() {
        return Ok(None);
    }
    let sync = &target.sync;
    let key = sync.key.as_str();
    let workspace = stores.workspace.0.as_str();
    let (class, prefix) = match sync.class {
        SyncClass::Audience => ("audience", "aud"),
        SyncClass::Trait => ("trait", "tra"),
    };
    let mut personas = json!({
        "computation_class": class,
        "computation_id": format!("{prefix}_{key}"),
        "computation_key": key,
        "namespace": workspace,
        "space_id": workspace,
    });
    if let Some(id) = &sync.external_audience_id {
        personas["external_audience_id"] = Value::String(id.clone());
    }
    let mut context = json!({
        "personas": personas,
        "library": {"name": "sluice-audiences", "version": env!("CARGO_PKG_VERSION")},
    });
    if let Some(consent) = &person.consent {
        if let Some(preferences) = consent.get("categoryPreferences") {
            context["consent"] = json!({"categoryPreferences": preferences});
        }
        if consent.get("gpc") == Some(&Value::Bool(true)) {
            context[sluice_privacy::consent::GLOBAL_PRIVACY_CONTROL] = Value::Bool(true);
        }
    }
    if let Some(device) = person.device {
        context["device"] = device;
    }
    let message_id = message_id(&sync.id, profile, tag);
    let timestamp = crate::admin::time_json(at);
    let received = crate::admin::time_json(stores.now);
    let mut event = json!({
        "messageId": message_id,
        "timestamp": timestamp,
        "receivedAt": received,
        "integrations": {"All": false, target.integration.as_str(): true},
    });
    match sync.mode {
        SyncMode::Identify | SyncMode::List => {
            let mut traits = person.traits;
            traits.insert(key.to_string(), value.clone());
            event["type"] = json!("identify");
            event["traits"] = Value::Object(traits);
        }
        SyncMode::Track => {
            let (name, label) = match (sync.class, value) {
                (SyncClass::Audience, Value::Bool(true)) => ("Audience Entered", "audience_key"),
                (SyncClass::Audience, _) => ("Audience Exited", "audience_key"),
                (SyncClass::Trait, _) => ("Trait Computed", "trait_key"),
            };
            event["type"] = json!("track");
            event["event"] = json!(name);
            event["properties"] = json!({label: key, key: value});
            context["traits"] = Value::Object(person.traits);
        }
    }
    if let Some(user_id) = &person.user_id {
        event["userId"] = json!(user_id);
    }
    if let Some(anonymous_id) = &person.anonymous_id {
        event["anonymousId"] = json!(anonymous_id);
    }
    event["context"] = context;
    Ok(Some(NewEvent {
        workspace_id: stores.workspace.clone(),
        source_id: sync.source_id(),
        message_id,
        user_id: person.user_id,
        anonymous_id: person.anonymous_id,
        received_at_ms: stores.now,
        body: event.to_string(),
    }))
}

/// A generated event's id: the same sync, profile and change always give the same id.
fn message_id(sync: &str, profile: i64, tag: &str) -> String {
    let digest = hmac_sha256(sync.as_bytes(), &[&profile.to_be_bytes(), tag.as_bytes()]);
    let mut id = String::from("sync-");
    for byte in &digest[..16] {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

/// Events erased per call when a sync's output is purged.
const PURGE_CHUNK: usize = 10_000;

/// Erases a sync's generated events from the log (the sync was deleted, or its destination
/// lost its connection): they were made only for its destination. Returns how many.
pub async fn purge_output(
    log: &dyn EventLog,
    workspace: &WorkspaceId,
    sync: &AudienceSync,
) -> Result<u64, StoreError> {
    let scope = SourceScope {
        workspace_id: workspace.clone(),
        source_id: sync.source_id(),
    };
    let mut erased = 0;
    loop {
        let removed = log.expire(&scope, i64::MAX, PURGE_CHUNK).await?;
        erased += removed;
        if removed == 0 {
            return Ok(erased);
        }
    }
}
