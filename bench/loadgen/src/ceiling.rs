//! `loadgen identity-ceiling`: what the profile consumer could cost per event with the identity
//! graph, traits and history in memory and one append-only change record on disk — the store
//! issue 4's 100,000 events/s would need — measured over a log `identity-fill` wrote.
//!
//! Not a store: nothing here can be read back, erased or unmerged. It times the work such a
//! store cannot avoid, on one thread, so the design can be judged before it is built:
//! - read the log in the consumer's batches and parse each event (`serde_json::Value`);
//! - extract its identifiers and traits with the workspace's real rules (limits included);
//! - resolve them against [`MemoryGraph`] and apply the decision;
//! - keep the person's traits (latest by event time) and history (the event's log sequence
//!   number) in memory;
//! - append a compact change record (sequence number, profile, and for an event that changed
//!   the graph or the traits, its identifiers and traits as text) to a file, written and
//!   `fdatasync`ed once per batch as the consumer's commit would be.
//!
//! `MemoryGraph` hashes whole identifiers with SipHash and clones them: a real store would do
//! better, so the rate printed is a floor for that design, not a ceiling.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{Value, json};
use sluice_identity::{Collection, MemoryGraph, ProfileId, extract, resolve};
use sluice_store::{EventLog, INGEST_BATCH, SourceScope};

use crate::identity::Filled;

#[derive(Args)]
pub struct CeilingArgs {
    /// A data directory `loadgen identity-fill` filled (only its log and state are read).
    #[arg(long)]
    data_dir: PathBuf,
}

/// One trait as the profile holds it: name, value as JSON text, event time.
type Trait = (String, String, i64);

pub fn ceiling(args: CeilingArgs) -> Result<()> {
    let Filled {
        workspace,
        source_id,
        rules,
        runtime,
        log,
    } = Filled::open(&args.data_dir)?;
    let scope = SourceScope {
        workspace_id: workspace,
        source_id,
    };
    let record_path = args.data_dir.join("ceiling.record");
    let mut record = std::fs::File::create(&record_path).context("change record")?;

    let started = Instant::now();
    let mut graph = MemoryGraph::default();
    let mut traits: HashMap<ProfileId, Vec<Trait>> = HashMap::new();
    let mut history: HashMap<ProfileId, Vec<i64>> = HashMap::new();
    let mut buffer: Vec<u8> = Vec::with_capacity(4 << 20);
    let (mut events, mut merges, mut recorded_bytes) = (0_u64, 0_u64, 0_u64);
    let mut cursor = 0;
    loop {
        let batch = runtime.block_on(log.read(&scope, cursor, INGEST_BATCH))?;
        let Some(last) = batch.last() else { break };
        cursor = last.seq;
        for stored in &batch {
            events += 1;
            let Ok(body) = serde_json::from_str::<Value>(&stored.event.body) else {
                continue;
            };
            // The event's time, read as the consumer reads it.
            let at_ms = body
                .get("timestamp")
                .and_then(Value::as_str)
                .and_then(sluice_spec::timestamp::parse)
                .map_or(stored.event.received_at_ms, sluice_spec::timestamp::to_ms);
            let extracted = extract(&body, &rules);
            let Ok(decision) = resolve(
                &mut graph,
                &rules,
                Collection::Users,
                &extracted.user_ids,
                at_ms,
            );
            merges += decision.absorbed.len() as u64;
            let changed_graph =
                decision.create || !decision.added.is_empty() || !decision.absorbed.is_empty();
            let Some(profile) = graph.apply(Collection::Users, &decision, at_ms) else {
                continue;
            };
            history.entry(profile).or_default().push(stored.seq);
            buffer.extend_from_slice(&stored.seq.to_le_bytes());
            buffer.extend_from_slice(&profile.to_le_bytes());
            if changed_graph {
                for id in &extracted.user_ids {
                    buffer.extend_from_slice(id.kind.as_bytes());
                    buffer.push(0);
                    buffer.extend_from_slice(id.value.as_bytes());
                    buffer.push(0);
                }
            }
            buffer.push(0xff);
            if let Some(new) = extracted.user_traits {
                serde_json::to_writer(&mut buffer, new)?;
                let held = traits.entry(profile).or_default();
                for (name, value) in new {
                    let text = value.to_string();
                    match held.iter_mut().find(|(known, _, _)| known == name) {
                        Some(slot) if slot.2 <= at_ms => {
                            slot.1 = text;
                            slot.2 = at_ms;
                        }
                        Some(_) => {}
                        None => held.push((name.clone(), text, at_ms)),
                    }
                }
            }
            buffer.push(b'\n');
        }
        record.write_all(&buffer)?;
        record.sync_data()?;
        recorded_bytes += buffer.len() as u64;
        buffer.clear();
    }
    let secs = started.elapsed().as_secs_f64();
    runtime.block_on(log.close());
    std::fs::remove_file(&record_path)?;
    println!(
        "{}",
        json!({
            "events": events,
            "secs": secs,
            "events_per_s": events as f64 / secs,
            "profiles": graph.profiles().count(),
            "merges": merges,
            "profiles_with_traits": traits.len(),
            "profiles_with_history": history.len(),
            "record_bytes_per_event": recorded_bytes as f64 / events.max(1) as f64,
        })
    );
    Ok(())
}
