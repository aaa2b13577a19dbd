//! The OpenAPI document as a client generator reads it: every reference resolves, the errors the
//! gateway gives to any call are documented on each, and the schemas carry the server's limits.

use natter_core::service::rules;
use serde_json::Value;

use crate::common::spawn_app;

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Every `$ref` string in `value`, with the JSON pointer where it occurs.
fn references<'a>(value: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("$ref", Value::String(target)) => out.push((at.clone(), target)),
                    _ => references(child, format!("{at}/{key}"), out),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                references(item, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

async fn document() -> Value {
    let app = spawn_app().await;
    let response = app.get_root("/openapi.json").await;
    response.expect_status(200);
    response.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reference_resolves() {
    let document = document().await;
    let mut found = Vec::new();
    references(&document, String::new(), &mut found);
    assert!(found.len() > 50, "the document uses references: {}", found.len());
    let dangling: Vec<String> = found
        .iter()
        .filter(|(_, target)| target.strip_prefix('#').is_none_or(|pointer| document.pointer(pointer).is_none()))
        .map(|(at, target)| format!("{at} → {target}"))
        .collect();
    assert!(dangling.is_empty(), "dangling references:\n{}", dangling.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn common_errors_are_documented_on_every_operation() {
    let document = document().await;
    let global_security = document["security"].as_array().cloned().unwrap_or_default();
    let paths = document["paths"].as_object().expect("paths");
    let mut missing = Vec::new();
    let mut anonymous = Vec::new();
    for (path, item) in paths {
        for method in METHODS {
            let Some(operation) = item.get(method) else { continue };
            let what = format!("{} {path}", method.to_uppercase());
            let security = operation.get("security").and_then(Value::as_array).unwrap_or(&global_security);
            let authenticated =
                !security.is_empty() && security.iter().all(|r| r.as_object().is_some_and(|r| !r.is_empty()));
            let responses = operation["responses"].as_object().expect("responses");
            let mut expect = |status: &str, why: &str| {
                if !responses.contains_key(status) {
                    missing.push(format!("{what}: {status} ({why})"));
                } else if responses[status]["content"]["application/json"]["schema"]["$ref"]
                    != "#/components/schemas/ErrorBody"
                {
                    missing.push(format!("{what}: {status} without the ErrorBody schema"));
                }
            };
            if authenticated {
                expect("401", "needs a token");
            } else {
                anonymous.push(what.clone());
            }
            let content = &operation["requestBody"]["content"];
            if content.get("application/json").is_some() {
                expect("400", "JSON body");
                expect("413", "JSON body");
                expect("415", "JSON body");
            }
        }
    }
    assert!(missing.is_empty(), "undocumented answers:\n{}", missing.join("\n"));
    anonymous.sort();
    assert_eq!(
        anonymous,
        ["POST /api/v1/auth/login", "POST /api/v1/auth/refresh", "POST /api/v1/auth/register"],
        "only these take no token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_carry_the_servers_limits() {
    let document = document().await;
    let schemas = &document["components"]["schemas"];
    let property = |schema: &str, name: &str| schemas[schema]["properties"][name].clone();
    let limits = |schema: &str, name: &str| {
        let p = property(schema, name);
        (p["minLength"].as_u64(), p["maxLength"].as_u64())
    };
    let n = |value: usize| Some(value as u64);

    assert!(schemas["RegisterRequest"].is_object(), "RegisterRequest is a component: {schemas}");
    let username = property("RegisterRequest", "username");
    assert_eq!(limits("RegisterRequest", "username"), (n(rules::USERNAME_MIN), n(rules::USERNAME_MAX)));
    let pattern = username["pattern"].as_str().expect("a username pattern");
    assert_eq!(pattern, "^[A-Za-z0-9][A-Za-z0-9_.-]*$");
    for (valid, name) in [(true, "a.b-c_9"), (false, "_alice"), (false, "al ice")] {
        assert_eq!(rules::check_username(name).is_ok(), valid, "{name}: the rule agrees with the pattern");
    }
    assert_eq!(limits("RegisterRequest", "password"), (n(rules::PASSWORD_MIN), n(rules::PASSWORD_MAX)));
    assert_eq!(limits("ChangePasswordRequest", "new_password"), (n(rules::PASSWORD_MIN), n(rules::PASSWORD_MAX)));
    assert_eq!(limits("RegisterRequest", "nickname"), (n(1), n(rules::NICKNAME_MAX)));
    assert_eq!(limits("UpdateProfileRequest", "nickname"), (n(1), n(rules::NICKNAME_MAX)));
    assert_eq!(limits("UpdateProfileRequest", "bio").1, n(rules::BIO_MAX));
    assert_eq!(limits("LoginRequest", "device_name").1, n(rules::DEVICE_NAME_MAX));
    assert_eq!(limits("CreateConversationRequest", "name"), (n(1), n(rules::GROUP_NAME_MAX)));
    assert_eq!(limits("UpdateConversationRequest", "announcement").1, n(rules::ANNOUNCEMENT_MAX));
    assert_eq!(limits("CreateFriendRequest", "message").1, n(rules::FRIEND_MESSAGE_MAX));
    assert_eq!(limits("SendMessageRequest", "client_msg_id"), (n(1), n(rules::CLIENT_MSG_ID_MAX)));
    assert_eq!(property("SendMessageRequest", "mentions")["maxItems"].as_u64(), n(rules::MENTIONS_MAX));
    assert_eq!(
        property("SendMessageRequest", "kind")["enum"],
        serde_json::json!(["text", "image", "file", "voice"]),
        "the kinds a client may send"
    );

    // The `{seq}` of the message operations is an integer.
    let paths = document["paths"].as_object().expect("paths");
    let mut seq_operations = 0;
    for (path, item) in paths.iter().filter(|(path, _)| path.contains("{seq}")) {
        for method in METHODS {
            let Some(operation) = item.get(method) else { continue };
            let parameters = operation["parameters"].as_array().expect("parameters");
            let seq = parameters.iter().find(|p| p["name"] == "seq").expect("a seq parameter");
            assert_eq!(seq["schema"]["type"], "integer", "{method} {path}: {seq}");
            seq_operations += 1;
        }
    }
    assert_eq!(seq_operations, 4, "edit, recall and the two reaction calls");
}
