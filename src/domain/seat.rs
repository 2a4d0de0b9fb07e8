//! Seats: ids, the venue's layout, and the best-available rule.

use std::fmt;

use super::{EventSpec, Section};

/// A seat of one event: its section's index, row and number, all from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeatRef {
    pub section: usize,
    pub row: u32,
    pub number: u32,
}

/// A seat id as the API spells it: `<section>-<row>-<seat>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeatId(String);

impl SeatId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SeatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A seat's state on the seat map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatState {
    Free,
    Held,
    Sold,
}

impl SeatState {
    /// Its character in the compact seat map: `f`, `h` or `s`.
    pub fn code(self) -> char {
        match self {
            SeatState::Free => 'f',
            SeatState::Held => 'h',
            SeatState::Sold => 's',
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "f" => Some(SeatState::Free),
            "h" => Some(SeatState::Held),
            "s" => Some(SeatState::Sold),
            _ => None,
        }
    }
}

/// Every seat's state in seat-map order at one version of the event's seat
/// state: the compact seat map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedSeats {
    version: u64,
    states: Vec<SeatState>,
}

impl VersionedSeats {
    /// The map at `version` on which only `taken` (by seat id) are taken.
    pub fn with_taken(venue: &Venue<'_>, version: u64, taken: &[(String, SeatState)]) -> Self {
        let mut map = Self {
            version,
            states: vec![SeatState::Free; venue.seat_count()],
        };
        map.set(venue, taken);
        map
    }

    /// This map moved on to `version` by `changes` (by seat id).
    pub fn changed(
        &self,
        venue: &Venue<'_>,
        version: u64,
        changes: &[(String, SeatState)],
    ) -> Self {
        let mut map = Self {
            version,
            states: self.states.clone(),
        };
        map.set(venue, changes);
        map
    }

    /// Ids the venue does not have are left out: the store has no other seats.
    fn set(&mut self, venue: &Venue<'_>, seats: &[(String, SeatState)]) {
        for (id, state) in seats {
            if let Some(slot) = venue
                .parse(id)
                .and_then(|seat| self.states.get_mut(venue.index(seat)))
            {
                *slot = *state;
            }
        }
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn states(&self) -> &[SeatState] {
        &self.states
    }

    /// One character per seat in seat-map order (API.md's `states`), in one allocation.
    pub fn codes(&self) -> String {
        self.states.iter().map(|state| state.code()).collect()
    }
}

/// The seats of an event, derived from its sections.
pub struct Venue<'a> {
    sections: &'a [Section],
}

impl<'a> Venue<'a> {
    pub fn of(spec: &'a EventSpec) -> Self {
        Self {
            sections: &spec.sections,
        }
    }

    /// `None` for a malformed id or a seat the venue does not have.
    pub fn parse(&self, raw: &str) -> Option<SeatRef> {
        let mut parts = raw.split('-');
        let (section, row, number) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || !is_decimal(row) || !is_decimal(number) {
            return None;
        }
        let index = self.sections.iter().position(|s| s.id == section)?;
        let s = &self.sections[index];
        let (row, number): (u32, u32) = (row.parse().ok()?, number.parse().ok()?);
        ((1..=s.rows).contains(&row) && (1..=s.seats_per_row).contains(&number)).then_some(
            SeatRef {
                section: index,
                row,
                number,
            },
        )
    }

    pub fn id(&self, seat: SeatRef) -> SeatId {
        SeatId(format!(
            "{}-{}-{}",
            self.sections[seat.section].id, seat.row, seat.number
        ))
    }

    pub fn price_cents(&self, seat: SeatRef) -> i64 {
        self.sections[seat.section].price_cents
    }

    /// The seat's place in the seat map's order.
    pub fn index(&self, seat: SeatRef) -> usize {
        let before: u64 = self.sections[..seat.section]
            .iter()
            .map(Section::seat_count)
            .sum();
        let spr = u64::from(self.sections[seat.section].seats_per_row);
        (before + u64::from(seat.row - 1) * spr + u64::from(seat.number - 1)) as usize
    }

