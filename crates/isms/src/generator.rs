//! `isms generator ...`: the alert generator's side of the collector API from the command line
//! (through the `isms-generator` library the host agent uses too), and `isms audit`: the
//! collector's activity log.
use std::io::Write;

use anyhow::{Context, anyhow};
use isms_generator::{GeneratorClient, Profile, Registration};
use serde_json::{Map, Value, json};

use crate::ServerFlags;
use crate::client::ApiClient;
use crate::commands::terminal_safe;

#[derive(Debug, clap::Subcommand)]
pub enum GeneratorAction {
    /// Register a generator (with an operator's key); prints the answer with the generator's key,
    /// shown this once.
    Register {
        #[arg(long)]
        name: String,
        #[arg(long)]
        author: String,
        /// The generator's address.
        #[arg(long)]
        ip: Option<String>,
        /// Where its key may be used from: `registered` (its --ip), an address or a network.
        #[arg(long)]
        bind: Option<String>,
        /// How often it calls in, seconds (a generator silent longer is reported).
        #[arg(long, value_name = "SECONDS")]
        interval: Option<u64>,
        /// Where the collector pushes its changes (`http://HOST:PORT/push`, what `isms generator
        /// listen` serves); it only pulls when absent.
        #[arg(long, value_name = "URL")]
        push_url: Option<String>,
    },
    /// Check that the generator is registered (with this author and address, when given).
    Verify {
        #[arg(long)]
        name: String,
        #[arg(long)]
        author: Option<String>,
        #[arg(long)]
        ip: Option<String>,
    },
    /// Change the generator's author, address, binding, interval or push URL.
    Update {
        #[arg(long)]
        name: String,
        #[arg(long)]
        author: Option<String>,
        #[arg(long)]
        ip: Option<String>,
        /// A new binding; "" removes it.
        #[arg(long)]
        bind: Option<String>,
        #[arg(long, value_name = "SECONDS")]
        interval: Option<u64>,
        /// A new push URL (an operator's key only); "" stops pushes.
        #[arg(long, value_name = "URL")]
        push_url: Option<String>,
    },
    /// Delete the generator (its key stops working).
    Delete {
        #[arg(long)]
        name: String,
    },
    /// Take the changes of the generator's instances: prints each as a JSON line; waits up to
    /// --wait seconds for one; with --follow, keeps taking them until stopped.
    Pull {
        #[arg(long)]
        name: String,
        /// Changes after this version (the last one applied).
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Seconds to wait for a change when there is none.
        #[arg(long, default_value_t = 25)]
        wait: u64,
        /// Keep pulling, each time after the last version taken.
        #[arg(long)]
        follow: bool,
        /// Acknowledge each change as applied.
        #[arg(long, conflicts_with = "fail")]
        ack: bool,
        /// Acknowledge each change as not applied, with this reason.
        #[arg(long, value_name = "REASON")]
        fail: Option<String>,
    },
    /// Take the changes the collector pushes (the generator was registered with --push-url):
    /// serves POST /push on --listen, checks each push's signature with the key given by --key
    /// (the generator's own), prints each new change as a JSON line and acknowledges it over the
    /// API. Runs until stopped.
    Listen {
        #[arg(long)]
        name: String,
        /// The address and port to listen on.
        #[arg(long, value_name = "ADDRESS:PORT")]
        listen: std::net::SocketAddr,
        /// Acknowledge each change as not applied, with this reason (applied otherwise).
        #[arg(long, value_name = "REASON")]
        fail: Option<String>,
    },
    /// Send events as the generator (as `isms send`, with the generator's key): each records
    /// `origin.key = generator:NAME`.
    Send {
        #[command(flatten)]
        options: crate::commands::SendOptions,
    },
    /// Report what an instance did.
    Profile {
        #[arg(long)]
        name: String,
        /// The instance's id.
        #[arg(long)]
        instance: String,
        #[arg(long, default_value_t = 0)]
        events_seen: u64,
        #[arg(long, default_value_t = 0)]
        alerts_raised: u64,
        /// When it last ran (RFC 3339).
        #[arg(long)]
        last_run: Option<String>,
        #[arg(long, default_value_t = 0)]
        errors: u64,
        #[arg(long)]
        last_error: Option<String>,
    },
}

