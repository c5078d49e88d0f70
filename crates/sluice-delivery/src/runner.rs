//! One destination's delivery task: read its sources from their cursors, drop what the
//! destination must not get, send the rest through the adapter, and settle every event as
//! delivered, retried later or dead-lettered.
//!
//! When the tool refuses the destination's credentials ([`Verdict::Unauthorized`]) the runner
//! pauses: the events of that answer stay unfinished (neither dead-lettered nor dropped, so the
//! cursors wait before them), no further request is sent, and [`Status::paused`] says why.
//! Only a new runner, started when the destination's credentials change, sends again.
//!
//! The task owns its [`Window`]; requests run concurrently (up to `max_in_flight`) on the
//! destination's own HTTP client. Nothing here is shared with another destination but the log
//! (read-only) and the dead-letter store, so a slow or failing tool slows only itself.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_destinations::audience::member::into_removal;
use sluice_destinations::{Adapter, Outgoing, Verdict};
use sluice_privacy::consent::{self, DestinationConsent};
use sluice_privacy::pii::{self, Applied, Rules};
use sluice_store::{
    DeadLetter, Delivered, DeliveryStore, EventLog, NewDeadLetter, NewEvent, Replay, ReplayState,
    Seq, SourceScope, StoredEvent, WorkspaceId,
};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;

use crate::backoff::{Backoff, random_unit};
use crate::http::{Client, TransportError};
use crate::metrics as m;
use crate::window::{Key, Window};

/// Drops or rewrites an event for one destination (destination filters); `None` drops it.
pub type EventFilter = Arc<dyn Fn(Value) -> Option<Value> + Send + Sync>;

/// How a destination is delivered to.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Most requests in flight at once.
    pub max_in_flight: usize,
    /// Most requests started per second (`None`: no limit).
    pub rate_limit: Option<f64>,
    /// An event is dead-lettered after this many failed attempts...
    pub max_attempts: u32,
    /// ... or once it has been failing for this long.
    pub max_age: Duration,
    /// Time limit of one request.
    pub request_timeout: Duration,
    /// Most unfinished events held in memory; reading pauses when full.
    pub window: usize,
    pub backoff: Backoff,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_in_flight: 8,
            rate_limit: None,
            max_attempts: 25,
            max_age: Duration::from_secs(4 * 3600),
            request_timeout: Duration::from_secs(10),
            window: 10_000,
            backoff: Backoff::default(),
        }
    }
}

/// Everything the engine needs to deliver to one destination instance.
#[derive(Clone)]
pub struct DestinationSpec {
    pub id: String,
    pub workspace_id: WorkspaceId,
    /// The name that switches the destination on or off in a message's `integrations`.
    pub integration_name: String,
    pub sources: Vec<String>,
    /// The output sources of the ad-platform audience syncs among `sources`: a person whom
    /// consent keeps away is removed from the audience (the event rewritten as a removal),
    /// not skipped, so a withdrawal reaches the platform.
    pub list_sources: Vec<String>,
    pub adapter: Arc<dyn Adapter>,
    pub filter: Option<EventFilter>,
    pub consent: Consent,
    /// The PII rules applied to each event just before it is sent, when any class is not
    /// allowed as is.
    pub pii: Option<PiiDelivery>,
    pub options: Options,
}

/// A destination's PII rules (see `sluice_privacy::pii::policy`) and the workspace's key for
/// keyed hashes.
#[derive(Clone)]
pub struct PiiDelivery {
    pub rules: Rules,
    pub hash_key: Arc<[u8]>,
}

/// Whether an event's person opted out of sale and sharing.
pub type OptedOut = Arc<dyn Fn(&NewEvent) -> bool + Send + Sync>;

/// The consent rules a destination applies before anything else (see
/// `sluice_privacy::consent`).
#[derive(Clone, Default)]
pub struct Consent {
    pub destination: DestinationConsent,
    /// The workspace requires a consent object for categorised destinations.
    pub require_consent: bool,
    /// Asked of advertising destinations only.
    pub opted_out: Option<OptedOut>,
}

/// The consumer name of a destination's cursors in the log.
pub fn consumer_name(destination_id: &str) -> String {
    format!("destination:{destination_id}")
}

/// One request, as the destination's recent-attempts view shows it (no credentials, no body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub at_ms: i64,
    pub message_ids: Vec<String>,
    /// Scheme, host and port of the request (its path may hold a credential).
    pub target: String,
    pub body_bytes: usize,
    pub status: Option<u16>,
    pub duration_ms: u64,
    /// `delivered`, `retry`, `rejected`, `partial`, `unauthorized` or `transport_error`.
    pub outcome: &'static str,
    /// The reason, or the start of the answer.
    pub detail: String,
}

/// What a destination is doing, for the admin API, `/ready` and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub running: bool,
    /// Events read and not yet finished.
    pub unfinished: usize,
    pub in_flight_requests: usize,
    /// When the oldest unfinished event was received.
    pub oldest_unfinished_ms: Option<i64>,
    pub last_delivery_ms: Option<i64>,
    pub last_error: Option<String>,
    pub delivered: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    pub filtered: u64,
    /// Why the destination sends nothing: the tool refused its credentials (the reason the
    /// adapter read in the answer). Its events wait, unfinished, until the destination is
    /// started again with other credentials.
    pub paused: Option<String>,
    /// The latest attempts, newest last.
    pub attempts: VecDeque<Attempt>,
}

