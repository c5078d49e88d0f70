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

/// One bucket as stored (and the general form in memory).
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

/// A bucket that holds only statistics: a third of a [`Bucket`]'s size.
#[derive(Clone, Copy, Debug, PartialEq)]
struct StatsBucket {
    hour: i64,
    stats: Stats,
}

/// A bucket of a plain count (statistics of events read without a property, whose sum,
/// minimum and maximum stay 0): hour and count in 8 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct CountBucket {
    hour: i32,
    count: u32,
}

impl CountBucket {
    /// `stats` at `hour` in this form, if they are a plain count that fits.
    fn of(hour: i64, stats: &Stats) -> Option<CountBucket> {
        // Bit patterns: -0.0 is not a plain count's 0.
        let plain =
            stats.sum.to_bits() == 0 && stats.min.to_bits() == 0 && stats.max.to_bits() == 0;
        if !plain {
            return None;
        }
        Some(CountBucket {
            hour: i32::try_from(hour).ok()?,
            count: u32::try_from(stats.count).ok()?,
        })
    }

    fn stats(self) -> Stats {
        Stats {
            count: u64::from(self.count),
            sum: 0.0,
            min: 0.0,
            max: 0.0,
        }
    }
}

/// Plain counts kept in place up to this many buckets (a series within a window mostly holds
/// few hours): reading them costs no pointer to follow.
const INLINE: usize = 4;

/// Plain counts sorted by hour, the first [`INLINE`] in place.
#[derive(Clone, Debug)]
enum Counts {
    Inline {
        len: u8,
        items: [CountBucket; INLINE],
    },
    Heap(Vec<CountBucket>),
}

impl Counts {
    fn new() -> Counts {
        Counts::Inline {
            len: 0,
            items: [CountBucket::default(); INLINE],
        }
    }

    fn as_slice(&self) -> &[CountBucket] {
        match self {
            Counts::Inline { len, items } => &items[..usize::from(*len)],
            Counts::Heap(list) => list,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [CountBucket] {
        match self {
            Counts::Inline { len, items } => &mut items[..usize::from(*len)],
            Counts::Heap(list) => list,
        }
    }

    fn insert(&mut self, index: usize, bucket: CountBucket) {
        match self {
            Counts::Inline { len, items } if usize::from(*len) < INLINE => {
                let end = usize::from(*len);
                items.copy_within(index..end, index + 1);
                items[index] = bucket;
                *len += 1;
            }
            Counts::Inline { items, .. } => {
                let mut list = Vec::with_capacity(INLINE * 2);
                list.extend_from_slice(items);
                list.insert(index, bucket);
                *self = Counts::Heap(list);
            }
            Counts::Heap(list) => list.insert(index, bucket),
        }
    }

    /// Drops the first `n` buckets.
    fn drop_first(&mut self, n: usize) {
        match self {
            Counts::Inline { len, items } => {
                let end = usize::from(*len);
                items.copy_within(n..end, 0);
                // At most INLINE, so it fits.
                *len = u8::try_from(end - n).unwrap_or(0);
            }
            Counts::Heap(list) => {
                list.drain(..n);
            }
        }
    }

    /// Adds `bucket`'s count to its hour; false when the count would no longer fit.
    fn add(&mut self, bucket: CountBucket) -> bool {
        let slice = self.as_slice();
        // Events mostly arrive in time order: a later hour goes at the end.
        let found = if slice.last().is_none_or(|last| last.hour < bucket.hour) {
            Err(slice.len())
        } else {
            slice.binary_search_by_key(&bucket.hour, |b| b.hour)
        };
        match found {
            Ok(index) => {
                let kept = &mut self.as_mut_slice()[index];
                match kept.count.checked_add(bucket.count) {
                    Some(count) => {
                        kept.count = count;
                        true
                    }
                    None => false,
                }
            }
            Err(index) => {
                self.insert(index, bucket);
                true
            }
        }
    }
}

impl PartialEq for Counts {
    fn eq(&self, other: &Counts) -> bool {
        self.as_slice() == other.as_slice()
    }
}

/// The buckets of a series, sorted by hour: plain counts (most series), statistics, or the
/// general form. All three are written as the same JSON.
#[derive(Clone, Debug, PartialEq)]
enum Buckets {
    Counts(Counts),
    Stats(Vec<StatsBucket>),
    General(Vec<Bucket>),
}

/// A profile's buckets for one aggregator, sorted by hour. An empty series still says the
/// aggregator saw the profile at least once.
#[derive(Clone, Debug)]
pub struct Series {
    buckets: Buckets,
}

/// Equal when they hold the same buckets, whatever form each is kept in.
impl PartialEq for Series {
    fn eq(&self, other: &Series) -> bool {
        match (&self.buckets, &other.buckets) {
            (Buckets::Counts(a), Buckets::Counts(b)) => a == b,
            (Buckets::Stats(a), Buckets::Stats(b)) => a == b,
            (Buckets::General(a), Buckets::General(b)) => a == b,
            _ => {
                let (mut a, mut b) = (self.clone(), other.clone());
                a.make_general();
                b.make_general();
                a.buckets == b.buckets
            }
        }
    }
}

impl Default for Series {
    fn default() -> Series {
        Series {
            buckets: Buckets::Counts(Counts::new()),
        }
    }
}

/// A bucket as written (`{"h": …, "s": …}`), borrowed from any form.
#[derive(Serialize)]
struct BucketView<'a> {
    #[serde(rename = "h")]
    hour: i64,
    #[serde(rename = "s", skip_serializing_if = "Option::is_none")]
    stats: Option<&'a Stats>,
    #[serde(rename = "p", skip_serializing_if = "Option::is_none")]
    pick: Option<&'a Pick>,
    #[serde(rename = "f", skip_serializing_if = "Option::is_none")]
    frequency: Option<&'a BTreeMap<String, u32>>,
}

/// The bucket list as written.
struct BucketList<'a>(&'a Buckets);

