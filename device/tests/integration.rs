//! Integration tests: the real `earshotd` binary in temporary directories.
//! One test binary (modules below) so that it links once.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod it;
