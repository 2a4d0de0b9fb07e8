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

/// The seats of an event, derived from its sections.
pub struct Venue<'a> {
    sections: &'a [Section],
}

impl<'a> Venue<'a> {
    pub fn of(spec: &'a EventSpec) -> Self {
        Self { sections: &spec.sections }
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
        ((1..=s.rows).contains(&row) && (1..=s.seats_per_row).contains(&number)).then_some(SeatRef {
            section: index,
            row,
            number,
        })
    }

    pub fn id(&self, seat: SeatRef) -> SeatId {
        SeatId(format!("{}-{}-{}", self.sections[seat.section].id, seat.row, seat.number))
    }

    pub fn price_cents(&self, seat: SeatRef) -> i64 {
        self.sections[seat.section].price_cents
    }

    /// The seat's place in the seat map's order.
    pub fn index(&self, seat: SeatRef) -> usize {
        let before: u64 = self.sections[..seat.section].iter().map(Section::seat_count).sum();
        let spr = u64::from(self.sections[seat.section].seats_per_row);
        (before + u64::from(seat.row - 1) * spr + u64::from(seat.number - 1)) as usize
    }

    pub fn section_index(&self, id: &str) -> Option<usize> {
        self.sections.iter().position(|s| s.id == id)
    }

    /// Every seat in section, row, seat order: the seat map's order.
    pub fn seats(&self) -> impl Iterator<Item = SeatRef> + '_ {
        self.sections.iter().enumerate().flat_map(|(section, s)| {
            (1..=s.rows).flat_map(move |row| (1..=s.seats_per_row).map(move |number| SeatRef { section, row, number }))
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
                    run = if free(SeatRef { section: index, row, number }) { run + 1 } else { 0 };
                    if run == count {
                        let first = number + 1 - count;
                        return Some((first..=number).map(|n| SeatRef { section: index, row, number: n }).collect());
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
        assert_eq!(venue.parse("A-2-3"), Some(SeatRef { section: 0, row: 2, number: 3 }));
        assert_eq!(venue.parse("B2-1-4"), Some(SeatRef { section: 1, row: 1, number: 4 }));
        for bad in
            ["A-3-1", "A-1-4", "A-0-1", "A-01-1", "C-1-1", "A-1", "A-1-1-1", "", "a-1-1", "A-+1-1", "A-1-99999999999"]
        {
            assert_eq!(venue.parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn ids_and_parse_round_trip_over_the_whole_map_in_order() {
        let s = two_sections();
        let venue = Venue::of(&s);
        let ids: Vec<String> = venue.seats().map(|seat| venue.id(seat).to_string()).collect();
        assert_eq!(ids, ["A-1-1", "A-1-2", "A-1-3", "A-2-1", "A-2-2", "A-2-3", "B2-1-1", "B2-1-2", "B2-1-3", "B2-1-4"]);
        assert!(venue.seats().all(|seat| venue.parse(venue.id(seat).as_str()) == Some(seat)));
        assert!(venue.seats().enumerate().all(|(i, seat)| venue.index(seat) == i));
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
            block.map(|b| b.into_iter().map(|s| venue.id(s).to_string()).collect::<Vec<_>>())
        };
        assert_eq!(names(venue.best_block(2, None, taken(&[]))), Some(vec!["A-1-1".into(), "A-1-2".into()]));
        assert_eq!(names(venue.best_block(2, None, taken(&["A-1-2"]))), Some(vec!["A-2-1".into(), "A-2-2".into()]));
        assert_eq!(
            names(venue.best_block(3, None, taken(&["A-2-2"]))),
            Some(vec!["A-1-1".into(), "A-1-2".into(), "A-1-3".into()])
        );
        assert_eq!(
            names(venue.best_block(4, None, taken(&[]))),
            Some(vec!["B2-1-1".into(), "B2-1-2".into(), "B2-1-3".into(), "B2-1-4".into()])
        );
        assert_eq!(names(venue.best_block(1, Some(1), taken(&[]))), Some(vec!["B2-1-1".into()]));
        assert_eq!(venue.best_block(5, None, taken(&[])), None);
        assert_eq!(venue.best_block(2, Some(1), taken(&["B2-1-2", "B2-1-3"])), None);
    }
}
