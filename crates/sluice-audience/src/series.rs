//! What one profile keeps for one aggregator: a series of hour buckets, so windows slide.
//!
//! An event lands in the bucket of the hour its `timestamp` falls in (one bucket for all time
//! when the aggregator has no window). A windowed bucket counts until the window has passed
//! since the end of its hour: windows are hour-precise, as Segment's are, and an event's
//! contribution ends at a moment that depends only on its timestamp, so evaluating as events
//! arrive and evaluating once over the whole history agree.
//!
//! Buckets of one series combine with each other and with another profile's (a merge), in any
//! order, to the same result: counts and sums add, minimum and maximum keep the extreme, first
//! and last keep the earliest and latest `(timestamp, messageId)`, frequencies add.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const HOUR_MS: i64 = 3_600_000;

/// What an aggregator keeps per bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Count, sum, minimum and maximum of a number (only the count without a property).
    Stats,
    /// The value of the earliest event.
    First,
    /// The value of the latest event.
    Last,
    /// How often each value was seen.
    Frequency,
}

/// One event's contribution.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    Stats(Stats),
    /// A value (JSON text) and the `(timestamp, messageId)` that orders it.
    Pick(Pick),
    Frequency(BTreeMap<String, u32>),
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    #[serde(rename = "c")]
    pub count: u64,
    #[serde(rename = "s")]
    pub sum: f64,
    #[serde(rename = "l")]
    pub min: f64,
    #[serde(rename = "h")]
    pub max: f64,
}

impl Stats {
    /// One event; `number` is the property's value (none for a plain count).
    pub fn one(number: Option<f64>) -> Stats {
        let n = number.unwrap_or(0.0);
        Stats {
            count: 1,
            sum: n,
            min: n,
            max: n,
        }
    }

    fn add(&mut self, other: &Stats) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pick {
    #[serde(rename = "t")]
    pub timestamp: i64,
    #[serde(rename = "m")]
    pub message_id: String,
    #[serde(rename = "v")]
    pub value: String,
}

impl Pick {
    fn order(&self) -> (i64, &str) {
        (self.timestamp, &self.message_id)
    }
}

/// One bucket as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Bucket {
    #[serde(rename = "h")]
    hour: i64,
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    stats: Option<Stats>,
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pick: Option<Pick>,
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    frequency: Option<BTreeMap<String, u32>>,
}

/// A profile's buckets for one aggregator, sorted by hour. An empty series still says the
/// aggregator saw the profile at least once.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    #[serde(rename = "b")]
    buckets: Vec<Bucket>,
}

/// When a bucket of `hour` stops counting under `window` (milliseconds), `None` for never.
fn expiry(hour: i64, window: Option<i64>) -> Option<i64> {
    window.map(|window| (hour + 1) * HOUR_MS + window)
}

/// The bucket hour of a timestamp (0 for every event when there is no window).
pub fn hour_of(timestamp: i64, window: Option<i64>) -> i64 {
    match window {
        Some(_) => timestamp.div_euclid(HOUR_MS),
        None => 0,
    }
}

/// Whether an event at `timestamp` still counts at `now` under `window`.
pub fn counts_at(timestamp: i64, window: Option<i64>, now: i64) -> bool {
    expiry(hour_of(timestamp, window), window).is_none_or(|end| end > now)
}

impl Series {
    /// Adds one event's `data` at `timestamp`, for an aggregator of `kind`.
    pub fn add(&mut self, timestamp: i64, window: Option<i64>, kind: Kind, data: Data) {
        let hour = hour_of(timestamp, window);
        combine(self.bucket(hour), data, kind);
    }

    /// Adds every bucket of `other` (another profile's series of the same aggregator).
    pub fn merge(&mut self, other: Series, kind: Kind) {
        for bucket in other.buckets {
            let hour = bucket.hour;
            for data in bucket.into_data() {
                combine(self.bucket(hour), data, kind);
            }
        }
    }

    /// The bucket of `hour`, made empty when missing.
    fn bucket(&mut self, hour: i64) -> &mut Bucket {
        let index = match self.buckets.binary_search_by_key(&hour, |b| b.hour) {
            Ok(index) => index,
            Err(index) => {
                self.buckets.insert(index, Bucket::empty(hour));
                index
            }
        };
        &mut self.buckets[index]
    }