impl Serialize for BucketList<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        match self.0 {
            Buckets::Counts(counts) => {
                let list = counts.as_slice();
                let mut seq = serializer.serialize_seq(Some(list.len()))?;
                for bucket in list {
                    let stats = bucket.stats();
                    seq.serialize_element(&BucketView {
                        hour: i64::from(bucket.hour),
                        stats: Some(&stats),
                        pick: None,
                        frequency: None,
                    })?;
                }
                seq.end()
            }
            Buckets::Stats(list) => {
                let mut seq = serializer.serialize_seq(Some(list.len()))?;
                for bucket in list {
                    seq.serialize_element(&BucketView {
                        hour: bucket.hour,
                        stats: Some(&bucket.stats),
                        pick: None,
                        frequency: None,
                    })?;
                }
                seq.end()
            }
            Buckets::General(list) => {
                let mut seq = serializer.serialize_seq(Some(list.len()))?;
                for bucket in list {
                    seq.serialize_element(&BucketView {
                        hour: bucket.hour,
                        stats: bucket.stats.as_ref(),
                        pick: bucket.pick.as_ref(),
                        frequency: bucket.frequency.as_ref(),
                    })?;
                }
                seq.end()
            }
        }
    }
}

impl Serialize for Series {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut series = serializer.serialize_struct("Series", 1)?;
        series.serialize_field("b", &BucketList(&self.buckets))?;
        series.end()
    }
}

impl<'de> Deserialize<'de> for Series {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Series, D::Error> {
        #[derive(Deserialize)]
        struct Stored {
            #[serde(rename = "b")]
            buckets: Vec<Bucket>,
        }
        let stored = Stored::deserialize(deserializer)?;
        Ok(Series::from_buckets(stored.buckets))
    }
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
    /// A series of these buckets (sorted by hour), in the most compact form that holds them.
    fn from_buckets(buckets: Vec<Bucket>) -> Series {
        let only_stats = buckets
            .iter()
            .all(|b| b.stats.is_some() && b.pick.is_none() && b.frequency.is_none());
        if !only_stats {
            return Series {
                buckets: Buckets::General(buckets),
            };
        }
        let list: Vec<StatsBucket> = buckets
            .into_iter()
            .filter_map(|b| {
                b.stats.map(|stats| StatsBucket {
                    hour: b.hour,
                    stats,
                })
            })
            .collect();
        let counts: Option<Vec<CountBucket>> = list
            .iter()
            .map(|b| CountBucket::of(b.hour, &b.stats))
            .collect();
        let buckets = match counts {
            Some(counts) if counts.len() <= INLINE => {
                let mut items = [CountBucket::default(); INLINE];
                items[..counts.len()].copy_from_slice(&counts);
                Buckets::Counts(Counts::Inline {
                    // At most INLINE.
                    len: u8::try_from(counts.len()).unwrap_or(0),
                    items,
                })
            }
            Some(counts) => Buckets::Counts(Counts::Heap(counts)),
            None => Buckets::Stats(list),
        };
        Series { buckets }
    }

    /// Turns plain counts into statistics (once a bucket is more than a count).
    fn make_stats(&mut self) {
        if let Buckets::Counts(counts) = &self.buckets {
            let list = counts
                .as_slice()
                .iter()
                .map(|b| StatsBucket {
                    hour: i64::from(b.hour),
                    stats: b.stats(),
                })
                .collect();
            self.buckets = Buckets::Stats(list);
        }
    }

