//! Events, their sections and their admission settings, validated once at the edge.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::challenge::Difficulty;
use super::codes::Access;
use super::door::WindowLimit;
use super::gate::Origin;

/// Which field of a request was rejected, and why; becomes `422 invalid_request`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidField {
    pub field: String,
    pub reason: String,
}

impl InvalidField {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// `[a-z0-9-]{1,64}`: safe in URLs, Redis keys, queue names and signed tokens.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidField::new("id", "must match [a-z0-9-]{1,64}"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Section {
    pub id: String,
    pub name: String,
    pub price_cents: i64,
    pub rows: u32,
    pub seats_per_row: u32,
}

impl Section {
    pub fn seat_count(&self) -> u64 {
        u64::from(self.rows) * u64::from(self.seats_per_row)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Admission {
    pub per_second: f64,
    pub max_active: u64,
    pub pass_seconds: u32,
    pub abandon_seconds: u32,
}

pub const DEFAULT_ABANDON_SECONDS: u32 = 60;

/// An ISO 4217 currency whose minor unit is a hundredth (prices are `price_cents`),
/// so that every amount the service stores reads the same on every page.
///
/// A known list rather than the bare `[A-Z]{3}` pattern: a typo such as `"EUE"`
/// would pass the pattern and then show a wrong price on every page, and codes
/// like `JPY` (no minor unit) or `KWD` (thousandths) would turn cents into the
/// wrong amounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Currency(&'static str);

/// The currencies an event may be sold in: ISO 4217 codes with two decimal places.
pub const CURRENCIES: &[&str] = &[
    "AUD", "BGN", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "EUR", "GBP", "HKD", "ILS", "INR",
    "MXN", "NOK", "NZD", "PLN", "RON", "SEK", "SGD", "TRY", "USD", "ZAR",
];

impl Currency {
    pub const EUR: Currency = Currency("EUR");

    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        CURRENCIES
            .iter()
            .copied()
            .find(|code| *code == raw)
            .map(Self)
            .ok_or_else(|| {
                InvalidField::new(
                    "currency",
                    format!(
                        "must be one of the ISO 4217 codes {} (three capital letters)",
                        CURRENCIES.join(", ")
                    ),
                )
            })
    }

    pub fn code(self) -> &'static str {
        self.0
    }
}

impl Default for Currency {
    fn default() -> Self {
        Self::EUR
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The admission fields a live event may change.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AdmissionPatch {
    pub per_second: Option<f64>,
    pub max_active: Option<u64>,
}

/// Everything a live event may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventPatch {
    pub admission: AdmissionPatch,
    pub paused: Option<bool>,
    pub join_challenge: Option<Difficulty>,
    pub access: Option<Access>,
    /// `Some(None)` turns the limit off.
    pub address_limit: Option<Option<WindowLimit>>,
    /// The whole list, replaced (an empty one sends nobody anywhere).
    pub return_origins: Option<Vec<Origin>>,
}

/// Everything an operator specifies when creating an event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSpec {
    pub id: EventId,
    pub name: String,
    pub venue: String,
    pub starts_at: OffsetDateTime,
    pub on_sale_at: Option<OffsetDateTime>,
    pub hold_seconds: u32,
    pub max_seats_per_user: u32,
    pub admission: Admission,
    pub paused: bool,
    /// What `price_cents` are hundredths of.
    pub currency: Currency,
    /// The proof of work each new place costs (off by default).
    pub join_challenge: Difficulty,
    /// Who may join: anyone, or only with an invitation code.
    pub access: Access,
    /// New places per client address per window (none: no limit).
    pub address_limit: Option<WindowLimit>,
    /// The sites an admitted visitor may be sent back to with the pass (the gate).
    pub return_origins: Vec<Origin>,
    pub sections: Vec<Section>,
}

/// Seats beyond this would make a single event's seat map unreasonably large.
pub const MAX_SEATS_PER_EVENT: u64 = 1_000_000;
/// Durations (hold, pass, abandonment) are at most a year.
pub const MAX_SECONDS: u32 = 365 * 24 * 3600;
pub const MAX_SEATS_PER_USER: u32 = 1_000;
pub const MAX_ACTIVE: u64 = 1_000_000_000;
/// A price up to ten billion cents keeps any order's total far inside `i64`.
pub const MAX_PRICE_CENTS: i64 = 10_000_000_000;

