//! natter's domain: types, service logic and the ports it runs on.
//!
//! Owns the rules of accounts, friends, conversations and messages. Talks to the outside only
//! through ports ([`store::Store`], [`bus::Bus`], [`clock::Clock`], [`blob::BlobStore`], [`jobs::JobQueue`],
//! [`media::MediaInspector`]); it must not depend on sqlx,
//! axum, tonic or any concrete adapter.

pub mod api;
pub mod blob;
pub mod bus;
pub mod clock;
pub mod error;
pub mod fan_out;
pub mod ids;
pub mod jobs;
pub mod media;
pub mod model;
pub mod notify;
pub mod presence;
pub mod search;
pub mod service;
pub mod speech;
pub mod store;
pub mod wire;
