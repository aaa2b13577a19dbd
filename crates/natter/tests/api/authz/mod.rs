//! The authorization matrix: every operation of the server's own OpenAPI document × every kind of
//! caller that must be refused (no token, a garbage, expired, logged-out or refresh token;
//! another user; a non-member; a removed member; a blocked pair; a member without the role) →
//! the expected answer, plus the callers who may. A refused caller who must not learn that a
//! thing exists gets exactly the answer (status and body) of the same call naming an unknown id.
//!
//! The document decides what is covered: an operation without a row fails the test, and so does
//! a row whose operation the document no longer has.

mod case;
mod run;
mod table;
mod visibility;
mod world;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde_json::Value;

use self::case::{Kind, Row};
use self::run::Outcome;
use self::world::{JWT_SECRET, World};
use crate::common::{Backend, TestApp, on_both_backends, spawn_app_on_with};

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

async fn authorization_matrix(backend: Backend) {
    let started = Instant::now();
    let app = spawn_app_on_with(backend, |config| config.auth.jwt_secret = JWT_SECRET.into()).await;
    let rows = table::rows();
    check_coverage(&app, &rows).await;

    let world = World::build(&app).await;
    let mut outcomes = Vec::new();
    for row in &rows {
        outcomes.extend(run::run_row(&app, &world, row).await);
    }
    outcomes.extend(run::run_frames(&app, &world).await);
    outcomes.extend(run::run_ops(&app, &world).await);
    outcomes.extend(visibility::run_visibility(&app, &world).await);
    report(&outcomes, rows.len(), started);
}

on_both_backends!(authorization_matrix);

/// The document's operations (`METHOD path` → whether a token is needed) against the table's.
async fn check_coverage(app: &TestApp, rows: &[Row]) {
    let answer = app.get_root("/openapi.json").await;
    answer.expect_status(200);
    let document = answer.body;
    let global_security = document["security"].as_array().cloned().unwrap_or_default();
    let mut operations = BTreeMap::new();
    for (path, item) in document["paths"].as_object().expect("the document has paths") {
        for method in METHODS {
            let Some(operation) = item.get(method) else { continue };
            let security = operation.get("security").and_then(Value::as_array).unwrap_or(&global_security);
            let needs_token =
                !security.is_empty() && security.iter().all(|r| r.as_object().is_some_and(|r| !r.is_empty()));
            operations.insert((method.to_uppercase(), path.clone()), needs_token);
        }
    }
    assert!(operations.len() >= 40, "the document lists the API: {} operations", operations.len());

    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for row in rows {
        let key = row.key();
        let what = format!("{} {}", key.0, key.1);
        if !seen.insert(key.clone()) {
            problems.push(format!("{what}: two rows"));
        }
        match operations.get(&key) {
            None => problems.push(format!("{what}: a row for an operation the document does not have")),
            Some(&needs_token) if needs_token == row.public.is_some() => problems.push(format!(
                "{what}: the document says {}, the row {}",
                if needs_token { "a token is needed" } else { "public" },
                if row.public.is_some() { "public" } else { "a token is needed" },
            )),
            Some(_) => {}
        }
        if row.public.is_none() && !row.cases.iter().any(|case| case.kind == Kind::Allowed) {
            problems.push(format!("{what}: no allowed caller, so nothing shows its request is valid"));
        }
    }
    for (method, path) in operations.keys() {
        if !seen.contains(&(method.clone(), path.clone())) {
            problems.push(format!("{method} {path}: no expectation row (add one to tests/api/authz/table.rs)"));
        }
    }
    assert!(problems.is_empty(), "the matrix does not match the OpenAPI document:\n{}", problems.join("\n"));
}

fn report(outcomes: &[Outcome], rows: usize, started: Instant) {
    let mut by_kind: BTreeMap<Kind, (usize, usize)> = BTreeMap::new();
    for outcome in outcomes {
        let entry = by_kind.entry(outcome.kind).or_default();
        entry.0 += 1;
        entry.1 += usize::from(outcome.failure.is_none());
    }
    let failures: Vec<String> =
        outcomes.iter().filter_map(|o| o.failure.as_ref().map(|failure| format!("  {}: {failure}", o.what))).collect();
    let passed = outcomes.len() - failures.len();
    println!(
        "authorization matrix: {rows} operations of the OpenAPI document, {} root endpoints, 3 WebSocket request \
         frames, and what removed members, late joiners and outsiders see",
        table::OPS.len()
    );
    for (kind, (run, ok)) in &by_kind {
        println!("  {:>4} cases, {:>4} as expected: {}", run, ok, kind.label());
    }
    println!(
        "authorization matrix: {} cases run, {passed} as expected ({:.1} %), in {:.1} s",
        outcomes.len(),
        100.0 * passed as f64 / outcomes.len() as f64,
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases not as expected:\n{}",
        failures.len(),
        outcomes.len(),
        failures.join("\n")
    );
}
