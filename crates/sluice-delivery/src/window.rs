//! The events a destination has read from the log but not finished, and which of them may be
//! sent now.
//!
//! Ordering rule: events of one person (userId, else anonymousId) go out one at a time in log
//! order; an event waits until every earlier event of its person is finished (delivered,
//! dead-lettered or dropped). Different people are independent: one person's retries never
//! hold up another's events.
//!
//! Events come from streams: each connected source is one (read from its cursor), and so is
//! each replay. An event is known by its stream and its sequence number ([`Key`]).
//!
//! Cursor rule: a stream's cursor may only move to just below its oldest unfinished event, so
//! after a restart nothing unfinished is skipped (events after it that were already delivered
//! are sent again: delivery is at least once).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::time::Instant;

use sluice_store::Seq;

/// An event in the window: its stream and its sequence number there.
pub type Key = (usize, Seq);

struct Entry<E> {
    person: String,
    item: E,
    failures: u32,
    first_failure: Option<Instant>,
}

/// See the module documentation. `E` is what the caller keeps per event (cheap to clone).
pub struct Window<E> {
    entries: HashMap<Key, Entry<E>>,
    /// Each person's unfinished events, oldest first; the first is the only one that may be
    /// sent.
    persons: HashMap<String, VecDeque<Key>>,
    /// Heads that may be sent now, in the order they became ready.
    ready: VecDeque<Key>,
    /// Heads waiting for a retry time.
    waiting: BinaryHeap<Reverse<(Instant, Key)>>,
    /// Per stream: unfinished events, and the last sequence number read.
    unfinished: Vec<BTreeSet<Seq>>,
    read_to: Vec<Seq>,
}

/// How often an event has failed so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failures {
    pub count: u32,
    pub first: Instant,
}

impl<E: Clone> Window<E> {
    /// A window over streams whose cursors stand at `cursors`.
    pub fn new(cursors: &[Seq]) -> Window<E> {
        Window {
            entries: HashMap::new(),
            persons: HashMap::new(),
            ready: VecDeque::new(),
            waiting: BinaryHeap::new(),
            unfinished: vec![BTreeSet::new(); cursors.len()],
            read_to: cursors.to_vec(),
        }
    }

    /// Unfinished events.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds a stream whose cursor stands at `cursor`; returns its index.
    pub fn add_stream(&mut self, cursor: Seq) -> usize {
        self.unfinished.push(BTreeSet::new());
        self.read_to.push(cursor);
        self.read_to.len() - 1
    }

    /// Unfinished events of a stream.
    pub fn stream_len(&self, stream: usize) -> usize {
        self.unfinished[stream].len()
    }

    /// The last sequence number read from `stream`.
    pub fn read_to(&self, stream: usize) -> Seq {
        self.read_to[stream]
    }

    /// Adds an event read from `stream`. Events of one stream arrive in sequence order.
    pub fn push(&mut self, stream: usize, seq: Seq, person: String, item: E) {
        let key = (stream, seq);
        self.read_to[stream] = self.read_to[stream].max(seq);
        self.unfinished[stream].insert(seq);
        let queue = self.persons.entry(person.clone()).or_default();
        queue.push_back(key);
        if queue.len() == 1 {
            self.ready.push_back(key);
        }
        self.entries.insert(
            key,
            Entry {
                person,
                item,
                failures: 0,
                first_failure: None,
            },
        );
    }

    /// Notes that `stream` was read up to `seq` (events read and dropped at once need no
    /// entry).
    pub fn skip(&mut self, stream: usize, seq: Seq) {
        self.read_to[stream] = self.read_to[stream].max(seq);
    }

    /// Takes up to `max` events that may be sent now: at most one per person. They stay
    /// unfinished until [`Window::finish`] or [`Window::retry_at`].
    pub fn take_ready(&mut self, now: Instant, max: usize) -> Vec<(Key, E)> {
        while let Some(Reverse((at, key))) = self.waiting.peek().copied() {
            if at > now {
                break;
            }
            self.waiting.pop();
            self.ready.push_back(key);
        }
        let mut taken = Vec::new();
        while taken.len() < max {
            let Some(key) = self.ready.pop_front() else {
                break;
            };
            if let Some(entry) = self.entries.get(&key) {
                taken.push((key, entry.item.clone()));
            }
        }
        taken
    }

    /// The event is done with (delivered, dead-lettered or dropped): the next event of its
    /// person may go.
    pub fn finish(&mut self, key: Key) {
        let Some(entry) = self.entries.remove(&key) else {
            return;
        };
        self.unfinished[key.0].remove(&key.1);
        let Some(queue) = self.persons.get_mut(&entry.person) else {
            return;
        };
        queue.retain(|k| *k != key);
        match queue.front() {
            Some(next) => self.ready.push_back(*next),
            None => {
                self.persons.remove(&entry.person);
            }
        }
    }

    /// Counts a failed attempt of an event.
    pub fn fail(&mut self, key: Key, now: Instant) -> Option<Failures> {
        let entry = self.entries.get_mut(&key)?;
        entry.failures += 1;
        let first = *entry.first_failure.get_or_insert(now);
        Some(Failures {
            count: entry.failures,
            first,
        })
    }

    /// The event may be sent again from `at`; its person's later events keep waiting.
    pub fn retry_at(&mut self, key: Key, at: Instant) {
        if self.entries.contains_key(&key) {
            self.waiting.push(Reverse((at, key)));
        }
    }

    /// When the earliest waiting retry is due.
    pub fn next_retry(&self) -> Option<Instant> {
        self.waiting.peek().map(|Reverse((at, _))| *at)
    }

