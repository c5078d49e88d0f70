//! The children policy's test: whether a person's traits show an age under a threshold.
//!
//! Read from traits named like an age in years (`age`: a number, or a string holding one) or
//! like a birth date (`birthday`, `birthdate`, `birth_date`, `date_of_birth`, `dob`, in any
//! case: a `YYYY-MM-DD` date, alone or starting an ISO-8601 timestamp). Anything else says
//! nothing, so a malformed value never suppresses anyone.

use serde_json::{Map, Value};
use time::{Date, Month};

/// Whether the event's `traits` or `context.traits` show an age under `minimum_age` on `today`.
pub fn event_shows_child(event: &Value, minimum_age: u32, today: Date) -> bool {
    let traits = event.get("traits").and_then(Value::as_object);
    let context_traits = event
        .get("context")
        .and_then(|context| context.get("traits"))
        .and_then(Value::as_object);
    for found in [traits, context_traits].into_iter().flatten() {
        if traits_show_child(found, minimum_age, today) {
            return true;
        }
    }
    false
}

/// Whether these traits show an age under `minimum_age` on `today`.
pub fn traits_show_child(traits: &Map<String, Value>, minimum_age: u32, today: Date) -> bool {
    for (name, value) in traits {
        if trait_shows_child(name, value, minimum_age, today) {
            return true;
        }
    }
    false
}

/// Whether one trait shows an age under `minimum_age` on `today`.
pub fn trait_shows_child(name: &str, value: &Value, minimum_age: u32, today: Date) -> bool {
    let age = match kind_of(name) {
        Some(Kind::Age) => age_in_years(value),
        Some(Kind::BirthDate) => value
            .as_str()
            .and_then(birth_date)
            .and_then(|born| years_between(born, today)),
        None => None,
    };
    age.is_some_and(|age| age >= 0.0 && age < f64::from(minimum_age))
}

enum Kind {
    Age,
    BirthDate,
}

fn kind_of(name: &str) -> Option<Kind> {
    let mut folded = String::with_capacity(name.len());
    for c in name.chars() {
        if c != '_' && c != '-' && c != ' ' {
            folded.extend(c.to_lowercase());
        }
    }
    match folded.as_str() {
        "age" => Some(Kind::Age),
        "birthday" | "birthdate" | "dateofbirth" | "dob" => Some(Kind::BirthDate),
        _ => None,
    }
}

fn age_in_years(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        _ => None,
    }
}

/// `YYYY-MM-DD`, alone or at the start of a timestamp.
fn birth_date(text: &str) -> Option<Date> {
    let text = text.trim();
    let date = text.get(..10)?;
    if text.len() > 10 && !text[10..].starts_with(['T', 't', ' ']) {
        return None;
    }
    let mut parts = date.split('-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let month = Month::try_from(month.parse::<u8>().ok()?).ok()?;
    Date::from_calendar_date(year.parse().ok()?, month, day.parse().ok()?).ok()
}

/// Whole years from `born` to `today`; `None` for a date in the future.
fn years_between(born: Date, today: Date) -> Option<f64> {
    if born > today {
        return None;
    }
    let mut years = today.year() - born.year();
    if (today.month() as u8, today.day()) < (born.month() as u8, born.day()) {
        years -= 1;
    }
    Some(f64::from(years))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::date;

    use super::*;

    const TODAY: Date = date!(2026 - 11 - 23);

    #[test]
    fn ages_under_the_threshold_show_a_child() {
        for (traits, child) in [
            (json!({"age": 12}), true),
            (json!({"age": 15.9}), true),
            (json!({"Age": "13"}), true),
            (json!({"age": 16}), false),
            (json!({"age": 40}), false),
            (json!({"age": -3}), false),
            (json!({"age": "unknown"}), false),
            (json!({"age": null}), false),
            (json!({"age": true}), false),
            (json!({"birthday": "2015-06-01"}), true),
            (json!({"date_of_birth": "2010-11-24"}), true),
            (json!({"dateOfBirth": "2010-11-23"}), false),
            (json!({"DOB": "2012-01-01T00:00:00Z"}), true),
            (json!({"birthdate": "1990-02-28"}), false),
            (json!({"birthday": "2030-01-01"}), false),
            (json!({"birthday": "2015-13-01"}), false),
            (json!({"birthday": "01/06/2015"}), false),
            (json!({"birthday": "2015-06-01junk"}), false),
            (json!({"page_age": 3}), false),
            (json!({"name": "Kid"}), false),
        ] {
            let object = traits.as_object().expect("object");
            assert_eq!(traits_show_child(object, 16, TODAY), child, "{traits}");
        }
    }

    #[test]
    fn the_threshold_is_the_workspaces() {
        let traits = json!({"age": 17});
        let object = traits.as_object().expect("object");
        assert!(!traits_show_child(object, 16, TODAY));
        assert!(traits_show_child(object, 18, TODAY));
    }

    #[test]
    fn events_are_read_in_traits_and_context_traits() {
        assert!(event_shows_child(
            &json!({"type": "identify", "traits": {"age": 9}}),
            16,
            TODAY
        ));
        assert!(event_shows_child(
            &json!({"type": "track", "context": {"traits": {"birthday": "2014-01-01"}}}),
            16,
            TODAY
        ));
        assert!(!event_shows_child(
            &json!({"type": "track", "properties": {"age": 9}}),
            16,
            TODAY
        ));
    }
}
