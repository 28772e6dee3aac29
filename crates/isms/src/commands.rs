//! What each subcommand does.
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use isms_config::{Config, LogFormat};
use isms_server::BootstrapKey;
use isms_store::Store;
use serde_json::Value;

use crate::client::ApiClient;
use crate::{ConfigFlags, ServerFlags};

fn environment(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Defaults ← file ← environment ← flags, validated.
fn load_config(flags: &ConfigFlags, listen: Option<String>) -> anyhow::Result<Config> {
    let mut config = Config::load(flags.config.as_deref(), &environment)?;
    if let Some(data) = &flags.data {
        config.data_dir = data.clone();
    }
    if let Some(listen) = listen {
        config.http.listen = listen;
    }
    config.validate()?;
    Ok(config)
}

fn init_logging(config: &Config) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level).with_context(|| {
        format!(
            "log.level {:?} is not a valid filter (e.g. \"info\" or \"info,isms_store=debug\")",
            config.log.level
        )
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    Ok(())
}

pub fn config_check(flags: &ConfigFlags) -> anyhow::Result<()> {
    let mut config = load_config(flags, None)?;
    // The effective configuration is meant to be shown and pasted; a broker password is not.
    config.amqp.url = redact_url_password(&config.amqp.url);
    println!(
        "configuration is valid{}",
        flags
            .config
            .as_ref()
            .map(|path| format!(" ({})", path.display()))
            .unwrap_or_default()
    );
    print!(
        "{}",
        toml::to_string(&config).context("cannot print the configuration")?
    );
    Ok(())
}

/// `scheme://user:password@host...` with the password replaced by `****`.
fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:****{}", &rest[at..]),
        None => url.to_owned(),
    }
}

async fn wait_for_shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

pub async fn serve(flags: &ConfigFlags, listen: Option<String>) -> anyhow::Result<()> {
    let config = load_config(flags, listen)?;
    init_logging(&config)?;
    let store = Arc::new(
        isms_server::open_store(&config)
            .await
            .context("cannot open the store")?,
    );
    let database = store.path().to_path_buf();
    let store: Arc<dyn Store> = store;
    let bootstrap = isms_server::bootstrap_key(
        store.as_ref(),
        environment("ISMS_BOOTSTRAP_KEY").filter(|key| !key.is_empty()),
    )
    .await
    .context("cannot create the first key (ISMS_BOOTSTRAP_KEY)")?;
    let running = isms_server::start(&config, store, wait_for_shutdown_signal())
        .await
        .with_context(|| format!("cannot start listening (HTTP on {})", config.http.listen))?;
    let base = format!("http://{}", running.local_address);
    let mut banner = String::new();
    banner.push_str(&format!("isms {} is running\n", env!("CARGO_PKG_VERSION")));
    banner.push_str(&format!(
        "  data       {} (SQLite {})\n",
        config.data_dir.display(),
        database.display()
    ));
    banner.push_str(&format!("  listening  {base}\n"));
    if let Some(address) = running.syslog.udp {
        banner.push_str(&format!("  syslog     udp {address}\n"));
    }
    if let Some(address) = running.syslog.tcp {
        banner.push_str(&format!("  syslog     tcp {address}\n"));
    }
    if let Some(address) = running.syslog.tls {
        banner.push_str(&format!("  syslog     tls {address}\n"));
    }
    if let Some(amqp) = &running.amqp {
        banner.push_str(&format!("  amqp       {} on {}\n", amqp.queue, amqp.broker));
    }
    banner.push_str(&format!("  ingest     POST {base}/events  (one JSON object, an array, or JSON lines; /_bulk for Elasticsearch bulk)\n"));
    banner.push_str(&format!(
        "  search     GET  {base}/api/events?q=details.username:joe   or   isms search 'QUERY'\n"
    ));
    banner.push_str(&format!(
        "  health     {base}/status   metrics {base}/metrics\n"
    ));
    banner.push_str("  console    none yet: use the API or the CLI (the web console arrives in a later release)\n");
    match &bootstrap {
        BootstrapKey::Created {
            name,
            text,
            from_environment: false,
        } => {
            banner.push_str(&format!(
                "  key        {text}\n             (key \"{name}\", shown only this once: store it now)\n"
            ));
        }
        BootstrapKey::Created {
            name,
            from_environment: true,
            ..
        } => {
            banner.push_str(&format!(
                "  key        the value of ISMS_BOOTSTRAP_KEY (stored as key \"{name}\")\n"
            ));
        }
        BootstrapKey::Existing { live } => {
            banner.push_str(&format!(
                "  keys       {live} live key(s) in this data directory; make another with `isms key create --name NAME`\n"
            ));
        }
    }
    banner.push_str("  auth       send \"Authorization: Bearer KEY\" (or ?key=KEY), e.g.\n");
    banner.push_str(&format!(
        "             curl -H \"Authorization: Bearer $KEY\" -d '{{\"summary\":\"hello\"}}' {base}/events\n"
    ));
    print!("{banner}");
    std::io::stdout().flush().ok();
    spawn_memory_trimmer();
    tracing::info!(listen = %running.local_address, data = %config.data_dir.display(), "isms serve started");
    let outcome = running.task.await.context("the server task failed")?;
    outcome.context("the server stopped with an error")?;
    tracing::info!("isms serve stopped");
    Ok(())
}

