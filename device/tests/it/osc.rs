//! OSC: a real UDP receiver decodes the datagrams by hand (OSC 1.0: padded
//! address, type tags, big-endian arguments) and compares them with the same
//! run's NDJSON readings.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::mpsc;
use std::time::Duration;

use super::util::{earshotd, readings, run, shared_data};

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    I(i32),
    F(f32),
    S(String),
}

/// An OSC string: bytes up to a NUL, padded to a multiple of 4.
fn osc_string(b: &[u8], at: &mut usize) -> String {
    let end = *at
        + b[*at..]
            .iter()
            .position(|&c| c == 0)
            .expect("NUL-terminated");
    let s = String::from_utf8(b[*at..end].to_vec()).expect("UTF-8");
    *at = (end + 4) & !3;
    s
}

fn decode(b: &[u8]) -> (String, Vec<Arg>) {
    let mut at = 0;
    let addr = osc_string(b, &mut at);
    let tags = osc_string(b, &mut at);
    assert!(tags.starts_with(','), "type tags: {tags:?}");
    let mut args = Vec::new();
    for t in tags[1..].chars() {
        let word = |at: usize| [b[at], b[at + 1], b[at + 2], b[at + 3]];
        match t {
            'i' => {
                args.push(Arg::I(i32::from_be_bytes(word(at))));
                at += 4;
            }
            'f' => {
                args.push(Arg::F(f32::from_be_bytes(word(at))));
                at += 4;
            }
            's' => args.push(Arg::S(osc_string(b, &mut at))),
            other => panic!("unexpected type tag {other}"),
        }
    }
    assert_eq!(at, b.len(), "{addr}: trailing bytes");
    (addr, args)
}

#[test]
fn osc_messages_carry_each_reading_of_a_real_clip() {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    sock.set_recv_buffer_size(8 << 20).unwrap();
    sock.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    let rx_sock: UdpSocket = sock.into();
    rx_sock
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let port = rx_sock.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok(n) = rx_sock.recv(&mut buf) {
            if tx.send(decode(&buf[..n])).is_err() {
                return;
            }
        }
    });
    let clip = shared_data().join("soundtracks/audio/001.mp3");
    let out = run(
        earshotd()
            .args(["run", "--no-server", "--stdout", "--osc"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--file")
            .arg(&clip),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let readings = readings(&out.stdout);
    assert!(readings.len() > 10, "{} readings", readings.len());

    // group the messages by the /earshot/seq that precedes them
    let mut by_seq: HashMap<i32, HashMap<String, Arg>> = HashMap::new();
    let mut seq = None;
    while let Ok((addr, args)) = rx.recv_timeout(Duration::from_secs(3)) {
        assert_eq!(args.len(), 1, "{addr}");
        if addr == "/earshot/seq" {
            let Arg::I(s) = args[0] else {
                panic!("seq is an int")
            };
            seq = Some(s);
        }
        let s = seq.expect("/earshot/seq comes first");
        by_seq.entry(s).or_default().insert(addr, args[0].clone());
    }
    assert_eq!(
        by_seq.len(),
        readings.len(),
        "every reading went out over OSC"
    );
    let mut music = 0;
    for r in &readings {
        let m = &by_seq[&(r["seq"].as_u64().unwrap() as i32)];
        assert_eq!(
            m["/earshot/state"],
            Arg::S(r["state"].as_str().unwrap().into())
        );
        let level = r["level_dbfs"].as_f64().unwrap() as f32;
        assert!(matches!(m["/earshot/level"], Arg::F(v) if (v - level).abs() < 0.01));
        if r["state"] == "music" {
            music += 1;
            assert_eq!(m["/earshot/music"], Arg::I(1));
            for name in [
                "valence", "energy", "tension", "anger", "fear", "happy", "sad", "tender",
            ] {
                let want = r["analysis"]["emotions"][name].as_f64().unwrap() as f32;
                let Arg::F(got) = m[&format!("/earshot/emotion/{name}")] else {
                    panic!("{name} is a float")
                };
                assert!((got - want).abs() < 1e-3, "{name}: {got} vs {want}");
            }
            for name in ["melodiousness", "dissonance", "minorness"] {
                assert!(matches!(m[&format!("/earshot/mid/{name}")], Arg::F(_)));
            }
            assert!(matches!(&m["/earshot/dominant"], Arg::S(s) if !s.is_empty()));
        } else {
            assert_eq!(m["/earshot/music"], Arg::I(0));
            assert!(!m.contains_key("/earshot/emotion/valence"));
        }
    }
    assert!(music > 10, "{music} music readings");
}