    /// How many seats the venue has.
    pub fn seat_count(&self) -> usize {
        self.sections.iter().map(Section::seat_count).sum::<u64>() as usize
    }

    pub fn section_index(&self, id: &str) -> Option<usize> {
        self.sections.iter().position(|s| s.id == id)
    }

    /// Every seat in section, row, seat order: the seat map's order.
    pub fn seats(&self) -> impl Iterator<Item = SeatRef> + '_ {
        self.sections.iter().enumerate().flat_map(|(section, s)| {
            (1..=s.rows).flat_map(move |row| {
                (1..=s.seats_per_row).map(move |number| SeatRef {
                    section,
                    row,
                    number,
                })
            })
        })
    }

    /// The block of `count` adjacent seats in one row for which `free` holds that a
    /// box office would sell, among the sections `filter` allows: the lowest
    /// section, then the front-most row with such a block (API.md's order); within
    /// that row a block that leaves no single free seat stranded beside it when the
    /// row has one, then the lowest seat. (Not the centre of the row: API.md
    /// promises the lowest seat, and clients are written against it.)
    pub fn best_block(
        &self,
        count: u32,
        filter: BlockFilter,
        free: impl Fn(SeatRef) -> bool,
    ) -> Option<Vec<SeatRef>> {
        if count == 0 {
            return None;
        }
        self.rows(filter).find_map(|(section, row, seats_per_row)| {
            let first = best_in_row(count, seats_per_row, |number| {
                free(SeatRef {
                    section,
                    row,
                    number,
                })
            })?;
            Some(
                (first..first + count)
                    .map(|number| SeatRef {
                        section,
                        row,
                        number,
                    })
                    .collect(),
            )
        })
    }

    /// The most adjacent seats in one row for which `free` holds, among the
    /// sections `filter` allows: what a refused best-available request can still have.
    pub fn largest_free_block(&self, filter: BlockFilter, free: impl Fn(SeatRef) -> bool) -> u32 {
        self.rows(filter)
            .flat_map(|(section, row, seats_per_row)| {
                free_runs(seats_per_row, |number| {
                    free(SeatRef {
                        section,
                        row,
                        number,
                    })
                })
                .map(|run| run.len)
                .max()
            })
            .max()
            .unwrap_or(0)
    }

    /// Every row `filter` allows, front first, as (section, row, seats in the row).
    fn rows(&self, filter: BlockFilter) -> impl Iterator<Item = (usize, u32, u32)> + '_ {
        self.sections
            .iter()
            .enumerate()
            .filter(move |&(index, s)| filter.allows(index, s))
            .flat_map(|(index, s)| (1..=s.rows).map(move |row| (index, row, s.seats_per_row)))
    }
}

/// Where a best-available block may be: one section, seats at or under a price,
/// both, or anywhere (the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockFilter {
    pub section: Option<usize>,
    pub max_price_cents: Option<i64>,
}

impl BlockFilter {
    fn allows(&self, index: usize, section: &Section) -> bool {
        self.section.is_none_or(|only| only == index)
            && self
                .max_price_cents
                .is_none_or(|max| section.price_cents <= max)
    }
}

/// A run of adjacent free seats in a row that cannot grow: taken seats or the
/// row's ends on both sides.
#[derive(Debug, Clone, Copy)]
struct FreeRun {
    first: u32,
    len: u32,
}

/// The free runs of a row of `seats_per_row` seats, lowest seat first.
fn free_runs(seats_per_row: u32, free: impl Fn(u32) -> bool) -> impl Iterator<Item = FreeRun> {
    let mut number = 1;
    std::iter::from_fn(move || {
        while number <= seats_per_row && !free(number) {
            number += 1;
        }
        let first = number;
        while number <= seats_per_row && free(number) {
            number += 1;
        }
        (number > first).then_some(FreeRun {
            first,
            len: number - first,
        })
    })
}

