//! natter's chat services over gRPC (tonic).
//!
//! A chat node serves [`server::serve`]; a gateway holds a [`ChatClient`], which implements every
//! interface of `natter_core::api` by calling live chat nodes. Arguments and answers are the
//! domain's serde types as JSON in gRPC messages ([`codec`], [`wire`]); a domain error crosses as
//! a status whose details carry it whole.

pub mod client;
pub mod codec;
pub mod server;
pub mod wire;

pub use client::{ChatClient, ClientSettings};
