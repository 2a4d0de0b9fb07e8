//! A process's view of one event's line, rebuilt from the event's append-only log.
//!
//! Every process follows the same log (kept in the admission store) and answers
//! status polls from this view alone: a poll costs a token check and a few
//! lookups, never a round trip. The view only moves forward, so within one process
//! a position never goes up.

use std::fmt::{self, Write as _};
use std::str::FromStr;

use super::{TokenKey, TokenKind};

/// Why a token is no longer in the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// Left the line while waiting; everyone behind moved up.
    Left,
    /// Ended its admission pass early, freeing its place under `max_active`.
    PassEnded,
    /// Stopped polling for `abandon_seconds` and was skipped at admission.
    Abandoned,
}

/// One record of the event's log. Ranks are places in admission order: the
/// pre-queue draw first (ranks `1..=P`), then regular joins (`P + seq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogEntry {
    /// The pre-queue closed with `P` places; regular tokens rank after them.
    Frozen {
        prequeue: u64,
    },
    /// The draw is published in the admission store; views load it.
    Drawn,
    /// Ranks `from..=to` were consumed at `at_ms`: all of them are admitted except
    /// those that departed, and `admitted` counts the admissions.
    Consumed {
        from: u64,
        to: u64,
        admitted: u64,
        at_ms: i64,
    },
    Departed {
        key: TokenKey,
        why: Departure,
    },
}

impl fmt::Display for LogEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogEntry::Frozen { prequeue } => write!(f, "z:{prequeue}"),
            LogEntry::Drawn => f.write_str("d"),
            LogEntry::Consumed {
                from,
                to,
                admitted,
                at_ms,
            } => write!(f, "c:{from}:{to}:{admitted}:{at_ms}"),
            LogEntry::Departed { key, why } => {
                let tag = match why {
                    Departure::Left => 'l',
                    Departure::PassEnded => 'e',
                    Departure::Abandoned => 'x',
                };
                write!(f, "{tag}:{key}")
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("malformed log entry {0:?}")]
pub struct MalformedEntry(pub String);

impl FromStr for LogEntry {
    type Err = MalformedEntry;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let bad = || MalformedEntry(raw.to_owned());
        let mut parts = raw.split(':');
        let tag = parts.next().ok_or_else(bad)?;
        let mut num = || -> Result<u64, MalformedEntry> {
            parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)
        };
        let entry = match tag {
            "z" => LogEntry::Frozen { prequeue: num()? },
            "d" => LogEntry::Drawn,
            "c" => {
                let (from, to, admitted) = (num()?, num()?, num()?);
                let at_ms = i64::try_from(num()?).map_err(|_| bad())?;
                LogEntry::Consumed {
                    from,
                    to,
                    admitted,
                    at_ms,
                }
            }
            "l" | "e" | "x" => {
                let why = match tag {
                    "l" => Departure::Left,
                    "e" => Departure::PassEnded,
                    _ => Departure::Abandoned,
                };
                let key = raw.get(2..).and_then(TokenKey::parse).ok_or_else(bad)?;
                return Ok(LogEntry::Departed { key, why });
            }
            _ => return Err(bad()),
        };
        if parts.next().is_some() {
            Err(bad())
        } else {
            Ok(entry)
        }
    }
}

/// What a poll reads for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStatus {
    /// Joined before the sale opened; the draw has not placed it yet.
    PreQueue,
    Waiting {
        position: u64,
    },
    Admitted {
        expires_at_ms: i64,
    },
    Expired,
    Left,
}

impl TokenStatus {
    /// This status as shown to a client that was last shown `shown` (its
    /// position then): a place only moves forward, so a view that places it
    /// further back (one that has read less of the log, or a log restored
    /// after a failover that has not yet re-logged every admission) shows the
    /// last position instead.
    pub fn no_further_back_than(self, shown: Option<u64>) -> Self {
        match (self, shown) {
            (TokenStatus::Waiting { position }, Some(shown)) => TokenStatus::Waiting {
                position: position.min(shown.max(1)),
            },
            (status, _) => status,
        }
    }
}

/// What a client sends back with its next poll: how far into the log its last
/// answer was read and, when it was waiting, the position it was shown, with
/// the token it was for. Written `<entries>.<epoch>[.<token key>.<position>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollMark {
    pub read: LogPosition,
    pub shown: Option<(TokenKey, u64)>,
}

impl PollMark {
    /// The position shown to `key`'s last answer, if this mark is `key`'s.
    pub fn shown_to(&self, key: TokenKey) -> Option<u64> {
        self.shown
            .filter(|(shown_key, _)| *shown_key == key)
            .map(|(_, position)| position)
    }
}

impl fmt::Display for PollMark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Written on every poll: no format machinery.
        fmt::Display::fmt(&self.read, f)?;
        if let Some((key, position)) = self.shown {
            f.write_char('.')?;
            fmt::Display::fmt(&key, f)?;
            f.write_char('.')?;
            f.write_str(itoa::Buffer::new().format(position))?;
        }
        Ok(())
    }
}

