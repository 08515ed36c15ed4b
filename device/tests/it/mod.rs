mod analyze;
mod bad_input;
mod capture;
mod hostile;
mod run;
mod server;
mod util;
