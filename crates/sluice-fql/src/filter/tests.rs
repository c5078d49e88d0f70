use serde_json::json;

use super::*;
use crate::actions::Fields;

fn fields(path: &str, names: &[&str]) -> Fields {
    Fields::from([(
        path.to_owned(),
        names.iter().map(|n| (*n).to_owned()).collect(),
    )])
}

fn filter(if_: &str, actions: Vec<Action>) -> DestinationFilter {
    DestinationFilter::new("t", if_, actions, true).expect("valid filter")
}

fn sample(percent: f64, path: &str) -> Action {
    Action::Sample {
        percent,
        path: Some(path.to_owned()),
    }
}

#[test]
fn construction_validates() {
    let e = DestinationFilter::new("t", "properties.a = ", vec![Action::Drop], true)
        .expect_err("bad fql");
    assert_eq!(
        e.to_string(),
        "invalid condition: at 15: expected a value after '=', found end of input"
    );
    let FilterError::Condition(parse) = e else {
        panic!("condition error");
    };
    assert_eq!(parse.position, 15);
    assert_eq!(
        DestinationFilter::new("t", "all", vec![], true),
        Err(FilterError::NoActions)
    );
    assert_eq!(
        DestinationFilter::new("t", "all", vec![Action::Drop, sample(2.0, "userId")], true)
            .expect_err("percent")
            .to_string(),
        "action 1: sample percent must be between 0 and 1, found 2"
    );
    assert_eq!(
        DestinationFilter::new("x".repeat(65), "all", vec![Action::Drop], true),
        Err(FilterError::TitleTooLong)
    );
    assert!(DestinationFilter::new("é".repeat(64), "all", vec![Action::Drop], true).is_ok());
}

#[test]
fn at_most_ten_filters_per_destination() {
    let ten = vec![filter("all", vec![Action::Drop]); 10];
    assert_eq!(validate_filters(&ten), Ok(()));
    let eleven = vec![filter("all", vec![Action::Drop]); 11];
    let e = validate_filters(&eleven).expect_err("too many");
    assert_eq!(e, FilterError::TooManyFilters(11));
    assert_eq!(
        e.to_string(),
        "a destination has at most 10 filters, found 11"
    );
}

#[test]
fn public_api_json_round_trip() {
    let json = json!({
        "id": "df_1", "sourceId": "s", "destinationId": "d",
        "title": "Drop test events",
        "description": "no QA traffic",
        "if": "match(event, 'Test *')",
        "actions": [{"type": "DROP"}],
        "enabled": false,
        "createdAt": "2024-01-01T00:00:00Z",
    });
    let f: DestinationFilter = serde_json::from_value(json).expect("filter");
    assert_eq!(f.title(), "Drop test events");
    assert_eq!(f.description(), Some("no QA traffic"));
    assert_eq!(f.if_(), "match(event, 'Test *')");
    assert!(!f.enabled());
    assert!(f.matches(&json!({"event": "Test Event"})));
    assert_eq!(
        serde_json::to_value(&f).expect("serializes"),
        json!({
            "title": "Drop test events",
            "description": "no QA traffic",
            "if": "match(event, 'Test *')",
            "actions": [{"type": "DROP"}],
            "enabled": false,
        })
    );
    let back: DestinationFilter =
        serde_json::from_value(serde_json::to_value(&f).expect("serializes")).expect("reads back");
    assert_eq!(back, f);
    let defaulted: DestinationFilter =
        serde_json::from_value(json!({"title": "t", "if": "all", "actions": [{"type": "DROP"}]}))
            .expect("filter");
    assert!(defaulted.enabled());
}

#[test]
fn deserializing_validates_too() {
    let e = serde_json::from_value::<DestinationFilter>(json!({
        "title": "t", "if": "a = (", "actions": [{"type": "DROP"}],
    }))
    .expect_err("bad fql");
    assert!(
        e.to_string()
            .starts_with("invalid condition: at 4: expected a value after '='"),
        "{e}"
    );
    let e = serde_json::from_value::<DestinationFilter>(json!({
        "title": "t", "if": "all", "actions": [{"type": "SAMPLE", "percent": -1}],
    }))
    .expect_err("bad percent");
    assert!(
        e.to_string()
            .contains("sample percent must be between 0 and 1"),
        "{e}"
    );
}

#[test]
fn drop_when_the_condition_matches() {
    let filters = [filter("length(userId) < 1", vec![Action::Drop])];
    assert_eq!(apply(&filters, json!({"userId": ""})), None);
    assert_eq!(apply(&filters, json!({"userId": null})), None);
    let kept = json!({"userId": "u1"});
    assert_eq!(apply(&filters, kept.clone()), Some(kept));
    // A missing userId has a NaN length: not < 1, so the event is kept, as in tsub.
    assert_eq!(apply(&filters, json!({})), Some(json!({})));
}

