//! End-to-end tests of natter's client API: each test starts its own server on port 0 with a
//! fresh database and talks to it over HTTP and WebSocket. One binary, so it links once.
//!
//! `NATTER_TEST_POSTGRES_URL=postgres://…/postgres` adds PostgreSQL runs of the key scenarios
//! (`cargo test -p natter --test api postgres`).

#[path = "../common/mod.rs"]
mod common;

mod abuse;
mod auth;
mod authz;
mod blocking;
mod conversations;
mod data_dir;
mod files;
mod friends;
mod hardening;
mod media_safety;
mod messages;
mod openapi;
mod robustness;
mod search;
mod search_catch_up;
mod search_reindex;
mod sessions_live;
mod speech;
mod sync;
mod users;
