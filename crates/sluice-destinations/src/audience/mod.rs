//! Ad-platform audiences (Meta Custom Audiences, Google Customer Match, TikTok audiences): the
//! parts the three destination types share, with no IO.
//!
//! - `member.rs` reads a membership event (audience, enter or leave, raw identifiers, consent)
//!   from its JSON text, through `raw.rs`, a reader that walks JSON text without parsing it
//!   into a tree;
//! - `normalize.rs` is the `(platform, identifier kind) → rule` table and applies it;
//! - `hash.rs` hashes (SHA-256, MD5) and recognises values already hashed;
//! - `memo.rs` is a planning thread's scratch, with the hashes of the names, cities and postal
//!   codes a batch repeats;
//! - `tables.rs` holds US states and the countries' calling codes;
//! - this file: the [`AudiencePlatform`] trait (creating an audience, its minimum size) with
//!   its lookup [`audience_platform`], the settings every audience type has, and the planner
//!   that cuts a batch of memberships into requests.
//!
//! Planning keeps the contract's order: requests are made of consecutive runs of events that
//! go to one request shape (one audience and action for Meta and Google, one action for
//! TikTok), each run cut at the platform's request limit. A large batch is read and its
//! requests written on two threads (see [`plan_runs`]). The delivery engine hands a batch at
//! most one event per person, so a person's enter and leave never share a batch.

pub mod hash;
pub mod member;
pub(crate) mod memo;
pub mod normalize;
pub(crate) mod raw;
mod tables;
#[cfg(test)]
mod vectors;

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::contract::{HttpRequest, HttpResponse, Plan, Planned, Verdict};
use crate::settings::{Reader, invalid};
use crate::{SettingsError, google_audiences, meta_audiences, tiktok_audiences};

use member::{Action, Refusal, Traits};
use memo::Scratch;
use normalize::CountryCode;

/// What an ad platform offers besides membership changes: creating the audience the
/// memberships go to, and how small an audience may be before the platform will not use it.
pub trait AudiencePlatform: Send + Sync {
    /// The destination type (`meta_audiences`, `google_audiences`, `tiktok_audiences`).
    fn kind(&self) -> &'static str;

    /// The fewest matched people the platform needs before it targets an audience (Meta about
    /// 100, Google 100 active in 30 days, TikTok 1000): below it, warn.
    fn minimum_size(&self) -> u64;

    /// The request that creates an empty audience called `name`.
    fn plan_create_audience(&self, name: &str, description: &str) -> HttpRequest;

    /// The new audience's id (what goes in `external_audience_id`) from the answer to
    /// [`AudiencePlatform::plan_create_audience`]; else how to treat the answer (`Retry` or
    /// `Reject`).
    fn parse_created(&self, response: &HttpResponse) -> Result<String, Verdict>;
}

/// The audience platform of a destination of type `kind` with these settings: `Ok(None)` when
/// `kind` is not an audience type, an error when the settings are not valid for it.
pub fn audience_platform(
    kind: &str,
    settings: &Map<String, Value>,
) -> Result<Option<Box<dyn AudiencePlatform>>, SettingsError> {
    Ok(Some(match kind {
        "meta_audiences" => Box::new(meta_audiences::MetaAudiences::new(settings)?),
        "google_audiences" => Box::new(google_audiences::GoogleAudiences::new(settings)?),
        "tiktok_audiences" => Box::new(tiktok_audiences::TikTokAudiences::new(settings)?),
        _ => return Ok(None),
    }))
}

/// Settings every audience type has.
#[derive(Clone, Debug)]
pub(crate) struct Common {
    /// The `context.consent.categoryPreferences` key that, when `false`, keeps a person out.
    pub(crate) consent_category: String,
    /// The country of people whose events name none, for national phone numbers.
    pub(crate) default_country: Option<CountryCode>,
}

/// The settings names [`Common::read`] reads.
pub(crate) const COMMON_SETTINGS: [&str; 2] = ["consent_category", "default_country"];

