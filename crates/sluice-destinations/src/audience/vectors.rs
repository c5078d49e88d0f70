//! Every published test vector of the ad-audience research notes (Meta M1–M20, Google G1–G15,
//! TikTok T1–T13): input → normalized text → what is sent (digest, or the raw value), plus the
//! vectors that show a rule Sluice deliberately does not follow (T3, T6, T8, T10).

#![allow(clippy::unwrap_used)]

use super::hash::{md5_hex, sha256_hex};
use super::normalize::{
    Context, CountryCode, Digest, Identifier, IdentifierKind as K, Platform, identifier, normalize,
};

/// One vector: platform, kind, input, the person's country (`""`: unknown), normalized text,
/// what is sent (a SHA-256 hex, or the raw text).
type Vector = (
    &'static str,
    Platform,
    K,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

const META: &[Vector] = &[
    (
        "M1",
        Platform::Meta,
        K::Email,
        "  Mary@Example.COM ",
        "",
        "mary@example.com",
        "f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79",
    ),
    (
        "M2",
        Platform::Meta,
        K::Email,
        "John.Smith+ads@Gmail.com",
        "",
        "john.smith+ads@gmail.com",
        "05e05255b3e0de727bc07f9f3d06fb0a568406b6dd3aa352ed4ed72e887ee022",
    ),
    (
        "M3",
        Platform::Meta,
        K::Phone,
        "+1 (555) 987-6543",
        "",
        "15559876543",
        "1ef970831d7963307784fa8688e8fce101a15685d62aa765fed23f3a2c576a4e",
    ),
    (
        "M4",
        Platform::Meta,
        K::Phone,
        "0044 20 7183 8750",
        "",
        "442071838750",
        "8d5f937f3a5590634cbe975951a6aa1543170671ce6e73cce4062f4e8c288417",
    ),
    (
        "M5",
        Platform::Meta,
        K::Phone,
        "(555) 987-6543",
        "US",
        "15559876543",
        "1ef970831d7963307784fa8688e8fce101a15685d62aa765fed23f3a2c576a4e",
    ),
    (
        "M6",
        Platform::Meta,
        K::FirstName,
        "Mary-Jane",
        "",
        "maryjane",
        "f08f448a5e7a9dc3619bb7c129f6a7d5fc6af002cea17ad71dfdc1c68f4d4e0e",
    ),
    (
        "M7",
        Platform::Meta,
        K::LastName,
        " O'Brien ",
        "",
        "obrien",
        "b4cb6cb33fe4b865868de825023a1e2790dc12ac01ecc8d7c5afe8254071c8ba",
    ),
    (
        "M8",
        Platform::Meta,
        K::FirstName,
        "Zo\u{eb}",
        "",
        "zo\u{eb}",
        "2752b88686847fa5c86f47b94ce652b7b3f22a91c37617d451a4db9afa431450",
    ),
    (
        "M8 (NFD input)",
        Platform::Meta,
        K::FirstName,
        "Zoe\u{308}",
        "",
        "zo\u{eb}",
        "2752b88686847fa5c86f47b94ce652b7b3f22a91c37617d451a4db9afa431450",
    ),
    (
        "M9",
        Platform::Meta,
        K::FirstInitial,
        "Mary",
        "",
        "m",
        "62c66a7a5dd70c3146618063c344e531e6d4b59e379808443ce962b3abd63c5a",
    ),
    (
        "M10",
        Platform::Meta,
        K::Gender,
        "Female",
        "",
        "f",
        "252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111",
    ),
    (
        "M11",
        Platform::Meta,
        K::BirthYear,
        "1985",
        "",
        "1985",
        "78e370b587b145920213731b7c7c725e512b3b6577c51c800218a7c764c532ae",
    ),
    (
        "M12",
        Platform::Meta,
        K::BirthMonth,
        "7",
        "",
        "07",
        "19b100ab7725c612f3d80ff203ca53cea5cadaafae3bf0f88f0fb4089fe08815",
    ),
    (
        "M13",
        Platform::Meta,
        K::BirthDay,
        "3",
        "",
        "03",
        "0b8efa5a3bf104413a725c6ff0459a6be12b1fd33314cbb138745baf39504ae5",
    ),
    (
        "M14",
        Platform::Meta,
        K::City,
        "San Francisco",
        "",
        "sanfrancisco",
        "1a6bd4d9d79dc0a79b53795c70d3349fa9e38968a3fbefbfe8783efb1d2b6aac",
    ),
    (
        "M15",
        Platform::Meta,
        K::State,
        "California",
        "",
        "ca",
        "6959097001d10501ac7d54c0bdb8db61420f658f2922cc26e46d536119a31126",
    ),
    (
        "M16",
        Platform::Meta,
        K::PostalCode,
        "94105-1234",
        "",
        "94105",
        "e73ac16e69f060ee98b0fda5f66f48c4648ee26950e9bab3a097389853fd859e",
    ),
    (
        "M17",
        Platform::Meta,
        K::Country,
        "US",
        "",
        "us",
        "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621",
    ),
    (
        "M18",
        Platform::Meta,
        K::MobileAdId,
        "6D92078A-8246-4BA4-AE5B-76104861E7DC",
        "",
        "6d92078a-8246-4ba4-ae5b-76104861e7dc",
        "6d92078a-8246-4ba4-ae5b-76104861e7dc",
    ),
    (
        "M19",
        Platform::Meta,
        K::ExternalId,
        "crm-00042",
        "",
        "crm-00042",
        "crm-00042",
    ),
];

const GOOGLE: &[Vector] = &[
    (
        "G1",
        Platform::Google,
        K::Email,
        "  Mary@Example.COM ",
        "",
        "mary@example.com",
        "f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79",
    ),
    (
        "G2",
        Platform::Google,
        K::Email,
        "John.Smith+ads@Gmail.com",
        "",
        "johnsmith@gmail.com",
        "3586de92bb3636d0885a12eff961429a32e4ebd764b96f50d85d016f9338d586",
    ),
    (
        "G3",
        Platform::Google,
        K::Email,
        "j.o.h.n@googlemail.com",
        "",
        "john@googlemail.com",
        "dc8763aaab45283ab6629579d131ce9dbb5600008d56bd59f5e4efa488b271b2",
    ),
    (
        "G4",
        Platform::Google,
        K::Email,
        "user.name+NYC@Example.com",
        "",
        "user.name+nyc@example.com",
        "f109a2a632fbcea5fc82049f50beed3d8621bf9034399f437fb622222acccdac",
    ),
    (
        "G5",
        Platform::Google,
        K::Email,
        "mary @example.com",
        "",
        "mary@example.com",
        "f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79",
    ),
    (
        "G6",
        Platform::Google,
        K::Phone,
        "(800)555-0100",
        "US",
        "+18005550100",
        "fb4f73a6ec5fdb7077d564cdd22c3554b43ce49168550c3b12c547b78c517b30",
    ),
    (
        "G7",
        Platform::Google,
        K::Phone,
        "+44 20 7183 8750",
        "",
        "+442071838750",
        "e631c2534428c6c9b48c2167604a8983046085e43a2c00ed748733c544c0bb4d",
    ),
    (
        "G8",
        Platform::Google,
        K::Phone,
        "020 7183 8750",
        "GB",
        "+442071838750",
        "e631c2534428c6c9b48c2167604a8983046085e43a2c00ed748733c544c0bb4d",
    ),
    (
        "G9",
        Platform::Google,
        K::FirstName,
        "Mrs. Mary ",
        "",
        "mary",
        "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec",
    ),
    (
        "G10",
        Platform::Google,
        K::LastName,
        "Smith Jr.",
        "",
        "smith",
        "6627835f988e2c5e50533d491163072d3f4f41f5c8b04630150debb3722ca2dd",
    ),
    ("G11", Platform::Google, K::Country, "us", "", "US", "US"),
    (
        "G12",
        Platform::Google,
        K::PostalCode,
        " 94105 ",
        "",
        "94105",
        "94105",
    ),
    (
        "G13",
        Platform::Google,
        K::MobileAdId,
        "6D92078A-8246-4BA4-AE5B-76104861E7DC",
        "",
        "6D92078A-8246-4BA4-AE5B-76104861E7DC",
        "6D92078A-8246-4BA4-AE5B-76104861E7DC",
    ),
    (
        "G14",
        Platform::Google,
        K::ExternalId,
        "CRM-00042",
        "",
        "CRM-00042",
        "CRM-00042",
    ),
];

const TIKTOK: &[Vector] = &[
    (
        "T1",
        Platform::TikTok,
        K::Email,
        " JaneDoe@Gmail.com ",
        "",
        "janedoe@gmail.com",
        "d6117306485ed0e50afab3ac871e98f81699151f30281527d63ff5f233656c69",
    ),
    (
        "T2",
        Platform::TikTok,
        K::Email,
        "jane.doe+promo@example.com",
        "",
        "jane.doe@example.com",
        "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d",
    ),
    (
        "T4",
        Platform::TikTok,
        K::Email,
        "jane doe@example.com",
        "",
        "janedoe@example.com",
        "c4d25e9c90ff23e9145397bc6fbd5385ca5fbe78211222ccbecd0b369ebb19a6",
    ),
    (
        "T5",
        Platform::TikTok,
        K::Phone,
        "(657) 777-0000",
        "US",
        "+16577770000",
        "a6e82c2f4091baff57a4f33d01efb65bfbeacbbfbcfaa9d0ff9f57d28d78fedb",
    ),
    (
        "T7",
        Platform::TikTok,
        K::Phone,
        "374-93-828222",
        "AM",
        "+37493828222",
        "241371e614f8650dfae0f111361c69de1bb4829a72b71bb8044daae8b2e7791d",
    ),
    (
        "T9",
        Platform::TikTok,
        K::MobileAdId,
        "6D92078A-8246-4BA4-AE5B-76104861E7DC",
        "",
        "6d92078a-8246-4ba4-ae5b-76104861e7dc",
        "31b806b4deec8c4cb1ffb18b9ab4ee1fa82a2b30e1f47902f04d03f5db023376",
    ),
    (
        "T11",
        Platform::TikTok,
        K::MobileAdId,
        " CDDA802E-FB9C-47AD-9866-0794D394C912 ",
        "",
        "cdda802e-fb9c-47ad-9866-0794d394c912",
        "f23b554b2a8fb732a8b973733832e70f018da7bc294dfea289735a07d5dd2c9f",
    ),
];

fn check(vectors: &[Vector]) {
    let mut scratch = String::new();
    for (name, platform, kind, input, country, normalized, sent) in vectors.iter().copied() {
        let context = Context {
            country: CountryCode::parse(country),
        };
        assert_eq!(
            normalize(platform, kind, input, &context).as_deref(),
            Some(normalized),
            "{name}: normalized"
        );
        let got = identifier(
            platform,
            kind,
            input,
            &context,
            Digest::Sha256,
            &mut scratch,
        );
        assert_eq!(
            got.as_ref().map(Identifier::text).as_deref(),
            Some(sent),
            "{name}: sent"
        );
        let hashed = matches!(got, Some(Identifier::Hashed(_)));
        assert_eq!(hashed, sent != normalized, "{name}: hashed or raw");
    }
}

#[test]
fn meta_vectors_m1_to_m19() {
    check(META);
}

#[test]
fn google_vectors_g1_to_g14() {
    check(GOOGLE);
}

#[test]
fn tiktok_vectors() {
    check(TIKTOK);
}

#[test]
fn m19_hashed_extern_id_matches_the_published_digest() {
    // Sluice sends EXTERN_ID as is; the vector's optional hash, for anyone hashing it upstream.
    assert_eq!(
        sha256_hex("crm-00042").text(),
        "35bed454e0b6c6932c2254201e5923a3f0c21a9278e9a7f546bd748c7ffa7742"
    );
}

#[test]
fn m20_and_t13_already_hashed_values_are_lowercased_not_rehashed() {
    let mut scratch = String::new();
    let context = Context::default();
    for (name, platform, input, expected) in [
        (
            "M20",
            Platform::Meta,
            "F1904CF1A9D73A55FA5DE0AC823C4403DED71AFD4C3248D00BDCD0866552BB79",
            "f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79",
        ),
        (
            "T13",
            Platform::TikTok,
            "D6117306485ED0E50AFAB3AC871E98F81699151F30281527D63FF5F233656C69",
            "d6117306485ed0e50afab3ac871e98f81699151f30281527d63ff5f233656c69",
        ),
        (
            "G1 pre-hashed",
            Platform::Google,
            " f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79 ",
            "f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79",
        ),
    ] {
        let got = identifier(
            platform,
            K::Email,
            input,
            &context,
            Digest::Sha256,
            &mut scratch,
        );
        assert_eq!(
            got.as_ref().map(Identifier::text).as_deref(),
            Some(expected),
            "{name}"
        );
    }
}

#[test]
fn g15_base64_form_of_g1() {
    let mut scratch = String::new();
    let got = identifier(
        Platform::Google,
        K::Email,
        "  Mary@Example.COM ",
        &Context::default(),
        Digest::Sha256,
        &mut scratch,
    );
    let Some(Identifier::Hashed(hex)) = got else {
        panic!("G15: {got:?}");
    };
    assert_eq!(
        hex.to_base64(),
        "8ZBM8anXOlX6XeCsgjxEA97XGv1MMkjQC9zQhmVSu3k="
    );
}

#[test]
fn t12_md5_of_a_mobile_ad_id() {
    let mut scratch = String::new();
    let got = identifier(
        Platform::TikTok,
        K::MobileAdId,
        "6D92078A-8246-4BA4-AE5B-76104861E7DC",
        &Context::default(),
        Digest::Md5,
        &mut scratch,
    );
    assert_eq!(
        got.as_ref().map(Identifier::text).as_deref(),
        Some("0c2074fb86930fc4a2a7bb791240a7d3")
    );
}

#[test]
fn the_rules_sluice_does_not_follow_give_the_published_other_digests() {
    // T3: the legacy "drop dots" email rule (Segment's): not what Sluice sends for T2's input.
    let legacy = "c4d25e9c90ff23e9145397bc6fbd5385ca5fbe78211222ccbecd0b369ebb19a6";
    assert_eq!(sha256_hex("janedoe@example.com").text(), legacy);
    let ours = normalize(
        Platform::TikTok,
        K::Email,
        "jane.doe+promo@example.com",
        &Context::default(),
    );
    assert_ne!(
        ours.as_deref().map(sha256_hex).map(|h| h.text()),
        Some(legacy.into())
    );
    // T6 / T8: the digits-only phone forms; Sluice sends E.164 (T5 / T7) to TikTok.
    assert_eq!(
        sha256_hex("16577770000").text(),
        "8d7bdaaf75196f351d22942fc0dd79304ffabc3eaf3339460ef9da0773e3aec2"
    );
    assert_eq!(
        sha256_hex("37493828222").text(),
        "65b7e6dcf6f4310f8d7cbfbd78289a753062fb054d6664fb9aaac5df66a422d4"
    );
    // T10: the same IDFA hashed without lowercasing does not match.
    assert_eq!(
        sha256_hex("6D92078A-8246-4BA4-AE5B-76104861E7DC").text(),
        "2afcf919a0c1953d177fcb412ea65138b44b4a42dda7d322225811767c0c530c"
    );
    // MD5 stays MD5: T12 is not the SHA-256 of T9.
    assert_ne!(
        md5_hex("6d92078a-8246-4ba4-ae5b-76104861e7dc").text(),
        sha256_hex("6d92078a-8246-4ba4-ae5b-76104861e7dc").text()
    );
}
