//! Request bodies: realistic Segment `track` events, generated once as templates.
//!
//! Each template is a finished JSON body whose `messageId`s are fixed-width placeholders; a
//! request copies the template and overwrites the placeholders in place with fresh ids, so the
//! generator spends its time on the network, not on JSON.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Length of every generated `messageId`: `{run:016x}-{conn:04x}-{seq:012x}`.
pub const ID_LEN: usize = 16 + 1 + 4 + 1 + 12;
const PLACEHOLDER: &[u8; ID_LEN] = b"~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~";

/// Events in one `/v1/batch` request.
pub const BATCH_EVENTS: usize = 100;
/// Distinct templates a connection cycles through (different users, products, pages).
pub const TEMPLATES: usize = 8;

/// A finished body and where its `messageId`s are.
#[derive(Clone)]
pub struct Template {
    pub body: Vec<u8>,
    pub id_offsets: Vec<usize>,
}

impl Template {
    fn from_value(value: &Value) -> Template {
        let body = serde_json::to_vec(value).expect("a JSON value serializes");
        let id_offsets = body
            .windows(ID_LEN)
            .enumerate()
            .filter(|(_, window)| *window == PLACEHOLDER)
            .map(|(offset, _)| offset)
            .collect();
        Template { body, id_offsets }
    }

    /// Events in the body.
    pub fn events(&self) -> usize {
        self.id_offsets.len()
    }
}

/// Writes fresh, unique `messageId`s. Unique across runs through a random run id, across
/// connections through the connection index, and within a connection through a counter that
/// goes through a bijection on 48 bits, so ids are scattered like the random UUIDs that SDKs
/// send (sequential ids would make the server's id index look cheaper than it is).
pub struct IdGen {
    prefix: [u8; 22],
    seq: u64,
}

impl IdGen {
    pub fn new(run: u64, connection: u16) -> IdGen {
        let mut prefix = [0u8; 22];
        hex(&mut prefix[..16], run);
        prefix[16] = b'-';
        hex(&mut prefix[17..21], u64::from(connection));
        prefix[21] = b'-';
        IdGen { prefix, seq: 0 }
    }

    /// Copies `template` into `out` with every placeholder replaced by a new id.
    pub fn fill(&mut self, template: &Template, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&template.body);
        for &offset in &template.id_offsets {
            let id = &mut out[offset..offset + ID_LEN];
            id[..22].copy_from_slice(&self.prefix);
            hex(&mut id[22..], scatter(self.seq));
            self.seq += 1;
        }
    }
}

const MASK48: u64 = (1 << 48) - 1;

/// A bijection on the low 48 bits (odd multiplications and xor-shifts, each invertible), so
/// distinct counters give distinct, well-spread values.
fn scatter(seq: u64) -> u64 {
    let mut x = seq & MASK48;
    x = x.wrapping_mul(0x9E37_79B9_7F4B) & MASK48;
    x ^= x >> 23;
    x = x.wrapping_mul(0xC2B2_AE3D_27D5) & MASK48;
    x ^= x >> 21;
    x
}

/// Lower-case hex of the low `4 * out.len()` bits of `value`, zero-padded.
fn hex(out: &mut [u8], mut value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in out.iter_mut().rev() {
        *byte = DIGITS[(value & 0xf) as usize];
        value >>= 4;
    }
}

/// A random run id (from a v4 UUID's random bits).
pub fn random_run_id() -> u64 {
    let (high, _) = uuid::Uuid::new_v4().as_u64_pair();
    high
}

const PRODUCTS: [(&str, &str, &str, &str, &str, f64); 8] = [
    (
        "G-32",
        "Games",
        "Monopoly: 3rd Edition",
        "Hasbro",
        "200 pieces",
        18.99,
    ),
    (
        "B-1048",
        "Books",
        "The Pragmatic Programmer",
        "Addison-Wesley",
        "Hardcover",
        42.5,
    ),
    (
        "S-770",
        "Shoes",
        "Trail Runner GTX",
        "Salomon",
        "EU 43 / Blue",
        149.0,
    ),
    (
        "K-12",
        "Kitchen",
        "Cast Iron Skillet 26cm",
        "Lodge",
        "Pre-seasoned",
        34.95,
    ),
    (
        "E-551",
        "Electronics",
        "Noise Cancelling Headphones",
        "Sony",
        "Black",
        279.99,
    ),
    ("T-9", "Toys", "Wooden Train Set", "Brio", "32 pieces", 59.0),
    (
        "A-300",
        "Apparel",
        "Merino Crew Sweater",
        "Uniqlo",
        "M / Navy",
        49.9,
    ),
    (
        "H-88",
        "Home",
        "Linen Duvet Cover",
        "IKEA",
        "Queen / Natural",
        89.0,
    ),
];

const EVENTS: [&str; 4] = [
    "Product Added",
    "Product Viewed",
    "Product Clicked",
    "Product Added to Wishlist",
];

