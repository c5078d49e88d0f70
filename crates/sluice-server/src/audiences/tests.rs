//! The audience consumer over real stores, with paused time: incremental evaluation, timers
//! when a window passes, backfill after an edit, merges of profiles.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sluice_store::{
    AudienceStore, DefinitionKind, EventLog, NewEvent, ProfileStore, SqliteLog, SqliteLogConfig,
    StateStore, WorkspaceId,
};

use super::Audiences;
use crate::follow::Consumer;
use crate::profiles::Profiles;

struct Node {
    _dir: tempfile::TempDir,
    state: Arc<StateStore>,
    log: Arc<SqliteLog>,
    profiles: Arc<Profiles>,
    audiences: Arc<Audiences>,
    workspace: WorkspaceId,
    source: String,
    sent: std::sync::atomic::AtomicUsize,
}

fn node() -> Node {
    node_with(super::backfill::BATCH)
}

/// A node whose backfills take `batch` at once.
fn node_with(batch: super::backfill::Batch) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(StateStore::open(&dir.path().join("state.db")).unwrap());
    let (workspace, _) = state.ensure_default_workspace().unwrap();
    let (source, _) = state.create_source(&workspace.id, "web").unwrap();
    let log = Arc::new(SqliteLog::open(SqliteLogConfig::new(dir.path().join("log.db"))).unwrap());
    let shared: Arc<dyn EventLog> = log.clone();
    let profiles = Arc::new(Profiles::new(
        Arc::new(ProfileStore::open(&dir.path().join("profiles.db")).unwrap()),
        Arc::clone(&shared),
        Arc::clone(&state),
    ));
    let mut audiences = Audiences::new(
        Arc::new(AudienceStore::open(&dir.path().join("audiences.db")).unwrap()),
        Arc::clone(&profiles),
        shared,
        Arc::clone(&state),
    );
    audiences.batch = batch;
    let audiences = Arc::new(audiences);
    Node {
        _dir: dir,
        state,
        log,
        profiles,
        audiences,
        workspace: workspace.id,
        source: source.id,
        sent: std::sync::atomic::AtomicUsize::new(0),
    }
}

impl Node {
    /// Logs a message stamped now (by the consumer's clock).
    async fn send(&self, mut body: Value) {
        let n = self.sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let now = self.audiences.clock.now_ms();
        let message_id = format!("m{n}");
        body["messageId"] = json!(message_id);
        body["timestamp"] = json!(sluice_spec::timestamp::format_ms(now).unwrap());
        let event = NewEvent {
            workspace_id: self.workspace.clone(),
            source_id: self.source.clone(),
            message_id,
            user_id: body["userId"].as_str().map(str::to_owned),
            anonymous_id: body["anonymousId"].as_str().map(str::to_owned),
            received_at_ms: now,
            body: body.to_string(),
        };
        self.log.append(vec![event]).await.unwrap();
    }

    async fn order(&self, user: &str) {
        self.send(
            json!({"type": "track", "event": "Order Completed", "userId": user,
            "properties": {"total": 30}}),
        )
        .await;
    }

    /// Runs the profile consumer, then the audience consumer, until both are idle.
    async fn settle(&self) {
        while self.profiles.pass().await.unwrap() {}
        while self.audiences.pass().await.unwrap() {}
    }

    fn define(&self, kind: DefinitionKind, definition: Value) {
        let key = definition["key"].as_str().unwrap().to_owned();
        let saved = self.state.definitions(&self.workspace).unwrap().0;
        let (_, _, name) = super::with_draft(&saved, kind, &definition).unwrap();
        let text = definition.to_string();
        if saved.iter().any(|d| d.key == key) {
            self.state
                .update_definition(&self.workspace, kind, &key, &name, &text)
                .unwrap();
        } else {
            self.state
                .create_definition(&self.workspace, kind, &key, &name, &text)
                .unwrap();
        }
    }