fn client(server: &ServerFlags) -> anyhow::Result<GeneratorClient> {
    let key = server.key.clone().filter(|key| !key.is_empty()).ok_or_else(|| {
        anyhow!("no key: pass --key KEY or set ISMS_KEY (an operator's key to register, then the generator's own)")
    })?;
    Ok(GeneratorClient::new(&server.url, &key)?)
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    let mut output = std::io::stdout().lock();
    writeln!(output, "{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

/// Runs one `isms generator` action.
pub async fn generator(server: &ServerFlags, action: GeneratorAction) -> anyhow::Result<()> {
    let client = client(server)?;
    match action {
        GeneratorAction::Register {
            name,
            author,
            ip,
            bind,
            interval,
            push_url,
        } => {
            let (answer, _) = client
                .register(&Registration {
                    name,
                    author,
                    ip,
                    bind,
                    expected_interval_seconds: interval,
                    push_url,
                })
                .await?;
            print_json(&answer)
        }
        GeneratorAction::Verify { name, author, ip } => print_json(
            &client
                .verify(&name, author.as_deref(), ip.as_deref())
                .await?,
        ),
        GeneratorAction::Update {
            name,
            author,
            ip,
            bind,
            interval,
            push_url,
        } => {
            let mut changes = Map::new();
            for (field, value) in [
                ("author", author),
                ("ip", ip),
                ("bind", bind),
                ("push_url", push_url),
            ] {
                if let Some(value) = value {
                    changes.insert(field.to_owned(), json!(value));
                }
            }
            if let Some(interval) = interval {
                changes.insert("expected_interval_seconds".to_owned(), json!(interval));
            }
            print_json(&client.update(&name, changes).await?)
        }
        GeneratorAction::Delete { name } => print_json(&client.delete(&name).await?),
        GeneratorAction::Pull {
            name,
            after,
            wait,
            follow,
            ack,
            fail,
        } => pull(&client, &name, after, wait, follow, ack, fail.as_deref()).await,
        GeneratorAction::Send { options } => crate::commands::send(server, &options).await,
        GeneratorAction::Listen { name, listen, fail } => {
            let key = server.key.clone().unwrap_or_default();
            crate::push_listener::listen(client, &key, name, listen, fail).await
        }
        GeneratorAction::Profile {
            name,
            instance,
            events_seen,
            alerts_raised,
            last_run,
            errors,
            last_error,
        } => {
            let profile = Profile {
                events_seen,
                alerts_raised,
                last_run,
                errors,
                last_error,
            };
            print_json(&client.report_profile(&name, &instance, &profile).await?)
        }
    }
}

/// Pulls changes (once, or until stopped), printing each and acknowledging it when asked.
async fn pull(
    client: &GeneratorClient,
    name: &str,
    mut after: u64,
    wait: u64,
    follow: bool,
    ack: bool,
    fail: Option<&str>,
) -> anyhow::Result<()> {
    loop {
        let pulled = client.pull_changes(name, after, wait).await?;
        for change in &pulled.changes {
            {
                let mut output = std::io::stdout().lock();
                writeln!(output, "{}", serde_json::to_string(change)?)?;
                output.flush()?;
            }
            if ack || fail.is_some() {
                client
                    .acknowledge(name, &change.id, change.version, fail)
                    .await
                    .with_context(|| {
                        format!(
                            "cannot acknowledge instance {} version {}",
                            change.id, change.version
                        )
                    })?;
            }
        }
        after = pulled.last_version;
        if !follow {
            return Ok(());
        }
    }
}

/// Options of `isms audit`.
#[derive(Debug, clap::Args)]
pub struct AuditOptions {
    /// Only this generator's entries.
    #[arg(long)]
    pub generator: Option<String>,
    /// Only this action (register_generator, authenticate, pull_changes, ...).
    #[arg(long)]
    pub action: Option<String>,
    /// Only `ok`, `refused` or `failed` entries.
    #[arg(long, value_parser = ["ok", "refused", "failed"])]
    pub outcome: Option<String>,
    /// Start of the time range: now, -15m, 2024-05-01T00:00:00Z ...
    #[arg(long, allow_hyphen_values = true)]
    pub from: Option<String>,
    /// At most this many entries.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `isms audit`: the collector's activity log, newest first.
pub async fn audit(server: &ServerFlags, options: AuditOptions) -> anyhow::Result<()> {
    let client = ApiClient::new(server)?;
    let mut parameters = vec![("limit", options.limit.clamp(1, 10_000).to_string())];
    for (name, value) in [
        ("generator", &options.generator),
        ("action", &options.action),
        ("outcome", &options.outcome),
        ("from", &options.from),
    ] {
        if let Some(value) = value {
            parameters.push((name, value.clone()));
        }
    }
    let answer = client.get_json("/api/audit", &parameters).await?;
    let entries = answer["entries"].as_array().cloned().unwrap_or_default();
    let mut output = std::io::stdout().lock();
    if options.json {
        for entry in &entries {
            writeln!(output, "{entry}")?;
        }
        return Ok(());
    }
    writeln!(
        output,
        "{:<26}  {:<7}  {:<20}  {:<8}  {:<16}  {:<15}  DETAIL",
        "TIME (UTC)", "LEVEL", "ACTION", "OUTCOME", "GENERATOR", "ADDRESS"
    )?;
    for entry in &entries {
        let text =
            |field: &str| terminal_safe(entry.get(field).and_then(Value::as_str).unwrap_or("-"));
        let time = text("time");
        let detail = [text("object"), text("reason")]
            .into_iter()
            .filter(|part| part != "-")
            .collect::<Vec<_>>()
            .join(": ");
        writeln!(
            output,
            "{:<26}  {:<7}  {:<20}  {:<8}  {:<16}  {:<15}  {}",
            time.get(..26).unwrap_or(&time),
            text("level"),
            text("action"),
            text("outcome"),
            text("generator"),
            text("address"),
            detail
        )?;
    }
    Ok(())
}
