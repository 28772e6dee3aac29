//! The syslog TLS receiver (RFC 5425) of a real `isms serve`: certificates made for the test, a real
//! rustls client, mutual TLS, failed handshakes; and the time zone of each source.
// Shared with `server.rs`; this file uses only part of it.
#[allow(dead_code)]
mod harness;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::{ServerProcess, run_test};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: Duration = Duration::from_secs(40);

/// A certificate authority, a server certificate for `localhost` and a client certificate, all
/// written as PEM files.
struct TestCertificates {
    directory: tempfile::TempDir,
    authority: CertificateDer<'static>,
    client_chain: Vec<CertificateDer<'static>>,
    client_key_der: Vec<u8>,
}

impl TestCertificates {
    fn new() -> TestCertificates {
        let directory = tempfile::tempdir().expect("temporary directory");
        let mut authority_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        authority_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let authority = CertifiedIssuer::self_signed(
            authority_params,
            KeyPair::generate().expect("authority key"),
        )
        .expect("authority certificate");
        let server_key = KeyPair::generate().expect("server key");
        let server_certificate = CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .signed_by(&server_key, &authority)
            .expect("server certificate");
        let client_key = KeyPair::generate().expect("client key");
        let client_certificate = CertificateParams::new(vec!["sender.example".to_owned()])
            .expect("params")
            .signed_by(&client_key, &authority)
            .expect("client certificate");
        let write = |name: &str, text: String| {
            std::fs::write(directory.path().join(name), text).expect("write pem");
        };
        write(
            "server.pem",
            format!("{}{}", server_certificate.pem(), authority.pem()),
        );
        write("server.key", server_key.serialize_pem());
        write("authority.pem", authority.pem());
        TestCertificates {
            authority: authority.der().clone(),
            client_chain: vec![client_certificate.der().clone()],
            client_key_der: client_key.serialize_der(),
            directory,
        }
    }

    fn path(&self, name: &str) -> String {
        self.directory.path().join(name).display().to_string()
    }

    fn server_env(&self, client_ca: bool) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("ISMS_SYSLOG_TLS_LISTEN", "127.0.0.1:0".to_owned()),
            ("ISMS_SYSLOG_TLS_CERTIFICATE", self.path("server.pem")),
            ("ISMS_SYSLOG_TLS_KEY", self.path("server.key")),
        ];
        if client_ca {
            env.push(("ISMS_SYSLOG_TLS_CLIENT_CA", self.path("authority.pem")));
        }
        env
    }

    fn connector(&self, with_client_certificate: bool) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.authority.clone()).expect("root");
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
        let config = if with_client_certificate {
            let key = PrivateKeyDer::try_from(self.client_key_der.clone()).expect("client key");
            builder
                .with_client_auth_cert(self.client_chain.clone(), key)
                .expect("client certificate")
        } else {
            builder.with_no_client_auth()
        };
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

fn start(certificates: &TestCertificates, client_ca: bool) -> ServerProcess {
    let env = certificates.server_env(client_ca);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ServerProcess::start(&env)
}

/// Sends `frames` octet-counted (RFC 5425) over TLS, then closes the connection cleanly.
async fn send_tls(
    connector: &tokio_rustls::TlsConnector,
    to: SocketAddr,
    frames: &[&str],
) -> std::io::Result<()> {
    let tcp = tokio::net::TcpStream::connect(to).await?;
    let mut tls = connector
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await?;
    for frame in frames {
        tls.write_all(format!("{} {frame}", frame.len()).as_bytes())
            .await?;
    }
    tls.shutdown().await?;
    Ok(())
}

