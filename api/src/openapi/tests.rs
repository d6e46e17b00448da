//! The document names exactly the routes the router serves, and is well-formed enough for a
//! client generator: every operation has a success answer, every `$ref` resolves, every path
//! parameter is declared.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::document;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

/// `/a/{id}/b` and `/a/{auctionId}/b` name the same route.
fn normalize(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "{}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn documented() -> BTreeSet<(String, String)> {
    let paths = document()["paths"].as_object().expect("paths");
    let mut found = BTreeSet::new();
    for (path, item) in paths {
        for method in item.as_object().expect("a path item").keys() {
            if METHODS.contains(&method.as_str()) {
                found.insert((method.clone(), normalize(path)));
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The index just past the `)` that closes an argument list starting at `text[0]`'s level,
/// skipping string literals.
fn closing_paren(text: &str) -> usize {
    let (mut depth, mut in_string, mut escaped) = (1usize, false, false);
    for (index, byte) in text.bytes().enumerate() {
        match (in_string, byte) {
            (true, b'\\') if !escaped => escaped = true,
            (true, b'"') if !escaped => in_string = false,
            (true, _) => escaped = false,
            (false, b'"') => in_string = true,
            (false, b'(') => depth += 1,
            (false, b')') => {
                depth -= 1;
                if depth == 0 {
                    return index;
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced route call");
}

/// `(method, path)` of every route call in `source`: a path literal, then handlers such as
/// `get(list).post(create)`.
fn routes_in(source: &str, file: &Path) -> Vec<(String, String)> {
    // Built from pieces so this file's own text does not look like a route.
    let route = concat!(".rou", "te(");
    for unsupported in [
        concat!(".ne", "st("),
        concat!(".nest_", "service("),
        concat!(".route_", "service("),
    ] {
        assert!(
            !source.contains(unsupported),
            "{}: `{unsupported}` is not understood by this check; extend it",
            file.display()
        );
    }
    let mut found = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find(route) {
        let after = &rest[at + route.len()..];
        let end = closing_paren(after);
        let args = &after[..end];
        rest = &after[end..];
        let Some(literal) = args.trim_start().strip_prefix('"') else {
            continue; // prose, not a call
        };
        let path = &literal[..literal.find('"').expect("a closed path literal")];
        let handlers = &literal[path.len() + 1..];
        let mut methods = 0;
        for method in METHODS.iter().chain(["any"].iter()) {
            let call = format!("{method}(");
            let mut from = 0;
            while let Some(offset) = handlers[from..].find(&call) {
                let index = from + offset;
                let before = handlers[..index].chars().next_back();
                if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_')) {
                    assert_ne!(
                        *method, "any",
                        "{path}: `any` is not understood by this check"
                    );
                    found.push(((*method).to_owned(), normalize(path)));
                    methods += 1;
                }
                from = index + call.len();
            }
        }
        assert!(
            methods > 0,
            "{}: no method found for {path}",
            file.display()
        );
    }
    found
}

fn routed() -> BTreeSet<(String, String)> {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut found = BTreeSet::new();
    for file in files {
        let source = std::fs::read_to_string(&file).expect("source");
        for route in routes_in(&source, &file) {
            assert!(found.insert(route.clone()), "{route:?} is routed twice");
        }
    }
    found
}

#[test]
fn the_document_and_the_router_name_the_same_routes() {
    let routed = routed();
    let documented = documented();
    assert!(routed.len() >= 40, "found only {} routes", routed.len());
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not documented: {undocumented:?}; documented but not served: {unserved:?}"
    );
}

#[test]
fn the_route_scanner_reads_chained_methods_and_skips_prose() {
    let source = concat!(
        "// calls .rou",
        "te(...) on the router\n",
        "Router::new().rou",
        "te(\"/a/{id}\", get(h::<S>).post(|| async { json!({\"x\": 1}) }))\n",
        ".rou",
        "te(\"/b\", delete(budget))",
    );
    let found = routes_in(source, Path::new("example.rs"));
    assert_eq!(
        found,
        vec![
            ("get".to_owned(), "/a/{}".to_owned()),
            ("post".to_owned(), "/a/{}".to_owned()),
            ("delete".to_owned(), "/b".to_owned()),
        ]
    );
}

fn operations() -> Vec<(String, String, &'static Value)> {
    let mut found = Vec::new();
    for (path, item) in document()["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("item") {
            if METHODS.contains(&method.as_str()) {
                found.push((method.clone(), path.clone(), operation));
            }
        }
    }
    found
}

#[test]
fn every_operation_declares_its_path_parameters_and_a_success() {
    for (method, path, operation) in operations() {
        let parameters = operation["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for name in path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        {
            assert!(
                parameters
                    .iter()
                    .any(|parameter| parameter["name"] == name && parameter["in"] == "path"),
                "{method} {path}: path parameter {name} is not declared"
            );
        }
        let responses = operation["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|status| status.starts_with('2')),
            "{method} {path}: no success answer"
        );
    }
}

fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                out.push(target.clone());
            }
            map.values().for_each(|inner| refs(inner, out));
        }
        Value::Array(items) => items.iter().for_each(|inner| refs(inner, out)),
        _ => {}
    }
}

#[test]
fn every_reference_resolves_and_the_security_schemes_exist() {
    let document = document();
    let mut targets = Vec::new();
    refs(document, &mut targets);
    assert!(!targets.is_empty());
    for target in targets {
        let name = target
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {target}"));
        assert!(
            document["components"]["schemas"][name].is_object(),
            "{target} does not resolve"
        );
    }
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["cookie"]["name"], "session");
    assert_eq!(schemes["adminToken"]["name"], "X-Admin-Token");
    let error = &document["components"]["schemas"]["ErrorBody"];
    assert_eq!(error["required"], serde_json::json!(["error", "message"]));
}

