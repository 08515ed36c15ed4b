//! `earshot`, the console for a running `earshotd`: state in [`app`], drawing
//! in [`ui`], the event loop in [`console`], readings from [`net`] or
//! [`replay`]. Depends on the protocol crate only, never on the daemon.

pub mod app;
pub mod cli;
pub mod console;
pub mod demo;
pub mod explain;
pub mod net;
pub mod replay;
pub mod text;
pub mod theme;
pub mod ui;