/// How many attempts [`Status::attempts`] keeps.
pub const ATTEMPTS_KEPT: usize = 100;

/// What the runners share.
pub struct Shared {
    pub log: Arc<dyn EventLog>,
    pub store: Arc<DeliveryStore>,
}

/// Where a window stream's events come from.
enum Stream {
    /// A connected source, read from the destination's cursor.
    Source { scope: usize },
    /// A replay job over a source.
    Replay {
        scope: SourceScope,
        job: Box<Replay>,
        /// Every event up to `job.replay.last_seq` has been read.
        read_all: bool,
        saved: Seq,
    },
    /// Dead letters being sent again (sequence numbers are dead-letter ids).
    DeadLetters,
}

/// An event in the window.
struct Item {
    event: Arc<StoredEvent>,
    /// The JSON to send when a filter changed the event (else the stored body is sent).
    rewritten: Option<String>,
    /// The parsed event, parsed only when something needs it (a filter, the `integrations`
    /// object, or an adapter that maps fields).
    value: OnceLock<Value>,
    /// The dead letter this event was taken from, when it is being sent again.
    dead_letter: Option<i64>,
}

type Taken = (Key, Arc<Item>);

struct Sent {
    events: Vec<Taken>,
    result: Result<sluice_destinations::HttpResponse, TransportError>,
    started: Instant,
    target: String,
    body_bytes: usize,
}

/// An event on its way to the dead letters.
struct Letter {
    key: Key,
    item: Arc<Item>,
    reason: String,
    /// The tool's HTTP status, when it answered.
    status: Option<u16>,
    attempts: u32,
}

/// An event's fate after an answer.
enum Settle {
    Delivered,
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    DeadLetter {
        reason: String,
    },
    /// The tool refused the credentials: keep the event for a runner with new ones.
    Hold {
        reason: String,
    },
}

struct Runner {
    spec: DestinationSpec,
    shared: Arc<Shared>,
    status: Arc<Mutex<Status>>,
    client: Client,
    scopes: Vec<SourceScope>,
    /// One per window stream, in the window's order; the sources come first.
    streams: Vec<Stream>,
    /// Replay jobs already taken up.
    known_replays: HashSet<i64>,
    /// Dead letters being sent again.
    retrying: HashSet<i64>,
    consumer: String,
    window: Window<Arc<Item>>,
    acked: Vec<Seq>,
    /// Whether a read of the sources may find events.
    more_to_read: bool,
    sends: JoinSet<Sent>,
    limiter: RateLimiter,
    /// Requests in a row that failed in a way worth retrying (the tool down or refusing load).
    failing_streak: u32,
    /// While the tool is failing, nothing new is sent before this time, then one probe.
    paused_until: Option<Instant>,
    /// Deliveries not yet in the ledger (written before each cursor save).
    ledger: Vec<Delivered>,
    /// Set when the tool refused the credentials: nothing more is sent by this runner.
    unauthorized: Option<String>,
}

/// Most unsaved ledger entries kept after a failed save (beyond, the times are lost, not the
/// deliveries).
const MAX_UNSAVED_LEDGER: usize = 100_000;

/// Requests failing in a row before the destination as a whole backs off (one probe at a time,
/// spaced by the same backoff), so a dead tool is not hammered and its neighbours keep the CPU.
const PAUSE_AFTER_FAILURES: u32 = 3;

/// Runs until `stop` turns true, then finishes the requests in flight and saves the cursors.
pub async fn run(
    spec: DestinationSpec,
    shared: Arc<Shared>,
    status: Arc<Mutex<Status>>,
    mut stop: watch::Receiver<bool>,
) {
    let id = spec.id.clone();
    let mut runner = match Runner::start(spec, shared, status).await {
        Ok(runner) => runner,
        Err(error) => {
            tracing::error!(destination = %id, %error, "destination could not start");
            return;
        }
    };
    let mut live = runner.shared.log.subscribe();
    let mut ack_tick = tokio::time::interval(Duration::from_millis(200));
    ack_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reread_tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        if *stop.borrow() {
            break;
        }
        runner.read().await;
        runner.dispatch().await;
        runner.publish();
        let now = Instant::now();
        let wake = runner.next_wake(now);
        let listen = !runner.more_to_read && runner.window.len() < runner.spec.options.window;
        tokio::select! {
            Some(joined) = runner.sends.join_next(), if !runner.sends.is_empty() => {
                if let Ok(sent) = joined {
                    runner.settle(sent).await;
                }
            }
            received = live.recv(), if listen => runner.note_live(received, &mut live),
            _ = ack_tick.tick() => runner.ack().await,
            _ = reread_tick.tick() => {
                runner.more_to_read = true;
                runner.poll_store().await;
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = stop.changed() => {}
        }
    }
    // Stopping: no new requests; the ones in flight end within their time limit.
    while let Some(joined) = runner.sends.join_next().await {
        if let Ok(sent) = joined {
            runner.settle(sent).await;
        }
    }
    runner.ack().await;
    runner.publish();
    if let Ok(mut status) = runner.status.lock() {
        status.running = false;
    }
}

