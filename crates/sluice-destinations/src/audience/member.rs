//! Reading one audience membership event: which platform audience it is about, whether the
//! person enters or leaves it, and the raw identifiers it carries (not yet normalized).
//!
//! The audience engine emits Segment's shapes (segment-spec §4.6):
//!
//! - `identify` with `context.personas.computation_class` `audience`: membership is the
//!   boolean `traits[computation_key]`; identifiers are in `traits` (then `context.traits`).
//! - `track` `Audience Entered` / `Audience Exited`: membership is the boolean
//!   `properties[computation_key]` (the key from `context.personas.computation_key`, else
//!   `properties.audience_key`), or the event name when that boolean is absent; identifiers are
//!   in `context.traits` (then `properties`).
//!
//! The platform's audience id is `context.personas.external_audience_id`. Identifier names
//! follow [`TRAIT_NAMES`] (Segment's snake_case and camelCase spellings, and `address.*`); the
//! mobile ad id is `context.device.advertisingId` (`type` `ios` → IDFA, `android` → AAID),
//! skipped when `context.device.adTrackingEnabled` is `false`; the external id is `userId`.
//!
//! A person whose `context.consent.categoryPreferences.<category>` is `false` is never added:
//! an entered event becomes a removal ([`Membership::consent_refused`] says so).
//!
//! What is not a membership event is [`Refusal::Unsupported`] (filtered: another kind of
//! event, which this destination has no use for). A membership event that can never be
//! delivered is [`Refusal::Invalid`] (dead-lettered: no computation key, a membership value
//! that is not a boolean, no `external_audience_id` or one that is not the platform's numeric
//! id) — the adapters add "no usable identifier" to these.

use std::borrow::Cow;

use serde_json::Value;

use super::normalize;
use super::raw::{Cursor, Raw, Scalar};

/// Enter or leave.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Add,
    Remove,
}

/// The person's answer for the destination's consent category.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consent {
    Granted,
    Refused,
    /// The event carries no answer for the category.
    Unknown,
}

/// The operating system of the device whose ad id the event carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceOs {
    /// The id is an IDFA.
    Ios,
    /// The id is an AAID (GAID).
    Android,
    Unknown,
}

/// The identifier fields read from traits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Email,
    Phone,
    FirstName,
    LastName,
    City,
    State,
    PostalCode,
    Country,
    Birthday,
    Gender,
}

const FIELDS: usize = 10;

/// The trait names read for each field, in order of preference (`a.b` is a nested object).
pub const TRAIT_NAMES: [(Field, &[&str]); FIELDS] = [
    (Field::Email, &["email"]),
    (Field::Phone, &["phone", "phone_number", "phoneNumber"]),
    (Field::FirstName, &["first_name", "firstName"]),
    (Field::LastName, &["last_name", "lastName"]),
    (Field::City, &["city", "address.city"]),
    (Field::State, &["state", "address.state"]),
    (
        Field::PostalCode,
        &[
            "postal_code",
            "postalCode",
            "zip",
            "zip_code",
            "zipCode",
            "address.postal_code",
            "address.postalCode",
            "address.zip",
        ],
    ),
    (Field::Country, &["country", "address.country"]),
    (
        Field::Birthday,
        &["birthday", "birth_date", "birthDate", "date_of_birth"],
    ),
    (Field::Gender, &["gender"]),
];

/// The raw identifiers of one person.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Traits<'a> {
    values: [Option<Cow<'a, str>>; FIELDS],
    /// `context.device.advertisingId` and what kind of id it is.
    pub advertising_id: Option<(Cow<'a, str>, DeviceOs)>,
    /// `userId`.
    pub user_id: Option<Cow<'a, str>>,
}

impl<'a> Traits<'a> {
    /// The raw value of a field.
    pub fn get(&self, field: Field) -> Option<&str> {
        self.values[field as usize].as_deref()
    }

    /// Sets a field (tests, and callers building members by hand).
    pub fn set(&mut self, field: Field, value: impl Into<Cow<'a, str>>) {
        self.values[field as usize] = Some(value.into());
    }

    /// The year, month and day of `birthday` when it starts with `YYYY-MM-DD` (a date or an
    /// ISO date-time).
    pub fn birth_date(&self) -> Option<(&str, &str, &str)> {
        let text = self.get(Field::Birthday)?.trim();
        let date = text.get(..10)?;
        let mut parts = date.split('-');
        let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
        let digits =
            |part: &str, len: usize| part.len() == len && part.bytes().all(|b| b.is_ascii_digit());
        if !(digits(year, 4) && digits(month, 2) && digits(day, 2)) {
            return None;
        }
        Some((year, month, day))
    }

    /// The names of the identifiers present (never their values), for reasons.
    pub fn present(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = TRAIT_NAMES
            .iter()
            .filter(|(field, _)| self.get(*field).is_some())
            .map(|(_, names)| names[0])
            .collect();
        if self.advertising_id.is_some() {
            names.push("advertisingId");
        }
        if self.user_id.is_some() {
            names.push("userId");
        }
        names
    }
}

/// One person entering or leaving one platform audience.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership<'a> {
    /// The platform's audience id (`external_audience_id`), ASCII digits.
    pub audience_id: Cow<'a, str>,
    pub action: Action,
    /// The event said "entered" but the person refused the consent category: `action` is
    /// `Remove`.
    pub consent_refused: bool,
    pub consent: Consent,
    pub traits: Traits<'a>,
}

