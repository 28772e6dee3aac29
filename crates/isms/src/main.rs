//! `isms`: the one binary. Subcommands are thin: each parses its flags, then calls a library crate.
//!
//! - `serve`: run the collector (HTTP ingestion, store, search API).
//! - `search`, `send`: talk to a running server over its HTTP API, with a key.
//! - `key`: manage keys directly in a data directory (works before any key exists).
//! - `decode`: show what the decoders make of log lines (like wazuh-logtest), without a server.
//! - `replay`: run detection rules over log files offline and print what fires.
//! - `detections`: what a running server's rules raised.
//! - `config check`: validate a configuration file and the `ISMS_...` environment.
//! - `version`.
mod client;
mod commands;
mod generator;
mod push_listener;
mod replay;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// isms: an information security monitoring system.
#[derive(Debug, Parser)]
#[command(name = "isms", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Flags that locate the configuration, shared by commands that read it. Global, so that they may follow a
/// subcommand too: `isms key create --name x --data DIR` as well as `isms key --data DIR create --name x`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigFlags {
    /// Configuration file (TOML). Every key can also be set with an ISMS_... environment variable.
    #[arg(long, value_name = "FILE", env = "ISMS_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Data directory [default: ./isms-data] (overrides data_dir / ISMS_DATA_DIR).
    #[arg(long, value_name = "DIR", global = true)]
    pub data: Option<PathBuf>,
}

