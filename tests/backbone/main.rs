//! End-to-end tests of the backbone: real MQTT brokers, real SQLite files, a fake Nx Witness server.

mod bad_input;
mod crash;
mod fake_nx;
mod flow;
mod nx_legacy;
mod outage;
mod rhombus;
mod support;
mod webhook;