impl EventSpec {
    /// Checks every rule of API.md that the types alone do not carry.
    pub fn validate(&self) -> Result<(), InvalidField> {
        if self.name.trim().is_empty() {
            return Err(InvalidField::new("name", "must not be empty"));
        }
        validate_seconds("hold_seconds", self.hold_seconds)?;
        if !(1..=MAX_SEATS_PER_USER).contains(&self.max_seats_per_user) {
            return Err(InvalidField::new(
                "max_seats_per_user",
                format!("must be 1 to {MAX_SEATS_PER_USER}"),
            ));
        }
        validate_per_second(self.admission.per_second)?;
        validate_max_active(self.admission.max_active)?;
        validate_seconds("admission.pass_seconds", self.admission.pass_seconds)?;
        validate_seconds("admission.abandon_seconds", self.admission.abandon_seconds)?;
        if self.sections.is_empty() {
            return Err(InvalidField::new(
                "sections",
                "at least one section is required",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, s) in self.sections.iter().enumerate() {
            let field = |name: &str| format!("sections[{i}].{name}");
            let id_ok =
                (1..=8).contains(&s.id.len()) && s.id.bytes().all(|b| b.is_ascii_alphanumeric());
            if !id_ok {
                return Err(InvalidField::new(
                    field("id"),
                    "must match [A-Za-z0-9]{1,8}",
                ));
            }
            if !seen.insert(s.id.as_str()) {
                return Err(InvalidField::new(
                    field("id"),
                    format!("section id {:?} is used twice", s.id),
                ));
            }
            if s.name.trim().is_empty() {
                return Err(InvalidField::new(field("name"), "must not be empty"));
            }
            if !(0..=MAX_PRICE_CENTS).contains(&s.price_cents) {
                return Err(InvalidField::new(
                    field("price_cents"),
                    format!("must be 0 to {MAX_PRICE_CENTS}"),
                ));
            }
            if s.rows < 1 {
                return Err(InvalidField::new(field("rows"), "must be at least 1"));
            }
            if s.seats_per_row < 1 {
                return Err(InvalidField::new(
                    field("seats_per_row"),
                    "must be at least 1",
                ));
            }
        }
        if self.seats_total() > MAX_SEATS_PER_EVENT {
            return Err(InvalidField::new(
                "sections",
                format!("at most {MAX_SEATS_PER_EVENT} seats per event"),
            ));
        }
        Ok(())
    }

    /// Saturates rather than wraps: sections of any size stay over the limit.
    pub fn seats_total(&self) -> u64 {
        self.sections
            .iter()
            .map(Section::seat_count)
            .fold(0, u64::saturating_add)
    }
}

pub fn validate_per_second(per_second: f64) -> Result<(), InvalidField> {
    if per_second.is_finite() && per_second > 0.0 {
        Ok(())
    } else {
        Err(InvalidField::new(
            "admission.per_second",
            "must be a number greater than 0",
        ))
    }
}

pub fn validate_max_active(max_active: u64) -> Result<(), InvalidField> {
    if (1..=MAX_ACTIVE).contains(&max_active) {
        Ok(())
    } else {
        Err(InvalidField::new(
            "admission.max_active",
            format!("must be 1 to {MAX_ACTIVE}"),
        ))
    }
}

/// The most places one address may be allowed per window.
pub const MAX_ADDRESS_PLACES: u64 = 1_000_000;

/// A limit of `places` new places per client address per `window_seconds`
/// (`places` 0: no limit).
pub fn address_limit(
    places: u64,
    window_seconds: u64,
) -> Result<Option<WindowLimit>, InvalidField> {
    if places > MAX_ADDRESS_PLACES {
        return Err(InvalidField::new(
            "address_limit.places",
            format!("must be 0 (no limit) to {MAX_ADDRESS_PLACES}"),
        ));
    }
    if !(1..=u64::from(MAX_SECONDS)).contains(&window_seconds) {
        return Err(InvalidField::new(
            "address_limit.window_seconds",
            format!("must be 1 to {MAX_SECONDS} seconds"),
        ));
    }
    Ok((places > 0).then_some(WindowLimit {
        per_window: places,
        window_seconds,
    }))
}

/// The earliest and latest instants an event may name: what every store and
/// RFC 3339 in UTC can represent.
const EARLIEST: OffsetDateTime = time::macros::datetime!(1970-01-01 0:00 UTC);
const LATEST: OffsetDateTime = time::macros::datetime!(9999-12-31 23:59:59 UTC);

/// `at` in UTC (API.md: times are UTC), if stores and clients can represent it.
pub fn utc_instant(field: &str, at: OffsetDateTime) -> Result<OffsetDateTime, InvalidField> {
    if (EARLIEST..=LATEST).contains(&at) {
        Ok(at.to_offset(time::UtcOffset::UTC))
    } else {
        Err(InvalidField::new(
            field,
            "must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z",
        ))
    }
}

fn validate_seconds(field: &str, seconds: u32) -> Result<(), InvalidField> {
    if (1..=MAX_SECONDS).contains(&seconds) {
        Ok(())
    } else {
        Err(InvalidField::new(
            field,
            format!("must be 1 to {MAX_SECONDS} seconds"),
        ))
    }
}

/// Where an event's sale stands, as a visitor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaleState {
    OnSale,
    /// On sale, but admission is paused: joins still keep a place.
    Paused,
    /// Before `on_sale_at`: joins enter the pre-queue.
    OpensLater,
    SoldOut,
}

/// A stored event: its specification plus what the service generated for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub spec: EventSpec,
    /// The secret seed of the pre-queue draw; revealed once the sale opens.
    pub prequeue_seed: [u8; 32],
}