    /// Whether an event may be sent now.
    pub fn has_ready(&self, now: Instant) -> bool {
        !self.ready.is_empty() || self.next_retry().is_some_and(|at| at <= now)
    }

    /// Every event of `stream` up to the returned sequence number is finished.
    pub fn cursor(&self, stream: usize) -> Seq {
        match self.unfinished[stream].first() {
            Some(oldest) => oldest - 1,
            None => self.read_to[stream],
        }
    }

    /// The first unfinished event of each stream.
    pub fn stream_heads(&self) -> impl Iterator<Item = &E> {
        self.unfinished
            .iter()
            .enumerate()
            .filter_map(|(stream, open)| self.entries.get(&(stream, *open.first()?)))
            .map(|entry| &entry.item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn seqs(taken: &[(Key, u32)]) -> Vec<Seq> {
        taken.iter().map(|((_, seq), _)| *seq).collect()
    }

    #[test]
    fn one_event_per_person_at_a_time_in_log_order() {
        let mut window: Window<u32> = Window::new(&[0]);
        window.push(0, 1, "ann".into(), 1);
        window.push(0, 2, "bob".into(), 2);
        window.push(0, 3, "ann".into(), 3);
        let now = Instant::now();
        assert_eq!(seqs(&window.take_ready(now, 10)), [1, 2]);
        assert!(window.take_ready(now, 10).is_empty(), "ann's 3 waits for 1");
        window.finish((0, 2));
        assert!(window.take_ready(now, 10).is_empty());
        window.finish((0, 1));
        assert_eq!(seqs(&window.take_ready(now, 10)), [3]);
    }

    #[test]
    fn a_retrying_person_does_not_hold_up_others() {
        let mut window: Window<u32> = Window::new(&[0]);
        let now = Instant::now();
        window.push(0, 1, "ann".into(), 1);
        window.push(0, 2, "ann".into(), 2);
        window.push(0, 3, "bob".into(), 3);
        assert_eq!(seqs(&window.take_ready(now, 10)), [1, 3]);
        let failures = window.fail((0, 1), now).expect("known");
        assert_eq!(failures.count, 1);
        window.retry_at((0, 1), now + Duration::from_secs(5));
        window.finish((0, 3));
        window.push(0, 4, "bob".into(), 4);
        assert_eq!(seqs(&window.take_ready(now, 10)), [4]);
        assert_eq!(window.next_retry(), Some(now + Duration::from_secs(5)));
        assert!(!window.has_ready(now));
        let later = now + Duration::from_secs(5);
        assert!(window.has_ready(later));
        assert_eq!(
            seqs(&window.take_ready(later, 10)),
            [1],
            "then ann's first again"
        );
        assert_eq!(window.fail((0, 1), later).expect("known").count, 2);
        assert_eq!(window.fail((0, 1), later).expect("known").first, now);
    }

    #[test]
    fn cursors_stop_below_the_oldest_unfinished_event_per_source() {
        let mut window: Window<u32> = Window::new(&[10, 0]);
        assert_eq!(window.cursor(0), 10);
        window.push(0, 11, "ann".into(), 0);
        window.push(1, 12, "bob".into(), 0);
        window.push(0, 13, "cat".into(), 0);
        window.skip(0, 14);
        assert_eq!(window.cursor(0), 10);
        assert_eq!(window.cursor(1), 11);
        window.finish((0, 13));
        assert_eq!(window.cursor(0), 10, "11 is still open");
        window.finish((0, 11));
        assert_eq!(
            window.cursor(0),
            14,
            "everything read is done, skipped ones too"
        );
        window.finish((1, 12));
        assert_eq!(window.cursor(1), 12);
        assert!(window.is_empty());
        assert_eq!(window.stream_heads().count(), 0);
    }

    proptest! {
        /// Whatever order sends succeed or fail in, each person's events finish in log order,
        /// every event finishes, and cursors never pass an unfinished event.
        #[test]
        fn persons_finish_in_order_and_cursors_are_safe(
            people in proptest::collection::vec(0u8..5, 1..60),
            outcomes in proptest::collection::vec(any::<bool>(), 200),
        ) {
            let mut window: Window<u8> = Window::new(&[0]);
            for (i, person) in people.iter().enumerate() {
                window.push(0, i as Seq + 1, format!("p{person}"), *person);
            }
            let start = Instant::now();
            let mut finished: Vec<(u8, Seq)> = Vec::new();
            let mut outcome = outcomes.iter().cycle();
            let mut step = 0u64;
            while !window.is_empty() && step < 10_000 {
                step += 1;
                let now = start + Duration::from_secs(step);
                for (key, person) in window.take_ready(now, 3) {
                    let seq = key.1;
                    let succeeds = *outcome.next().unwrap_or(&true);
                    // An event fails at most three times, so every run ends.
                    let failures = if succeeds { None } else { window.fail(key, now) };
                    match failures {
                        Some(failures) if failures.count <= 3 => {
                            window.retry_at(key, now + Duration::from_secs(1));
                        }
                        _ => {
                            window.finish(key);
                            finished.push((person, seq));
                        }
                    }
                    let open: Vec<Seq> = (1..=people.len() as Seq)
                        .filter(|s| !finished.iter().any(|(_, f)| f == s))
                        .collect();
                    let cursor = window.cursor(0);
                    prop_assert!(open.iter().all(|s| *s > cursor));
                }
            }
            prop_assert_eq!(finished.len(), people.len());
            for person in 0u8..5 {
                let order: Vec<Seq> = finished.iter().filter(|(p, _)| *p == person).map(|(_, s)| *s).collect();
                let mut sorted = order.clone();
                sorted.sort_unstable();
                prop_assert_eq!(order, sorted);
            }
            prop_assert_eq!(window.cursor(0), people.len() as Seq);
        }
    }
}