impl Runner {
    async fn start(
        spec: DestinationSpec,
        shared: Arc<Shared>,
        status: Arc<Mutex<Status>>,
    ) -> Result<Runner, String> {
        let consumer = consumer_name(&spec.id);
        let scopes: Vec<SourceScope> = spec
            .sources
            .iter()
            .map(|source| SourceScope {
                workspace_id: spec.workspace_id.clone(),
                source_id: source.clone(),
            })
            .collect();
        let mut cursors = Vec::with_capacity(scopes.len());
        for scope in &scopes {
            let cursor = shared
                .log
                .cursor(scope, &consumer)
                .await
                .map_err(|e| e.to_string())?;
            cursors.push(cursor);
        }
        let client = Client::new(spec.options.request_timeout).map_err(|e| e.to_string())?;
        let streams = (0..scopes.len())
            .map(|scope| Stream::Source { scope })
            .collect();
        if let Ok(mut status) = status.lock() {
            status.running = true;
        }
        Ok(Runner {
            limiter: RateLimiter::new(spec.options.rate_limit),
            failing_streak: 0,
            paused_until: None,
            ledger: Vec::new(),
            unauthorized: None,
            window: Window::new(&cursors),
            acked: cursors,
            spec,
            shared,
            status,
            client,
            scopes,
            streams,
            consumer,
            more_to_read: true,
            sends: JoinSet::new(),
            known_replays: HashSet::new(),
            retrying: HashSet::new(),
        })
    }

    fn label(&self) -> String {
        self.spec.id.clone()
    }

    /// Reads the sources while the window has room and they have events.
    async fn read(&mut self) {
        const READ_BATCH: usize = 1_000;
        while self.more_to_read {
            let room = self.spec.options.window.saturating_sub(self.window.len());
            if room == 0 {
                return;
            }
            let mut found_any = false;
            for stream in 0..self.streams.len() {
                let limit = room.min(READ_BATCH);
                let scope = match &self.streams[stream] {
                    Stream::Source { scope } => self.scopes[*scope].clone(),
                    Stream::Replay {
                        scope,
                        read_all: false,
                        ..
                    } => scope.clone(),
                    _ => continue,
                };
                let events = match self
                    .shared
                    .log
                    .read(&scope, self.window.read_to(stream), limit)
                    .await
                {
                    Ok(events) => events,
                    Err(error) => {
                        tracing::warn!(destination = %self.spec.id, %error, "reading the log failed");
                        self.more_to_read = false;
                        return;
                    }
                };
                let full = events.len() == limit;
                found_any |= full;
                if let Stream::Replay { job, read_all, .. } = &mut self.streams[stream] {
                    let last = job.replay.last_seq.unwrap_or(0);
                    let (from, to) = (job.replay.from_ms, job.replay.to_ms);
                    if !full || events.last().is_some_and(|e| e.seq >= last) {
                        *read_all = true;
                    }
                    let mut admitted = 0;
                    for event in events {
                        if event.seq > last {
                            break;
                        }
                        let received = event.event.received_at_ms;
                        let in_range = from.is_none_or(|from| received >= from)
                            && to.is_none_or(|to| received < to);
                        if in_range {
                            self.admit(stream, event, None);
                            admitted += 1;
                        } else {
                            self.window.skip(stream, event.seq);
                        }
                    }
                    if let Stream::Replay { job, .. } = &mut self.streams[stream] {
                        job.events += admitted;
                    }
                    continue;
                }
                for event in events {
                    self.admit(stream, event, None);
                }
            }
            if !found_any {
                self.more_to_read = false;
            }
        }
    }

    /// Takes one event read from the log into the window, or drops it at once.
    fn admit(&mut self, stream: usize, event: StoredEvent, dead_letter: Option<i64>) {
        let seq = match dead_letter {
            Some(id) => id,
            None => event.seq,
        };
        let body = &event.event.body;
        // Parsing is the costliest step per event: skipped when neither the `integrations`
        // object nor a filter needs it (an adapter may still parse, e.g. to map fields).
        let consent = &self.spec.consent;
        let needs_value = self.spec.filter.is_some()
            || self.spec.pii.is_some()
            || consent::applies(&consent.destination)
            || body.contains("\"integrations\"");
        let mut value = None;
        let mut rewritten = None;
        if needs_value {
            let mut parsed: Value = match serde_json::from_str(body) {
                Ok(parsed) => parsed,
                Err(_) => {
                    // The log only holds bodies that parsed at ingestion; nothing to send.
                    self.window.skip(stream, seq);
                    return;
                }
            };
            // Consent comes first; the integrations object can still keep a consented event
            // away.
            if consent::applies(&consent.destination) {
                let opted_out = consent.destination.advertising
                    && consent
                        .opted_out
                        .as_ref()
                        .is_some_and(|opted_out| opted_out(&event.event));
                let decided = consent::check(
                    &parsed,
                    &consent.destination,
                    consent.require_consent,
                    opted_out,
                );
                if let Err(refusal) = decided {
                    let list = self.spec.list_sources.contains(&event.event.source_id);
                    if !(list && into_removal(&mut parsed)) {
                        self.window.skip(stream, seq);
                        self.count_filtered(refusal.as_str());
                        return;
                    }
                    rewritten = Some(parsed.to_string());
                }
            }
            if !enabled_by_integrations(&parsed, &self.spec.integration_name) {
                self.window.skip(stream, seq);
                self.count_filtered("integrations");
                return;
            }
            value = Some(parsed);
        }
        if let Some(filter) = &self.spec.filter
            && let Some(parsed) = value.take()
        {
            match filter(parsed) {
                Some(kept) => {
                    rewritten = Some(kept.to_string());
                    value = Some(kept);
                }
                None => {
                    self.window.skip(stream, seq);
                    self.count_filtered("filter");
                    return;
                }
            }
        }
        // PII rules come last: filters and consent see the event as it was logged.
        if let (Some(pii), Some(parsed)) = (&self.spec.pii, value.as_mut()) {
            match pii::apply(&pii.rules, parsed, &pii.hash_key) {
                Applied::Unchanged => {}
                Applied::Changed => rewritten = Some(parsed.to_string()),
                Applied::Blocked { .. } => {
                    self.window.skip(stream, seq);
                    self.count_filtered("pii");
                    return;
                }
            }
        }
        let cell = OnceLock::new();
        if let Some(value) = value {
            let _ = cell.set(value);
        }
        let person = person_of(&event);
        let item = Arc::new(Item {
            event: Arc::new(event),
            rewritten,
            value: cell,
            dead_letter,
        });
        self.window.push(stream, seq, person, item);
    }

