//! Request tracing across nodes: the HTTP request id of the request a write belongs to, the W3C
//! `traceparent` that joins one write's spans on two nodes into one trace, and the handle that
//! lets the leader's apply of a write be a child of the proposal that carried it.
//!
//! Three ids, never conflated:
//! - the write's [`RequestId`] (in the replicated command): the de-duplication id of the state
//!   machine, the bid id; it is chosen per write and kept across internal retries;
//! - the *HTTP request id* (`X-Request-Id`, a bounded printable string): for people reading logs
//!   and error bodies. It is a field of every span of the request and travels to the leader in
//!   the `request_id` field of a forwarded item, never in the replicated command;
//! - the *trace context* (`traceparent`): for a tracing backend. It travels in the `traceparent`
//!   field of a forwarded item and is empty unless spans are exported.
//!
//! All of it is off at no cost unless the node exports spans ([`set_exporting`], set by the
//! node's logging set-up when `OTEL_EXPORTER_OTLP_ENDPOINT` is given): no context is injected or
//! extracted and no apply handle is kept. The HTTP request id is cheap (an `Arc<str>` in a
//! task-local) and always on, because logs want it even without a tracing backend.
//!
//! Not done yet: the followers' applies of a write are not part of its trace (only the leader
//! knows the proposal's context; followers learn the command from the log, which does not carry
//! it); forwarded read barriers and budget asks carry no trace context.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use auction_statemachine::RequestId;
use opentelemetry::propagation::{Extractor, Injector};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Longest HTTP request id accepted from a client or a peer; longer ones are replaced.
pub const REQUEST_ID_LEN_MAX: usize = 128;
/// Longest `traceparent` accepted from a peer (a version-00 one has 55 characters).
pub const TRACEPARENT_LEN_MAX: usize = 256;
/// Writes whose leader-side trace handles are kept at once at most; beyond it a write's apply
/// is simply not traced (tracing must never hold memory the node needs).
pub const APPLY_TRACES_MAX: usize = 4_096;

/// The W3C trace-context header and field name.
const TRACEPARENT: &str = "traceparent";

static EXPORTING: AtomicBool = AtomicBool::new(false);

tokio::task_local! {
    static REQUEST: Arc<str>;
}

/// Turns trace-context propagation and apply tracing on (the node exports spans) or off.
pub fn set_exporting(on: bool) {
    EXPORTING.store(on, Ordering::Relaxed);
}

/// Whether spans are exported by this process.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Whether `text` may serve as an HTTP request id: 1 to [`REQUEST_ID_LEN_MAX`] visible ASCII
/// characters (no spaces or control characters, so it cannot break a log line or a header).
pub fn is_sane_request_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= REQUEST_ID_LEN_MAX
        && text.bytes().all(|byte| byte.is_ascii_graphic())
}

/// Runs `future` with `request_id` as the HTTP request id of everything it does on this task.
pub async fn with_request_id<F: Future>(request_id: Arc<str>, future: F) -> F::Output {
    REQUEST.scope(request_id, future).await
}

/// The HTTP request id of the request this task serves, if any.
pub fn current_request_id() -> Option<Arc<str>> {
    REQUEST.try_with(Arc::clone).ok()
}

struct OneHeader<'a>(&'a str);

impl Extractor for OneHeader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT).then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

#[derive(Default)]
struct Captured(Option<String>);

impl Injector for Captured {
    fn set(&mut self, key: &str, value: String) {
        if key == TRACEPARENT {
            self.0 = Some(value);
        }
    }
}

/// The `traceparent` of `span`, for a peer; empty when spans are not exported.
pub fn traceparent_of(span: &Span) -> String {
    if !exporting() {
        return String::new();
    }
    let context = span.context();
    let mut captured = Captured::default();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut captured)
    });
    captured.0.unwrap_or_default()
}

/// Makes `span` a child of the remote span `traceparent` names (from a peer or an HTTP
/// client). Nothing happens when spans are not exported or the text is empty or too long; an
/// unparsable one leaves `span` a root.
pub fn set_remote_parent(span: &Span, traceparent: &str) {
    if !exporting() || traceparent.is_empty() || traceparent.len() > TRACEPARENT_LEN_MAX {
        return;
    }
    let context = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&OneHeader(traceparent))
    });
    // Only fails when no OpenTelemetry layer is installed, which `exporting` rules out; a
    // span that stays a root is harmless either way.
    let _ = span.set_parent(context);
}

/// What the leader keeps about a write it proposed until it applies it: the span of its
/// proposal (the apply's parent) and its HTTP request id.
#[derive(Clone)]
pub struct WriteTrace {
    pub span: Span,
    pub request_id: Option<Arc<str>>,
}

/// The leader's handles of writes proposed and not yet applied, by their request id. Bounded by
/// [`APPLY_TRACES_MAX`]; used only while spans are exported.
#[derive(Default)]
pub struct ApplyTraces {
    writes: Mutex<HashMap<RequestId, WriteTrace>>,
}

impl ApplyTraces {
    fn writes(&self) -> std::sync::MutexGuard<'_, HashMap<RequestId, WriteTrace>> {
        // A std mutex: a map insert or remove, never held across an await.
        self.writes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers `trace` for the apply of `request_id`; false (nothing kept) when spans are
    /// not exported or the table is full.
    pub fn register(&self, request_id: RequestId, trace: WriteTrace) -> bool {
        if !exporting() || trace.span.is_disabled() {
            return false;
        }
        let mut writes = self.writes();
        if writes.len() >= APPLY_TRACES_MAX {
            return false;
        }
        writes.insert(request_id, trace);
        true
    }

    /// Takes the handle of `request_id`'s proposal, if this node proposed it and kept one.
    pub fn take(&self, request_id: RequestId) -> Option<WriteTrace> {
        if !exporting() {
            return None;
        }
        self.writes().remove(&request_id)
    }

    /// Forgets `request_id` (its proposal was answered, applied or not).
    pub fn forget(&self, request_id: RequestId) {
        self.writes().remove(&request_id);
    }

    pub fn len(&self) -> usize {
        self.writes().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_bounded_visible_ascii() {
        assert!(is_sane_request_id("abc-123_XYZ.:/"));
        assert!(!is_sane_request_id(""));
        assert!(!is_sane_request_id("has space"));
        assert!(!is_sane_request_id("tab\tin"));
        assert!(!is_sane_request_id("ünï"));
        assert!(is_sane_request_id(&"x".repeat(REQUEST_ID_LEN_MAX)));
        assert!(!is_sane_request_id(&"x".repeat(REQUEST_ID_LEN_MAX + 1)));
    }

    #[tokio::test]
    async fn the_request_id_is_scoped_to_its_task() {
        assert_eq!(current_request_id(), None);
        let seen = with_request_id(Arc::from("r-1"), async { current_request_id() }).await;
        assert_eq!(seen.as_deref(), Some("r-1"));
        assert_eq!(current_request_id(), None);
    }

    #[test]
    fn nothing_is_kept_or_propagated_unless_exporting() {
        set_exporting(false);
        let traces = ApplyTraces::default();
        let trace = WriteTrace {
            span: Span::none(),
            request_id: None,
        };
        assert!(!traces.register(RequestId(uuid::Uuid::nil()), trace));
        assert!(traces.is_empty());
        assert_eq!(traceparent_of(&Span::current()), "");
    }
}
