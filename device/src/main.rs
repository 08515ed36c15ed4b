//! `earshotd`: parse arguments, load the config, call the library, map the
//! result to an exit code.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use earshot_device::config::{Loaded, PrecisionChoice, Settings, SourceConfig};
use earshot_device::{capture, Reload, Shutdown};
use earshot_protocol::{Emotions, MidLevel};

/// earshot's daemon: listens, reads the music's mid-level features and
/// emotions every second, explains them, and serves them to consoles.
#[derive(Parser, Debug)]
#[command(name = "earshotd", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the daemon (the default): demo, file or live input -> readings.
    Run(RunArgs),
    /// List audio input devices.
    Devices,
    /// Analyse a recording: per-window values and a summary.
    Analyze(AnalyzeArgs),
    /// The history ([history] path) by the hour: music share, dominant emotion, valence, energy.
    Report(ReportArgs),
    /// Lighting tools (see docs/lights.md).
    #[command(subcommand)]
    Lights(LightsCommand),
    /// Check a config file: each problem with file:line:column and what to do.
    CheckConfig {
        /// The file (default: $EARSHOT_CONFIG, else /etc/earshot/earshot.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum LightsCommand {
    /// Walk every fixture through its channels, one at a time at full, for installing.
    Test {
        /// Config file with [lights] (fixtures and outputs).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Seconds each channel stays at full.
        #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
        step_s: f64,
    },
}

#[derive(Args, Debug, Default)]
struct ModelArgs {
    /// Config file (TOML; see deploy/earshot.toml). Default: $EARSHOT_CONFIG
    /// (empty: none), else /etc/earshot/earshot.toml if it exists, else built-in defaults.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Model directory (metadata.json, model.onnx, model.int8.onnx); default: built in.
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Numeric precision: auto (int8 where the model's metadata says it is
    /// faster on this CPU, else f32), f32 or int8; default: the config's, else auto.
    #[arg(long, value_enum)]
    precision: Option<PrecisionChoice>,
    /// Short for --precision int8.
    #[arg(long, conflicts_with = "precision")]
    int8: bool,
}

#[derive(Args, Debug, Default)]
struct RunArgs {
    /// The built-in demo music (the default source).
    #[arg(long, conflicts_with_all = ["file", "device"])]
    demo: bool,
    /// Read an audio file (wav, flac, mp3, ogg).
    #[arg(long, value_name = "FILE", conflicts_with = "device")]
    file: Option<PathBuf>,
    /// With --file: pace the file like live audio.
    #[arg(long, requires = "file")]
    realtime: bool,
    /// Capture from an input device (name from `earshotd devices`, or "default").
    #[arg(long, value_name = "NAME")]
    device: Option<String>,
    /// Also write NDJSON readings to standard output.
    #[arg(long)]
    stdout: bool,
    /// Stream server TCP address (default 127.0.0.1:7878; "" disables).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Stream server unix socket ("" disables).
    #[arg(long, value_name = "PATH", value_parser = clap::value_parser!(std::ffi::OsString))]
    socket: Option<std::ffi::OsString>,
    /// Permissions of the unix socket, octal (e.g. 0660: its group may connect too).
    #[arg(long, value_name = "MODE")]
    socket_mode: Option<String>,
    /// Group of the unix socket (a group name or a numeric gid).
    #[arg(long, value_name = "GROUP")]
    socket_group: Option<String>,
    /// No stream server (with --stdout, --mqtt, --osc or lights in the config).
    #[arg(long)]
    no_server: bool,
    /// Publish readings to an MQTT broker, with Home Assistant discovery
    /// (e.g. mqtt://homeassistant.local:1883; more in the config's [mqtt]).
    #[arg(long, value_name = "URL")]
    mqtt: Option<String>,
    /// Send readings as OSC messages over UDP to HOST:PORT (repeatable; see docs/osc.md).
    #[arg(long, value_name = "HOST:PORT")]
    osc: Vec<String>,
    /// Write the log to this file (appending) instead of standard error.
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args, Debug)]
struct AnalyzeArgs {
    /// The recording.
    file: PathBuf,
    /// Print JSON: windows, readings and the summary.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print CSV: one row per window, then the mean.
    #[arg(long)]
    csv: bool,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// How far back: e.g. 90m, 6h, 7d.
    #[arg(long, default_value = "6h", value_parser = parse_since)]
    since: u64,
    /// The history database (default: [history] path of --config).
    #[arg(long, value_name = "FILE")]
    db: Option<PathBuf>,
    /// Config file whose [history] path to read (default as for `run`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print JSON: one object per hour.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print CSV: one row per hour.
    #[arg(long)]
    csv: bool,
}

