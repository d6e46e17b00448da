//! The session an authenticated stream was opened with, checked again while the stream is
//! open: a logout or a ban taken by any node ends the stream on every node.
//!
//! The check is a point read of this node's meta replica, known fresh within the session lease
//! ([`crate::auth::session_is_live`]), every half lease: a stream ends at most one and a half
//! leases after its session did, for the cost of two point reads per lease per open stream
//! (streams are capped per node).
//!
//! Not done yet: the stream ends silently (the client sees the response end and, on
//! reconnecting, `401 UNAUTHORIZED`); no event names the reason.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use auction_raft::host::NodeStorage;
use tokio::time::Instant;

use crate::SharedApp;

/// Least time between two checks of one stream's session, whatever the lease.
const SESSION_CHECK_INTERVAL_MS_MIN: u64 = 50;

type Check = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

pub(crate) struct SessionCheck {
    check: Check,
    every: Duration,
    due: Instant,
}

impl SessionCheck {
    /// Checks `token_hash` on `app` every half session lease.
    pub(crate) fn new<S: NodeStorage>(app: &SharedApp<S>, token_hash: Vec<u8>) -> SessionCheck {
        let every_ms = (app.config.session_lease_ms / 2).max(SESSION_CHECK_INTERVAL_MS_MIN);
        let every = Duration::from_millis(every_ms);
        let app = app.clone();
        let token_hash: Arc<[u8]> = token_hash.into();
        let check: Check = Arc::new(move || {
            let (app, token_hash) = (app.clone(), token_hash.clone());
            Box::pin(async move { crate::auth::session_is_live(&app, &token_hash).await })
        });
        SessionCheck {
            check,
            every,
            due: Instant::now() + every,
        }
    }

    /// When the next check is due.
    pub(crate) fn due(&self) -> Instant {
        self.due
    }

    pub(crate) fn is_due(&self) -> bool {
        Instant::now() >= self.due
    }

    /// Whether the session still authenticates; schedules the next check.
    pub(crate) async fn still_live(&mut self) -> bool {
        self.due = Instant::now() + self.every;
        (self.check)().await
    }
}