    /// Turns a compact series into the general form (once it is to hold anything but
    /// statistics).
    fn make_general(&mut self) {
        self.make_stats();
        if let Buckets::Stats(list) = &self.buckets {
            let general = list
                .iter()
                .map(|b| Bucket {
                    stats: Some(b.stats),
                    ..Bucket::empty(b.hour)
                })
                .collect();
            self.buckets = Buckets::General(general);
        }
    }

    /// Adds one event's `data` at `timestamp`, for an aggregator of `kind`.
    pub fn add(&mut self, timestamp: i64, window: Option<i64>, kind: Kind, data: Data) {
        let hour = hour_of(timestamp, window);
        self.add_at(hour, data, kind);
    }

    fn add_at(&mut self, hour: i64, data: Data, kind: Kind) {
        match (&mut self.buckets, data) {
            (Buckets::Counts(counts), Data::Stats(stats)) => {
                if CountBucket::of(hour, &stats).is_some_and(|bucket| counts.add(bucket)) {
                    return;
                }
                self.make_stats();
                self.add_at(hour, Data::Stats(stats), kind);
            }
            (Buckets::Stats(list), Data::Stats(stats)) => match stats_bucket(list, hour) {
                Some(kept) => kept.add(&stats),
                None => insert_stats(list, StatsBucket { hour, stats }),
            },
            (Buckets::General(list), data) => combine(general_bucket(list, hour), data, kind),
            (_, data) => {
                self.make_general();
                self.add_at(hour, data, kind);
            }
        }
    }

    /// Adds every bucket of `other` (another profile's series of the same aggregator).
    pub fn merge(&mut self, other: Series, kind: Kind) {
        match other.buckets {
            Buckets::Counts(counts) => {
                for bucket in counts.as_slice() {
                    self.add_at(i64::from(bucket.hour), Data::Stats(bucket.stats()), kind);
                }
            }
            Buckets::Stats(list) => {
                for bucket in list {
                    self.add_at(bucket.hour, Data::Stats(bucket.stats), kind);
                }
            }
            Buckets::General(list) => {
                for bucket in list {
                    let hour = bucket.hour;
                    for data in bucket.into_data() {
                        self.add_at(hour, data, kind);
                    }
                }
            }
        }
    }

    /// Drops the buckets that no longer count at `now`.
    pub fn prune(&mut self, window: Option<i64>, now: i64) {
        if window.is_none() {
            return;
        }
        let counts = |hour: i64| expiry(hour, window).is_none_or(|end| end > now);
        // Sorted by hour: the expired buckets are a prefix.
        match &mut self.buckets {
            Buckets::Counts(list) => {
                let expired = list
                    .as_slice()
                    .partition_point(|b| !counts(i64::from(b.hour)));
                if expired > 0 {
                    list.drop_first(expired);
                }
            }
            Buckets::Stats(list) => {
                let expired = list.partition_point(|b| !counts(b.hour));
                if expired > 0 {
                    list.drain(..expired);
                }
            }
            Buckets::General(list) => list.retain(|b| counts(b.hour)),
        }
    }

    /// The earliest moment after `now` when a bucket stops counting.
    pub fn next_expiry(&self, window: Option<i64>, now: i64) -> Option<i64> {
        window?;
        let after = |hour: i64| expiry(hour, window).filter(|end| *end > now);
        match &self.buckets {
            Buckets::Counts(list) => list
                .as_slice()
                .iter()
                .find_map(|b| after(i64::from(b.hour))),
            Buckets::Stats(list) => list.iter().find_map(|b| after(b.hour)),
            Buckets::General(list) => list.iter().find_map(|b| after(b.hour)),
        }
    }

    /// The buckets counting at `now`, combined, or `None` when none does.
    pub fn live(&self, kind: Kind, window: Option<i64>, now: i64) -> Option<Data> {
        let list = match &self.buckets {
            Buckets::Counts(_) | Buckets::Stats(_) => {
                return self.live_stats(window, now).map(Data::Stats);
            }
            Buckets::General(list) => list,
        };
        let mut total = Bucket::empty(0);
        for bucket in list {
            if expiry(bucket.hour, window).is_some_and(|end| end <= now) {
                continue;
            }
            combine_from(&mut total, bucket, kind);
        }
        total.into_data().into_iter().next()
    }