    fn count_filtered(&self, why: &'static str) {
        metrics::counter!(m::EVENTS, "destination" => self.label(), "outcome" => "filtered", "reason" => why)
            .increment(1);
        if let Ok(mut status) = self.status.lock() {
            status.filtered += 1;
        }
    }

    /// Takes up replay jobs and dead letters asked to be sent again (the admin API and the CLI
    /// ask through the store).
    async fn poll_store(&mut self) {
        let store = Arc::clone(&self.shared.store);
        let (workspace, id) = (self.spec.workspace_id.clone(), self.spec.id.clone());
        let found = tokio::task::spawn_blocking(move || {
            let replays = store.replays(&workspace, &id, true)?;
            let letters = store.dead_letters_to_retry(&workspace, &id, 1_000)?;
            Ok::<_, sluice_store::StoreError>((replays, letters))
        })
        .await;
        let (replays, letters) = match found {
            Ok(Ok(found)) => found,
            Ok(Err(error)) => {
                tracing::warn!(destination = %self.spec.id, %error, "reading replays failed");
                return;
            }
            Err(_) => return,
        };
        // Oldest first, as they were asked for.
        for job in replays.into_iter().rev() {
            if self.known_replays.insert(job.id) {
                self.start_replay(job).await;
            }
        }
        let fresh: Vec<DeadLetter> = letters
            .into_iter()
            .filter(|letter| !self.retrying.contains(&letter.id))
            .collect();
        self.retry_letters(fresh);
    }

    async fn start_replay(&mut self, mut job: Replay) {
        let scope = SourceScope {
            workspace_id: job.replay.workspace_id.clone(),
            source_id: job.replay.source_id.clone(),
        };
        if job.replay.last_seq.is_none() {
            // It ends where the log ends now.
            let last = match self.shared.log.latest(&scope, 1).await {
                Ok(events) => events.last().map_or(0, |event| event.seq),
                Err(error) => {
                    tracing::warn!(destination = %self.spec.id, %error, "starting a replay failed");
                    self.known_replays.remove(&job.id);
                    return;
                }
            };
            let store = Arc::clone(&self.shared.store);
            let id = job.id;
            let saved = tokio::task::spawn_blocking(move || store.set_replay_end(id, last)).await;
            if !matches!(saved, Ok(Ok(()))) {
                self.known_replays.remove(&job.id);
                return;
            }
            job.replay.last_seq = Some(last);
        }
        let stream = self.window.add_stream(job.position);
        debug_assert_eq!(stream, self.streams.len());
        self.streams.push(Stream::Replay {
            scope,
            saved: job.position,
            job: Box::new(job),
            read_all: false,
        });
        self.more_to_read = true;
    }

    /// Sends dead letters again; each is removed once delivered, or replaced by a new dead
    /// letter if it fails again.
    fn retry_letters(&mut self, letters: Vec<DeadLetter>) {
        if letters.is_empty() {
            return;
        }
        let stream = self.dead_letter_stream();
        for letter in letters {
            let id = letter.id;
            self.retrying.insert(id);
            let letter = letter.letter;
            let event = StoredEvent {
                seq: letter.seq,
                event: NewEvent {
                    workspace_id: letter.workspace_id,
                    source_id: letter.source_id,
                    message_id: letter.message_id,
                    user_id: letter.user_id,
                    anonymous_id: letter.anonymous_id,
                    received_at_ms: letter.received_at_ms,
                    body: letter.body,
                },
            };
            self.admit(stream, event, Some(id));
        }
    }

    /// The window stream of dead letters sent again, added on first use.
    fn dead_letter_stream(&mut self) -> usize {
        if let Some(index) = self
            .streams
            .iter()
            .position(|stream| matches!(stream, Stream::DeadLetters))
        {
            return index;
        }
        self.streams.push(Stream::DeadLetters);
        self.window.add_stream(0)
    }

    /// Starts requests while the concurrency and rate limits allow.
    async fn dispatch(&mut self) {
        let now = Instant::now();
        let max_in_flight = if self.failing_streak >= PAUSE_AFTER_FAILURES {
            1
        } else {
            self.spec.options.max_in_flight.max(1)
        };
        if self.paused_until.is_some_and(|until| until > now) || self.unauthorized.is_some() {
            return;
        }
        while self.sends.len() < max_in_flight {
            if !self.window.has_ready(now) || !self.limiter.try_take(now) {
                return;
            }
            let taken = self
                .window
                .take_ready(now, self.spec.adapter.max_batch().max(1));
            if taken.is_empty() {
                return;
            }
            let invalid = self.plan_and_send(taken, now);
            if !invalid.is_empty() {
                // Events the tool can never take: dead letters without an attempt.
                let letters = invalid
                    .into_iter()
                    .map(|((key, item), reason)| Letter {
                        key,
                        item,
                        reason,
                        status: None,
                        attempts: 0,
                    })
                    .collect();
                self.dead_letter(letters, &None).await;
            }
        }
    }

