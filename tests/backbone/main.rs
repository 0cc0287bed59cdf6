//! End-to-end tests: real MQTT brokers, real SQLite files, fake camera-system servers written from VENDORS.md.

mod axis;
mod bad_input;
mod card_corpus;
mod chain;
mod crash;
mod drawer;
mod eagle_eye;
mod embedded;
mod fake_nx;
mod fakes;
mod flow;
mod frigate;
mod full_disk;
mod genetec;
mod metrics;
mod milestone;
mod mqtt_tls;
mod nx_legacy;
mod outage;
mod pacing;
mod private_postgres;
mod probe;
mod realtime;
mod rhombus;
mod safie;
mod sample_mosquitto;
mod search_index;
mod secrets;
mod shared;
mod signed;
mod support;
#[path = "../test_database/mod.rs"]
mod test_database;
mod verkada;
mod web_across;
mod webhook;
