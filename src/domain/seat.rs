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

    /// The first `count` adjacent seats in one row for which `free` holds,
    /// lowest section, row and seat first; only in `section` if given.
    pub fn best_block(
        &self,
        count: u32,
        section: Option<usize>,
        free: impl Fn(SeatRef) -> bool,
    ) -> Option<Vec<SeatRef>> {
        for (index, s) in self.sections.iter().enumerate() {
            if section.is_some_and(|only| only != index) || count > s.seats_per_row || count == 0 {
                continue;
            }
            for row in 1..=s.rows {
                let mut run = 0;
                for number in 1..=s.seats_per_row {
                    run = if free(SeatRef {
                        section: index,
                        row,
                        number,
                    }) {
                        run + 1
                    } else {
                        0
                    };
                    if run == count {
                        let first = number + 1 - count;
                        return Some(
                            (first..=number)
                                .map(|n| SeatRef {
                                    section: index,
                                    row,
                                    number: n,
                                })
                                .collect(),
                        );
                    }
                }
            }
        }
        None
    }
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

    #[test]
    fn best_available_takes_the_first_adjacent_block() {
        let s = two_sections();
        let venue = Venue::of(&s);
        let taken = |ids: &[&str]| {
            let taken: Vec<SeatRef> = ids.iter().map(|id| venue.parse(id).unwrap()).collect();
            move |seat: SeatRef| !taken.contains(&seat)
        };
        let names = |block: Option<Vec<SeatRef>>| {
            block.map(|b| {
                b.into_iter()
                    .map(|s| venue.id(s).to_string())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            names(venue.best_block(2, None, taken(&[]))),
            Some(vec!["A-1-1".into(), "A-1-2".into()])
        );
        assert_eq!(
            names(venue.best_block(2, None, taken(&["A-1-2"]))),
            Some(vec!["A-2-1".into(), "A-2-2".into()])
        );
        assert_eq!(
            names(venue.best_block(3, None, taken(&["A-2-2"]))),
            Some(vec!["A-1-1".into(), "A-1-2".into(), "A-1-3".into()])
        );
        assert_eq!(
            names(venue.best_block(4, None, taken(&[]))),
            Some(vec![
                "B2-1-1".into(),
                "B2-1-2".into(),
                "B2-1-3".into(),
                "B2-1-4".into()
            ])
        );
        assert_eq!(
            names(venue.best_block(1, Some(1), taken(&[]))),
            Some(vec!["B2-1-1".into()])
        );
        assert_eq!(venue.best_block(5, None, taken(&[])), None);
        assert_eq!(
            venue.best_block(2, Some(1), taken(&["B2-1-2", "B2-1-3"])),
            None
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

    /// The contract of `best_block`, by brute force: every window of `count` seats
    /// in every row, in section, row and seat order.
    fn first_free_run(
        spec: &EventSpec,
        count: u32,
        only: Option<usize>,
        free: impl Fn(SeatRef) -> bool,
    ) -> Option<Vec<SeatRef>> {
        if count == 0 {
            return None;
        }
        let sections = spec
            .sections
            .iter()
            .enumerate()
            .filter(|&(i, _)| only.is_none_or(|only| only == i));
        sections
            .flat_map(|(section, s)| {
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
            .find(|run| run.iter().all(|&seat| free(seat)))
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

        /// `best_block` is exactly the first run of `count` free adjacent seats in one
        /// row, lowest section, row and seat first, or nothing when there is none.
        #[test]
        fn best_block_is_the_first_free_adjacent_run_or_nothing(
            (spec, free) in specs(4, 8).prop_flat_map(|s| {
                let free = prop::collection::vec(prop::bool::weighted(0.7), s.seats_total() as usize);
                (Just(s), free)
            }),
            count in 0..=9u32,
            only in prop::option::of(0..5usize),
        ) {
            let venue = Venue::of(&spec);
            let is_free = |seat: SeatRef| free[venue.index(seat)];
            let block = venue.best_block(count, only, is_free);
            if let Some(block) = &block {
                prop_assert_eq!(block.len(), count as usize);
                let first = block[0];
                prop_assert!(only.is_none_or(|only| only == first.section));
                for (offset, &seat) in block.iter().enumerate() {
                    prop_assert!(is_free(seat));
                    let next = SeatRef { number: first.number + offset as u32, ..first };
                    prop_assert_eq!(seat, next);
                }
            }
            let expected = first_free_run(&spec, count, only, is_free);
            prop_assert_eq!(block, expected);
        }
    }
}
