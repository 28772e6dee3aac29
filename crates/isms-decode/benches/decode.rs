//! Decoding throughput (filled in below).
use criterion::{Criterion, criterion_group, criterion_main};

fn decode_sshd(criterion: &mut Criterion) {
    let decoders = isms_decode::Decoders::builtin();
    criterion.bench_function("sshd", |bench| {
        bench.iter(|| {
            decoders.decode_message(
                "sshd",
                "Failed password for root from 192.0.2.1 port 22 ssh2",
            )
        })
    });
}

criterion_group!(benches, decode_sshd);
criterion_main!(benches);