impl FromStr for PollMark {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let mut parts = s.splitn(4, '.');
        let read =
            LogPosition::from_parts(parts.next().ok_or(())?, parts.next().ok_or(())?).ok_or(())?;
        let shown = match (parts.next(), parts.next()) {
            (None, None) => None,
            (Some(key), Some(position)) => Some((
                TokenKey::parse(key).ok_or(())?,
                position.parse().map_err(|_| ())?,
            )),
            _ => return Err(()),
        };
        Ok(Self { read, shown })
    }
}

/// Passes are counted in buckets of this many milliseconds of expiry, so that
/// a restore names at most `pass_seconds / 10` expiries however many there were.
pub const PASS_BUCKET_MS: i64 = 10_000;

/// How far into the line's log an answer was read: the log's epoch and the
/// entries applied from it. A client sends back the position of its last
/// answer, so that an instance which has read less of the log catches up
/// before answering, and a position never goes up from one instance to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPosition {
    epoch: String,
    entries: u64,
}

/// An epoch is a store-side timestamp: short, digits only. Anything else in a
/// client's header is not a position of ours.
const MAX_EPOCH_CHARS: usize = 20;

impl fmt::Display for LogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(itoa::Buffer::new().format(self.entries))?;
        f.write_char('.')?;
        f.write_str(&self.epoch)
    }
}

impl FromStr for LogPosition {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (entries, epoch) = s.split_once('.').ok_or(())?;
        Self::from_parts(entries, epoch).ok_or(())
    }
}

impl LogPosition {
    /// The position written `<entries>.<epoch>`, from its two parts; `None`
    /// if they are not one.
    pub fn from_parts(entries: &str, epoch: &str) -> Option<Self> {
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(epoch) || epoch.len() > MAX_EPOCH_CHARS || !digits(entries) {
            return None;
        }
        Some(Self {
            epoch: epoch.to_owned(),
            entries: entries.parse().ok()?,
        })
    }
}

#[derive(Debug, Default)]
pub struct LineView {
    /// The epoch of the log this view follows: it changes when a line the
    /// store lost is restored, and its log starts again.
    epoch: Option<String>,
    /// This view followed the line's log from the line's opening (not from a
    /// restore), so it knows every admission.
    knows_history: bool,
    entries_applied: u64,
    prequeue: Option<u64>,
    draw_published: bool,
    /// `draw[seq - 1]` is the rank of pre-queue token `seq`; 0 if it was not drawn.
    draw: Option<Vec<u32>>,
    consumed: u64,
    /// `(last rank, at_ms, admitted)` of each consumed range, in rank order.
    consumed_ranges: Vec<(u64, i64, u64)>,
    departed: foldhash::HashMap<TokenKey, Departure>,
    /// Ranks still ahead of the watermark whose tokens left; kept sorted.
    left_ahead: Vec<u64>,
    /// Pre-queue tokens that left before the draw gave them a rank.
    left_unranked: Vec<TokenKey>,
    /// Passes issued, by the second they were issued in, oldest first.
    passes_by_second: Vec<IssuedPasses>,
}

/// The passes issued in one second, and how many of them were ended early since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IssuedPasses {
    at_s: i64,
    issued: u64,
    ended: u64,
}

impl LineView {
    /// Follows the log of `epoch` (of a line `restored` once, or not). A restored
    /// line's log starts again: it is read again from its first entry, which is
    /// safe as entries apply idempotently.
    pub fn follow_epoch(&mut self, epoch: &str, restored: bool) {
        match &self.epoch {
            None => self.knows_history = !restored,
            Some(followed) if followed != epoch => self.entries_applied = 0,
            Some(_) => return,
        }
        self.epoch = Some(epoch.to_owned());
    }

    /// Passes that may still be valid at `now_ms`, as `(runs out at ms, how
    /// many)`, soonest first, counted by the next [`PASS_BUCKET_MS`] boundary
    /// (an upper bound); `None` if this view did not follow the line from its
    /// opening and cannot know.
    pub fn valid_passes(&self, now_ms: i64, pass_seconds: u32) -> Option<Vec<(i64, u64)>> {
        let mut buckets: std::collections::BTreeMap<i64, u64> = std::collections::BTreeMap::new();
        for (runs_out_at, count) in self
            .knows_history
            .then(|| self.unexpired_passes(now_ms, pass_seconds))?
        {
            let bucket = runs_out_at.div_euclid(PASS_BUCKET_MS) * PASS_BUCKET_MS + PASS_BUCKET_MS;
            *buckets.entry(bucket).or_default() += count;
        }
        Some(buckets.into_iter().collect())
    }

    /// The passes this view saw end early that may not yet have run out at
    /// `now_ms` (also those issued at a time it does not know): after a
    /// restore, they stay ended whatever the store kept.
    pub fn ended_passes(&self, now_ms: i64, pass_seconds: u32) -> Vec<TokenKey> {
        self.departed
            .iter()
            .filter(|&(&key, &why)| {
                why == Departure::PassEnded
                    && self.admitted_at(key).is_none_or(|at_ms| {
                        at_ms <= 0 || at_ms + i64::from(pass_seconds) * 1_000 > now_ms
                    })
            })
            .map(|(&key, _)| key)
            .collect()
    }

    /// The pre-queue's size, once this view has learnt it.
    pub fn prequeue(&self) -> Option<u64> {
        self.prequeue
    }

    /// The draw, once this view has loaded it.
    pub fn draw(&self) -> Option<&[u32]> {
        self.draw.as_deref()
    }

