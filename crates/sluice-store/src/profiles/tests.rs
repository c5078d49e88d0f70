//! The profile store end to end: journeys, rules, restarts, unmerges, erasure.

use proptest::prelude::*;
use serde_json::{Value, json};
use sluice_identity::{Collection, Identifier, IdentitySettings, MemoryGraph, Rules, resolve};

use super::*;
use crate::{NewEvent, StoredEvent, WorkspaceId};

const DAY: i64 = 24 * 60 * 60 * 1000;
const T0: i64 = 1_790_000_000_000;

fn ws() -> WorkspaceId {
    WorkspaceId("ws_test".into())
}

fn open() -> (tempfile::TempDir, ProfileStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ProfileStore::open(&dir.path().join("profiles.db")).unwrap();
    (dir, store)
}

fn time_text(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
    sluice_spec::timestamp::format(at)
}

/// A logged event: `body` gets a messageId (`m{seq}` unless given) and a timestamp.
fn event(seq: i64, at_ms: i64, mut body: Value) -> StoredEvent {
    let object = body.as_object_mut().unwrap();
    object
        .entry("messageId")
        .or_insert_with(|| json!(format!("m{seq}")));
    object.insert("timestamp".into(), json!(time_text(at_ms)));
    StoredEvent {
        seq,
        event: NewEvent {
            workspace_id: ws(),
            source_id: "src_web".into(),
            message_id: object["messageId"].as_str().unwrap().to_string(),
            user_id: object
                .get("userId")
                .and_then(Value::as_str)
                .map(str::to_string),
            anonymous_id: object
                .get("anonymousId")
                .and_then(Value::as_str)
                .map(str::to_string),
            received_at_ms: at_ms,
            body: body.to_string(),
        },
    }
}

fn id(kind: &str, value: &str) -> Identifier {
    Identifier::new(kind, value)
}

fn profile_of(store: &ProfileStore, kind: &str, value: &str) -> Option<ProfileRef> {
    store
        .lookup(&ws(), Collection::Users, &id(kind, value))
        .unwrap()
}

fn traits_of(store: &ProfileStore, profile: &ProfileRef) -> serde_json::Map<String, Value> {
    store
        .traits(profile, &[], None, 200)
        .unwrap()
        .into_iter()
        .map(|t| (t.name, t.value))
        .collect()
}

fn default_rules() -> Rules {
    Rules::compile(&IdentitySettings::default()).unwrap()
}

/// The e-commerce journey: two devices browse anonymously, the person signs up on one, gives
/// their email on the other, and the two profiles merge.
fn journey() -> Vec<StoredEvent> {
    vec![
        event(
            1,
            T0,
            json!({"type": "track", "event": "Product Viewed", "anonymousId": "laptop"}),
        ),
        event(
            2,
            T0 + 1000,
            json!({"type": "track", "event": "Product Viewed", "anonymousId": "phone"}),
        ),
        event(
            3,
            T0 + 2000,
            json!({"type": "identify", "userId": "u1", "anonymousId": "laptop",
            "traits": {"email": "Jane@Example.com", "name": "Jane", "plan": "free"}}),
        ),
        event(
            4,
            T0 + 3000,
            json!({"type": "identify", "anonymousId": "phone",
            "traits": {"email": "jane@example.com", "plan": "pro"}}),
        ),
        event(
            5,
            T0 + 4000,
            json!({"type": "track", "event": "Order Completed", "anonymousId": "phone",
            "properties": {"total": 30}}),
        ),
    ]
}

#[test]
fn the_journey_merges_two_devices_into_one_profile() {
    let (_dir, store) = open();
    let report = store
        .ingest(&ws(), &default_rules(), "src_web", &journey())
        .unwrap();
    assert_eq!(report.events, 5);
    assert_eq!(report.profiles_created, 2);
    assert_eq!(report.merges, 1);
    let jane = profile_of(&store, "user_id", "u1").unwrap();
    for (kind, value) in [
        ("anonymous_id", "laptop"),
        ("anonymous_id", "phone"),
        ("email", "jane@example.com"),
    ] {
        assert_eq!(
            profile_of(&store, kind, value).unwrap(),
            jane,
            "{kind}:{value}"
        );
    }
    let traits = traits_of(&store, &jane);
    assert_eq!(traits["name"], "Jane");
    assert_eq!(traits["plan"], "pro", "the latest identify wins");
    let events = store
        .events(
            &jane,
            &EventQuery {
                limit: 100,
                ascending: true,
                ..EventQuery::default()
            },
        )
        .unwrap();
    let messages: Vec<&str> = events.iter().map(|e| e.message_id.as_str()).collect();
    assert_eq!(messages, ["m1", "m2", "m3", "m4", "m5"]);

    let graph = store.graph(&jane).unwrap();
    assert_eq!(graph.meta.merges, 1);
    assert_eq!(graph.meta.first_message_id, "m1");
    assert_eq!(
        graph.meta.last_message_id, "m5",
        "the latest event, from the history"
    );
    assert_eq!(graph.meta.last_source_id, "src_web");
    assert!(graph.meta.updated_at_ms >= graph.meta.created_at_ms);
    assert_eq!(graph.identifiers.len(), 4);
    assert_eq!(graph.merges.len(), 1);
    let merge = &graph.merges[0];
    assert_eq!(
        merge.message_id, "m4",
        "the event that caused the merge is recorded"
    );
    assert_eq!(merge.kept, jane.public_id);
    assert_eq!(merge.bridge, vec![id("anonymous_id", "phone")]);
    assert_eq!(store.count_profiles(&ws(), Collection::Users).unwrap(), 1);
    // The merged-away profile's id still leads to Jane.
    assert_eq!(
        store
            .by_public_id(&ws(), &merge.absorbed)
            .unwrap()
            .unwrap()
            .id,
        jane.id
    );
    // Other workspaces see nothing.
    let other = WorkspaceId("ws_other".into());
    assert!(
        store
            .lookup(&other, Collection::Users, &id("user_id", "u1"))
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .by_public_id(&other, &jane.public_id)
            .unwrap()
            .is_none()
    );
}

