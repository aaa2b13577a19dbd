//! The OpenAPI document, generated from the handlers' annotations and the wire types.

use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

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
    components(schemas(natter_proto::ClientFrame, natter_proto::ServerFrame, natter_proto::ErrorBody)),
    modifiers(&BearerAuth, &CommonErrors),
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

/// The calls that take no access token.
const ANONYMOUS: [&str; 3] = ["/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/auth/refresh"];

/// The answers every handler can give because of the gateway's extractors, added here once
/// rather than on each handler: `401` wherever a token is needed (and no security requirement
/// where none is), `400` wherever a body, path or query is parsed, `413` for bodies beyond the
/// limit and `415` for a JSON body sent as another type.
struct CommonErrors;

impl utoipa::Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let anonymous = ANONYMOUS.contains(&path.as_str());
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                document_common_errors(operation, anonymous);
            }
        }
    }
}

fn document_common_errors(operation: &mut Operation, anonymous: bool) {
    if anonymous {
        operation.security = Some(Vec::new());
    } else {
        add_error(operation, "401", "`unauthorized`: a missing, malformed, expired or revoked access token");
    }
    let has_parameters = operation.parameters.as_ref().is_some_and(|parameters| !parameters.is_empty());
    let takes_json = operation.request_body.as_ref().map(|body| body.content.contains_key("application/json"));
    if takes_json.is_some() || has_parameters {
        add_error(operation, "400", "an unreadable body, path or query, or input the rules refuse (see docs/API.md)");
    }
    if takes_json == Some(true) {
        add_error(operation, "413", "`payload_too_large`: a body beyond `limits.max_body_bytes`");
        add_error(operation, "415", "`unsupported_media_type`: a body that is not `Content-Type: application/json`");
    }
}

/// Adds an `ErrorBody` answer for `status`, unless the handler documents it itself.
fn add_error(operation: &mut Operation, status: &str, description: &str) {
    operation.responses.responses.entry(status.to_owned()).or_insert_with(|| {
        let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
        RefOr::T(ResponseBuilder::new().description(description).content("application/json", content).build())
    });
}