    /// How many log entries this view has applied: where to read the log from next.
    pub fn entries_applied(&self) -> u64 {
        self.entries_applied
    }

    /// Where this view is in the log; `None` before it has read any of it.
    pub fn position(&self) -> Option<LogPosition> {
        self.epoch.as_ref().map(|epoch| LogPosition {
            epoch: epoch.clone(),
            entries: self.entries_applied,
        })
    }

    /// Whether this view follows the epoch `position` was read in.
    pub fn follows_epoch_of(&self, position: &LogPosition) -> bool {
        self.epoch.as_deref() == Some(position.epoch.as_str())
    }

    /// Whether this view has read the log at least as far as `position`. Of
    /// another epoch it cannot tell which is newer: it has not.
    pub fn has_read(&self, position: &LogPosition) -> bool {
        self.follows_epoch_of(position) && self.entries_applied >= position.entries
    }

    /// Whether this view answers for `key` what it would answer having read
    /// the log as far as `position`: it has read that far, or `key` has
    /// departed, which nothing later in the log changes (the process that
    /// took a leave notes it before its follower reads it back).
    pub fn answers_as_of(&self, key: TokenKey, position: &LogPosition) -> bool {
        self.has_read(position) || self.departed.contains_key(&key)
    }

    /// Every rank up to this one has been consumed.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The draw is published but this view has not loaded it yet.
    pub fn needs_draw(&self) -> bool {
        self.draw_published && self.draw.is_none()
    }

    pub fn apply(&mut self, entry: LogEntry) {
        self.entries_applied += 1;
        match entry {
            LogEntry::Frozen { prequeue } => self.note_frozen(prequeue),
            LogEntry::Drawn => self.draw_published = true,
            LogEntry::Consumed {
                to,
                admitted,
                at_ms,
                ..
            } => {
                if to > self.consumed {
                    self.consumed = to;
                    self.consumed_ranges.push((to, at_ms, admitted));
                    let passed = self.left_ahead.partition_point(|&r| r <= to);
                    self.left_ahead.drain(..passed);
                    self.note_issued(at_ms, admitted);
                }
            }
            LogEntry::Departed { key, why } => self.note_departed(key, why),
        }
    }

    /// Records a departure this process caused, before the log brings it back.
    pub fn note_departed(&mut self, key: TokenKey, why: Departure) {
        if self.departed.insert(key, why).is_some() {
            return;
        }
        match why {
            Departure::Left => self.note_left(key),
            Departure::PassEnded => self.note_pass_ended(key),
            Departure::Abandoned => {}
        }
    }

    /// The pre-queue size is learnt from the log, or earlier by the process that froze it.
    pub fn note_frozen(&mut self, prequeue: u64) {
        self.prequeue.get_or_insert(prequeue);
    }

    pub fn install_draw(&mut self, draw: Vec<u32>) {
        self.draw = Some(draw);
        for key in std::mem::take(&mut self.left_unranked) {
            self.note_left(key);
        }
    }

    pub fn rank_of(&self, key: TokenKey) -> Option<u64> {
        match key.kind {
            TokenKind::Regular => self.prequeue.map(|p| p + key.seq),
            TokenKind::PreQueue => {
                let index = usize::try_from(key.seq.checked_sub(1)?).ok()?;
                let rank = *self.draw.as_ref()?.get(index)?;
                (rank != 0).then_some(u64::from(rank))
            }
        }
    }

    /// The status of `key` at `now_ms`, for passes valid `pass_seconds` from admission.
    pub fn status(
        &self,
        key: TokenKey,
        now_ms: i64,
        pass_seconds: u32,
        sale_open: bool,
    ) -> TokenStatus {
        match self.departed.get(&key) {
            Some(Departure::Left | Departure::PassEnded) => return TokenStatus::Left,
            Some(Departure::Abandoned) => return TokenStatus::Expired,
            None => {}
        }
        let Some(rank) = self.rank_of(key) else {
            return match (key.kind, self.prequeue) {
                // Drawn soon: everyone in the pre-queue is at most P places from the front.
                (TokenKind::PreQueue, Some(p)) if sale_open => TokenStatus::Waiting {
                    position: p.saturating_sub(self.consumed).max(1),
                },
                (TokenKind::PreQueue, _) => TokenStatus::PreQueue,
                // Only reachable while this view lags the log by a moment.
                (TokenKind::Regular, _) => TokenStatus::Waiting {
                    position: key.seq.max(1),
                },
            };
        };
        if rank <= self.consumed {
            return match self.admitted_at(key) {
                Some(at_ms) => {
                    let expires_at_ms = at_ms + i64::from(pass_seconds) * 1_000;
                    if now_ms < expires_at_ms {
                        TokenStatus::Admitted { expires_at_ms }
                    } else {
                        TokenStatus::Expired
                    }
                }
                None => TokenStatus::Expired,
            };
        }
        let left_between = self.left_ahead.partition_point(|&r| r < rank);
        TokenStatus::Waiting {
            position: rank - self.consumed - left_between as u64,
        }
    }