#[test]
fn named_trait_values_are_read_in_the_order_asked() {
    let (_dir, store) = open();
    store
        .ingest(&ws(), &default_rules(), "src_web", &journey())
        .unwrap();
    let jane = profile_of(&store, "user_id", "u1").unwrap();
    let names: Vec<String> = ["plan", "missing", "name"].map(String::from).to_vec();
    let all = traits_of(&store, &jane);
    assert_eq!(
        store.trait_values(&ws(), jane.id, &names).unwrap(),
        vec![Some(all["plan"].clone()), None, Some(json!("Jane"))]
    );
    assert_eq!(store.trait_map(&ws(), jane.id).unwrap(), all);
    // Another workspace's question finds nothing.
    let other = WorkspaceId("ws_other".into());
    assert_eq!(
        store.trait_values(&other, jane.id, &names).unwrap(),
        vec![None, None, None]
    );
    // Many at once: only live profiles of the workspace answer. The journey merged the phone's
    // profile into Jane's, so its id is no longer live.
    let merged = (1..=jane.id + 2)
        .find(|id| *id != jane.id && store.profile_by_id(&ws(), *id).unwrap().is_some())
        .unwrap();
    let many = store
        .live_trait_values(&ws(), &[jane.id, merged, 9_999], &names)
        .unwrap();
    assert_eq!(
        many,
        vec![
            Some(store.trait_values(&ws(), jane.id, &names).unwrap()),
            None,
            None
        ]
    );
    assert_eq!(
        store.live_trait_values(&other, &[jane.id], &names).unwrap(),
        vec![None]
    );
}