    /// The users (userId) in an audience.
    fn members(&self, key: &str) -> Vec<String> {
        let ids = self
            .audiences
            .store
            .members(&self.workspace, key, 0, 100)
            .unwrap();
        let mut users: Vec<String> = ids.iter().map(|id| self.user_of(*id)).collect();
        users.sort();
        users
    }

    fn user_of(&self, profile: i64) -> String {
        let found = self
            .profiles
            .store
            .profile_by_id(&self.workspace, profile)
            .unwrap()
            .unwrap();
        let ids = self
            .profiles
            .store
            .external_ids(&found, &[], 0, 100)
            .unwrap();
        ids.into_iter()
            .find(|id| id.id.kind == "user_id")
            .map_or_else(|| "?".into(), |id| id.id.value)
    }

    /// (user, change) of the recorded changes of `key`, oldest first.
    fn changes(&self, key: &str) -> Vec<(String, String)> {
        let mut rows = self
            .audiences
            .store
            .changes(&self.workspace, Some(key), None, 100)
            .unwrap();
        rows.reverse();
        rows.into_iter()
            .map(|row| (self.user_of(row.profile_id), row.kind))
            .collect()
    }
}

fn pair(user: &str, change: &str) -> (String, String) {
    (user.to_owned(), change.to_owned())
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test(start_paused = true)]
async fn members_enter_as_events_arrive_and_leave_when_the_window_passes() {
    let node = node();
    node.define(
        DefinitionKind::Audience,
        json!({"key": "buyers", "name": "Buyers", "condition": {"performed": {
            "event": "Order Completed", "count": {"op": ">=", "value": 2},
            "within": {"hours": 24}}}}),
    );
    node.define(
        DefinitionKind::Trait,
        json!({"key": "orders", "name": "Orders", "type": "count", "event": "Order Completed",
               "within": {"hours": 24}}),
    );
    node.order("ann").await;
    node.order("ann").await;
    node.order("bob").await;
    node.settle().await;
    assert_eq!(node.members("buyers"), ["ann"]);
    assert_eq!(node.changes("buyers"), [pair("ann", "entered")]);

    node.order("bob").await;
    node.settle().await;
    assert_eq!(node.members("buyers"), ["ann", "bob"]);

    // A day and two hours later every order has left the window: both leave, once.
    tokio::time::advance(26 * HOUR).await;
    node.settle().await;
    assert!(node.members("buyers").is_empty());
    tokio::time::advance(HOUR).await;
    node.settle().await;
    let changes = node.changes("buyers");
    assert_eq!(changes.len(), 4, "{changes:?}");
    assert_eq!(
        changes.iter().filter(|(_, c)| c == "exited").count(),
        2,
        "{changes:?}"
    );
    let traits = node.changes("orders");
    assert_eq!(
        traits.iter().filter(|(user, _)| user == "ann").count(),
        2,
        "ann's order count went to 2 (both orders came in one batch), then to 0: {traits:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_edit_backfills_from_the_log_and_reports_only_differences() {
    let node = node();
    node.order("ann").await;
    node.order("ann").await;
    node.order("bob").await;
    node.settle().await;
    // Defined after the events: the backfill finds them.
    node.define(
        DefinitionKind::Audience,
        json!({"key": "buyers", "name": "Buyers", "condition": {"performed": {
            "event": "Order Completed", "count": {"op": ">=", "value": 2}}}}),
    );
    node.settle().await;
    assert_eq!(node.members("buyers"), ["ann"]);
    let progress = node.audiences.store.progress(&node.workspace).unwrap();
    assert_eq!(
        progress.catalog_version,
        node.state.catalog_version(&node.workspace).unwrap()
    );

    // Lowered to one order: bob enters, ann is not reported again.
    node.define(
        DefinitionKind::Audience,
        json!({"key": "buyers", "name": "Buyers", "condition": {"performed": {
            "event": "Order Completed"}}}),
    );
    node.settle().await;
    assert_eq!(node.members("buyers"), ["ann", "bob"]);
    assert_eq!(
        node.changes("buyers"),
        [pair("ann", "entered"), pair("bob", "entered")]
    );

    // The estimate of a draft agrees with what a save would compute.
    let saved = node.state.definitions(&node.workspace).unwrap().0;
    let draft = json!({"key": "big", "name": "Big", "condition": {"performed": {
        "event": "Order Completed", "count": {"op": ">=", "value": 2}}}});
    let (catalog, key, _) = super::with_draft(&saved, DefinitionKind::Audience, &draft).unwrap();
    let estimate = node
        .audiences
        .estimate(&node.workspace, &catalog, &key)
        .await
        .unwrap();
    assert_eq!((estimate.members, estimate.profiles), (1, 2));
}

#[tokio::test(start_paused = true)]
async fn a_backfill_in_small_batches_finds_what_one_batch_finds() {
    // Users with no to three orders, and one with many: batches of three profiles, or fewer
    // once four events are read, cut through the states and the histories alike.
    let mut plan: Vec<(String, usize)> = (0..17).map(|i| (format!("u{i:02}"), i % 4)).collect();
    plan.insert(5, ("heavy".into(), 9));
    let buyers = |at_least: usize| {
        json!({"key": "buyers", "name": "Buyers", "condition": {"performed": {
            "event": "Order Completed", "count": {"op": ">=", "value": at_least}}}})
    };
    let small = super::backfill::Batch {
        profiles: 3,
        events: 4,
    };
    let mut seen = Vec::new();
    for batch in [super::backfill::BATCH, small] {
        let node = node_with(batch);
        for (user, orders) in &plan {
            for _ in 0..*orders {
                node.order(user).await;
            }
        }
        node.settle().await;
        node.define(DefinitionKind::Audience, buyers(2));
        node.settle().await;
        let first = node.members("buyers");
        // The edit walks the stored states too.
        node.define(DefinitionKind::Audience, buyers(1));
        node.settle().await;
        seen.push((first, node.members("buyers"), node.changes("buyers")));
    }
    let with = |at_least: usize| {
        let mut users: Vec<String> = plan
            .iter()
            .filter(|(_, orders)| *orders >= at_least)
            .map(|(user, _)| user.clone())
            .collect();
        users.sort();
        users
    };
    assert_eq!(seen[0].0, with(2));
    assert_eq!(seen[0].1, with(1));
    // Everyone with an order entered once: the edit reports only who was not in before.
    assert_eq!(seen[0].2.len(), with(1).len());
    assert_eq!(seen[1], seen[0]);
}

#[tokio::test(start_paused = true)]
async fn merged_profiles_share_one_state() {
    let node = node();
    node.define(
        DefinitionKind::Audience,
        json!({"key": "buyers", "name": "Buyers", "condition": {"performed": {
            "event": "Order Completed", "count": {"op": ">=", "value": 2}}}}),
    );
    node.settle().await;
    // One order as an anonymous visitor, one signed in: two profiles, nobody in.
    node.send(json!({"type": "track", "event": "Order Completed", "anonymousId": "anon-1"}))
        .await;
    node.order("cat").await;
    node.settle().await;
    assert!(node.members("buyers").is_empty());
    // The identify joins them: the merged profile has two orders.
    node.send(json!({"type": "identify", "userId": "cat", "anonymousId": "anon-1"}))
        .await;
    node.settle().await;
    assert_eq!(node.members("buyers"), ["cat"]);
    assert_eq!(node.changes("buyers"), [pair("cat", "entered")]);
    // The recorded history moved with the merge.
    assert_eq!(node.recorded(), [pair_n("cat", 2)]);
}

#[tokio::test(start_paused = true)]
async fn an_unmerge_splits_the_state_and_reports_the_exit() {
    let node = node();
    node.define(
        DefinitionKind::Audience,
        json!({"key": "buyers", "name": "Buyers", "condition": {"performed": {
            "event": "Order Completed", "count": {"op": ">=", "value": 2}}}}),
    );
    node.settle().await;
    node.send(json!({"type": "track", "event": "Order Completed", "anonymousId": "anon-1"}))
        .await;
    node.order("cat").await;
    node.send(json!({"type": "identify", "userId": "cat", "anonymousId": "anon-1"}))
        .await;
    node.settle().await;
    assert_eq!(node.members("buyers"), ["cat"]);

    // The merge was wrong (a shared computer): splitting it gives each profile its own
    // history again, one order each: the merged profile leaves, neither part is in.
    let store = &node.profiles.store;
    let cat = store
        .lookup(
            &node.workspace,
            sluice_identity::Collection::Users,
            &sluice_identity::Identifier::new("user_id", "cat"),
        )
        .unwrap()
        .unwrap();
    let rules =
        sluice_identity::Rules::compile(&node.state.identity_settings(&node.workspace).unwrap())
            .unwrap();
    let merge = store.merges_after(&node.workspace, 0, 10).unwrap()[0].id;
    let unmerged = store.split_merge(&cat, merge, &rules).unwrap();
    assert_eq!(unmerged.profiles.len(), 2, "{unmerged:?}");
    node.settle().await;
    assert!(node.members("buyers").is_empty());
    let changes = node.changes("buyers");
    let kinds: Vec<&str> = changes.iter().map(|(_, kind)| kind.as_str()).collect();
    assert_eq!(kinds, ["entered", "exited"]);
    assert_eq!(
        changes[0].0, changes[1].0,
        "the profile that entered leaves"
    );
    assert_eq!(node.recorded(), [pair_n("?", 1), pair_n("cat", 1)]);
    // Applied once: another pass changes nothing.
    node.settle().await;
    assert_eq!(node.changes("buyers").len(), 2);
}

impl Node {
    /// Recorded events in the audience history, per profile (by user), in profile order.
    fn recorded(&self) -> Vec<(String, usize)> {
        let histories = self
            .audiences
            .store
            .histories_after(&self.workspace, 0, 100, 1_000)
            .unwrap();
        let mut out = Vec::new();
        for history in histories {
            let mut count = 0;
            let mut rest: &[u8] = &history.records;
            while !rest.is_empty() {
                let bytes = rest;
                sluice_audience::recorded::read(bytes, &mut rest).unwrap();
                count += 1;
            }
            out.push((self.user_of(history.profile_id), count));
        }
        out.sort();
        out
    }
}

#[tokio::test(start_paused = true)]
async fn the_history_is_recorded_from_the_first_definition_and_dropped_after_the_last() {
    let node = node();
    node.order("ann").await;
    node.send(json!({"type": "identify", "userId": "ann", "traits": {"plan": "pro"}}))
        .await;
    node.order("bob").await;
    node.settle().await;
    assert!(
        node.recorded().is_empty(),
        "nothing is copied while nothing reads it"
    );

    // The first definition's backfill records what was logged (track events, not identifies),
    // and the consumer records what comes next.
    node.define(
        DefinitionKind::Audience,
        json!({"key": "buyers", "name": "Buyers", "condition": {"performed": {
            "event": "Order Completed", "count": {"op": ">=", "value": 2}}}}),
    );
    node.settle().await;
    assert_eq!(node.recorded(), [pair_n("ann", 1), pair_n("bob", 1)]);
    node.order("bob").await;
    node.settle().await;
    assert_eq!(node.recorded(), [pair_n("ann", 1), pair_n("bob", 2)]);
    assert_eq!(node.members("buyers"), ["bob"]);

    // Erasing a person's profile rows erases their history too.
    let bob = node
        .profiles
        .store
        .lookup(
            &node.workspace,
            sluice_identity::Collection::Users,
            &sluice_identity::Identifier::new("user_id", "bob"),
        )
        .unwrap()
        .unwrap()
        .id;
    assert!(
        node.audiences
            .store
            .find_person(&node.workspace, &[bob])
            .unwrap()
            >= 2
    );
    node.audiences
        .store
        .erase_person(&node.workspace, &[bob])
        .unwrap();
    assert_eq!(node.recorded(), [pair_n("ann", 1)]);

    // With no definition left, no copy is kept.
    node.state
        .delete_definition(&node.workspace, DefinitionKind::Audience, "buyers")
        .unwrap();
    node.settle().await;
    assert!(node.recorded().is_empty());
    assert_eq!(
        node.audiences
            .store
            .history_cursor(&node.workspace, &node.source)
            .unwrap(),
        0
    );
}

#[tokio::test(start_paused = true)]
async fn a_backfill_follows_merges_and_unmerges_the_consumer_has_not_seen() {
    let node = node();
    node.define(
        DefinitionKind::Audience,
        json!({"key": "buyers", "name": "Buyers", "condition": {"performed": {
            "event": "Order Completed", "count": {"op": ">=", "value": 2}}}}),
    );
    node.settle().await;
    node.send(json!({"type": "track", "event": "Order Completed", "anonymousId": "anon-1"}))
        .await;
    node.order("cat").await;
    node.settle().await;
    assert_eq!(node.recorded(), [pair_n("?", 1), pair_n("cat", 1)]);

    // The identify merges the two profiles; the definition changes before the audience
    // consumer has followed the merge, so the backfill must.
    node.send(json!({"type": "identify", "userId": "cat", "anonymousId": "anon-1"}))
        .await;
    while node.profiles.pass().await.unwrap() {}
    node.define(
        DefinitionKind::Audience,
        json!({"key": "buyers", "name": "Buyers", "condition": {"performed": {
            "event": "Order Completed", "count": {"op": ">=", "value": 2},
            "within": {"days": 30}}}}),
    );
    node.settle().await;
    assert_eq!(node.recorded(), [pair_n("cat", 2)]);
    assert_eq!(node.members("buyers"), ["cat"]);
    assert_eq!(node.changes("buyers"), [pair("cat", "entered")]);

    // The merge is split while the definition changes again: each part gets its own events
    // back, and the backfill reports the exit.
    let store = &node.profiles.store;
    let cat = store
        .lookup(
            &node.workspace,
            sluice_identity::Collection::Users,
            &sluice_identity::Identifier::new("user_id", "cat"),
        )
        .unwrap()
        .unwrap();
    let rules =
        sluice_identity::Rules::compile(&node.state.identity_settings(&node.workspace).unwrap())
            .unwrap();
    let merge = store.merges_after(&node.workspace, 0, 10).unwrap()[0].id;
    store.split_merge(&cat, merge, &rules).unwrap();
    node.define(
        DefinitionKind::Audience,
        json!({"key": "buyers", "name": "Buyers", "condition": {"performed": {
            "event": "Order Completed", "count": {"op": ">=", "value": 2},
            "within": {"days": 60}}}}),
    );
    node.settle().await;
    assert_eq!(node.recorded(), [pair_n("?", 1), pair_n("cat", 1)]);
    assert!(node.members("buyers").is_empty());
    let changes = node.changes("buyers");
    let kinds: Vec<&str> = changes.iter().map(|(_, kind)| kind.as_str()).collect();
    assert_eq!(kinds, ["entered", "exited"]);
    assert_eq!(
        changes[0].0, changes[1].0,
        "the profile that entered leaves"
    );

    // Lowered to one order: each part enters on its own event.
    node.define(
        DefinitionKind::Audience,
        json!({"key": "buyers", "name": "Buyers", "condition": {"performed": {
            "event": "Order Completed"}}}),
    );
    node.settle().await;
    assert_eq!(node.members("buyers"), ["?", "cat"]);
}

fn pair_n(user: &str, n: usize) -> (String, usize) {
    (user.to_owned(), n)
}
