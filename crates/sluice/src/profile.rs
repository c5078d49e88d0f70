//! `sluice profile …`: a profile's identity graph and merge history, unmerges, Profile API
//! tokens and identity settings, straight on the data directory (a running node sees the
//! changes at its next batch).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::json;
use sluice_identity::{Collection, Identifier, IdentitySettings, Rules};
use sluice_server::Config;
use sluice_server::admin::identity::{graph_json, graph_text};
use sluice_store::profiles::ProfileRef;
use sluice_store::{ProfileStore, WorkspaceId};

use crate::{Output, workspace};

#[derive(Subcommand)]
pub(crate) enum ProfileCommand {
    /// Show a profile's identifiers, merges (with the events that caused them) and links.
    Show {
        /// The profile, as TYPE:VALUE (user_id:42, email:jane@example.com, segment_id:use_…).
        profile: String,
        /// Look in the accounts collection (group_id:…) instead of users.
        #[arg(long)]
        accounts: bool,
        #[command(flatten)]
        output: Output,
    },
    /// Undo a merge: remove an identifier from the profile, or split it at a recorded merge.
    Unmerge {
        profile: String,
        /// The identifier to remove, as TYPE:VALUE.
        #[arg(long, conflicts_with = "merge", required_unless_present = "merge")]
        identifier: Option<String>,
        /// The merge to undo (its number in `profile show`).
        #[arg(long)]
        merge: Option<i64>,
        #[arg(long)]
        accounts: bool,
        #[command(flatten)]
        output: Output,
    },
    /// Create a Profile API access token (shown once).
    TokenCreate {
        name: String,
        #[command(flatten)]
        output: Output,
    },
    /// List Profile API tokens.
    TokenList {
        #[command(flatten)]
        output: Output,
    },
    /// Revoke a Profile API token.
    TokenRevoke {
        id: String,
        #[command(flatten)]
        output: Output,
    },
    /// Print the identity resolution settings (JSON).
    Settings {
        #[command(flatten)]
        output: Output,
    },
    /// Replace the identity resolution settings from a JSON file (`-` for stdin).
    SetSettings {
        file: PathBuf,
        #[command(flatten)]
        output: Output,
    },
}

fn collection(accounts: bool) -> Collection {
    if accounts {
        Collection::Accounts
    } else {
        Collection::Users
    }
}

/// Opens `profiles.db` and finds the profile a `TYPE:VALUE` names.
fn open_profile(
    config: &Config,
    workspace: &WorkspaceId,
    accounts: bool,
    lookup: &str,
) -> Result<(ProfileStore, ProfileRef)> {
    let store = ProfileStore::open(&config.data_dir.join("profiles.db"))
        .context("cannot open profiles.db")?;
    let found = sluice_server::admin::identity::find_profile(
        &store,
        workspace,
        collection(accounts),
        lookup,
    )
    .map_err(|e| anyhow::anyhow!(e.message))?;
    Ok((store, found))
}

pub(crate) fn run(config: &Config, command: &ProfileCommand) -> Result<()> {
    let state = sluice_server::startup::open_state(config)?;
    match command {
        ProfileCommand::Show {
            profile,
            accounts,
            output,
        } => {
            let ws = workspace(&state, &output.workspace)?;
            let (store, found) = open_profile(config, &ws, *accounts, profile)?;
            let view = store.graph(&found)?;
            if output.json {
                println!("{}", graph_json(&view));
            } else {
                print!("{}", graph_text(&view));
            }
        }
        ProfileCommand::Unmerge {
            profile,
            identifier,
            merge,
            accounts,
            output,
        } => {
            let ws = workspace(&state, &output.workspace)?;
            let (store, found) = open_profile(config, &ws, *accounts, profile)?;
            let rules = Rules::compile(&state.identity_settings(&ws)?)?;
            let result = match (identifier, merge) {
                (Some(text), None) => {
                    let Some(id) = Identifier::parse_lookup(text) else {
                        bail!("--identifier: expected TYPE:VALUE");
                    };
                    store.remove_identifier(&found, &id, &rules)?
                }
                (None, Some(merge)) => store.split_merge(&found, *merge, &rules)?,
                _ => bail!("give --identifier or --merge"),
            };
            if output.json {
                let removed: Vec<String> = result.removed.iter().map(ToString::to_string).collect();
                println!(
                    "{}",
                    json!({"profiles": result.profiles, "removed": removed})
                );
            } else {
                println!("the history now falls into: {}", result.profiles.join(", "));
                for id in &result.removed {
                    println!("removed {id}");
                }
            }
        }
        ProfileCommand::TokenCreate { name, output } => {
            let ws = workspace(&state, &output.workspace)?;
            let (info, token) = state.create_profile_token(&ws, name)?;
            if output.json {
                println!(
                    "{}",
                    json!({"id": info.id, "name": info.name, "token": token.expose(), "space_id": ws.0})
                );
            } else {
                println!("created Profile API token {} ({})", info.name, info.id);
                println!("token (shown once): {}", token.expose());
                println!(
                    "space id: {}  (send the token as the basic auth user name)",
                    ws.0
                );
            }
        }
        ProfileCommand::TokenList { output } => {
            let ws = workspace(&state, &output.workspace)?;
            let tokens = state.list_profile_tokens(&ws)?;
            if output.json {
                let list: Vec<_> = tokens
                    .iter()
                    .map(|t| json!({"id": t.id, "name": t.name, "created_at": t.created_at}))
                    .collect();
                println!("{}", json!({"tokens": list}));
            } else {
                for t in tokens {
                    println!("{}  {}  {}", t.id, t.name, t.created_at);
                }
            }
        }
        ProfileCommand::TokenRevoke { id, output } => {
            let ws = workspace(&state, &output.workspace)?;
            state.revoke_profile_token(&ws, id)?;
            if !output.json {
                println!("revoked {id}");
            }
        }
        ProfileCommand::Settings { output } => {
            let ws = workspace(&state, &output.workspace)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&state.identity_settings(&ws)?)?
            );
        }
        ProfileCommand::SetSettings { file, output } => {
            let ws = workspace(&state, &output.workspace)?;
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read {}", file.display()))?
            };
            let settings: IdentitySettings =
                serde_json::from_str(&text).context("invalid identity settings")?;
            Rules::compile(&settings).context("invalid identity settings")?;
            state.set_identity_settings(&ws, &settings)?;
            if !output.json {
                println!(
                    "saved identity settings ({} identifier types)",
                    settings.identifiers.len()
                );
            }
        }
    }
    Ok(())
}
