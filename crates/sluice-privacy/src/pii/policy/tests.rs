//! The policy's JSON shape and validation, the rules for the gate and each destination, and
//! applying rules to events.

use serde_json::{Value, json};

use super::*;

const KEY: &[u8] = b"workspace-hash-key-0123456789abcdef";

fn policy(value: Value) -> PiiPolicy {
    serde_json::from_value(value).unwrap()
}

fn rules(pairs: &[(PiiClass, PiiAction)]) -> Rules {
    let mut rules = Rules::default();
    for &(class, action) in pairs {
        rules.set(class, action);
    }
    rules
}

fn applied(pairs: &[(PiiClass, PiiAction)], mut event: Value) -> (Applied, Value) {
    let outcome = apply(&rules(pairs), &mut event, KEY);
    (outcome, event)
}

// ---- actions and the JSON shape ----

#[test]
fn actions_have_names_and_an_order_of_strictness() {
    for action in PiiAction::ALL {
        let text = serde_json::to_value(action).unwrap();
        assert_eq!(text, json!(action.as_str()));
        assert_eq!(serde_json::from_value::<PiiAction>(text).unwrap(), action);
    }
    assert!(PiiAction::Allow < PiiAction::Hash);
    assert!(PiiAction::Hash < PiiAction::Redact);
    assert!(PiiAction::Redact < PiiAction::Block);
    assert!(serde_json::from_value::<PiiAction>(json!("Hash")).is_err());
}

#[test]
fn a_policy_round_trips_through_json() {
    let text = json!({
        "classes": {"email": "hash", "payment_card": "block"},
        "destinations": {"dst_abc": {"email": "allow"}}
    });
    let parsed = policy(text.clone());
    assert_eq!(parsed.action(PiiClass::Email), PiiAction::Hash);
    assert_eq!(parsed.action(PiiClass::PaymentCard), PiiAction::Block);
    assert_eq!(
        parsed.action(PiiClass::Phone),
        PiiAction::Allow,
        "missing is allow"
    );
    assert_eq!(
        parsed.destinations["dst_abc"][&PiiClass::Email],
        PiiAction::Allow
    );
    assert_eq!(serde_json::to_value(&parsed).unwrap(), text);

    assert_eq!(policy(json!({})), PiiPolicy::default());
    assert_eq!(
        policy(json!({"classes": {"iban": "redact"}})).destinations,
        BTreeMap::new(),
        "destinations default to empty"
    );
    for class in PiiClass::ALL {
        let one = policy(json!({"classes": {class.as_str(): "redact"}}));
        assert_eq!(one.action(class), PiiAction::Redact, "{}", class.as_str());
    }
}

#[test]
fn unknown_classes_actions_and_fields_are_refused() {
    let cases = [
        (
            json!({"classes": {"mail": "hash"}}),
            "unknown pii class `mail`",
        ),
        (
            json!({"classes": {"Email": "hash"}}),
            "unknown pii class `Email`",
        ),
        (
            json!({"destinations": {"dst_abc": {"ssn": "block"}}}),
            "unknown pii class `ssn`",
        ),
        (
            json!({"classes": {"email": "mask"}}),
            "unknown variant `mask`",
        ),
        (json!({"classes": {"email": null}}), "invalid type"),
        (json!({"class": {"email": "hash"}}), "unknown field `class`"),
        (json!({"classes": ["email"]}), "invalid type"),
    ];
    for (text, expected) in cases {
        let error = serde_json::from_value::<PiiPolicy>(text.clone()).unwrap_err();
        assert!(
            error.to_string().contains(expected),
            "{text}: {error} should say {expected}"
        );
    }
}

// ---- validation ----

#[test]
fn a_destination_cannot_loosen_what_the_gate_does() {
    let cases = [
        ("redact", "allow", "redacts"),
        ("redact", "hash", "redacts"),
        ("block", "allow", "blocks events with"),
        ("block", "hash", "blocks events with"),
        ("block", "redact", "blocks events with"),
    ];
    for (workspace, destination, verb) in cases {
        let policy = policy(json!({
            "classes": {"payment_card": workspace, "email": "hash"},
            "destinations": {
                "dst_ok": {"email": "allow"},
                "dst_abc": {"payment_card": destination}
            }
        }));
        let error = policy.validate().unwrap_err();
        assert_eq!(
            error.field, "pii.destinations.dst_abc.payment_card",
            "{workspace} then {destination}"
        );
        assert_eq!(
            error.message,
            format!(
                "the workspace {verb} payment_card before events are stored; a destination can \
                 only be stricter"
            )
        );
        assert!(error.to_string().starts_with("invalid pii.destinations."));
    }
}

