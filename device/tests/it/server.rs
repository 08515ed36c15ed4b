//! The stream server: several consoles at once over TCP and the unix socket;
//! a client that stops reading is dropped with a log line while the others
//! keep receiving.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use earshot_protocol::{decode, Message};

use super::util::{earshotd, write_wav, Daemon};

fn reader<R: Read + Send + 'static>(stream: R) -> mpsc::Receiver<Message> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let msg = decode(&line).expect("server lines decode");
            if tx.send(msg).is_err() {
                break;
            }
        }
    });
    rx
}

fn seq(m: Message) -> u64 {
    match m {
        Message::Reading(r) => r.seq,
        other => panic!("expected a reading, got {other:?}"),
    }
}

#[test]
fn two_consoles_receive_and_a_slow_one_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("music.wav");
    write_wav(&wav, 44100, 60.0);
    let sock = dir.path().join("earshot.sock");
    let cfg = dir.path().join("earshot.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\nkind = \"file\"\npath = {wav:?}\nrealtime = true\n\n\
             [analysis]\nhop_ms = 100\nsmoothing_ms = 0\n\n\
             [server]\ntcp = \"127.0.0.1:0\"\nunix_socket = {sock:?}\nclient_queue = 4\nsend_buffer_bytes = 4096\n"
        ),
    )
    .unwrap();
    let mut d = Daemon::spawn(earshotd().arg("--config").arg(&cfg));
    let line = d.wait_stderr("listening on tcp ", Duration::from_secs(30));
    let addr: SocketAddr = line.rsplit("tcp ").next().unwrap().trim().parse().unwrap();
    d.wait_stderr("listening on unix", Duration::from_secs(5));

    let tcp = reader(TcpStream::connect(addr).unwrap());
    let unix = reader(UnixStream::connect(&sock).unwrap());
    // the slow console: a small receive buffer, and it never reads
    let slow = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    slow.set_recv_buffer_size(2048).unwrap();
    slow.connect(&addr.into()).unwrap();
    let slow_port = slow.local_addr().unwrap().as_socket().unwrap().port();

    for rx in [&tcp, &unix] {
        let hello = rx.recv_timeout(Duration::from_secs(10)).expect("hello");
        assert!(
            matches!(hello, Message::Hello(ref h) if h.hop_ms == 96),
            "{hello:?}"
        );
    }
    let dropped = d.wait_stderr(
        &format!("client tcp 127.0.0.1:{slow_port} dropped"),
        Duration::from_secs(40),
    );
    assert!(
        dropped.contains("too slow") || dropped.contains("accepted nothing"),
        "{dropped}"
    );

    // both others keep receiving, in order, after the drop
    for rx in [&tcp, &unix] {
        let mut last = None;
        let until = Instant::now() + Duration::from_millis(1500);
        let mut fresh = 0;
        while Instant::now() < until {
            let s = seq(rx
                .recv_timeout(Duration::from_secs(5))
                .expect("readings continue"));
            if let Some(prev) = last {
                assert_eq!(s, prev + 1, "a reading console saw a gap");
            }
            last = Some(s);
            fresh += 1;
        }
        assert!(fresh >= 5, "only {fresh} readings in 1.5 s");
    }
    // the dropped console's connection ends (after what its buffers held)
    let mut slow: std::net::TcpStream = slow.into();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut sink = Vec::new();
    slow.read_to_end(&mut sink)
        .expect("dropped connection reaches end of stream");
    assert!(d.stderr().contains("2 connected") || d.stderr().contains("3 connected"));
    assert!(d.terminate().success());
}
