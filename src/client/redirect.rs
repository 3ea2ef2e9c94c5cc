//! Which redirects the client follows.

use http::Uri;
use tower_http::follow_redirect::policy::{Action, Attempt, Policy};

use super::{BoxError, Error};

/// Follows up to `max` redirects to `http` and `https` URLs; one more is an error. With `max`
/// zero, a redirect is returned to the caller as it is.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limit {
    max: usize,
    left: usize,
}

impl Limit {
    pub(crate) fn new(max: usize) -> Self {
        Self { max, left: max }
    }
}

impl<B> Policy<B, BoxError> for Limit {
    fn redirect(&mut self, attempt: &Attempt<'_>) -> Result<Action, BoxError> {
        if self.max == 0 || !is_web(attempt.location()) {
            return Ok(Action::Stop);
        }
        if self.left == 0 {
            return Err(Error::too_many_redirects(self.max, attempt.location()).into());
        }
        self.left -= 1;
        Ok(Action::Follow)
    }
}

fn is_web(uri: &Uri) -> bool {
    matches!(uri.scheme_str(), Some("http" | "https"))
}
