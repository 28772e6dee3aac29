//! Decoding throughput on a realistic sshd mix (the busiest daemon of an auth log), reported by
//! criterion as lines per second on one core:
//!
//! - `decode_message/sshd_mix`: the message text after the syslog header, through
//!   `Decoders::decode_message` (the hot path of the syslog receivers);
//! - `line_decoder/sshd_lines`: whole auth.log lines through `LineDecoder` (syslog parsing, the raw
//!   event, decoding and merging), what `isms decode` and the file sources do per line.
//!
//! Run with `cargo bench -p isms-decode --bench decode`.
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use isms_decode::{Decoders, LineDecoder};
use isms_syslog::ParseContext;

/// sshd messages in roughly the proportions of an internet-facing server under brute force:
/// mostly failures and pre-authentication disconnects, some logins and PAM bookkeeping, and
/// lines no decoder reports.
const SSHD_MIX: &[&str] = &[
    "Failed password for root from 203.0.113.45 port 51234 ssh2",
    "Failed password for invalid user admin from 198.51.100.23 port 40022 ssh2",
    "Invalid user oracle from 198.51.100.23 port 40022",
    "Connection closed by invalid user oracle 198.51.100.23 port 40022 [preauth]",
    "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.45  user=root",
    "Received disconnect from 203.0.113.45 port 51234:11: Bye Bye [preauth]",
    "Disconnected from authenticating user root 203.0.113.45 port 51234 [preauth]",
    "error: maximum authentication attempts exceeded for root from 203.0.113.45 port 51234 ssh2 [preauth]",
    "Accepted publickey for deploy from 192.0.2.10 port 50022 ssh2: ED25519 SHA256:Fx3xV0mP6bq2kQ1yT1eXbIYcQ1pGk8wQeQ",
    "pam_unix(sshd:session): session opened for user deploy(uid=1001) by (uid=0)",
    "Received disconnect from 192.0.2.10 port 50022:11: disconnected by user",
    "Disconnected from user deploy 192.0.2.10 port 50022",
    "pam_unix(sshd:session): session closed for user deploy",
    "Did not receive identification string from 198.51.100.77 port 61000",
    "Connection from 203.0.113.99 port 43210 on 10.0.0.5 port 22 rdomain \"\"",
    "Server listening on 0.0.0.0 port 22.",
];

fn sshd_lines() -> Vec<String> {
    SSHD_MIX
        .iter()
        .enumerate()
        .map(|(index, message)| {
            format!(
                "Mar 12 06:25:{:02} web01 sshd[{}]: {message}",
                index % 60,
                4000 + index
            )
        })
        .collect()
}

fn decode_message(criterion: &mut Criterion) {
    let decoders = Decoders::builtin();
    let mut group = criterion.benchmark_group("decode_message");
    group.throughput(Throughput::Elements(SSHD_MIX.len() as u64));
    group.bench_function("sshd_mix", |bench| {
        bench.iter(|| {
            for message in SSHD_MIX {
                black_box(decoders.decode_message(black_box("sshd"), black_box(message)));
            }
        })
    });
    group.finish();
}

fn line_decoder(criterion: &mut Criterion) {
    let lines = sshd_lines();
    let context = ParseContext::utc("2026-03-12T07:00:00Z".parse().expect("time"));
    let mut decoder = LineDecoder::new(Arc::new(Decoders::builtin()), context);
    let mut group = criterion.benchmark_group("line_decoder");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("sshd_lines", |bench| {
        bench.iter(|| {
            for line in &lines {
                black_box(decoder.push_line(black_box(line)));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, decode_message, line_decoder);
criterion_main!(benches);
