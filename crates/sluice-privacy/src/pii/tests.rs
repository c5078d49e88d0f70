//! Each matcher on tables of positives and negatives, then classification and scanning.

use serde_json::json;

use super::values::*;
use super::*;

#[test]
fn emails() {
    for yes in [
        "jane@example.com",
        "j.doe+tag@mail.example.co.uk",
        "ÉLODIE@exemple.fr",
        "x@y.io",
    ] {
        assert!(is_email(yes), "{yes}");
    }
    for no in [
        "jane",
        "jane@",
        "@example.com",
        "jane@example",
        "jane@@example.com",
        "jane doe@example.com",
        "jane@example.c0m",
        "jane@example..com",
        "a@b.c",
        "Jane <jane@example.com>",
    ] {
        assert!(!is_email(no), "{no}");
    }
}

#[test]
fn cards_need_a_network_prefix_and_the_luhn_digit() {
    for yes in [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5555555555554444",
        "2223003122003222",
        "378282246310005",
        "6011111111111117",
        "3530111333300000",
        "6200000000000005",
    ] {
        assert!(is_card(yes), "{yes}");
    }
    for no in [
        "4111111111111112",     // Luhn fails
        "1234567812345670",     // Luhn passes, no network starts with 1
        "411111111111",         // 12 digits
        "41111111111111111111", // 20 digits
        "4111 1111 1111 111a",
        "378282246310005 0", // Amex prefix at 16 digits
        "",
    ] {
        assert!(!is_card(no), "{no}");
    }
    assert!(luhn_valid("79927398713"));
    assert!(!luhn_valid("79927398710"));
}

#[test]
fn social_security_numbers() {
    for yes in ["123-45-6789", "078-05-1121", "665-12-3456"] {
        assert!(is_ssn(yes, true), "{yes}");
    }
    for no in [
        "000-12-3456", // area 000
        "666-12-3456", // area 666
        "912-12-3456", // area 9xx
        "123-00-6789", // group 00
        "123-45-0000", // serial 0000
        "123456789",   // bare digits need the key
        "123-456-789",
        "12-345-6789",
        "abc-de-fghi",
    ] {
        assert!(!is_ssn(no, true), "{no}");
    }
    assert!(is_ssn("123456789", false), "bare digits under an ssn key");
    assert!(!is_ssn("000456789", false));
}

#[test]
fn ibans_pass_the_mod_97_check() {
    for yes in [
        "GB82WEST12345698765432",
        "GB82 WEST 1234 5698 7654 32",
        "DE89370400440532013000",
        "FR1420041010050500013M02606",
        "NL91ABNA0417164300",
    ] {
        assert!(is_iban(yes), "{yes}");
    }
    for no in [
        "GB82WEST12345698765433", // check fails
        "GB82WEST1234",           // too short
        "gb82west12345698765432", // lowercase country
        "1282WEST12345698765432",
        "GB8XWEST12345698765432",
        "GB82WEST1234569876543$",
    ] {
        assert!(!is_iban(no), "{no}");
    }
}

#[test]
fn ip_addresses() {
    for yes in ["192.168.1.20", "8.8.8.8", "::1", "2001:db8::ff00:42:8329"] {
        assert!(is_ip(yes), "{yes}");
    }
    for no in [
        "192.168.1",
        "256.1.1.1",
        "1.2.3.4.5",
        "v1.2.3.4",
        "localhost",
        "",
    ] {
        assert!(!is_ip(no), "{no}");
    }
}

#[test]
fn phones_written_as_phones() {
    for yes in [
        "+14155550100",
        "+1 (415) 555-0100",
        "+44 20 7946 0958",
        "(415) 555-0100",
        "415-555-0100",
        "415.555.0100",
        "1-800-555-0199",
    ] {
        assert!(is_written_phone(yes), "{yes}");
    }
    for no in [
        "4155550100", // bare digits: an order number as likely as a phone
        "2024-01-01",
        "555-0100",
        "12:30:45",
        "+1234",
        "1+415-555-0100",
        "ORDER-415-555-0100",
    ] {
        assert!(!is_written_phone(no), "{no}");
    }
    assert!(matches_loosely(PiiClass::Phone, "4155550100"));
    assert!(!matches_loosely(PiiClass::Phone, "iPhone 13"));
}

#[test]
fn secrets_with_a_telling_format() {
    for yes in [
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        "AKIAIOSFODNN7EXAMPLE",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow...",
    ] {
        assert!(is_known_secret(yes), "{yes}");
    }
    for no in [
        "eyJhbGciOiJIUzI1NiJ9",
        "a.b.c",
        "AKIAshort",
        "-----BEGIN CERTIFICATE-----",
        "hello",
    ] {
        assert!(!is_known_secret(no), "{no}");
    }
}

