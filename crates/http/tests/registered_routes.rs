//! Every handler the app registers is in the OpenAPI document, and every
//! documented operation is registered: read from the two lists in the source,
//! so that adding a route to one and not the other fails here. (The e2e
//! `surface` test then calls every documented route on a live server.)

use std::collections::BTreeSet;

fn source(file: &str) -> String {
    std::fs::read_to_string(format!("{}/src/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// `module::handler` names inside `.service(...)` calls of `configure` and `metrics_app`.
fn registered() -> BTreeSet<String> {
    let app = source("app.rs");
    app.match_indices(".service(")
        .map(|(i, _)| {
            let rest = &app[i + ".service(".len()..];
            rest[..rest.find(')').unwrap()].trim().to_owned()
        })
        .filter(|name| !name.starts_with("SwaggerUi"))
        .collect()
}

/// The handlers listed in `#[openapi(paths(...))]`.
fn documented() -> BTreeSet<String> {
    let doc = source("openapi.rs");
    let start = doc.find("paths(").unwrap() + "paths(".len();
    let end = start + doc[start..].find(')').unwrap();
    doc[start..end].split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

#[test]
fn the_registered_handlers_are_the_documented_ones() {
    let (registered, documented) = (registered(), documented());
    assert!(registered.len() > 20, "the source was read: {registered:?}");
    let undocumented: Vec<_> = registered.difference(&documented).collect();
    let unregistered: Vec<_> = documented.difference(&registered).collect();
    assert!(undocumented.is_empty(), "registered but not in the OpenAPI document: {undocumented:?}");
    assert!(unregistered.is_empty(), "documented but never registered: {unregistered:?}");
}
