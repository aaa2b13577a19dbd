//! natter's benchmark: a load generator that drives natter and its baselines (a bare
//! WebSocket ceiling, NATS, Synapse) with the same real WebSocket/HTTP clients, and the report.
//!
//! Depends on natter-proto only (it speaks the public client contract, like any client) and
//! starts every server it measures as a separate process, so that their CPU and memory can be
//! read from `/proc` and nothing of the load generator runs inside them.

pub mod bars;
pub mod ceiling;
pub mod chaos;
pub mod check;
pub mod guard;
pub mod measure;
pub mod nats;
pub mod natter;
pub mod payload;
pub mod procs;
pub mod ratios;
pub mod report;
pub mod run;
pub mod scenarios;
pub mod services;
pub mod synapse;
pub mod system;
pub mod wsclient;
