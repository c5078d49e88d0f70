//! `loadgen`: the ingestion benchmark's load generator and baseline server.
//!
//! - `loadgen baseline --listen 127.0.0.1:PORT`: a minimal HTTP server (see [`baseline`]).
//! - `loadgen run --url http://127.0.0.1:PORT --write-key K --mode batch|single ...`: sends
//!   Segment-style requests and prints one JSON line of results (see [`client`]).
//! - `loadgen sink --listen 127.0.0.1:PORT [--behaviour ok|fail|hang]`: a destination for the
//!   delivery benchmark (see [`sink`]).
//! - `loadgen identity-fill` / `loadgen profile-get`: the identity benchmark (see [`identity`]).
//! - `loadgen audience-eval`, `audience-history`, `audience-backfill`, `audience-sync`: the
//!   audience benchmarks (see [`audience`], [`backfill`], [`sync`]).
//!
//! Only loopback addresses are accepted, for both.

mod audience;
mod backfill;
mod baseline;
mod client;
mod identity;
mod payload;
mod sink;
mod sync;

use anyhow::Result;
use clap::{Parser, Subcommand};

// The allocator `sluice serve` runs with (crates/sluice/src/main.rs), so the audience
// benchmarks, which time the server's own code in this process, allocate as the server does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "Sluice ingestion benchmark: load generator and baseline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A minimal HTTP server that reads the body and answers 200 {"success":true}.
    Baseline(baseline::BaselineArgs),
    /// Send load and print one JSON line of results.
    Run(client::RunArgs),
    /// A destination that counts events and their latency from receipt by Sluice.
    Sink(sink::SinkArgs),
    /// Fill a data directory with people's events and time the profile consumer on them.
    IdentityFill(identity::FillArgs),
    /// GET random profiles' traits through the Profile API and print the latency.
    ProfileGet(identity::GetArgs),
    /// The audience engine's cost per event with 50 audiences (in memory, no IO).
    AudienceEval(audience::EvalArgs),
    /// Write a synthetic event history (JSON lines) for the backfill benchmark.
    AudienceHistory(backfill::HistoryArgs),
    /// Time the audience engine's backfill over a history written by audience-history.
    AudienceBackfill(backfill::BackfillArgs),
    /// Members per second each ad-platform adapter plans (normalize, hash, batch).
    AudienceSync(sync::SyncArgs),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Baseline(args) => baseline::serve(args),
        Command::Run(args) => client::run(args),
        Command::Sink(args) => sink::serve(args),
        Command::IdentityFill(args) => identity::fill(args),
        Command::ProfileGet(args) => identity::get(args),
        Command::AudienceEval(args) => audience::eval(args),
        Command::AudienceHistory(args) => backfill::history(args),
        Command::AudienceBackfill(args) => backfill::backfill(args),
        Command::AudienceSync(args) => sync::sync(args),
    }
}
