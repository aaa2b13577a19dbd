//! The OpenAPI document, generated from the handlers' annotations and the wire types.

use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::routes::*;

#[derive(OpenApi)]
#[openapi(
    info(title = "natter", description = "natter's client API. WebSocket protocol: docs/API.md."),
    paths(
        register, login, refresh, logout, sessions, revoke_session,
        me, update_me, change_password, get_user, search,
        create_request, list_requests, accept, reject, cancel, list_friends, remove_friend, block, unblock, list_blocks,
        list, create, get, update, dissolve, members, add_members, update_member, remove_member,
        send, history, mark_read, edit, recall, add_reaction, remove_reaction,
        upload, download, meta, thumbnail,
        search_messages,
        crate::ws::upgrade,
        crate::routes::speech::transcribe,
    ),
    components(schemas(natter_proto::ClientFrame, natter_proto::ServerFrame)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}
