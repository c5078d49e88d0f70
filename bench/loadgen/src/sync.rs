//! `loadgen audience-sync`: how many audience members per second each ad-platform adapter
//! plans — read the membership event, normalize each identifier by the platform's rules,
//! SHA-256 it, and batch the rows into the platform's requests (`Adapter::build`, exactly what
//! the delivery engine calls per batch).
//!
//! The members are `identify` calls as the audience engine emits them (segment-spec §4.6):
//! `context.personas` with the audience key and the platform's audience id, the membership
//! boolean in `traits`, and the identifiers people really have, spelled the ways SDKs send
//! them: mixed-case and Gmail emails, phones with and without country codes, names (some with
//! accents), addresses, birthdays, genders, mobile ad ids, a few values already hashed. Two
//! audiences alternate in runs of 500; exits come in runs of 250 (one in ten), and one person
//! in a hundred refused advertising consent (an entry sent as a removal). Since a request
//! holds one run (one audience and action), those are what cut the batches into requests.
//! People share a few first names, family names, cities and postal codes, so the planner's
//! memo of values a batch repeats nearly always finds them; `--distinct` gives everyone their
//! own, the memo's worst case.
//!
//! Each round hands every adapter the same batches of its `max_batch` (10,000) members, or of
//! `--batch`, as the delivery engine does: one `build` call a batch, which plans a large batch
//! on the machine's cores (at most two). The adapters read each event from its JSON text, so
//! the `Outgoing`s hold only the text (whether the engine also parsed the event for its
//! consent check makes no difference to them).
//!
//! Prints one JSON line: per platform, the median members/s over the rounds, the requests and
//! rows planned (to show the work was real).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use clap::Args;
use serde_json::{Map, Value, json};
use sluice_destinations::{Adapter, DestinationType, Outgoing, Plan};

#[derive(Args)]
pub struct SyncArgs {
    /// Members per round.
    #[arg(long, default_value_t = 200_000)]
    members: usize,
    /// Rounds (the median is reported).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Members per batch handed to `build` (default: each adapter's `max_batch`, 10,000).
    #[arg(long)]
    batch: Option<usize>,
    /// Only this platform (meta, google, tiktok); all three when absent.
    #[arg(long)]
    platform: Option<String>,
    /// Give every member a first name, family name, city and postal code of their own (the
    /// worst case for the planner's memo of values a batch repeats).
    #[arg(long)]
    distinct: bool,
}

/// splitmix64.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

const FIRST: [&str; 8] = [
    "Mary", "James", "Zoë", "Olivia", "José", "Liam", "Amélie", "Noah",
];
const LAST: [&str; 8] = [
    "Smith",
    "O'Brien",
    "García",
    "Johnson",
    "Müller",
    "Nguyen",
    "Smith Jr.",
    "Brown",
];
const DOMAINS: [&str; 5] = [
    "gmail.com",
    "Example.com",
    "yahoo.co.uk",
    "outlook.com",
    "googlemail.com",
];
/// City, state, postal code, country.
const PLACES: [(&str, &str, &str, &str); 5] = [
    ("San Francisco", "CA", "94105", "US"),
    ("New York", "new york", "10001-1234", "United States"),
    ("London", "", "SW1A 1AA", "GB"),
    ("Köln", "NRW", "50667", "DE"),
    ("Austin", "Texas", "73301", "us"),
];

/// `n` in letters (base 26, `a` for 0), to make a name of its own.
fn letters(mut n: usize) -> String {
    let mut out = String::new();
    loop {
        out.push(char::from(b'a' + (n % 26) as u8));
        n /= 26;
        if n == 0 {
            return out;
        }
    }
}

