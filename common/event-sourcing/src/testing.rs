//! Given/when/then for aggregates: given these past events, when this command, then these new
//! events (or this refusal). One helper for every aggregate of every service.
//!
//! ```ignore
//! assert_eq!(given::<UserState>(&[created()]).when(assign(0.85)), Ok(vec![assigned()]));
//! ```

use crate::aggregate::{Aggregate, fold};

/// The state after `history`: the "given" of a test.
pub fn given<A: Aggregate>(history: &[A::Event]) -> Given<A> {
    Given(fold(history))
}

/// An aggregate rebuilt from past events, waiting for a command.
#[derive(Debug, Clone)]
pub struct Given<A>(pub A);

impl<A: Aggregate> Given<A> {
    /// The events the command decides, or the aggregate's refusal: the "then" to assert on.
    pub fn when(&self, command: A::Command) -> Result<Vec<A::Event>, A::Error> {
        self.0.decide(&command)
    }
}
