//! natter's bus adapters: how a committed change reaches every process that holds a socket of one
//! of its recipients.
//!
//! This crate owns two implementations of the port [`natter_core::bus::Bus`]:
//!
//! * [`MemoryBus`], the in-process default for a single `natter serve`: a tokio broadcast channel.
//! * [`NatsBus`], for a cluster, in the encoding described in [`codec`]: `<prefix>.events`
//!   reaches every node (broadcast delivery, and session revocations always), `<prefix>.gw.<node>`
//!   one node's gateway (targeted delivery: the publisher looked the recipients up in the route
//!   table), `<prefix>.log` the consumers of every log entry (the search indexer) when delivery
//!   is targeted.
//!
//! It also owns the adapters of the durable-jobs port ([`natter_core::jobs::JobQueue`]) in
//! [`jobs`]: in-process, and NATS JetStream (a work-queue stream, at-least-once).
//!
//! The two buses are allowed to miss (a lagging subscriber, a broken NATS connection): storage is the source
//! of truth and clients repair gaps by `seq`. So neither buffers durably nor retries.
//!
//! Architecture invariant: this crate depends on `natter-core` (for the port and ids) and on
//! nothing else of natter's. It knows nothing of storage, HTTP or the frames it carries; it must
//! not depend on `natter-store`, `natter-gateway`, sqlx, axum or tonic.

pub mod codec;
pub mod jobs;
mod memory;
mod nats;

pub use memory::MemoryBus;
pub use nats::NatsBus;
