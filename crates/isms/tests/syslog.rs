//! The syslog receivers of a real `isms serve`, over real sockets: the captured bytes of real clients,
//! the real `logger` command, and bad input (an oversized message among good ones).
// Shared with `server.rs`; this file uses only part of it.
#[allow(dead_code)]
mod harness;

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use harness::{ServerProcess, required_tool, run_test, shared_data};

const LIMIT: Duration = Duration::from_secs(30);

fn send_udp(to: SocketAddr, datagram: &[u8]) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("udp socket");
    socket.send_to(datagram, to).expect("udp send");
}

fn send_tcp(to: SocketAddr, bytes: &[u8]) {
    let mut stream = TcpStream::connect(to).expect("tcp connect");
    stream.write_all(bytes).expect("tcp write");
}

#[test]
fn captured_clients_over_udp_and_tcp_land_as_events() {
    run_test(LIMIT, async {
        let Some(directory) = shared_data("clients-captured") else {
            return;
        };
        let server = ServerProcess::start(&[]);
        let udp = server
            .syslog_udp
            .expect("the banner shows the syslog udp address");
        let tcp = server
            .syslog_tcp
            .expect("the banner shows the syslog tcp address");
        let read = |name: &str| std::fs::read(directory.join(name)).expect("capture");
        // Each capture's bytes exactly as they arrived: datagrams one by one, each TCP capture as one
        // connection.
        let datagrams = [
            "logger.udp.01.bin",
            "logger.udp.02.bin",
            "logger.udp.03.bin",
            "python-SysLogHandler.udp.01.bin",
            "python-SysLogHandler.udp.02.bin",
            "python-SysLogHandler.udp.03.bin",
            "python-SysLogHandler.udp.04.bin",
            "rsyslog-forwardformat.udp.01.bin",
            "rsyslog-forwardformat.udp.02.bin",
            "rsyslog-traditional.udp.01.bin",
            "rsyslog-traditional.udp.02.bin",
            "syslog-ng-network.udp.01.bin",
            "syslog-ng-network.udp.02.bin",
        ];
        for name in datagrams {
            send_udp(udp, &read(name));
        }
        // (file, messages in it)
        let streams = [
            ("logger.tcp.01.bin", 1),
            ("logger.tcp.02.bin", 1),
            ("python-SysLogHandler.tcp.01.bin", 2),
            ("rsyslog-rfc5424-octet.tcp.01.bin", 2),
            ("rsyslog-traditional.tcp.01.bin", 2),
            ("syslog-ng-network.tcp.01.bin", 2),
            ("syslog-ng-syslog5424.tcp.01.bin", 2),
        ];
        for (name, _) in streams {
            send_tcp(tcp, &read(name));
        }
        let expected_tcp: u64 = streams.iter().map(|(_, count)| count).sum();
        let udp_endpoint = format!("origin.endpoint:\"syslog:udp:{}\"", udp.port());
        let tcp_endpoint = format!("origin.endpoint:\"syslog:tcp:{}\"", tcp.port());
        server
            .wait_for_exactly(&udp_endpoint, datagrams.len() as u64)
            .await;
        server.wait_for_exactly(&tcp_endpoint, expected_tcp).await;

        // Fields where they belong, for one message of each sender.
        let event = server
            .search_one("processname:sshd AND details.syslogformat:rfc5424 AND processid:3521")
            .await;
        assert_eq!(event["hostname"], "vm");
        assert_eq!(event["severity"], "INFO");
        assert_eq!(event["details"]["facility"], "auth");
        assert_eq!(event["utctimestamp"], "2026-11-21T22:21:23.622526+00:00");
        assert_eq!(
            event["summary"],
            "Failed password for root from 10.1.2.3 port 22 ssh2"
        );
        assert_eq!(
            event["details"]["structureddata"]["timequality"]["tzknown"],
            "1"
        );
        assert!(
            event["origin"]["peer"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:")
        );

        let events = server.search("processname:su").await;
        assert_eq!(
            events.len(),
            4,
            "rsyslog's su line, UDP and TCP in two formats"
        );
        for event in &events {
            assert_eq!(event["summary"], "(to root) bob on pts/1", "{event}");
        }
        let event = server.search_one("\"with formatter\"").await;
        assert_eq!(event["processname"], "myapp");
        assert_eq!(event["processid"], 3551);
        assert_eq!(
            event["hostname"], "127.0.0.1",
            "no host in the message: the sender's address"
        );
        let events = server.search("processname:useradd").await;
        assert_eq!(
            events.len(),
            3,
            "syslog-ng: UDP, TCP network(), TCP syslog()"
        );
        for event in &events {
            assert_eq!(
                event["summary"],
                "new user: name=evil, UID=0, GID=0, home=/root, shell=/bin/bash"
            );
        }
        let tcp_ones = server.search("\"tcp one\" OR \"tcp two\"").await;
        assert_eq!(tcp_ones.len(), 2, "Python's NUL-delimited TCP frames");
        server.assert_still_up().await;
    });
}

#[test]
fn real_logger_over_udp_and_tcp() {
    run_test(LIMIT, async {
        let found = std::process::Command::new("logger")
            .arg("--version")
            .output()
            .ok();
        if required_tool(found, "`logger` (Debian package bsdutils)").is_none() {
            return;
        }
        let server = ServerProcess::start(&[]);
        let udp = server.syslog_udp.expect("udp");
        let tcp = server.syslog_tcp.expect("tcp");
        let logger = |arguments: &[&str]| {
            let output = std::process::Command::new("logger")
                .args(arguments)
                .output()
                .expect("logger runs");
            assert!(
                output.status.success(),
                "logger {arguments:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let udp_port = udp.port().to_string();
        let tcp_port = tcp.port().to_string();
        logger(&[
            "-n",
            "127.0.0.1",
            "-P",
            &udp_port,
            "-d",
            "-t",
            "isms-udp",
            "-p",
            "auth.warning",
            "real logger over udp",
        ]);
        logger(&[
            "-n",
            "127.0.0.1",
            "-P",
            &tcp_port,
            "-T",
            "-t",
            "isms-tcp",
            "real logger over tcp",
        ]);
        logger(&[
            "-n",
            "127.0.0.1",
            "-P",
            &tcp_port,
            "-T",
            "--octet-count",
            "--rfc3164",
            "-t",
            "isms-tcp3164",
            "real logger octet counted bsd",
        ]);
        let event = &server.wait_for_exactly("processname:isms-udp", 1).await[0];
        assert_eq!(event["summary"], "real logger over udp");
        assert_eq!(event["severity"], "WARNING");
        assert_eq!(event["details"]["facility"], "auth");
        let event = &server.wait_for_exactly("processname:isms-tcp", 1).await[0];
        assert_eq!(event["summary"], "real logger over tcp");
        let event = &server.wait_for_exactly("processname:isms-tcp3164", 1).await[0];
        assert_eq!(event["summary"], "real logger octet counted bsd");
        assert_eq!(event["details"]["syslogformat"], "rfc3164");
    });
}

#[test]
fn an_oversized_message_is_dropped_and_the_ones_around_it_are_stored() {
    run_test(LIMIT, async {
        let server = ServerProcess::start(&[("ISMS_SYSLOG_MAX_MESSAGE_BYTES", "1000")]);
        let tcp = server.syslog_tcp.expect("tcp");
        let udp = server.syslog_udp.expect("udp");
        let big = format!("<13>big {}", "x".repeat(5000));
        let mut stream = Vec::new();
        stream.extend_from_slice(b"<13>before the big one\n");
        stream.extend_from_slice(format!("{} {big}", big.len()).as_bytes());
        stream.extend_from_slice(b"<13>after the big one\n");
        stream.extend_from_slice(big.as_bytes());
        stream.extend_from_slice(b"\n<13>after the big line\n");
        send_tcp(tcp, &stream);
        send_udp(udp, big.as_bytes());
        send_udp(udp, b"<13>after the big datagram");
        let events = server.wait_for_exactly("after OR before", 4).await;
        let mut summaries: Vec<&str> = events
            .iter()
            .map(|event| event["summary"].as_str().unwrap())
            .collect();
        summaries.sort_unstable();
        assert_eq!(
            summaries,
            [
                "after the big datagram",
                "after the big line",
                "after the big one",
                "before the big one"
            ]
        );
        assert_eq!(server.count("").await, 4, "no oversized message is stored");
        let metrics = server.get("/metrics", &[]).await;
        assert!(
            metrics
                .text
                .contains("isms_syslog_dropped_total{reason=\"too_long\"} 3"),
            "{}",
            metrics.text
        );
        server.assert_still_up().await;
    });
}

/// A real rsyslog (8.x) takes a BSD message on UDP and forwards it to isms over TCP, octet-counted,
/// in RFC 5424 (`RSYSLOG_SyslogProtocol23Format`, with its double space after the `-`).
#[test]
fn real_rsyslog_forwarding_to_isms_over_tcp() {
    run_test(LIMIT, async {
        let rsyslogd = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
            .into_iter()
            .find(|path| std::path::Path::new(path).exists());
        let Some(rsyslogd) = required_tool(
            rsyslogd,
            "rsyslogd (Debian package rsyslog; scripts/test installs it)",
        ) else {
            return;
        };
        let server = ServerProcess::start(&[]);
        let tcp = server.syslog_tcp.expect("tcp");
        let work = tempfile::tempdir().expect("temporary directory");
        let input_port = UdpSocket::bind("127.0.0.1:0")
            .and_then(|socket| socket.local_addr())
            .expect("a free port")
            .port();
        let config = format!(
            "global(workDirectory=\"{work}\")\n\
             module(load=\"imudp\")\n\
             input(type=\"imudp\" address=\"127.0.0.1\" port=\"{input_port}\")\n\
             *.* action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{isms}\" protocol=\"tcp\" \
             TCP_Framing=\"octet-counted\" template=\"RSYSLOG_SyslogProtocol23Format\")\n",
            work = work.path().display(),
            isms = tcp.port(),
        );
        let config_path = work.path().join("rsyslog.conf");
        std::fs::write(&config_path, config).expect("write the rsyslog configuration");
        let mut child = std::process::Command::new(rsyslogd)
            .arg("-n")
            .arg("-f")
            .arg(&config_path)
            .arg("-i")
            .arg(work.path().join("rsyslogd.pid"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("rsyslogd starts");
        let input = SocketAddr::from(([127, 0, 0, 1], input_port));
        // rsyslog needs a moment to open its input: send until the first message comes through.
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut attempt = 0;
        while server.count("\"via rsyslog\"").await == 0 {
            if Instant::now() > deadline {
                let _ = child.kill();
                let output = child.wait_with_output().expect("rsyslogd output");
                panic!(
                    "nothing arrived through rsyslog; its stderr: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            attempt += 1;
            send_udp(
                input,
                format!("<38>Nov 21 22:21:32 testhost rsyslogtest[4242]: via rsyslog {attempt}")
                    .as_bytes(),
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        let events = server.search("\"via rsyslog\"").await;
        let event = &events[0];
        assert_eq!(event["processname"], "rsyslogtest");
        assert_eq!(event["processid"], 4242);
        assert_eq!(event["hostname"], "testhost");
        assert_eq!(event["severity"], "INFO");
        assert_eq!(event["details"]["facility"], "auth");
        assert_eq!(event["details"]["syslogformat"], "rfc5424");
        let summary = event["summary"].as_str().unwrap();
        assert!(
            summary.starts_with("via rsyslog "),
            "no leading space from rsyslog's double space: {summary:?}"
        );
        assert!(
            event["origin"]["endpoint"]
                .as_str()
                .unwrap()
                .starts_with("syslog:tcp:")
        );
    });
}

/// One sender cannot take every connection slot: past 64 open connections from one address, more
/// are refused and counted; once it closes them, it is served again.
#[test]
fn one_sender_is_limited_to_its_share_of_tcp_connections() {
    run_test(LIMIT, async {
        let server = ServerProcess::start(&[]);
        let tcp = server.syslog_tcp.expect("tcp receiver");
        let held: Vec<TcpStream> = (0..64)
            .map(|_| TcpStream::connect(tcp).expect("connect"))
            .collect();
        // Accepted in order: the 65th is refused once the others are counted.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut refused = TcpStream::connect(tcp).expect("connect");
        refused
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut byte = [0u8; 1];
        let closed = matches!(std::io::Read::read(&mut refused, &mut byte), Ok(0) | Err(_));
        assert!(closed, "the connection over the limit is closed");
        let deadline = Instant::now() + Duration::from_secs(5);
        let metric_line = format!(
            "isms_syslog_connections_refused_total{{endpoint=\"syslog:tcp:{}\"}} 1",
            tcp.port()
        );
        while !server
            .get("/metrics", &[])
            .await
            .text
            .contains(&metric_line)
        {
            if Instant::now() > deadline {
                server.fail(format!("{metric_line} not in /metrics"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(held);
        tokio::time::sleep(Duration::from_millis(300)).await;
        send_tcp(
            tcp,
            b"<13>Nov 30 10:00:00 host prog: served again after closing\n",
        );
        server.wait_for_exactly("summary:\"served again\"", 1).await;
    });
}