    /// The statistics counting at `now` (a fast path of [`Series::live`] for `Stats`).
    pub fn live_stats(&self, window: Option<i64>, now: i64) -> Option<Stats> {
        let counts = |hour: i64| expiry(hour, window).is_none_or(|end| end > now);
        // Sorted by hour: the expired buckets are a prefix.
        match &self.buckets {
            Buckets::Counts(list) => {
                let list = list.as_slice();
                let first = list.partition_point(|b| !counts(i64::from(b.hour)));
                let live = &list[first..];
                (!live.is_empty()).then(|| Stats {
                    count: live.iter().map(|b| u64::from(b.count)).sum(),
                    sum: 0.0,
                    min: 0.0,
                    max: 0.0,
                })
            }
            Buckets::Stats(list) => {
                let first = list.partition_point(|b| !counts(b.hour));
                let mut live = list[first..].iter().map(|b| b.stats);
                let mut total = live.next()?;
                for stats in live {
                    total.add(&stats);
                }
                Some(total)
            }
            Buckets::General(list) => {
                let mut total: Option<Stats> = None;
                for stats in list
                    .iter()
                    .filter(|b| counts(b.hour))
                    .filter_map(|b| b.stats)
                {
                    match total.as_mut() {
                        Some(total) => total.add(&stats),
                        None => total = Some(stats),
                    }
                }
                total
            }
        }
    }