#[test]
fn splitting_at_the_merge_restores_the_phone_profile() {
    let (_dir, store) = open();
    let rules = default_rules();
    store.ingest(&ws(), &rules, "src_web", &journey()).unwrap();
    let jane = profile_of(&store, "user_id", "u1").unwrap();
    let merge = store.graph(&jane).unwrap().merges[0].clone();
    let result = store.split_merge(&jane, merge.id, &rules).unwrap();
    assert_eq!(
        result.profiles,
        vec![jane.public_id.clone(), merge.absorbed.clone()]
    );
    assert!(result.removed.is_empty());
    let phone = profile_of(&store, "anonymous_id", "phone").unwrap();
    assert_eq!(
        phone.public_id, merge.absorbed,
        "the absorbed profile comes back"
    );
    assert_eq!(
        profile_of(&store, "email", "jane@example.com").unwrap(),
        jane
    );
    let phone_events: Vec<String> = store
        .events(
            &phone,
            &EventQuery {
                limit: 10,
                ascending: true,
                ..EventQuery::default()
            },
        )
        .unwrap()
        .into_iter()
        .map(|e| e.message_id)
        .collect();
    assert_eq!(phone_events, ["m2", "m5"]);
    // The merging identify stays with Jane (its email), without the phone's anonymous id.
    assert_eq!(traits_of(&store, &jane)["plan"], "pro");
    assert!(traits_of(&store, &phone).is_empty());
    assert_eq!(store.metadata(&jane).unwrap().merges, 0);
    let graph = store.graph(&jane).unwrap();
    assert_eq!(graph.unmerges.len(), 1);
    assert_eq!(graph.unmerges[0].kind, "merge");
    assert_eq!(
        graph.merges.len(),
        1,
        "the merge record stays: history is append-only"
    );
    // A split of a merge that is not this profile's is refused.
    assert!(matches!(
        store.split_merge(&phone, merge.id, &rules),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn removing_the_bridging_email_splits_and_later_events_merge_again() {
    let (_dir, store) = open();
    let rules = default_rules();
    store.ingest(&ws(), &rules, "src_web", &journey()).unwrap();
    let jane = profile_of(&store, "user_id", "u1").unwrap();
    let result = store
        .remove_identifier(&jane, &id("email", "jane@example.com"), &rules)
        .unwrap();
    assert_eq!(result.removed, vec![id("email", "jane@example.com")]);
    assert_eq!(result.profiles.len(), 2);
    assert!(profile_of(&store, "email", "jane@example.com").is_none());
    let phone = profile_of(&store, "anonymous_id", "phone").unwrap();
    assert_ne!(phone, jane);
    assert_eq!(profile_of(&store, "anonymous_id", "laptop").unwrap(), jane);
    // Traits are recomputed per profile: the phone's identify said plan=pro, the laptop's free.
    assert_eq!(traits_of(&store, &jane)["plan"], "free");
    assert_eq!(traits_of(&store, &phone)["plan"], "pro");
    assert!(matches!(
        store.remove_identifier(&jane, &id("email", "nobody@x.io"), &rules),
        Err(StoreError::NotFound { .. })
    ));
    // The email arrives again with both devices: they merge again.
    let again = vec![event(
        6,
        T0 + 5000,
        json!({"type": "identify", "userId": "u1", "anonymousId": "phone",
        "traits": {"email": "jane@example.com"}}),
    )];
    let report = store.ingest(&ws(), &rules, "src_web", &again).unwrap();
    assert_eq!(report.merges, 1);
    assert_eq!(profile_of(&store, "anonymous_id", "phone").unwrap(), jane);
}

#[test]
fn ingest_is_idempotent_and_survives_a_restart_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("profiles.db");
    let rules = default_rules();
    let events = journey();
    {
        let store = ProfileStore::open(&path).unwrap();
        store
            .ingest(&ws(), &rules, "src_web", &events[..2])
            .unwrap();
        assert_eq!(store.cursor(&ws(), "src_web").unwrap(), 2);
    }
    let store = ProfileStore::open(&path).unwrap();
    assert_eq!(store.cursor(&ws(), "src_web").unwrap(), 2);
    // A consumer that re-reads from an older position changes nothing.
    let report = store
        .ingest(&ws(), &rules, "src_web", &events[..3])
        .unwrap();
    assert_eq!(report.duplicates, 2);
    store
        .ingest(&ws(), &rules, "src_web", &events[3..])
        .unwrap();
    assert_eq!(store.cursor(&ws(), "src_web").unwrap(), 5);

    let (_other_dir, fresh) = open();
    fresh.ingest(&ws(), &rules, "src_web", &events).unwrap();
    let a = store
        .graph(&profile_of(&store, "user_id", "u1").unwrap())
        .unwrap();
    let b = fresh
        .graph(&profile_of(&fresh, "user_id", "u1").unwrap())
        .unwrap();
    let ids = |g: &GraphView| {
        g.identifiers
            .iter()
            .map(|e| e.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&a), ids(&b));
    assert_eq!(a.meta.merges, b.meta.merges);
    let one = profile_of(&store, "user_id", "u1").unwrap();
    let two = profile_of(&fresh, "user_id", "u1").unwrap();
    assert_eq!(traits_of(&store, &one), traits_of(&fresh, &two));
}

#[test]
fn a_file_of_an_older_layout_is_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("profiles.db");
    {
        // The first layout: no user_version, identifiers keyed by their text.
        let old = rusqlite::Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE profiles (id INTEGER PRIMARY KEY, last_message_id TEXT);
             CREATE TABLE identifiers (workspace_id TEXT, collection TEXT, kind TEXT, value TEXT,
                 profile_id INTEGER, PRIMARY KEY (workspace_id, collection, kind, value)) WITHOUT ROWID;
             CREATE TABLE cursors (workspace_id TEXT, source_id TEXT, seq INTEGER);
             INSERT INTO cursors VALUES ('ws_test', 'src_web', 5);",
        )
        .unwrap();
    }
    let store = ProfileStore::open(&path).unwrap();
    assert_eq!(
        store.cursor(&ws(), "src_web").unwrap(),
        0,
        "the consumer starts over"
    );
    let report = store
        .ingest(&ws(), &default_rules(), "src_web", &journey())
        .unwrap();
    assert_eq!((report.events, report.merges), (5, 1));
    assert!(profile_of(&store, "user_id", "u1").is_some());
    drop(store);
    // Opening the current layout again keeps everything.
    let store = ProfileStore::open(&path).unwrap();
    assert_eq!(store.cursor(&ws(), "src_web").unwrap(), 5);
    assert!(profile_of(&store, "email", "jane@example.com").is_some());
}