/// Hands memory freed after a burst back to the operating system.
///
/// Both heaps keep freed memory for reuse: mimalloc (Rust's allocations) and glibc (SQLite's page
/// caches and statements). After a large ingestion burst that is well over a hundred megabytes a quiet
/// server would hold on to. Collecting every 10 seconds costs microseconds.
fn spawn_memory_trimmer() {
    tokio::spawn(async {
        let mut interval = tokio::time::interval(std::time::Duration::from_secs(10));
        loop {
            interval.tick().await;
            // SAFETY: mi_collect only walks and releases mimalloc's own free pages (of this thread's
            // heap and the abandoned ones); it takes no pointers.
            unsafe {
                libmimalloc_sys::mi_collect(true);
            }
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            // SAFETY: malloc_trim only walks and releases the allocator's own free lists.
            unsafe {
                libc::malloc_trim(0);
            }
        }
    });
}

async fn open_local_store(flags: &ConfigFlags) -> anyhow::Result<Arc<dyn Store>> {
    let config = load_config(flags, None)?;
    let store = isms_server::open_store(&config)
        .await
        .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?;
    Ok(Arc::new(store))
}

pub async fn key_create(flags: &ConfigFlags, name: &str) -> anyhow::Result<()> {
    let store = open_local_store(flags).await?;
    let (record, text) = isms_server::auth::create_key(store.as_ref(), name, None).await?;
    println!("{text}");
    eprintln!(
        "created key {:?} (id {}); it is shown only this once",
        record.name, record.id
    );
    Ok(())
}

pub async fn key_list(flags: &ConfigFlags, json: bool) -> anyhow::Result<()> {
    let store = open_local_store(flags).await?;
    let keys = store.list_keys().await?;
    if json {
        for key in keys {
            println!("{}", serde_json::to_string(&key)?);
        }
        return Ok(());
    }
    println!("{:<16}  {:<24}  {:<32}  STATE", "ID", "NAME", "CREATED");
    for key in keys {
        let state = match key.revoked_micros {
            Some(at) => format!("revoked {}", isms_event::format_time(at)),
            None => "live".to_string(),
        };
        println!(
            "{:<16}  {:<24}  {:<32}  {state}",
            key.id,
            terminal_safe(&key.name),
            isms_event::format_time(key.created_micros)
        );
    }
    Ok(())
}

pub async fn key_revoke(flags: &ConfigFlags, key: &str) -> anyhow::Result<()> {
    let store = open_local_store(flags).await?;
    let revoked = store
        .revoke_key(key, jiff::Timestamp::now().as_microsecond())
        .await?;
    if revoked == 0 {
        bail!("no live key has the id or name {key:?} (see `isms key list`)");
    }
    println!("revoked {key}; a running server refuses it within 5 seconds");
    Ok(())
}

