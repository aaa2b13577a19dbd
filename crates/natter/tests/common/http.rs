//! Raw JSON requests and their answers.

use reqwest::{Method, RequestBuilder};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{TestApp, TestUser};

/// One HTTP answer: status, body parsed as JSON (`Null` when empty, a string when not JSON), and
/// the request it answers, for failure messages.
#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) what: String,
    pub(crate) status: u16,
    pub(crate) content_type: Option<String>,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) text: String,
    pub(crate) body: Value,
}

impl Resp {
    /// A header of the answer, if it is there and readable.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Asserts the status and decodes the body as `T`.
    #[track_caller]
    pub(crate) fn expect<T: DeserializeOwned>(self, status: u16) -> T {
        self.expect_status(status);
        serde_json::from_value(self.body.clone()).unwrap_or_else(|error| {
            panic!(
                "{}: body does not decode as {}: {error}\nbody: {}",
                self.what,
                std::any::type_name::<T>(),
                self.text
            )
        })
    }

    /// Asserts a 2xx status and decodes the body as `T` (where the contract fixes the body but
    /// not whether it is 200 or 201).
    #[track_caller]
    pub(crate) fn expect_ok<T: DeserializeOwned>(self) -> T {
        self.expect_success();
        let status = self.status;
        self.expect(status)
    }

    #[track_caller]
    pub(crate) fn expect_status(&self, status: u16) -> &Resp {
        assert_eq!(
            self.status, status,
            "{}: expected status {status}, got {} with body {}",
            self.what, self.status, self.text
        );
        self
    }

    /// Asserts any 2xx status (for endpoints whose success body the contract leaves open).
    #[track_caller]
    pub(crate) fn expect_success(&self) -> &Resp {
        assert!(
            (200..300).contains(&self.status),
            "{}: expected success, got {} with body {}",
            self.what,
            self.status,
            self.text
        );
        self
    }

    /// Asserts the status and the error code, and that the body has the error shape.
    #[track_caller]
    pub(crate) fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.code()),
            (status, Some(code)),
            "{}: expected {status} {code}, got {} with body {}",
            self.what,
            self.status,
            self.text
        );
        self.expect_error_shape();
    }

    /// Asserts a 4xx status and the error code, where the contract does not fix the status.
    #[track_caller]
    pub(crate) fn expect_client_error(&self, code: &str) {
        assert!(
            (400..500).contains(&self.status) && self.code() == Some(code),
            "{}: expected a 4xx with code {code}, got {} with body {}",
            self.what,
            self.status,
            self.text
        );
        self.expect_error_shape();
    }

    /// Asserts the status and that the code is one of `codes`.
    #[track_caller]
    pub(crate) fn expect_error_in(&self, status: u16, codes: &[&str]) {
        assert!(
            self.status == status && self.code().is_some_and(|code| codes.contains(&code)),
            "{}: expected {status} with a code in {codes:?}, got {} with body {}",
            self.what,
            self.status,
            self.text
        );
        self.expect_error_shape();
    }

    /// Asserts a 400 with a well-formed error body. Input rules answer with codes of their own
    /// (`invalid_nickname`, `empty_text`, …) that the contract does not list.
    #[track_caller]
    pub(crate) fn expect_bad_request(&self) {
        assert!(
            self.status == 400 && self.code().is_some_and(|code| !code.is_empty()),
            "{}: expected 400 with an error code, got {} with body {}",
            self.what,
            self.status,
            self.text
        );
        self.expect_error_shape();
    }

    /// Asserts a 4xx with a well-formed error body, whatever its code.
    #[track_caller]
    pub(crate) fn expect_any_client_error(&self) {
        assert!(
            (400..500).contains(&self.status),
            "{}: expected a 4xx, got {} with body {}",
            self.what,
            self.status,
            self.text
        );
        self.expect_error_shape();
    }

    pub(crate) fn code(&self) -> Option<&str> {
        self.body.pointer("/error/code").and_then(Value::as_str)
    }

    #[track_caller]
    fn expect_error_shape(&self) {
        let message = self.body.pointer("/error/message").and_then(Value::as_str);
        assert!(
            message.is_some_and(|message| !message.is_empty()),
            "{}: error body lacks error.message: {}",
            self.what,
            self.text
        );
    }
}

impl TestApp {
    /// A request under `/api/v1`, without credentials.
    pub(crate) fn api(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.api_url(path))
    }

    /// Sends a request built with [`TestApp::api`] (or by hand) and reads the whole answer.
    pub(crate) async fn send(&self, request: RequestBuilder) -> Resp {
        let request = request.build().expect("a well-formed request");
        let what = format!("{} {}", request.method(), request.url());
        let response =
            self.http.execute(request).await.unwrap_or_else(|error| panic!("{what}: request failed: {error}"));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_else(|error| panic!("{what}: reading the body failed: {error}"));
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()))
        };
        Resp { what, status, content_type, headers, text, body }
    }

    /// A request with optional bearer token and optional JSON body.
    pub(crate) async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> Resp {
        let mut request = self.api(method, path);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        self.send(request).await
    }

    pub(crate) async fn get(&self, user: &TestUser, path: &str) -> Resp {
        self.call(Method::GET, path, Some(&user.access_token), None).await
    }

    pub(crate) async fn get_query(&self, user: &TestUser, path: &str, query: &[(&str, &str)]) -> Resp {
        self.send(self.api(Method::GET, path).bearer_auth(&user.access_token).query(query)).await
    }

    pub(crate) async fn post(&self, user: &TestUser, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(&user.access_token), Some(&body)).await
    }

    /// POST without a body (accept, reject, cancel).
    pub(crate) async fn post_empty(&self, user: &TestUser, path: &str) -> Resp {
        self.call(Method::POST, path, Some(&user.access_token), None).await
    }

    pub(crate) async fn post_anonymous(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, None, Some(&body)).await
    }

    pub(crate) async fn patch(&self, user: &TestUser, path: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(&user.access_token), Some(&body)).await
    }

    pub(crate) async fn put(&self, user: &TestUser, path: &str, body: Value) -> Resp {
        self.call(Method::PUT, path, Some(&user.access_token), Some(&body)).await
    }

    /// PUT without a body (blocks, reactions).
    pub(crate) async fn put_empty(&self, user: &TestUser, path: &str) -> Resp {
        self.call(Method::PUT, path, Some(&user.access_token), None).await
    }

    pub(crate) async fn delete(&self, user: &TestUser, path: &str) -> Resp {
        self.call(Method::DELETE, path, Some(&user.access_token), None).await
    }

    /// GET at the server root (ops endpoints), without credentials.
    pub(crate) async fn get_root(&self, path: &str) -> Resp {
        self.send(self.http.get(self.root_url(path))).await
    }
}