#[test]
fn limits_priority_and_blocked_values_through_the_store() {
    let mut settings = IdentitySettings::default();
    settings.identifiers[0].blocked_values = vec!["anonymous".into()];
    let rules = Rules::compile(&settings).unwrap();
    let (_dir, store) = open();
    let events = vec![
        event(
            1,
            T0,
            json!({"type": "identify", "userId": "abc123", "traits": {"email": "jane@x.io"}}),
        ),
        // user_id limit 1: the email is dropped, abc456 gets its own profile.
        event(
            2,
            T0 + 1,
            json!({"type": "identify", "userId": "abc456", "traits": {"email": "jane@x.io"}}),
        ),
        // A blocked user id is not an identifier: the event resolves by its anonymous id.
        event(
            3,
            T0 + 2,
            json!({"type": "track", "event": "x", "userId": "anonymous", "anonymousId": "a9"}),
        ),
        // Nothing usable at all.
        event(
            4,
            T0 + 3,
            json!({"type": "track", "event": "x", "userId": "anonymous"}),
        ),
    ];
    let report = store.ingest(&ws(), &rules, "src_web", &events).unwrap();
    assert_eq!(report.identifiers_dropped, 1);
    assert_eq!(report.unresolved, 1);
    let first = profile_of(&store, "user_id", "abc123").unwrap();
    let second = profile_of(&store, "user_id", "abc456").unwrap();
    assert_ne!(first, second);
    assert_eq!(profile_of(&store, "email", "jane@x.io").unwrap(), first);
    assert!(profile_of(&store, "user_id", "anonymous").is_none());
    assert!(profile_of(&store, "anonymous_id", "a9").is_some());
    // Traits still land on the profile the event resolved to.
    assert_eq!(traits_of(&store, &second)["email"], "jane@x.io");

    // Weekly anonymous ids: a sixth in a week is not added, a week later it is.
    let mut events = Vec::new();
    for n in 0..6 {
        events.push(event(10 + n, T0 + n, json!({"type": "track", "event": "x", "userId": "abc123", "anonymousId": format!("r{n}")})));
    }
    events.push(event(
        20,
        T0 + 8 * DAY,
        json!({"type": "track", "event": "x", "userId": "abc123", "anonymousId": "r5"}),
    ));
    let report = store.ingest(&ws(), &rules, "src_web", &events).unwrap();
    assert_eq!(report.identifiers_added, 6);
    assert_eq!(report.identifiers_dropped, 1);
    assert_eq!(profile_of(&store, "anonymous_id", "r5").unwrap(), first);
}

#[test]
fn groups_make_accounts_and_links() {
    let (_dir, store) = open();
    let events = vec![
        event(
            1,
            T0,
            json!({"type": "identify", "userId": "u1", "traits": {"name": "Ann"}}),
        ),
        event(
            2,
            T0 + 1,
            json!({"type": "group", "userId": "u1", "groupId": "acme", "traits": {"name": "Acme", "seats": 10}}),
        ),
        event(
            3,
            T0 + 2,
            json!({"type": "group", "userId": "u2", "groupId": "acme", "traits": {"seats": 12}}),
        ),
    ];
    store
        .ingest(&ws(), &default_rules(), "src_web", &events)
        .unwrap();
    let account = store
        .lookup(&ws(), Collection::Accounts, &id("group_id", "acme"))
        .unwrap()
        .unwrap();
    assert!(account.public_id.starts_with("acc_"));
    let traits = traits_of(&store, &account);
    assert_eq!(traits["name"], "Acme");
    assert_eq!(traits["seats"], 12);
    let ann = profile_of(&store, "user_id", "u1").unwrap();
    assert!(ann.public_id.starts_with("use_"));
    assert_eq!(
        traits_of(&store, &ann)["name"],
        "Ann",
        "group traits are the account's, not the user's"
    );
    let links = store.links(&ann, 20).unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].public_id, account.public_id);
    assert_eq!(links[0].external_ids[0].id, id("group_id", "acme"));
    assert_eq!(store.links(&account, 20).unwrap().len(), 2);
}

#[test]
fn erase_finds_and_removes_every_trace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("profiles.db");
    let store = ProfileStore::open(&path).unwrap();
    let mut events = journey();
    events.push(event(
        6,
        T0 + 5000,
        json!({"type": "group", "userId": "u1", "groupId": "acme"}),
    ));
    events.push(event(
        7,
        T0 + 6000,
        json!({"type": "identify", "userId": "someone-else",
        "traits": {"email": "other@example.com"}}),
    ));
    store
        .ingest(&ws(), &default_rules(), "src_web", &events)
        .unwrap();
    let found = store
        .find_person(&ws(), &[id("email", "jane@example.com")])
        .unwrap();
    assert_eq!(found.profiles.len(), 1);
    assert_eq!(found.identifiers.len(), 4);
    assert_eq!(found.events, 6);
    let removed = store
        .erase_person(&ws(), &[id("email", "jane@example.com")])
        .unwrap();
    assert!(removed > 10, "{removed}");
    let found = store.find_person(&ws(), &found.identifiers).unwrap();
    assert_eq!(found, PersonFound::default());
    assert!(
        profile_of(&store, "user_id", "someone-else").is_some(),
        "others stay"
    );
    drop(store);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for needle in ["jane@example.com", "Jane@Example.com", "laptop", "Jane"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} left on disk"
            );
        }
    }
}

