//! The one rule for the short names of the wire (run ids, topics): 1 to `max` bytes of
//! UTF-8 without control characters.

/// What is wrong with a name; each kind of name turns it into its own error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameProblem {
    Empty,
    TooLong { len: usize, max: usize },
    ControlCharacter { index: usize },
}

/// Checks `name` against the rule, without allocating.
pub(crate) fn check(name: &str, max: usize) -> Result<(), NameProblem> {
    if name.is_empty() {
        return Err(NameProblem::Empty);
    }
    if name.len() > max {
        return Err(NameProblem::TooLong {
            len: name.len(),
            max,
        });
    }
    if let Some((index, _)) = name.char_indices().find(|(_, c)| c.is_control()) {
        return Err(NameProblem::ControlCharacter { index });
    }
    Ok(())
}
