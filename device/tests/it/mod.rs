mod analyze;
mod bad_input;
mod hostile;
mod run;
mod server;
mod util;
