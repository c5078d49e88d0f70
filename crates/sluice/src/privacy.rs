//! `sluice privacy …`: suppression and deletion requests (regulations), suppressions, a
//! person's data export, the verification that a person is gone, the privacy settings and the
//! data inventory, straight on the data directory. A running node carries out a new
//! regulation within a second (`--wait` waits for it) and applies new settings within five.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use serde_json::json;
use sluice_identity::Identifier;
use sluice_privacy::{PiiClass, PrivacySettings, RegulationRequest, RegulationType, SubjectType};
use sluice_server::Config;
use sluice_server::admin::privacy::{
    inventory_json, regulation_json, save_settings, suppression_json,
};
use sluice_server::privacy::PersonStores;
use sluice_server::privacy::export::export;
use sluice_server::privacy::lists::Lists;
use sluice_server::privacy::regulate::record;
use sluice_server::privacy::verify;
use sluice_server::startup::{open_state, open_vault};
use sluice_store::{
    AudienceStore, DeliveryStore, InventoryQuery, InventoryStore, PersonList, ProfileStore,
    Regulation,
};

use crate::{Output, workspace};

#[derive(Subcommand)]
pub(crate) enum PrivacyCommand {
    /// Ask for a suppression or a deletion (Segment's regulation types).
    Regulate {
        /// SUPPRESS_ONLY, UNSUPPRESS, SUPPRESS_WITH_DELETE, DELETE_ONLY, DELETE_INTERNAL or
        /// SUPPRESS_WITH_DELETE_INTERNAL.
        #[arg(long = "type")]
        regulation_type: String,
        /// USER_ID, ANONYMOUS_ID, EMAIL, PHONE, or IDENTIFIER (subjects as TYPE:VALUE).
        #[arg(long)]
        subject_type: String,
        /// The subjects (up to 5,000).
        #[arg(required = true)]
        subjects: Vec<String>,
        /// Wait (up to this many seconds) until a running node has carried it out.
        #[arg(long)]
        wait: Option<u64>,
        #[command(flatten)]
        output: Output,
    },
    /// List the regulations, newest first.
    Regulations {
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        output: Output,
    },
    /// Show one regulation with its report.
    Show {
        id: String,
        #[command(flatten)]
        output: Output,
    },
    /// List the suppressions (how many identifier values each stops; never the values).
    Suppressions {
        #[command(flatten)]
        output: Output,
    },
    /// Print everything held about a person as JSON (profile, identifiers, traits, events,
    /// what each destination did with them, suppression and opt-out).
    Export {
        /// USER_ID, ANONYMOUS_ID, EMAIL, PHONE or IDENTIFIER.
        #[arg(long, default_value = "USER_ID")]
        subject_type: String,
        subject: String,
        /// The workspace, by name.
        #[arg(long, default_value = "default")]
        workspace: String,
    },
    /// Show the privacy settings, or replace them with `--set JSON` (see docs/privacy.md).
    Settings {
        /// The whole settings as JSON; parts left out take their defaults.
        #[arg(long)]
        set: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// List the data inventory: every field path seen per source and event, with its PII
    /// class, first and last seen and count (never a value).
    Inventory {
        #[arg(long)]
        source: Option<String>,
        /// An event name, or a type such as `identify`.
        #[arg(long)]
        event: Option<String>,
        /// A PII class: email, phone, payment_card, us_ssn, iban, ip_address, date_of_birth,
        /// secret.
        #[arg(long)]
        class: Option<String>,
        #[arg(long, default_value_t = 1_000)]
        limit: usize,
        #[command(flatten)]
        output: Output,
    },
    /// Look for a person in every store and in the bytes of every file of the data directory.
    /// Exits with status 1 when anything is found.
    Verify {
        /// USER_ID, ANONYMOUS_ID, EMAIL, PHONE or IDENTIFIER.
        #[arg(long, default_value = "USER_ID")]
        subject_type: String,
        subject: String,
        #[command(flatten)]
        output: Output,
    },
}

pub(crate) fn run(config: &Config, command: &PrivacyCommand) -> Result<()> {
    let state = open_state(config)?;
    match command {
        PrivacyCommand::Regulate {
            regulation_type,
            subject_type,
            subjects,
            wait,
            output,
        } => {
            let workspace = workspace(&state, &output.workspace)?;
            let Some(kind) = RegulationType::parse(regulation_type) else {
                bail!("--type: unknown regulation type {regulation_type}");
            };
            let Some(subject_type) = SubjectType::parse(subject_type) else {
                bail!("--subject-type: unknown subject type {subject_type}");
            };
            let ids: Vec<&str> = subjects.iter().map(String::as_str).collect();
            let request = RegulationRequest::new(kind, subject_type, &ids)?;
            let vault = open_vault(config, &state)?;
            let mut regulation = record(&state, &vault, &workspace, &request)?;
            if let Some(seconds) = wait {
                let deadline = Instant::now() + Duration::from_secs(*seconds);
                while !regulation.status.is_final() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(200));
                    regulation = state
                        .regulation(&workspace, &regulation.id)?
                        .context("the regulation disappeared")?;
                }
                if !regulation.status.is_final() {
                    bail!(
                        "regulation {} is still {} after {seconds} s: is a node running on this data directory?",
                        regulation.id,
                        regulation.status.as_str()
                    );
                }
            }
            print_regulation(output, &regulation);
            if !output.json && !regulation.status.is_final() {
                println!(
                    "a running node carries it out within a second (see `sluice privacy show`)"
                );
            }
        }
        PrivacyCommand::Regulations { limit, output } => {
            let workspace = workspace(&state, &output.workspace)?;
            let list = state.regulations(&workspace, (*limit).clamp(1, 500))?;
            if output.json {
                let list: Vec<_> = list.iter().map(regulation_json).collect();
                println!("{}", json!({ "regulations": list }));
            } else if list.is_empty() {
                println!("no regulations in workspace {}", output.workspace);
            } else {
                for regulation in &list {
                    println!(
                        "{}\t{}\t{}\t{} subject(s)\t{}",
                        regulation.id,
                        regulation.regulation_type.as_str(),
                        regulation.status.as_str(),
                        regulation.subject_count,
                        regulation.created_at
                    );
                }
            }
        }
        PrivacyCommand::Show { id, output } => {
            let workspace = workspace(&state, &output.workspace)?;
            let regulation = state
                .regulation(&workspace, id)?
                .with_context(|| format!("regulation {id} not found"))?;
            print_regulation(output, &regulation);
        }
        PrivacyCommand::Suppressions { output } => {
            let workspace = workspace(&state, &output.workspace)?;
            let list = state.list_entries(&workspace, PersonList::Suppressed)?;
            if output.json {
                let list: Vec<_> = list.iter().map(suppression_json).collect();
                println!("{}", json!({ "suppressions": list }));
            } else if list.is_empty() {
                println!("no suppressions in workspace {}", output.workspace);
            } else {
                for suppression in list {
                    println!(
                        "{}\t{} identifier value(s)\tsince {}",
                        suppression.entry_id, suppression.values, suppression.created_at
                    );
                }
            }
        }
        PrivacyCommand::Settings { set, output } => {
            let workspace = workspace(&state, &output.workspace)?;
            let settings = match set {
                Some(text) => {
                    let settings: PrivacySettings = serde_json::from_str(text)
                        .map_err(|error| anyhow!("--set: invalid privacy settings: {error}"))?;
                    if let Err(error) = save_settings(&state, &workspace, &settings)? {
                        bail!("--set: {error}");
                    }
                    settings
                }
                None => state.privacy_settings(&workspace)?.0,
            };
            // The settings hold no secrets: JSON is their one form.
            println!("{}", serde_json::to_string_pretty(&settings)?);
        }
        PrivacyCommand::Inventory {
            source,
            event,
            class,
            limit,
            output,
        } => {
            let workspace = workspace(&state, &output.workspace)?;
            if let Some(class) = class
                && PiiClass::parse(class).is_none()
            {
                bail!("--class: unknown PII class {class}");
            }
            let inventory = InventoryStore::open(&config.data_dir.join("inventory.db"))
                .context("cannot open the data inventory")?;
            let query = InventoryQuery {
                source: source.clone(),
                event: event.clone(),
                class: class.clone(),
                limit: *limit,
            };
            let fields = inventory.list(&workspace, &query)?;
            if output.json {
                let list: Vec<_> = fields.iter().map(inventory_json).collect();
                println!("{}", json!({ "fields": list }));
            } else if fields.is_empty() {
                println!("no fields seen in workspace {}", output.workspace);
            } else {
                for row in fields {
                    let field = &row.field;
                    let event = if field.event_name.is_empty() {
                        &field.event_type
                    } else {
                        &field.event_name
                    };
                    println!(
                        "{}\t{}\t{}\t{}\t{} event(s)",
                        row.source_id,
                        event,
                        field.path,
                        field.class.as_deref().unwrap_or("-"),
                        field.count
                    );
                }
            }
        }
        PrivacyCommand::Export {
            subject_type,
            subject,
            workspace: name,
        } => {
            let workspace = workspace(&state, name)?;
            let subject = parse_subject(subject_type, subject)?;
            let profiles = ProfileStore::open(&config.data_dir.join("profiles.db"))
                .context("cannot open the profile store")?;
            let delivery = DeliveryStore::open(&config.data_dir.join("delivery.db"))?;
            let audiences = AudienceStore::open(&config.data_dir.join("audiences.db"))?;
            let stores = PersonStores {
                profiles: &profiles,
                delivery: &delivery,
                audiences: &audiences,
            };
            let suppressed = Lists::new(PersonList::Suppressed);
            suppressed.reload(&state)?;
            let do_not_sell = Lists::new(PersonList::DoNotSell);
            do_not_sell.reload(&state)?;
            let exported = export(
                &config.data_dir,
                &state,
                &stores,
                [&suppressed, &do_not_sell],
                &workspace,
                &subject,
            )?;
            println!("{}", serde_json::to_string_pretty(&exported)?);
        }
        PrivacyCommand::Verify {
            subject_type,
            subject,
            output,
        } => {
            let workspace = workspace(&state, &output.workspace)?;
            let subject = parse_subject(subject_type, subject)?;
            let profiles = ProfileStore::open(&config.data_dir.join("profiles.db"))
                .context("cannot open the profile store")?;
            let delivery = DeliveryStore::open(&config.data_dir.join("delivery.db"))?;
            let audiences = AudienceStore::open(&config.data_dir.join("audiences.db"))?;
            let stores = PersonStores {
                profiles: &profiles,
                delivery: &delivery,
                audiences: &audiences,
            };
            let findings = verify::find(&config.data_dir, &stores, &workspace, &subject)?;
            if output.json {
                println!("{}", findings.to_json());
            } else {
                println!(
                    "searched {} identifier value(s) in {}",
                    findings.values.len(),
                    config.data_dir.display()
                );
                for (store, found) in &findings.stores {
                    println!("{store}\t{found} record(s)");
                }
                for hit in &findings.files {
                    println!(
                        "file {}\t{} occurrence(s) of identifier #{}",
                        hit.file, hit.count, hit.value
                    );
                }
                if findings.is_clean() {
                    println!("clean: nothing found");
                }
            }
            if !findings.is_clean() {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}

fn parse_subject(subject_type: &str, subject: &str) -> Result<Identifier> {
    let Some(kind) = SubjectType::parse(subject_type) else {
        bail!("--subject-type: unknown subject type {subject_type}");
    };
    let Some(identifier) = kind.identifier(subject) else {
        bail!("the subject is not a valid id of type {}", kind.as_str());
    };
    Ok(identifier)
}

fn print_regulation(output: &Output, regulation: &Regulation) {
    if output.json {
        println!("{}", regulation_json(regulation));
        return;
    }
    println!(
        "regulation {}: {} of {} {} subject(s), {}",
        regulation.id,
        regulation.regulation_type.as_str(),
        regulation.subject_count,
        regulation.subject_type.as_str(),
        regulation.status.as_str()
    );
    println!("created {}", regulation.created_at);
    if let Some(finished) = &regulation.finished_at {
        println!("finished {finished}");
    }
    let Some(report) = &regulation.report else {
        return;
    };
    if let Some(error) = report.get("error").and_then(|e| e.as_str()) {
        println!("error: {error}");
    }
    for key in ["identifiers", "suppressed", "unsuppressed", "durationMs"] {
        if let Some(value) = report.get(key) {
            println!("{key}: {value}");
        }
    }
    for store in report
        .get("stores")
        .and_then(|s| s.as_array())
        .into_iter()
        .flatten()
    {
        println!(
            "store {}\t{} row(s) erased",
            store["store"].as_str().unwrap_or("?"),
            store["erased"]
        );
    }
    for destination in report
        .get("destinations")
        .and_then(|d| d.as_array())
        .into_iter()
        .flatten()
    {
        println!(
            "destination {} ({})\t{}\t{}",
            destination["name"].as_str().unwrap_or("?"),
            destination["type"].as_str().unwrap_or("?"),
            destination["status"].as_str().unwrap_or("?"),
            destination["answer"].as_str().unwrap_or("")
        );
    }
}
