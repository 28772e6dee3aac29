//! Tailing log files with a real `isms serve`: lines written later, rotation by rename + create and by
//! copytruncate, a restart (offsets kept, nothing lost or stored twice), a line too long among good
//! ones; and `isms send --format syslog` for one-off imports.
// Shared with `server.rs`; this file uses only part of it.
#[allow(dead_code)]
mod harness;

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use harness::{ServerProcess, run_test};

const LIMIT: Duration = Duration::from_secs(60);

fn append(path: &Path, lines: &[String]) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log file");
    for line in lines {
        writeln!(file, "{line}").expect("write line");
    }
}

fn sshd_lines(from: usize, to: usize) -> Vec<String> {
    (from..to)
        .map(|number| {
            format!(
                "Nov 30 10:{:02}:{:02} web01 sshd[{number}]: Failed password for root from 10.9.{}.{} port 22 ssh2 line{number}",
                (number / 60) % 60,
                number % 60,
                number / 250,
                number % 250
            )
        })
        .collect()
}

/// Waits until exactly the lines `line0` .. `line{expected-1}` are stored, each once.
async fn wait_for_lines(server: &ServerProcess, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let found = server.count("processname:sshd").await as usize;
        if found >= expected {
            assert_eq!(found, expected, "lines stored more than once");
            break;
        }
        if Instant::now() > deadline {
            server.fail(format!("{found} of {expected} lines stored after 15 s"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for number in [0, expected / 2, expected - 1] {
        assert_eq!(
            server.count(&format!("summary:line{number}")).await,
            1,
            "line{number}"
        );
    }
}

fn tail_env(pattern: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ISMS_FILES_PATHS", pattern.to_owned()),
        ("ISMS_FILES_POLL_INTERVAL_MILLISECONDS", "50".to_owned()),
        ("ISMS_FILES_MAX_LINE_BYTES", "4096".to_owned()),
    ]
}

fn start(env: &[(&'static str, String)]) -> ServerProcess {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ServerProcess::start(&env)
}

#[test]
fn tailed_files_survive_rotation_truncation_and_restart_without_loss_or_duplicates() {
    run_test(LIMIT, async {
        let logs = tempfile::tempdir().expect("log directory");
        let auth = logs.path().join("auth.log");
        // Lines already there at the first start are skipped (files.start_at = end)...
        append(&auth, &["Nov 30 09:00:00 web01 sshd[1]: Failed password for old from 10.0.0.1 port 22 ssh2 oldline".to_owned()]);
        // `?` exercises the wildcards; it matches neither auth.log.1 nor auth.log.2, so the rotated
        // files are followed by inode (while running, and across the restart).
        let pattern = logs.path().join("auth.lo?").display().to_string();
        let mut server = start(&tail_env(&pattern));
        // ... until the first poll has seen the file; what is written after is read.
        tokio::time::sleep(Duration::from_millis(300)).await;
        append(&auth, &sshd_lines(0, 100));
        wait_for_lines(&server, 100).await;
        assert_eq!(server.count("summary:oldline").await, 0);
        let event = server.search_one("summary:line7").await;
        assert_eq!(event["hostname"], "web01");
        assert_eq!(
            event["origin"]["endpoint"],
            format!("file:{}", auth.display()),
            "the file is the origin"
        );

        // Rotation by rename + create: the old file gets more lines after the rename (the daemon
        // still holds it), the new one starts fresh.
        let rotated = logs.path().join("auth.log.1");
        std::fs::rename(&auth, &rotated).expect("rotate");
        append(&rotated, &sshd_lines(100, 150));
        append(&auth, &sshd_lines(150, 200));
        wait_for_lines(&server, 200).await;

        // copytruncate: the file is emptied in place and written again.
        std::fs::File::create(&auth).expect("truncate");
        append(&auth, &sshd_lines(200, 210));
        wait_for_lines(&server, 210).await;

        // A line too long among good ones: dropped and counted, the others stored.
        let long = format!("Nov 30 11:00:00 web01 sshd[9]: {}", "x".repeat(10_000));
        append(
            &auth,
            &[
                sshd_lines(210, 211)[0].clone(),
                long,
                sshd_lines(211, 212)[0].clone(),
            ],
        );
        wait_for_lines(&server, 212).await;
        let metrics = server.get("/metrics", &[]).await;
        assert!(
            metrics
                .text
                .contains("isms_files_dropped_total{reason=\"too_long\"} 1"),
            "{}",
            metrics.text
        );

        // A restart: lines written while isms is down are read, none twice; the file rotated while
        // it was down is finished from its saved offset (found by inode).
        server.kill9();
        append(&auth, &sshd_lines(212, 230));
        std::fs::rename(&auth, logs.path().join("auth.log.2")).expect("rotate while down");
        append(&auth, &sshd_lines(230, 240));
        server.restart();
        wait_for_lines(&server, 240).await;
        // A half-written line waits for its newline.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&auth)
            .expect("open");
        write!(file, "Nov 30 12:00:00 web01 sshd[5]: Failed password for root from 10.1.1.1 port 22 ssh2 line240").unwrap();
        file.sync_all().unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            server.count("summary:line240").await,
            0,
            "no line before its newline"
        );
        writeln!(file).unwrap();
        wait_for_lines(&server, 241).await;
    });
}

#[test]
fn send_lines_imports_a_log_file_once() {
    run_test(LIMIT, async {
        let logs = tempfile::tempdir().expect("log directory");
        let auth = logs.path().join("auth.log");
        append(&auth, &sshd_lines(0, 300));
        append(
            &auth,
            &[
                "".to_owned(),
                "{\"summary\": \"a json line\", \"processname\": \"app\"}".to_owned(),
            ],
        );
        let server = ServerProcess::start(&[]);
        let output =
            server.run_client_command(&["send", "--format", "syslog", &auth.display().to_string()]);
        output.assert_success("isms send --format syslog");
        assert!(
            output.stdout_text().contains("301 accepted"),
            "{}",
            output.stdout_text()
        );
        wait_for_lines(&server, 300).await;
        assert_eq!(server.count("summary:\"a json line\"").await, 1);
    });
}

/// Audit records wait in the decoder for their event's last record: a restart between them must not
/// lose the first ones (the saved offset stays before them until their event is stored).
#[test]
fn audit_records_held_for_their_event_survive_a_restart() {
    run_test(LIMIT, async {
        let logs = tempfile::tempdir().expect("log directory");
        let audit = logs.path().join("audit.log");
        std::fs::write(&audit, "").expect("create audit.log");
        let mut env = tail_env(&audit.display().to_string());
        env.push(("ISMS_FILES_START_AT", "beginning".to_owned()));
        let mut server = start(&env);
        let serial = 4242;
        // Live records: times of now (an old event would be given up on at the first quiet poll).
        let now = jiff::Timestamp::now().as_second();
        append(
            &audit,
            &[
                format!(
                    "type=SYSCALL msg=audit({now}.123:{serial}): arch=c000003e syscall=59 success=yes exit=0 items=1 ppid=1 pid=77 auid=1000 uid=0 comm=\"id\" exe=\"/usr/bin/id\" key=\"exec\""
                ),
                format!("type=EXECVE msg=audit({now}.123:{serial}): argc=2 a0=\"id\" a1=\"-u\""),
            ],
        );
        // Read (and held) before the restart: the server has seen the lines.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let early = server.search("details.serial:4242").await;
        assert!(early.is_empty(), "held until the event ends: {early:?}");
        server.kill9();
        server.restart();
        append(
            &audit,
            &[format!("type=EOE msg=audit({now}.123:{serial}): ")],
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.count("details.serial:4242").await < 1 {
            if Instant::now() > deadline {
                server.fail("the audit event was not stored");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let event = server.search_one("details.serial:4242").await;
        assert_eq!(event["details"]["syscall"], "execve");
        assert_eq!(
            event["details"]["command"], "id -u",
            "the records read before the restart are part of it: {event}"
        );
        assert_eq!(server.count("details.serial:4242").await, 1);
    });
}

/// A file rotated away whose writer left a last line without its newline: once the grace period is
/// over, that line is stored and the file let go.
#[test]
fn a_rotated_file_s_unterminated_last_line_is_stored_when_it_is_let_go() {
    run_test(LIMIT, async {
        let logs = tempfile::tempdir().expect("log directory");
        let auth = logs.path().join("auth.log");
        std::fs::write(&auth, "").expect("create auth.log");
        let server = start(&tail_env(&auth.display().to_string()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        append(&auth, &sshd_lines(0, 5));
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&auth)
            .expect("open");
        write!(file, "{}", sshd_lines(5, 6)[0]).expect("write without newline");
        drop(file);
        wait_for_lines(&server, 5).await;
        std::fs::rename(&auth, logs.path().join("auth.log.1")).expect("rotate");
        std::fs::write(&auth, "").expect("new auth.log");
        // ROTATED_GRACE is 5 s.
        let deadline = Instant::now() + Duration::from_secs(15);
        while server.count("summary:line5").await < 1 {
            if Instant::now() > deadline {
                server.fail("the last line of the rotated file was not stored");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        wait_for_lines(&server, 6).await;
    });
}