    /// The passes that may still be valid at `now_ms`, as (seconds until they
    /// run out, how many), soonest first: see [`Self::unexpired_passes`].
    pub fn valid_pass_expiries(
        &self,
        now_ms: i64,
        pass_seconds: u32,
    ) -> impl Iterator<Item = (f64, u64)> + Clone + '_ {
        let pass_ms = i64::from(pass_seconds) * 1_000;
        self.unexpired_passes(now_ms, pass_seconds)
            .map(move |(runs_out_at, count)| {
                ((runs_out_at - now_ms).min(pass_ms) as f64 / 1_000.0, count)
            })
    }

    /// The passes that may still be valid at `now_ms`, as (when they run out in
    /// ms, how many), soonest first: those issued, less those ended early, each
    /// counted until the end of the second it was issued in plus
    /// `pass_seconds`. A view that started on a restored log does not know the
    /// passes issued before the restore.
    fn unexpired_passes(
        &self,
        now_ms: i64,
        pass_seconds: u32,
    ) -> impl Iterator<Item = (i64, u64)> + Clone + '_ {
        let pass_ms = i64::from(pass_seconds) * 1_000;
        let runs_out_at = move |at_s: i64| (at_s + 1).saturating_mul(1_000).saturating_add(pass_ms);
        let first = self
            .passes_by_second
            .partition_point(|p| runs_out_at(p.at_s) <= now_ms);
        self.passes_by_second[first..]
            .iter()
            .filter(|p| p.issued > p.ended)
            .map(move |p| (runs_out_at(p.at_s), p.issued - p.ended))
    }

    /// Counts `admitted` passes issued at `at_ms` (0 for admissions a restored
    /// log only knows are past).
    fn note_issued(&mut self, at_ms: i64, admitted: u64) {
        if admitted == 0 || at_ms <= 0 {
            return;
        }
        let at_s = at_ms.div_euclid(1_000);
        match self.passes_by_second.last_mut() {
            // A clock a little behind another worker's joins the latest second: the order stays sorted.
            Some(last) if last.at_s >= at_s => last.issued += admitted,
            _ => self.passes_by_second.push(IssuedPasses {
                at_s,
                issued: admitted,
                ended: 0,
            }),
        }
    }

    /// A pass ended early frees its place under `max_active` at once. (Ended
    /// before this view saw it issued, it stays counted until it runs out.)
    fn note_pass_ended(&mut self, key: TokenKey) {
        let Some(at_ms) = self.admitted_at(key) else {
            return;
        };
        let at_s = at_ms.div_euclid(1_000);
        let bucket = self.passes_by_second.partition_point(|p| p.at_s < at_s);
        if let Some(passes) = self
            .passes_by_second
            .get_mut(bucket)
            .filter(|p| p.issued > p.ended)
        {
            passes.ended += 1;
        }
    }

    /// When the step that consumed `key`'s place ran (0 if this view only
    /// knows from a restored log that it is past); `None` while it waits.
    fn admitted_at(&self, key: TokenKey) -> Option<i64> {
        let rank = self.rank_of(key).filter(|&r| r <= self.consumed)?;
        let range = self
            .consumed_ranges
            .partition_point(|&(to, _, _)| to < rank);
        self.consumed_ranges.get(range).map(|&(_, at_ms, _)| at_ms)
    }

    fn note_left(&mut self, key: TokenKey) {
        match self.rank_of(key) {
            Some(rank) if rank > self.consumed => {
                let at = self.left_ahead.partition_point(|&r| r < rank);
                if self.left_ahead.get(at) != Some(&rank) {
                    self.left_ahead.insert(at, rank);
                }
            }
            Some(_) => {}
            None if key.kind == TokenKind::PreQueue => self.left_unranked.push(key),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn open_view() -> LineView {
        let mut v = LineView::default();
        v.apply(LogEntry::Frozen { prequeue: 0 });
        v
    }

    fn consume(v: &mut LineView, from: u64, to: u64, at_ms: i64) {
        v.apply(LogEntry::Consumed {
            from,
            to,
            admitted: to - from + 1,
            at_ms,
        });
    }

    #[test]
    fn a_log_position_travels_as_text_and_nothing_else_reads_as_one() {
        let mut v = open_view();
        assert_eq!(
            v.position(),
            None,
            "a view that has read no epoch is nowhere"
        );
        v.follow_epoch("1733030000000", false);
        consume(&mut v, 1, 4, 1_000);
        let position = v.position().expect("a position");
        assert_eq!(position.to_string(), "2.1733030000000");
        assert_eq!(position.to_string().parse(), Ok(position));
        for garbage in [
            "",
            "2",
            ".1",
            "2.",
            "x.1",
            "2.1x",
            "-1.5",
            "2.1.1",
            "2.123456789012345678901",
        ] {
            assert!(garbage.parse::<LogPosition>().is_err(), "{garbage:?}");
        }
    }

    #[test]
    fn a_view_has_read_a_position_only_of_its_epoch_and_not_beyond() {
        let mut behind = open_view();
        behind.follow_epoch("100", false);
        let mut ahead = open_view();
        ahead.follow_epoch("100", false);
        consume(&mut ahead, 1, 4, 1_000);
        let far = ahead.position().expect("a position");
        assert!(ahead.has_read(&far));
        assert!(!behind.has_read(&far));
        assert!(ahead.has_read(&behind.position().expect("a position")));
        let restored: LogPosition = "0.200".parse().expect("a position");
        assert!(!ahead.has_read(&restored), "another epoch is never read");
        assert!(!ahead.follows_epoch_of(&restored), "nor waited for");
        assert!(behind.follows_epoch_of(&far));
        assert!(!LineView::default().has_read(&far));
    }

    #[test]
    fn a_departed_token_is_answered_as_of_any_position_and_a_waiting_one_only_once_read() {
        let mut view = open_view();
        view.follow_epoch("100", false);
        let ahead: LogPosition = "50.100".parse().expect("a position");
        let (leaving, staying) = (TokenKey::regular(1), TokenKey::regular(2));
        assert!(!view.answers_as_of(leaving, &ahead));
        view.note_departed(leaving, Departure::Left);
        assert!(view.answers_as_of(leaving, &ahead), "a leave is final");
        assert!(
            !view.answers_as_of(staying, &ahead),
            "everyone else waits for the log"
        );
    }

    #[test]
    fn a_poll_mark_reads_back_what_it_wrote_and_nothing_else() {
        let read: LogPosition = "12.1700000000123".parse().expect("a position");
        let plain = PollMark {
            read: read.clone(),
            shown: None,
        };
        let shown = PollMark {
            read,
            shown: Some((TokenKey::regular(40), 7)),
        };
        for mark in [&plain, &shown] {
            assert_eq!(mark.to_string().parse::<PollMark>().as_ref(), Ok(mark));
        }
        assert_eq!(shown.to_string(), "12.1700000000123.r40.7");
        assert_eq!(shown.shown_to(TokenKey::regular(40)), Some(7));
        assert_eq!(
            shown.shown_to(TokenKey::regular(41)),
            None,
            "another token's mark"
        );
        assert_eq!(shown.shown_to(TokenKey::pre_queue(40)), None);
        for bad in [
            "12",
            "12.x",
            "12.1700.r40",
            "12.1700.q40.7",
            "12.1700.r40.-1",
            "12.1700.r40.7.8",
        ] {
            assert!(bad.parse::<PollMark>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_place_is_never_shown_further_back_than_it_was() {
        let waiting = |position| TokenStatus::Waiting { position };
        assert_eq!(waiting(8).no_further_back_than(Some(3)), waiting(3));
        assert_eq!(waiting(2).no_further_back_than(Some(3)), waiting(2));
        assert_eq!(waiting(8).no_further_back_than(None), waiting(8));
        assert_eq!(
            waiting(8).no_further_back_than(Some(0)),
            waiting(1),
            "first at best"
        );
        let admitted = TokenStatus::Admitted { expires_at_ms: 5 };
        assert_eq!(admitted.no_further_back_than(Some(3)), admitted);
        assert_eq!(
            TokenStatus::PreQueue.no_further_back_than(Some(3)),
            TokenStatus::PreQueue
        );
    }

    #[test]
    fn a_restored_log_is_read_again_from_its_start_without_moving_anyone_back() {
        let mut v = open_view();
        v.follow_epoch("100", false);
        consume(&mut v, 1, 4, 1_000);
        let watched = TokenKey::regular(10);
        assert_eq!(
            v.status(watched, 0, 60, true),
            TokenStatus::Waiting { position: 6 }
        );
        v.follow_epoch("100", false);
        assert_eq!(v.entries_applied(), 2, "the same epoch reads on");
        v.follow_epoch("200", true);
        assert_eq!(
            v.entries_applied(),
            0,
            "a new epoch reads the new log from its start"
        );
        // The restored log: the pre-queue again, then the worker's watermark, admitted at 0.
        v.apply(LogEntry::Frozen { prequeue: 0 });
        v.apply(LogEntry::Consumed {
            from: 1,
            to: 4,
            admitted: 0,
            at_ms: 0,
        });
        assert_eq!(
            v.status(watched, 0, 60, true),
            TokenStatus::Waiting { position: 6 }
        );
        assert_eq!(
            v.status(TokenKey::regular(2), 30_000, 60, true),
            TokenStatus::Admitted {
                expires_at_ms: 61_000
            }
        );
    }

    #[test]
    fn only_a_view_that_followed_the_line_from_its_start_names_the_valid_passes() {
        let mut v = open_view();
        v.follow_epoch("100", false);
        consume(&mut v, 1, 3, 1_000);
        consume(&mut v, 4, 5, 50_000);
        consume(&mut v, 6, 6, 52_000);
        v.apply(LogEntry::Consumed {
            from: 7,
            to: 9,
            admitted: 0,
            at_ms: 55_000,
        });
        // Issued in the seconds 1, 50 and 52: they run out at 62 s, 111 s and
        // 113 s, each counted until the end of its 10 s bucket.
        assert_eq!(
            v.valid_passes(30_000, 60),
            Some(vec![(70_000, 3), (120_000, 3)])
        );
        assert_eq!(v.valid_passes(62_000, 60), Some(vec![(120_000, 3)]));
        // A pass seen ended early no longer counts, and is named as ended
        // until it would have run out.
        v.apply(LogEntry::Departed {
            key: TokenKey::regular(2),
            why: Departure::PassEnded,
        });
        assert_eq!(
            v.valid_passes(30_000, 60),
            Some(vec![(70_000, 2), (120_000, 3)])
        );
        assert_eq!(v.ended_passes(30_000, 60), [TokenKey::regular(2)]);
        assert_eq!(v.ended_passes(61_000, 60), []);
        let mut restored = LineView::default();
        restored.follow_epoch("200", true);
        assert_eq!(
            restored.valid_passes(0, 60),
            None,
            "a view that started on a restored log cannot know"
        );
        assert_eq!(
            LineView::default().valid_passes(0, 60),
            None,
            "nor one that has read nothing"
        );
    }

    #[test]
    fn log_entries_round_trip_through_text() {
        let entries = [
            LogEntry::Frozen { prequeue: 12 },
            LogEntry::Drawn,
            LogEntry::Consumed {
                from: 3,
                to: 9,
                admitted: 6,
                at_ms: 1_700_000_000_000,
            },
            LogEntry::Departed {
                key: TokenKey::regular(5),
                why: Departure::Left,
            },
            LogEntry::Departed {
                key: TokenKey::pre_queue(5),
                why: Departure::PassEnded,
            },
            LogEntry::Departed {
                key: TokenKey::regular(1),
                why: Departure::Abandoned,
            },
        ];
        for e in entries {
            assert_eq!(e.to_string().parse::<LogEntry>().unwrap(), e);
        }
        for bad in [
            "",
            "q:1",
            "z",
            "z:1:2",
            "c:1:2:3",
            "l:",
            "l:y7",
            "c:1:2:3:-4",
        ] {
            assert!(bad.parse::<LogEntry>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn position_counts_the_people_ahead_plus_one() {
        let mut v = open_view();
        assert_eq!(
            v.status(TokenKey::regular(1), 0, 60, true),
            TokenStatus::Waiting { position: 1 }
        );
        assert_eq!(
            v.status(TokenKey::regular(10), 0, 60, true),
            TokenStatus::Waiting { position: 10 }
        );
        consume(&mut v, 1, 4, 0);
        assert_eq!(
            v.status(TokenKey::regular(10), 0, 60, true),
            TokenStatus::Waiting { position: 6 }
        );
    }

    #[test]
    fn leaving_moves_everyone_behind_up_and_never_back() {
        let mut v = open_view();
        v.apply(LogEntry::Departed {
            key: TokenKey::regular(3),
            why: Departure::Left,
        });
        assert_eq!(
            v.status(TokenKey::regular(3), 0, 60, true),
            TokenStatus::Left
        );
        assert_eq!(
            v.status(TokenKey::regular(2), 0, 60, true),
            TokenStatus::Waiting { position: 2 }
        );
        assert_eq!(
            v.status(TokenKey::regular(5), 0, 60, true),
            TokenStatus::Waiting { position: 4 }
        );
        consume(&mut v, 1, 3, 0);
        assert_eq!(
            v.status(TokenKey::regular(5), 0, 60, true),
            TokenStatus::Waiting { position: 2 }
        );
        consume(&mut v, 4, 4, 0);
        assert_eq!(
            v.status(TokenKey::regular(5), 0, 60, true),
            TokenStatus::Waiting { position: 1 }
        );
    }

    #[test]
    fn positions_never_increase_as_the_log_grows() {
        let mut v = open_view();
        let watched = TokenKey::regular(500);
        let mut last = u64::MAX;
        for step in 0..200u64 {
            if step % 3 == 0 {
                v.apply(LogEntry::Departed {
                    key: TokenKey::regular(step * 7 % 600 + 1),
                    why: Departure::Left,
                });
            } else {
                let from = v.consumed() + 1;
                consume(&mut v, from, from + 1, 0);
            }
            match v.status(watched, 0, 60, true) {
                TokenStatus::Waiting { position } => {
                    assert!(
                        position <= last,
                        "went up from {last} to {position} at step {step}"
                    );
                    last = position;
                }
                TokenStatus::Admitted { .. } => break,
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn admitted_tokens_hold_a_pass_until_it_expires() {
        let mut v = open_view();
        consume(&mut v, 1, 2, 1_000);
        consume(&mut v, 3, 5, 2_000);
        assert_eq!(
            v.status(TokenKey::regular(2), 1_500, 10, true),
            TokenStatus::Admitted {
                expires_at_ms: 11_000
            }
        );
        assert_eq!(
            v.status(TokenKey::regular(4), 1_500, 10, true),
            TokenStatus::Admitted {
                expires_at_ms: 12_000
            }
        );
        assert_eq!(
            v.status(TokenKey::regular(4), 12_000, 10, true),
            TokenStatus::Expired
        );
    }

    #[test]
    fn abandoned_and_ended_tokens_read_as_such() {
        let mut v = open_view();
        v.apply(LogEntry::Departed {
            key: TokenKey::regular(1),
            why: Departure::Abandoned,
        });
        v.apply(LogEntry::Departed {
            key: TokenKey::regular(2),
            why: Departure::PassEnded,
        });
        consume(&mut v, 1, 2, 0);
        assert_eq!(
            v.status(TokenKey::regular(1), 0, 60, true),
            TokenStatus::Expired
        );
        assert_eq!(
            v.status(TokenKey::regular(2), 0, 60, true),
            TokenStatus::Left
        );
    }

    #[test]
    fn regular_tokens_rank_behind_the_prequeue_and_the_draw_places_the_prequeue() {
        let mut v = LineView::default();
        assert_eq!(
            v.status(TokenKey::pre_queue(1), 0, 60, false),
            TokenStatus::PreQueue
        );
        v.apply(LogEntry::Departed {
            key: TokenKey::pre_queue(2),
            why: Departure::Left,
        });
        v.apply(LogEntry::Frozen { prequeue: 3 });
        assert_eq!(
            v.status(TokenKey::pre_queue(1), 0, 60, true),
            TokenStatus::Waiting { position: 3 }
        );
        v.apply(LogEntry::Drawn);
        assert!(v.needs_draw());
        // Pre-queue seq 1 drew rank 3, seq 2 rank 1 (and left), seq 3 rank 2.
        v.install_draw(vec![3, 1, 2]);
        assert!(!v.needs_draw());
        assert_eq!(
            v.status(TokenKey::pre_queue(1), 0, 60, true),
            TokenStatus::Waiting { position: 2 }
        );
        assert_eq!(
            v.status(TokenKey::pre_queue(3), 0, 60, true),
            TokenStatus::Waiting { position: 1 }
        );
        assert_eq!(
            v.status(TokenKey::regular(1), 0, 60, true),
            TokenStatus::Waiting { position: 3 }
        );
    }

    #[test]
    fn valid_passes_count_until_they_run_out_less_those_ended_early() {
        let mut v = open_view();
        assert_eq!(v.valid_pass_expiries(0, 60).count(), 0);
        consume(&mut v, 1, 2, 1_000);
        consume(&mut v, 3, 5, 20_500);
        // A restored log's past admissions have no time: not counted.
        v.apply(LogEntry::Consumed {
            from: 6,
            to: 6,
            admitted: 1,
            at_ms: 0,
        });
        let at = |v: &LineView, now_ms| v.valid_pass_expiries(now_ms, 60).collect::<Vec<_>>();
        assert_eq!(at(&v, 30_000), vec![(32.0, 2), (51.0, 3)]);
        v.apply(LogEntry::Departed {
            key: TokenKey::regular(4),
            why: Departure::PassEnded,
        });
        v.apply(LogEntry::Departed {
            key: TokenKey::regular(4),
            why: Departure::PassEnded,
        });
        assert_eq!(
            at(&v, 30_000),
            vec![(32.0, 2), (51.0, 2)],
            "an ended pass frees its place once"
        );
        assert_eq!(at(&v, 62_000), vec![(19.0, 2)]);
        assert_eq!(at(&v, 81_000), vec![]);
        // Never further away than a whole pass.
        assert_eq!(at(&v, 20_000), vec![(42.0, 2), (60.0, 2)]);
    }

    use std::collections::HashSet;

    use proptest::prelude::*;

    fn keys(pre_queue: u64, regular: u64) -> impl Strategy<Value = TokenKey> {
        prop_oneof![
            (1..=pre_queue.max(1)).prop_map(TokenKey::pre_queue),
            (1..=regular.max(1)).prop_map(TokenKey::regular)
        ]
    }

    fn departures() -> impl Strategy<Value = Departure> {
        prop_oneof![
            Just(Departure::Left),
            Just(Departure::PassEnded),
            Just(Departure::Abandoned)
        ]
    }

    /// Every entry the log can hold; times are unix milliseconds, never before 1970.
    fn entries() -> impl Strategy<Value = LogEntry> {
        let any_key = (any::<bool>(), any::<u64>()).prop_map(|(pre, seq)| {
            if pre {
                TokenKey::pre_queue(seq)
            } else {
                TokenKey::regular(seq)
            }
        });
        prop_oneof![
            any::<u64>().prop_map(|prequeue| LogEntry::Frozen { prequeue }),
            Just(LogEntry::Drawn),
            (any::<u64>(), any::<u64>(), any::<u64>(), 0..=i64::MAX).prop_map(
                |(from, to, admitted, at_ms)| LogEntry::Consumed {
                    from,
                    to,
                    admitted,
                    at_ms
                }
            ),
            (any_key, departures()).prop_map(|(key, why)| LogEntry::Departed { key, why }),
        ]
    }

    /// What happens to a line after its sale opens, as the log and the process see it.
    #[derive(Debug, Clone)]
    enum Step {
        Consume {
            count: u64,
            admitted: u64,
        },
        /// A range the view has already passed, read again.
        Stale {
            back: u64,
        },
        Depart(TokenKey, Departure),
        /// The process loads the published draw (if the view is waiting for it).
        LoadDraw,
    }

    #[derive(Debug, Clone)]
    struct Line {
        /// `draw[seq - 1]` as the admission worker makes it: a fair order of the
        /// joins that succeeded, 0 for those that failed.
        draw: Vec<u32>,
        regular: u64,
        /// Pre-queue tokens that left before the sale opened.
        left_early: Vec<TokenKey>,
        steps: Vec<Step>,
    }

    fn lines() -> impl Strategy<Value = Line> {
        (prop::collection::vec(prop::bool::weighted(0.85), 0..8), 0..12u64)
            .prop_flat_map(|(joined, regular)| {
                let succeeded = joined.iter().filter(|&&ok| ok).count() as u32;
                let order = Just((1..=succeeded).collect::<Vec<u32>>()).prop_shuffle();
                let prequeue = joined.len() as u64;
                let step = prop_oneof![
                    3 => (1..4u64, 0..4u64)
                        .prop_map(|(count, admitted)| Step::Consume { count, admitted: admitted.min(count) }),
                    1 => (0..3u64).prop_map(|back| Step::Stale { back }),
                    3 => (keys(prequeue, regular), departures()).prop_map(|(key, why)| Step::Depart(key, why)),
                    1 => Just(Step::LoadDraw),
                ];
                let left_early = prop::collection::vec((1..=prequeue.max(1)).prop_map(TokenKey::pre_queue), 0..3);
                (Just(joined), order, Just(regular), left_early, prop::collection::vec(step, 0..40))
            })
            .prop_map(|(joined, order, regular, left_early, steps)| {
                let mut ranks = order.into_iter();
                let draw = joined.iter().map(|&ok| if ok { ranks.next().unwrap_or(0) } else { 0 }).collect();
                let left_early = if joined.is_empty() { Vec::new() } else { left_early };
                Line { draw, regular, left_early, steps }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn log_entries_display_then_parse_to_themselves(entry in entries()) {
            prop_assert_eq!(entry.to_string().parse::<LogEntry>().ok(), Some(entry));
        }

        /// Whatever parses reads back the same once written out again.
        #[test]
        fn parsing_any_text_never_panics(
            raw in any::<String>(),
            shaped in "[zdclexq]{0,2}(:([pr]?[+-]?[0-9]{0,21}|.{0,3})){0,6}",
        ) {
            for raw in [raw, shaped] {
                if let Ok(entry) = raw.parse::<LogEntry>() {
                    prop_assert_eq!(entry.to_string().parse::<LogEntry>().ok(), Some(entry));
                }
            }
        }

        /// Every token's position, as one process's view reads it, never goes up as
        /// the log grows, is at least 1, and once the view knows the draw it counts
        /// exactly the people still ahead plus one; a token that left the line for
        /// good never reads as waiting again.
        #[test]
        fn positions_never_go_up_and_count_the_people_ahead(line in lines()) {
            let prequeue = line.draw.len() as u64;
            let mut view = LineView::default();
            for &key in &line.left_early {
                view.apply(LogEntry::Departed { key, why: Departure::Left });
            }
            view.apply(LogEntry::Frozen { prequeue });
            if prequeue > 0 {
                view.apply(LogEntry::Drawn);
            }
            let rank = |key: TokenKey| match key.kind {
                TokenKind::Regular => Some(prequeue + key.seq),
                TokenKind::PreQueue => line.draw.get(key.seq as usize - 1).filter(|&&r| r != 0).map(|&r| u64::from(r)),
            };
            let watched: Vec<TokenKey> =
                (1..=prequeue).map(TokenKey::pre_queue).chain((1..=line.regular).map(TokenKey::regular)).collect();
            // The first departure of a token decides whether it left the line.
            let mut first_departure: HashMap<TokenKey, Departure> =
                line.left_early.iter().map(|&key| (key, Departure::Left)).collect();
            let mut last: HashMap<TokenKey, u64> = HashMap::new();
            let mut gone: HashSet<TokenKey> = HashSet::new();
            for step in line.steps.iter().cloned().map(Some).chain([None]) {
                match step {
                    Some(Step::Consume { count, admitted }) => {
                        let from = view.consumed() + 1;
                        view.apply(LogEntry::Consumed { from, to: from + count - 1, admitted, at_ms: 0 });
                    }
                    Some(Step::Stale { back }) => {
                        let to = view.consumed().saturating_sub(back);
                        view.apply(LogEntry::Consumed { from: 1, to, admitted: 0, at_ms: 0 });
                    }
                    Some(Step::Depart(key, why)) => {
                        first_departure.entry(key).or_insert(why);
                        view.apply(LogEntry::Departed { key, why });
                    }
                    // The process loads the draw some time after the log says it is published.
                    Some(Step::LoadDraw) | None => {
                        if view.needs_draw() {
                            view.install_draw(line.draw.clone());
                        }
                    }
                }
                let left_ranks: HashSet<u64> = first_departure
                    .iter()
                    .filter(|&(_, why)| *why == Departure::Left)
                    .filter_map(|(&key, _)| rank(key))
                    .collect();
                let draw_known = !view.needs_draw();
                for &key in &watched {
                    match view.status(key, 0, 60, true) {
                        TokenStatus::Waiting { position } => {
                            prop_assert!(position >= 1, "{key}: {position}");
                            prop_assert!(!gone.contains(&key), "{key} reads as waiting again");
                            if let Some(&before) = last.get(&key) {
                                prop_assert!(position <= before, "{key} went up from {before} to {position}");
                            }
                            last.insert(key, position);
                            if let (true, Some(rank)) = (draw_known, rank(key)) {
                                let ahead = (view.consumed() + 1..rank).filter(|r| !left_ranks.contains(r)).count();
                                prop_assert_eq!(position, ahead as u64 + 1, "{} at rank {}", key, rank);
                            }
                        }
                        TokenStatus::PreQueue => prop_assert!(false, "{key} reads as pre-queue after the sale opened"),
                        TokenStatus::Admitted { .. } | TokenStatus::Expired | TokenStatus::Left => {
                            gone.insert(key);
                        }
                    }
                }
            }
        }
    }
}
