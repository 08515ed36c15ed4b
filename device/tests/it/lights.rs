//! Lights (issue 17): real UDP receivers on loopback, decoding Art-Net, sACN
//! and WLED packets with their own minimal decoders (written from the
//! protocols, not from the encoders under test), fed by readings of a real
//! clip of music.

use std::net::UdpSocket;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use earshot_device::config::{AnalysisSettings, Precision};
use earshot_device::lights::{self, LightsConfig, LightsSettings};
use earshot_protocol::{InputState, Reading};

use super::util::repo;

/// One decoded packet: what the receiver saw, when.
#[derive(Debug, Clone)]
pub struct Packet {
    pub at: Instant,
    /// Art-Net / sACN: universe and 512 slots; WLED: universe 0 and r,g,b per LED.
    pub universe: u16,
    pub data: Vec<u8>,
    /// sACN: priority, sequence, options; Art-Net: sequence; WLED: timeout.
    pub meta: [u8; 3],
}

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    ArtNet,
    Sacn,
    Wled,
}

/// Art-Net 4 ArtDmx: "Art-Net\0", OpCode 0x5000 (little-endian), protocol
/// 14, sequence, physical, SubUni, Net, length (big-endian), data.
fn decode_artnet(b: &[u8]) -> Option<(u16, Vec<u8>, [u8; 3])> {
    if b.len() < 18 || &b[..8] != b"Art-Net\0" || b[8] != 0x00 || b[9] != 0x50 {
        return None;
    }
    if b[10] != 0 || b[11] < 14 {
        return None;
    }
    let universe = u16::from(b[14]) | (u16::from(b[15] & 0x7f) << 8);
    let len = usize::from(b[16]) << 8 | usize::from(b[17]);
    let data = b.get(18..18 + len)?.to_vec();
    Some((universe, data, [b[12], 0, 0]))
}

/// E1.31 data packet: root layer (ACN id, vector 4), framing layer (vector
/// 2, priority at 108, sequence 111, options 112, universe 113-114), DMP
/// layer (vector 2, type 0xa1, start code at 125, slots from 126).
fn decode_sacn(b: &[u8]) -> Option<(u16, Vec<u8>, [u8; 3])> {
    if b.len() < 126 || &b[4..16] != b"ASC-E1.17\0\0\0" {
        return None;
    }
    let be32 = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let len = |i: usize| usize::from(u16::from_be_bytes([b[i], b[i + 1]]) & 0x0fff);
    if be32(18) != 4 || be32(40) != 2 || b[117] != 2 || b[118] != 0xa1 || b[125] != 0 {
        return None;
    }
    if len(16) != b.len() - 16 || len(38) != b.len() - 38 || len(115) != b.len() - 115 {
        return None;
    }
    let count = usize::from(u16::from_be_bytes([b[123], b[124]]));
    let universe = u16::from_be_bytes([b[113], b[114]]);
    let data = b.get(126..125 + count)?.to_vec();
    Some((universe, data, [b[108], b[111], b[112]]))
}

/// WLED realtime DRGB: 2, timeout in seconds, then r, g, b per LED.
fn decode_wled(b: &[u8]) -> Option<(u16, Vec<u8>, [u8; 3])> {
    if b.len() < 5 || b[0] != 2 || !(b.len() - 2).is_multiple_of(3) {
        return None;
    }
    Some((0, b[2..].to_vec(), [b[1], 0, 0]))
}

