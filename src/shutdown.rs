//! Shutdown as one value: the cancellation token every task watches and the
//! reason that running tests write into their log entries travel together.

use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

/// The server's shutdown signal and its reason. Cloning is cheap; every
/// clone sees the same signal.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    token: CancellationToken,
    reason: Arc<OnceLock<&'static str>>,
}

impl Shutdown {
    /// A shutdown that has not fired.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Fires the shutdown. The first reason given is kept; later ones are
    /// ignored, so a second signal cannot rewrite what tests log.
    pub fn trigger(&self, reason: &'static str) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    /// Whether the shutdown has fired.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes once the shutdown fires (at once if it already has).
    pub async fn triggered(&self) {
        self.token.cancelled().await;
    }

    /// The reason given to [`Shutdown::trigger`], or `default` when it fired
    /// without one (the token was cancelled directly) or has not fired.
    pub fn reason_or(&self, default: &'static str) -> &'static str {
        self.reason.get().copied().unwrap_or(default)
    }

    /// The underlying token, for APIs that take one (child tokens, graceful
    /// shutdown of HTTP connections).
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_reason_wins_and_every_clone_sees_it() {
        let a = Shutdown::new();
        let b = a.clone();
        assert!(!b.is_triggered());
        assert_eq!(b.reason_or("none"), "none");
        a.trigger("first");
        a.trigger("second");
        b.triggered().await;
        assert!(b.is_triggered());
        assert_eq!(b.reason_or("none"), "first");
    }

    #[tokio::test]
    async fn a_cancelled_token_without_reason_gives_the_default() {
        let s = Shutdown::new();
        s.token().cancel();
        s.triggered().await;
        assert_eq!(s.reason_or("default"), "default");
    }
}