/// Membership event `n`; with `distinct`, its names, city and postal code are its own.
fn member_event(n: usize, distinct: bool) -> Value {
    let r = |salt: u64| mix((n as u64) ^ salt.wrapping_mul(0xA24B_AED4_963E_E407));
    let own = |text: &str| {
        if distinct {
            format!("{text}{}", letters(n))
        } else {
            text.to_string()
        }
    };
    let first = own(FIRST[(r(1) % 8) as usize]);
    let last = own(LAST[(r(2) % 8) as usize]);
    let (audience_key, audience_id) = if (n / 500).is_multiple_of(2) {
        ("vip_buyers", "23850000001")
    } else {
        ("cart_abandoners", "23850000002")
    };
    // Exits come in runs (a window sliding past many people at once): one run in ten.
    let entered = !mix((n / 250) as u64 ^ 0x3C6E_F372_FE94_F82B).is_multiple_of(10);
    let mut traits = Map::new();
    traits.insert(audience_key.into(), json!(entered));
    let email = if r(4) % 50 == 0 {
        // Already hashed by the customer.
        format!("{:016X}{:016X}{:016X}{:016X}", r(5), r(6), r(7), r(8))
    } else {
        format!(
            " {}.{}{}@{} ",
            first,
            last.split(' ').next().unwrap_or(&last),
            n,
            DOMAINS[(r(9) % 5) as usize]
        )
    };
    if r(10) % 20 != 0 {
        traits.insert("email".into(), json!(email));
    }
    if r(11) % 10 < 7 {
        let phone = match r(12) % 3 {
            0 => format!("+1 (415) 555-{:04}", n % 10_000),
            1 => format!("415.555.{:04}", n % 10_000),
            _ => format!("+44 (0)20 7946 {:04}", n % 10_000),
        };
        let key = ["phone", "phone_number", "phoneNumber"][(r(13) % 3) as usize];
        traits.insert(key.into(), json!(phone));
    }
    if r(14) % 10 < 8 {
        traits.insert("firstName".into(), json!(first));
        traits.insert("lastName".into(), json!(last));
    }
    if r(15) % 10 < 6 {
        let (city, state, postal, country) = PLACES[(r(16) % 5) as usize];
        let postal = if distinct {
            format!("{:05}-{:04}", n % 100_000, n / 100_000 % 10_000)
        } else {
            postal.to_string()
        };
        traits.insert(
            "address".into(),
            json!({"city": own(city), "state": state, "postalCode": postal, "country": country}),
        );
    }
    if r(17) % 10 < 4 {
        traits.insert(
            "birthday".into(),
            json!(format!(
                "{}-{:02}-{:02}",
                1950 + r(18) % 55,
                1 + r(19) % 12,
                1 + r(20) % 28
            )),
        );
    }
    if r(21) % 2 == 0 {
        traits.insert(
            "gender".into(),
            json!(["female", "male", "F", "M", "non-binary"][(r(22) % 5) as usize]),
        );
    }
    let mut context = json!({
        "personas": {"computation_class": "audience", "computation_id": "aud_1",
                     "computation_key": audience_key, "space_id": "ws_1",
                     "external_audience_id": audience_id},
        "consent": {"categoryPreferences": {"advertising": r(23) % 100 != 0}},
        "library": {"name": "sluice-audiences", "version": "0.1.0"},
    });
    if r(24) % 10 < 4 {
        let id = format!(
            "{:08X}-{:04X}-{:04X}-{:04X}-{:012X}",
            r(25) as u32,
            r(26) as u16,
            r(27) as u16,
            r(28) as u16,
            r(29) & 0xFFFF_FFFF_FFFF
        );
        context["device"] = json!({"advertisingId": id,
                                   "type": if r(30) % 2 == 0 { "ios" } else { "android" }});
    }
    json!({
        "type": "identify",
        "userId": format!("u{n}"),
        "anonymousId": format!("anon-{:x}", r(31)),
        "messageId": format!("aud-{n:016x}"),
        "timestamp": "2026-11-23T10:00:00.000Z",
        "receivedAt": "2026-11-23T10:00:00.012Z",
        "traits": traits,
        "context": context,
    })
}

struct Platform {
    name: &'static str,
    kind: DestinationType,
    settings: Value,
}

