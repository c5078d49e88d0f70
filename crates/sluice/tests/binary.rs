//! The `sluice` binary, run as a user would: first start, the CLI, configuration layering, and
//! a kill -9 under load that must lose no acknowledged event.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");
const TOKEN: &str = "binary-test-admin-token";

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(dir: &Path, extra_env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--data-dir"])
            .arg(dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("SLUICE_ADMIN_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let child = command.spawn().expect("spawn sluice");
        let server = Server { child, port };
        server.wait_healthy();
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if reqwest::blocking_get(&self.url("/health")).unwrap_or(0) == 200 {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("sluice did not become healthy");
    }

    fn kill_hard(mut self) {
        // SIGKILL: no shutdown code runs.
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tiny blocking GET without another HTTP client (status code only).
mod reqwest {
    pub fn blocking_get(url: &str) -> std::io::Result<u16> {
        use std::io::{Read, Write};
        let rest = url.trim_start_matches("http://");
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut stream = std::net::TcpStream::connect(host)?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
        write!(
            stream,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let code = response
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Ok(code)
    }

    pub use ::reqwest::*;
}

fn cli(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("run cli");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn create_source(dir: &Path, name: &str) -> (String, String) {
    let (ok, stdout, stderr) = cli(dir, &["source", "create", name, "--json"]);
    assert!(ok, "{stderr}");
    let created: Value = serde_json::from_str(stdout.trim()).expect("json output");
    (
        created["id"].as_str().expect("id").to_owned(),
        created["write_key"].as_str().expect("key").to_owned(),
    )
}

async fn all_events(client: &reqwest::Client, server: &Server, source: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page: Value = client
            .get(server.url(&format!(
                "/api/v1/sources/{source}/events?after={after}&limit=1000"
            )))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("events")
            .json()
            .await
            .expect("json");
        let events = page["events"].as_array().expect("events").clone();
        if events.is_empty() {
            return all;
        }
        after = page["cursor"].as_i64().expect("cursor");
        all.extend(events);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (source, key) = create_source(dir.path(), "crash");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut acked: Vec<String> = Vec::new();

    for round in 0..3 {
        let server = Server::start(dir.path(), &[]);
        let url = server.url("/v1/batch");
        let mut tasks = Vec::new();
        for worker in 0..6 {
            let client = client.clone();
            let url = url.clone();
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                for request in 0..100_000 {
                    let ids: Vec<String> = (0..10).map(|i| format!("r{round}-w{worker}-q{request}-{i}")).collect();
                    let batch: Vec<Value> = ids
                        .iter()
                        .map(|id| json!({"type":"track","userId":format!("user-{worker}"),"event":"Crash Tested","messageId":id,"properties":{"round":round}}))
                        .collect();
                    let body = json!({ "batch": batch }).to_string();
                    match client.post(&url).basic_auth(&key, Some("")).body(body).send().await {
                        Ok(response) if response.status() == 200 => mine.extend(ids),
                        _ => break,
                    }
                }
                mine
            }));
        }
        // Kill at a different moment each round, while requests are in flight.
        tokio::time::sleep(Duration::from_millis(700 + 400 * round)).await;
        server.kill_hard();
        for task in tasks {
            acked.extend(task.await.expect("task"));
        }
    }
    assert!(
        acked.len() > 100,
        "the load ran: {} acknowledged",
        acked.len()
    );

    let server = Server::start(dir.path(), &[]);
    let stored = all_events(&client, &server, &source).await;
    let mut counts = std::collections::HashMap::new();
    for event in &stored {
        *counts
            .entry(event["messageId"].as_str().expect("id").to_owned())
            .or_insert(0) += 1;
    }
    for id in &acked {
        assert_eq!(
            counts.get(id),
            Some(&1),
            "acknowledged {id} must be stored exactly once"
        );
    }
    assert!(counts.values().all(|n| *n == 1), "no event is stored twice");
}

#[test]
fn first_start_explains_what_to_do_and_prints_a_token_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let start = || {
        Command::new(BIN)
            .args(["serve", "--data-dir"])
            .arg(dir.path())
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--log-format",
                "json",
            ])
            .env_remove("SLUICE_ADMIN_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let read_until_listening = |child: &mut Child| -> (String, Vec<Value>) {
        let stderr = child.stderr.take().expect("stderr");
        let mut logs = Vec::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.expect("line");
            let value: Value = serde_json::from_str(&line)
                .unwrap_or_else(|_| panic!("log line is not json: {line}"));
            let done = value["fields"]["message"] == "listening";
            logs.push(value);
            if done {
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        let mut stdout = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut stdout)
            .expect("stdout");
        (stdout, logs)
    };

    let mut first = start();
    let (stdout, logs) = read_until_listening(&mut first);
    assert!(
        stdout.contains("admin token for workspace \"default\""),
        "{stdout}"
    );
    assert!(
        logs.iter().any(|l| l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("sluice source create"))),
        "{logs:?}"
    );
    let token = stdout.split_whitespace().last().expect("token").to_owned();
    assert!(
        !logs.iter().any(|l| l.to_string().contains(&token)),
        "the token never goes to the log"
    );

    let mut second = start();
    let (stdout, logs) = read_until_listening(&mut second);
    assert!(!stdout.contains("admin token"), "shown once only");
    assert!(!logs.iter().any(|l| {
        l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("created the default workspace"))
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_commands_work_against_a_running_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let (id, key) = create_source(dir.path(), "web");
    let client = reqwest::Client::new();
    let post = |key: String| {
        let client = client.clone();
        let url = server.url("/v1/track");
        async move {
            client
                .post(url)
                .basic_auth(key, Some(""))
                .body(json!({"userId":"u","event":"E"}).to_string())
                .send()
                .await
                .expect("post")
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        post(key.clone()).await,
        200,
        "a source created by the CLI works at once"
    );

    let (ok, stdout, _) = cli(dir.path(), &["source", "list", "--json"]);
    assert!(ok);
    let listed: Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(listed["sources"][0]["id"], id.as_str());
    assert!(!stdout.contains(&key), "list never shows keys");
    let (ok, stdout, _) = cli(dir.path(), &["source", "list"]);
    assert!(
        ok && stdout.contains("web") && stdout.contains("enabled"),
        "{stdout}"
    );

    let (ok, _, stderr) = cli(dir.path(), &["source", "disable", "web"]);
    assert!(ok, "{stderr}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while post(key.clone()).await != 401 {
        assert!(
            Instant::now() < deadline,
            "disable takes effect within the cache lifetime"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cli(dir.path(), &["source", "enable", &id]);
    let (ok, stdout, _) = cli(dir.path(), &["source", "rotate", "web", "--json"]);
    assert!(ok);
    let rotated: Value = serde_json::from_str(stdout.trim()).expect("json");
    let new_key = rotated["write_key"].as_str().expect("key").to_owned();
    assert_ne!(new_key, key);
    let deadline = Instant::now() + Duration::from_secs(5);
    while post(new_key.clone()).await != 200 {
        assert!(
            Instant::now() < deadline,
            "the rotated key works within the cache lifetime"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (ok, _, stderr) = cli(dir.path(), &["source", "delete", "nope"]);
    assert!(!ok && stderr.contains("not found"), "{stderr}");
    let (ok, _, stderr) = cli(dir.path(), &["source", "create", ""]);
    assert!(!ok && stderr.contains("name"), "{stderr}");
    let (ok, _, _) = cli(dir.path(), &["source", "delete", "web"]);
    assert!(ok);
}

#[test]
fn configuration_layers_file_then_environment_then_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file_port = free_port();
    let env_port = free_port();
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:{file_port}\"\nadmin_token = \"{TOKEN}\"\n",
            dir.path().join("data")
        ),
    )
    .expect("write config");

    let run = |env: &[(&str, String)], flags: &[String]| {
        let mut command = Command::new(BIN);
        command
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .args(flags)
            .env_remove("SLUICE_ADMIN_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        command.spawn().expect("spawn")
    };
    let wait = |port: u16| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if reqwest::blocking_get(&format!("http://127.0.0.1:{port}/health")).unwrap_or(0) == 200
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    };

    let mut from_file = run(&[], &[]);
    assert!(wait(file_port), "the file's listen address is used");
    let _ = from_file.kill();
    let _ = from_file.wait();
    assert!(
        dir.path().join("data").join("log.db").exists(),
        "the file's data_dir is used"
    );

    let mut from_env = run(&[("SLUICE_LISTEN", format!("127.0.0.1:{env_port}"))], &[]);
    assert!(wait(env_port), "the environment overrides the file");
    let _ = from_env.kill();
    let _ = from_env.wait();

    let flag_port = free_port();
    let mut from_flag = run(
        &[("SLUICE_LISTEN", format!("127.0.0.1:{env_port}"))],
        &["--listen".into(), format!("127.0.0.1:{flag_port}")],
    );
    assert!(wait(flag_port), "flags override the environment");
    let _ = from_flag.kill();
    let _ = from_flag.wait();

    // A typo in the file is an error naming the key.
    std::fs::write(&config, "listn = \"127.0.0.1:1\"\n").expect("write config");
    let output = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["source", "list"])
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("listn"), "{stderr}");
}

/// Runs the CLI with extra environment variables and, when given, text on standard input.
fn cli_with(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> (bool, String, String) {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("SLUICE_MASTER_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("run cli");
    {
        use std::io::Write;
        let mut input = child.stdin.take().expect("stdin");
        input
            .write_all(stdin.unwrap_or("").as_bytes())
            .expect("write stdin");
    }
    let output = child.wait_with_output().expect("wait");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const DESTINATION_SECRET: &str = "whsec_cli-secret-never-printed-42";

/// Creates destination `hook` on source `web`, its settings read from standard input.
const CREATE_HOOK: [&str; 9] = [
    "destination",
    "create",
    "hook",
    "--type",
    "webhook",
    "--source",
    "web",
    "--settings-json",
    "-",
];

/// The opened settings of the only destination of the default workspace, and the id of the
/// master key its secrets are sealed under.
fn sealed_destination(
    dir: &Path,
    config: sluice_server::Config,
) -> (serde_json::Map<String, Value>, String) {
    let state = sluice_store::StateStore::open(&dir.join("state.db")).expect("state");
    let (workspace, _) = state.ensure_default_workspace().expect("workspace");
    let destination = state
        .list_destinations(&workspace.id)
        .expect("list")
        .pop()
        .expect("a destination");
    let file_key = sluice_server::config::read_key_file(&config.key_file()).expect("key file");
    let vault = sluice_privacy::Vault::new(config.key_ring(file_key).expect("ring"));
    let key_id = sluice_privacy::Vault::key_id_of(&destination.settings.sealed).expect("key id");
    let settings = sluice_server::admin::destinations::open_stored_settings(&vault, &destination)
        .expect("open");
    (settings, key_id.to_string())
}

#[test]
fn destination_commands_seal_secrets_and_never_print_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (source, _) = create_source(dir.path(), "web");
    let run = |args: &[&str], stdin: Option<&str>| {
        let (ok, stdout, stderr) = cli_with(dir.path(), args, &[], stdin);
        for text in [&stdout, &stderr] {
            assert!(
                !text.contains(DESTINATION_SECRET),
                "a secret printed: {text}"
            );
        }
        (ok, stdout, stderr)
    };

    let settings = json!({"url": "https://hooks.example.com/in", "secret": DESTINATION_SECRET});
    let (ok, stdout, stderr) = run(
        &[
            &CREATE_HOOK[..],
            &[
                "--setting",
                "batch_size:=5",
                "--consent-category",
                "analytics",
                "--max-in-flight",
                "2",
                "--json",
            ],
        ]
        .concat(),
        Some(&settings.to_string()),
    );
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("generated one into the data directory"),
        "{stderr}"
    );
    let created: Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(created["settings"]["secret"], "[redacted]");
    assert_eq!(created["settings"]["batch_size"], 5);
    assert_eq!(created["sources"], json!([source]));
    assert_eq!(created["consent_categories"], json!(["analytics"]));
    assert_eq!(created["delivery"]["max_in_flight"], 2);

    let key_file = dir.path().join("master.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("master.key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let config = || sluice_server::Config {
        data_dir: dir.path().to_owned(),
        ..sluice_server::Config::default()
    };
    assert_eq!(
        sealed_destination(dir.path(), config()).0["secret"],
        DESTINATION_SECRET
    );

    // An update without the secret keeps it.
    let (ok, stdout, stderr) = run(
        &[
            "destination",
            "update",
            "hook",
            "--setting",
            "url=https://hooks.example.com/v2",
            "--rate-limit",
            "7",
        ],
        None,
    );
    assert!(
        ok && stdout.contains("[redacted]") && stdout.contains("hooks.example.com/v2"),
        "{stdout}{stderr}"
    );
    let (opened, key_id) = sealed_destination(dir.path(), config());
    assert_eq!(opened["secret"], DESTINATION_SECRET);
    assert_eq!(opened["batch_size"], 5);
    assert_eq!(key_id, "local");

    for (args, expected) in [
        (
            &["destination", "show", "hook", "--json"][..],
            "\"name\":\"hook\"",
        ),
        (
            &["destination", "list", "--json"],
            "\"rate_limit_per_sec\":7",
        ),
        (&["destination", "list"], "webhook\tenabled"),
        (
            &["destination", "disable", "hook", "--json"],
            "\"enabled\":false",
        ),
        (
            &["destination", "enable", "hook"],
            "enabled destination hook",
        ),
    ] {
        let (ok, stdout, stderr) = run(args, None);
        assert!(
            ok && stdout.contains(expected),
            "{args:?}: {stdout}{stderr}"
        );
    }

    for (args, expected) in [
        (
            &[
                "destination",
                "create",
                "x",
                "--type",
                "pigeon",
                "--source",
                "web",
            ][..],
            "unknown_destination_type",
        ),
        (
            &[
                "destination",
                "create",
                "x",
                "--type",
                "webhook",
                "--source",
                "nope",
                "--setting",
                "url=https://a.example",
            ],
            "source nope not found",
        ),
        (
            &[
                "destination",
                "create",
                "x",
                "--type",
                "webhook",
                "--source",
                "web",
                "--setting",
                "url=ftp://a",
            ],
            "field settings.url",
        ),
        (
            &[
                "destination",
                "update",
                "hook",
                "--setting",
                "secret:={broken",
            ],
            "needs a JSON value",
        ),
        (&["destination", "show", "nope"], "not found"),
    ] {
        let (ok, _, stderr) = run(args, None);
        assert!(!ok && stderr.contains(expected), "{args:?}: {stderr}");
    }

    for entry in std::fs::read_dir(dir.path()).expect("dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        assert!(
            !bytes
                .windows(DESTINATION_SECRET.len())
                .any(|w| w == DESTINATION_SECRET.as_bytes())
        );
    }

    let (ok, _, _) = run(&["destination", "delete", "hook"], None);
    assert!(ok);
    let (_, stdout, _) = run(&["destination", "list", "--json"], None);
    assert_eq!(
        serde_json::from_str::<Value>(stdout.trim()).expect("json"),
        json!({"destinations": []})
    );
}

#[test]
fn master_keys_come_from_the_environment_and_rotate() {
    // Base64 with `+`, `/` and `=`, which the environment must pass through untouched.
    const K1: &str = "+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/w=";
    const K2: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    let dir = tempfile::tempdir().expect("tempdir");
    create_source(dir.path(), "web");
    let env_key = format!("k1:{K1}");
    let settings =
        json!({"url": "https://hooks.example.com/in", "secret": DESTINATION_SECRET}).to_string();
    let (ok, _, stderr) = cli_with(
        dir.path(),
        &CREATE_HOOK,
        &[("SLUICE_MASTER_KEY", &env_key)],
        Some(&settings),
    );
    assert!(ok, "{stderr}");
    assert!(
        !dir.path().join("master.key").exists(),
        "a configured key: nothing generated"
    );
    assert!(!stderr.contains(K1), "{stderr}");
    let key = |id: &str, key: &str| sluice_server::config::MasterKeyConfig {
        id: id.into(),
        key: sluice_server::SecretString::new(key),
    };
    let config = |keys, active: &str| sluice_server::Config {
        data_dir: dir.path().to_owned(),
        master_keys: keys,
        active_master_key: Some(active.into()),
        ..sluice_server::Config::default()
    };
    assert_eq!(
        sealed_destination(dir.path(), config(vec![key("k1", K1)], "k1")).1,
        "k1"
    );

    // An OAuth connection's tokens, sealed under k1 as the node seals them.
    let vault_of = |config: sluice_server::Config| {
        let file_key = sluice_server::config::read_key_file(&config.key_file()).expect("key");
        sluice_privacy::Vault::new(config.key_ring(file_key).expect("ring"))
    };
    const TOKENS: &[u8] = br#"{"access_token":"oauth-token-never-shown"}"#;
    let state = sluice_store::StateStore::open(&dir.path().join("state.db")).expect("state");
    let (workspace, _) = state.ensure_default_workspace().expect("workspace");
    let connection_id = sluice_store::new_connection_id().expect("id");
    let context = sluice_store::tokens_context(&workspace.id, &connection_id);
    let sealed = vault_of(config(vec![key("k1", K1)], "k1"))
        .seal(TOKENS, &context)
        .expect("seal");
    state
        .connect(
            &workspace.id,
            sluice_store::ConnectedTokens {
                id: connection_id.clone(),
                provider: "meta".into(),
                label: None,
                scopes: vec![],
                accounts: vec![],
                sealed,
                access_expires_at_ms: None,
                at_ms: 0,
            },
        )
        .expect("connect");

    // Rotation: add k2, make it active, reseal, then retire k1.
    let file = dir.path().join("sluice.toml");
    std::fs::write(
        &file,
        format!(
            "active_master_key = \"k2\"\n[[master_keys]]\nid = \"k1\"\nkey = \"{K1}\"\n[[master_keys]]\nid = \"k2\"\nkey = \"{K2}\"\n"
        ),
    )
    .expect("config");
    let with_file = |args: &[&str]| {
        let mut all = vec!["--config", file.to_str().expect("path")];
        all.extend_from_slice(args);
        cli_with(dir.path(), &all, &[], None)
    };
    let (ok, stdout, stderr) = with_file(&["destination", "reseal", "--json"]);
    assert!(ok, "{stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(
        report,
        json!({
            "active_key": "k2",
            "resealed": 1,
            "current": 0,
            "connections": {"resealed": 1, "current": 0},
            "failed": [],
        })
    );
    // The connection's tokens now open with k2 alone.
    let connection = state
        .get_connection(&workspace.id, &connection_id)
        .expect("connection");
    let sealed = connection.tokens.expect("tokens");
    assert_eq!(
        sluice_privacy::Vault::key_id_of(&sealed)
            .expect("key id")
            .to_string(),
        "k2"
    );
    let opened = vault_of(config(vec![key("k2", K2)], "k2"))
        .open(&sealed, &context)
        .expect("open");
    assert_eq!(&opened[..], TOKENS);
    let (opened, key_id) = sealed_destination(dir.path(), config(vec![key("k2", K2)], "k2"));
    assert_eq!(
        (opened["secret"].as_str(), key_id.as_str()),
        (Some(DESTINATION_SECRET), "k2")
    );
    let (ok, stdout, _) = with_file(&["destination", "reseal"]);
    assert!(
        ok && stdout.contains("resealed 0 destination")
            && stdout.contains("resealed 0 OAuth connection(s); 1 already were"),
        "{stdout}"
    );

    // With only k2 configured, settings still merge; with only the retired k1, they cannot.
    let update_with_only = |id: &str, key: &str| {
        let ring = format!("[[master_keys]]\nid = \"{id}\"\nkey = \"{key}\"\n");
        std::fs::write(&file, ring).expect("config");
        with_file(&[
            "destination",
            "update",
            "hook",
            "--setting",
            "batch_size:=3",
        ])
    };
    let (ok, _, stderr) = update_with_only("k2", K2);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = update_with_only("k1", K1);
    assert!(
        !ok && stderr.contains("master_key_unavailable") && stderr.contains("k2"),
        "{stderr}"
    );
    assert!(
        stderr.contains("not configured"),
        "the startup check warns too: {stderr}"
    );

    // A bad key is refused without being printed.
    let (ok, _, stderr) = cli_with(
        dir.path(),
        &["destination", "list"],
        &[("SLUICE_MASTER_KEY", "k1:c2hvcnQ=")],
        None,
    );
    assert!(
        !ok && stderr.contains("invalid master key") && !stderr.contains("c2hvcnQ"),
        "{stderr}"
    );
}

/// Polls `done` every 50 ms for at most 30 s.
async fn poll_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_commands_work_against_a_running_server() {
    use sluice_destinations::testkit::{FakeTool, Tool};

    let dir = tempfile::tempdir().expect("tempdir");
    let fake = FakeTool::start(Tool::Webhook).await;
    let (_, key) = create_source(dir.path(), "web");
    let settings = serde_json::to_string(&fake.settings()).expect("settings");
    let settings_file = dir.path().join("hook.json");
    std::fs::write(&settings_file, settings).expect("write settings");
    let (ok, _, stderr) = cli(
        dir.path(),
        &[
            "destination",
            "create",
            "hook",
            "--type",
            "webhook",
            "--source",
            "web",
            "--settings-json",
            settings_file.to_str().expect("path"),
        ],
    );
    assert!(ok, "{stderr}");
    let server = Server::start(dir.path(), &[]);
    let client = reqwest::Client::new();
    let send = |id: &'static str| {
        let (client, url, key) = (client.clone(), server.url("/v1/track"), key.clone());
        async move {
            let body = json!({"userId": "u1", "event": "Clicked", "messageId": id});
            let response = client
                .post(url)
                .basic_auth(key, Some(""))
                .body(body.to_string())
                .send()
                .await
                .expect("post");
            assert_eq!(response.status(), 200);
        }
    };
    send("first").await;
    poll_until("the first delivery", || fake.accepted().len() == 1).await;

    // The tool refuses the second event: the CLI lists the dead letter, then sends it again.
    fake.push_answer(422, &[], "{\"error\":\"no\"}");
    send("second").await;
    let mut letters = Value::Null;
    poll_until("a dead letter", || {
        let (ok, stdout, _) = cli(
            dir.path(),
            &["destination", "dead-letters", "hook", "--json"],
        );
        letters = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
        ok && letters["dead_letters"]
            .as_array()
            .is_some_and(|l| l.len() == 1)
    })
    .await;
    assert_eq!(letters["dead_letters"][0]["message_id"], "second");
    assert_eq!(letters["dead_letters"][0]["status"], 422);
    let (ok, stdout, stderr) = cli(dir.path(), &["destination", "retry", "hook", "--json"]);
    assert!(ok, "{stderr}");
    assert_eq!(
        serde_json::from_str::<Value>(stdout.trim()).expect("json")["queued"],
        1
    );
    poll_until("the retried event", || fake.accepted().len() == 2).await;

    // A replay asked with the CLI is picked up by the running node.
    let (ok, _, stderr) = cli(
        dir.path(),
        &[
            "destination",
            "replay",
            "hook",
            "--source",
            "web",
            "--from",
            "nonsense",
        ],
    );
    assert!(!ok && stderr.contains("from"), "{stderr}");
    let (ok, _, stderr) = cli(
        dir.path(),
        &["destination", "replay", "hook", "--source", "web"],
    );
    assert!(ok, "{stderr}");
    poll_until("the replayed events", || fake.accepted().len() == 4).await;
    poll_until("the replay to be done", || {
        let (_, stdout, _) = cli(dir.path(), &["destination", "replays", "hook", "--json"]);
        let replays: Value = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
        replays["replays"][0]["state"] == "done"
    })
    .await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread")]
async fn profile_commands_show_the_graph_and_unmerge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, key) = create_source(dir.path(), "web");
    let server = Server::start(dir.path(), &[]);
    let client = reqwest::Client::new();
    let batch = json!({"batch": [
        {"type": "track", "event": "Viewed", "anonymousId": "phone", "messageId": "p-1"},
        {"type": "identify", "userId": "u1", "messageId": "p-2", "traits": {"email": "cli@example.com"}},
        {"type": "identify", "anonymousId": "phone", "messageId": "p-3", "traits": {"email": "cli@example.com"}},
    ]});
    let response = client
        .post(server.url("/v1/batch"))
        .basic_auth(&key, Some(""))
        .body(batch.to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 200);
    let mut graph = Value::Null;
    poll_until("the merge", || {
        let (ok, stdout, _) = cli(dir.path(), &["profile", "show", "user_id:u1", "--json"]);
        graph = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
        ok && graph["merges"].as_array().is_some_and(|m| m.len() == 1)
    })
    .await;
    assert_eq!(graph["merges"][0]["message_id"], "p-3");
    let (ok, text, _) = cli(dir.path(), &["profile", "show", "email:CLI@example.com"]);
    assert!(ok);
    assert!(
        text.contains("anonymous_id:phone") && text.contains("by message p-3"),
        "{text}"
    );

    let merge = graph["merges"][0]["id"].to_string();
    let (ok, stdout, stderr) = cli(
        dir.path(),
        &[
            "profile",
            "unmerge",
            "user_id:u1",
            "--merge",
            &merge,
            "--json",
        ],
    );
    assert!(ok, "{stderr}");
    let result: Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(result["profiles"].as_array().map(Vec::len), Some(2));
    let (ok, _, stderr) = cli(dir.path(), &["profile", "show", "user_id:nobody"]);
    assert!(!ok);
    assert!(
        stderr.contains("no profile holds user_id:nobody"),
        "{stderr}"
    );

    let (ok, stdout, _) = cli(dir.path(), &["profile", "token-create", "bi", "--json"]);
    assert!(ok);
    let token: Value = serde_json::from_str(stdout.trim()).expect("json");
    let url = server.url(&format!(
        "/v1/spaces/{}/collections/users/profiles/email:cli@example.com/traits",
        token["space_id"].as_str().expect("space")
    ));
    let response = client
        .get(url)
        .basic_auth(token["token"].as_str().expect("token"), Some(""))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 200);

    let bad = dir.path().join("bad-settings.json");
    std::fs::write(
        &bad,
        r#"{"identifiers": [{"type": "user_id", "limit": 0, "window": "ever"}]}"#,
    )
    .expect("write");
    let (ok, _, stderr) = cli(
        dir.path(),
        &["profile", "set-settings", bad.to_str().expect("path")],
    );
    assert!(!ok);
    assert!(stderr.contains("identifiers[0].limit"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn privacy_commands_delete_a_person_and_verify_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (source, key) = create_source(dir.path(), "web");
    let server = Server::start(dir.path(), &[]);
    let client = reqwest::Client::new();
    let batch = json!({"batch": [
        {"type": "track", "event": "Viewed", "anonymousId": "anon-cli-del", "messageId": "d-1"},
        {"type": "identify", "userId": "user-cli-del", "anonymousId": "anon-cli-del", "messageId": "d-2",
         "traits": {"email": "cli-del@example.org"}},
        {"type": "identify", "userId": "user-cli-keep", "messageId": "d-3"},
    ]});
    let response = client
        .post(server.url("/v1/batch"))
        .basic_auth(&key, Some(""))
        .body(batch.to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 200);
    poll_until("the profile", || {
        let (ok, _, _) = cli(dir.path(), &["profile", "show", "user_id:user-cli-del"]);
        ok
    })
    .await;

    // Found before, by the stores and in the files; status 1.
    let verify = [
        "privacy",
        "verify",
        "--subject-type",
        "EMAIL",
        "cli-del@example.org",
    ];
    let (ok, text, _) = cli(dir.path(), &verify);
    assert!(!ok, "{text}");
    assert!(text.contains("log\t2 record(s)"), "{text}");

    let (ok, exported, stderr) = cli(
        dir.path(),
        &[
            "privacy",
            "export",
            "--subject-type",
            "EMAIL",
            "cli-del@example.org",
        ],
    );
    assert!(ok, "{stderr}");
    let exported: Value = serde_json::from_str(&exported).expect("json");
    assert_eq!(
        exported["events"].as_array().map(Vec::len),
        Some(2),
        "{exported}"
    );
    assert_eq!(
        exported["profile"]["traits"]["email"],
        "cli-del@example.org"
    );

    let (ok, _, stderr) = cli(
        dir.path(),
        &[
            "privacy",
            "regulate",
            "--type",
            "FORGET",
            "--subject-type",
            "EMAIL",
            "x@example.org",
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("--type"), "{stderr}");

    let (ok, stdout, stderr) = cli(
        dir.path(),
        &[
            "privacy",
            "regulate",
            "--type",
            "DELETE_INTERNAL",
            "--subject-type",
            "EMAIL",
            "cli-del@example.org",
            "--wait",
            "60",
            "--json",
        ],
    );
    assert!(ok, "{stderr}");
    let regulation: Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(regulation["overallStatus"], "FINISHED", "{regulation}");
    assert_eq!(
        regulation["report"]["stores"][0]["erased"], 2,
        "{regulation}"
    );
    assert!(!stdout.contains("cli-del"), "{stdout}");

    let (ok, text, stderr) = cli(dir.path(), &verify);
    assert!(ok, "{text} {stderr}");
    assert!(text.contains("clean: nothing found"), "{text}");
    let (ok, listed, _) = cli(dir.path(), &["privacy", "regulations"]);
    assert!(
        ok && listed.contains("DELETE_INTERNAL\tFINISHED"),
        "{listed}"
    );
    let events = all_events(&client, &server, &source).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["messageId"], "d-3");
}

#[tokio::test]
async fn privacy_settings_and_inventory_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (source, key) = create_source(dir.path(), "web");

    // Settings are checked whole, naming the field at fault.
    let (ok, _, err) = cli(
        dir.path(),
        &[
            "privacy",
            "settings",
            "--set",
            r#"{"retention": {"sources": {"src_nope": 3}}}"#,
        ],
    );
    assert!(!ok);
    assert!(err.contains("retention.sources.src_nope"), "{err}");
    let (ok, _, err) = cli(
        dir.path(),
        &[
            "privacy",
            "settings",
            "--set",
            r#"{"pii": {"classes": {"email": "scramble"}}}"#,
        ],
    );
    assert!(!ok);
    assert!(err.contains("invalid privacy settings"), "{err}");
    let wanted = json!({"retention": {"days": 30, "sources": {source.clone(): 7}},
        "pii": {"classes": {"payment_card": "block"}}});
    let (ok, out, err) = cli(
        dir.path(),
        &["privacy", "settings", "--set", &wanted.to_string()],
    );
    assert!(ok, "{err}");
    let saved: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(saved["retention"]["sources"][&source], 7);
    let (ok, out, _) = cli(dir.path(), &["privacy", "settings"]);
    assert!(ok);
    let read: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(read, saved);

    // A running node applies them (the card is blocked) and fills the inventory.
    let server = Server::start(dir.path(), &[]);
    let client = reqwest::Client::new();
    let batch = json!({"batch": [
        {"type": "identify", "userId": "inv-user", "messageId": "i-1",
         "traits": {"email": "inv@example.org", "plan": "pro"}},
        {"type": "track", "event": "Paid", "userId": "inv-user", "messageId": "i-2",
         "properties": {"card": "4111 1111 1111 1111"}},
    ]});
    let response = client
        .post(server.url("/v1/batch"))
        .basic_auth(&key, Some(""))
        .body(batch.to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["rejected"][0]["code"], "pii_blocked", "{answer}");
    poll_until("the inventory", || {
        let (ok, out, _) = cli(dir.path(), &["privacy", "inventory", "--json"]);
        ok && out.contains("traits.email")
    })
    .await;
    let (ok, out, _) = cli(dir.path(), &["privacy", "inventory", "--class", "email"]);
    assert!(ok);
    assert!(
        out.contains("identify\ttraits.email\temail\t1 event(s)"),
        "{out}"
    );
    assert!(!out.contains("inv@example.org"), "{out}");
    let (ok, _, err) = cli(dir.path(), &["privacy", "inventory", "--class", "shoe"]);
    assert!(!ok);
    assert!(err.contains("--class"), "{err}");
}

#[tokio::test]
async fn oauth_apps_and_the_public_url_come_from_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(
        dir.path(),
        &[
            ("SLUICE_PUBLIC_URL", "https://sluice.example.com/"),
            (
                "SLUICE_OAUTH__WORKSPACES__DEFAULT__META__CLIENT_ID",
                "424242",
            ),
            (
                "SLUICE_OAUTH__WORKSPACES__DEFAULT__META__CLIENT_SECRET",
                "meta-secret-from-the-environment",
            ),
        ],
    );
    let client = reqwest::Client::new();
    let answer = client
        .post(server.url("/api/v1/connections"))
        .bearer_auth(TOKEN)
        .json(&json!({"provider": "meta"}))
        .send()
        .await
        .expect("start");
    assert_eq!(answer.status(), 201);
    let text = answer.text().await.expect("text");
    assert!(!text.contains("meta-secret"), "{text}");
    let started: Value = serde_json::from_str(&text).expect("json");
    let url = started["authorization_url"].as_str().expect("url");
    assert!(
        url.starts_with("https://www.facebook.com/v25.0/dialog/oauth?client_id=424242&"),
        "{url}"
    );
    assert!(
        url.contains("redirect_uri=https%3A%2F%2Fsluice.example.com%2Foauth%2Fcallback"),
        "{url}"
    );

    // No Google app for this workspace.
    let answer = client
        .post(server.url("/api/v1/connections"))
        .bearer_auth(TOKEN)
        .json(&json!({"provider": "google"}))
        .send()
        .await
        .expect("start");
    assert_eq!(answer.status(), 400);
    let refused: Value = answer.json().await.expect("json");
    assert_eq!(refused["code"], "provider_not_configured");
}
