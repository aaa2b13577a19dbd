//! The route table. Handlers parse, authorize, call one service method and map the result.

mod accounts;
mod conversations;
pub(crate) mod files;
mod friends;
mod messages;
pub(crate) mod ops;
mod search;
pub(crate) mod speech;
mod users;

pub(crate) use accounts::*;
pub(crate) use conversations::*;
pub(crate) use files::*;
pub(crate) use friends::*;
pub(crate) use messages::*;
pub(crate) use search::*;
pub(crate) use users::*;

use axum::Router;
use axum::routing::{delete, get, post, put};

use crate::state::AppState;

pub(crate) fn api() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(accounts::register))
        .route("/auth/login", post(accounts::login))
        .route("/auth/refresh", post(accounts::refresh))
        .route("/auth/logout", post(accounts::logout))
        .route("/auth/sessions", get(accounts::sessions))
        .route("/auth/sessions/{id}", delete(accounts::revoke_session))
        .route("/users/me", get(users::me).patch(users::update_me))
        .route("/users/me/password", put(users::change_password))
        .route("/users/{id}", get(users::get_user))
        .route("/users", get(users::search))
        .route("/friend-requests", post(friends::create_request).get(friends::list_requests))
        .route("/friend-requests/{id}/accept", post(friends::accept))
        .route("/friend-requests/{id}/reject", post(friends::reject))
        .route("/friend-requests/{id}/cancel", post(friends::cancel))
        .route("/friends", get(friends::list_friends))
        .route("/friends/{user_id}", delete(friends::remove_friend))
        .route("/blocks", get(friends::list_blocks))
        .route("/blocks/{user_id}", put(friends::block).delete(friends::unblock))
        .route("/conversations", get(conversations::list).post(conversations::create))
        .route(
            "/conversations/{id}",
            get(conversations::get).patch(conversations::update).delete(conversations::dissolve),
        )
        .route("/conversations/{id}/members", get(conversations::members).post(conversations::add_members))
        .route(
            "/conversations/{id}/members/{user_id}",
            axum::routing::patch(conversations::update_member).delete(conversations::remove_member),
        )
        .route("/conversations/{id}/messages", post(messages::send).get(messages::history))
        .route("/conversations/{id}/read", post(messages::mark_read))
        .route("/conversations/{id}/messages/{seq}", axum::routing::patch(messages::edit).delete(messages::recall))
        .route(
            "/conversations/{id}/messages/{seq}/reactions/{emoji}",
            put(messages::add_reaction).delete(messages::remove_reaction),
        )
        .route("/search/messages", get(search::search_messages))
        .route(
            "/speech/transcriptions",
            // The handler enforces the audio size cap itself while reading the form.
            post(speech::transcribe).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/ws", get(crate::ws::upgrade))
}
