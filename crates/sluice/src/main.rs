//! The `sluice` binary.
//!
//! - `sluice serve` runs a node on the data directory.
//! - `sluice source create|list|rotate|disable|enable|delete` manage sources directly in the
//!   data directory (a running node sees the changes within a second).
//! - `sluice destination create|list|show|update|enable|disable|delete|reseal` manage
//!   destinations the same way (`destination.rs`), sealing their secrets with the vault.
//! - `sluice profile show|unmerge|token-create|token-list|token-revoke|settings|set-settings`
//!   for profiles and identity resolution (`profile.rs`).
//! - `sluice privacy regulate|regulations|show|suppressions|export|verify` for suppression and
//!   deletion requests, a person's data, and the proof that a person is gone (`privacy.rs`).
//!
//! Configuration is layered: defaults, then the TOML file given with `--config` (or
//! `SLUICE_CONFIG`), then `SLUICE_*` environment variables, then flags.

mod destination;
mod privacy;
mod profile;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde_json::json;
use sluice_server::config::LogFormat;
use sluice_server::{App, Config};
use sluice_store::{Source, StateStore, WorkspaceId, WriteKey};

// mimalloc: the ingest path allocates many small JSON values; glibc's malloc took about a
// fifth of the server's CPU under batch load (bench/RESULTS.md).
mod memory;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A self-hosted, privacy-first customer data platform"
)]
struct Cli {
    /// A TOML configuration file.
    #[arg(long, global = true, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    /// The data directory (overrides the configuration).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: tracking API, admin API, health and metrics.
    Serve(ServeArgs),
    /// Manage the sources of a workspace.
    #[command(subcommand)]
    Source(SourceCommand),
    /// Manage the destinations of a workspace.
    #[command(subcommand)]
    Destination(destination::DestinationCommand),
    /// Profiles and identity resolution: graphs, unmerges, Profile API tokens, settings.
    #[command(subcommand)]
    Profile(profile::ProfileCommand),
    /// Suppression and deletion requests (regulations) and their verification.
    #[command(subcommand)]
    Privacy(privacy::PrivacyCommand),
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on, e.g. 0.0.0.0:8088.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Log as JSON lines instead of text.
    #[arg(long, value_parser = ["text", "json"])]
    log_format: Option<String>,
}

#[derive(Args)]
pub(crate) struct Output {
    /// Print JSON (for scripts).
    #[arg(long)]
    pub(crate) json: bool,
    /// The workspace, by name.
    #[arg(long, default_value = "default")]
    pub(crate) workspace: String,
}

#[derive(Subcommand)]
enum SourceCommand {
    /// Create a source and print its write key (shown once).
    Create {
        name: String,
        #[command(flatten)]
        output: Output,
    },
    /// List the sources.
    List {
        #[command(flatten)]
        output: Output,
    },
    /// Replace a source's write key (the old one stops working) and print the new one.
    Rotate {
        /// Source id or name.
        source: String,
        #[command(flatten)]
        output: Output,
    },
    /// Refuse the source's events from now on (401 to its SDKs).
    Disable {
        source: String,
        #[command(flatten)]
        output: Output,
    },
    /// Accept the source's events again.
    Enable {
        source: String,
        #[command(flatten)]
        output: Output,
    },
    /// Delete a source and its write key.
    Delete {
        source: String,
        #[command(flatten)]
        output: Output,
    },
}

/// Environment variables read as configuration (`SLUICE_<KEY>`).
const CONFIG_KEYS: [&str; 19] = [
    "data_dir",
    "listen",
    "admin_token",
    "master_keys",
    "active_master_key",
    "master_key",
    "trusted_proxies",
    "dedup_window_secs",
    "dedup_capacity",
    "max_event_bytes",
    "max_request_bytes",
    "max_batch_events",
    "max_commit_events",
    "request_timeout_secs",
    "retention_interval_secs",
    "public_url",
    "oauth",
    "log_format",
    "log_level",
];

fn load_config(cli: &Cli, serve: Option<&ServeArgs>) -> Result<Config> {
    let mut figment = Figment::new();
    if let Some(path) = &cli.config {
        if !path.exists() {
            bail!("configuration file {} does not exist", path.display());
        }
        figment = figment.merge(Toml::file(path));
    }
    figment = figment.merge(Env::prefixed("SLUICE_").only(&CONFIG_KEYS));
    // OAuth settings one by one, `__` between the parts:
    // `SLUICE_OAUTH__WORKSPACES__DEFAULT__GOOGLE__CLIENT_SECRET=…`.
    figment = figment.merge(
        Env::prefixed("SLUICE_OAUTH__")
            .split("__")
            .map(|key| format!("oauth.{key}").into()),
    );
    if let Some(dir) = &cli.data_dir {
        figment = figment.merge(("data_dir", dir));
    }
    if let Some(serve) = serve {
        if let Some(listen) = serve.listen {
            figment = figment.merge(("listen", listen.to_string()));
        }
        if let Some(format) = &serve.log_format {
            figment = figment.merge(("log_format", format));
        }
    }
    figment.extract::<Config>().context("invalid configuration")
}

fn init_logging(config: &Config) -> Result<()> {
    let filter =
        tracing_subscriber::EnvFilter::try_new(&config.log_level).context("invalid log_level")?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match config.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|error| anyhow::anyhow!("cannot start logging: {error}"))
}