/// Text from events is shown on a terminal: control characters (escape sequences!) are made visible.
pub fn terminal_safe(text: &str) -> String {
    let mut safe = String::with_capacity(text.len());
    for character in text.chars() {
        if character.is_control() {
            safe.extend(character.escape_default());
        } else {
            safe.push(character);
        }
    }
    safe
}

#[derive(Debug, clap::Args)]
pub struct SearchOptions {
    /// The query (Lucene-style: field:value, "phrases", wildcards, /regex/, [a TO b], AND OR NOT).
    #[arg(default_value = "")]
    pub query: String,
    /// Start of the time range: now, -15m, now-2h, 2024-05-01T00:00:00Z ...
    #[arg(long, allow_hyphen_values = true)]
    pub from: Option<String>,
    /// End of the time range (exclusive).
    #[arg(long, allow_hyphen_values = true)]
    pub to: Option<String>,
    /// At most this many events.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Oldest first instead of newest first.
    #[arg(long)]
    pub oldest_first: bool,
    /// Print JSON lines (one event per line) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Print only how many events match.
    #[arg(long, conflicts_with = "json")]
    pub count: bool,
}

pub async fn search(server: &ServerFlags, options: SearchOptions) -> anyhow::Result<()> {
    let client = ApiClient::new(server)?;
    let mut parameters = vec![("q", options.query.clone())];
    if let Some(from) = &options.from {
        parameters.push(("from", from.clone()));
    }
    if let Some(to) = &options.to {
        parameters.push(("to", to.clone()));
    }
    if options.count {
        let answer = client.get_json("/api/events/count", &parameters).await?;
        println!("{}", answer["count"]);
        return Ok(());
    }
    parameters.push(("limit", options.limit.clamp(1, 10_000).to_string()));
    parameters.push((
        "sort",
        if options.oldest_first { "asc" } else { "desc" }.to_string(),
    ));
    let answer = client.get_json("/api/events", &parameters).await?;
    let events = answer["events"].as_array().cloned().unwrap_or_default();
    let mut output = std::io::stdout().lock();
    if options.json {
        for event in &events {
            writeln!(output, "{event}")?;
        }
        return Ok(());
    }
    writeln!(
        output,
        "{:<26}  {:<8}  {:<16}  {:<20}  SUMMARY",
        "TIME (UTC)", "SEVERITY", "CATEGORY", "HOSTNAME"
    )?;
    for event in &events {
        let text =
            |field: &str| terminal_safe(event.get(field).and_then(Value::as_str).unwrap_or("-"));
        let time = text("utctimestamp");
        let summary = match event.get("summary").and_then(Value::as_str) {
            Some(summary) => terminal_safe(summary),
            None => terminal_safe(
                &event
                    .get("details")
                    .map(Value::to_string)
                    .unwrap_or_default(),
            ),
        };
        writeln!(
            output,
            "{:<26}  {:<8}  {:<16}  {:<20}  {}",
            time.get(..26).unwrap_or(&time),
            text("severity"),
            truncate(&text("category"), 16),
            truncate(&text("hostname"), 20),
            truncate(&summary, 200)
        )?;
    }
    if answer["next_cursor"].is_string() {
        writeln!(
            output,
            "(more events match; raise --limit or narrow the query)"
        )?;
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct DetectionsOptions {
    /// Only this rule's detections (its id).
    #[arg(long)]
    pub rule: Option<String>,
    /// Only `fired` or `cleared` detections.
    #[arg(long, value_parser = ["fired", "cleared"])]
    pub state: Option<String>,
    /// A further query on the detection events (e.g. `details.username:root`).
    #[arg(long, default_value = "")]
    pub query: String,
    /// Start of the time range: now, -15m, now-2h, 2024-05-01T00:00:00Z ...
    #[arg(long, allow_hyphen_values = true)]
    pub from: Option<String>,
    /// End of the time range (exclusive).
    #[arg(long, allow_hyphen_values = true)]
    pub to: Option<String>,
    /// At most this many detections.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Print JSON lines (one detection per line) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `isms detections`: what the server's rules raised, newest first.
pub async fn detections(server: &ServerFlags, options: DetectionsOptions) -> anyhow::Result<()> {
    let client = ApiClient::new(server)?;
    let mut parameters = vec![
        ("q", options.query.clone()),
        ("limit", options.limit.clamp(1, 10_000).to_string()),
    ];
    for (name, value) in [
        ("rule", &options.rule),
        ("state", &options.state),
        ("from", &options.from),
        ("to", &options.to),
    ] {
        if let Some(value) = value {
            parameters.push((name, value.clone()));
        }
    }
    let answer = client.get_json("/api/detections", &parameters).await?;
    let detections = answer["detections"].as_array().cloned().unwrap_or_default();
    let mut output = std::io::stdout().lock();
    if options.json {
        for detection in &detections {
            writeln!(output, "{detection}")?;
        }
        return Ok(());
    }
    writeln!(
        output,
        "{:<26}  {:<7}  {:<8}  {:<32}  {:>6}  {:<32}  MESSAGE",
        "TIME (UTC)", "STATE", "SEVERITY", "RULE", "COUNT", "GROUP"
    )?;
    for detection in &detections {
        let text = |field: &str| {
            terminal_safe(detection.get(field).and_then(Value::as_str).unwrap_or("-"))
        };
        let time = text("time");
        let group = detection
            .get("group")
            .and_then(Value::as_object)
            .map(|group| {
                group
                    .iter()
                    .map(|(field, value)| format!("{field}={}", value.as_str().unwrap_or("-")))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        writeln!(
            output,
            "{:<26}  {:<7}  {:<8}  {:<32}  {:>6}  {:<32}  {}",
            time.get(..26).unwrap_or(&time),
            text("state"),
            text("severity"),
            truncate(&text("rule_id"), 32),
            detection.get("count").and_then(Value::as_u64).unwrap_or(0),
            truncate(&terminal_safe(&group), 32),
            truncate(&text("message"), 200)
        )?;
    }
    if answer["next_cursor"].is_string() {
        writeln!(
            output,
            "(more detections match; raise --limit or narrow the filters)"
        )?;
    }
    Ok(())
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// One item read from a file, or why it could not be read.
pub(crate) enum FileItem {
    Event(Value),
    Unreadable { place: String, reason: String },
}

/// Splits a file into items: one JSON object, an array of them, JSON lines, or concatenated values.
pub(crate) fn read_items(path: &Path) -> anyhow::Result<Vec<FileItem>> {
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
    } else {
        std::fs::File::open(path)
            .and_then(|mut file| file.read_to_end(&mut bytes))
            .with_context(|| format!("cannot read {}", path.display()))?;
    }
    let mut items = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let mut stream =
            serde_json::Deserializer::from_slice(&bytes[offset..]).into_iter::<Value>();
        match stream.next() {
            None => break,
            Some(Ok(Value::Array(elements))) => {
                offset += stream.byte_offset();
                items.extend(elements.into_iter().map(FileItem::Event));
            }
            Some(Ok(value)) => {
                offset += stream.byte_offset();
                items.push(FileItem::Event(value));
            }
            Some(Err(error)) => {
                let line = bytes[..offset]
                    .iter()
                    .filter(|byte| **byte == b'\n')
                    .count()
                    + error.line();
                items.push(FileItem::Unreadable {
                    place: format!("{}:{line}", path.display()),
                    reason: error.to_string(),
                });
                // Resume at the next line.
                let failed_at = offset + stream.byte_offset();
                match bytes[failed_at..].iter().position(|byte| *byte == b'\n') {
                    Some(newline) => offset = failed_at + newline + 1,
                    None => break,
                }
            }
        }
    }
    Ok(items)
}

/// What `isms send` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SendFormat {
    /// MozDef events: JSON objects, arrays of them, or JSON lines.
    Json,
    /// Log lines: syslog, JSON records (Suricata, Zeek), audit records; decoded.
    #[value(alias = "lines")]
    Syslog,
}

/// The line decoder of `isms decode` and `isms send --format syslog`: built-in decoders plus the
/// file's, times without a zone in `time_zone`, a year inferred from `received`.
pub(crate) fn line_decoder(
    decoders_file: Option<&Path>,
    time_zone: &str,
    received: jiff::Timestamp,
    program: Option<String>,
) -> anyhow::Result<isms_decode::LineDecoder> {
    let time_zone = isms_config::parse_time_zone(time_zone)
        .map_err(|reason| anyhow::anyhow!("--time-zone: {reason}"))?;
    let file = decoders_file.map(|file| file.display().to_string());
    let decoders = isms_server::build_decoders(file.as_deref().unwrap_or(""))
        .map_err(|reason| anyhow::anyhow!(reason))?;
    let context = isms_syslog::ParseContext {
        received,
        time_zone,
    };
    let decoder = isms_decode::LineDecoder::new(Arc::new(decoders), context);
    Ok(match program {
        Some(program) => decoder.with_default_program(program),
        None => decoder,
    })
}

/// When a file was last written: the receipt time of its lines, so that times without a year get
/// the year they were written in.
pub(crate) fn written_at(path: &Path) -> jiff::Timestamp {
    std::fs::metadata(path)
        .and_then(|metadata| metadata.modified())
        .ok()
        .and_then(|modified| jiff::Timestamp::try_from(modified).ok())
        .unwrap_or_else(jiff::Timestamp::now)
}

pub(crate) fn open_input(path: &Path) -> anyhow::Result<Box<dyn std::io::BufRead + Send>> {
    if path == Path::new("-") {
        return Ok(Box::new(std::io::BufReader::new(std::io::stdin())));
    }
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Box::new(std::io::BufReader::with_capacity(
        256 * 1024,
        file,
    )))
}

/// Longest line `isms decode` and `isms send --format syslog` read; longer ones are reported.
const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Reads the lines of `input` (bounded, lossy UTF-8), calling `each` with the line number and text.
pub(crate) fn for_each_line(
    mut input: impl std::io::BufRead,
    mut each: impl FnMut(usize, Result<&str, String>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut buffer = Vec::new();
    let mut number = 0;
    loop {
        buffer.clear();
        let read = (&mut input)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buffer)?;
        if read == 0 {
            return Ok(());
        }
        number += 1;
        if buffer.len() > MAX_LINE_BYTES && buffer.last() != Some(&b'\n') {
            // Skip the rest of the long line.
            let mut rest = Vec::new();
            loop {
                rest.clear();
                let skipped = (&mut input).take(64 * 1024).read_until(b'\n', &mut rest)?;
                if skipped == 0 || rest.last() == Some(&b'\n') {
                    break;
                }
            }
            each(
                number,
                Err(format!("line longer than {MAX_LINE_BYTES} bytes")),
            )?;
            continue;
        }
        let text = String::from_utf8_lossy(&buffer);
        each(number, Ok(&text))?;
    }
}

/// `isms decode`: each line's events as JSON lines on stdout.
pub fn decode(
    files: &[PathBuf],
    decoders_file: Option<&Path>,
    time_zone: &str,
    program: Option<String>,
    pretty: bool,
) -> anyhow::Result<()> {
    let stdin = [PathBuf::from("-")];
    let files = if files.is_empty() { &stdin[..] } else { files };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut print = |event: &Value| -> anyhow::Result<()> {
        if pretty {
            serde_json::to_writer_pretty(&mut out, event)?;
        } else {
            serde_json::to_writer(&mut out, event)?;
        }
        out.write_all(b"\n")?;
        Ok(())
    };
    for path in files {
        let received = if path == Path::new("-") {
            jiff::Timestamp::now()
        } else {
            written_at(path)
        };
        let mut decoder = line_decoder(decoders_file, time_zone, received, program.clone())?;
        for_each_line(open_input(path)?, |number, line| {
            match line {
                Ok(line) => {
                    for event in decoder.push_line(line) {
                        print(&event)?;
                    }
                }
                Err(reason) => eprintln!("{}:{number}: {reason}", path.display()),
            }
            Ok(())
        })?;
        for event in decoder.finish() {
            print(&event)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// What `isms send` and `isms generator send` take.
#[derive(Debug, clap::Args)]
pub struct SendOptions {
    /// Files to send ("-" for standard input).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// `json`: MozDef events as JSON, JSON arrays or JSON lines. `syslog` (or `lines`): one log
    /// line each, read and decoded as `isms decode` shows.
    #[arg(long, value_enum, default_value_t = SendFormat::Json)]
    format: SendFormat,
    /// Time zone of times written without one, for `--format syslog` (`UTC`, `+02:00`, `Europe/Berlin`).
    #[arg(long, default_value = "UTC")]
    time_zone: String,
    /// Events per request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Compress requests with gzip.
    #[arg(long)]
    gzip: bool,
}

pub async fn send(server: &ServerFlags, options: &SendOptions) -> anyhow::Result<()> {
    let (files, format, time_zone, batch, gzip) = (
        options.files.as_slice(),
        options.format,
        options.time_zone.as_str(),
        options.batch,
        options.gzip,
    );
    if format == SendFormat::Syslog {
        return send_lines(server, files, time_zone, batch, gzip).await;
    }
    let client = ApiClient::new(server)?;
    let batch = batch.clamp(1, 100_000);
    let mut rejections: Vec<(String, String)> = Vec::new();
    let mut accepted_total = 0usize;
    let mut items_total = 0usize;
    for path in files {
        let items = read_items(path)?;
        let progress = progress_bar(
            items.len() as u64,
            "{msg} [{bar:30}] {pos}/{len} events ({per_sec}, eta {eta})",
            path.display().to_string(),
        );
        let mut pending: Vec<(usize, Value)> = Vec::with_capacity(batch);
        let total_items = items.len();
        for (index, item) in items.into_iter().enumerate() {
            match item {
                FileItem::Event(value) => pending.push((index, value)),
                FileItem::Unreadable { place, reason } => rejections.push((place, reason)),
            }
            if pending.len() >= batch || index + 1 == total_items {
                let sent = pending.len();
                let (accepted, failed) = send_batch(&client, path, &mut pending, gzip).await?;
                accepted_total += accepted;
                rejections.extend(failed);
                progress.inc(sent as u64);
            }
        }
        progress.finish_and_clear();
        items_total += total_items;
    }
    println!(
        "sent {items_total} items: {accepted_total} accepted, {} rejected",
        rejections.len()
    );
    print_rejections(&rejections);
    if !rejections.is_empty() {
        bail!("{} of {items_total} items were rejected", rejections.len());
    }
    Ok(())
}

/// The first 50 rejections of `isms send`, each with its place, and how many more there were.
fn print_rejections(rejections: &[(String, String)]) {
    for (place, reason) in rejections.iter().take(50) {
        println!("  rejected {place}: {reason}");
    }
    if rejections.len() > 50 {
        println!("  ... and {} more", rejections.len() - 50);
    }
}

/// A progress bar on a terminal (hidden otherwise).
pub(crate) fn progress_bar(length: u64, template: &str, message: String) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(length);
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(message);
    bar
}

/// `isms send --format syslog`: the files' lines decoded into events, sent in batches, with a
/// progress bar over the bytes read. Reads in a blocking thread; sends as batches fill.
async fn send_lines(
    server: &ServerFlags,
    files: &[PathBuf],
    time_zone: &str,
    batch: usize,
    gzip: bool,
) -> anyhow::Result<()> {
    let client = ApiClient::new(server)?;
    let batch = batch.clamp(1, 100_000);
    let mut rejections: Vec<(String, String)> = Vec::new();
    let (mut accepted_total, mut events_total, mut lines_total) = (0usize, 0usize, 0usize);
    for path in files {
        let length = std::fs::metadata(path)
            .map(|metadata| metadata.len())
            .unwrap_or(0);
        let progress = progress_bar(
            length,
            "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
            path.display().to_string(),
        );
        let mut decoder = line_decoder(None, time_zone, written_at(path), None)?;
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<(Vec<(usize, Value)>, u64)>(2);
        let reader_path = path.clone();
        let reader = tokio::task::spawn_blocking(
            move || -> anyhow::Result<(usize, Vec<(String, String)>)> {
                let mut pending: Vec<(usize, Value)> = Vec::with_capacity(batch);
                let mut unreadable = Vec::new();
                let mut bytes = 0u64;
                let mut lines = 0usize;
                for_each_line(open_input(&reader_path)?, |number, line| {
                    lines += 1;
                    match line {
                        Ok(line) => {
                            bytes += line.len() as u64;
                            for event in decoder.push_line(line) {
                                pending.push((number, event));
                            }
                        }
                        Err(reason) => {
                            unreadable
                                .push((format!("{}:{number}", reader_path.display()), reason));
                        }
                    }
                    if pending.len() >= batch {
                        let full = std::mem::replace(&mut pending, Vec::with_capacity(batch));
                        sender
                            .blocking_send((full, std::mem::take(&mut bytes)))
                            .map_err(|_| anyhow::anyhow!("sending stopped"))?;
                    }
                    Ok(())
                })?;
                let last_number = lines;
                pending.extend(
                    decoder
                        .finish()
                        .into_iter()
                        .map(|event| (last_number, event)),
                );
                if !pending.is_empty() || bytes > 0 {
                    let _ = sender.blocking_send((pending, bytes));
                }
                Ok((lines, unreadable))
            },
        );
        while let Some((mut pending, bytes)) = receiver.recv().await {
            events_total += pending.len();
            let (accepted, failed) = send_batch(&client, path, &mut pending, gzip).await?;
            accepted_total += accepted;
            // send_batch names a rejected item by the number stored with it: here, its line.
            rejections.extend(failed.into_iter().map(|(place, reason)| {
                let line = place
                    .rsplit_once(" item ")
                    .map_or(place.clone(), |(file, line)| format!("{file}:{line}"));
                (line, reason)
            }));
            progress.inc(bytes);
        }
        let (lines, unreadable) = reader.await??;
        lines_total += lines;
        rejections.extend(unreadable);
        progress.finish_and_clear();
    }
    println!(
        "read {lines_total} lines into {events_total} events: {accepted_total} accepted, {} rejected",
        rejections.len()
    );
    print_rejections(&rejections);
    if !rejections.is_empty() {
        bail!("{} lines or events were rejected", rejections.len());
    }
    Ok(())
}

async fn send_batch(
    client: &ApiClient,
    path: &Path,
    pending: &mut Vec<(usize, Value)>,
    gzip: bool,
) -> anyhow::Result<(usize, Vec<(String, String)>)> {
    if pending.is_empty() {
        return Ok((0, Vec::new()));
    }
    let mut body = Vec::new();
    for (_, value) in pending.iter() {
        serde_json::to_writer(&mut body, value)?;
        body.push(b'\n');
    }
    let (status, answer) = client.post_events(body, gzip).await?;
    let accepted = answer.get("accepted").and_then(Value::as_u64);
    let Some(accepted) = accepted else {
        let message = answer
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no error message");
        bail!("the server refused the batch ({status}): {message}");
    };
    let mut failed = Vec::new();
    if let Some(rejected) = answer.get("rejected").and_then(Value::as_array) {
        for rejection in rejected {
            let index = rejection.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            let reason = rejection
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("rejected")
                .to_string();
            let item = pending
                .get(index)
                .map(|(item_index, _)| *item_index)
                .unwrap_or(index);
            failed.push((format!("{} item {item}", path.display()), reason));
        }
    }
    pending.clear();
    Ok((accepted as usize, failed))
}

#[cfg(test)]
mod tests {
    use super::redact_url_password;

    #[test]
    fn passwords_in_urls_are_not_printed() {
        assert_eq!(
            redact_url_password("amqp://guest:s3cret@127.0.0.1:5672/%2f"),
            "amqp://guest:****@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact_url_password("amqp://127.0.0.1:5672/%2f"),
            "amqp://127.0.0.1:5672/%2f"
        );
        assert_eq!(redact_url_password(""), "");
        assert_eq!(
            redact_url_password("amqps://user@host/vhost"),
            "amqps://user@host/vhost"
        );
    }
}