fn platforms() -> Vec<Platform> {
    vec![
        Platform {
            name: "meta",
            kind: sluice_destinations::meta_audiences::TYPE,
            settings: json!({"access_token": "token", "ad_account_id": "act_1001"}),
        },
        Platform {
            name: "google",
            kind: sluice_destinations::google_audiences::TYPE,
            settings: json!({"access_token": "token", "operating_account_id": "123-456-7890"}),
        },
        Platform {
            name: "tiktok",
            kind: sluice_destinations::tiktok_audiences::TYPE,
            settings: json!({"access_token": "token", "advertiser_id": "7001"}),
        },
    ]
}

/// What a round's plans held.
#[derive(Default, PartialEq, Debug, Clone, Copy)]
struct Planned {
    requests: usize,
    rows: usize,
    bytes: usize,
    refused: usize,
}

impl Planned {
    fn add(&mut self, plan: &Plan) {
        self.requests += plan.requests.len();
        self.rows += plan.requests.iter().map(|p| p.events.len()).sum::<usize>();
        self.bytes += plan
            .requests
            .iter()
            .map(|p| p.request.body.len())
            .sum::<usize>();
        self.refused += plan.unsupported.len() + plan.invalid.len();
    }
}

/// Plans every batch once. Returns the time spent in `build` and what was planned.
fn round(adapter: &dyn Adapter, texts: &[String], batch: Option<usize>) -> (Duration, Planned) {
    let batch = batch.unwrap_or(adapter.max_batch()).max(1);
    let mut spent = Duration::ZERO;
    let mut planned = Planned::default();
    for texts in texts.chunks(batch) {
        // The batch as the delivery engine hands it over, set up outside the clock.
        let cells: Vec<OnceLock<Value>> = texts.iter().map(|_| OnceLock::new()).collect();
        let events: Vec<Outgoing<'_>> = texts
            .iter()
            .zip(&cells)
            .map(|(text, cell)| Outgoing::new(text, cell))
            .collect();
        let started = Instant::now();
        let plan = adapter.build(&events);
        spent += started.elapsed();
        planned.add(&plan);
        // Freeing the plan is not timed.
        drop(plan);
    }
    (spent, planned)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub fn sync(args: SyncArgs) -> Result<()> {
    let texts: Vec<String> = (0..args.members)
        .map(|n| member_event(n, args.distinct).to_string())
        .collect();
    let bytes: usize = texts.iter().map(String::len).sum();
    let mut results = Vec::new();
    for platform in platforms() {
        if args
            .platform
            .as_deref()
            .is_some_and(|only| only != platform.name)
        {
            continue;
        }
        let Value::Object(settings) = &platform.settings else {
            bail!("settings are an object");
        };
        let adapter = (platform.kind.build)(settings)
            .map_err(|e| anyhow!("{} settings: {e}", platform.name))?;
        let mut rates = Vec::new();
        let mut seen: Option<Planned> = None;
        for _ in 0..args.rounds.max(1) {
            let (spent, planned) = round(adapter.as_ref(), &texts, args.batch);
            if seen.is_some_and(|seen| seen != planned) || planned.rows == 0 {
                bail!("{}: rounds planned different work", platform.name);
            }
            seen = Some(planned);
            rates.push(args.members as f64 / spent.as_secs_f64());
        }
        let planned = seen.unwrap_or_default();
        eprintln!(
            "   {}: {:.2} M members/s",
            platform.name,
            median(rates.clone()) / 1e6
        );
        results.push(json!({
            "platform": platform.name,
            "members_per_s": median(rates.clone()),
            "rounds": rates,
            "requests": planned.requests, "rows": planned.rows,
            "refused": planned.refused, "body_bytes": planned.bytes,
        }));
    }
    println!(
        "{}",
        json!({"members": args.members, "rounds": args.rounds.max(1), "batch": args.batch,
               "distinct": args.distinct,
               "event_bytes": bytes, "platforms": results})
    );
    Ok(())
}
