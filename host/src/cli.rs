//! Command-line flags, parsed into plain data; `main` turns them into a feed.

use std::path::PathBuf;

use clap::Parser;

use crate::net::Endpoint;
use crate::theme::ColorChoice;

/// The earshot console: what the room sounds like, and why.
///
/// Connects to a running earshotd (TCP 127.0.0.1:7878 unless told otherwise)
/// and shows emotions, mid-level features, their explanation and the daemon's
/// health. Keys: 1-3 or Tab for views, arrows to pick an emotion, ? help, q quit.
#[derive(Debug, Parser)]
#[command(name = "earshot", version)]
pub struct Args {
    /// Daemon's TCP readings stream, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT", conflicts_with_all = ["socket", "replay"])]
    pub connect: Option<String>,

    /// Daemon's unix socket; without PATH, $XDG_RUNTIME_DIR/earshot.sock or /tmp/earshot.sock.
    #[arg(long, value_name = "PATH", num_args = 0..=1, conflicts_with = "replay")]
    pub socket: Option<Option<PathBuf>>,

    /// Play back a recording made with `earshotd --stdout` instead of connecting.
    #[arg(long, value_name = "FILE.ndjson")]
    pub replay: Option<PathBuf>,

    /// File whose first line is the token of a daemon with [server] token_file
    /// (TCP only; or set EARSHOT_TOKEN).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["socket", "replay"])]
    pub token_file: Option<PathBuf>,

    /// Replay speed factor (2 = twice as fast).
    #[arg(long, default_value_t = 1.0, value_parser = parse_speed, requires = "replay")]
    pub speed: f64,

    /// Colours to use.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub colors: ColorChoice,
}

/// Where readings come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Feed {
    Live(Endpoint),
    Replay { path: PathBuf, speed: f64 },
}

impl Args {
    pub fn feed(&self, env: impl Fn(&str) -> Option<String>) -> Feed {
        if let Some(path) = &self.replay {
            return Feed::Replay {
                path: path.clone(),
                speed: self.speed,
            };
        }
        match &self.socket {
            Some(Some(path)) => Feed::Live(Endpoint::Unix(path.clone())),
            Some(None) => Feed::Live(Endpoint::Unix(default_socket(env))),
            None => Feed::Live(Endpoint::Tcp(self.connect.clone().unwrap_or_else(|| {
                format!("127.0.0.1:{}", earshot_protocol::DEFAULT_PORT)
            }))),
        }
    }
}

impl Args {
    /// The token to send: the first line of `--token-file`, else `EARSHOT_TOKEN`.
    pub fn token(&self, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<String>> {
        let token = match &self.token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!("reading the token file {}: {e}", path.display())
                })?;
                Some(text.lines().next().unwrap_or("").trim().to_string())
            }
            None => env("EARSHOT_TOKEN").map(|t| t.trim().to_string()),
        };
        Ok(token.filter(|t| !t.is_empty()))
    }
}

/// `$XDG_RUNTIME_DIR/earshot.sock`, or `/tmp/earshot.sock` without it.
pub fn default_socket(env: impl Fn(&str) -> Option<String>) -> PathBuf {
    env("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).join("earshot.sock"))
        .unwrap_or_else(|| PathBuf::from("/tmp/earshot.sock"))
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("`{s}` is not a positive number (e.g. 1, 0.5, 10)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("earshot").chain(args.iter().copied()))
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn flags_are_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn default_is_local_tcp() {
        let a = parse(&[]).unwrap();
        assert_eq!(
            a.feed(no_env),
            Feed::Live(Endpoint::Tcp("127.0.0.1:7878".into()))
        );
    }

    #[test]
    fn socket_with_and_without_path() {
        let a = parse(&["--socket"]).unwrap();
        assert_eq!(
            a.feed(no_env),
            Feed::Live(Endpoint::Unix("/tmp/earshot.sock".into()))
        );
        let xdg = |n: &str| (n == "XDG_RUNTIME_DIR").then(|| "/run/user/1000".to_string());
        assert_eq!(
            a.feed(xdg),
            Feed::Live(Endpoint::Unix("/run/user/1000/earshot.sock".into()))
        );
        let a = parse(&["--socket", "/x.sock"]).unwrap();
        assert_eq!(a.feed(no_env), Feed::Live(Endpoint::Unix("/x.sock".into())));
    }

    #[test]
    fn token_from_file_or_environment() {
        let env = |n: &str| (n == "EARSHOT_TOKEN").then(|| " from-env \n".to_string());
        assert_eq!(parse(&[]).unwrap().token(no_env).unwrap(), None);
        assert_eq!(
            parse(&[]).unwrap().token(env).unwrap().as_deref(),
            Some("from-env")
        );
        let path = std::env::temp_dir().join(format!("earshot-cli-token-{}", std::process::id()));
        std::fs::write(&path, "from-file\nsecond line\n").unwrap();
        let a = parse(&["--token-file", path.to_str().unwrap()]).unwrap();
        assert_eq!(a.token(env).unwrap().as_deref(), Some("from-file"));
        std::fs::remove_file(&path).unwrap();
        let err = a.token(env).unwrap_err().to_string();
        assert!(err.contains("reading the token file"), "{err}");
        assert!(parse(&["--token-file", "t", "--socket"]).is_err());
    }

    #[test]
    fn replay_and_speed() {
        let a = parse(&["--replay", "r.ndjson", "--speed", "4"]).unwrap();
        assert_eq!(
            a.feed(no_env),
            Feed::Replay {
                path: "r.ndjson".into(),
                speed: 4.0
            }
        );
        assert!(parse(&["--replay", "r.ndjson", "--speed", "0"]).is_err());
        assert!(parse(&["--speed", "2"]).is_err(), "speed needs --replay");
        assert!(parse(&["--replay", "r", "--connect", "h:1"]).is_err());
        assert!(parse(&["--colors", "16"]).is_ok());
        assert!(parse(&["--colors", "8"]).is_err());
    }
}