/// Why an event is not a membership the adapter can send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not an audience membership event (see [`crate::Plan::unsupported`]).
    Unsupported(String),
    /// A membership event that can never be delivered (see [`crate::Plan::invalid`]).
    Invalid(String),
}

fn unsupported(reason: &str) -> Refusal {
    Refusal::Unsupported(reason.to_string())
}

fn invalid(reason: impl Into<String>) -> Refusal {
    Refusal::Invalid(reason.into())
}

/// Reads a membership event from its JSON text; `consent_category` is the
/// `categoryPreferences` key that must not be `false` for the person to be added.
pub fn read<'a>(text: &'a str, consent_category: &str) -> Result<Membership<'a>, Refusal> {
    // Read in place: the parts are large enough that moving them costs more than reading.
    let mut event = Event::default();
    event.read(text, consent_category);
    let personas = &mut event.context.personas;
    let non_empty = |text: Option<Cow<'a, str>>| text.filter(|text| !text.is_empty());
    let (entered, shape) = match non_empty(event.kind.take()).as_deref() {
        Some("identify") => {
            if personas.class.as_deref() != Some("audience") {
                return Err(unsupported(
                    "not an audience membership event (identify without context.personas.computation_class \"audience\")",
                ));
            }
            let key = non_empty(personas.key.take().and_then(Scalar::into_str))
                .ok_or_else(|| invalid("audience event has no context.personas.computation_key"))?;
            let entered = match entry(&event.traits, &key) {
                Some(member) => member
                    .as_bool()
                    .ok_or_else(|| invalid(format!("traits.{key} is not true or false")))?,
                None => return Err(invalid(format!("identify has no traits.{key} membership"))),
            };
            (entered, Shape::Identify)
        }
        Some("track") => {
            let named = match non_empty(event.name.take()).as_deref() {
                Some("Audience Entered") => true,
                Some("Audience Exited") => false,
                _ => {
                    return Err(unsupported(
                        "not an audience membership event (track other than Audience Entered / Audience Exited)",
                    ));
                }
            };
            if personas
                .class
                .as_deref()
                .is_some_and(|class| class != "audience")
            {
                return Err(unsupported(
                    "not an audience membership event (context.personas.computation_class is not \"audience\")",
                ));
            }
            let key = match personas.key.take() {
                Some(key) => key.into_str(),
                None => entry(&event.properties, "audience_key").and_then(|key| key.as_str()),
            };
            let key = non_empty(key).ok_or_else(|| {
                invalid("audience event names no audience (context.personas.computation_key or properties.audience_key)")
            })?;
            let entered = match entry(&event.properties, &key) {
                None => named,
                Some(member) if member.is_null() => named,
                Some(member) => member
                    .as_bool()
                    .ok_or_else(|| invalid(format!("properties.{key} is not true or false")))?,
            };
            (entered, Shape::Track)
        }
        _ => {
            return Err(unsupported(
                "not an audience membership event (only identify and track calls carry them)",
            ));
        }
    };
    let audience_id = personas.external_id.take().and_then(id_text).ok_or_else(|| {
        invalid("no context.personas.external_audience_id: the audience does not exist on the platform yet")
    })?;
    if !audience_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            "context.personas.external_audience_id is not a numeric platform audience id",
        ));
    }
    let consent = match event.context.consent {
        Some(true) => Consent::Granted,
        Some(false) => Consent::Refused,
        None => Consent::Unknown,
    };
    let consent_refused = entered && consent == Consent::Refused;
    let action = if entered && !consent_refused {
        Action::Add
    } else {
        Action::Remove
    };
    Ok(Membership {
        audience_id,
        action,
        consent_refused,
        consent,
        traits: event.traits(shape),
    })
}

/// The two shapes of membership event.
#[derive(Clone, Copy)]
enum Shape {
    Identify,
    Track,
}

/// What one pass over a membership event's text finds. Each part is read where it stands;
/// a key given twice replaces what the first gave, as a parser keeps the last.
#[derive(Default)]
struct Event<'a> {
    /// `type`.
    kind: Option<Cow<'a, str>>,
    /// `event`.
    name: Option<Cow<'a, str>>,
    user_id: Option<Cow<'a, str>>,
    traits: Option<Source<'a>>,
    properties: Option<Source<'a>>,
    context: Context<'a>,
}

/// What is read from `context`.
#[derive(Default)]
struct Context<'a> {
    traits: Option<Source<'a>>,
    personas: Personas<'a>,
    /// `consent.categoryPreferences.<category>`, when it is a boolean.
    consent: Option<bool>,
    device: Device<'a>,
}

/// `context.personas`.
#[derive(Default)]
struct Personas<'a> {
    class: Option<Cow<'a, str>>,
    key: Option<Scalar<'a>>,
    external_id: Option<Scalar<'a>>,
}

/// `context.device`.
#[derive(Default)]
struct Device<'a> {
    advertising_id: Option<Cow<'a, str>>,
    kind: Option<Cow<'a, str>>,
    tracking: Option<bool>,
}

/// An object identifiers are read from (`traits`, `context.traits`, `properties`): the
/// identifiers found in it, and what the membership boolean is looked up in once the
/// audience's key is known (it may come later in the text, in `context.personas`).
#[derive(Default)]
struct Source<'a> {
    found: Found<'a>,
    /// The last few entries that name no identifier, one of which is usually the membership.
    others: [Option<(Cow<'a, str>, Raw<'a>)>; OTHERS],
    /// More entries named no identifier than `others` holds.
    overflow: bool,
    /// The object's text, looked through when `others` cannot answer.
    raw: Raw<'a>,
}