    /// Sends the requests the adapter plans for `taken`; returns the events it refused.
    fn plan_and_send(&mut self, taken: Vec<Taken>, now: Instant) -> Vec<(Taken, String)> {
        let outgoing: Vec<Outgoing<'_>> = taken
            .iter()
            .map(|(_, item)| {
                let json = item.rewritten.as_deref().unwrap_or(&item.event.event.body);
                Outgoing::new(json, &item.value)
            })
            .collect();
        let plan = self.spec.adapter.build(&outgoing);
        let mut covered = vec![false; taken.len()];
        for (index, _reason) in &plan.unsupported {
            if let Some((key, _)) = taken.get(*index) {
                covered[*index] = true;
                self.window.finish(*key);
                self.count_filtered("unsupported");
            }
        }
        let mut invalid = Vec::new();
        for (index, reason) in &plan.invalid {
            if let Some(event) = taken.get(*index) {
                covered[*index] = true;
                invalid.push((event.clone(), reason.clone()));
            }
        }
        for planned in plan.requests {
            let mut events = Vec::with_capacity(planned.events.len());
            for index in &planned.events {
                if let Some(event) = taken.get(*index) {
                    covered[*index] = true;
                    events.push(event.clone());
                }
            }
            let client = self.client.clone();
            let timeout = self.spec.options.request_timeout;
            let target = origin_of(&planned.request.url);
            let body_bytes = planned.request.body.len();
            self.sends.spawn(async move {
                let result = client.send(planned.request, timeout).await;
                Sent {
                    events,
                    result,
                    started: now,
                    target,
                    body_bytes,
                }
            });
        }
        for (index, event) in taken.iter().enumerate() {
            if !covered[index] {
                invalid.push((event.clone(), "the adapter left the event out".into()));
            }
        }
        invalid
    }

    /// Applies an answer to every event of its request.
    async fn settle(&mut self, sent: Sent) {
        let now = Instant::now();
        let count = sent.events.len();
        let (verdicts, status_code, detail, outcome) = match &sent.result {
            Ok(response) => {
                let verdict = self.spec.adapter.classify(response, count);
                let detail = sluice_destinations::contract::excerpt(&response.body);
                let outcome = match &verdict {
                    Verdict::Delivered => "delivered",
                    Verdict::Retry { .. } => "retry",
                    Verdict::Reject { .. } => "rejected",
                    Verdict::Unauthorized { .. } => "unauthorized",
                    Verdict::Partial(_) => "partial",
                };
                (
                    per_event(verdict, count),
                    Some(response.status),
                    detail,
                    outcome,
                )
            }
            Err(error) => {
                let reason = error.to_string();
                let settle = (0..count)
                    .map(|_| Settle::Retry {
                        after: None,
                        reason: reason.clone(),
                    })
                    .collect();
                (settle, None, reason, "transport_error")
            }
        };
        self.note_outcome(outcome, &verdicts, now);
        metrics::counter!(m::REQUESTS, "destination" => self.label(), "result" => outcome)
            .increment(1);
        let mut letters = Vec::new();
        let mut delivered_letters = Vec::new();
        let now_ms = unix_ms();
        for ((key, item), settle) in sent.events.iter().zip(verdicts) {
            match settle {
                Settle::Delivered => {
                    self.window.finish(*key);
                    if let Some(id) = item.dead_letter {
                        delivered_letters.push(id);
                    }
                    self.ledger.push(Delivered {
                        source_id: item.event.event.source_id.clone(),
                        seq: item.event.seq,
                        delivered_at_ms: now_ms,
                    });
                    let latency = (now_ms - item.event.event.received_at_ms).max(0) as f64 / 1e3;
                    metrics::histogram!(m::LATENCY, "destination" => self.label()).record(latency);
                    metrics::counter!(m::EVENTS, "destination" => self.label(), "outcome" => "delivered")
                        .increment(1);
                    if let Ok(mut status) = self.status.lock() {
                        status.delivered += 1;
                        status.last_delivery_ms = Some(now_ms);
                    }
                }
                Settle::Retry { after, reason } => {
                    let Some(failures) = self.window.fail(*key, now) else {
                        continue;
                    };
                    let options = &self.spec.options;
                    if failures.count >= options.max_attempts
                        || now.duration_since(failures.first) >= options.max_age
                    {
                        let reason = format!("gave up after {} attempts: {reason}", failures.count);
                        letters.push(Letter {
                            key: *key,
                            item: item.clone(),
                            reason,
                            status: status_code,
                            attempts: failures.count,
                        });
                        continue;
                    }
                    let wait = options.backoff.wait(failures.count, after, random_unit());
                    self.window.retry_at(*key, now + wait);
                    metrics::counter!(m::RETRIES, "destination" => self.label()).increment(1);
                    if let Ok(mut status) = self.status.lock() {
                        status.retried += 1;
                        status.last_error = Some(reason);
                    }
                }
                Settle::DeadLetter { reason } => {
                    let attempts = self.window.fail(*key, now).map_or(1, |f| f.count);
                    letters.push(Letter {
                        key: *key,
                        item: item.clone(),
                        reason,
                        status: status_code,
                        attempts,
                    });
                }
                Settle::Hold { reason } => {
                    // Not a failure of the event: it stays unfinished, and is sent again only
                    // by a runner with other credentials.
                    self.window.retry_at(*key, now);
                    self.pause_unauthorized(reason);
                }
            }
        }
        self.record_attempt(&sent, status_code, detail, outcome, now);
        self.dead_letter(letters, &sent_response_excerpt(&sent))
            .await;
        self.forget_dead_letters(delivered_letters).await;
    }