impl Event {
    pub fn id(&self) -> &EventId {
        &self.spec.id
    }

    pub fn is_on_sale(&self, now: OffsetDateTime) -> bool {
        self.spec.on_sale_at.is_none_or(|at| now >= at)
    }

    /// What a visitor can do about this event now, in the order it matters to them:
    /// nothing left beats everything else; before the sale opens, a pause does
    /// not matter yet (the early line is drawn when the sale opens).
    pub fn sale_state(&self, now: OffsetDateTime, sold_out: bool) -> SaleState {
        if sold_out {
            SaleState::SoldOut
        } else if !self.is_on_sale(now) {
            SaleState::OpensLater
        } else if self.spec.paused {
            SaleState::Paused
        } else {
            SaleState::OnSale
        }
    }

    /// The lowest and highest section price, in cents.
    pub fn price_range(&self) -> (i64, i64) {
        let prices = self.spec.sections.iter().map(|s| s.price_cents);
        (prices.clone().min().unwrap_or(0), prices.max().unwrap_or(0))
    }

    pub fn apply(&mut self, patch: EventPatch) {
        if let Some(per_second) = patch.admission.per_second {
            self.spec.admission.per_second = per_second;
        }
        if let Some(max_active) = patch.admission.max_active {
            self.spec.admission.max_active = max_active;
        }
        if let Some(paused) = patch.paused {
            self.spec.paused = paused;
        }
        if let Some(bits) = patch.join_challenge {
            self.spec.join_challenge = bits;
        }
        if let Some(access) = patch.access {
            self.spec.access = access;
        }
        if let Some(limit) = patch.address_limit {
            self.spec.address_limit = limit;
        }
        if let Some(origins) = patch.return_origins {
            self.spec.return_origins = origins;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn instants_are_kept_in_utc_and_within_what_stores_can_hold() {
        let local = datetime!(2027-01-01 0:00 +05:00);
        let utc = utc_instant("starts_at", local).unwrap();
        assert_eq!((utc, utc.offset()), (local, time::UtcOffset::UTC));
        for out_of_range in [
            datetime!(0000-01-01 0:00 +23:59),
            datetime!(9999-12-31 23:59:59 -23:59),
        ] {
            assert_eq!(
                utc_instant("on_sale_at", out_of_range).unwrap_err().field,
                "on_sale_at"
            );
        }
    }

    pub fn spec() -> EventSpec {
        EventSpec {
            id: EventId::parse("rock-2027").unwrap(),
            name: "Rock Night".into(),
            venue: "Arena".into(),
            starts_at: datetime!(2027-06-01 19:00 UTC),
            on_sale_at: None,
            hold_seconds: 300,
            max_seats_per_user: 4,
            admission: Admission {
                per_second: 50.0,
                max_active: 500,
                pass_seconds: 600,
                abandon_seconds: 60,
            },
            paused: false,
            currency: Currency::EUR,
            join_challenge: Difficulty::OFF,
            access: Access::Open,
            address_limit: None,
            return_origins: Vec::new(),
            sections: vec![Section {
                id: "A".into(),
                name: "Floor".into(),
                price_cents: 9900,
                rows: 10,
                seats_per_row: 20,
            }],
        }
    }

    #[test]
    fn event_ids_follow_the_contract() {
        assert!(EventId::parse("rock-2027").is_ok());
        assert!(EventId::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "Rock", "a_b", "a b", "é", &"a".repeat(65)] {
            assert!(EventId::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn a_valid_spec_passes_and_counts_its_seats() {
        let s = spec();
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.seats_total(), 200);
    }

    #[test]
    fn each_rule_names_its_field() {
        type Breakage = fn(&mut EventSpec);
        let cases: Vec<(Breakage, &str)> = vec![
            (|s| s.name = " ".into(), "name"),
            (|s| s.hold_seconds = 0, "hold_seconds"),
            (|s| s.hold_seconds = u32::MAX, "hold_seconds"),
            (
                |s| s.max_seats_per_user = MAX_SEATS_PER_USER + 1,
                "max_seats_per_user",
            ),
            (
                |s| s.admission.max_active = u64::MAX,
                "admission.max_active",
            ),
            (
                |s| s.admission.pass_seconds = MAX_SECONDS + 1,
                "admission.pass_seconds",
            ),
            (
                |s| s.sections[0].price_cents = i64::MAX,
                "sections[0].price_cents",
            ),
            (|s| s.max_seats_per_user = 0, "max_seats_per_user"),
            (|s| s.admission.per_second = 0.0, "admission.per_second"),
            (
                |s| s.admission.per_second = f64::NAN,
                "admission.per_second",
            ),
            (|s| s.admission.max_active = 0, "admission.max_active"),
            (|s| s.admission.pass_seconds = 0, "admission.pass_seconds"),
            (
                |s| s.admission.abandon_seconds = 0,
                "admission.abandon_seconds",
            ),
            (|s| s.sections.clear(), "sections"),
            (|s| s.sections[0].id = "A-1".into(), "sections[0].id"),
            (|s| s.sections.push(s.sections[0].clone()), "sections[1].id"),
            (|s| s.sections[0].rows = 0, "sections[0].rows"),
            (
                |s| s.sections[0].seats_per_row = 0,
                "sections[0].seats_per_row",
            ),
            (
                |s| s.sections[0].price_cents = -1,
                "sections[0].price_cents",
            ),
            (|s| s.sections[0].name = String::new(), "sections[0].name"),
            // 2^64 seats in all: a wrapping sum once read 0 and let this through.
            (
                |s| {
                    let size = |id: &str, rows, seats_per_row| Section {
                        id: id.into(),
                        rows,
                        seats_per_row,
                        ..s.sections[0].clone()
                    };
                    s.sections = vec![
                        size("A", u32::MAX, u32::MAX),
                        size("B", 2, u32::MAX),
                        size("C", 1, 1),
                    ];
                },
                "sections",
            ),
        ];
        for (break_it, field) in cases {
            let mut s = spec();
            break_it(&mut s);
            assert_eq!(s.validate().unwrap_err().field, field);
        }
    }

    #[test]
    fn the_sale_state_puts_sold_out_first_and_a_pause_only_after_opening() {
        let opens = datetime!(2027-01-15 10:00 UTC);
        let mut event = Event {
            spec: spec(),
            prequeue_seed: [0; 32],
        };
        event.spec.on_sale_at = Some(opens);
        let before = opens - time::Duration::SECOND;
        assert_eq!(event.sale_state(before, false), SaleState::OpensLater);
        assert_eq!(event.sale_state(opens, false), SaleState::OnSale);
        assert_eq!(event.sale_state(before, true), SaleState::SoldOut);
        event.spec.paused = true;
        assert_eq!(event.sale_state(before, false), SaleState::OpensLater);
        assert_eq!(event.sale_state(opens, false), SaleState::Paused);
        assert_eq!(event.sale_state(opens, true), SaleState::SoldOut);
    }

    #[test]
    fn the_price_range_spans_the_sections() {
        let mut event = Event {
            spec: spec(),
            prequeue_seed: [0; 32],
        };
        assert_eq!(event.price_range(), (9900, 9900));
        event.spec.sections.push(Section {
            id: "B".into(),
            price_cents: 2500,
            ..event.spec.sections[0].clone()
        });
        assert_eq!(event.price_range(), (2500, 9900));
    }

    #[test]
    fn currencies_are_known_iso_codes_with_cents() {
        for code in ["EUR", "USD", "GBP", "CHF"] {
            assert_eq!(Currency::parse(code).map(Currency::code), Ok(code));
        }
        // Lower case, typos, unknown codes and currencies without cents are refused by name.
        for bad in ["", "eur", "EU", "EURO", "EUE", "XYZ", "JPY", "KWD", " EUR"] {
            let refused = Currency::parse(bad).unwrap_err();
            assert_eq!(refused.field, "currency", "{bad:?}");
            assert!(
                refused.reason.contains("EUR, GBP"),
                "{bad:?}: {}",
                refused.reason
            );
        }
        assert_eq!(Currency::default(), Currency::EUR);
        assert!(
            CURRENCIES.windows(2).all(|w| w[0] < w[1]),
            "the list is sorted, so it reads well in messages"
        );
        assert!(
            CURRENCIES
                .iter()
                .all(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
        );
    }

    #[test]
    fn fractional_admission_rates_are_allowed() {
        let mut s = spec();
        s.admission.per_second = 0.5;
        assert_eq!(s.validate(), Ok(()));
    }

    use proptest::prelude::*;
    use time::format_description::well_known::Rfc3339;
    use time::{Date, Time, UtcOffset};

    use crate::domain::{SeatRef, Venue, from_unix_ms, unix_ms};

    /// Every instant `time` can hold, at every offset it can hold.
    fn instants() -> impl Strategy<Value = OffsetDateTime> {
        let day = Date::MIN.to_julian_day()..=Date::MAX.to_julian_day();
        let offset = -93_599..=93_599i32;
        (day, 0..86_400u32, 0..1_000_000_000u32, offset).prop_map(|(day, second, nano, offset)| {
            let date = Date::from_julian_day(day).unwrap();
            let time = Time::from_hms_nano(
                (second / 3600) as u8,
                (second / 60 % 60) as u8,
                (second % 60) as u8,
                nano,
            )
            .unwrap();
            date.with_time(time)
                .assume_offset(UtcOffset::from_whole_seconds(offset).unwrap())
        })
    }

    /// Mostly values the API accepts, sometimes anything the field's type can hold.
    fn mostly<T: std::fmt::Debug + Clone + 'static>(
        valid: impl Strategy<Value = T> + 'static,
        wild: impl Strategy<Value = T> + 'static,
    ) -> BoxedStrategy<T> {
        prop_oneof![9 => valid, 1 => wild].boxed()
    }

    fn seconds() -> BoxedStrategy<u32> {
        mostly(1..=MAX_SECONDS, any::<u32>())
    }

    fn sections() -> impl Strategy<Value = Section> {
        let id = mostly(
            "[A-Za-z0-9]{1,8}".boxed(),
            prop_oneof![Just("A".to_owned()), any::<String>()],
        );
        let name = mostly("[A-Za-z][ A-Za-z]{0,10}".boxed(), any::<String>());
        // 250,000 seats at most, so four sections stay within the limit; one in four is
        // of any size the types allow, far beyond it.
        let size = prop_oneof![3 => (1..=500u32, 1..=500u32), 1 => (any::<u32>(), any::<u32>())];
        (id, name, mostly(0..=MAX_PRICE_CENTS, any::<i64>()), size).prop_map(
            |(id, name, price_cents, (rows, seats_per_row))| Section {
                id,
                name,
                price_cents,
                rows,
                seats_per_row,
            },
        )
    }

    fn specs() -> impl Strategy<Value = EventSpec> {
        let rate = mostly(
            1e-3..1e6f64,
            prop_oneof![any::<f64>(), Just(f64::NAN), Just(f64::INFINITY), Just(0.0)],
        );
        let admission = (
            rate,
            mostly(1..=MAX_ACTIVE, any::<u64>()),
            seconds(),
            seconds(),
        )
            .prop_map(
                |(per_second, max_active, pass_seconds, abandon_seconds)| Admission {
                    per_second,
                    max_active,
                    pass_seconds,
                    abandon_seconds,
                },
            );
        let name = mostly("[A-Za-z][ A-Za-z]{0,10}".boxed(), any::<String>());
        let sections = mostly(
            prop::collection::vec(sections(), 1..=4),
            prop::collection::vec(sections(), 0..8),
        );
        (
            name,
            seconds(),
            mostly(1..=MAX_SEATS_PER_USER, any::<u32>()),
            admission,
            sections,
        )
            .prop_map(
                |(name, hold_seconds, max_seats_per_user, admission, sections)| EventSpec {
                    name,
                    hold_seconds,
                    max_seats_per_user,
                    admission,
                    sections,
                    ..spec()
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn event_ids_parse_exactly_the_contract(raw in any::<String>(), shaped in "[a-z0-9A-Z_ -]{0,70}") {
            for raw in [raw, shaped] {
                let follows = (1..=64).contains(&raw.len())
                    && raw.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                match EventId::parse(&raw) {
                    Ok(id) => {
                        prop_assert!(follows, "{raw:?}");
                        prop_assert_eq!(id.as_str(), raw.as_str());
                        prop_assert_eq!(id.to_string(), raw);
                    }
                    Err(e) => {
                        prop_assert!(!follows, "{raw:?}");
                        prop_assert_eq!(e.field, "id");
                    }
                }
            }
        }

        /// Any instant, at any offset: accepted ones are the same instant in UTC,
        /// within what stores hold, and survive unix milliseconds and RFC 3339.
        #[test]
        fn instants_are_accepted_in_utc_or_refused_by_name(at in instants()) {
            match utc_instant("starts_at", at) {
                Ok(utc) => {
                    prop_assert_eq!(utc, at);
                    prop_assert_eq!(utc.offset(), UtcOffset::UTC);
                    prop_assert!((1970..=9999).contains(&utc.year()));
                    let ms = unix_ms(utc);
                    let to_the_ms = utc.replace_nanosecond(u32::from(utc.millisecond()) * 1_000_000).unwrap();
                    prop_assert_eq!(from_unix_ms(ms), Some(to_the_ms));
                    let text = utc.format(&Rfc3339).unwrap();
                    prop_assert_eq!(OffsetDateTime::parse(&text, &Rfc3339).unwrap(), utc);
                }
                Err(e) => {
                    prop_assert_eq!(e.field, "starts_at");
                    prop_assert!(at < EARLIEST || at > LATEST);
                }
            }
        }

        /// Validation never panics, and a spec it accepts is one the rest of the code
        /// can count, lay out and price without overflow.
        #[test]
        fn whatever_validation_accepts_is_safe_to_serve(spec in specs()) {
            if spec.validate().is_err() {
                return Ok(());
            }
            let seats: u128 = spec.sections.iter().map(|s| u128::from(s.rows) * u128::from(s.seats_per_row)).sum();
            prop_assert!((1..=u128::from(MAX_SEATS_PER_EVENT)).contains(&seats));
            prop_assert_eq!(u128::from(spec.seats_total()), seats);
            let venue = Venue::of(&spec);
            for (section, s) in spec.sections.iter().enumerate() {
                let last = SeatRef { section, row: s.rows, number: s.seats_per_row };
                for seat in [SeatRef { section, row: 1, number: 1 }, last] {
                    prop_assert_eq!(venue.parse(venue.id(seat).as_str()), Some(seat));
                    prop_assert!(venue.index(seat) < seats as usize);
                }
                prop_assert_eq!(venue.section_index(&s.id), Some(section));
                // An order of the most seats a person may hold, all at this price.
                prop_assert!(s.price_cents.checked_mul(i64::from(spec.max_seats_per_user)).is_some());
            }
            let a = spec.admission;
            prop_assert!(a.per_second.is_finite() && a.per_second > 0.0);
            prop_assert!((1..=MAX_ACTIVE).contains(&a.max_active));
            for seconds in [spec.hold_seconds, a.pass_seconds, a.abandon_seconds] {
                // Durations reach the stores as milliseconds added to a unix time in milliseconds.
                prop_assert!((1..=MAX_SECONDS).contains(&seconds));
                prop_assert!(unix_ms(LATEST).checked_add(i64::from(seconds) * 1_000).is_some());
            }
        }
    }
}