/// The first seat of the best block of `count` seats in one row, if the row has
/// one. A block at the start of a free run leaves the rest of the run whole, so
/// it strands a single seat only when the run is exactly one seat longer than
/// the block, and then so does every block in that run: the lowest run that is
/// not one seat too long is the best, else the lowest run that fits at all.
fn best_in_row(count: u32, seats_per_row: u32, free: impl Fn(u32) -> bool) -> Option<u32> {
    let mut strands_one = None;
    for run in free_runs(seats_per_row, free).filter(|run| run.len >= count) {
        if run.len != count + 1 {
            return Some(run.first);
        }
        strands_one = strands_one.or(Some(run.first));
    }
    strands_one
}

fn is_decimal(s: &str) -> bool {
    !s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('0')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::MAX_SEATS_PER_EVENT;
    use crate::domain::event::tests::spec;

    fn two_sections() -> EventSpec {
        let mut s = spec();
        s.sections[0].rows = 2;
        s.sections[0].seats_per_row = 3;
        s.sections.push(Section {
            id: "B2".into(),
            name: "Balcony".into(),
            price_cents: 500,
            rows: 1,
            seats_per_row: 4,
        });
        s
    }

    #[test]
    fn seat_ids_parse_within_the_venue_only() {
        let s = two_sections();
        let venue = Venue::of(&s);
        assert_eq!(
            venue.parse("A-2-3"),
            Some(SeatRef {
                section: 0,
                row: 2,
                number: 3
            })
        );
        assert_eq!(
            venue.parse("B2-1-4"),
            Some(SeatRef {
                section: 1,
                row: 1,
                number: 4
            })
        );
        for bad in [
            "A-3-1",
            "A-1-4",
            "A-0-1",
            "A-01-1",
            "C-1-1",
            "A-1",
            "A-1-1-1",
            "",
            "a-1-1",
            "A-+1-1",
            "A-1-99999999999",
        ] {
            assert_eq!(venue.parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn ids_and_parse_round_trip_over_the_whole_map_in_order() {
        let s = two_sections();
        let venue = Venue::of(&s);
        let ids: Vec<String> = venue
            .seats()
            .map(|seat| venue.id(seat).to_string())
            .collect();
        assert_eq!(
            ids,
            [
                "A-1-1", "A-1-2", "A-1-3", "A-2-1", "A-2-2", "A-2-3", "B2-1-1", "B2-1-2", "B2-1-3",
                "B2-1-4"
            ]
        );
        assert!(
            venue
                .seats()
                .all(|seat| venue.parse(venue.id(seat).as_str()) == Some(seat))
        );
        assert!(
            venue
                .seats()
                .enumerate()
                .all(|(i, seat)| venue.index(seat) == i)
        );
    }

    #[test]
    fn the_compact_map_has_one_code_per_seat_in_map_order() {
        let s = two_sections();
        let venue = Venue::of(&s);
        let taken = |pairs: &[(&str, SeatState)]| -> Vec<(String, SeatState)> {
            pairs
                .iter()
                .map(|&(id, state)| (id.to_owned(), state))
                .collect()
        };
        let map = VersionedSeats::with_taken(
            &venue,
            7,
            &taken(&[("A-1-2", SeatState::Held), ("B2-1-4", SeatState::Sold)]),
        );
        assert_eq!((map.version(), map.codes().as_str()), (7, "fhfffffffs"));
        let moved = map.changed(
            &venue,
            9,
            &taken(&[
                ("A-1-2", SeatState::Free),
                ("A-2-3", SeatState::Held),
                ("Z-1-1", SeatState::Sold),
                ("A-9-9", SeatState::Sold),
            ]),
        );
        assert_eq!((moved.version(), moved.codes().as_str()), (9, "fffffhfffs"));
        assert_eq!(
            map.codes(),
            "fhfffffffs",
            "the earlier version is unchanged"
        );
    }

    #[test]
    fn seat_codes_read_back_as_the_states_they_encode() {
        for state in [SeatState::Free, SeatState::Held, SeatState::Sold] {
            assert_eq!(SeatState::from_code(&state.code().to_string()), Some(state));
        }
        for unknown in ["", "x", "H", "hs"] {
            assert_eq!(SeatState::from_code(unknown), None, "{unknown:?}");
        }
    }

    /// Seat ids as the venue spells them, for short assertions.
    fn names(venue: &Venue<'_>, block: Option<Vec<SeatRef>>) -> Option<Vec<String>> {
        block.map(|b| b.into_iter().map(|s| venue.id(s).to_string()).collect())
    }

    /// Free unless listed.
    fn free_but<'v>(venue: &'v Venue<'_>, taken: &[&str]) -> impl Fn(SeatRef) -> bool + 'v {
        let taken: Vec<SeatRef> = taken.iter().map(|id| venue.parse(id).unwrap()).collect();
        move |seat: SeatRef| !taken.contains(&seat)
    }

    fn only(section: usize) -> BlockFilter {
        BlockFilter {
            section: Some(section),
            ..BlockFilter::default()
        }
    }

    #[test]
    fn best_available_keeps_the_lowest_section_and_row_first() {
        let s = two_sections();
        let venue = Venue::of(&s);
        let any = BlockFilter::default();
        let best = |count, filter, taken: &[&str]| {
            names(
                &venue,
                venue.best_block(count, filter, free_but(&venue, taken)),
            )
        };
        let ids = |ids: &[&str]| Some(ids.iter().map(|&id| id.to_owned()).collect::<Vec<_>>());
        // Every block of two in a row of three strands one seat: the front row still comes first.
        assert_eq!(best(2, any, &[]), ids(&["A-1-1", "A-1-2"]));
        assert_eq!(best(2, any, &["A-1-2"]), ids(&["A-2-1", "A-2-2"]));
        assert_eq!(best(3, any, &["A-2-2"]), ids(&["A-1-1", "A-1-2", "A-1-3"]));
        assert_eq!(
            best(4, any, &[]),
            ids(&["B2-1-1", "B2-1-2", "B2-1-3", "B2-1-4"])
        );
        assert_eq!(best(1, only(1), &[]), ids(&["B2-1-1"]));
        assert_eq!(best(5, any, &[]), None);
        assert_eq!(best(0, any, &[]), None);
        assert_eq!(best(2, only(1), &["B2-1-2", "B2-1-3"]), None);
    }

    #[test]
    fn best_available_leaves_no_single_seat_stranded_in_its_row_when_it_can() {
        let mut s = spec();
        s.sections[0].rows = 2;
        s.sections[0].seats_per_row = 8;
        let venue = Venue::of(&s);
        let any = BlockFilter::default();
        let best = |count, taken: &[&str]| {
            names(
                &venue,
                venue.best_block(count, any, free_but(&venue, taken)),
            )
        };
        let ids = |ids: &[&str]| Some(ids.iter().map(|&id| id.to_owned()).collect::<Vec<_>>());
        // A-1-1 alone would strand A-1-2 between it and the taken A-1-3.
        assert_eq!(best(1, &["A-1-3"]), ids(&["A-1-4"]));
        // Two fill that gap exactly.
        assert_eq!(best(2, &["A-1-3"]), ids(&["A-1-1", "A-1-2"]));
        // A single stranded seat is the best place for one.
        assert_eq!(best(1, &["A-1-2"]), ids(&["A-1-1"]));
        // Three in the six from A-1-3 would strand nothing; in A-1-1..4 they would.
        assert_eq!(best(3, &["A-1-5"]), ids(&["A-1-6", "A-1-7", "A-1-8"]));
        // When every block of the front row strands a seat, the front row still wins.
        assert_eq!(
            best(3, &["A-1-5", "A-1-8"]),
            ids(&["A-1-1", "A-1-2", "A-1-3"])
        );
        // An empty row: its lowest seats, not its centre (API.md: lowest section, row, seat).
        assert_eq!(best(2, &[]), ids(&["A-1-1", "A-1-2"]));
    }

    #[test]
    fn best_available_keeps_to_the_section_and_price_asked_for() {
        let s = two_sections();
        let venue = Venue::of(&s);
        let cheap = |max| BlockFilter {
            section: None,
            max_price_cents: Some(max),
        };
        let free = |_| true;
        assert_eq!(
            names(&venue, venue.best_block(2, cheap(500), free)),
            Some(vec!["B2-1-1".into(), "B2-1-2".into()]),
            "A costs more than 500"
        );
        assert_eq!(
            names(&venue, venue.best_block(1, cheap(9900), free)),
            Some(vec!["A-1-1".into()]),
            "a price ceiling is inclusive"
        );
        assert_eq!(venue.best_block(1, cheap(499), free), None);
        let both = BlockFilter {
            section: Some(0),
            max_price_cents: Some(500),
        };
        assert_eq!(venue.best_block(1, both, free), None);
        assert_eq!(venue.largest_free_block(both, free), 0);
        assert_eq!(venue.largest_free_block(cheap(500), free), 4);
        assert_eq!(
            venue.largest_free_block(only(0), free_but(&venue, &["A-1-2", "A-2-3"])),
            2
        );
    }

    use proptest::prelude::*;

    /// Valid specs of one to four sections of at most `rows` × `seats_per_row`
    /// (at most 250,000 seats each, so four stay within the event's limit).
    fn specs(rows: u32, seats_per_row: u32) -> impl Strategy<Value = EventSpec> {
        assert!(u64::from(rows) * u64::from(seats_per_row) <= MAX_SEATS_PER_EVENT / 4);
        prop::collection::hash_set("[A-Za-z0-9]{1,8}", 1..=4)
            .prop_flat_map(move |ids| {
                let dims = prop::collection::vec((1..=rows, 1..=seats_per_row), ids.len());
                (Just(ids.into_iter().collect::<Vec<_>>()), dims)
            })
            .prop_map(|(ids, dims)| {
                let mut s = spec();
                s.sections = ids
                    .into_iter()
                    .zip(dims)
                    .map(|(id, (rows, seats_per_row))| Section {
                        id,
                        name: "Section".into(),
                        price_cents: 100,
                        rows,
                        seats_per_row,
                    })
                    .collect();
                assert_eq!(s.validate(), Ok(()));
                s
            })
    }

    /// Text shaped like seat ids: a section id of the venue or not, then numbers or not.
    fn seat_like(spec: &EventSpec) -> impl Strategy<Value = String> + use<> {
        let ids: Vec<String> = spec.sections.iter().map(|s| s.id.clone()).collect();
        let section = prop_oneof![prop::sample::select(ids), "[A-Za-z0-9-]{0,9}"];
        let number = || {
            prop_oneof![
                any::<u32>().prop_map(|n| n.to_string()),
                "[0-9+-]{0,12}",
                ".{0,3}"
            ]
        };
        (section, number(), number(), prop::option::of(".{0,4}")).prop_map(
            |(section, row, seat, extra)| {
                let mut raw = format!("{section}-{row}-{seat}");
                if let Some(extra) = extra {
                    raw.push_str(&extra);
                }
                raw
            },
        )
    }

    /// Any seat of the spec's venue.
    fn seats_of(spec: &EventSpec) -> impl Strategy<Value = SeatRef> + use<> {
        let sizes: Vec<(u32, u32)> = spec
            .sections
            .iter()
            .map(|s| (s.rows, s.seats_per_row))
            .collect();
        (0..sizes.len()).prop_flat_map(move |section| {
            let (rows, seats_per_row) = sizes[section];
            (1..=rows, 1..=seats_per_row).prop_map(move |(row, number)| SeatRef {
                section,
                row,
                number,
            })
        })
    }

    /// The rule of `best_block`, by brute force: every window of `count` seats in
    /// every row the filter allows, ranked by section, row, whether taking it leaves
    /// a free seat with no free neighbour next to it, and seat.
    fn best_window(
        spec: &EventSpec,
        count: u32,
        filter: BlockFilter,
        free: impl Fn(SeatRef) -> bool,
    ) -> Option<Vec<SeatRef>> {
        if count == 0 {
            return None;
        }
        windows(spec, count, filter)
            .filter(|window| window.iter().all(|&seat| free(seat)))
            .min_by_key(|window| {
                let first = window[0];
                (
                    first.section,
                    first.row,
                    strands_a_seat(spec, window, &free),
                    first.number,
                )
            })
    }

    /// Every window of `count` adjacent seats in the rows `filter` allows.
    fn windows(
        spec: &EventSpec,
        count: u32,
        filter: BlockFilter,
    ) -> impl Iterator<Item = Vec<SeatRef>> + '_ {
        spec.sections
            .iter()
            .enumerate()
            .filter(move |&(i, s)| filter.allows(i, s))
            .flat_map(move |(section, s)| {
                (1..=s.rows).flat_map(move |row| {
                    (1..=s.seats_per_row.saturating_sub(count - 1)).map(move |first| {
                        (first..first + count)
                            .map(|number| SeatRef {
                                section,
                                row,
                                number,
                            })
                            .collect::<Vec<_>>()
                    })
                })
            })
    }

    /// Whether taking `window` leaves, right beside it, a free seat whose other
    /// side is a taken seat or the end of the row.
    fn strands_a_seat(
        spec: &EventSpec,
        window: &[SeatRef],
        free: impl Fn(SeatRef) -> bool,
    ) -> bool {
        let (first, last) = (window[0], window[window.len() - 1]);
        let seats_per_row = spec.sections[first.section].seats_per_row;
        let free_at = |number: u32| {
            (1..=seats_per_row).contains(&number) && free(SeatRef { number, ..first })
        };
        // Seat 0 is off the row: never free, so never stranded.
        let stranded = |beside: u32, beyond: u32| free_at(beside) && !free_at(beyond);
        stranded(first.number - 1, first.number.saturating_sub(2))
            || stranded(last.number + 1, last.number + 2)
    }

    /// A venue, which seats are free (about `free_share` of them), and a filter of it.
    fn venue_with_free_seats(
        free_share: f64,
    ) -> impl Strategy<Value = (EventSpec, Vec<bool>, BlockFilter)> {
        specs(4, 8)
            .prop_flat_map(move |s| {
                let free = prop::collection::vec(
                    prop::bool::weighted(free_share),
                    s.seats_total() as usize,
                );
                let prices = prop::collection::vec(
                    prop_oneof![Just(100i64), Just(500), Just(900)],
                    s.sections.len(),
                );
                (Just(s), free, prices)
            })
            .prop_flat_map(|(mut s, free, prices)| {
                for (section, price) in s.sections.iter_mut().zip(prices) {
                    section.price_cents = price;
                }
                let filter = (
                    prop::option::of(0..5usize),
                    prop::option::of(prop_oneof![Just(100i64), Just(499), Just(500), Just(1000)]),
                )
                    .prop_map(|(section, max_price_cents)| BlockFilter {
                        section,
                        max_price_cents,
                    });
                (Just(s), Just(free), filter)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Whatever parses is spelled exactly as the venue spells that seat.
        #[test]
        fn seat_parse_never_panics_and_accepts_only_canonical_ids(
            (spec, shaped) in specs(1_000, 250).prop_flat_map(|s| { let shaped = seat_like(&s); (Just(s), shaped) }),
            raw in any::<String>(),
        ) {
            let venue = Venue::of(&spec);
            for raw in [shaped, raw] {
                if let Some(seat) = venue.parse(&raw) {
                    prop_assert_eq!(venue.id(seat).to_string(), raw);
                }
            }
        }

        #[test]
        fn every_seat_of_a_venue_round_trips_through_its_id(spec in specs(20, 30)) {
            let venue = Venue::of(&spec);
            let mut count = 0;
            for (i, seat) in venue.seats().enumerate() {
                prop_assert_eq!(venue.parse(venue.id(seat).as_str()), Some(seat));
                prop_assert_eq!(venue.index(seat), i);
                count += 1;
            }
            prop_assert_eq!(count, spec.seats_total());
        }

        #[test]
        fn far_seats_of_large_venues_round_trip_too(
            (spec, picks) in specs(1_000, 250).prop_flat_map(|s| {
                let picks = prop::collection::vec(seats_of(&s), 1..20);
                (Just(s), picks)
            }),
        ) {
            let venue = Venue::of(&spec);
            for seat in picks {
                prop_assert_eq!(venue.parse(venue.id(seat).as_str()), Some(seat));
            }
        }

        /// `best_block` is exactly the brute-force ranking's best window, or nothing
        /// when no window of `count` free seats exists.
        #[test]
        fn best_block_is_the_best_ranked_free_window_or_nothing(
            (spec, free, filter) in venue_with_free_seats(0.7),
            count in 0..=9u32,
        ) {
            let venue = Venue::of(&spec);
            let is_free = |seat: SeatRef| free[venue.index(seat)];
            let block = venue.best_block(count, filter, is_free);
            prop_assert_eq!(&block, &best_window(&spec, count, filter, is_free));
        }

        /// The block is `count` free adjacent seats of one row, in a section the
        /// filter allows; there is one exactly when a free run is that long.
        #[test]
        fn the_block_is_free_adjacent_and_allowed(
            (spec, free, filter) in venue_with_free_seats(0.7),
            count in 1..=9u32,
        ) {
            let venue = Venue::of(&spec);
            let is_free = |seat: SeatRef| free[venue.index(seat)];
            let largest = venue.largest_free_block(filter, is_free);
            match venue.best_block(count, filter, is_free) {
                Some(block) => {
                    prop_assert_eq!(block.len(), count as usize);
                    let first = block[0];
                    prop_assert!(filter.allows(first.section, &spec.sections[first.section]));
                    for (offset, &seat) in block.iter().enumerate() {
                        prop_assert!(is_free(seat));
                        prop_assert_eq!(seat, SeatRef { number: first.number + offset as u32, ..first });
                    }
                    prop_assert!(count <= largest);
                }
                None => prop_assert!(count > largest),
            }
        }

        /// No block strands a single seat when the row the ranking chooses (the
        /// first, in section and row order, with `count` free adjacent seats at all)
        /// has a block of that size that strands none.
        #[test]
        fn no_seat_is_stranded_when_the_chosen_row_can_avoid_it(
            (spec, free, filter) in venue_with_free_seats(0.6),
            count in 1..=4u32,
        ) {
            let venue = Venue::of(&spec);
            let is_free = |seat: SeatRef| free[venue.index(seat)];
            let Some(block) = venue.best_block(count, filter, is_free) else {
                return Ok(());
            };
            let chosen_row = |window: &Vec<SeatRef>| (window[0].section, window[0].row) == (block[0].section, block[0].row);
            let avoidable = windows(&spec, count, filter)
                .filter(chosen_row)
                .any(|window| window.iter().all(|&seat| is_free(seat)) && !strands_a_seat(&spec, &window, is_free));
            prop_assert!(!avoidable || !strands_a_seat(&spec, &block, is_free), "{:?}", block);
        }
    }
}
