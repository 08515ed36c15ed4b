mod analyze;
mod bad_input;
mod capture;
mod hostile;
mod lights;
mod run;
mod server;
mod util;