#[test]
fn the_documented_missing_user_id_filter_drops_all_three_cases() {
    let filters = [filter(
        "typeof(userId) = \"undefined\" or length(userId) < 1",
        vec![Action::Drop],
    )];
    for dropped in [json!({}), json!({"userId": null}), json!({"userId": ""})] {
        assert_eq!(apply(&filters, dropped.clone()), None, "{dropped}");
    }
    for kept in [json!({"userId": "u"}), json!({"userId": 5})] {
        assert_eq!(apply(&filters, kept.clone()), Some(kept.clone()), "{kept}");
    }
}

#[test]
fn disabled_filters_do_nothing() {
    let mut f = filter("all", vec![Action::Drop]);
    f.set_enabled(false);
    assert_eq!(apply(&[f.clone()], json!({"a": 1})), Some(json!({"a": 1})));
    f.set_enabled(true);
    assert_eq!(apply(&[f], json!({"a": 1})), None);
}

#[test]
fn actions_run_in_segment_order_across_filters() {
    // Listed allow-first; allow must still run after drop (so "b" is kept out by drop, then
    // allow keeps only what is named).
    let filters = [
        filter(
            "all",
            vec![Action::AllowProperties {
                fields: fields("properties", &["a", "b"]),
            }],
        ),
        filter(
            "all",
            vec![Action::DropProperties {
                fields: fields("properties", &["b", "c"]),
            }],
        ),
    ];
    assert_eq!(
        apply(
            &filters,
            json!({"properties": {"a": 1, "b": 2, "c": 3, "d": 4}})
        ),
        Some(json!({"properties": {"a": 1}}))
    );
}

#[test]
fn conditions_see_the_event_as_it_arrived() {
    // The second condition reads a property the first filter drops: it still matches.
    let filters = [
        filter(
            "all",
            vec![Action::DropProperties {
                fields: fields("properties", &["plan"]),
            }],
        ),
        filter(
            "properties.plan = 'pro'",
            vec![Action::AllowProperties {
                fields: fields("", &["properties"]),
            }],
        ),
    ];
    assert_eq!(
        apply(
            &filters,
            json!({"event": "E", "properties": {"plan": "pro", "x": 1}})
        ),
        Some(json!({"properties": {"x": 1}}))
    );
}

#[test]
fn sampling_is_deterministic_by_path_and_drops_before_other_actions() {
    let filters = [filter(
        "event = 'Page Viewed'",
        vec![
            Action::DropProperties {
                fields: fields("", &["context"]),
            },
            sample(0.5, "userId"),
        ],
    )];
    let mut kept = 0;
    for i in 0..2000 {
        let event = json!({"event": "Page Viewed", "userId": format!("u{i}"), "context": {}});
        let once = apply(&filters, event.clone());
        assert_eq!(
            once,
            apply(&filters, event.clone()),
            "same user, same answer"
        );
        if let Some(out) = once {
            assert_eq!(
                out,
                json!({"event": "Page Viewed", "userId": format!("u{i}")})
            );
            kept += 1;
        }
    }
    assert!((900..1100).contains(&kept), "kept {kept} of 2000");
    let other = json!({"event": "Other", "userId": "u1"});
    assert_eq!(apply(&filters, other.clone()), Some(other));
}

#[test]
fn sample_bounds() {
    let none = [filter("all", vec![sample(0.0, "userId")])];
    let every = [filter("all", vec![sample(1.0, "userId")])];
    for i in 0..50 {
        let event = json!({"userId": i});
        assert_eq!(apply(&none, event.clone()), None);
        assert_eq!(apply(&every, event.clone()), Some(event));
    }
}

#[test]
fn no_filters_or_no_match_returns_the_event_untouched() {
    let event = json!({"b": 1, "a": [1.50, {"z": null}]});
    assert_eq!(apply(&[], event.clone()), Some(event.clone()));
    let filters = [filter("event = 'x'", vec![Action::Drop])];
    let out = apply(&filters, event.clone()).expect("kept");
    assert_eq!(out.to_string(), event.to_string(), "byte for byte");
}

#[test]
fn many_filters_still_work_past_the_bitmask() {
    let mut filters = vec![filter("event = 'nope'", vec![Action::Drop]); 70];
    filters.push(filter("event = 'x'", vec![Action::Drop]));
    assert_eq!(apply(&filters, json!({"event": "x"})), None);
    assert_eq!(
        apply(&filters, json!({"event": "y"})),
        Some(json!({"event": "y"}))
    );
}

#[test]
fn tsub_transformers_are_in_run_order() {
    let f = filter(
        "all",
        vec![
            Action::AllowProperties {
                fields: fields("", &["a"]),
            },
            Action::Drop,
            sample(0.5, "userId"),
        ],
    );
    let types: Vec<String> = f
        .tsub_transformers()
        .as_array()
        .expect("array")
        .iter()
        .map(|t| t["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(types, ["sample_event", "drop", "allow_properties"]);
}