impl Common {
    pub(crate) fn read(reader: &Reader<'_>) -> Result<Common, SettingsError> {
        let consent_category = reader
            .optional_str("consent_category")?
            .unwrap_or("advertising");
        if consent_category.len() > 64
            || consent_category
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                "consent_category",
                "must be a consent category id without spaces, at most 64 characters",
            ));
        }
        let default_country = match reader.optional_str("default_country")? {
            None => None,
            Some(text) => {
                let code = CountryCode::parse(text)
                    .filter(|code| tables::country(code.as_str()).is_some())
                    .ok_or_else(|| {
                        let known: Vec<&str> =
                            tables::COUNTRIES.iter().map(|c| c.code).collect();
                        invalid(
                            "default_country",
                            format!(
                                "must be one of the countries whose phone numbers Sluice completes: {}",
                                known.join(", ")
                            ),
                        )
                    })?;
                Some(code)
            }
        };
        Ok(Common {
            consent_category: consent_category.to_string(),
            default_country,
        })
    }

    /// The normalizing context of one person: their own country, else the default.
    pub(crate) fn context(&self, traits: &Traits<'_>) -> normalize::Context {
        let own = traits
            .get(member::Field::Country)
            .and_then(CountryCode::parse);
        normalize::Context {
            country: own.or(self.default_country),
        }
    }
}

/// The reason for a membership with no identifier the platform can use.
pub(crate) fn no_identifier(platform: &str, traits: &Traits<'_>) -> String {
    let present = traits.present();
    if present.is_empty() {
        format!("no identifier {platform} can match on: the event carries none")
    } else {
        format!(
            "no identifier {platform} can match on after normalization (present: {})",
            present.join(", ")
        )
    }
}

/// One membership mapped for a platform.
pub(crate) struct Row<'v, R> {
    /// Index of the event in the batch.
    pub(crate) event: usize,
    /// The platform's audience id, borrowed from the event when it is a string.
    pub(crate) audience: Cow<'v, str>,
    pub(crate) action: Action,
    pub(crate) data: R,
}

/// One request's share of a run.
pub(crate) struct Chunk<'a, R> {
    pub(crate) rows: &'a [Row<'a, R>],
    /// 1-based position of this chunk in its run.
    pub(crate) seq: usize,
    /// Chunks in the run.
    pub(crate) chunks: usize,
    /// Rows in the whole run.
    pub(crate) run_rows: usize,
    /// The run's first event (its JSON text).
    pub(crate) first_event: &'a str,
}

/// What reading one event gives: its audience, action and the platform's row, or why not.
pub(crate) type Read<'v, R> = Result<(Cow<'v, str>, Action, R), Refusal>;

/// Batches shorter than this are planned on the caller's thread alone (starting a thread costs
/// about what planning a few dozen members does).
const PARALLEL_FROM: usize = 256;

/// Threads a batch is planned on: the machine's cores, at most two (a delivery runner should
/// not take more than that from the rest of the node).
fn planning_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .min(2)
    })
}

/// What one thread made of its share of the events. The runs that start and end inside the
/// share are written there, while their rows are fresh in the thread's cache; the runs at its
/// edges may go on in the shares beside it, so their rows are handed back to be joined.
struct Share<'v, R> {
    /// The rows of the share's first run when it may continue the share before's last run
    /// (never for the first share).
    head: Vec<Row<'v, R>>,
    /// The head run reaches the share's end: no run of the share closed inside it.
    spans: bool,
    /// The requests of the runs that closed inside the share, in order.
    requests: Vec<Planned>,
    /// The rows of the share's last run when it may go on in the share after (never for the
    /// last share).
    tail: Vec<Row<'v, R>>,
    unsupported: Vec<(usize, String)>,
    invalid: Vec<(usize, String)>,
}