#[test]
fn expiry_forgets_old_history_and_profiles_left_without_any() {
    let (_dir, store) = open();
    store
        .ingest(&ws(), &default_rules(), "src_web", &journey())
        .unwrap();
    // The same person seen later by the app, and someone seen only by the app.
    let mut app = vec![
        event(
            6,
            T0 + 5000,
            json!({"type": "track", "event": "App Opened", "userId": "u1"}),
        ),
        event(
            7,
            T0 + 6000,
            json!({"type": "identify", "userId": "app-only", "traits": {"plan": "team"}}),
        ),
    ];
    for stored in &mut app {
        stored.event.source_id = "src_app".into();
    }
    store
        .ingest(&ws(), &default_rules(), "src_app", &app)
        .unwrap();
    let applied = sluice_spec::timestamp::now_ms();

    // Nothing was applied before the start of time, and another workspace holds nothing.
    assert_eq!(
        store.expire(&ws(), "src_web", 0).unwrap(),
        Expired::default()
    );
    let other = WorkspaceId("ws_other".into());
    assert_eq!(
        store.expire(&other, "src_web", applied + 1).unwrap(),
        Expired::default()
    );

    let expired = store.expire(&ws(), "src_web", applied + 1).unwrap();
    assert_eq!(
        expired,
        Expired {
            events: 5,
            profiles: 0
        }
    );
    // Jane keeps her profile (the app's event is recent) with her identifiers and traits.
    let jane = profile_of(&store, "user_id", "u1").unwrap();
    assert_eq!(
        profile_of(&store, "email", "jane@example.com"),
        Some(jane.clone())
    );
    assert_eq!(traits_of(&store, &jane)["plan"], json!("pro"));

    let expired = store.expire(&ws(), "src_app", applied + 1).unwrap();
    assert_eq!(
        expired,
        Expired {
            events: 2,
            profiles: 2
        }
    );
    for (kind, value) in [
        ("user_id", "u1"),
        ("email", "jane@example.com"),
        ("anonymous_id", "phone"),
        ("user_id", "app-only"),
    ] {
        assert_eq!(profile_of(&store, kind, value), None, "{kind} {value}");
    }
    assert_eq!(
        store
            .find_person(&ws(), &[id("anonymous_id", "laptop")])
            .unwrap(),
        PersonFound::default()
    );
}