fn main() -> Result<()> {
    memory::configure();
    let cli = Cli::parse();
    match &cli.command {
        Command::Serve(args) => {
            let config = load_config(&cli, Some(args))?;
            init_logging(&config)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(serve(config))
        }
        Command::Source(command) => {
            let config = load_config(&cli, None)?;
            source_command(&config, command)
        }
        Command::Destination(command) => {
            let config = load_config(&cli, None)?;
            // Warnings about master keys (a generated key, keys missing) reach stderr.
            init_logging(&config)?;
            destination::run(&config, command)
        }
        Command::Profile(command) => {
            let config = load_config(&cli, None)?;
            profile::run(&config, command)
        }
        Command::Privacy(command) => {
            let config = load_config(&cli, None)?;
            init_logging(&config)?;
            privacy::run(&config, command)
        }
    }
}

async fn serve(config: Config) -> Result<()> {
    let data_dir = config.data_dir.clone();
    let app = App::build(config).await.context("cannot start")?;
    let addr = app.local_addr();
    let report = app.report();
    if let Some(token) = &report.generated_admin_token {
        // Printed once, to the terminal, not to the log.
        println!(
            "admin token for workspace \"{}\" (shown once; keep it safe): {}",
            report.workspace.name,
            token.expose()
        );
    }
    if report.created_workspace {
        tracing::info!(
            workspace = %report.workspace.name,
            "created the default workspace; next: `sluice source create NAME --data-dir {}` prints a write key, \
             then point an SDK at http://{addr} (Segment: host=\"http://{addr}\"; analytics.js: apiHost \"{addr}/v1\")",
            data_dir.display()
        );
    }
    tracing::info!(%addr, data_dir = %data_dir.display(), "listening");
    app.on_idle(memory::give_back)
        .run(shutdown_signal())
        .await
        .context("server stopped with an error")?;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM");
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub(crate) fn workspace(state: &StateStore, name: &str) -> Result<WorkspaceId> {
    if name == "default" {
        return Ok(state.ensure_default_workspace()?.0.id);
    }
    match state.workspace_by_name(name)? {
        Some(workspace) => Ok(workspace.id),
        None => bail!("workspace {name} not found"),
    }
}

/// A source as JSON, the same fields as the admin API's answer.
fn source_json(source: &Source, key: Option<&WriteKey>) -> serde_json::Value {
    let mut value = json!({
        "id": source.id,
        "workspace_id": source.workspace_id.0,
        "name": source.name,
        "enabled": source.enabled,
        "created_at": source.created_at,
    });
    if let Some(key) = key {
        value["write_key"] = json!(key.expose());
    }
    value
}

fn print_source(output: &Output, source: &Source, key: Option<&WriteKey>, verb: &str) {
    if output.json {
        println!("{}", source_json(source, key));
        return;
    }
    println!(
        "{verb} source {} ({}) in workspace {}",
        source.name, source.id, output.workspace
    );
    if let Some(key) = key {
        println!("write key (shown once): {}", key.expose());
        println!("send it as the basic auth user name, or as writeKey in the body");
    }
}

fn source_command(config: &Config, command: &SourceCommand) -> Result<()> {
    let state = sluice_server::startup::open_state(config)?;
    match command {
        SourceCommand::Create { name, output } => {
            let workspace = workspace(&state, &output.workspace)?;
            let (source, key) = state.create_source(&workspace, name)?;
            print_source(output, &source, Some(&key), "created");
        }
        SourceCommand::List { output } => {
            let workspace = workspace(&state, &output.workspace)?;
            let sources = state.list_sources(&workspace)?;
            if output.json {
                let list: Vec<_> = sources.iter().map(|s| source_json(s, None)).collect();
                println!("{}", json!({ "sources": list }));
            } else if sources.is_empty() {
                println!(
                    "no sources in workspace {}; create one with `sluice source create NAME`",
                    output.workspace
                );
            } else {
                for source in sources {
                    let status = if source.enabled {
                        "enabled"
                    } else {
                        "disabled"
                    };
                    println!(
                        "{}\t{}\t{}\t{}",
                        source.id, source.name, status, source.created_at
                    );
                }
            }
        }
        SourceCommand::Rotate { source, output } => {
            let workspace = workspace(&state, &output.workspace)?;
            let found = state.find_source(&workspace, source)?;
            let (updated, key) = state.rotate_write_key(&workspace, &found.id)?;
            print_source(output, &updated, Some(&key), "rotated the write key of");
        }
        SourceCommand::Disable { source, output } | SourceCommand::Enable { source, output } => {
            let enable = matches!(command, SourceCommand::Enable { .. });
            let workspace = workspace(&state, &output.workspace)?;
            let found = state.find_source(&workspace, source)?;
            let updated = state.set_source_enabled(&workspace, &found.id, enable)?;
            print_source(
                output,
                &updated,
                None,
                if enable { "enabled" } else { "disabled" },
            );
        }
        SourceCommand::Delete { source, output } => {
            let workspace = workspace(&state, &output.workspace)?;
            let found = state.find_source(&workspace, source)?;
            state.delete_source(&workspace, &found.id)?;
            print_source(output, &found, None, "deleted");
        }
    }
    Ok(())
}
