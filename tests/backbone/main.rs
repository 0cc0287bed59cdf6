//! End-to-end tests: real MQTT brokers, real SQLite files, fake camera-system servers written from VENDORS.md.

mod bad_input;
mod crash;
mod fake_nx;
mod flow;
mod genetec;
mod milestone;
mod nx_legacy;
mod outage;
mod rhombus;
mod support;
mod verkada;
mod webhook;