fn iso(at: OffsetDateTime) -> String {
    let millis = at.millisecond();
    at.replace_millisecond(millis)
        .unwrap_or(at)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "2026-01-01T00:00:00.000Z".to_owned())
}

/// One `track` event, about 600 bytes as JSON. `n` picks the user, product and page.
pub fn track_event(n: usize, now: OffsetDateTime) -> Value {
    let (sku, category, name, brand, variant, price) = PRODUCTS[n % PRODUCTS.len()];
    let user = 10_000 + (n * 7919) % 90_000;
    let slug = name.to_ascii_lowercase().replace([' ', ':', '/'], "-");
    let timestamp = now - time::Duration::milliseconds((n % 50) as i64 * 37);
    json!({
        "type": "track",
        "event": EVENTS[n % EVENTS.len()],
        "userId": format!("user_{user:06}"),
        "anonymousId": format!("{:08x}-4b1e-4c2a-9f3d-{:012x}", (user * 2_654_435) & 0xffff_ffff, user * 40_503),
        "messageId": std::str::from_utf8(PLACEHOLDER).expect("ascii"),
        "timestamp": iso(timestamp),
        "properties": {
            "product_id": format!("{:024x}", user as u128 * 0x9e37_79b9_7f4a),
            "sku": sku,
            "category": category,
            "name": name,
            "brand": brand,
            "variant": variant,
            "price": price,
            "quantity": 1 + n % 3,
            "currency": "USD",
        },
        "context": {
            "library": {"name": "analytics.js", "version": "5.2.1"},
            "page": {
                "path": format!("/products/{slug}"),
                "referrer": "https://www.google.com/",
                "url": format!("https://shop.example.com/products/{slug}"),
            },
            "locale": "en-US",
        },
    })
}

/// `TEMPLATES` `/v1/batch` bodies of `BATCH_EVENTS` events each.
pub fn batch_templates(now: OffsetDateTime) -> Vec<Template> {
    (0..TEMPLATES)
        .map(|t| {
            let batch: Vec<Value> = (0..BATCH_EVENTS)
                .map(|i| track_event(t * BATCH_EVENTS + i, now))
                .collect();
            Template::from_value(&json!({ "batch": batch, "sentAt": iso(now) }))
        })
        .collect()
}

/// `TEMPLATES` `/v1/track` bodies of one event each.
pub fn single_templates(now: OffsetDateTime) -> Vec<Template> {
    (0..TEMPLATES)
        .map(|t| {
            let mut event = track_event(t * 13, now);
            if let Some(object) = event.as_object_mut() {
                object.insert("sentAt".to_owned(), Value::String(iso(now)));
            }
            Template::from_value(&event)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashSet;

    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    #[test]
    fn events_are_about_600_bytes() {
        for n in 0..200 {
            let size = serde_json::to_vec(&track_event(n, now())).unwrap().len();
            assert!((520..=720).contains(&size), "event {n} is {size} bytes");
        }
        for template in single_templates(now()) {
            assert_eq!(template.events(), 1);
            assert!((520..=760).contains(&template.body.len()));
        }
        for template in batch_templates(now()) {
            assert_eq!(template.events(), BATCH_EVENTS);
            let per_event = template.body.len() / BATCH_EVENTS;
            assert!(
                (520..=720).contains(&per_event),
                "{per_event} bytes per event"
            );
        }
    }

    #[test]
    fn ids_are_unique_and_bodies_stay_valid_json() {
        let templates = batch_templates(now());
        let mut seen = HashSet::new();
        let mut body = Vec::new();
        for connection in 0..3 {
            let mut ids = IdGen::new(0xfeed_beef, connection);
            for template in &templates {
                ids.fill(template, &mut body);
                let value: Value = serde_json::from_slice(&body).unwrap();
                for event in value["batch"].as_array().unwrap() {
                    let id = event["messageId"].as_str().unwrap().to_owned();
                    assert_eq!(id.len(), ID_LEN);
                    assert!(seen.insert(id), "duplicate messageId");
                }
            }
        }
        assert_eq!(seen.len(), 3 * TEMPLATES * BATCH_EVENTS);
        // Another run never repeats these ids.
        let mut other = IdGen::new(0xfeed_bef0, 0);
        other.fill(&templates[0], &mut body);
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert!(!seen.contains(value["batch"][0]["messageId"].as_str().unwrap()));
    }

    #[test]
    fn scatter_is_a_bijection_on_a_range() {
        let values: HashSet<u64> = (0..100_000).map(scatter).collect();
        assert_eq!(values.len(), 100_000);
        assert!(values.iter().all(|v| *v <= MASK48));
        // Consecutive counters land far apart.
        assert!(scatter(1).abs_diff(scatter(2)) > 1 << 20);
    }

    #[test]
    fn hex_is_fixed_width() {
        let mut out = [0u8; 4];
        hex(&mut out, 0xab);
        assert_eq!(&out, b"00ab");
    }
}