/// "90m", "6h", "7d" (or plain seconds) in milliseconds.
fn parse_since(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?}: give a duration like 90m, 6h or 7d"))?;
    let ms = match unit {
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    n.checked_mul(ms)
        .ok_or_else(|| format!("{text:?}: too long"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_file = match &cli.command {
        None => cli.run.log_file.clone(),
        Some(Command::Run(args)) => args.log_file.clone(),
        _ => None,
    };
    if let Err(e) = init_logging(log_file.as_deref()) {
        say_error(&format!("{e:#}"));
        return ExitCode::from(1);
    }
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            // A closed pipe (e.g. `earshotd analyze x | head`) is not a failure.
            if let Some(e) = err.root_cause().downcast_ref::<std::io::Error>() {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return ExitCode::SUCCESS;
                }
            }
            say_error(&report(&err));
            ExitCode::from(1)
        }
    }
}

/// The last word on stderr; unlike eprintln! it does not panic when stderr
/// cannot be written (the exit status still says it failed).
fn say_error(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "earshotd: error: {text}");
}

/// The error and its causes, `: `-separated, leaving out a cause whose text
/// the message already holds (many messages name their OS error themselves).
fn report(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}

/// Logs go to stderr (level from `EARSHOT_LOG`, default `info`), or to a file.
fn init_logging(file: Option<&std::path::Path>) -> anyhow::Result<()> {
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("EARSHOT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // The decoders log every damaged packet (10,000 lines from 20 s of
    // /dev/urandom); the file source counts them and logs rate-limited.
    if !std::env::var("EARSHOT_LOG").is_ok_and(|v| v.contains("symphonia")) {
        if let Ok(quiet) = "symphonia=error".parse::<tracing_subscriber::filter::Directive>() {
            filter = filter.add_directive(quiet);
        }
    }
    // A full or closed stderr (e.g. `2>/dev/full`) must not stop the daemon:
    // tracing-subscriber would report each failed write with eprintln!, which panics.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .log_internal_errors(false);
    match file {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening the log file {}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(f))
                .init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        None => daemon(cli.run),
        Some(Command::Run(args)) => daemon(args),
        Some(Command::Devices) => devices(),
        Some(Command::Analyze(args)) => analyze(args),
        Some(Command::Report(args)) => report_history(args),
        Some(Command::Lights(LightsCommand::Test { config, step_s })) => {
            lights_test(&config, step_s)
        }
        Some(Command::CheckConfig { config }) => check_config(config.as_deref()),
    }
}

/// The config the Debian package installs, read when no other is named.
const SYSTEM_CONFIG: &str = "/etc/earshot/earshot.toml";

/// The config file to read: `--config`, else $EARSHOT_CONFIG (set and empty:
/// none, e.g. for tests on a machine with the package installed), else
/// [`SYSTEM_CONFIG`] if it exists.
fn config_path(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    match std::env::var_os("EARSHOT_CONFIG") {
        Some(v) if v.is_empty() => None,
        Some(v) => Some(PathBuf::from(v)),
        None => Path::new(SYSTEM_CONFIG)
            .is_file()
            .then(|| PathBuf::from(SYSTEM_CONFIG)),
    }
}

fn load_config(args: &ModelArgs) -> anyhow::Result<Loaded> {
    let mut loaded = match config_path(args.config.as_deref()) {
        Some(path) => {
            tracing::info!("config {}", path.display());
            Loaded::from_file(&path)?
        }
        None => Loaded::defaults(),
    };
    if let Some(dir) = &args.model {
        loaded.config.model.dir = Some(dir.clone());
    }
    if let Some(p) = args.precision {
        loaded.config.model.precision = p;
    }
    if args.int8 {
        loaded.config.model.precision = PrecisionChoice::Int8;
    }
    Ok(loaded)
}