#[test]
fn a_destination_may_loosen_a_hash_and_tighten_anything() {
    let accepted = [
        ("hash", "allow"),
        ("hash", "hash"),
        ("hash", "redact"),
        ("hash", "block"),
        ("allow", "hash"),
        ("allow", "block"),
        ("redact", "redact"),
        ("redact", "block"),
        ("block", "block"),
    ];
    for (workspace, destination) in accepted {
        let policy = policy(json!({
            "classes": {"email": workspace},
            "destinations": {"dst_abc": {"email": destination}}
        }));
        assert_eq!(policy.validate(), Ok(()), "{workspace} then {destination}");
    }
    // A destination overriding a class the workspace does not name.
    let unnamed = policy(json!({"destinations": {"dst_abc": {"phone": "allow"}}}));
    assert_eq!(unnamed.validate(), Ok(()));
    assert_eq!(PiiPolicy::default().validate(), Ok(()));
}

#[test]
fn a_destination_needs_an_id() {
    let policy = policy(json!({"destinations": {" ": {"email": "hash"}}}));
    let error = policy.validate().unwrap_err();
    assert_eq!(error.field, "pii.destinations");
}

// ---- the gate and destinations ----

#[test]
fn the_gate_takes_only_the_workspaces_redactions_and_blocks() {
    assert!(PiiPolicy::default().gate().is_none());
    let hashing = policy(json!({"classes": {"email": "hash", "phone": "allow"}}));
    assert!(hashing.gate().is_none(), "hashes wait for delivery");

    let policy = policy(json!({
        "classes": {"email": "hash", "us_ssn": "redact", "payment_card": "block"},
        "destinations": {"dst_abc": {"email": "block"}}
    }));
    let gate = policy.gate().unwrap();
    for class in PiiClass::ALL {
        let expected = match class {
            PiiClass::UsSsn => PiiAction::Redact,
            PiiClass::PaymentCard => PiiAction::Block,
            _ => PiiAction::Allow,
        };
        assert_eq!(gate.action(class), expected, "{}", class.as_str());
    }
}

#[test]
fn a_destination_applies_its_overrides_and_what_the_gate_left() {
    let gate_only = policy(json!({"classes": {"email": "redact", "secret": "block"}}));
    assert!(gate_only.for_destination("dst_abc").is_none());
    assert!(PiiPolicy::default().for_destination("dst_abc").is_none());

    let policy = policy(json!({
        "classes": {
            "email": "hash",
            "phone": "hash",
            "us_ssn": "redact",
            "iban": "redact",
            "payment_card": "block"
        },
        "destinations": {
            "dst_warehouse": {"email": "allow", "phone": "allow", "us_ssn": "redact"},
            "dst_ads": {"ip_address": "redact", "iban": "block", "payment_card": "block"}
        }
    }));
    assert_eq!(policy.validate(), Ok(()));

    let plain = policy.for_destination("dst_other").unwrap();
    let ads = policy.for_destination("dst_ads").unwrap();
    let table = [
        // class, any other destination, dst_ads
        (PiiClass::Email, PiiAction::Hash, PiiAction::Hash),
        (PiiClass::Phone, PiiAction::Hash, PiiAction::Hash),
        (PiiClass::UsSsn, PiiAction::Allow, PiiAction::Allow),
        (PiiClass::Iban, PiiAction::Allow, PiiAction::Block),
        (PiiClass::PaymentCard, PiiAction::Allow, PiiAction::Allow),
        (PiiClass::IpAddress, PiiAction::Allow, PiiAction::Redact),
        (PiiClass::DateOfBirth, PiiAction::Allow, PiiAction::Allow),
        (PiiClass::Secret, PiiAction::Allow, PiiAction::Allow),
    ];
    for (class, other, for_ads) in table {
        assert_eq!(plain.action(class), other, "{}", class.as_str());
        assert_eq!(ads.action(class), for_ads, "{}", class.as_str());
    }
    assert!(
        policy.for_destination("dst_warehouse").is_none(),
        "the warehouse gets emails and phones unhashed; the gate did the rest"
    );
}