#[test]
fn tls_frames_are_stored_and_failed_handshakes_counted() {
    run_test(LIMIT, async {
        let certificates = TestCertificates::new();
        let server = start(&certificates, false);
        let tls = server
            .syslog_tls
            .unwrap_or_else(|| server.fail("the banner shows no syslog tls address"));
        let connector = certificates.connector(false);
        send_tls(
            &connector,
            tls,
            &[
                "<38>1 2026-11-30T10:00:00.5Z web01 sshd 4242 - - Accepted publickey for alice over tls",
                "<13>Nov 30 10:00:01 web02 cron[7]: second message over tls",
            ],
        )
        .await
        .expect("tls send");
        let events = server.wait_for_exactly("summary:tls", 2).await;
        let alice = events
            .iter()
            .find(|event| event["hostname"] == "web01")
            .expect("the RFC 5424 message");
        assert_eq!(alice["processname"], "sshd");
        assert_eq!(alice["utctimestamp"], "2026-11-30T10:00:00.500000+00:00");
        assert!(
            alice["origin"]["endpoint"]
                .as_str()
                .is_some_and(|endpoint| endpoint.starts_with("syslog:tls:")),
            "{alice}"
        );

        // Plain text to the TLS port, and a client that connects and says nothing: both fail, are
        // counted, and the receiver goes on.
        let mut plain = tokio::net::TcpStream::connect(tls).await.expect("connect");
        plain
            .write_all(b"<13>Nov 30 10:00:02 web03 prog: not tls at all\n")
            .await
            .expect("write");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while server
            .metric("isms_syslog_tls_handshake_failures_total")
            .await
            != Some(1.0)
        {
            if Instant::now() > deadline {
                server.fail("the failed handshake is not counted");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        send_tls(
            &connector,
            tls,
            &["<13>after the failed handshake over tls"],
        )
        .await
        .expect("tls send after a failure");
        server.wait_for_exactly("summary:tls", 3).await;
        assert_eq!(server.count("web03").await, 0, "plain text is not read");
        server.assert_still_up().await;
    });
}

#[test]
fn mutual_tls_needs_a_client_certificate_from_the_authority() {
    run_test(LIMIT, async {
        let certificates = TestCertificates::new();
        let server = start(&certificates, true);
        let tls = server
            .syslog_tls
            .unwrap_or_else(|| server.fail("the banner shows no syslog tls address"));
        // Without a certificate the server refuses the handshake (TLS 1.3 reports it on first read or
        // write, so the send may even seem to succeed): nothing is stored.
        let _ = send_tls(
            &certificates.connector(false),
            tls,
            &["<13>Nov 30 10:00:00 anonymous prog: without a certificate"],
        )
        .await;
        send_tls(
            &certificates.connector(true),
            tls,
            &["<13>Nov 30 10:00:00 known prog: with a certificate"],
        )
        .await
        .expect("send with a client certificate");
        server.wait_for_exactly("summary:certificate", 1).await;
        assert_eq!(server.count("anonymous").await, 0);
        assert!(
            server
                .metric("isms_syslog_tls_handshake_failures_total")
                .await
                .is_some_and(|failures| failures >= 1.0)
        );
    });
}

#[test]
fn a_bad_certificate_file_stops_the_start_with_its_key_and_path() {
    let certificates = TestCertificates::new();
    let broken = certificates.directory.path().join("broken.pem");
    std::fs::write(&broken, "not a certificate\n").expect("write");
    let output = harness::isms_command()
        .arg("serve")
        .arg("--data")
        .arg(certificates.directory.path().join("data"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env("ISMS_SYSLOG_UDP_LISTEN", "")
        .env("ISMS_SYSLOG_TCP_LISTEN", "")
        .env("ISMS_SYSLOG_TLS_LISTEN", "127.0.0.1:0")
        .env("ISMS_SYSLOG_TLS_CERTIFICATE", &broken)
        .env("ISMS_SYSLOG_TLS_KEY", certificates.path("server.key"))
        .output()
        .expect("run isms serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("syslog.tls_certificate"), "{stderr}");
    assert!(
        stderr.contains(&broken.display().to_string()),
        "the message names the file: {stderr}"
    );
}

/// RFC 3164 times carry no zone: the sender's address picks one, and so does the host a relay names.
#[test]
fn each_source_reads_its_times_in_its_own_zone() {
    run_test(LIMIT, async {
        let server = ServerProcess::start(&[
            ("ISMS_SYSLOG_TIME_ZONE", "UTC"),
            (
                "ISMS_SYSLOG_SOURCE_TIME_ZONES",
                "127.0.0.1=+05:00, berlin-host=Europe/Berlin",
            ),
        ]);
        let udp = server.syslog_udp.expect("udp receiver");
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp socket");
        // Mid-year so the year is the receipt year (a date near new year could roll over).
        for datagram in [
            "<13>Jul  1 12:00:00 plain-host prog: zone of the sender address",
            "<13>Jul  1 12:00:00 berlin-host prog: zone of the named host",
            "<13>1 2026-07-01T12:00:00Z rfc-host prog - - - zone written in the message",
        ] {
            socket.send_to(datagram.as_bytes(), udp).expect("send");
        }
        let events = server.wait_for_exactly("summary:zone", 3).await;
        let year = jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .year();
        let time_of = |host: &str| {
            events
                .iter()
                .find(|event| event["hostname"] == host)
                .unwrap_or_else(|| panic!("no event from {host}: {events:?}"))["utctimestamp"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(
            time_of("plain-host"),
            format!("{year}-07-01T07:00:00.000000+00:00")
        );
        assert_eq!(
            time_of("berlin-host"),
            format!("{year}-07-01T10:00:00.000000+00:00")
        );
        assert_eq!(time_of("rfc-host"), "2026-07-01T12:00:00.000000+00:00");
    });
}
