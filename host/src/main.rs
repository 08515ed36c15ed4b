//! `earshot`: parses flags, starts the feed (network or replay) and the key
//! reader, and runs the console in the terminal, restoring it on exit and on panic.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;

use earshot_host::app::App;
use earshot_host::cli::{Args, Feed};
use earshot_host::console::{self, Event};
use earshot_host::theme::Theme;
use earshot_host::{net, replay};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            // not eprintln!: it panics when stderr cannot be written
            let _ = writeln!(std::io::stderr(), "earshot: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let env = |name: &str| std::env::var(name).ok();
    let theme = Theme::new(args.colors.resolve(env));
    /// A feed ready to start; a recording is opened before the terminal is
    /// checked, so a wrong path is reported even without one.
    enum Ready {
        Live(net::Endpoint),
        Replay(replay::Recording, String, f64),
    }
    let token = args.token(env)?;
    let ready = match args.feed(env) {
        Feed::Live(endpoint) => Ready::Live(endpoint),
        Feed::Replay { path, speed } => {
            let label = format!("replay {}", path.display());
            Ready::Replay(replay::Recording::open(&path)?, label, speed)
        }
    };
    if !std::io::stdout().is_terminal() {
        anyhow::bail!("earshot needs a terminal; over SSH use `ssh -t HOST earshot`");
    }
    let (tx, rx) = mpsc::channel::<Event>();
    let mut app = match ready {
        Ready::Live(endpoint) => {
            let mut app = App::new(endpoint.to_string(), Instant::now());
            let (requests, asked) = mpsc::channel();
            app.lookback.requests = Some(requests);
            net::spawn(endpoint, token, tx.clone(), asked)
                .context("starting the network thread")?;
            app
        }
        Ready::Replay(recording, label, speed) => {
            let mut app = App::new(label, Instant::now());
            app.speed = speed;
            replay::spawn(recording, speed, tx.clone()).context("starting the replay thread")?;
            app
        }
    };
    console::spawn_input(tx).context("starting the key reader")?;

    // try_init installs a panic hook that restores the terminal before printing.
    let mut terminal = ratatui::try_init().context("setting up the terminal")?;
    let result = console::run_app(&mut terminal, &mut app, &rx, &theme);
    ratatui::restore();
    result.context("drawing the console")?;
    for warning in &app.warnings {
        let _ = writeln!(std::io::stderr(), "earshot: skipped {warning}");
    }
    Ok(ExitCode::SUCCESS)
}