    /// Stops sending: the tool refused the destination's credentials. Logged once, with the
    /// adapter's reason (which never holds a credential).
    fn pause_unauthorized(&mut self, reason: String) {
        if self.unauthorized.is_some() {
            return;
        }
        tracing::warn!(
            destination = %self.spec.id,
            %reason,
            "the tool refused the destination's credentials: delivery paused until they change"
        );
        if let Ok(mut status) = self.status.lock() {
            status.paused = Some(reason.clone());
            status.last_error = Some(format!("the tool refused the credentials: {reason}"));
        }
        self.unauthorized = Some(reason);
    }

    /// Removes dead letters whose events were delivered (or dead-lettered again) on a retry.
    async fn forget_dead_letters(&mut self, ids: Vec<i64>) {
        if ids.is_empty() {
            return;
        }
        for id in &ids {
            self.retrying.remove(id);
        }
        let store = Arc::clone(&self.shared.store);
        let workspace = self.spec.workspace_id.clone();
        let destination = self.spec.id.clone();
        let removed = tokio::task::spawn_blocking(move || {
            store.remove_dead_letters(&workspace, &destination, &ids)
        })
        .await;
        if !matches!(removed, Ok(Ok(_))) {
            tracing::warn!(destination = %self.spec.id, "removing retried dead letters failed");
        }
    }

    /// Tracks whether the tool as a whole is failing: a request that delivered anything ends
    /// the streak; one whose every event is to be retried extends it, and from
    /// [`PAUSE_AFTER_FAILURES`] on the destination waits (its backoff, or the tool's
    /// `Retry-After`) before its next request.
    fn note_outcome(&mut self, outcome: &str, settles: &[Settle], now: Instant) {
        if settles.iter().any(|s| matches!(s, Settle::Delivered)) {
            self.failing_streak = 0;
            self.paused_until = None;
            return;
        }
        if !(outcome == "retry" || outcome == "transport_error") {
            return;
        }
        self.failing_streak += 1;
        if self.failing_streak >= PAUSE_AFTER_FAILURES {
            let retry_after = settles.iter().find_map(|s| match s {
                Settle::Retry { after, .. } => *after,
                _ => None,
            });
            let failures = self.failing_streak - PAUSE_AFTER_FAILURES + 1;
            let wait = self
                .spec
                .options
                .backoff
                .wait(failures, retry_after, random_unit());
            self.paused_until = Some(now + wait);
        }
    }

    fn record_attempt(
        &self,
        sent: &Sent,
        status_code: Option<u16>,
        detail: String,
        outcome: &'static str,
        now: Instant,
    ) {
        if sent.events.is_empty() {
            return;
        }
        let attempt = Attempt {
            at_ms: unix_ms(),
            message_ids: sent
                .events
                .iter()
                .map(|(_, item)| item.event.event.message_id.clone())
                .collect(),
            target: sent.target.clone(),
            body_bytes: sent.body_bytes,
            status: status_code,
            duration_ms: now.duration_since(sent.started).as_millis() as u64,
            outcome,
            detail,
        };
        if let Ok(mut status) = self.status.lock() {
            if status.attempts.len() >= ATTEMPTS_KEPT {
                status.attempts.pop_front();
            }
            status.attempts.push_back(attempt);
        }
    }

    /// Saves dead letters, then finishes their events (so a cursor never passes an event that
    /// is neither delivered nor saved). If saving fails they are retried in a minute.
    async fn dead_letter(&mut self, letters: Vec<Letter>, response: &Option<String>) {
        if letters.is_empty() {
            return;
        }
        let now_ms = unix_ms();
        let rows: Vec<NewDeadLetter> = letters
            .iter()
            .map(|letter| {
                let event = &letter.item.event.event;
                NewDeadLetter {
                    workspace_id: self.spec.workspace_id.clone(),
                    destination_id: self.spec.id.clone(),
                    source_id: event.source_id.clone(),
                    seq: letter.item.event.seq,
                    message_id: event.message_id.clone(),
                    user_id: event.user_id.clone(),
                    anonymous_id: event.anonymous_id.clone(),
                    received_at_ms: event.received_at_ms,
                    body: event.body.clone(),
                    reason: letter.reason.clone(),
                    status: letter.status,
                    response: response.clone(),
                    attempts: letter.attempts,
                    failed_at_ms: now_ms,
                }
            })
            .collect();
        let store = Arc::clone(&self.shared.store);
        let saved = tokio::task::spawn_blocking(move || store.add_dead_letters(&rows)).await;
        match saved {
            Ok(Ok(_)) => {
                let mut replaced = Vec::new();
                for letter in &letters {
                    self.window.finish(letter.key);
                    replaced.extend(letter.item.dead_letter);
                }
                self.forget_dead_letters(replaced).await;
                metrics::counter!(m::EVENTS, "destination" => self.label(), "outcome" => "dead_lettered")
                    .increment(letters.len() as u64);
                if let Ok(mut status) = self.status.lock() {
                    status.dead_lettered += letters.len() as u64;
                    if let Some(letter) = letters.last() {
                        status.last_error = Some(letter.reason.clone());
                    }
                }
            }
            failed => {
                tracing::error!(destination = %self.spec.id, error = ?failed.err(), "saving dead letters failed");
                let later = Instant::now() + Duration::from_secs(60);
                for letter in &letters {
                    self.window.retry_at(letter.key, later);
                }
            }
        }
    }

