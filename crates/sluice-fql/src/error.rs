//! The crate's errors: [`ParseError`] for FQL text and [`FilterError`] for a filter definition.

/// Why FQL text was refused, and where.
///
/// `position` is a byte offset into the query (the query's length for "end of input");
/// `line` and `column` count from 1, the column in characters. `Display` gives
/// `at 14: expected a value after '=', found end of input`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {position}: {message}")]
pub struct ParseError {
    /// Byte offset of the fault.
    pub position: usize,
    /// Line of the fault, from 1.
    pub line: usize,
    /// Column of the fault, from 1, in characters.
    pub column: usize,
    /// What was expected and what was found (lowercase, no trailing period).
    pub message: String,
}

impl ParseError {
    /// An error at byte `position` of `source`; line and column are worked out from it.
    pub(crate) fn new(source: &str, position: usize, message: impl Into<String>) -> ParseError {
        let mut position = position.min(source.len());
        while !source.is_char_boundary(position) {
            position -= 1;
        }
        let before = &source[..position];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        ParseError {
            position,
            line,
            column,
            message: message.into(),
        }
    }
}

/// Why a destination filter (or a destination's list of filters) was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterError {
    /// The `if` condition is not valid FQL.
    #[error("invalid condition: {0}")]
    Condition(#[from] ParseError),
    /// A filter without actions does nothing and is refused.
    #[error("a filter needs at least one action")]
    NoActions,
    /// A `SAMPLE` action whose `percent` is outside `0..=1` (or not a number).
    #[error("action {action}: sample percent must be between 0 and 1, found {percent}")]
    SamplePercent {
        /// Index of the action in the filter's list.
        action: usize,
        /// The refused value.
        percent: f64,
    },
    /// A `SAMPLE` action whose `path` is the empty string.
    #[error("action {action}: sample path must not be empty")]
    EmptySamplePath {
        /// Index of the action in the filter's list.
        action: usize,
    },
    /// A title over [`MAX_TITLE_CHARS`](crate::MAX_TITLE_CHARS) characters.
    #[error("title is longer than {max} characters", max = crate::MAX_TITLE_CHARS)]
    TitleTooLong,
    /// More than [`MAX_FILTERS_PER_DESTINATION`](crate::MAX_FILTERS_PER_DESTINATION) filters.
    #[error(
        "a destination has at most {max} filters, found {0}",
        max = crate::MAX_FILTERS_PER_DESTINATION
    )]
    TooManyFilters(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_from_one_in_characters() {
        let error = ParseError::new("a = 1 and\n  é = ", 16, "expected a value");
        assert_eq!((error.line, error.column), (2, 6));
        assert_eq!(error.to_string(), "at 16: expected a value");
        let error = ParseError::new("abc", 0, "x");
        assert_eq!((error.line, error.column), (1, 1));
    }

    #[test]
    fn position_is_clamped_to_the_source() {
        let error = ParseError::new("ab", 99, "x");
        assert_eq!(error.position, 2);
        assert_eq!(error.column, 3);
    }
}