#[test]
fn the_children_sweep_finds_profiles_by_age_or_birth_date() {
    let (_dir, store) = open();
    let events = vec![
        event(
            1,
            T0,
            json!({"type": "identify", "userId": "kid", "traits": {"age": 12}}),
        ),
        event(
            2,
            T0,
            json!({"type": "identify", "anonymousId": "anon-kid",
            "traits": {"Date_Of_Birth": "2014-05-01"}}),
        ),
        event(
            3,
            T0,
            json!({"type": "identify", "userId": "adult", "traits": {"age": 40,
            "birthday": "1986-01-01"}}),
        ),
        event(
            4,
            T0,
            json!({"type": "identify", "userId": "teen", "traits": {"age": "17"}}),
        ),
        event(
            5,
            T0,
            json!({"type": "track", "event": "Played", "userId": "no-age",
            "properties": {"age": 5}}),
        ),
    ];
    store
        .ingest(&ws(), &default_rules(), "src_web", &events)
        .unwrap();
    let today = time::macros::date!(2026 - 11 - 23);
    assert_eq!(
        store.children(&ws(), 16, today).unwrap(),
        vec![id("user_id", "kid"), id("anonymous_id", "anon-kid")]
    );
    assert_eq!(
        store.children(&ws(), 18, today).unwrap(),
        vec![
            id("user_id", "kid"),
            id("anonymous_id", "anon-kid"),
            id("user_id", "teen")
        ]
    );
    assert!(
        store
            .children(&WorkspaceId("ws_other".into()), 16, today)
            .unwrap()
            .is_empty()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// The store decides exactly like the in-memory graph under the default rules.
    #[test]
    fn the_store_resolves_like_the_memory_graph(
        events in prop::collection::vec((prop::option::of(0u8..6), prop::option::of(0u8..8), prop::option::of(0u8..4), 0i64..20), 1..40),
    ) {
        let rules = default_rules();
        let (_dir, store) = open();
        let mut graph = MemoryGraph::default();
        let mut stored = Vec::new();
        for (n, (user, anon, email, day)) in events.iter().enumerate() {
            let mut body = json!({"type": "identify", "traits": {}});
            if let Some(u) = user { body["userId"] = json!(format!("u{u}")); }
            if let Some(a) = anon { body["anonymousId"] = json!(format!("a{a}")); }
            if let Some(e) = email { body["traits"]["email"] = json!(format!("e{e}@x.io")); }
            let at = T0 + day * DAY + n as i64;
            let logged = event(n as i64 + 1, at, body.clone());
            let extracted = sluice_identity::extract(&body, &rules);
            let Ok(decision) = resolve(&mut graph, &rules, Collection::Users, &extracted.user_ids, at);
            graph.apply(Collection::Users, &decision, at);
            stored.push(logged);
        }
        store.ingest(&ws(), &rules, "src_web", &stored).unwrap();
        let owners: Vec<(Identifier, i64)> = graph.owners().map(|(i, p)| (i.clone(), p)).collect();
        for (a, pa) in &owners {
            let sa = store.lookup(&ws(), Collection::Users, a).unwrap();
            prop_assert!(sa.is_some(), "{} missing", a);
            for (b, pb) in &owners {
                let sb = store.lookup(&ws(), Collection::Users, b).unwrap();
                prop_assert_eq!(pa == pb, sa == sb, "{} {}", a, b);
            }
        }
        prop_assert_eq!(store.count_profiles(&ws(), Collection::Users).unwrap() as usize, graph.profiles().count());
    }
}

/// The state in memory equals what a fresh process loads from the files.
fn assert_memory_matches_files(store: &ProfileStore, path: &std::path::Path) {
    // A read brings this store up to the files first (another process may have changed them).
    store.count_profiles(&ws(), Collection::Users).unwrap();
    let fresh = ProfileStore::open(path).unwrap();
    fresh.count_profiles(&ws(), Collection::Users).unwrap();
    let mine = store.memory.read().unwrap();
    let theirs = fresh.memory.read().unwrap();
    let (Some(mine), Some(theirs)) = (&mine.state, &theirs.state) else {
        panic!("both loaded");
    };
    assert_eq!(mine.profiles, theirs.profiles);
    assert_eq!(mine.merges, theirs.merges);
    assert_eq!(mine.unmerges, theirs.unmerges);
    assert_eq!(
        mine.names.iter().collect::<Vec<_>>(),
        theirs.names.iter().collect::<Vec<_>>()
    );
    for profile in mine.profiles.values() {
        if !profile.is_live() {
            continue;
        }
        let workspace = mine.names.text(profile.workspace);
        for held in &profile.identifiers {
            let id = Identifier::new(mine.names.text(held.kind), &*held.value);
            let found = theirs.find(workspace, profile.collection, &id);
            assert_eq!(
                found.and_then(|p| theirs.profile(p)).map(|p| &p.public_id),
                Some(&profile.public_id)
            );
        }
    }
}

#[test]
fn the_state_follows_merges_unmerges_erasure_and_other_processes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("profiles.db");
    let rules = default_rules();
    let store = ProfileStore::open(&path).unwrap();
    store.ingest(&ws(), &rules, "src_web", &journey()).unwrap();
    assert_memory_matches_files(&store, &path);
    assert!(profile_of(&store, "user_id", "bob").is_none());
    // A later event (a day on) sees its identifiers again: last_seen moves.
    let later = vec![
        event(
            6,
            T0 + DAY,
            json!({"type": "track", "event": "Product Viewed", "userId": "u1", "anonymousId": "phone"}),
        ),
        event(
            7,
            T0 + DAY,
            json!({"type": "track", "event": "Product Viewed", "userId": "bob", "anonymousId": "tablet"}),
        ),
    ];
    store.ingest(&ws(), &rules, "src_web", &later).unwrap();
    assert_memory_matches_files(&store, &path);
    let jane = profile_of(&store, "user_id", "u1").unwrap();
    let phone = store
        .external_ids(&jane, &["anonymous_id".to_string()], 0, 10)
        .unwrap()
        .into_iter()
        .find(|e| e.id.value == "phone")
        .unwrap();
    assert_eq!(phone.last_seen_ms, T0 + DAY);

    let merge = store.graph(&jane).unwrap().merges[0].clone();
    store.split_merge(&jane, merge.id, &rules).unwrap();
    assert_memory_matches_files(&store, &path);

    // Another process (the CLI) removes an identifier: this store notices at its next read,
    // without any write of its own.
    {
        let other = ProfileStore::open(&path).unwrap();
        let jane = profile_of(&other, "user_id", "u1").unwrap();
        other
            .remove_identifier(&jane, &id("email", "jane@example.com"), &rules)
            .unwrap();
    }
    assert!(profile_of(&store, "email", "jane@example.com").is_none());
    assert_memory_matches_files(&store, &path);

    // Another process appends events: this store replays them.
    {
        let other = ProfileStore::open(&path).unwrap();
        let more = vec![event(
            8,
            T0 + 2 * DAY,
            json!({"type": "identify", "userId": "carol", "traits": {"plan": "free"}}),
        )];
        other.ingest(&ws(), &rules, "src_web", &more).unwrap();
    }
    assert!(profile_of(&store, "user_id", "carol").is_some());
    assert_memory_matches_files(&store, &path);

    // Memory given back stays given back while the audience consumer polls for merges it has
    // seen already, and is loaded again at the next read that needs it.
    let last_merge = store.last_merge_id(&ws()).unwrap();
    let last_unmerge = store.last_unmerge_id(&ws()).unwrap();
    assert!(last_merge > 0 && last_unmerge > 0);
    store.release_memory().unwrap();
    assert!(store.memory.read().unwrap().state.is_none());
    assert_eq!(store.last_merge_id(&ws()).unwrap(), last_merge);
    assert_eq!(store.last_unmerge_id(&ws()).unwrap(), last_unmerge);
    assert!(
        store
            .merges_after(&ws(), last_merge, 10)
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .unmerges_after(&ws(), last_unmerge, 10)
            .unwrap()
            .is_empty()
    );
    assert!(
        store.memory.read().unwrap().state.is_none(),
        "no load for those"
    );
    assert_eq!(
        store.merges_after(&ws(), 0, 10).unwrap().len(),
        last_merge as usize
    );
    assert!(
        store.memory.read().unwrap().state.is_some(),
        "loaded for older merges"
    );
    // A failed write leaves the state as the files are.
    let foreign = vec![StoredEvent {
        event: NewEvent {
            source_id: "src_other".into(),
            ..journey()[0].event.clone()
        },
        seq: 99,
    }];
    assert!(store.ingest(&ws(), &rules, "src_web", &foreign).is_err());
    assert_memory_matches_files(&store, &path);

    store
        .erase_person(&ws(), &[id("anonymous_id", "phone")])
        .unwrap();
    assert!(profile_of(&store, "anonymous_id", "phone").is_none());
    assert_memory_matches_files(&store, &path);

    store.release_memory().unwrap();
    assert!(profile_of(&store, "user_id", "bob").is_some());
    drop(store);

    let reopened = ProfileStore::open(&path).unwrap();
    assert!(
        reopened.memory.read().unwrap().state.is_none(),
        "loaded at first use"
    );
    assert!(profile_of(&reopened, "user_id", "bob").is_some());
    assert!(profile_of(&reopened, "anonymous_id", "phone").is_none());
    assert_memory_matches_files(&reopened, &path);
}