    /// Number of buckets.
    pub fn len(&self) -> usize {
        match &self.buckets {
            Buckets::Counts(list) => list.as_slice().len(),
            Buckets::Stats(list) => list.len(),
            Buckets::General(list) => list.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The statistics of the bucket of `hour`, if there is one. Events mostly arrive in time
/// order, so the last bucket is looked at first.
fn stats_bucket(list: &mut [StatsBucket], hour: i64) -> Option<&mut Stats> {
    let last = list.len().checked_sub(1)?;
    if list[last].hour == hour {
        return Some(&mut list[last].stats);
    }
    if list[last].hour < hour {
        return None;
    }
    let index = list.binary_search_by_key(&hour, |b| b.hour).ok()?;
    Some(&mut list[index].stats)
}

/// Inserts a bucket whose hour `list` does not have, keeping the order.
fn insert_stats(list: &mut Vec<StatsBucket>, bucket: StatsBucket) {
    if list.last().is_none_or(|last| last.hour < bucket.hour) {
        list.push(bucket);
    } else {
        let index = list.partition_point(|b| b.hour < bucket.hour);
        list.insert(index, bucket);
    }
}

/// The general bucket of `hour`, made empty when missing.
fn general_bucket(list: &mut Vec<Bucket>, hour: i64) -> &mut Bucket {
    let index = match list.binary_search_by_key(&hour, |b| b.hour) {
        Ok(index) => index,
        Err(index) => {
            list.insert(index, Bucket::empty(hour));
            index
        }
    };
    &mut list[index]
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    const WINDOW: Option<i64> = Some(48 * HOUR_MS);

    fn stats(n: f64) -> Data {
        Data::Stats(Stats::one(Some(n)))
    }

    #[test]
    fn statistics_are_written_as_before_the_compact_form() {
        let mut series = Series::default();
        series.add(5 * HOUR_MS + 1, WINDOW, Kind::Stats, stats(2.0));
        series.add(5 * HOUR_MS + 2, WINDOW, Kind::Stats, stats(1.5));
        series.add(HOUR_MS, WINDOW, Kind::Stats, stats(-1.0));
        assert!(matches!(series.buckets, Buckets::Stats(_)));
        let text = serde_json::to_string(&series).unwrap();
        assert_eq!(
            text,
            r#"{"b":[{"h":1,"s":{"c":1,"s":-1.0,"l":-1.0,"h":-1.0}},{"h":5,"s":{"c":2,"s":3.5,"l":1.5,"h":2.0}}]}"#
        );
        let read: Series = serde_json::from_str(&text).unwrap();
        assert_eq!(read, series);
        let empty: Series = serde_json::from_str(r#"{"b":[]}"#).unwrap();
        assert_eq!(empty, Series::default());
    }

    #[test]
    fn plain_counts_are_kept_in_place_and_written_as_statistics() {
        let mut series = Series::default();
        for hour in [3, 1, 2, 2, 5] {
            series.add(
                hour * HOUR_MS + 9,
                WINDOW,
                Kind::Stats,
                Data::Stats(Stats::one(None)),
            );
        }
        assert!(matches!(
            series.buckets,
            Buckets::Counts(Counts::Inline { len: 4, .. })
        ));
        let text = serde_json::to_string(&series).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"b":[{"h":1,"s":{"c":1,"s":0.0,"l":0.0,"h":0.0}},"#,
                r#"{"h":2,"s":{"c":2,"s":0.0,"l":0.0,"h":0.0}},"#,
                r#"{"h":3,"s":{"c":1,"s":0.0,"l":0.0,"h":0.0}},"#,
                r#"{"h":5,"s":{"c":1,"s":0.0,"l":0.0,"h":0.0}}]}"#
            )
        );
        let read: Series = serde_json::from_str(&text).unwrap();
        assert_eq!(read, series);
        assert!(matches!(read.buckets, Buckets::Counts(_)));
        // A fifth hour moves them to the heap; a number turns them into statistics.
        series.add(
            7 * HOUR_MS,
            WINDOW,
            Kind::Stats,
            Data::Stats(Stats::one(None)),
        );
        assert!(matches!(series.buckets, Buckets::Counts(Counts::Heap(_))));
        series.add(7 * HOUR_MS, WINDOW, Kind::Stats, stats(2.5));
        assert!(matches!(series.buckets, Buckets::Stats(_)));
        assert_eq!(
            series.live_stats(WINDOW, 0).map(|s| (s.count, s.sum)),
            Some((7, 2.5))
        );
        // Hours past what 32 bits hold, and -0.0, are kept as statistics.
        let mut far = Series::default();
        far.add(
            i64::from(i32::MAX) * 2 * HOUR_MS,
            WINDOW,
            Kind::Stats,
            Data::Stats(Stats::one(None)),
        );
        assert!(matches!(far.buckets, Buckets::Stats(_)));
        let mut negative_zero = Series::default();
        negative_zero.add(0, WINDOW, Kind::Stats, stats(-0.0));
        assert!(matches!(negative_zero.buckets, Buckets::Stats(_)));
        assert_eq!(
            serde_json::to_string(&negative_zero).unwrap(),
            r#"{"b":[{"h":0,"s":{"c":1,"s":-0.0,"l":-0.0,"h":-0.0}}]}"#
        );
    }

    #[test]
    fn picks_and_frequencies_use_the_general_form() {
        let mut series = Series::default();
        let pick = |t: i64, v: &str| {
            Data::Pick(Pick {
                timestamp: t,
                message_id: format!("m{t}"),
                value: v.into(),
            })
        };
        series.add(10, None, Kind::Last, pick(10, "\"a\""));
        series.add(20, None, Kind::Last, pick(20, "\"b\""));
        let text = serde_json::to_string(&series).unwrap();
        assert_eq!(
            text,
            r#"{"b":[{"h":0,"p":{"t":20,"m":"m20","v":"\"b\""}}]}"#
        );
        let read: Series = serde_json::from_str(&text).unwrap();
        assert_eq!(read, series);
        assert!(matches!(read.buckets, Buckets::General(_)));
    }

    /// The general form, as the series was kept before the compact one: the reference.
    fn general_of(series: &Series) -> Series {
        let mut general = series.clone();
        general.make_general();
        general
    }

    proptest! {
        #[test]
        fn the_compact_form_answers_like_the_general_one(
            events in proptest::collection::vec((0i64..200, -50i64..50), 0..40),
            now in 0i64..260,
            cut in 0i64..260,
        ) {
            let mut compact = Series::default();
            let mut general = Series::default();
            general.make_general();
            for (hour, n) in &events {
                let at = hour * HOUR_MS + 17;
                // Mostly plain counts (as `performed` adds), some numbers.
                let data = if n.abs() < 40 { Data::Stats(Stats::one(None)) } else { stats(*n as f64) };
                compact.add(at, WINDOW, Kind::Stats, data.clone());
                general.add(at, WINDOW, Kind::Stats, data);
            }
            prop_assert_eq!(general_of(&compact), general.clone());
            let now = now * HOUR_MS + 5;
            prop_assert_eq!(compact.live_stats(WINDOW, now), general.live_stats(WINDOW, now));
            prop_assert_eq!(compact.live(Kind::Stats, WINDOW, now), general.live(Kind::Stats, WINDOW, now));
            prop_assert_eq!(compact.next_expiry(WINDOW, now), general.next_expiry(WINDOW, now));
            prop_assert_eq!(serde_json::to_string(&compact).unwrap(), serde_json::to_string(&general).unwrap());
            let cut = cut * HOUR_MS;
            compact.prune(WINDOW, cut);
            general.prune(WINDOW, cut);
            prop_assert_eq!(general_of(&compact), general.clone());
            // Merging a compact series into a general one and the other way round.
            let mut both = compact.clone();
            both.merge(general.clone(), Kind::Stats);
            let mut both_general = general.clone();
            both_general.merge(compact.clone(), Kind::Stats);
            prop_assert_eq!(general_of(&both), both_general);
        }
    }
}