/// The config file (if any) with the command line's flags on top, validated.
fn settings(args: &RunArgs) -> anyhow::Result<Settings> {
    let mut loaded = load_config(&args.model)?;
    let c = &mut loaded.config;
    if args.demo {
        c.source = SourceConfig::Demo {};
    } else if let Some(path) = &args.file {
        c.source = SourceConfig::File {
            path: path.clone(),
            realtime: args.realtime,
        };
    } else if let Some(name) = &args.device {
        c.source = SourceConfig::Device { name: name.clone() };
    }
    if args.stdout {
        c.stdout.enabled = true;
    }
    if let Some(addr) = &args.listen {
        c.server.tcp = addr.clone();
    }
    if let Some(path) = &args.socket {
        c.server.unix_socket = Some(PathBuf::from(path));
    }
    if let Some(mode) = &args.socket_mode {
        c.server.socket_mode = Some(mode.clone());
    }
    if let Some(group) = &args.socket_group {
        c.server.socket_group = Some(group.clone());
    }
    if args.no_server {
        c.server.enabled = false;
    }
    if let Some(url) = &args.mqtt {
        c.mqtt.url = url.clone();
    }
    if !args.osc.is_empty() {
        c.osc.targets = args.osc.clone();
    }
    Ok(loaded.validate()?)
}

fn daemon(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut settings = settings(&args)?;
    let shutdown = Shutdown::new();
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, shutdown.flag())
            .context("installing the signal handlers")?;
    }
    // SIGHUP reloads the config (and flags); a bad one is logged and ignored.
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))
        .context("installing the signal handlers")?;
    let load = || self::settings(&args).map_err(|e| report(&e));
    let reload = Reload {
        requested: hup,
        load: &load,
    };
    while let Some(next) = earshot_device::run_reloadable(&settings, &shutdown, Some(&reload))? {
        settings = *next;
    }
    Ok(ExitCode::SUCCESS)
}