/// A UDP receiver on an ephemeral loopback port, decoding as it goes.
pub struct Receiver {
    pub port: u16,
    packets: Arc<Mutex<Vec<Packet>>>,
    bad: Arc<Mutex<u64>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    pub fn start(kind: Kind) -> Receiver {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let port = socket.local_addr().unwrap().port();
        let packets = Arc::new(Mutex::new(Vec::new()));
        let bad = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, b, s) = (packets.clone(), bad.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !s.load(Ordering::Relaxed) {
                let Ok(n) = socket.recv(&mut buf) else {
                    continue;
                };
                let decoded = match kind {
                    Kind::ArtNet => decode_artnet(&buf[..n]),
                    Kind::Sacn => decode_sacn(&buf[..n]),
                    Kind::Wled => decode_wled(&buf[..n]),
                };
                match decoded {
                    Some((universe, data, meta)) => p.lock().unwrap().push(Packet {
                        at: Instant::now(),
                        universe,
                        data,
                        meta,
                    }),
                    None => *b.lock().unwrap() += 1,
                }
            }
        });
        Receiver {
            port,
            packets,
            bad,
            stop,
            thread: Some(thread),
        }
    }

    pub fn packets(&self) -> Vec<Packet> {
        self.packets.lock().unwrap().clone()
    }

    pub fn bad(&self) -> u64 {
        *self.bad.lock().unwrap()
    }

    /// Every packet, once none has arrived for 300 ms (at most 5 s): what
    /// was sent before the sender stopped has then been received.
    pub fn settled(&self) -> Vec<Packet> {
        let start = Instant::now();
        let mut seen = self.packets().len();
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let p = self.packets();
            if p.len() == seen || start.elapsed() > Duration::from_secs(5) {
                return p;
            }
            seen = p.len();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The three receivers, and deploy/lights-loopback.toml pointed at them
/// (with `edit` applied to the text).
pub struct Loopback {
    pub artnet: Receiver,
    pub sacn: Receiver,
    pub wled: Receiver,
    pub config: String,
}

impl Loopback {
    pub fn new(edit: impl Fn(String) -> String) -> Loopback {
        let artnet = Receiver::start(Kind::ArtNet);
        let sacn = Receiver::start(Kind::Sacn);
        let wled = Receiver::start(Kind::Wled);
        let text = std::fs::read_to_string(repo().join("deploy/lights-loopback.toml")).unwrap();
        for needle in ["127.0.0.1:6454", "127.0.0.1:5568", "127.0.0.1:21324"] {
            assert!(text.contains(needle), "lights-loopback.toml lacks {needle}");
        }
        let config = edit(
            text.replace("127.0.0.1:6454", &format!("127.0.0.1:{}", artnet.port))
                .replace("127.0.0.1:5568", &format!("127.0.0.1:{}", sacn.port))
                .replace("127.0.0.1:21324", &format!("127.0.0.1:{}", wled.port)),
        );
        Loopback {
            artnet,
            sacn,
            wled,
            config,
        }
    }

    pub fn settings(&self) -> LightsSettings {
        #[derive(serde::Deserialize)]
        struct Root {
            lights: LightsConfig,
        }
        let root: Root = toml::from_str(&self.config).unwrap();
        root.lights.validate_text().unwrap().unwrap()
    }
}

/// The readings `earshotd analyze` makes of a demo clip (published values,
/// smoothed as the daemon smooths them).
fn readings_of(clip: &str) -> Vec<Reading> {
    let path = repo().join("device/assets/demo").join(clip);
    let analysis = AnalysisSettings {
        hop_ms: 1000,
        window_ms: None,
        smoothing_ms: 3000,
        silence_dbfs: -60.0,
    };
    let report = earshot_device::analyze(Path::new(&path), None, Precision::F32, &analysis)
        .expect("analyse the demo clip");
    assert!(report.readings.len() >= 5, "{clip}: too few readings");
    report.readings
}

/// Slots of universe 1 as Art-Net sends them (port-address 0).
fn dmx(p: &Packet) -> &[u8] {
    &p.data
}

/// Packets after `t`.
fn after(packets: &[Packet], t: Instant) -> Vec<Packet> {
    packets.iter().filter(|p| p.at >= t).cloned().collect()
}

/// The club preset's scene colours of the wash zone, as documented in
/// docs/lights.md: calm (tender), happy, tense (tension), sad.
const CLUB_WASH: [[u8; 3]; 4] = [
    [0x30, 0x60, 0xff],
    [0xff, 0x20, 0x80],
    [0xff, 0x00, 0x00],
    [0x20, 0x00, 0xa0],
];

/// The scene the lights should be in after `r`: the strongest of tender,
/// happy, tension, sad (hysteresis cannot hold another scene for a clip
/// whose lead is clear, which the test checks).
fn leading_scene(r: &Reading) -> (usize, f32) {
    let e = r.analysis.as_ref().unwrap().emotions;
    let scores = [e.tender, e.happy, e.tension, e.sad];
    let mut sorted = scores;
    sorted.sort_by(|a, b| b.total_cmp(a));
    let best = scores.iter().position(|s| *s == sorted[0]).unwrap();
    (best, sorted[0] - sorted[1])
}

/// An RGBW fixture's red, green, blue and white back to the colour it shows.
fn rgbw_colour(ch: &[u8]) -> [f32; 3] {
    let w = f32::from(ch[3]);
    [
        f32::from(ch[0]) + w,
        f32::from(ch[1]) + w,
        f32::from(ch[2]) + w,
    ]
}

/// Colours compared by direction (hue and saturation), not brightness.
fn same_hue(a: [f32; 3], b: [u8; 3]) -> bool {
    let max_a = a.iter().copied().fold(0.0, f32::max);
    let max_b = f32::from(*b.iter().max().unwrap());
    if max_a < 10.0 {
        return false;
    }
    a.iter()
        .zip(b)
        .all(|(x, y)| (x / max_a - f32::from(y) / max_b).abs() < 0.12)
}

/// Feeds `readings` to the lights, one every `every`, then holds the last.
fn feed(l: &lights::Lights, readings: &[Reading], every: Duration) {
    for r in readings {
        l.offer(r);
        std::thread::sleep(every);
    }
}

/// A clip's readings drive every output: the wash fixture shows the scene of
/// the leading emotion, the accent's dimmer follows energy through the club
/// brightness curve, all three receivers see about 40 frames a second, and
/// closing ends in blackout frames (sACN then terminates its stream).
#[test]
fn lights_follow_a_real_clip_on_artnet_sacn_and_wled_and_close_dark() {
    let rs = readings_of("3-tense.mp3");
    let music: Vec<Reading> = rs
        .iter()
        .filter(|r| r.state == InputState::Music)
        .cloned()
        .collect();
    let last = music.last().expect("the tense clip is music").clone();
    let (scene, lead) = leading_scene(&last);
    assert!(lead > 0.05, "the clip's lead is clear ({lead})");

    let lb = Loopback::new(|t| t);
    let settings = lb.settings();
    let started = Instant::now();
    let mut l = lights::start(&settings, &|_| Box::new(lights::output::NoStatus)).unwrap();
    // Readings 4x faster than live, then the last one held for 4 s (hold
    // 2 s, crossfade 1 s, attack 0.5 s: settled by then).
    feed(&l, &music, Duration::from_millis(250));
    let settle = Instant::now();
    feed(&l, std::slice::from_ref(&last), Duration::from_secs(4));
    let steady_from = settle + Duration::from_secs(3);
    let before_close = Instant::now();
    let frames_before_close = l.frames();
    l.close();
    let elapsed = before_close.duration_since(started).as_secs_f64();

    let art = lb.artnet.settled();
    let sacn = lb.sacn.settled();
    let wled = lb.wled.settled();
    assert_eq!(
        (lb.artnet.bad(), lb.sacn.bad(), lb.wled.bad()),
        (0, 0, 0),
        "undecodable packets"
    );

    // About 40 frames a second reach each receiver (generous: a loaded machine).
    for (name, n) in [
        ("artnet", art.len()),
        ("sacn", sacn.len()),
        ("wled", wled.len()),
    ] {
        let rate = n as f64 / elapsed;
        assert!(
            (20.0..=48.0).contains(&rate),
            "{name}: {n} frames in {elapsed:.1} s = {rate:.1}/s (render counted {frames_before_close})"
        );
    }
    println!(
        "frames/s: artnet {:.1}, sacn {:.1}, wled {:.1}",
        art.len() as f64 / elapsed,
        sacn.len() as f64 / elapsed,
        wled.len() as f64 / elapsed
    );

    // Steady state: the wash par (RGBW at 1-4) shows the scene colour on Art-Net and sACN.
    for (name, packets) in [("artnet", &art), ("sacn", &sacn)] {
        let steady = after(packets, steady_from);
        let steady: Vec<&Packet> = steady.iter().filter(|p| p.at < before_close).collect();
        assert!(steady.len() > 10, "{name}: {} steady frames", steady.len());
        for p in &steady {
            let c = rgbw_colour(&dmx(p)[0..4]);
            assert!(
                same_hue(c, CLUB_WASH[scene]),
                "{name}: wash {c:?} is not scene {scene}'s {:?}",
                CLUB_WASH[scene]
            );
        }
        // The accent's dimmer (drgb at 5) follows energy: club accent curve
        // energy 0.25..0.65 -> 0.05..1, gamma 1.5 (docs/lights.md).
        let energy = last.analysis.as_ref().unwrap().emotions.energy;
        let t = ((energy - 0.25) / 0.4).clamp(0.0, 1.0).powf(1.5);
        let want = (0.05 + 0.95 * t) * 255.0;
        let got = f32::from(dmx(steady.last().unwrap())[4]);
        assert!(
            (got - want).abs() <= 0.08 * 255.0,
            "{name}: accent dimmer {got}, energy {energy} wants {want:.0}"
        );
    }
    // sACN carries the configured priority and counts its sequence.
    let seqs: Vec<u8> = sacn.iter().map(|p| p.meta[1]).collect();
    assert!(sacn.iter().all(|p| p.meta[0] == 100 && p.universe == 1));
    assert!(
        seqs.windows(2)
            .filter(|w| w[1] == w[0].wrapping_add(1))
            .count()
            >= seqs.len() * 9 / 10
    );
    // WLED: 30 LEDs, the accent colour (club tense accent #8000ff etc.) on all, timeout 2 s.
    let w = wled.iter().rev().nth(10).unwrap();
    assert_eq!(w.data.len(), 90);
    assert_eq!(w.meta[0], 2);
    assert!(w.data.chunks(3).all(|c| c == &w.data[0..3]));

    // Closing: the last frames on every output are dark.
    for (name, packets) in [("artnet", &art), ("sacn", &sacn)] {
        let tail: Vec<&Packet> = packets.iter().rev().take(3).collect();
        assert!(
            tail.iter().all(|p| p.data.iter().all(|v| *v == 0)),
            "{name}: last frames not dark: {:?}",
            tail.iter().map(|p| &p.data[..16]).collect::<Vec<_>>()
        );
    }
    assert!(wled
        .iter()
        .rev()
        .take(3)
        .all(|p| p.data.iter().all(|v| *v == 0)));
    let terminated = sacn.iter().filter(|p| p.meta[2] & 0x40 != 0).count();
    assert_eq!(terminated, 3, "sACN sends three stream-terminated packets");
    assert!(sacn.last().unwrap().meta[2] & 0x40 != 0);
}

/// Counts flashes in one channel's values, frame by frame, from WCAG's
/// definition: a change of more than 10 % of full scale (25.5 of 255) away
/// from the last turning point, in the other direction from the previous
/// change, completes a flash. Returns the most in any window of `frames`.
fn most_flashes(values: &[u8], frames: usize) -> usize {
    let mut completed = Vec::new();
    let mut rising: Option<bool> = None;
    let (mut lo, mut hi) = (values[0], values[0]);
    for (i, &v) in values.iter().enumerate() {
        let v16 = f32::from(v);
        match rising {
            None => {
                lo = lo.min(v);
                hi = hi.max(v);
                if v16 - f32::from(lo) > 25.5 {
                    rising = Some(true);
                    hi = v;
                } else if f32::from(hi) - v16 > 25.5 {
                    rising = Some(false);
                    lo = v;
                }
            }
            Some(true) => {
                if v >= hi {
                    hi = v;
                } else if f32::from(hi) - v16 > 25.5 {
                    completed.push(i);
                    rising = Some(false);
                    lo = v;
                }
            }
            Some(false) => {
                if v <= lo {
                    lo = v;
                } else if v16 - f32::from(lo) > 25.5 {
                    completed.push(i);
                    rising = Some(true);
                    hi = v;
                }
            }
        }
    }
    (0..completed.len())
        .map(|i| {
            completed[i..]
                .iter()
                .take_while(|j| **j - completed[i] <= frames)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// The most jumpy settings the config allows and readings that alternate
/// between two clips ten times a second: without the limiter the wash would
/// flash about ten times a second; every channel on the wire flashes at most
/// three times in any second (40 frames), and still changes.
#[test]
fn the_flash_limiter_holds_on_the_wire() {
    let tense = readings_of("3-tense.mp3");
    let happy = readings_of("2-happy.mp3");
    let pick = |rs: &[Reading]| {
        rs.iter()
            .rev()
            .find(|r| r.state == InputState::Music)
            .unwrap()
            .clone()
    };
    let (a, b) = (pick(&tense), pick(&happy));
    let lb = Loopback::new(|t| {
        t.replace("hold_s = 2.0", "hold_s = 0.0")
            .replace("crossfade_s = 1.0", "crossfade_s = 0.0")
            .replace("attack_s = 0.5", "attack_s = 0.0")
            .replace("release_s = 1.0", "release_s = 0.0")
            .replace("[lights]\n", "[lights]\nhysteresis = 0.0\n")
    });
    let settings = lb.settings();
    assert_eq!(settings.behaviour.crossfade_s, 0.0);
    // The two readings light the wash in different scenes, far apart.
    assert_ne!(leading_scene(&a).0, leading_scene(&b).0);
    let mut l = lights::start(&settings, &|_| Box::new(lights::output::NoStatus)).unwrap();
    // Past the start-up fade, then alternate every 100 ms for 6 s.
    std::thread::sleep(Duration::from_millis(1200));
    for i in 0..60 {
        l.offer(if i % 2 == 0 { &a } else { &b });
        std::thread::sleep(Duration::from_millis(100));
    }
    l.close();
    for (name, rx) in [("artnet", &lb.artnet), ("sacn", &lb.sacn)] {
        let packets = rx.settled();
        assert!(packets.len() > 200, "{name}: {} frames", packets.len());
        let mut changed = 0;
        for ch in 0..19 {
            let values: Vec<u8> = packets.iter().map(|p| p.data[ch]).collect();
            let n = most_flashes(&values, 40);
            assert!(
                n <= 3,
                "{name}: channel {} flashed {n} times within 40 frames",
                ch + 1
            );
            if n >= 2 {
                changed += 1;
            }
        }
        assert!(
            changed > 0,
            "{name}: the lights froze instead of being limited"
        );
    }
}

/// Writes the loopback config (pointed at `lb`'s receivers) to a temp file.
fn config_file(lb: &Loopback) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::io::Write::write_all(&mut f, lb.config.as_bytes()).unwrap();
    f
}

/// The README's loopback command: `earshotd run --file CLIP --no-server
/// --config deploy/lights-loopback.toml` drives Art-Net, sACN and WLED from
/// the clip's readings; each output's state reaches the readings' health;
/// SIGTERM ends in blackout frames on all three, then sACN's stream-terminated
/// packets.
#[test]
fn earshotd_drives_all_three_and_sigterm_ends_in_blackout() {
    let lb = Loopback::new(|t| t);
    let config = config_file(&lb);
    let clip = repo().join("device/assets/demo/2-happy.mp3");
    let d = super::util::Daemon::spawn(
        super::util::earshotd()
            .args(["run", "--realtime", "--no-server", "--stdout", "--config"])
            .arg(config.path())
            .arg("--file")
            .arg(&clip),
    );
    // Wait for music readings, then a few seconds of lights following them.
    let mut readings = Vec::new();
    let start = Instant::now();
    while readings.len() < 6 {
        let line = d.line(Duration::from_secs(30));
        if let Ok(earshot_protocol::Message::Reading(r)) = earshot_protocol::decode(&line) {
            readings.push(*r);
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no readings");
    }
    let last = readings.last().unwrap();
    let names: Vec<&str> = last
        .health
        .outputs
        .iter()
        .map(|o| o.name.as_str())
        .collect();
    for want in ["lights", "lights:artnet", "lights:sacn", "lights:wled:1"] {
        assert!(names.contains(&want), "{want} not in health: {names:?}");
    }
    assert!(
        last.health
            .outputs
            .iter()
            .all(|o| o.state == earshot_protocol::OutputState::Ok),
        "{:?}",
        last.health.outputs
    );
    let lit = lb
        .artnet
        .packets()
        .iter()
        .filter(|p| p.data[..14].iter().any(|v| *v > 0))
        .count();
    assert!(lit > 40, "Art-Net frames with light: {lit}");
    assert!(d.terminate().success());
    let ends_dark = |p: &[Packet]| {
        p.len() >= 3
            && p.iter()
                .rev()
                .take(3)
                .all(|p| p.data.iter().all(|v| *v == 0))
    };
    let art = lb.artnet.settled();
    let sacn = lb.sacn.settled();
    let wled = lb.wled.settled();
    assert!(ends_dark(&art), "Art-Net does not end dark");
    assert!(ends_dark(&wled), "WLED does not end dark");
    let data: Vec<&Packet> = sacn.iter().filter(|p| p.meta[2] & 0x40 == 0).collect();
    assert!(
        data.iter()
            .rev()
            .take(3)
            .all(|p| p.data.iter().all(|v| *v == 0)),
        "sACN does not end dark"
    );
    assert_eq!(
        sacn.iter()
            .rev()
            .take(3)
            .filter(|p| p.meta[2] & 0x40 != 0)
            .count(),
        3
    );
    // A wash that was lit before the end.
    assert!(art.iter().any(|p| p.data[..4].iter().any(|v| *v > 50)));
}

/// `earshotd lights test` lights every channel of every fixture once, one at
/// a time and in address order, never a channel held `off` (a strobe), and
/// ends dark.
#[test]
fn lights_test_walks_every_channel_and_ends_dark() {
    let lb = Loopback::new(|t| t);
    let config = config_file(&lb);
    let out = super::util::run(
        super::util::earshotd()
            .args(["lights", "test", "--step-s", "0.2", "--config"])
            .arg(config.path()),
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("wash par: channel 4 (white) at universe 1 address 4"),
        "{stdout}"
    );
    assert!(
        stdout.contains("uv bar: channel 6 (uv) at universe 1 address 14"),
        "{stdout}"
    );
    let art = lb.artnet.settled();
    // The order in which channels were lit alone.
    let mut order: Vec<usize> = Vec::new();
    for p in &art {
        let lit: Vec<usize> = (0..19).filter(|c| p.data[*c] > 0).collect();
        if let [c] = lit[..] {
            if order.last() != Some(&c) {
                order.push(c);
            }
        }
        assert!(lit.len() <= 1, "two channels at once: {lit:?}");
    }
    // 1..=18 in turn; 19, the strobe held at 0, never.
    assert_eq!(order, (0..18).collect::<Vec<_>>());
    assert!(art.iter().all(|p| p.data[18] == 0));
    assert!(art.last().unwrap().data.iter().all(|v| *v == 0));
    let wled = lb.wled.settled();
    let colours: Vec<[u8; 3]> = wled
        .iter()
        .map(|p| [p.data[0], p.data[1], p.data[2]])
        .collect();
    for c in [[255, 0, 0], [0, 255, 0], [0, 0, 255]] {
        assert!(colours.contains(&c), "WLED never showed {c:?}");
    }
}

/// A stalled pipeline (no reading for `stall_s`): the lights hold their look,
/// then fade to the safe look (blackout here) over `stall_fade_s`, gradually;
/// when readings come back, so does the light.
#[test]
fn a_stalled_pipeline_holds_then_fades_to_the_safe_look() {
    let happy = readings_of("2-happy.mp3");
    let r = happy
        .iter()
        .rev()
        .find(|r| r.state == InputState::Music)
        .unwrap()
        .clone();
    let lb = Loopback::new(|t| {
        t.replace("stall_s = 5.0", "stall_s = 1.5")
            .replace("stall_fade_s = 3.0", "stall_fade_s = 1.0")
    });
    let mut l = lights::start(&lb.settings(), &|_| Box::new(lights::output::NoStatus)).unwrap();
    // Readings every 250 ms for 3 s (settled), then none.
    feed(&l, &vec![r.clone(); 12], Duration::from_millis(250));
    let stopped = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let back = Instant::now();
    feed(&l, &vec![r.clone(); 8], Duration::from_millis(250));
    l.close();
    let art = lb.artnet.settled();
    let wash = |p: &Packet| p.data[..4].iter().map(|v| u32::from(*v)).sum::<u32>();
    let at = |from_s: f64, to_s: f64| -> Vec<u32> {
        art.iter()
            .filter(|p| {
                let t = p.at.duration_since(stopped).as_secs_f64();
                p.at >= stopped && (from_s..to_s).contains(&t)
            })
            .map(wash)
            .collect()
    };
    let held = at(0.2, 1.2);
    assert!(held.len() > 20, "{} frames", held.len());
    let level = held[0];
    assert!(level > 60, "the wash was lit: {level}");
    assert!(
        held.iter().all(|v| v.abs_diff(level) <= level / 10),
        "the look holds while the pipeline stalls: {held:?}"
    );
    let fading = at(1.5, 2.6);
    let between = fading
        .iter()
        .filter(|v| **v > level / 10 && **v < level * 9 / 10)
        .count();
    assert!(between >= 10, "a fade, not a cut: {fading:?}");
    let dark = at(3.0, 3.9);
    assert!(!dark.is_empty() && dark.iter().all(|v| *v == 0), "{dark:?}");
    let again: Vec<u32> = art
        .iter()
        .filter(|p| {
            p.at >= back + Duration::from_millis(1500) && p.at < back + Duration::from_secs(2)
        })
        .map(wash)
        .collect();
    assert!(
        again.iter().all(|v| *v > level / 2),
        "light is back: {again:?}"
    );
}