#[test]
fn a_crash_that_loses_the_end_of_the_change_log_costs_only_the_lost_batches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("profiles.db");
    let rules = default_rules();
    let events = journey();
    let (_other, never_crashed) = open();
    never_crashed
        .ingest(&ws(), &rules, "src_web", &events)
        .unwrap();
    {
        let store = ProfileStore::open(&path).unwrap();
        store
            .ingest(&ws(), &rules, "src_web", &events[..3])
            .unwrap();
        store
            .ingest(&ws(), &rules, "src_web", &events[3..])
            .unwrap();
        assert_eq!(store.cursor(&ws(), "src_web").unwrap(), 5);
    }
    // The disk kept the first batch and part of the second.
    let log_path = dir.path().join("profiles.log");
    let length = std::fs::metadata(&log_path).unwrap().len();
    let log = std::fs::OpenOptions::new()
        .write(true)
        .open(&log_path)
        .unwrap();
    log.set_len(length - 5).unwrap();
    drop(log);
    let store = ProfileStore::open(&path).unwrap();
    let jane = profile_of(&store, "user_id", "u1").expect("the first batch stays");
    assert_ne!(
        profile_of(&store, "anonymous_id", "phone"),
        Some(jane),
        "the second batch's merge is gone"
    );
    assert_eq!(
        store.cursor(&ws(), "src_web").unwrap(),
        3,
        "applied again from the lost batch"
    );
    store.ingest(&ws(), &rules, "src_web", &events).unwrap();
    assert_eq!(journey_view(&store), journey_view(&never_crashed));
    assert_memory_matches_files(&store, &path);
    drop(store);

    // A log cut inside its first batch leaves nothing: everything is applied again.
    let log = std::fs::OpenOptions::new()
        .write(true)
        .open(&log_path)
        .unwrap();
    log.set_len(10).unwrap();
    drop(log);
    let store = ProfileStore::open(&path).unwrap();
    assert!(profile_of(&store, "anonymous_id", "laptop").is_none());
    assert_eq!(store.cursor(&ws(), "src_web").unwrap(), 0);
    store.ingest(&ws(), &rules, "src_web", &events).unwrap();
    assert_eq!(journey_view(&store), journey_view(&never_crashed));
}