/// How many entries naming no identifier a [`Source`] keeps.
const OTHERS: usize = 4;

/// Identifier values of one object, each from its best-ranked name ([`TRAIT_NAMES`] order).
#[derive(Default)]
struct Found<'a> {
    values: [Option<Cow<'a, str>>; FIELDS],
    ranks: [u8; FIELDS],
}

impl<'a> Event<'a> {
    fn read(&mut self, text: &'a str, consent_category: &str) {
        let mut cursor = Cursor::new(text);
        if !cursor.enter() {
            return;
        }
        while let Some(key) = cursor.key() {
            match key.as_ref() {
                "type" => self.kind = cursor.read().into_str(),
                "event" => self.name = cursor.read().into_str(),
                "userId" => self.user_id = id_text(cursor.read()),
                "traits" => Source::read(&mut self.traits, &mut cursor),
                "properties" => Source::read(&mut self.properties, &mut cursor),
                "context" => self.context.read(&mut cursor, consent_category),
                _ => cursor.skip(),
            }
        }
    }

    /// The identifiers, each from the first of the shape's sources that has it.
    fn traits(&mut self, shape: Shape) -> Traits<'a> {
        let (first, second) = match shape {
            Shape::Identify => (&mut self.traits, &mut self.context.traits),
            Shape::Track => (&mut self.context.traits, &mut self.properties),
        };
        let mut traits = Traits::default();
        for source in [first, second].into_iter().flatten() {
            for (slot, value) in traits.values.iter_mut().zip(&mut source.found.values) {
                if slot.is_none() {
                    *slot = value.take();
                }
            }
        }
        let device = &mut self.context.device;
        let non_empty = |text: Option<Cow<'a, str>>| text.filter(|text| !text.is_empty());
        let tracking_off = device.tracking == Some(false);
        if let Some(id) = non_empty(device.advertising_id.take()).filter(|_| !tracking_off) {
            let os = match non_empty(device.kind.take()) {
                Some(kind) if kind.eq_ignore_ascii_case("ios") => DeviceOs::Ios,
                Some(kind) if kind.eq_ignore_ascii_case("android") => DeviceOs::Android,
                _ => DeviceOs::Unknown,
            };
            traits.advertising_id = Some((id, os));
        }
        traits.user_id = self.user_id.take();
        traits
    }
}

impl<'a> Context<'a> {
    /// Reads `context` (what an earlier `context` gave is dropped).
    fn read(&mut self, cursor: &mut Cursor<'a>, consent_category: &str) {
        *self = Context::default();
        if !cursor.enter() {
            return;
        }
        while let Some(key) = cursor.key() {
            match key.as_ref() {
                "traits" => Source::read(&mut self.traits, cursor),
                "personas" => self.personas = Personas::read(cursor),
                "consent" => self.consent = consent_answer(cursor, consent_category),
                "device" => self.device = Device::read(cursor),
                _ => cursor.skip(),
            }
        }
    }
}

impl<'a> Personas<'a> {
    fn read(cursor: &mut Cursor<'a>) -> Personas<'a> {
        let mut personas = Personas::default();
        if !cursor.enter() {
            return personas;
        }
        while let Some(key) = cursor.key() {
            match key.as_ref() {
                "computation_class" => personas.class = cursor.read().into_str(),
                "computation_key" => personas.key = Some(cursor.read()),
                "external_audience_id" => personas.external_id = Some(cursor.read()),
                _ => cursor.skip(),
            }
        }
        personas
    }
}

impl<'a> Device<'a> {
    fn read(cursor: &mut Cursor<'a>) -> Device<'a> {
        let mut device = Device::default();
        if !cursor.enter() {
            return device;
        }
        while let Some(key) = cursor.key() {
            match key.as_ref() {
                "advertisingId" => device.advertising_id = cursor.read().into_str(),
                "type" => device.kind = cursor.read().into_str(),
                "adTrackingEnabled" => device.tracking = cursor.read().as_bool(),
                _ => cursor.skip(),
            }
        }
        device
    }
}

/// `consent.categoryPreferences.<category>` as a boolean, the cursor on `consent`.
fn consent_answer(cursor: &mut Cursor<'_>, category: &str) -> Option<bool> {
    let mut answer = None;
    if !cursor.enter() {
        return answer;
    }
    while let Some(key) = cursor.key() {
        if key != "categoryPreferences" {
            cursor.skip();
            continue;
        }
        answer = None;
        if !cursor.enter() {
            continue;
        }
        while let Some(key) = cursor.key() {
            if key == category {
                answer = cursor.read().as_bool();
            } else {
                cursor.skip();
            }
        }
    }
    answer
}

impl<'a> Source<'a> {
    /// Reads the object the cursor is on into `slot` (`None` for anything else, passed over).
    fn read(slot: &mut Option<Source<'a>>, cursor: &mut Cursor<'a>) {
        let start = cursor.position();
        *slot = None;
        if !cursor.enter() {
            return;
        }
        let source = slot.insert(Source::default());
        let mut address = Found::default();
        let mut kept = 0;
        while let Some(key) = cursor.key() {
            if key == "address" {
                address = Found::default();
                if cursor.enter() {
                    while let Some(key) = cursor.key() {
                        match address_field_of(&key) {
                            Some((field, rank)) => address.keep(field, rank, cursor.read()),
                            None => cursor.skip(),
                        }
                    }
                }
            } else if let Some((field, rank)) = field_of(&key) {
                source.found.keep(field, rank, cursor.read());
            } else {
                let start = cursor.position();
                cursor.skip();
                if let Some(other) = source.others.get_mut(kept) {
                    *other = Some((key, cursor.since(start)));
                }
                kept += 1;
            }
        }
        // Names inside `address` rank after every top-level name.
        for (slot, value) in source.found.values.iter_mut().zip(address.values) {
            if slot.is_none() {
                *slot = value;
            }
        }
        source.overflow = kept > OTHERS;
        source.raw = cursor.since(start);
    }
}

/// The value of `key` in a source, when there is one (the last, when it is given twice).
fn entry<'a>(source: &Option<Source<'a>>, key: &str) -> Option<Raw<'a>> {
    let source = source.as_ref()?;
    let names_identifier = key == "address" || field_of(key).is_some();
    if source.overflow || names_identifier {
        let [value] = source.raw.get([key]);
        return value;
    }
    source
        .others
        .iter()
        .rev()
        .flatten()
        .find(|(name, _)| name == key)
        .map(|(_, value)| *value)
}