    /// A committed event arrived: read again if it is one of ours.
    fn note_live(
        &mut self,
        received: Result<Arc<StoredEvent>, broadcast::error::RecvError>,
        live: &mut broadcast::Receiver<Arc<StoredEvent>>,
    ) {
        let ours = |event: &StoredEvent| {
            event.event.workspace_id == self.spec.workspace_id
                && self.spec.sources.contains(&event.event.source_id)
        };
        let mut wake = match received {
            Ok(event) => ours(&event),
            Err(_) => true,
        };
        loop {
            match live.try_recv() {
                Ok(event) => wake |= ours(&event),
                Err(broadcast::error::TryRecvError::Empty) => break,
                Err(_) => {
                    wake = true;
                    break;
                }
            }
        }
        if wake {
            self.more_to_read = true;
        }
    }

    /// Saves cursors that moved, and replay progress.
    async fn ack(&mut self) {
        self.save_ledger().await;
        self.save_replays().await;
        for stream in 0..self.scopes.len() {
            let cursor = self.window.cursor(stream);
            if cursor <= self.acked[stream] {
                continue;
            }
            match self
                .shared
                .log
                .ack(&self.scopes[stream], &self.consumer, cursor)
                .await
            {
                Ok(()) => self.acked[stream] = cursor,
                Err(error) => {
                    tracing::warn!(destination = %self.spec.id, %error, "saving the cursor failed")
                }
            }
        }
    }

    /// Writes the deliveries settled since the last save to the ledger (before the cursors
    /// pass them). On failure they are kept for the next save.
    async fn save_ledger(&mut self) {
        if self.ledger.is_empty() {
            return;
        }
        let delivered = std::mem::take(&mut self.ledger);
        let store = Arc::clone(&self.shared.store);
        let (workspace, id) = (self.spec.workspace_id.clone(), self.spec.id.clone());
        let saved = tokio::task::spawn_blocking(move || {
            let result = store.record_deliveries(&workspace, &id, &delivered);
            (result, delivered)
        })
        .await;
        match saved {
            Ok((Ok(()), _)) => {}
            Ok((Err(error), delivered)) => {
                tracing::warn!(destination = %self.spec.id, %error, "saving the delivery ledger failed");
                if self.ledger.len() < MAX_UNSAVED_LEDGER {
                    self.ledger.extend(delivered);
                }
            }
            Err(_) => {}
        }
    }

    async fn save_replays(&mut self) {
        for stream in 0..self.streams.len() {
            let cursor = self.window.cursor(stream);
            let open = self.window.stream_len(stream);
            let Stream::Replay {
                job,
                read_all,
                saved,
                ..
            } = &mut self.streams[stream]
            else {
                continue;
            };
            if job.state != ReplayState::Running {
                continue;
            }
            let done = *read_all && open == 0;
            if cursor == *saved && !done {
                continue;
            }
            let finished = done.then(unix_ms);
            let state = if done {
                ReplayState::Done
            } else {
                ReplayState::Running
            };
            let store = Arc::clone(&self.shared.store);
            let (id, events) = (job.id, job.events);
            let saved_ok = tokio::task::spawn_blocking(move || {
                store.update_replay(id, cursor, events, state, finished)
            })
            .await;
            if matches!(saved_ok, Ok(Ok(()))) {
                *saved = cursor;
                job.state = state;
            }
        }
    }

    fn next_wake(&self, now: Instant) -> Instant {
        let mut wake = now + Duration::from_secs(1);
        if self.unauthorized.is_some() {
            // Held events are ready but must not be sent: only reads and acks go on.
            return wake;
        }
        if let Some(until) = self.paused_until.filter(|until| *until > now) {
            return wake.min(until);
        }
        if let Some(at) = self.window.next_retry() {
            wake = wake.min(at);
        }
        if self.window.has_ready(now) && self.sends.len() < self.spec.options.max_in_flight {
            wake = wake.min(self.limiter.next_token(now));
        }
        wake.max(now)
    }

    /// Updates the status and the queue gauges.
    fn publish(&self) {
        let oldest = self
            .window
            .stream_heads()
            .map(|item| item.event.event.received_at_ms)
            .min();
        let unfinished = self.window.len();
        metrics::gauge!(m::UNFINISHED, "destination" => self.label()).set(unfinished as f64);
        let age = oldest.map_or(0.0, |at| (unix_ms() - at).max(0) as f64 / 1e3);
        metrics::gauge!(m::OLDEST_AGE, "destination" => self.label()).set(age);
        if let Ok(mut status) = self.status.lock() {
            status.unfinished = unfinished;
            status.in_flight_requests = self.sends.len();
            status.oldest_unfinished_ms = oldest;
        }
    }
}

fn sent_response_excerpt(sent: &Sent) -> Option<String> {
    sent.result
        .as_ref()
        .ok()
        .map(|response| sluice_destinations::contract::excerpt(&response.body))
}