/// Flags that locate a running server.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerFlags {
    /// The server's base URL.
    #[arg(
        long,
        value_name = "URL",
        env = "ISMS_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// The key to send (printed by `isms serve` on first start, or made with `isms key create`).
    #[arg(
        long,
        value_name = "KEY",
        env = "ISMS_KEY",
        hide_env_values = true,
        global = true
    )]
    pub key: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the collector: HTTP ingestion, the embedded store and the search API.
    Serve {
        #[command(flatten)]
        config: ConfigFlags,
        /// Address to listen on [default: 127.0.0.1:8080] (overrides http.listen / ISMS_HTTP_LISTEN).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Search stored events with the query language, e.g. `isms search 'details.username:joe' --from -1h`.
    Search {
        #[command(flatten)]
        options: commands::SearchOptions,
        #[command(flatten)]
        server: ServerFlags,
    },
    /// Send events from JSON, JSON-array or JSON-lines files to a server, in batches; or, with
    /// `--format syslog`, the lines of log files (syslog, JSON records, audit records), decoded.
    Send {
        #[command(flatten)]
        options: commands::SendOptions,
        #[command(flatten)]
        server: ServerFlags,
    },
    /// Decode log lines and print the events they make, one JSON object per line (no server needed).
    Decode {
        /// Files to read [default: standard input].
        files: Vec<PathBuf>,
        /// A file of your own decoders (as `decoders.file`), tried before the built-in ones.
        #[arg(long, value_name = "FILE")]
        decoders: Option<PathBuf>,
        /// Time zone of times written without one (`UTC`, `+02:00`, `Europe/Berlin`).
        #[arg(long, default_value = "UTC")]
        time_zone: String,
        /// The program of lines that name none (a daemon's own log file, e.g. `vsftpd`).
        #[arg(long)]
        program: Option<String>,
        /// Indented JSON, for reading.
        #[arg(long)]
        pretty: bool,
    },
    /// List what the server's detection rules raised, newest first.
    Detections {
        #[command(flatten)]
        options: commands::DetectionsOptions,
        #[command(flatten)]
        server: ServerFlags,
    },
    /// Run detection rules over log files offline, in event-time order, and print what fires (exit
    /// status 0 when a rule fired, 1 when none did, 2 on an error).
    Replay {
        #[command(flatten)]
        options: replay::ReplayOptions,
    },
    /// Sigma rule tools.
    Sigma {
        #[command(subcommand)]
        action: SigmaAction,
    },
    /// The alert generator's side of the collector: register, verify, update, delete; pull the
    /// instances it is asked to run, acknowledge them, report their profiles, send events.
    Generator {
        #[command(subcommand)]
        action: generator::GeneratorAction,
        #[command(flatten)]
        server: ServerFlags,
    },
    /// The collector's activity log (registry operations, generator exchanges, refused keys),
    /// newest first.
    Audit {
        #[command(flatten)]
        options: generator::AuditOptions,
        #[command(flatten)]
        server: ServerFlags,
    },
    /// Manage API keys in a data directory.
    Key {
        #[command(subcommand)]
        action: KeyAction,
        #[command(flatten)]
        config: ConfigFlags,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Print the version.
    Version,
}

#[derive(Debug, Subcommand)]
enum KeyAction {
    /// Create a key and print it once.
    Create {
        /// A name for the key (unique among live keys), e.g. the sender it is for.
        #[arg(long)]
        name: String,
    },
    /// List keys (never their secrets).
    List {
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id or name.
    Revoke {
        /// The key's id or name.
        key: String,
    },
}

#[derive(Debug, Subcommand)]
enum SigmaAction {
    /// Compile every rule of the directories (Sigma and native) without running them: list each
    /// rule that cannot be used with its file, line, id and reason (exit status 1 when any).
    Check {
        /// Directories of rule files (searched recursively).
        #[arg(required = true, value_name = "DIR")]
        directories: Vec<PathBuf>,
        /// Also print what each rule became (its kind and match in the query language).
        #[arg(long)]
        show: bool,
        /// A Sigma pipeline file (or an optional shipped one by name, e.g. `windows-evtx`),
        /// applied after the shipped pipelines and the directories' own. May be given several times.
        #[arg(long, value_name = "FILE")]
        pipeline: Vec<PathBuf>,
        /// A directory of list files (NAME.txt or NAME.list), the values of Sigma `|expand`
        /// placeholders (`%NAME%`) that no pipeline gives, as `isms replay --lists` and the
        /// server's `detect.lists_dir`.
        #[arg(long, value_name = "DIR")]
        lists: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Validate the configuration file and environment; print the effective configuration.
    Check {
        #[command(flatten)]
        config: ConfigFlags,
    },
    /// Print every configuration key with its environment variable and default.
    Reference,
}

/// mimalloc instead of the system allocator: ingestion allocates and frees many small strings and maps
/// per event, and with glibc's allocator that was a quarter of the decode CPU (measured with
/// `isms-loadgen decode-cpu`). SQLite keeps its own allocations on the system heap.
#[global_allocator]
static GLOBAL_ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // One TLS crypto provider for the whole process (ring: no C toolchain surprises).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Version => {
            println!("isms {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Config {
            action: ConfigAction::Reference,
        } => {
            print!("{}", isms_config::render_reference());
            Ok(())
        }
        Command::Config {
            action: ConfigAction::Check { config },
        } => commands::config_check(&config),
        Command::Decode {
            files,
            decoders,
            time_zone,
            program,
            pretty,
        } => commands::decode(&files, decoders.as_deref(), &time_zone, program, pretty),
        Command::Sigma {
            action:
                SigmaAction::Check {
                    directories,
                    show,
                    pipeline,
                    lists,
                },
        } => {
            return match replay::check_rules(&directories, &pipeline, lists.as_deref(), show) {
                Ok(code) => code,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    ExitCode::from(2)
                }
            };
        }
        Command::Replay { options } => {
            return match replay::replay(options) {
                Ok(code) => code,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    ExitCode::from(2)
                }
            };
        }
        command => run_async(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_async(command: Command) -> anyhow::Result<()> {
    // Few blocking threads: each thread that decodes a large batch keeps a malloc arena of its own
    // afterwards, so hundreds of them would hold on to hundreds of megabytes once a burst is over.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(8)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match command {
            Command::Serve { config, listen } => commands::serve(&config, listen).await,
            Command::Search { options, server } => commands::search(&server, options).await,
            Command::Detections { options, server } => commands::detections(&server, options).await,
            Command::Generator { action, server } => generator::generator(&server, action).await,
            Command::Audit { options, server } => generator::audit(&server, options).await,
            Command::Send { options, server } => commands::send(&server, &options).await,
            Command::Key { action, config } => match action {
                KeyAction::Create { name } => commands::key_create(&config, &name).await,
                KeyAction::List { json } => commands::key_list(&config, json).await,
                KeyAction::Revoke { key } => commands::key_revoke(&config, &key).await,
            },
            Command::Version
            | Command::Config { .. }
            | Command::Decode { .. }
            | Command::Sigma { .. }
            | Command::Replay { .. } => {
                unreachable!("handled without a runtime")
            }
        }
    })
}