/// Plans a batch: each event is read (`read` gives the audience, action and the platform's
/// row, or why not, using the [`Scratch`] of the thread it runs on, which lives for one share of
/// one batch); consecutive rows that
/// `same_run` puts together form a run (it must be an equivalence: rows are compared with their
/// neighbours); each run is cut into chunks of at most `max` rows, one
/// request each (`request`).
///
/// Reading (normalizing, hashing) and writing requests are most of the work, and each run is
/// independent of the others, so a batch runs on [`planning_threads`] threads: the events split
/// into consecutive shares, and each thread writes a run's requests as soon as the run closes,
/// then drops its rows, all while they are in its cache. Only the runs that cross a share's
/// edge are joined and written afterwards, on the calling thread. Runs are cut the same way
/// whatever the shares, so the plan is the same on any number of threads.
pub(crate) fn plan_runs<'v, R: Send + Sync>(
    events: &[&'v str],
    max: usize,
    read: impl Fn(&'v str, &mut Scratch) -> Read<'v, R> + Sync,
    same_run: impl Fn(&Row<'v, R>, &Row<'v, R>) -> bool + Sync,
    request: impl Fn(&Chunk<'_, R>) -> HttpRequest + Sync,
) -> Plan {
    let threads = if events.len() >= PARALLEL_FROM {
        planning_threads()
    } else {
        1
    };
    plan_runs_on(threads, events, max, read, same_run, request)
}

/// [`plan_runs`] on `threads` threads.
fn plan_runs_on<'v, R: Send + Sync>(
    threads: usize,
    events: &[&'v str],
    max: usize,
    read: impl Fn(&'v str, &mut Scratch) -> Read<'v, R> + Sync,
    same_run: impl Fn(&Row<'v, R>, &Row<'v, R>) -> bool + Sync,
    request: impl Fn(&Chunk<'_, R>) -> HttpRequest + Sync,
) -> Plan {
    let max = max.max(1);
    let write = |run: &[Row<'v, R>], out: &mut Vec<Planned>| {
        write_run(run, events, max, &request, out);
    };
    let shares = in_parallel(events, threads, |first, share| {
        let mut scratch = Scratch::default();
        let mut out = Share {
            head: Vec::new(),
            spans: false,
            requests: Vec::new(),
            tail: Vec::new(),
            unsupported: Vec::new(),
            invalid: Vec::new(),
        };
        // The run being gathered, and whether it is the share's first run of a share
        // that is not the batch's first (it may continue the run before the share).
        let mut run: Vec<Row<'v, R>> = Vec::new();
        let mut head = first > 0;
        for (offset, text) in share.iter().enumerate() {
            let event = first + offset;
            let (audience, action, data) = match read(text, &mut scratch) {
                Ok(read) => read,
                Err(Refusal::Unsupported(reason)) => {
                    out.unsupported.push((event, reason));
                    continue;
                }
                Err(Refusal::Invalid(reason)) => {
                    out.invalid.push((event, reason));
                    continue;
                }
            };
            let row = Row {
                event,
                audience,
                action,
                data,
            };
            if run.last().is_some_and(|last| !same_run(last, &row)) {
                if head {
                    out.head = std::mem::replace(&mut run, Vec::with_capacity(64));
                    head = false;
                } else {
                    write(&run, &mut out.requests);
                    run.clear();
                }
            }
            run.push(row);
        }
        if head {
            out.head = run;
            out.spans = true;
        } else if first + share.len() == events.len() {
            write(&run, &mut out.requests);
        } else {
            out.tail = run;
        }
        out
    });
    let mut plan = Plan::default();
    // The run that crosses share edges, gathered from the shares' heads and tails.
    let mut open: Vec<Row<'v, R>> = Vec::new();
    for share in shares {
        if let Some(first) = share.head.first() {
            if open.last().is_some_and(|last| !same_run(last, first)) {
                write(&open, &mut plan.requests);
                open.clear();
            }
            open.extend(share.head);
        }
        if !share.spans {
            write(&open, &mut plan.requests);
            plan.requests.extend(share.requests);
            open = share.tail;
        }
        plan.unsupported.extend(share.unsupported);
        plan.invalid.extend(share.invalid);
    }
    write(&open, &mut plan.requests);
    plan
}

/// Writes one run's requests into `out`: the run cut into chunks of at most `max` rows.
fn write_run<'v, R>(
    run: &[Row<'v, R>],
    events: &[&'v str],
    max: usize,
    request: &impl Fn(&Chunk<'_, R>) -> HttpRequest,
    out: &mut Vec<Planned>,
) {
    let Some(first) = run.first() else {
        return;
    };
    let chunks = run.len().div_ceil(max);
    for (index, part) in run.chunks(max).enumerate() {
        let chunk = Chunk {
            rows: part,
            seq: index + 1,
            chunks,
            run_rows: run.len(),
            first_event: events[first.event],
        };
        out.push(Planned {
            request: request(&chunk),
            events: part.iter().map(|row| row.event).collect(),
        });
    }
}

/// `map` over `items` split into `threads` consecutive shares of about equal length (`map` is
/// given the position of its share's first item), the first on the caller's thread and the
/// others on scoped threads; the results in order.
fn in_parallel<T: Sync, U: Send>(
    items: &[T],
    threads: usize,
    map: impl Fn(usize, &[T]) -> U + Sync,
) -> Vec<U> {
    if threads <= 1 || items.len() < 2 {
        return vec![map(0, items)];
    }
    let mut cuts: Vec<usize> = (0..=threads)
        .map(|share| (items.len() * share).div_ceil(threads))
        .collect();
    cuts.dedup();
    let shares: Vec<(usize, &[T])> = cuts
        .windows(2)
        .map(|w| (w[0], &items[w[0]..w[1]]))
        .collect();
    let map = &map;
    std::thread::scope(|scope| {
        let helpers: Vec<_> = shares[1..]
            .iter()
            .map(|(first, share)| scope.spawn(move || map(*first, share)))
            .collect();
        let mut out = vec![map(shares[0].0, shares[0].1)];
        for helper in helpers {
            match helper.join() {
                Ok(theirs) => out.push(theirs),
                // A panic in a helper goes on in the caller's thread.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

/// Appends `text` as a JSON string literal.
pub(crate) fn push_json_str(out: &mut Vec<u8>, text: &str) {
    // Writing into a Vec cannot fail, and a &str always serializes.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// Appends a string that needs no escaping (hex digits, codes) in quotes.
pub(crate) fn push_plain_str(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

/// The reason text of an answer's HTTP status, without its body (which may echo personal
/// data back).
pub(crate) fn status_reason(platform: &str, status: u16) -> String {
    format!("{platform}: http {status}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support;

    #[test]
    fn the_lookup_knows_the_three_audience_types() {
        let meta = test_support::settings(r#"{"access_token": "t", "ad_account_id": "act_1"}"#);
        let platform = audience_platform("meta_audiences", &meta).ok().flatten();
        assert_eq!(
            platform.map(|p| (p.kind(), p.minimum_size())),
            Some(("meta_audiences", 100))
        );
        let google = test_support::settings(
            r#"{"access_token": "t", "operating_account_id": "123-456-7890"}"#,
        );
        let platform = audience_platform("google_audiences", &google)
            .ok()
            .flatten();
        assert_eq!(
            platform.map(|p| (p.kind(), p.minimum_size())),
            Some(("google_audiences", 100))
        );
        let tiktok = test_support::settings(r#"{"access_token": "t", "advertiser_id": "7001"}"#);
        let platform = audience_platform("tiktok_audiences", &tiktok)
            .ok()
            .flatten();
        assert_eq!(
            platform.map(|p| (p.kind(), p.minimum_size())),
            Some(("tiktok_audiences", 1000))
        );
        assert!(matches!(
            audience_platform("webhook", &Map::new()),
            Ok(None)
        ));
        assert!(audience_platform("meta_audiences", &Map::new()).is_err());
    }

    #[test]
    fn runs_are_consecutive_and_cut_at_the_limit() {
        let events: Vec<String> = (0..7).map(|i| i.to_string()).collect();
        let refs: Vec<&str> = events.iter().map(String::as_str).collect();
        // Audiences by event: a a a b a a x(unsupported); at most 2 rows a request.
        let audience = |text: &str| match text {
            "3" => Ok((Cow::Borrowed("b"), Action::Add, ())),
            "6" => Err(Refusal::Unsupported("no".into())),
            _ => Ok((Cow::Borrowed("a"), Action::Add, ())),
        };
        let seen = std::sync::Mutex::new(Vec::new());
        let plan = plan_runs(
            &refs,
            2,
            |text, _| audience(text),
            |a, b| a.audience == b.audience,
            |chunk| {
                seen.lock().unwrap_or_else(|e| e.into_inner()).push((
                    chunk.seq,
                    chunk.chunks,
                    chunk.run_rows,
                    chunk.first_event.to_string(),
                ));
                crate::request::json_post("http://x".into(), Vec::new(), Vec::new())
            },
        );
        let events: Vec<Vec<usize>> = plan.requests.iter().map(|p| p.events.clone()).collect();
        assert_eq!(events, vec![vec![0, 1], vec![2], vec![3], vec![4, 5]]);
        assert_eq!(plan.unsupported.len(), 1);
        assert_eq!(
            seen.into_inner().unwrap_or_else(|e| e.into_inner()),
            vec![
                (1, 2, 3, "0".to_string()),
                (2, 2, 3, "0".to_string()),
                (1, 1, 1, "3".to_string()),
                (1, 1, 2, "4".to_string()),
            ]
        );
    }

    #[test]
    fn plans_are_the_same_on_any_number_of_threads() {
        // Runs of varied lengths (some longer than a request), refusals among them.
        let events: Vec<String> = (0..3000u64)
            .map(|i| {
                let mixed = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60;
                if mixed == 0 {
                    "refused".to_string()
                } else {
                    format!("{}:{i}", (i / 7 + i / 301) % 3)
                }
            })
            .collect();
        let refs: Vec<&str> = events.iter().map(String::as_str).collect();
        let plan = |threads: usize| {
            let plan = plan_runs_on(
                threads,
                &refs,
                40,
                |text, scratch| {
                    scratch.text.clear();
                    scratch.text.push_str(text);
                    match text.split_once(':') {
                        Some((audience, _)) => Ok((Cow::Borrowed(audience), Action::Add, ())),
                        None => Err(Refusal::Invalid(scratch.text.clone())),
                    }
                },
                |a, b| a.audience == b.audience,
                |chunk| {
                    let body = format!(
                        "{} {}/{} of {} from {}",
                        chunk.rows[0].audience,
                        chunk.seq,
                        chunk.chunks,
                        chunk.run_rows,
                        chunk.first_event
                    );
                    crate::request::json_post("http://x".into(), Vec::new(), body.into_bytes())
                },
            );
            let requests: Vec<(Vec<u8>, Vec<usize>)> = plan
                .requests
                .iter()
                .map(|p| (p.request.body.clone(), p.events.clone()))
                .collect();
            (requests, plan.invalid)
        };
        let one = plan(1);
        assert!(one.0.len() > 100, "{} requests", one.0.len());
        assert!(!one.1.is_empty());
        let covered: usize = one.0.iter().map(|(_, events)| events.len()).sum();
        assert_eq!(covered + one.1.len(), refs.len());
        assert_eq!(plan(2), one);
        assert_eq!(plan(3), one);
    }

    /// Plans `audiences` (one letter an event, `-` refused) on `threads` threads, at most
    /// `max` rows a request; each request as its events and `seq/chunks of run_rows`.
    fn plan_letters(audiences: &str, threads: usize, max: usize) -> Vec<(Vec<usize>, String)> {
        let events: Vec<String> = audiences.chars().map(String::from).collect();
        let refs: Vec<&str> = events.iter().map(String::as_str).collect();
        let plan = plan_runs_on(
            threads,
            &refs,
            max,
            |text, _| match text {
                "-" => Err(Refusal::Invalid("refused".into())),
                _ => Ok((Cow::Borrowed(text), Action::Add, ())),
            },
            |a, b| a.audience == b.audience,
            |chunk| {
                let body = format!("{}/{} of {}", chunk.seq, chunk.chunks, chunk.run_rows);
                crate::request::json_post("http://x".into(), Vec::new(), body.into_bytes())
            },
        );
        plan.requests
            .into_iter()
            .map(|p| {
                (
                    p.events,
                    String::from_utf8_lossy(&p.request.body).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn runs_that_cover_whole_shares_are_joined_across_them() {
        // On three threads the shares are 0..30, 30..60 and 60..90.
        let b_spans_the_middle = format!("{}{}{}", "a".repeat(10), "b".repeat(70), "c".repeat(10));
        let plan = plan_letters(&b_spans_the_middle, 3, 25);
        let shape: Vec<(usize, usize, &str)> = plan
            .iter()
            .map(|(events, body)| (events[0], events.len(), body.as_str()))
            .collect();
        assert_eq!(
            shape,
            vec![
                (0, 10, "1/1 of 10"),
                (10, 25, "1/3 of 70"),
                (35, 25, "2/3 of 70"),
                (60, 20, "3/3 of 70"),
                (80, 10, "1/1 of 10"),
            ]
        );
        assert_eq!(plan_letters(&b_spans_the_middle, 1, 25), plan);
        assert_eq!(plan_letters(&b_spans_the_middle, 2, 25), plan);

        // A middle share with nothing but refusals: the run around it is one run.
        let refused_middle = format!("{}{}{}", "a".repeat(20), "-".repeat(50), "a".repeat(20));
        let plan = plan_letters(&refused_middle, 3, 100);
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].0, (0..20).chain(70..90).collect::<Vec<_>>());
        assert_eq!(plan[0].1, "1/1 of 40");
        assert_eq!(plan_letters(&refused_middle, 1, 100), plan);

        // Every share one run of its own, each closing at a share's edge.
        let edges = format!("{}{}{}", "a".repeat(30), "b".repeat(30), "a".repeat(30));
        let plan = plan_letters(&edges, 3, 100);
        let firsts: Vec<usize> = plan.iter().map(|(events, _)| events[0]).collect();
        assert_eq!(firsts, vec![0, 30, 60]);
        assert_eq!(plan_letters(&edges, 1, 100), plan);
    }

    #[test]
    fn common_settings_are_checked() {
        let read = |text: &str| {
            let map = test_support::settings(text);
            let reader = Reader::new(&map, &COMMON_SETTINGS).map_err(|e| e.to_string())?;
            Common::read(&reader).map_err(|e| e.to_string())
        };
        let common = read("{}").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(common.consent_category, "advertising");
        assert_eq!(common.default_country, None);
        let common = read(r#"{"default_country": "gb", "consent_category": "C0004"}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            common.default_country.map(|c| c.as_str().to_string()),
            Some("GB".into())
        );
        assert_eq!(common.consent_category, "C0004");
        assert!(read(r#"{"default_country": "ZZ"}"#).is_err());
        assert!(read(r#"{"consent_category": "ad vertising"}"#).is_err());
    }
}
