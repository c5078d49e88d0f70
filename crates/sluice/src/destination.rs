//! `sluice destination …`: destinations managed directly in the data directory, through the
//! same checks and sealing as the admin API (`sluice_server::admin::destinations`). Secret
//! settings are never printed: output shows them as `[redacted]`, like the API.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};
use sluice_privacy::Vault;
use sluice_server::Config;
use sluice_server::admin::delivery::{letter_json, parse_time, replay_json};
use sluice_server::admin::destinations::{
    CreateDestination, DestinationView, UpdateDestination, create_destination, update_destination,
};
use sluice_server::error::ApiError;
use sluice_server::startup::{open_state, open_vault};
use sluice_spec::timestamp::now_ms;
use sluice_store::{
    DeliveryStore, Destination, DestinationChange, NewReplay, StateStore, StoredSettings,
    WorkspaceId,
};

use crate::{Output, workspace};

#[derive(Subcommand)]
pub(crate) enum DestinationCommand {
    /// Create a destination (its secret settings are sealed, never printed).
    Create {
        name: String,
        /// The destination type: webhook, mixpanel, amplitude, slack...
        #[arg(long = "type", value_name = "TYPE")]
        kind: String,
        /// A source (id or name) whose events it receives; repeat for several.
        #[arg(long = "source", value_name = "SOURCE", required = true)]
        sources: Vec<String>,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        args: DestinationArgs,
    },
    /// List the destinations.
    List {
        #[command(flatten)]
        output: Output,
    },
    /// Show a destination (secret settings redacted).
    Show {
        /// Destination id or name.
        destination: String,
        #[command(flatten)]
        output: Output,
    },
    /// Change a destination: settings merge with the stored ones (an omitted secret keeps its
    /// value; KEY:=null removes a setting).
    Update {
        destination: String,
        #[arg(long)]
        name: Option<String>,
        /// Replaces the sources (id or name); repeat for several.
        #[arg(long = "source", value_name = "SOURCE")]
        sources: Vec<String>,
        #[command(flatten)]
        args: DestinationArgs,
    },
    /// Deliver to the destination again.
    Enable {
        destination: String,
        #[command(flatten)]
        output: Output,
    },
    /// Stop delivering to the destination (its settings are kept).
    Disable {
        destination: String,
        #[command(flatten)]
        output: Output,
    },
    /// Delete a destination and its sealed settings.
    Delete {
        destination: String,
        #[command(flatten)]
        output: Output,
    },
    /// List a destination's dead letters (events it refused or that ran out of retries).
    DeadLetters {
        destination: String,
        /// Only those with an id above this one (paging).
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        output: Output,
    },
    /// Send dead letters again (all of them, or those given with --id); a running node picks
    /// them up within a second.
    Retry {
        destination: String,
        /// A dead letter id; repeat for several.
        #[arg(long = "id", value_name = "ID")]
        ids: Vec<i64>,
        #[command(flatten)]
        output: Output,
    },
    /// Re-deliver a source's logged events (received in [--from, --to), or all) to the
    /// destination; a running node picks the replay up within a second.
    Replay {
        destination: String,
        /// Source id or name.
        #[arg(long)]
        source: String,
        /// RFC 3339 time, e.g. 2026-11-23T00:00:00Z.
        #[arg(long)]
        from: Option<String>,
        /// RFC 3339 time (exclusive).
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// List a destination's replays, newest first.
    Replays {
        destination: String,
        #[command(flatten)]
        output: Output,
    },
    /// Seal every destination's secrets and every OAuth connection's tokens, in every
    /// workspace, under the active master key (the step of a key rotation before the old key
    /// is removed).
    Reseal {
        /// Print JSON (for scripts).
        #[arg(long)]
        json: bool,
    },
}

/// What create and update both take.
#[derive(Args)]
pub(crate) struct DestinationArgs {
    #[command(flatten)]
    settings: SettingsArgs,
    /// A consent category an event must allow to be sent; repeat for several (on update,
    /// replaces the list).
    #[arg(long = "consent-category", value_name = "CATEGORY")]
    consent_categories: Vec<String>,
    /// Whether the destination uses data for advertising or sells or shares it (then Global
    /// Privacy Control and "do not sell" opt-outs keep events from it).
    #[arg(long, value_name = "BOOL")]
    advertising: Option<bool>,
    #[command(flatten)]
    delivery: DeliveryArgs,
    #[command(flatten)]
    output: Output,
}

#[derive(Args)]
pub(crate) struct SettingsArgs {
    /// A setting: KEY=VALUE (a string) or KEY:=JSON (a number, boolean, object, null); repeat
    /// for several. Prefer --settings-json for secrets: arguments are visible in the process
    /// list and stay in shell history.
    #[arg(long = "setting", value_name = "KEY=VALUE")]
    settings: Vec<String>,
    /// Settings as a JSON object, from a file or `-` for standard input (not echoed on a
    /// terminal); --setting values apply on top.
    #[arg(long, value_name = "FILE|-")]
    settings_json: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct DeliveryArgs {
    /// Most requests to the tool at once.
    #[arg(long)]
    max_in_flight: Option<u32>,
    /// Most requests per second, or `none`.
    #[arg(long, value_name = "N|none")]
    rate_limit: Option<String>,
    /// Dead-letter an event still failing after this many seconds.
    #[arg(long)]
    retry_max_age_secs: Option<u64>,
    /// Dead-letter an event after this many failed attempts.
    #[arg(long)]
    retry_max_attempts: Option<u32>,
}

impl DeliveryArgs {
    /// The options given, as a patch over the current (or default) ones.
    fn patch(&self) -> Result<Map<String, Value>> {
        let mut patch = Map::new();
        if let Some(value) = self.max_in_flight {
            patch.insert("max_in_flight".into(), json!(value));
        }
        if let Some(rate) = &self.rate_limit {
            let value = match rate.as_str() {
                "none" => Value::Null,
                number => json!(
                    number
                        .parse::<u32>()
                        .context("--rate-limit takes a number or `none`")?
                ),
            };
            patch.insert("rate_limit_per_sec".into(), value);
        }
        if let Some(value) = self.retry_max_age_secs {
            patch.insert("retry_max_age_secs".into(), json!(value));
        }
        if let Some(value) = self.retry_max_attempts {
            patch.insert("retry_max_attempts".into(), json!(value));
        }
        Ok(patch)
    }
}

impl SettingsArgs {
    /// The settings given, or `None` when neither flag was.
    fn read(&self) -> Result<Option<Map<String, Value>>> {
        if self.settings.is_empty() && self.settings_json.is_none() {
            return Ok(None);
        }
        let mut settings = match &self.settings_json {
            Some(path) => read_json_object(path)?,
            None => Map::new(),
        };
        for setting in &self.settings {
            let (key, value) = parse_setting(setting)?;
            settings.insert(key, value);
        }
        Ok(Some(settings))
    }
}

/// `KEY=VALUE` (a string) or `KEY:=JSON`.
fn parse_setting(text: &str) -> Result<(String, Value)> {
    let Some((key, value)) = text.split_once('=') else {
        bail!("--setting takes KEY=VALUE or KEY:=JSON");
    };
    let (key, value) = match key.strip_suffix(':') {
        // The value may be a credential: the error does not repeat it.
        Some(key) => (
            key,
            serde_json::from_str(value)
                .map_err(|_| anyhow!("--setting {key}:= needs a JSON value"))?,
        ),
        None => (key, Value::String(value.to_owned())),
    };
    if key.is_empty() {
        bail!("--setting needs a key before `=`");
    }
    Ok((key.to_owned(), value))
}

fn read_json_object(path: &Path) -> Result<Map<String, Value>> {
    let text = if path == Path::new("-") {
        read_stdin()?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    match serde_json::from_str(&text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => bail!("--settings-json: {} is not a JSON object", path.display()),
    }
}

/// Standard input; on a terminal, with echo turned off while the user types.
fn read_stdin() -> Result<String> {
    let stdin = std::io::stdin();
    let _quiet = stdin.is_terminal().then(|| {
        eprintln!("settings as a JSON object (not echoed), then Ctrl-D:");
        NoEcho::start()
    });
    let mut text = String::new();
    stdin
        .lock()
        .read_to_string(&mut text)
        .context("cannot read standard input")?;
    Ok(text)
}

/// Terminal echo turned off (with `stty`) until dropped.
struct NoEcho;

impl NoEcho {
    fn start() -> NoEcho {
        stty("-echo");
        NoEcho
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        stty("echo");
    }
}

fn stty(mode: &str) {
    // Best effort: without stty the input is echoed, as with any other tool.
    let _ = std::process::Command::new("stty")
        .arg(mode)
        .stdin(std::process::Stdio::inherit())
        .status();
}

fn api(error: ApiError) -> anyhow::Error {
    match error.field {
        Some(field) => anyhow!("{} ({}, field {field})", error.message, error.code),
        None => anyhow!("{} ({})", error.message, error.code),
    }
}

/// Source ids from ids or names.
fn source_ids(
    state: &StateStore,
    workspace: &WorkspaceId,
    given: &[String],
) -> Result<Vec<String>> {
    given
        .iter()
        .map(|source| {
            state
                .find_source(workspace, source)
                .map(|found| found.id)
                .map_err(|_| anyhow!("source {source} not found"))
        })
        .collect()
}

fn print(output: &Output, destination: Destination, verb: &str) -> Result<()> {
    let view = DestinationView::new(destination);
    if output.json {
        println!("{}", serde_json::to_string(&view)?);
        return Ok(());
    }
    let heading = format!(
        "destination {} ({}) of type {} in workspace {}",
        view.name, view.id, view.kind, output.workspace
    );
    match verb {
        "" => println!("{heading}"),
        verb => println!("{verb} {heading}"),
    }
    let listed = |items: &[String]| match items {
        [] => "(none)".to_owned(),
        items => items.join(", "),
    };
    println!("  enabled: {}", view.enabled);
    println!("  sources: {}", listed(&view.sources));
    println!("  consent categories: {}", listed(&view.consent_categories));
    println!("  advertising or sale: {}", view.advertising);
    println!("  delivery: {}", serde_json::to_string(&view.delivery)?);
    println!("  settings:");
    for (key, value) in &view.settings {
        // Secret settings are already "[redacted]" in the view.
        println!("    {key} = {value}");
    }
    Ok(())
}

struct Session {
    state: StateStore,
    vault: Vault,
    workspace: WorkspaceId,
}

impl Session {
    fn open(config: &Config, output: &Output) -> Result<Session> {
        let state = open_state(config)?;
        let vault = open_vault(config, &state)?;
        let workspace = workspace(&state, &output.workspace)?;
        Ok(Session {
            state,
            vault,
            workspace,
        })
    }

    fn find(&self, destination: &str) -> Result<Destination> {
        Ok(self.state.find_destination(&self.workspace, destination)?)
    }

    fn update(&self, destination: &str, request: UpdateDestination) -> Result<Destination> {
        let found = self.find(destination)?;
        update_destination(
            &self.state,
            &self.vault,
            &self.workspace,
            &found.id.0,
            request,
        )
        .map_err(api)
    }
}

pub(crate) fn run(config: &Config, command: &DestinationCommand) -> Result<()> {
    match command {
        DestinationCommand::Create {
            name,
            kind,
            sources,
            disabled,
            args,
        } => {
            let session = Session::open(config, &args.output)?;
            let request = CreateDestination {
                name: name.clone(),
                kind: kind.clone(),
                settings: args.settings.read()?.unwrap_or_default(),
                sources: source_ids(&session.state, &session.workspace, sources)?,
                enabled: !disabled,
                consent_categories: args.consent_categories.clone(),
                advertising: args.advertising.unwrap_or(false),
                delivery: args.delivery.patch()?,
            };
            let created =
                create_destination(&session.state, &session.vault, &session.workspace, request)
                    .map_err(api)?;
            print(&args.output, created, "created")
        }
        DestinationCommand::List { output } => {
            let session = Session::open(config, output)?;
            let destinations = session.state.list_destinations(&session.workspace)?;
            if output.json {
                let list: Vec<DestinationView> =
                    destinations.into_iter().map(DestinationView::new).collect();
                println!("{}", json!({ "destinations": list }));
            } else if destinations.is_empty() {
                println!(
                    "no destinations in workspace {}; create one with `sluice destination create NAME --type TYPE --source SOURCE`",
                    output.workspace
                );
            } else {
                for destination in destinations {
                    let status = if destination.enabled {
                        "enabled"
                    } else {
                        "disabled"
                    };
                    println!(
                        "{}\t{}\t{}\t{}\t{} source(s)",
                        destination.id,
                        destination.name,
                        destination.kind,
                        status,
                        destination.sources.len()
                    );
                }
            }
            Ok(())
        }
        DestinationCommand::Show {
            destination,
            output,
        } => {
            let session = Session::open(config, output)?;
            print(output, session.find(destination)?, "")
        }
        DestinationCommand::Update {
            destination,
            name,
            sources,
            args,
        } => {
            let session = Session::open(config, &args.output)?;
            let delivery = args.delivery.patch()?;
            let consent_categories = &args.consent_categories;
            let request = UpdateDestination {
                name: name.clone(),
                settings: args.settings.read()?,
                sources: if sources.is_empty() {
                    None
                } else {
                    Some(source_ids(&session.state, &session.workspace, sources)?)
                },
                consent_categories: (!consent_categories.is_empty())
                    .then(|| consent_categories.clone()),
                advertising: args.advertising,
                delivery: (!delivery.is_empty()).then_some(delivery),
                ..UpdateDestination::default()
            };
            print(
                &args.output,
                session.update(destination, request)?,
                "updated",
            )
        }
        DestinationCommand::Enable {
            destination,
            output,
        }
        | DestinationCommand::Disable {
            destination,
            output,
        } => {
            let enable = matches!(command, DestinationCommand::Enable { .. });
            let session = Session::open(config, output)?;
            let request = UpdateDestination {
                enabled: Some(enable),
                ..UpdateDestination::default()
            };
            let verb = if enable { "enabled" } else { "disabled" };
            print(output, session.update(destination, request)?, verb)
        }
        DestinationCommand::Delete {
            destination,
            output,
        } => {
            let session = Session::open(config, output)?;
            let found = session.find(destination)?;
            session
                .state
                .delete_destination(&session.workspace, &found.id.0)?;
            // What was held only for it goes with it: dead letters, replays, PII overrides
            // (the node forgets its cursors in the log at its next retention sweep).
            delivery_store(config)?.forget_destination(&session.workspace, &found.id.0)?;
            session
                .state
                .forget_destination_settings(&session.workspace, &found.id.0)?;
            print(output, found, "deleted")
        }
        DestinationCommand::Reseal { json } => reseal(config, *json),
        DestinationCommand::DeadLetters {
            destination,
            after,
            limit,
            output,
        } => {
            let session = Session::open(config, output)?;
            let found = session.find(destination)?;
            let letters = delivery_store(config)?.dead_letters(
                &session.workspace,
                &found.id.0,
                *after,
                (*limit).clamp(1, 1_000),
            )?;
            if output.json {
                let views: Vec<Value> = letters.iter().map(|l| letter_json(l, true)).collect();
                println!("{}", json!({ "dead_letters": views }));
            } else if letters.is_empty() {
                println!("no dead letters for {}", found.name);
            } else {
                for letter in &letters {
                    let status = letter
                        .letter
                        .status
                        .map_or_else(|| "-".to_owned(), |s| s.to_string());
                    println!(
                        "{}\t{}\t{}\t{} attempt(s)\t{}",
                        letter.id,
                        letter.letter.message_id,
                        status,
                        letter.letter.attempts,
                        letter.letter.reason
                    );
                }
            }
            Ok(())
        }
        DestinationCommand::Retry {
            destination,
            ids,
            output,
        } => {
            let session = Session::open(config, output)?;
            let found = session.find(destination)?;
            let ids = (!ids.is_empty()).then_some(ids.as_slice());
            let marked =
                delivery_store(config)?.request_retry(&session.workspace, &found.id.0, ids)?;
            if output.json {
                println!("{}", json!({ "queued": marked }));
            } else {
                println!(
                    "{marked} dead letter(s) of {} queued to be sent again",
                    found.name
                );
            }
            Ok(())
        }
        DestinationCommand::Replay {
            destination,
            source,
            from,
            to,
            output,
        } => {
            let session = Session::open(config, output)?;
            let found = session.find(destination)?;
            let source_id = source_ids(
                &session.state,
                &session.workspace,
                std::slice::from_ref(source),
            )?
            .remove(0);
            if !found.sources.contains(&source_id) {
                bail!("{} is not connected to source {source}", found.name);
            }
            let replay = NewReplay {
                workspace_id: session.workspace.clone(),
                destination_id: found.id.0.clone(),
                source_id,
                from_ms: parse_time(from, "from").map_err(api)?,
                to_ms: parse_time(to, "to").map_err(api)?,
                last_seq: None,
            };
            let job = delivery_store(config)?.add_replay(&replay, now_ms())?;
            if output.json {
                println!("{}", replay_json(&job));
            } else {
                println!(
                    "replay {} of source {source} to {} queued",
                    job.id, found.name
                );
            }
            Ok(())
        }
        DestinationCommand::Replays {
            destination,
            output,
        } => {
            let session = Session::open(config, output)?;
            let found = session.find(destination)?;
            let jobs = delivery_store(config)?.replays(&session.workspace, &found.id.0, false)?;
            let views: Vec<Value> = jobs.iter().map(replay_json).collect();
            if output.json {
                println!("{}", json!({ "replays": views }));
            } else if views.is_empty() {
                println!("no replays for {}", found.name);
            } else {
                for view in views {
                    println!(
                        "{}\t{}\t{}\t{} event(s)",
                        view["id"], view["source_id"], view["state"], view["events"]
                    );
                }
            }
            Ok(())
        }
    }
}

/// The delivery engine's store (dead letters, replays) in the data directory.
fn delivery_store(config: &Config) -> Result<DeliveryStore> {
    Ok(DeliveryStore::open(&config.data_dir.join("delivery.db"))?)
}

/// Seals every destination not yet under the active key again, in every workspace.
fn reseal(config: &Config, as_json: bool) -> Result<()> {
    let state = open_state(config)?;
    let vault = open_vault(config, &state)?;
    let active = vault.ring().active().clone();
    let (mut resealed, mut current, mut failed) = (0usize, 0usize, Vec::new());
    for destination in state.all_destinations()? {
        if Vault::key_id_of(&destination.settings.sealed).ok().as_ref() == Some(&active) {
            current += 1;
            continue;
        }
        let outcome = state.update_destination(
            &destination.workspace_id,
            &destination.id.0,
            |now| -> Result<DestinationChange> {
                let context = sluice_store::settings_context(&now.workspace_id, &now.id);
                let sealed = vault
                    .reseal(&now.settings.sealed, &context)?
                    .unwrap_or_else(|| now.settings.sealed.clone());
                Ok(DestinationChange {
                    settings: Some(StoredSettings {
                        sealed,
                        ..now.settings.clone()
                    }),
                    ..DestinationChange::default()
                })
            },
        );
        match outcome {
            Ok(_) => resealed += 1,
            Err(error) => failed.push(json!({
                "id": destination.id.0,
                "workspace_id": destination.workspace_id.0,
                "name": destination.name,
                "error": error.to_string(),
            })),
        }
    }
    let connections = reseal_connections(&state, &vault)?;
    failed.extend(connections.failed.iter().cloned());
    if as_json {
        println!(
            "{}",
            json!({
                "active_key": active.as_str(),
                "resealed": resealed,
                "current": current,
                "connections": {"resealed": connections.resealed, "current": connections.current},
                "failed": failed,
            })
        );
    } else {
        println!(
            "resealed {resealed} destination(s) under master key {active}; {current} already were"
        );
        println!(
            "resealed {} OAuth connection(s); {} already were",
            connections.resealed, connections.current
        );
        for failure in &failed {
            match failure.get("connection") {
                Some(connection) => eprintln!(
                    "cannot reseal OAuth connection {} ({}) of workspace {}: {}",
                    connection, failure["provider"], failure["workspace_id"], failure["error"]
                ),
                None => eprintln!(
                    "cannot reseal destination {} ({}) of workspace {}: {}",
                    failure["name"], failure["id"], failure["workspace_id"], failure["error"]
                ),
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} destination(s) or connection(s) could not be resealed",
            failed.len()
        );
    }
    Ok(())
}

/// What resealing the OAuth connections' tokens did.
struct ConnectionsResealed {
    resealed: usize,
    current: usize,
    failed: Vec<Value>,
}

/// Seals every OAuth connection's tokens not yet under the active key again. A connection
/// renewed or disconnected meanwhile is left as it is: its new tokens were sealed under the
/// active key, or it has none.
fn reseal_connections(state: &StateStore, vault: &Vault) -> Result<ConnectionsResealed> {
    let active = vault.ring().active().clone();
    let mut done = ConnectionsResealed {
        resealed: 0,
        current: 0,
        failed: Vec::new(),
    };
    for connection in state.all_connections_with_tokens()? {
        let Some(sealed) = &connection.tokens else {
            continue;
        };
        if Vault::key_id_of(sealed).ok().as_ref() == Some(&active) {
            done.current += 1;
            continue;
        }
        let context = sluice_store::tokens_context(&connection.workspace_id, &connection.id);
        let outcome = match vault.reseal(sealed, &context) {
            Ok(Some(resealed)) => state
                .reseal_connection(
                    &connection.workspace_id,
                    &connection.id,
                    connection.version,
                    &resealed,
                )
                .map_err(anyhow::Error::from),
            Ok(None) => Ok(false),
            Err(error) => Err(error.into()),
        };
        match outcome {
            Ok(true) => done.resealed += 1,
            Ok(false) => done.current += 1,
            Err(error) => done.failed.push(json!({
                "connection": connection.id,
                "workspace_id": connection.workspace_id.0,
                "provider": connection.provider,
                "error": error.to_string(),
            })),
        }
    }
    Ok(done)
}