fn devices() -> anyhow::Result<ExitCode> {
    let list = capture::live::list_devices()?;
    let mut out = std::io::stdout().lock();
    if list.is_empty() {
        writeln!(out, "no audio input devices found")?;
        return Ok(ExitCode::SUCCESS);
    }
    for d in list {
        let mark = if d.is_default { "*" } else { " " };
        writeln!(out, "{mark} {}  [{}]  {}", d.name, d.id, d.default_config)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn analyze(args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let loaded = load_config(&args.model)?;
    let settings = loaded.validate()?;
    let report = earshot_device::analyze(
        &args.file,
        settings.model_dir.as_deref(),
        settings.precision,
        &settings.analysis,
    )?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else if args.csv {
        write!(out, "start_s,end_s,state,level_dbfs")?;
        for name in MidLevel::<f32>::NAMES.iter().chain(&Emotions::<f32>::NAMES) {
            write!(out, ",{name}")?;
        }
        writeln!(out)?;
        for w in &report.windows {
            write!(
                out,
                "{:.3},{:.3},{},{:.1}",
                w.start_s,
                w.end_s,
                serde_json::to_value(w.state)?.as_str().unwrap_or("?"),
                w.level_dbfs
            )?;
            for v in w.mid_level.to_array().iter().chain(&w.emotions.to_array()) {
                write!(out, ",{v:.5}")?;
            }
            writeln!(out)?;
        }
        write!(out, ",,mean,")?;
        let s = &report.summary;
        for v in s.mid_level.to_array().iter().chain(&s.emotions.to_array()) {
            write!(out, ",{v:.5}")?;
        }
        writeln!(out)?;
    } else {
        let s = &report.summary;
        writeln!(
            out,
            "{}: {:.1} s, {} windows of {:.0} ms every {:.0} ms ({} music), model {} ({})",
            report.source,
            report.seconds,
            s.windows,
            report.window_ms,
            report.hop_ms,
            s.music_windows,
            report.model_id,
            report.precision
        )?;
        writeln!(out, "\nmid-level (0..1)")?;
        for (name, v) in s.mid_level.iter() {
            writeln!(out, "  {name:<18} {v:6.3}  {}", bar(v))?;
        }
        writeln!(out, "\nemotions (0..1)")?;
        for (name, v) in s.emotions.iter() {
            writeln!(out, "  {name:<18} {v:6.3}  {}", bar(v))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn bar(v: f32) -> String {
    "#".repeat((v.clamp(0.0, 1.0) * 30.0).round() as usize)
}

/// `earshotd lights test`: the configured fixtures, channel by channel.
fn lights_test(config: &std::path::Path, step_s: f64) -> anyhow::Result<ExitCode> {
    let settings = Loaded::from_file(config)?.validate()?;
    let Some(lights) = settings.outputs.iter().find_map(|o| match o {
        earshot_device::publish::SinkSettings::Lights(l) => Some(l),
        _ => None,
    }) else {
        anyhow::bail!(
            "{}: the lights are off; set [lights] enabled = true, with fixtures and an output",
            config.display()
        );
    };
    if !(0.1..=60.0).contains(&step_s) {
        anyhow::bail!("--step-s {step_s}: must be between 0.1 and 60 seconds");
    }
    let shutdown = Shutdown::new();
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, shutdown.flag())
            .context("installing the signal handlers")?;
    }
    earshot_device::lights::walk(
        lights,
        std::time::Duration::from_secs_f64(step_s),
        &|| shutdown.is_set(),
        &mut |line| println!("{line}"),
    )?;
    Ok(ExitCode::SUCCESS)
}

fn check_config(path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let Some(path) = config_path(path) else {
        anyhow::bail!(
            "no config to check: pass --config FILE (none at {SYSTEM_CONFIG}, and \
             $EARSHOT_CONFIG is empty or unset)"
        );
    };
    let settings = Loaded::from_file(&path)?.validate()?;
    let outputs: Vec<String> = settings.outputs.iter().map(describe_output).collect();
    let text = format!(
        "{}: ok\n  source   {}\n  outputs  {}\n",
        path.display(),
        describe_source(&settings.source),
        outputs.join(", ")
    );
    std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes())
        .context("writing to standard output")?;
    Ok(ExitCode::SUCCESS)
}

fn describe_source(source: &SourceConfig) -> String {
    match source {
        SourceConfig::Demo {} => "the built-in demo music".into(),
        SourceConfig::File { path, .. } => format!("file {}", path.display()),
        SourceConfig::Device { name } => format!("input device {name:?}"),
    }
}

fn describe_output(output: &earshot_device::publish::SinkSettings) -> String {
    use earshot_device::publish::SinkSettings as S;
    match output {
        S::Server(s) => {
            let mut at = Vec::new();
            if let Some(tcp) = s.tcp {
                at.push(format!("tcp {tcp}"));
            }
            if let Some(path) = &s.unix_socket {
                at.push(format!("unix {}", path.display()));
            }
            format!("stream server ({})", at.join(", "))
        }
        S::Stdout => "stdout".into(),
        S::Mqtt(_) => "mqtt".into(),
        S::Osc(_) => "osc".into(),
        S::History(h) => format!("history ({})", h.path.display()),
        S::Lights(_) => "lights".into(),
        _ => "another output".into(),
    }
}

fn report_history(args: ReportArgs) -> anyhow::Result<ExitCode> {
    use earshot_device::publish::history::{buckets, write_report, Format, Store, HOUR_MS};
    let config = config_path(args.config.as_deref());
    let path = match (&args.db, &config) {
        (Some(db), _) => db.clone(),
        (None, Some(config)) => {
            let loaded = Loaded::from_file(config)?;
            let p = loaded.config.history.path.clone();
            anyhow::ensure!(
                !p.as_os_str().is_empty(),
                "{} keeps no history: set [history] path, or pass --db FILE",
                config.display()
            );
            p
        }
        (None, None) => anyhow::bail!("name the history: --db FILE or --config FILE"),
    };
    anyhow::ensure!(
        path.is_file(),
        "{}: no such history file (earshotd writes it while running with [history] path set)",
        path.display()
    );
    let store = Store::open_read_only(&path)?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let since = now_ms - i64::try_from(args.since).unwrap_or(i64::MAX / 2);
    let hours = buckets(&store.minutes_since(since)?, HOUR_MS);
    let format = match (args.json, args.csv) {
        (true, _) => Format::Json,
        (_, true) => Format::Csv,
        _ => Format::Table,
    };
    write_report(&mut std::io::stdout().lock(), &hours, args.since, format)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_since("6h"), Ok(6 * 3_600_000));
        assert_eq!(parse_since("90m"), Ok(90 * 60_000));
        assert!(parse_since("6x").is_err());
        assert!(parse_since("h").is_err());
    }
}
