//! Colours: how many the terminal gets (none, 16 or 256) and the styles the UI
//! uses. With no colours the UI relies on text, symbols and bold/reverse only.

use ratatui::style::{Color, Modifier, Style};

/// How many colours to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorMode {
    None,
    Ansi16,
    Ansi256,
}

/// The `--colors` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// NO_COLOR set: none; COLORTERM or TERM says 256/truecolor: 256; TERM=dumb: none; else 16.
    Auto,
    #[value(name = "16")]
    Ansi16,
    #[value(name = "256")]
    Ansi256,
    None,
}

impl ColorChoice {
    /// Picks the mode; an explicit flag wins over the environment, as NO_COLOR asks.
    pub fn resolve(self, env: impl Fn(&str) -> Option<String>) -> ColorMode {
        let set = |name: &str| env(name).filter(|v| !v.is_empty());
        match self {
            ColorChoice::Ansi16 => ColorMode::Ansi16,
            ColorChoice::Ansi256 => ColorMode::Ansi256,
            ColorChoice::None => ColorMode::None,
            ColorChoice::Auto => {
                let term = set("TERM").unwrap_or_default();
                let colorterm = set("COLORTERM").unwrap_or_default();
                if set("NO_COLOR").is_some() || term == "dumb" {
                    ColorMode::None
                } else if term.contains("256color")
                    || colorterm.contains("256")
                    || colorterm == "truecolor"
                    || colorterm == "24bit"
                {
                    ColorMode::Ansi256
                } else {
                    ColorMode::Ansi16
                }
            }
        }
    }
}

/// Styles for every kind of thing the UI draws.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub mode: ColorMode,
}

/// Per emotion (valence, energy, tension, anger, fear, happy, sad, tender): 256-colour index, 16-colour fallback.
const EMOTION_COLORS: [(u8, Color); 8] = [
    (220, Color::Yellow),
    (208, Color::LightRed),
    (167, Color::Red),
    (160, Color::Red),
    (98, Color::Magenta),
    (178, Color::Yellow),
    (68, Color::Blue),
    (175, Color::LightMagenta),
];

impl Theme {
    pub fn new(mode: ColorMode) -> Self {
        Theme { mode }
    }

    fn fg(&self, c256: u8, c16: Color) -> Style {
        match self.mode {
            ColorMode::None => Style::new(),
            ColorMode::Ansi16 => Style::new().fg(c16),
            ColorMode::Ansi256 => Style::new().fg(Color::Indexed(c256)),
        }
    }

    pub fn emotion(&self, i: usize) -> Style {
        let (c256, c16) = EMOTION_COLORS
            .get(i)
            .copied()
            .unwrap_or((250, Color::White));
        self.fg(c256, c16)
    }

    pub fn feature(&self) -> Style {
        self.fg(73, Color::Cyan)
    }

    /// The unfilled part of a bar.
    pub fn track(&self) -> Style {
        self.fg(240, Color::DarkGray)
    }

    pub fn positive(&self) -> Style {
        self.fg(71, Color::Green)
    }

    pub fn negative(&self) -> Style {
        self.fg(167, Color::Red)
    }

    pub fn good(&self) -> Style {
        self.fg(71, Color::Green)
    }

    pub fn warn(&self) -> Style {
        self.fg(214, Color::Yellow)
    }

    pub fn bad(&self) -> Style {
        self.fg(196, Color::LightRed).add_modifier(Modifier::BOLD)
    }

    /// Labels and secondary text.
    pub fn label(&self) -> Style {
        self.fg(246, Color::Gray)
    }

    pub fn title(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    /// Block titles: bold in the terminal's own colour, not the border's.
    pub fn block_title(&self) -> Style {
        match self.mode {
            ColorMode::None => self.title(),
            _ => self.title().fg(Color::Reset),
        }
    }

    pub fn selected(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    /// Values that are no longer current.
    pub fn stale(&self) -> Style {
        self.fg(242, Color::DarkGray).add_modifier(Modifier::DIM)
    }

    /// A spectrogram cell of intensity 0..1.
    pub fn heat(&self, v: f32) -> Style {
        const RAMP256: [u8; 5] = [236, 24, 31, 178, 220];
        const RAMP16: [Color; 5] = [
            Color::DarkGray,
            Color::Blue,
            Color::Cyan,
            Color::Yellow,
            Color::White,
        ];
        let i = ((v.clamp(0.0, 1.0) * 4.0).round() as usize).min(4);
        self.fg(RAMP256[i], RAMP16[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn auto_follows_the_environment() {
        let auto = ColorChoice::Auto;
        assert_eq!(
            auto.resolve(env(&[("TERM", "xterm-256color")])),
            ColorMode::Ansi256
        );
        assert_eq!(
            auto.resolve(env(&[("TERM", "screen"), ("COLORTERM", "truecolor")])),
            ColorMode::Ansi256
        );
        assert_eq!(auto.resolve(env(&[("TERM", "xterm")])), ColorMode::Ansi16);
        assert_eq!(auto.resolve(env(&[("TERM", "dumb")])), ColorMode::None);
        assert_eq!(
            auto.resolve(env(&[("TERM", "xterm-256color"), ("NO_COLOR", "1")])),
            ColorMode::None
        );
        assert_eq!(
            auto.resolve(env(&[("TERM", "xterm-256color"), ("NO_COLOR", "")])),
            ColorMode::Ansi256,
            "an empty NO_COLOR does not count"
        );
    }

    #[test]
    fn explicit_flag_wins() {
        let no_color = env(&[("NO_COLOR", "1")]);
        assert_eq!(ColorChoice::Ansi16.resolve(&no_color), ColorMode::Ansi16);
        assert_eq!(
            ColorChoice::None.resolve(env(&[("TERM", "xterm-256color")])),
            ColorMode::None
        );
    }

    #[test]
    fn no_colour_styles_have_no_colours() {
        let t = Theme::new(ColorMode::None);
        for s in [
            t.emotion(0),
            t.feature(),
            t.track(),
            t.positive(),
            t.bad(),
            t.stale(),
            t.heat(0.7),
        ] {
            assert_eq!((s.fg, s.bg), (None, None));
        }
    }
}