#[test]
fn rules_print_every_class_by_name() {
    let text = format!("{:?}", rules(&[(PiiClass::Iban, PiiAction::Hash)]));
    assert!(text.contains(r#""iban": "hash""#), "{text}");
    assert!(text.contains(r#""email": "allow""#), "{text}");
}

// ---- apply ----

#[test]
fn allowing_everything_changes_nothing() {
    let event = json!({"properties": {"email": "jane@example.com"}});
    let (outcome, after) = applied(&[], event.clone());
    assert_eq!(outcome, Applied::Unchanged);
    assert_eq!(after, event);
    let (outcome, after) = applied(&[(PiiClass::Phone, PiiAction::Redact)], event.clone());
    assert_eq!(outcome, Applied::Unchanged, "no phone in it");
    assert_eq!(after, event);
    let (outcome, after) = applied(&[(PiiClass::Email, PiiAction::Block)], json!("text"));
    assert_eq!(outcome, Applied::Unchanged, "not an object");
    assert_eq!(after, json!("text"));
}

#[test]
fn redaction_removes_fields_from_every_part() {
    let event = json!({
        "type": "identify",
        "userId": "jane@example.com",
        "properties": {"plan": "pro", "email": "jane@example.com", "zip": "94107"},
        "traits": {"email": "jane@example.com", "name": "Jane"},
        "context": {"ip": "203.0.113.9", "contact": "jane@example.com"}
    });
    let (outcome, after) = applied(&[(PiiClass::Email, PiiAction::Redact)], event);
    assert_eq!(outcome, Applied::Changed);
    assert_eq!(
        after,
        json!({
            "type": "identify",
            "userId": "jane@example.com",
            "properties": {"plan": "pro", "zip": "94107"},
            "traits": {"name": "Jane"},
            "context": {"ip": "203.0.113.9"}
        }),
        "outside properties, traits and context nothing is touched; other keys keep their order"
    );
    let keys: Vec<&String> = after["properties"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["plan", "zip"]);
}

#[test]
fn redaction_reaches_nested_objects_and_arrays() {
    let event = json!({
        "properties": {
            "billing": {"address": {"phone": "+1 415 555 0100", "city": "SF"}},
            "items": [
                {"sku": "A1", "gift_email": "bob@example.com"},
                {"sku": "B2"},
                {"sku": "C3", "gift_email": "amy@example.com"}
            ],
            "cc": ["bob@example.com", "keep", "amy@example.com", "ann@example.com"],
            "matrix": [["x", "zed@example.com"], ["y"]]
        }
    });
    let (outcome, after) = applied(
        &[
            (PiiClass::Email, PiiAction::Redact),
            (PiiClass::Phone, PiiAction::Redact),
        ],
        event,
    );
    assert_eq!(outcome, Applied::Changed);
    assert_eq!(
        after,
        json!({
            "properties": {
                "billing": {"address": {"city": "SF"}},
                "items": [{"sku": "A1"}, {"sku": "B2"}, {"sku": "C3"}],
                "cc": ["keep"],
                "matrix": [["x"], ["y"]]
            }
        })
    );
}

#[test]
fn a_scalar_part_is_removed_as_a_whole() {
    let (outcome, after) = applied(
        &[(PiiClass::IpAddress, PiiAction::Redact)],
        json!({"context": "203.0.113.9", "event": "x"}),
    );
    assert_eq!(outcome, Applied::Changed);
    assert_eq!(after, json!({"event": "x"}));
}

#[test]
fn hashing_replaces_values_with_keyed_hashes() {
    let event = json!({
        "properties": {"email": "jane@example.com", "plan": "pro"},
        "traits": {"phone": 4155550100_u64, "emails": ["jane@example.com", "x"]},
        "context": {"ip": "203.0.113.9"}
    });
    let (outcome, after) = applied(
        &[
            (PiiClass::Email, PiiAction::Hash),
            (PiiClass::Phone, PiiAction::Hash),
            (PiiClass::IpAddress, PiiAction::Hash),
        ],
        event,
    );
    assert_eq!(outcome, Applied::Changed);
    let email = keyed_hash(KEY, "jane@example.com");
    assert_eq!(
        after,
        json!({
            "properties": {"email": email, "plan": "pro"},
            "traits": {"phone": keyed_hash(KEY, "4155550100"), "emails": [email, "x"]},
            "context": {"ip": keyed_hash(KEY, "203.0.113.9")}
        }),
        "a number is hashed from its decimal text"
    );
    assert!(is_hash(&email));
}

#[test]
fn the_hash_is_hmac_sha256_in_lowercase_hex() {
    // RFC 4231, test case 2.
    assert_eq!(
        keyed_hash(b"Jefe", "what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn emails_are_trimmed_and_lowercased_before_hashing_other_values_only_trimmed() {
    let hash = |key: &[u8], event: Value| {
        let mut event = event;
        let all = rules(&[
            (PiiClass::Email, PiiAction::Hash),
            (PiiClass::Secret, PiiAction::Hash),
        ]);
        assert_eq!(apply(&all, &mut event, key), Applied::Changed);
        event
    };
    let lower = hash(KEY, json!({"traits": {"email": "jane@example.com"}}));
    let upper = hash(KEY, json!({"traits": {"email": "  Jane@EXAMPLE.com "}}));
    assert_eq!(lower, upper, "the same person hashes the same");
    let again = hash(KEY, json!({"traits": {"email": "jane@example.com"}}));
    assert_eq!(lower, again, "same input, same hash");
    let other_key = hash(
        b"another-key",
        json!({"traits": {"email": "jane@example.com"}}),
    );
    assert_ne!(lower, other_key, "another key, another hash");
    let other_person = hash(KEY, json!({"traits": {"email": "john@example.com"}}));
    assert_ne!(lower, other_person);

    let secret = hash(KEY, json!({"properties": {"password": " Hunter2 "}}));
    assert_eq!(
        secret,
        json!({"properties": {"password": keyed_hash(KEY, "Hunter2")}}),
        "only emails are lowercased"
    );
}

#[test]
fn hashing_twice_changes_nothing_more() {
    let hash_all = rules(&[
        (PiiClass::Email, PiiAction::Hash),
        (PiiClass::Secret, PiiAction::Hash),
    ]);
    let mut event = json!({"traits": {"email": "jane@example.com", "api_key": "k-123"}});
    assert_eq!(apply(&hash_all, &mut event, KEY), Applied::Changed);
    let once = event.clone();
    assert_eq!(apply(&hash_all, &mut event, KEY), Applied::Unchanged);
    assert_eq!(event, once);
    // An upper-case hex string is not what the hash writes: it is hashed.
    let upper = "A".repeat(64);
    let mut event = json!({"traits": {"api_key": upper}});
    assert_eq!(apply(&hash_all, &mut event, KEY), Applied::Changed);
    assert_eq!(event["traits"]["api_key"], json!(keyed_hash(KEY, &upper)));
}

#[test]
fn a_secret_object_is_removed_whole_unless_allowed() {
    let event = json!({
        "properties": {
            "credentials": {"user": "jane", "pass": "x"},
            "credential": [{"value": "a"}],
            "auth_token": [{"access": "a"}, {"access": "b"}],
            "plan": "pro"
        }
    });
    for action in [PiiAction::Redact, PiiAction::Hash] {
        let (outcome, after) = applied(&[(PiiClass::Secret, action)], event.clone());
        assert_eq!(outcome, Applied::Changed, "{action:?}");
        assert_eq!(
            after,
            json!({"properties": {"credential": [], "auth_token": [], "plan": "pro"}}),
            "{action:?}: an object cannot be hashed"
        );
    }
    let (outcome, after) = applied(&[(PiiClass::Email, PiiAction::Redact)], event.clone());
    assert_eq!(outcome, Applied::Unchanged);
    assert_eq!(after, event);
    let (outcome, after) = applied(&[(PiiClass::Secret, PiiAction::Block)], event.clone());
    assert_eq!(
        outcome,
        Applied::Blocked {
            path: "properties.credentials".into(),
            class: PiiClass::Secret
        }
    );
    assert_eq!(after, event);
}

#[test]
fn block_names_the_first_blocked_field_and_leaves_the_event() {
    let event = json!({
        "properties": {
            "email": "jane@example.com",
            "orders": [{"id": 1}, {"card": "4111 1111 1111 1111"}],
            "backup_card": "5555555555554444"
        },
        "traits": {"ssn": "123-45-6789"}
    });
    let (outcome, after) = applied(
        &[
            (PiiClass::Email, PiiAction::Redact),
            (PiiClass::PaymentCard, PiiAction::Block),
            (PiiClass::UsSsn, PiiAction::Block),
        ],
        event.clone(),
    );
    assert_eq!(
        outcome,
        Applied::Blocked {
            path: "properties.orders[].card".into(),
            class: PiiClass::PaymentCard
        }
    );
    assert_eq!(after, event, "nothing redacted when the event is refused");

    let (outcome, _) = applied(&[(PiiClass::UsSsn, PiiAction::Block)], event);
    assert_eq!(
        outcome,
        Applied::Blocked {
            path: "traits.ssn".into(),
            class: PiiClass::UsSsn
        }
    );
}

#[test]
fn a_blocked_path_never_holds_a_value_used_as_a_key() {
    let event = json!({"traits": {"jane@example.com": {"card": "4111111111111111"}}});
    let (outcome, _) = applied(&[(PiiClass::PaymentCard, PiiAction::Block)], event);
    assert_eq!(
        outcome,
        Applied::Blocked {
            path: "traits.*.card".into(),
            class: PiiClass::PaymentCard
        }
    );
}

#[test]
fn a_key_that_looks_like_a_value_is_still_found_under_its_own_name() {
    // The path writes it `*`, the change reaches the real key.
    let event = json!({"traits": {"jane@example.com": {"email": "jane@example.com", "n": 1}}});
    let (outcome, after) = applied(&[(PiiClass::Email, PiiAction::Redact)], event);
    assert_eq!(outcome, Applied::Changed);
    assert_eq!(after, json!({"traits": {"jane@example.com": {"n": 1}}}));
}

#[test]
fn what_is_too_deep_to_check_does_not_pass() {
    let mut deep = json!({"email": "deep@example.com"});
    for _ in 0..40 {
        deep = json!({ "x": deep });
    }
    let event = json!({"properties": {"deep": deep, "plan": "pro"}});
    let (outcome, after) = applied(&[(PiiClass::Email, PiiAction::Hash)], event.clone());
    assert_eq!(outcome, Applied::Changed);
    assert!(
        !after.to_string().contains("deep@example.com"),
        "the deep part is gone"
    );
    assert_eq!(after["properties"]["plan"], json!("pro"));
    let (outcome, after) = applied(&[], event.clone());
    assert_eq!(
        outcome,
        Applied::Unchanged,
        "nothing to check, nothing removed"
    );
    assert_eq!(after, event);
}

#[test]
fn null_and_empty_values_are_left_alone() {
    let event = json!({
        "traits": {"email": null, "password": "", "api_key": null, "credentials_list": []}
    });
    let (outcome, after) = applied(
        &[
            (PiiClass::Email, PiiAction::Hash),
            (PiiClass::Secret, PiiAction::Redact),
        ],
        event.clone(),
    );
    assert_eq!(outcome, Applied::Unchanged);
    assert_eq!(after, event);
}

#[test]
fn a_policy_applied_at_the_gate_then_at_delivery() {
    let policy = policy(json!({
        "classes": {"email": "hash", "us_ssn": "redact", "payment_card": "block"},
        "destinations": {"dst_warehouse": {"email": "allow"}}
    }));
    let mut event = json!({
        "traits": {"email": "Jane@Example.com", "ssn": "123-45-6789", "plan": "pro"}
    });
    let gate = policy.gate().unwrap();
    assert_eq!(apply(&gate, &mut event, KEY), Applied::Changed);
    assert_eq!(
        event,
        json!({"traits": {"email": "Jane@Example.com", "plan": "pro"}})
    );
    assert!(policy.for_destination("dst_warehouse").is_none());
    let mut delivered = event.clone();
    let rules = policy.for_destination("dst_crm").unwrap();
    assert_eq!(apply(&rules, &mut delivered, KEY), Applied::Changed);
    assert_eq!(
        delivered["traits"]["email"],
        json!(keyed_hash(KEY, "jane@example.com"))
    );

    let mut card = json!({"properties": {"card_number": "4111111111111111"}});
    assert_eq!(
        apply(&gate, &mut card, KEY),
        Applied::Blocked {
            path: "properties.card_number".into(),
            class: PiiClass::PaymentCard
        }
    );
}