    /// Drops the buckets that no longer count at `now`.
    pub fn prune(&mut self, window: Option<i64>, now: i64) {
        if window.is_some() {
            self.buckets
                .retain(|bucket| expiry(bucket.hour, window).is_none_or(|end| end > now));
        }
    }

    /// The earliest moment after `now` when a bucket stops counting.
    pub fn next_expiry(&self, window: Option<i64>, now: i64) -> Option<i64> {
        self.buckets
            .iter()
            .filter_map(|bucket| expiry(bucket.hour, window))
            .find(|end| *end > now)
    }

    /// The buckets counting at `now`, combined, or `None` when none does.
    pub fn live(&self, kind: Kind, window: Option<i64>, now: i64) -> Option<Data> {
        let mut total = Bucket::empty(0);
        for bucket in &self.buckets {
            if expiry(bucket.hour, window).is_some_and(|end| end <= now) {
                continue;
            }
            combine_from(&mut total, bucket, kind);
        }
        total.into_data().into_iter().next()
    }

    /// The statistics counting at `now` (a fast path of [`Series::live`] for `Stats`).
    pub fn live_stats(&self, window: Option<i64>, now: i64) -> Option<Stats> {
        let mut total: Option<Stats> = None;
        for bucket in &self.buckets {
            if expiry(bucket.hour, window).is_some_and(|end| end <= now) {
                continue;
            }
            if let Some(stats) = &bucket.stats {
                match total.as_mut() {
                    Some(total) => total.add(stats),
                    None => total = Some(*stats),
                }
            }
        }
        total
    }

    /// Number of buckets.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

impl Bucket {
    fn empty(hour: i64) -> Bucket {
        Bucket {
            hour,
            stats: None,
            pick: None,
            frequency: None,
        }
    }

    /// What the bucket holds (one item: a series holds one kind).
    fn into_data(self) -> Vec<Data> {
        let mut data = Vec::with_capacity(1);
        if let Some(stats) = self.stats {
            data.push(Data::Stats(stats));
        }
        if let Some(pick) = self.pick {
            data.push(Data::Pick(pick));
        }
        if let Some(frequency) = self.frequency {
            data.push(Data::Frequency(frequency));
        }
        data
    }
}

/// Adds what `from` holds into `total` by the rule of `kind`, copying only what is kept.
fn combine_from(total: &mut Bucket, from: &Bucket, kind: Kind) {
    if let Some(stats) = &from.stats {
        match total.stats.as_mut() {
            Some(kept) => kept.add(stats),
            None => total.stats = Some(*stats),
        }
    }
    if let Some(counts) = &from.frequency {
        let kept = total.frequency.get_or_insert_with(BTreeMap::new);
        for (value, count) in counts {
            match kept.get_mut(value) {
                Some(seen) => *seen += count,
                None => {
                    kept.insert(value.clone(), *count);
                }
            }
        }
    }
    if let Some(pick) = &from.pick
        && replaces(total.pick.as_ref(), pick, kind)
    {
        total.pick = Some(pick.clone());
    }
}

/// Whether `new` takes the place of the `kept` pick: earlier for first, later for last.
fn replaces(kept: Option<&Pick>, new: &Pick, kind: Kind) -> bool {
    match kept {
        None => true,
        Some(kept) if kind == Kind::Last => new.order() > kept.order(),
        Some(kept) => new.order() < kept.order(),
    }
}

/// Adds `data` into `bucket` by the rule of `kind`.
fn combine(bucket: &mut Bucket, data: Data, kind: Kind) {
    match data {
        Data::Stats(stats) => match bucket.stats.as_mut() {
            Some(kept) => kept.add(&stats),
            None => bucket.stats = Some(stats),
        },
        Data::Frequency(counts) => {
            let kept = bucket.frequency.get_or_insert_with(BTreeMap::new);
            for (value, count) in counts {
                *kept.entry(value).or_insert(0) += count;
            }
        }
        Data::Pick(pick) => {
            if replaces(bucket.pick.as_ref(), &pick, kind) {
                bucket.pick = Some(pick);
            }
        }
    }
}
