mod analyze;
mod bad_input;
mod run;
mod server;
mod util;