#[test]
fn keys_are_read_as_words() {
    let cases = [
        ("password", Some(PiiClass::Secret)),
        ("userPassword", Some(PiiClass::Secret)),
        ("api_key", Some(PiiClass::Secret)),
        ("apiKey", Some(PiiClass::Secret)),
        ("csrf-token", Some(PiiClass::Secret)),
        ("email_password", Some(PiiClass::Secret)),
        ("dob", Some(PiiClass::DateOfBirth)),
        ("birth_date", Some(PiiClass::DateOfBirth)),
        ("dateOfBirth", Some(PiiClass::DateOfBirth)),
        ("ssn", Some(PiiClass::UsSsn)),
        ("social_security_number", Some(PiiClass::UsSsn)),
        ("cardNumber", Some(PiiClass::PaymentCard)),
        ("e-mail", Some(PiiClass::Email)),
        ("work_email", Some(PiiClass::Email)),
        ("mobile_number", Some(PiiClass::Phone)),
        ("client_ip", Some(PiiClass::IpAddress)),
        ("IPAddress", Some(PiiClass::IpAddress)),
        ("zip", None),
        ("tokens_used", None),
        ("shipping", None),
        ("passenger", None),
        ("description", None),
        ("plan", None),
    ];
    for (key, class) in cases {
        assert_eq!(keys::class_of_key(key), class, "{key}");
    }
    assert_eq!(
        keys::words("billingCardNumber"),
        ["billing", "card", "number"]
    );
    assert_eq!(keys::words("IPAddress_v2"), ["ipaddress", "v2"]);
}

#[test]
fn a_named_key_accepts_loose_values_and_an_unnamed_key_needs_a_clear_shape() {
    assert_eq!(
        classify("phone", &json!("4155550100")),
        Some(PiiClass::Phone)
    );
    assert_eq!(classify("order_id", &json!("4155550100")), None);
    assert_eq!(classify("ssn", &json!(123_456_789)), Some(PiiClass::UsSsn));
    assert_eq!(classify("count", &json!(123_456_789)), None);
    assert_eq!(
        classify("card", &json!(4_111_111_111_111_111_u64)),
        Some(PiiClass::PaymentCard),
        "a card sent as a number"
    );
    assert_eq!(
        classify("note", &json!("jane@example.com")),
        Some(PiiClass::Email)
    );
    assert_eq!(
        classify("password", &json!("hunter2")),
        Some(PiiClass::Secret)
    );
    assert_eq!(classify("password", &json!("")), None, "nothing held");
    assert_eq!(classify("password", &json!(null)), None);
    assert_eq!(
        classify("birthday", &json!("1990-04-01")),
        Some(PiiClass::DateOfBirth)
    );
    // A key naming a class with a value of another shape: the value decides.
    assert_eq!(
        classify("phone", &json!("jane@example.com")),
        Some(PiiClass::Email)
    );
    assert_eq!(classify("plan", &json!("pro")), None);
    assert_eq!(classify("price", &json!(19.99)), None);
    assert_eq!(classify("active", &json!(true)), None);
}

#[test]
fn scan_reports_paths_and_classes_never_values() {
    let event = json!({
        "type": "track",
        "userId": "jane@example.com",
        "properties": {
            "plan": "pro",
            "billing": {"card": "4111 1111 1111 1111", "zip": "94107"},
            "items": [{"sku": "A1", "gift_email": "bob@example.com"}, {"sku": "B2"}],
            "credentials": {"user": "jane", "pass": "x"},
            "comment": "call me at +1 415 555 0100"
        },
        "traits": {"email": "jane@example.com", "dob": "1990-04-01", "name": "Jane"},
        "context": {"ip": "203.0.113.9", "library": {"name": "analytics.js", "version": "5.2.1"}}
    });
    let found: Vec<(String, PiiClass)> = scan(&event)
        .into_iter()
        .map(|f| (f.path, f.class))
        .collect();
    assert_eq!(
        found,
        vec![
            ("properties.billing.card".to_string(), PiiClass::PaymentCard),
            ("properties.items[].gift_email".to_string(), PiiClass::Email),
            ("properties.credentials".to_string(), PiiClass::Secret),
            ("traits.email".to_string(), PiiClass::Email),
            ("traits.dob".to_string(), PiiClass::DateOfBirth),
            ("context.ip".to_string(), PiiClass::IpAddress),
        ],
        "userId is outside properties, traits and context; free text is not one value"
    );
    for finding in scan(&event) {
        assert!(!finding.path.contains('@') && !finding.path.contains("4111"));
    }
}

