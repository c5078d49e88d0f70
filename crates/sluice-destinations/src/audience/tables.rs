//! Reference tables the normalizers read: US state names and their two-letter codes, and a
//! compact table of countries (ISO 3166-1 alpha-2 code, English name, calling code, national
//! trunk prefix) for country names and for turning national phone numbers into international
//! ones. The country table is deliberately small (the common markets); a country outside it is
//! still accepted as a two-letter code, but its national phone numbers cannot be completed.

/// US states, DC and the inhabited territories: the name in lowercase without spaces or
/// punctuation, and the two-letter USPS code in lowercase.
pub(crate) const US_STATES: &[(&str, &str)] = &[
    ("alabama", "al"),
    ("alaska", "ak"),
    ("arizona", "az"),
    ("arkansas", "ar"),
    ("california", "ca"),
    ("colorado", "co"),
    ("connecticut", "ct"),
    ("delaware", "de"),
    ("districtofcolumbia", "dc"),
    ("washingtondc", "dc"),
    ("florida", "fl"),
    ("georgia", "ga"),
    ("hawaii", "hi"),
    ("idaho", "id"),
    ("illinois", "il"),
    ("indiana", "in"),
    ("iowa", "ia"),
    ("kansas", "ks"),
    ("kentucky", "ky"),
    ("louisiana", "la"),
    ("maine", "me"),
    ("maryland", "md"),
    ("massachusetts", "ma"),
    ("michigan", "mi"),
    ("minnesota", "mn"),
    ("mississippi", "ms"),
    ("missouri", "mo"),
    ("montana", "mt"),
    ("nebraska", "ne"),
    ("nevada", "nv"),
    ("newhampshire", "nh"),
    ("newjersey", "nj"),
    ("newmexico", "nm"),
    ("newyork", "ny"),
    ("northcarolina", "nc"),
    ("northdakota", "nd"),
    ("ohio", "oh"),
    ("oklahoma", "ok"),
    ("oregon", "or"),
    ("pennsylvania", "pa"),
    ("rhodeisland", "ri"),
    ("southcarolina", "sc"),
    ("southdakota", "sd"),
    ("tennessee", "tn"),
    ("texas", "tx"),
    ("utah", "ut"),
    ("vermont", "vt"),
    ("virginia", "va"),
    ("washington", "wa"),
    ("westvirginia", "wv"),
    ("wisconsin", "wi"),
    ("wyoming", "wy"),
    ("americansamoa", "as"),
    ("guam", "gu"),
    ("northernmarianaislands", "mp"),
    ("puertorico", "pr"),
    ("usvirginislands", "vi"),
    ("virginislands", "vi"),
];

/// One country: ISO code (uppercase), English name in lowercase without spaces, calling code,
/// trunk prefix dialled before national numbers (`""` where there is none).
pub(crate) struct Country {
    pub(crate) code: &'static str,
    pub(crate) name: &'static str,
    pub(crate) calling: &'static str,
    pub(crate) trunk: &'static str,
}

const fn c(
    code: &'static str,
    name: &'static str,
    calling: &'static str,
    trunk: &'static str,
) -> Country {
    Country {
        code,
        name,
        calling,
        trunk,
    }
}