#[test]
fn bids_resume_headers_and_bodies_are_described() {
    let document = document();
    let bid = &document["paths"]["/api/v1/auctions/{id}/bids"]["post"];
    let names: Vec<&Value> = bid["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .map(|parameter| &parameter["name"])
        .collect();
    assert!(
        names.contains(&&Value::from("X-Idempotency-Key")),
        "{names:?}"
    );
    assert!(bid["requestBody"]["content"]["application/json"]["schema"].is_object());
    assert!(bid["responses"]["201"]["content"]["application/json"]["schema"].is_object());
    assert!(bid["responses"]["409"]["content"]["application/json"]["schema"].is_object());
    for stream in ["/api/v1/auctions/{id}/events", "/api/v1/users/me/events"] {
        let parameters = &document["paths"][stream]["get"]["parameters"];
        assert!(
            parameters
                .as_array()
                .expect("parameters")
                .iter()
                .any(
                    |parameter| parameter["name"] == "Last-Event-ID" && parameter["in"] == "header"
                ),
            "{stream}"
        );
        assert!(
            document["paths"][stream]["get"]["responses"]["200"]["content"]["text/event-stream"]
                .is_object()
        );
    }
    let listing = &document["paths"]["/api/v1/auctions"]["get"]["parameters"];
    for name in ["status", "sellerId", "minPrice", "sort", "cursor", "limit"] {
        assert!(
            listing
                .as_array()
                .expect("parameters")
                .iter()
                .any(|parameter| parameter["name"] == name),
            "listing parameter {name}"
        );
    }
}

#[test]
fn every_response_has_a_description() {
    for (method, path, operation) in operations() {
        for (status, response) in operation["responses"].as_object().expect("responses") {
            let description = response["description"].as_str().unwrap_or_default();
            assert!(!description.is_empty(), "{method} {path} {status}");
        }
    }
}

/// The bounds the document gives clients are the state machine's and the API's own limits, so
/// a fuzzer (or a client) that keeps to the document is refused only for rules that need state.
#[test]
fn request_bounds_in_the_document_are_the_enforced_limits() {
    use auction_statemachine::auction::listing;
    use auction_statemachine::meta;
    let schemas = &document()["components"]["schemas"];
    let bound = |schema: &str, field: &str, key: &str| {
        let property = &schemas[schema]["properties"][field];
        // An optional field is `oneOf: [null, T]` or carries its bounds itself.
        let found = property[key].as_u64().or_else(|| {
            property["oneOf"]
                .as_array()
                .into_iter()
                .flatten()
                .find_map(|variant| variant[key].as_u64())
        });
        found.unwrap_or_else(|| panic!("{schema}.{field} has no {key}: {property}"))
    };
    let as_u64 = |limit: usize| u64::try_from(limit).expect("small");
    let cases = [
        (
            "CreateBody",
            "title",
            "maxLength",
            as_u64(listing::TITLE_CHARS_MAX),
        ),
        (
            "CreateBody",
            "description",
            "maxLength",
            as_u64(listing::DESCRIPTION_CHARS_MAX),
        ),
        (
            "CreateBody",
            "category",
            "maxLength",
            as_u64(listing::CATEGORY_CHARS_MAX),
        ),
        (
            "CreateBody",
            "durationSeconds",
            "maximum",
            u64::try_from(listing::AUCTION_DURATION_MS_MAX / 1_000).expect("positive"),
        ),
        (
            "AntiSnipeBody",
            "windowSeconds",
            "maximum",
            u64::try_from(listing::ANTI_SNIPE_SECONDS_MAX).expect("positive"),
        ),
        (
            "Register",
            "email",
            "maxLength",
            as_u64(meta::EMAIL_CHARS_MAX),
        ),
        (
            "Register",
            "displayName",
            "maxLength",
            as_u64(meta::DISPLAY_NAME_CHARS_MAX),
        ),
        (
            "Register",
            "password",
            "minLength",
            as_u64(crate::auth::PASSWORD_CHARS_MIN),
        ),
        (
            "Register",
            "password",
            "maxLength",
            as_u64(crate::auth::PASSWORD_CHARS_MAX),
        ),
    ];
    for (schema, field, key, limit) in cases {
        assert_eq!(bound(schema, field, key), limit, "{schema}.{field} {key}");
    }
}