#[test]
fn class_names_round_trip() {
    for class in PiiClass::ALL {
        assert_eq!(PiiClass::parse(class.as_str()), Some(class));
    }
    assert_eq!(PiiClass::parse("EMAIL"), None);
}

#[test]
fn deep_nesting_is_cut_off() {
    let mut value = json!({"email": "deep@example.com"});
    for _ in 0..100 {
        value = json!({ "x": value });
    }
    let event = json!({ "properties": value });
    assert!(scan(&event).is_empty());
}

fn paths(found: &[Field]) -> Vec<(&str, Option<PiiClass>)> {
    let mut out = Vec::new();
    for field in found {
        out.push((field.path.as_str(), field.class));
    }
    out
}

#[test]
fn fields_lists_every_leaf_once_with_its_class() {
    let event = json!({
        "type": "track",
        "event": "Order Completed",
        "userId": "jane@example.com",
        "properties": {
            "plan": "pro",
            "coupon": null,
            "tags": [],
            "extra": {},
            "billing": {"card": "4111 1111 1111 1111", "zip": "94107"},
            "items": [{"sku": "A1"}, {"sku": "B2", "gift_email": "bob@example.com"}],
            "credentials": {"user": "jane", "pass": "x"}
        },
        "traits": {"email": "jane@example.com", "vip": true},
        "context": {"ip": "203.0.113.9", "library": {"name": "analytics.js"}}
    });
    assert_eq!(
        paths(&fields(&event)),
        vec![
            ("properties.plan", None),
            ("properties.coupon", None),
            ("properties.tags", None),
            ("properties.extra", None),
            ("properties.billing.card", Some(PiiClass::PaymentCard)),
            ("properties.billing.zip", None),
            ("properties.items[].sku", None),
            ("properties.items[].gift_email", Some(PiiClass::Email)),
            ("properties.credentials", Some(PiiClass::Secret)),
            ("traits.email", Some(PiiClass::Email)),
            ("traits.vip", None),
            ("context.ip", Some(PiiClass::IpAddress)),
            ("context.library.name", None),
        ],
        "type, event and userId are outside the scanned parts; a secret object is one field"
    );
}

#[test]
fn fields_keeps_a_class_any_element_had() {
    let event = json!({
        "properties": {
            "contacts": ["n/a", "", "jane@example.com", "later"],
            "ids": [1, 2, 3],
            "rows": [{"v": "x"}, {"v": "4111111111111111"}, {"v": null}],
            "nested": [[1], ["bob@example.com"]],
            "mixed": [{"a": 1}, "text", []]
        }
    });
    assert_eq!(
        paths(&fields(&event)),
        vec![
            ("properties.contacts[]", Some(PiiClass::Email)),
            ("properties.ids[]", None),
            ("properties.rows[].v", Some(PiiClass::PaymentCard)),
            ("properties.nested[][]", Some(PiiClass::Email)),
            ("properties.mixed[].a", None),
            ("properties.mixed[]", None),
        ]
    );
}

#[test]
fn a_key_that_looks_like_personal_data_is_written_as_a_star() {
    let event = json!({
        "traits": {
            "jane@example.com": true,
            "203.0.113.9": {"visits": 3},
            "4111111111111111": "x",
            "name": "Jane"
        },
        "properties": {"by_email": {"bob@example.com": {"email": "bob@example.com"}}}
    });
    let found = fields(&event);
    assert_eq!(
        paths(&found),
        vec![
            ("properties.by_email.*.email", Some(PiiClass::Email)),
            ("traits.*", None),
            ("traits.*.visits", None),
            ("traits.name", None),
        ],
        "two keys written as stars make one path"
    );
    for field in &found {
        assert!(
            !field.path.contains('@')
                && !field.path.contains("203.")
                && !field.path.contains("4111"),
            "{}",
            field.path
        );
    }
    // scan writes paths the same way.
    let scanned = scan(&event);
    assert_eq!(scanned.len(), 1);
    assert_eq!(scanned[0].path, "properties.by_email.*.email");
}

#[test]
fn fields_of_events_without_user_data() {
    assert!(fields(&json!("text")).is_empty());
    assert!(fields(&json!({"type": "track", "event": "x"})).is_empty());
    assert_eq!(
        paths(&fields(&json!({"properties": {}, "traits": "oops"}))),
        vec![("properties", None), ("traits", None)],
        "empty or scalar parts are leaves"
    );
    let mut deep = json!({"email": "deep@example.com"});
    for _ in 0..100 {
        deep = json!({ "x": deep });
    }
    assert!(
        fields(&json!({ "properties": deep })).is_empty(),
        "nothing past the depth limit"
    );
}