#[test]
fn public_ids_sort_by_creation_time_and_stay_unguessable() {
    let early = new_public_id(Collection::Users, T0).unwrap();
    let late = new_public_id(Collection::Users, T0 + 1).unwrap();
    let much_later = new_public_id(Collection::Users, T0 + 1_000 * DAY).unwrap();
    assert!(
        early < late && late < much_later,
        "{early} {late} {much_later}"
    );
    assert_eq!(early.len(), "use_".len() + 27);
    assert!(
        new_public_id(Collection::Accounts, T0)
            .unwrap()
            .starts_with("acc_")
    );
    let twin = new_public_id(Collection::Users, T0).unwrap();
    assert_eq!(early[..11], twin[..11], "same time, same prefix");
    assert_ne!(early, twin, "the random part differs");
    assert!(early[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
}

/// Everything the store shows of the journey's profiles, for comparing two stores.
fn journey_view(store: &ProfileStore) -> Vec<String> {
    let mut seen = Vec::new();
    for (kind, value) in [
        ("user_id", "u1"),
        ("anonymous_id", "phone"),
        ("user_id", "bob"),
    ] {
        let Some(profile) = profile_of(store, kind, value) else {
            seen.push(format!("{kind}:{value} none"));
            continue;
        };
        for ascending in [true, false] {
            let events = store
                .events(
                    &profile,
                    &EventQuery {
                        limit: 100,
                        ascending,
                        ..EventQuery::default()
                    },
                )
                .unwrap();
            let ids: Vec<&str> = events.iter().map(|e| e.message_id.as_str()).collect();
            seen.push(format!("{kind}:{value} events {ids:?}"));
        }
        let meta = store.metadata(&profile).unwrap();
        seen.push(format!(
            "{kind}:{value} last {} merges {}",
            meta.last_message_id, meta.merges
        ));
        let positions = store.history_positions(&ws(), profile.id).unwrap();
        seen.push(format!("{kind}:{value} positions {positions:?}"));
        seen.push(format!(
            "{kind}:{value} traits {:?}",
            traits_of(store, &profile)
        ));
    }
    seen
}

#[test]
fn history_reads_the_same_from_a_snapshot_as_from_the_log() {
    let rules = default_rules();
    let mut events = journey();
    events.push(event(
        6,
        T0 + 5000,
        json!({"type": "track", "event": "Product Viewed", "userId": "bob", "anonymousId": "tablet"}),
    ));
    let (dir, snapshotted) = open();
    let (_other, logged) = open();
    for store in [&snapshotted, &logged] {
        store
            .ingest(&ws(), &rules, "src_web", &events[..4])
            .unwrap();
    }
    // A snapshot between the two batches: start-up then replays only the second.
    snapshotted.release_memory().unwrap();
    assert!(dir.path().join("profiles.snapshot").exists());
    for store in [&snapshotted, &logged] {
        store
            .ingest(&ws(), &rules, "src_web", &events[4..])
            .unwrap();
    }
    assert_eq!(journey_view(&snapshotted), journey_view(&logged));
    let reopened = ProfileStore::open(&dir.path().join("profiles.db")).unwrap();
    assert_eq!(journey_view(&reopened), journey_view(&logged));

    // An unmerge moves history between profiles alike.
    for store in [&snapshotted, &logged] {
        let jane = profile_of(store, "user_id", "u1").unwrap();
        let merge = store.graph(&jane).unwrap().merges[0].clone();
        store.split_merge(&jane, merge.id, &rules).unwrap();
    }
    assert_eq!(journey_view(&snapshotted), journey_view(&logged));
    let phone = profile_of(&snapshotted, "anonymous_id", "phone").unwrap();
    let phone_events = snapshotted
        .events(
            &phone,
            &EventQuery {
                limit: 10,
                ascending: true,
                ..EventQuery::default()
            },
        )
        .unwrap();
    assert_eq!(
        phone_events
            .iter()
            .map(|e| e.message_id.as_str())
            .collect::<Vec<_>>(),
        ["m2", "m5"]
    );

    // Erasure and retention leave nothing of the events in the files.
    for store in [&snapshotted, &logged] {
        let found = store.find_person(&ws(), &[id("user_id", "u1")]).unwrap();
        assert_eq!(found.events, 3, "m1, m3 and m4 stay with Jane");
        store.erase_person(&ws(), &[id("user_id", "u1")]).unwrap();
        let expired = store.expire(&ws(), "src_web", i64::MAX).unwrap();
        assert_eq!(expired.events, 3, "the phone's two and bob's one");
        assert_eq!(
            expired.profiles, 2,
            "the phone and bob, left without history"
        );
        assert_eq!(store.count_profiles(&ws(), Collection::Users).unwrap(), 0);
    }
    for file in ["profiles.log", "profiles.snapshot"] {
        let bytes = std::fs::read(dir.path().join(file)).unwrap();
        for needle in ["jane@example.com", "u1", "phone", "tablet", "m1", "m5"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} left in {file}"
            );
        }
    }
}

#[test]
fn an_idle_release_keeps_the_state_the_profile_api_is_reading() {
    let rules = default_rules();
    let (_dir, store) = open();
    store.ingest(&ws(), &rules, "src_web", &journey()).unwrap();
    // The consumers' own lookups do not keep it.
    assert!(profile_of(&store, "user_id", "u1").is_some());
    store.release_memory().unwrap();
    assert!(store.memory.read().unwrap().state.is_none());
    // A Profile API read does.
    assert!(
        store
            .find(&ws(), Collection::Users, &id("user_id", "u1"))
            .unwrap()
            .is_some()
    );
    store.release_memory().unwrap();
    assert!(store.memory.read().unwrap().state.is_some());
    // Until it is old.
    *store.last_api_read.lock().unwrap() =
        Some(std::time::Instant::now() - KEEP_AFTER_READ - std::time::Duration::from_secs(1));
    store.release_memory().unwrap();
    assert!(store.memory.read().unwrap().state.is_none());
}

#[test]
fn an_io_error_while_loading_is_reported_and_empties_nothing() {
    let rules = default_rules();
    let (dir, store) = open();
    store.ingest(&ws(), &rules, "src_web", &journey()).unwrap();
    store.release_memory().unwrap();
    // The snapshot cannot be read (a directory stands in its place): the read fails, and the
    // store keeps everything for the next try.
    let snapshot = dir.path().join("profiles.snapshot");
    std::fs::remove_file(&snapshot).unwrap();
    std::fs::create_dir(&snapshot).unwrap();
    let error = store
        .lookup(&ws(), Collection::Users, &id("user_id", "u1"))
        .unwrap_err();
    assert!(matches!(error, StoreError::Io(_)), "{error}");
    assert_eq!(store.cursor(&ws(), "src_web").unwrap(), 5);
    // Without a snapshot the whole change log is replayed.
    std::fs::remove_dir(&snapshot).unwrap();
    assert!(profile_of(&store, "user_id", "u1").is_some());
    assert_eq!(store.cursor(&ws(), "src_web").unwrap(), 5);
}