/// One fate per event from a request's verdict.
fn per_event(verdict: Verdict, count: usize) -> Vec<Settle> {
    let one = |verdict: Verdict| match verdict {
        Verdict::Delivered => Settle::Delivered,
        Verdict::Retry { after, reason } => Settle::Retry { after, reason },
        Verdict::Reject { reason } => Settle::DeadLetter { reason },
        Verdict::Unauthorized { reason } => Settle::Hold { reason },
        Verdict::Partial(_) => Settle::Retry {
            after: None,
            reason: "nested partial answer".into(),
        },
    };
    match verdict {
        Verdict::Partial(verdicts) => {
            let mut settles: Vec<Settle> = verdicts.into_iter().map(one).collect();
            // An answer that does not cover every event: try the rest again.
            while settles.len() < count {
                settles.push(Settle::Retry {
                    after: None,
                    reason: "no verdict for this event in a partial answer".into(),
                });
            }
            settles.truncate(count);
            settles
        }
        verdict => {
            let mut settles = Vec::with_capacity(count);
            for _ in 0..count {
                settles.push(one(verdict.clone()));
            }
            settles
        }
    }
}

/// Whether a message's `integrations` object lets it reach the destination called `name`:
/// an explicit `"Name": false` (or `{}`... any non-true value when `All` is false) keeps it
/// away; anything else lets it through.
pub fn enabled_by_integrations(message: &Value, name: &str) -> bool {
    let Some(integrations) = message.get("integrations").and_then(Value::as_object) else {
        return true;
    };
    match integrations.get(name) {
        Some(Value::Bool(enabled)) => *enabled,
        Some(Value::Object(_)) => true,
        _ => !matches!(integrations.get("All"), Some(Value::Bool(false))),
    }
}

/// The person an event belongs to, for ordering: userId, else anonymousId, else (never for a
/// valid message) its messageId.
fn person_of(event: &StoredEvent) -> String {
    let event = &event.event;
    match (&event.user_id, &event.anonymous_id) {
        (Some(user), _) if !user.is_empty() => format!("u:{user}"),
        (_, Some(anonymous)) if !anonymous.is_empty() => format!("a:{anonymous}"),
        _ => format!("m:{}", event.message_id),
    }
}

/// `scheme://host:port` of a URL, without path, query or user info.
fn origin_of(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return String::new();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    format!("{scheme}://{host}")
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A token bucket of requests per second, holding at most one second of tokens.
struct RateLimiter {
    per_second: Option<f64>,
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    fn new(per_second: Option<f64>) -> RateLimiter {
        let per_second = per_second.filter(|rate| *rate > 0.0);
        RateLimiter {
            tokens: per_second.map_or(0.0, |rate| rate.max(1.0)),
            per_second,
            at: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(rate) = self.per_second {
            let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
            self.tokens = (self.tokens + elapsed * rate).min(rate.max(1.0));
            self.at = now;
        }
    }

    fn try_take(&mut self, now: Instant) -> bool {
        if self.per_second.is_none() {
            return true;
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the next token will be there.
    fn next_token(&self, now: Instant) -> Instant {
        match self.per_second {
            None => now,
            Some(rate) if self.tokens >= 1.0 => {
                let _ = rate;
                now
            }
            Some(rate) => now + Duration::from_secs_f64((1.0 - self.tokens) / rate),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integrations_object_rules() {
        let name = "Mixpanel";
        assert!(enabled_by_integrations(&json!({}), name));
        assert!(enabled_by_integrations(&json!({"integrations": {}}), name));
        assert!(!enabled_by_integrations(
            &json!({"integrations": {"Mixpanel": false}}),
            name
        ));
        assert!(!enabled_by_integrations(
            &json!({"integrations": {"All": false}}),
            name
        ));
        assert!(enabled_by_integrations(
            &json!({"integrations": {"All": false, "Mixpanel": true}}),
            name
        ));
        assert!(enabled_by_integrations(
            &json!({"integrations": {"All": false, "Mixpanel": {"apiKey": "x"}}}),
            name
        ));
        assert!(enabled_by_integrations(
            &json!({"integrations": {"Amplitude": false}}),
            name
        ));
    }

    #[test]
    fn origins_hide_paths_and_credentials() {
        assert_eq!(
            origin_of("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com"
        );
        assert_eq!(
            origin_of("http://user:pw@127.0.0.1:9000/x?y=1"),
            "http://127.0.0.1:9000"
        );
        assert_eq!(origin_of("nonsense"), "");
    }

    #[test]
    fn partial_verdicts_cover_every_event() {
        let settles = per_event(
            Verdict::Partial(vec![
                Verdict::Delivered,
                Verdict::Reject {
                    reason: "bad".into(),
                },
            ]),
            3,
        );
        assert!(matches!(settles[0], Settle::Delivered));
        assert!(matches!(settles[1], Settle::DeadLetter { .. }));
        assert!(matches!(settles[2], Settle::Retry { .. }));
        let held = per_event(
            Verdict::Unauthorized {
                reason: "token revoked".into(),
            },
            2,
        );
        assert_eq!(held.len(), 2);
        assert!(
            held.iter()
                .all(|s| matches!(s, Settle::Hold { reason } if reason == "token revoked"))
        );
    }

    #[test]
    fn rate_limiter_spaces_requests() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(Some(2.0));
        assert!(limiter.try_take(start));
        assert!(limiter.try_take(start));
        assert!(
            !limiter.try_take(start),
            "two per second, at most one second saved"
        );
        let next = limiter.next_token(start);
        assert!(next > start && next <= start + Duration::from_millis(500));
        assert!(limiter.try_take(start + Duration::from_millis(500)));
        let mut unlimited = RateLimiter::new(None);
        assert!((0..1_000).all(|_| unlimited.try_take(start)));
    }
}
