//! End-to-end tests live in `tests/`: they build and run the real binaries
//! (`earshotd` from earshot-device, `earshot` from earshot-host) together.