impl<'a> Found<'a> {
    /// Keeps `value` for `field` when it is usable text and `rank` is at least as good as
    /// what is there (a name given twice in one object: the later one, as a parser keeps it).
    fn keep(&mut self, field: Field, rank: u8, value: Scalar<'a>) {
        let slot = field as usize;
        if self.values[slot].is_some() && rank > self.ranks[slot] {
            return;
        }
        if let Some(text) = text_of(value) {
            self.values[slot] = Some(text);
            self.ranks[slot] = rank;
        }
    }
}

/// An id: a non-empty string, or a number's digits.
fn id_text(value: Scalar<'_>) -> Option<Cow<'_, str>> {
    match value {
        Scalar::Str(text) => (!text.is_empty()).then_some(text),
        Scalar::Number(digits) => Some(Cow::Borrowed(digits)),
        _ => None,
    }
}

/// The field and rank (position in [`TRAIT_NAMES`]) of a top-level trait name; the fast form
/// of that table, which a test keeps in step with it.
fn field_of(key: &str) -> Option<(Field, u8)> {
    Some(match key {
        "email" => (Field::Email, 0),
        "phone" => (Field::Phone, 0),
        "phone_number" => (Field::Phone, 1),
        "phoneNumber" => (Field::Phone, 2),
        "first_name" => (Field::FirstName, 0),
        "firstName" => (Field::FirstName, 1),
        "last_name" => (Field::LastName, 0),
        "lastName" => (Field::LastName, 1),
        "city" => (Field::City, 0),
        "state" => (Field::State, 0),
        "postal_code" => (Field::PostalCode, 0),
        "postalCode" => (Field::PostalCode, 1),
        "zip" => (Field::PostalCode, 2),
        "zip_code" => (Field::PostalCode, 3),
        "zipCode" => (Field::PostalCode, 4),
        "country" => (Field::Country, 0),
        "birthday" => (Field::Birthday, 0),
        "birth_date" => (Field::Birthday, 1),
        "birthDate" => (Field::Birthday, 2),
        "date_of_birth" => (Field::Birthday, 3),
        "gender" => (Field::Gender, 0),
        _ => return None,
    })
}

/// The same for the names inside `address`.
fn address_field_of(key: &str) -> Option<(Field, u8)> {
    Some(match key {
        "city" => (Field::City, 1),
        "state" => (Field::State, 1),
        "postal_code" => (Field::PostalCode, 5),
        "postalCode" => (Field::PostalCode, 6),
        "zip" => (Field::PostalCode, 7),
        "country" => (Field::Country, 1),
        _ => return None,
    })
}

/// A usable text value: a non-blank string, or a number's digits.
fn text_of(value: Scalar<'_>) -> Option<Cow<'_, str>> {
    match value {
        Scalar::Str(text) => (!normalize::trim(&text).is_empty()).then_some(text),
        Scalar::Number(digits) => Some(Cow::Borrowed(digits)),
        _ => None,
    }
}

/// Turns a membership event into the removal of the same person from the same audience, in
/// place: `traits[key]` (identify) or `properties[key]` (track) becomes `false`, a track's
/// name `Audience Exited`. What is not a membership event is left alone (`false`). The delivery
/// engine uses it for people consent keeps out of an ad platform: they are removed, never
/// added.
pub fn into_removal(event: &mut Value) -> bool {
    let key = event
        .pointer("/context/personas/computation_key")
        .and_then(Value::as_str)
        .or_else(|| {
            event
                .pointer("/properties/audience_key")
                .and_then(Value::as_str)
        })
        .filter(|key| !key.is_empty())
        .map(str::to_string);
    let Some(key) = key else {
        return false;
    };
    let class = event
        .pointer("/context/personas/computation_class")
        .and_then(Value::as_str);
    match event.get("type").and_then(Value::as_str) {
        Some("identify") if class == Some("audience") => {
            match event.get_mut("traits").and_then(Value::as_object_mut) {
                Some(traits) => {
                    traits.insert(key, Value::Bool(false));
                    true
                }
                None => false,
            }
        }
        Some("track")
            if matches!(
                event.get("event").and_then(Value::as_str),
                Some("Audience Entered" | "Audience Exited")
            ) && class.is_none_or(|class| class == "audience") =>
        {
            event["event"] = Value::String("Audience Exited".into());
            if let Some(properties) = event.get_mut("properties").and_then(Value::as_object_mut) {
                properties.insert(key, Value::Bool(false));
            }
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    /// Reads an event given as a value, from its text (kept for the test's duration).
    fn read(event: &Value, consent_category: &str) -> Result<Membership<'static>, Refusal> {
        let text: &'static str = Box::leak(event.to_string().into_boxed_str());
        super::read(text, consent_category)
    }

    fn identify(member: Value, extra: Value) -> Value {
        let mut event = json!({
            "type": "identify",
            "userId": "u1",
            "anonymousId": "a1",
            "messageId": "m1",
            "timestamp": "2026-11-22T10:00:00Z",
            "traits": {"vip_buyers": member, "email": "Mary@Example.com", "firstName": "Mary",
                       "address": {"city": "San Francisco", "postalCode": 94105}},
            "context": {
                "personas": {"computation_class": "audience", "computation_id": "aud_1",
                             "computation_key": "vip_buyers", "space_id": "ws",
                             "external_audience_id": "23850000001"},
                "device": {"advertisingId": "6D92078A-8246-4BA4-AE5B-76104861E7DC", "type": "ios"},
                "consent": {"categoryPreferences": {"advertising": true}}
            }
        });
        merge(&mut event, extra);
        event
    }

    fn merge(target: &mut Value, extra: Value) {
        if let (Value::Object(target), Value::Object(extra)) = (target, extra) {
            for (key, value) in extra {
                match (target.get_mut(&key), value) {
                    (Some(slot @ Value::Object(_)), value @ Value::Object(_)) => merge(slot, value),
                    (_, Value::Null) => {
                        target.remove(&key);
                    }
                    (_, value) => {
                        target.insert(key, value);
                    }
                }
            }
        }
    }

    #[test]
    fn identify_entered_and_exited() {
        let event = identify(json!(true), json!({}));
        let member = read(&event, "advertising").unwrap();
        assert_eq!(member.audience_id, "23850000001");
        assert_eq!(member.action, Action::Add);
        assert_eq!(member.consent, Consent::Granted);
        assert!(!member.consent_refused);
        assert_eq!(member.traits.get(Field::Email), Some("Mary@Example.com"));
        assert_eq!(member.traits.get(Field::FirstName), Some("Mary"));
        assert_eq!(member.traits.get(Field::City), Some("San Francisco"));
        assert_eq!(member.traits.get(Field::PostalCode), Some("94105"));
        assert_eq!(
            member.traits.advertising_id,
            Some((
                Cow::Borrowed("6D92078A-8246-4BA4-AE5B-76104861E7DC"),
                DeviceOs::Ios
            ))
        );
        assert_eq!(member.traits.user_id.as_deref(), Some("u1"));
        let event = identify(json!(false), json!({}));
        assert_eq!(read(&event, "advertising").unwrap().action, Action::Remove);
    }

    #[test]
    fn track_entered_and_exited_with_identifiers_in_context_traits_or_properties() {
        let event = json!({
            "type": "track", "event": "Audience Entered", "userId": 42,
            "properties": {"audience_key": "vip_buyers", "vip_buyers": true, "phone": "+1 555 987 6543"},
            "context": {"traits": {"email": "a@b.co", "last_name": "Smith"},
                        "personas": {"external_audience_id": 1234}}
        });
        let member = read(&event, "advertising").unwrap();
        assert_eq!(member.action, Action::Add);
        assert_eq!(member.audience_id, "1234");
        assert_eq!(member.consent, Consent::Unknown);
        assert_eq!(member.traits.get(Field::Email), Some("a@b.co"));
        assert_eq!(member.traits.get(Field::LastName), Some("Smith"));
        assert_eq!(member.traits.get(Field::Phone), Some("+1 555 987 6543"));
        assert_eq!(member.traits.user_id.as_deref(), Some("42"));
        assert_eq!(
            member.traits.present(),
            ["email", "phone", "last_name", "userId"]
        );

        // The boolean decides; without it the event name does.
        let mut exited = event.clone();
        exited["event"] = json!("Audience Exited");
        exited["properties"]["vip_buyers"] = json!(false);
        assert_eq!(read(&exited, "advertising").unwrap().action, Action::Remove);
        exited["properties"]
            .as_object_mut()
            .unwrap()
            .remove("vip_buyers");
        assert_eq!(read(&exited, "advertising").unwrap().action, Action::Remove);
    }

    #[test]
    fn a_refused_consent_turns_an_add_into_a_removal() {
        let refused =
            json!({"context": {"consent": {"categoryPreferences": {"advertising": false}}}});
        let event = identify(json!(true), refused);
        let member = read(&event, "advertising").unwrap();
        assert_eq!(member.action, Action::Remove);
        assert!(member.consent_refused);
        // Another category is read when configured.
        let member = read(&event, "marketing").unwrap();
        assert_eq!(member.action, Action::Add);
        assert_eq!(member.consent, Consent::Unknown);
        // A removal stays a removal and is not flagged.
        let event = identify(
            json!(false),
            json!({"context": {"consent": {"categoryPreferences": {"advertising": false}}}}),
        );
        let member = read(&event, "advertising").unwrap();
        assert_eq!(member.action, Action::Remove);
        assert!(!member.consent_refused);
    }

    #[test]
    fn ad_ids_need_tracking_allowed_and_name_their_os() {
        let event = identify(
            json!(true),
            json!({"context": {"device": {"adTrackingEnabled": false}}}),
        );
        assert_eq!(
            read(&event, "advertising").unwrap().traits.advertising_id,
            None
        );
        let event = identify(
            json!(true),
            json!({"context": {"device": {"type": "Android"}}}),
        );
        let traits = read(&event, "advertising").unwrap().traits;
        assert_eq!(
            traits.advertising_id.map(|(_, os)| os),
            Some(DeviceOs::Android)
        );
        let event = identify(json!(true), json!({"context": {"device": {"type": null}}}));
        let traits = read(&event, "advertising").unwrap().traits;
        assert_eq!(
            traits.advertising_id.map(|(_, os)| os),
            Some(DeviceOs::Unknown)
        );
    }

    #[test]
    fn the_fast_name_lookup_is_the_trait_table() {
        let mut expected = Vec::new();
        for (field, names) in TRAIT_NAMES.iter() {
            for (rank, name) in names.iter().enumerate() {
                let rank = u8::try_from(rank).unwrap();
                expected.push((name.to_string(), *field, rank));
            }
        }
        let mut found = Vec::new();
        for (field, names) in TRAIT_NAMES.iter() {
            for name in names.iter() {
                let got = match name.strip_prefix("address.") {
                    Some(inner) => address_field_of(inner),
                    None => field_of(name),
                };
                let (got_field, rank) = got.unwrap_or_else(|| panic!("{name} not looked up"));
                assert_eq!(got_field, *field, "{name}");
                found.push((name.to_string(), got_field, rank));
            }
        }
        assert_eq!(found, expected);
        // Nothing else is looked up.
        assert_eq!(field_of("name"), None);
        assert_eq!(address_field_of("street"), None);
    }

    #[test]
    fn earlier_sources_and_names_win() {
        let event = json!({
            "type": "track", "event": "Audience Entered",
            "properties": {"audience_key": "k", "k": true, "email": "props@x.co", "zip": "2",
                           "phone": "555"},
            "context": {"traits": {"zipCode": "1", "postal_code": " ", "address": {"zip": "3"},
                                   "phoneNumber": "777"},
                        "personas": {"external_audience_id": "1"}}
        });
        let traits = read(&event, "advertising").unwrap().traits;
        assert_eq!(traits.get(Field::Email), Some("props@x.co"));
        assert_eq!(traits.get(Field::PostalCode), Some("1"));
        assert_eq!(traits.get(Field::Phone), Some("777"));
    }

    #[test]
    fn birth_dates_split_into_parts() {
        let mut traits = Traits::default();
        traits.set(Field::Birthday, "1985-07-03");
        assert_eq!(traits.birth_date(), Some(("1985", "07", "03")));
        traits.set(Field::Birthday, "1985-07-03T00:00:00Z");
        assert_eq!(traits.birth_date(), Some(("1985", "07", "03")));
        for bad in ["07/03/1985", "1985-7-3", "1985", ""] {
            traits.set(Field::Birthday, bad);
            assert_eq!(traits.birth_date(), None, "{bad}");
        }
    }

    #[test]
    fn what_is_not_a_membership_is_unsupported() {
        for event in [
            json!({"type": "page", "name": "Home"}),
            json!({"type": "track", "event": "Order Completed", "properties": {}}),
            json!({"type": "identify", "userId": "u1", "traits": {"email": "a@b.co"}}),
            identify(
                json!(true),
                json!({"context": {"personas": {"computation_class": "trait"}}}),
            ),
            json!({"type": "track", "event": "Audience Entered",
                   "context": {"personas": {"computation_class": "journey_step"}}}),
            json!({"type": "merge"}),
        ] {
            assert!(
                matches!(read(&event, "advertising"), Err(Refusal::Unsupported(_))),
                "{event}"
            );
        }
    }

    #[test]
    fn broken_membership_events_are_invalid() {
        let cases = [
            (
                identify(
                    json!(true),
                    json!({"context": {"personas": {"external_audience_id": null}}}),
                ),
                "external_audience_id",
            ),
            (
                identify(
                    json!(true),
                    json!({"context": {"personas": {"external_audience_id": ""}}}),
                ),
                "external_audience_id",
            ),
            (
                identify(
                    json!(true),
                    json!({"context": {"personas": {"external_audience_id": "../act_1/users"}}}),
                ),
                "numeric",
            ),
            (identify(json!("yes"), json!({})), "not true or false"),
            (
                identify(json!(null), json!({"traits": {"vip_buyers": null}})),
                "membership",
            ),
            (
                identify(
                    json!(true),
                    json!({"context": {"personas": {"computation_key": ""}}}),
                ),
                "computation_key",
            ),
            (
                json!({"type": "track", "event": "Audience Entered", "properties": {}}),
                "names no audience",
            ),
            (
                json!({"type": "track", "event": "Audience Entered",
                       "properties": {"audience_key": "k", "k": "true"},
                       "context": {"personas": {"external_audience_id": "1"}}}),
                "not true or false",
            ),
        ];
        for (event, says) in cases {
            match read(&event, "advertising") {
                Err(Refusal::Invalid(reason)) => assert!(reason.contains(says), "{reason}"),
                other => panic!("{event}: {other:?}"),
            }
        }
    }

    #[test]
    fn removals_are_made_from_either_shape_and_read_as_removals() {
        let mut identify = json!({"type": "identify", "userId": "u1",
            "traits": {"vip": true, "email": "a@example.com"},
            "context": {"personas": {"computation_class": "audience", "computation_key": "vip",
                "external_audience_id": "123"}}});
        assert!(into_removal(&mut identify));
        assert_eq!(identify["traits"]["vip"], json!(false));
        assert_eq!(
            read(&identify, "advertising").unwrap().action,
            Action::Remove
        );

        let mut track = json!({"type": "track", "event": "Audience Entered", "userId": "u1",
            "properties": {"audience_key": "vip", "vip": true},
            "context": {"traits": {"email": "a@example.com"},
                "personas": {"computation_class": "audience", "computation_key": "vip",
                    "external_audience_id": "123"}}});
        assert!(into_removal(&mut track));
        assert_eq!(track["event"], json!("Audience Exited"));
        assert_eq!(track["properties"]["vip"], json!(false));
        assert_eq!(read(&track, "advertising").unwrap().action, Action::Remove);

        // Other events are left alone.
        let mut other = json!({"type": "track", "event": "Order Completed",
            "properties": {"audience_key": "vip"}});
        let before = other.clone();
        assert!(!into_removal(&mut other));
        assert_eq!(other, before);
        let mut computed = json!({"type": "identify", "traits": {"ltv": 3},
            "context": {"personas": {"computation_class": "trait", "computation_key": "ltv"}}});
        assert!(!into_removal(&mut computed));
    }

    /// The reading rules of the module documentation, spelled out over a parsed event: the
    /// oracle the one-pass reader is checked against. Refusals compare by kind only.
    fn reference(event: &Value, category: &str) -> Result<Membership<'static>, bool> {
        const UNSUPPORTED: bool = true;
        const INVALID: bool = false;
        let string = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_string);
        let non_empty = |value: Option<&Value>| string(value).filter(|text| !text.is_empty());
        let id = |value: Option<&Value>| match value {
            Some(Value::String(text)) if !text.is_empty() => Some(text.clone()),
            Some(Value::Number(number)) => Some(number.to_string()),
            _ => None,
        };
        let personas = event.pointer("/context/personas");
        fn at<'v>(value: Option<&'v Value>, key: &str) -> Option<&'v Value> {
            value.and_then(|value| value.get(key))
        }
        let class = string(at(personas, "computation_class"));
        let key = at(personas, "computation_key");
        let own_traits = event.get("traits");
        let properties = event.get("properties");
        let context_traits = event.pointer("/context/traits");
        let (entered, sources) = match non_empty(event.get("type")).as_deref() {
            Some("identify") => {
                if class.as_deref() != Some("audience") {
                    return Err(UNSUPPORTED);
                }
                let key = non_empty(key).ok_or(INVALID)?;
                let member = at(own_traits, &key).ok_or(INVALID)?;
                (
                    member.as_bool().ok_or(INVALID)?,
                    [own_traits, context_traits],
                )
            }
            Some("track") => {
                let named = match non_empty(event.get("event")).as_deref() {
                    Some("Audience Entered") => true,
                    Some("Audience Exited") => false,
                    _ => return Err(UNSUPPORTED),
                };
                if class.as_deref().is_some_and(|class| class != "audience") {
                    return Err(UNSUPPORTED);
                }
                let key = match key {
                    Some(key) => key.as_str().map(str::to_string),
                    None => string(at(properties, "audience_key")),
                };
                let key = key.filter(|key| !key.is_empty()).ok_or(INVALID)?;
                let entered = match at(properties, &key) {
                    None | Some(Value::Null) => named,
                    Some(member) => member.as_bool().ok_or(INVALID)?,
                };
                (entered, [context_traits, properties])
            }
            _ => return Err(UNSUPPORTED),
        };
        let audience_id = id(at(personas, "external_audience_id")).ok_or(INVALID)?;
        if !audience_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(INVALID);
        }
        let answer = event
            .pointer(&format!("/context/consent/categoryPreferences/{category}"))
            .and_then(Value::as_bool);
        let consent = match answer {
            Some(true) => Consent::Granted,
            Some(false) => Consent::Refused,
            None => Consent::Unknown,
        };
        let consent_refused = entered && consent == Consent::Refused;
        let mut traits = Traits::default();
        for (field, names) in TRAIT_NAMES {
            let usable = |value: &Value| match value {
                Value::String(text) if !text.trim().is_empty() => Some(text.clone()),
                Value::Number(number) => Some(number.to_string()),
                _ => None,
            };
            let found = sources
                .iter()
                .flatten()
                .filter(|source| source.is_object())
                .flat_map(|source| {
                    names.iter().filter_map(move |name| {
                        let path = format!("/{}", name.replace('.', "/"));
                        source.pointer(&path).and_then(usable)
                    })
                })
                .next();
            if let Some(value) = found {
                traits.set(field, value);
            }
        }
        let device = event.pointer("/context/device");
        let tracking_off = at(device, "adTrackingEnabled").and_then(Value::as_bool) == Some(false);
        if let Some(ad_id) = non_empty(at(device, "advertisingId")).filter(|_| !tracking_off) {
            let os = match non_empty(at(device, "type")) {
                Some(kind) if kind.eq_ignore_ascii_case("ios") => DeviceOs::Ios,
                Some(kind) if kind.eq_ignore_ascii_case("android") => DeviceOs::Android,
                _ => DeviceOs::Unknown,
            };
            traits.advertising_id = Some((Cow::Owned(ad_id), os));
        }
        traits.user_id = id(event.get("userId")).map(Cow::Owned);
        Ok(Membership {
            audience_id: Cow::Owned(audience_id),
            action: if entered && !consent_refused {
                Action::Add
            } else {
                Action::Remove
            },
            consent_refused,
            consent,
            traits,
        })
    }

    /// An object of the given entries, in a shuffled order, each present or not.
    fn object(entries: Vec<BoxedStrategy<Option<(String, Value)>>>) -> BoxedStrategy<Value> {
        entries
            .prop_shuffle()
            .prop_map(|entries| {
                Value::Object(
                    entries
                        .into_iter()
                        .flatten()
                        .collect::<serde_json::Map<_, _>>(),
                )
            })
            .boxed()
    }

    /// Maybe the entry `key`, with one of `values`.
    fn maybe(key: &'static str, values: Vec<Value>) -> BoxedStrategy<Option<(String, Value)>> {
        proptest::option::of(proptest::sample::select(values))
            .prop_map(move |value| value.map(|value| (key.to_string(), value)))
            .boxed()
    }

    /// Usually the entry `key` with the first of `values`; else as [`maybe`].
    fn likely(key: &'static str, values: Vec<Value>) -> BoxedStrategy<Option<(String, Value)>> {
        let first = Some((key.to_string(), values[0].clone()));
        prop_oneof![4 => Just(first), 1 => maybe(key, values)].boxed()
    }

    /// Identifier objects: names from the table and others, usable values and not.
    fn identifiers(extra: Vec<BoxedStrategy<Option<(String, Value)>>>) -> BoxedStrategy<Value> {
        let values = || {
            vec![
                json!("Mary@Example.com"),
                json!("+1 415 555 0100"),
                json!("  "),
                json!(""),
                json!(94105),
                json!(true),
                json!(null),
                json!({"x": "y"}),
            ]
        };
        let mut entries = extra;
        for name in [
            "email",
            "phone",
            "phone_number",
            "firstName",
            "first_name",
            "city",
            "postalCode",
            "zip",
            "birthday",
            "gender",
            "plan",
            "n1",
            "n2",
            "n3",
        ] {
            entries.push(maybe(name, values()));
        }
        let address = object(vec![
            maybe("city", values()),
            maybe("postal_code", values()),
            maybe("country", values()),
            maybe("street", values()),
        ]);
        entries.push(
            proptest::option::of(address)
                .prop_map(|address| address.map(|address| ("address".to_string(), address)))
                .boxed(),
        );
        object(entries)
    }

    fn membership_event() -> impl Strategy<Value = Value> {
        let member = || vec![json!(true), json!(false), json!(null), json!("yes")];
        let wrap = |key: &'static str, value: BoxedStrategy<Value>| {
            proptest::option::weighted(0.9, value)
                .prop_map(move |value| value.map(|value| (key.to_string(), value)))
                .boxed()
        };
        let personas = object(vec![
            likely(
                "computation_class",
                vec![json!("audience"), json!("trait"), json!(1)],
            ),
            likely(
                "computation_key",
                vec![json!("vip"), json!(""), json!(5), json!("email")],
            ),
            likely(
                "external_audience_id",
                vec![json!("2385"), json!(2385), json!("act_1"), json!("")],
            ),
            maybe("space_id", vec![json!("ws")]),
        ]);
        let device = object(vec![
            likely(
                "advertisingId",
                vec![json!("6D92078A"), json!(""), json!(7)],
            ),
            maybe("type", vec![json!("ios"), json!("Android"), json!("web")]),
            maybe("adTrackingEnabled", vec![json!(false), json!(true)]),
        ]);
        let preferences = object(vec![
            maybe("advertising", vec![json!(true), json!(false), json!("no")]),
            maybe("analytics", vec![json!(false)]),
        ]);
        let consent = object(vec![wrap("categoryPreferences", preferences)]);
        let context = object(vec![
            wrap("personas", personas),
            wrap("traits", identifiers(vec![])),
            wrap("consent", consent),
            wrap("device", device),
            maybe("library", vec![json!({"name": "sluice", "version": "1"})]),
        ]);
        object(vec![
            prop_oneof![
                likely("type", vec![json!("identify"), json!("page")]),
                likely("type", vec![json!("track")]),
            ]
            .boxed(),
            likely(
                "event",
                vec![
                    json!("Audience Entered"),
                    json!("Audience Exited"),
                    json!("Other"),
                ],
            ),
            maybe("userId", vec![json!("u1"), json!(""), json!(42)]),
            maybe("messageId", vec![json!("m1")]),
            wrap("traits", identifiers(vec![likely("vip", member())])),
            wrap(
                "properties",
                identifiers(vec![
                    maybe("vip", member()),
                    maybe("audience_key", vec![json!("vip"), json!(""), json!(3)]),
                ]),
            ),
            wrap("context", context),
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn one_pass_reads_what_the_rules_say(event in membership_event()) {
            let read = read(&event, "advertising").map_err(|refusal| {
                matches!(refusal, Refusal::Unsupported(_))
            });
            prop_assert_eq!(read, reference(&event, "advertising"), "{}", event);
        }
    }
}