/// The countries Sluice knows the calling code and trunk prefix of.
pub(crate) const COUNTRIES: &[Country] = &[
    c("US", "unitedstates", "1", "1"),
    c("CA", "canada", "1", "1"),
    c("PR", "puertorico", "1", "1"),
    c("MX", "mexico", "52", ""),
    c("BR", "brazil", "55", "0"),
    c("AR", "argentina", "54", "0"),
    c("CL", "chile", "56", ""),
    c("CO", "colombia", "57", ""),
    c("PE", "peru", "51", "0"),
    c("GB", "unitedkingdom", "44", "0"),
    c("IE", "ireland", "353", "0"),
    c("DE", "germany", "49", "0"),
    c("AT", "austria", "43", "0"),
    c("CH", "switzerland", "41", "0"),
    c("FR", "france", "33", "0"),
    c("BE", "belgium", "32", "0"),
    c("NL", "netherlands", "31", "0"),
    c("LU", "luxembourg", "352", ""),
    c("IT", "italy", "39", ""),
    c("ES", "spain", "34", ""),
    c("PT", "portugal", "351", ""),
    c("DK", "denmark", "45", ""),
    c("SE", "sweden", "46", "0"),
    c("NO", "norway", "47", ""),
    c("FI", "finland", "358", "0"),
    c("IS", "iceland", "354", ""),
    c("PL", "poland", "48", ""),
    c("CZ", "czechia", "420", ""),
    c("SK", "slovakia", "421", "0"),
    c("HU", "hungary", "36", "06"),
    c("RO", "romania", "40", "0"),
    c("BG", "bulgaria", "359", "0"),
    c("GR", "greece", "30", ""),
    c("HR", "croatia", "385", "0"),
    c("SI", "slovenia", "386", "0"),
    c("RS", "serbia", "381", "0"),
    c("EE", "estonia", "372", ""),
    c("LV", "latvia", "371", ""),
    c("CY", "cyprus", "357", ""),
    c("MT", "malta", "356", ""),
    c("UA", "ukraine", "380", "0"),
    c("TR", "turkey", "90", "0"),
    c("AM", "armenia", "374", "0"),
    c("IL", "israel", "972", "0"),
    c("AE", "unitedarabemirates", "971", "0"),
    c("SA", "saudiarabia", "966", "0"),
    c("EG", "egypt", "20", "0"),
    c("MA", "morocco", "212", "0"),
    c("NG", "nigeria", "234", "0"),
    c("KE", "kenya", "254", "0"),
    c("ZA", "southafrica", "27", "0"),
    c("IN", "india", "91", "0"),
    c("PK", "pakistan", "92", "0"),
    c("BD", "bangladesh", "880", "0"),
    c("CN", "china", "86", "0"),
    c("HK", "hongkong", "852", ""),
    c("TW", "taiwan", "886", "0"),
    c("JP", "japan", "81", "0"),
    c("KR", "southkorea", "82", "0"),
    c("SG", "singapore", "65", ""),
    c("MY", "malaysia", "60", "0"),
    c("TH", "thailand", "66", "0"),
    c("VN", "vietnam", "84", "0"),
    c("ID", "indonesia", "62", "0"),
    c("PH", "philippines", "63", "0"),
    c("AU", "australia", "61", "0"),
    c("NZ", "newzealand", "64", "0"),
];

/// Other English names people write for a country (lowercase, no spaces) → ISO code.
const COUNTRY_ALIASES: &[(&str, &str)] = &[
    ("usa", "US"),
    ("unitedstatesofamerica", "US"),
    ("america", "US"),
    ("uk", "GB"),
    ("greatbritain", "GB"),
    ("england", "GB"),
    ("scotland", "GB"),
    ("wales", "GB"),
    ("northernireland", "GB"),
    ("deutschland", "DE"),
    ("czechrepublic", "CZ"),
    ("korea", "KR"),
    ("republicofkorea", "KR"),
    ("uae", "AE"),
    ("turkiye", "TR"),
];

/// The country with this ISO code (uppercase).
pub(crate) fn country(code: &str) -> Option<&'static Country> {
    COUNTRIES.iter().find(|country| country.code == code)
}

/// The ISO code (uppercase) for a country written as a code or an English name: `key` is the
/// text lowercased with everything but ASCII letters removed. Any two letters count as a code.
pub(crate) fn country_code(key: &str) -> Option<&'static str> {
    if let Some(country) = COUNTRIES.iter().find(|country| country.name == key) {
        return Some(country.code);
    }
    if let Some((_, code)) = COUNTRY_ALIASES.iter().find(|(name, _)| *name == key) {
        return Some(code);
    }
    None
}

/// The two-letter code of a US state written as its name (`key` as for [`country_code`]).
pub(crate) fn us_state(key: &str) -> Option<&'static str> {
    US_STATES
        .iter()
        .find(|(name, _)| *name == key)
        .map(|(_, code)| *code)
}
