//! How a backfill shares a batch of profiles among threads: runs of neighbouring profiles of
//! about equal work. Splitting by the number of profiles would not do: a few very active
//! people have most of the events, and their ids are close together (ids are given in order
//! of first appearance, and the active appear early), so one thread would get most of them.
//!
//! The runs are handed out as threads become free ([`on_threads`]), several per thread: a
//! thread slowed down (by a heavy profile, or by the machine's other work) takes fewer runs,
//! and the others take more, instead of the whole batch waiting for it.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What one profile's fixed work (a fresh state, its traits, an evaluation, its stored row)
/// weighs, in bytes of recorded events: about two events' worth.
const PROFILE_WEIGHT: usize = 256;

/// The weight of a profile whose recorded events take `history_bytes`.
pub fn profile_weight(history_bytes: usize) -> usize {
    history_bytes.saturating_add(PROFILE_WEIGHT)
}

/// Splits items of these weights into at most `parts` runs of neighbours that together cover
/// them all in order, none empty, each of about `total / parts`: a run ends once the weight
/// up to it reaches its share of the total.
pub fn balanced_runs(weights: &[usize], parts: usize) -> Vec<Range<usize>> {
    let parts = parts.max(1);
    let total: u128 = weights.iter().map(|w| *w as u128).sum();
    let mut runs = Vec::with_capacity(parts);
    let (mut start, mut done) = (0, 0u128);
    for part in 1..=parts {
        if start == weights.len() {
            break;
        }
        let share = total * part as u128 / parts as u128;
        let mut end = start;
        while end < weights.len() && (end == start || done < share) {
            done += weights[end] as u128;
            end += 1;
        }
        if part == parts {
            end = weights.len();
        }
        runs.push(start..end);
        start = end;
    }
    runs
}

/// Runs handed to each thread of [`on_threads`], on average.
pub const RUNS_PER_THREAD: usize = 8;

/// `work` over each of `runs` on `threads` threads started for the purpose, each taking the
/// next run not yet taken when it is done with one; the results in the order of `runs`. A
/// panic in `work` is raised again here.
pub fn on_threads<R: Send>(
    runs: &[Range<usize>],
    threads: usize,
    work: impl Fn(Range<usize>) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let (next, work) = (&next, &work);
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.clamp(1, runs.len().max(1)))
            .map(|_| {
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let at = next.fetch_add(1, Ordering::Relaxed);
                        let Some(run) = runs.get(at) else {
                            return mine;
                        };
                        mine.push((at, work(run.clone())));
                    }
                })
            })
            .collect();
        let mut done = Vec::with_capacity(runs.len());
        for handle in handles {
            match handle.join() {
                Ok(mine) => done.extend(mine),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        done
    });
    done.sort_unstable_by_key(|(at, _)| *at);
    done.into_iter().map(|(_, result)| result).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn weight(weights: &[usize], run: &Range<usize>) -> usize {
        weights[run.clone()].iter().sum()
    }

    #[test]
    fn runs_on_threads_give_every_result_once_in_order() {
        let runs: Vec<Range<usize>> = (0..50).map(|i| i * 3..i * 3 + 3).collect();
        let seen = std::sync::Mutex::new(Vec::new());
        for threads in [1, 2, 3, 60] {
            let results = on_threads(&runs, threads, |run| {
                seen.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(run.start);
                // Uneven work, so threads finish runs out of order.
                if run.start % 7 == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                run.start * 10
            });
            let expected: Vec<usize> = runs.iter().map(|run| run.start * 10).collect();
            assert_eq!(results, expected, "{threads} threads");
            let mut seen = std::mem::take(&mut *seen.lock().unwrap_or_else(|e| e.into_inner()));
            seen.sort_unstable();
            assert_eq!(seen, runs.iter().map(|run| run.start).collect::<Vec<_>>());
        }
        assert!(on_threads(&[], 2, |run| run.len()).is_empty());
    }

    #[test]
    #[should_panic(expected = "run 4")]
    fn a_panic_in_a_run_is_raised_again() {
        let runs: Vec<Range<usize>> = (0..8).map(|i| i..i + 1).collect();
        on_threads(&runs, 2, |run| assert!(run.start != 4, "run {}", run.start));
    }

    #[test]
    fn heavy_neighbours_are_shared_out() {
        // Ten heavy profiles first, then ninety light ones: half the profiles each would give
        // the first thread 10 * 1,000 + 40 * 10 of 10,900.
        let mut weights = vec![1_000; 10];
        weights.extend(vec![10; 90]);
        let runs = balanced_runs(&weights, 2);
        assert_eq!(runs, vec![0..6, 6..100]);
        assert_eq!(weight(&weights, &runs[0]), 6_000);
        assert_eq!(weight(&weights, &runs[1]), 4_900);
    }

    #[test]
    fn few_items_give_fewer_runs() {
        assert_eq!(balanced_runs(&[5, 7], 4), vec![0..1, 1..2]);
        assert_eq!(balanced_runs(&[], 3), Vec::<Range<usize>>::new());
        assert_eq!(balanced_runs(&[0, 0, 0], 0), vec![0..3]);
        assert_eq!(profile_weight(usize::MAX), usize::MAX);
    }

    proptest! {
        #[test]
        fn runs_cover_every_item_once_in_order_and_share_the_weight(
            weights in prop::collection::vec(0usize..10_000, 0..200),
            parts in 1usize..6,
        ) {
            let runs = balanced_runs(&weights, parts);
            prop_assert!(runs.len() <= parts);
            let mut next = 0;
            for run in &runs {
                prop_assert_eq!(run.start, next);
                prop_assert!(run.end > run.start);
                next = run.end;
            }
            prop_assert_eq!(next, weights.len());
            // No run but the last goes past its share by more than its last item.
            let total: usize = weights.iter().sum();
            let heaviest = weights.iter().copied().max().unwrap_or(0);
            for run in &runs[..runs.len().saturating_sub(1)] {
                prop_assert!(weight(&weights, run) <= total.div_ceil(parts) + heaviest);
            }
        }
    }
}
