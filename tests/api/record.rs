//! The durable record below the HTTP API: the same cases against a fresh
//! PostgreSQL schema and a fresh SQLite file, so that the two stay one contract.

use std::time::Duration;

use anteroom::domain::door::WindowLimit;
use anteroom::domain::gate::parse_return_origins;
use anteroom::domain::{
    Access, Admission, AdmissionPatch, Currency, Difficulty, Event, EventId, EventPatch, EventSpec,
    Holder, Order, OrderStatus, Section, TokenKey, TokenKind,
};
use anteroom::ports::{
    EventRepository, InsertEventError, InsertOrderError, LineRecord, LineRecords, OrderRepository,
    Reserved, Transition,
};
use time::OffsetDateTime;
use uuid::Uuid;

/// The current time to the second, which both databases store exactly.
fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

fn event(id: &str, starts_in: Duration, on_sale_at: Option<OffsetDateTime>) -> Event {
    let section = |id: &str, price_cents| Section {
        id: id.into(),
        name: format!("Section {id}"),
        price_cents,
        rows: 2,
        seats_per_row: 5,
    };
    Event {
        spec: EventSpec {
            id: EventId::parse(id).unwrap(),
            name: format!("Event {id}"),
            venue: "Arena".into(),
            starts_at: now() + starts_in,
            on_sale_at,
            hold_seconds: 120,
            max_seats_per_user: 6,
            admission: Admission {
                per_second: 12.5,
                max_active: 40,
                pass_seconds: 900,
                abandon_seconds: 30,
            },
            paused: false,
            currency: Currency::EUR,
            join_challenge: Difficulty::parse(12).unwrap(),
            access: Access::Codes,
            address_limit: Some(WindowLimit {
                per_window: 3,
                window_seconds: 600,
            }),
            return_origins: parse_return_origins(&["https://shop.example".into()]).unwrap(),
            sections: vec![section("A", 1000), section("B", 2500)],
        },
        prequeue_seed: [7; 32],
    }
}

fn order(event: &Event, seats: &[&str], expires_in: Duration, expired: bool) -> Order {
    let created_at = now();
    Order {
        id: Uuid::new_v4(),
        event: event.spec.id.clone(),
        holder: Holder::new(TokenKey::regular(1), Uuid::new_v4()),
        status: OrderStatus::Pending,
        seats: seats.iter().map(|s| s.to_string()).collect(),
        amount_cents: 1000 * i64::try_from(seats.len()).unwrap(),
        created_at,
        expires_at: if expired {
            created_at - expires_in
        } else {
            created_at + expires_in
        },
    }
}

async fn events_cases(record: &(impl EventRepository + ?Sized)) {
    record.ping().await.unwrap();
    let later = event("later", Duration::from_secs(7200), None);
    let sooner = event("sooner", Duration::from_secs(3600), Some(now()));
    record.insert_event(&later).await.unwrap();
    record.insert_event(&sooner).await.unwrap();
    assert_eq!(
        record.list_events().await.unwrap(),
        [sooner.clone(), later.clone()]
    );
    assert!(matches!(
        record.insert_event(&sooner).await,
        Err(InsertEventError::Exists)
    ));

    let patch = EventPatch {
        admission: AdmissionPatch {
            per_second: Some(7.5),
            max_active: Some(9),
        },
        paused: Some(true),
        join_challenge: Some(Difficulty::parse(20).unwrap()),
        access: Some(Access::Open),
        address_limit: Some(None),
        return_origins: Some(
            parse_return_origins(&["http://127.0.0.1:8081".into(), "https://b.example".into()])
                .unwrap(),
        ),
    };
    let updated = record
        .update_event(&sooner.spec.id, patch.clone())
        .await
        .unwrap()
        .expect("the event exists");
    let mut expected = sooner.clone();
    expected.apply(patch.clone());
    assert_eq!(updated, expected);
    let untouched = EventPatch::default();
    assert_eq!(
        record
            .update_event(&sooner.spec.id, untouched)
            .await
            .unwrap(),
        Some(expected.clone())
    );
    let missing = EventId::parse("missing").unwrap();
    assert_eq!(record.update_event(&missing, patch).await.unwrap(), None);
    assert_eq!(record.list_events().await.unwrap(), [expected, later]);

    assert_eq!(
        record.setting_or_insert("key", "first").await.unwrap(),
        "first"
    );
    assert_eq!(
        record.setting_or_insert("key", "second").await.unwrap(),
        "first"
    );
}

async fn line_cases(record: &(impl LineRecords + ?Sized)) {
    let line = EventId::parse("line").unwrap();
    assert_eq!(
        record.line_record(&line).await.unwrap(),
        LineRecord::default()
    );
    let opened = Reserved {
        regular: 10,
        prequeue: 5,
    };
    assert!(record.open_line(&line, opened).await.unwrap());
    assert!(!record.open_line(&line, Reserved::default()).await.unwrap());

    // Reservations never go down.
    assert_eq!(
        record.reserve(&line, TokenKind::Regular, 20).await.unwrap(),
        20
    );
    assert_eq!(
        record.reserve(&line, TokenKind::Regular, 15).await.unwrap(),
        20
    );
    assert_eq!(
        record.reserve(&line, TokenKind::PreQueue, 3).await.unwrap(),
        5
    );

    // The pre-queue's size and draw are recorded once; the first one stays.
    record.record_prequeue(&line, 42).await.unwrap();
    record.record_prequeue(&line, 7).await.unwrap();
    assert_eq!(
        record.record_draw(&line, &[3, 1, 2]).await.unwrap(),
        [3, 1, 2]
    );
    assert_eq!(record.record_draw(&line, &[9]).await.unwrap(), [3, 1, 2]);
    assert_eq!(
        record.line_record(&line).await.unwrap(),
        LineRecord {
            reserved: Reserved {
                regular: 20,
                prequeue: 5,
            },
            prequeue: Some(42),
            draw: Some(vec![3, 1, 2]),
        }
    );

    // Each of them also opens a line nobody opened.
    let unopened = EventId::parse("unopened").unwrap();
    assert_eq!(
        record
            .reserve(&unopened, TokenKind::PreQueue, 4)
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        record.line_record(&unopened).await.unwrap(),
        LineRecord {
            reserved: Reserved {
                regular: 0,
                prequeue: 4,
            },
            ..LineRecord::default()
        }
    );
}

fn status(transition: &Transition) -> Option<(bool, OrderStatus)> {
    match transition {
        Transition::Changed(order) => Some((true, order.status)),
        Transition::Unchanged(order) => Some((false, order.status)),
        Transition::NotFound => None,
    }
}

async fn order_cases<R: EventRepository + OrderRepository + ?Sized>(record: &R) {
    let sale = event("sale", Duration::from_secs(3600), None);
    record.insert_event(&sale).await.unwrap();
    let hour = Duration::from_secs(3600);

    let held = order(&sale, &["A-1-2", "A-1-1"], hour, false);
    record.insert_order(&held).await.unwrap();
    let stored = record.order(held.id).await.unwrap().expect("stored");
    // Seats come back in the venue's order.
    assert_eq!(stored.seats, ["A-1-1", "A-1-2"]);
    assert_eq!(
        stored,
        Order {
            seats: stored.seats.clone(),
            ..held.clone()
        }
    );
    assert_eq!(record.order(Uuid::new_v4()).await.unwrap(), None);

    // The unique index over live seats refuses a second holder, by name.
    match record
        .insert_order(&order(&sale, &["A-1-2", "A-1-3"], hour, false))
        .await
    {
        Err(InsertOrderError::SeatsTaken(seats)) => assert_eq!(seats, ["A-1-2"]),
        other => panic!("a seat was taken twice: {other:?}"),
    }
    // Any other violation is the backend's failure, not a taken seat.
    assert!(matches!(
        record
            .insert_order(&order(&sale, &["A-99-1"], hour, false))
            .await,
        Err(InsertOrderError::Backend(_))
    ));

    let lapsed = order(&sale, &["B-2-5"], Duration::from_secs(60), true);
    record.insert_order(&lapsed).await.unwrap();
    let mut live: Vec<_> = record
        .live_seats(&sale.spec.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.seat, s.order, s.sold))
        .collect();
    live.sort();
    assert_eq!(
        live,
        [
            ("A-1-1".to_owned(), held.id, false),
            ("A-1-2".to_owned(), held.id, false),
            ("B-2-5".to_owned(), lapsed.id, false),
        ]
    );

    let overdue = |grace| async move {
        let due = record.overdue(grace, 10).await.unwrap();
        due.into_iter()
            .map(|d| (d.event, d.order))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        overdue(Duration::ZERO).await,
        [(sale.spec.id.clone(), lapsed.id)]
    );
    assert_eq!(overdue(hour).await, []);

    // By the database's clock: a lapsed hold cannot be paid, only expired;
    // a running one cannot be expired, only paid.
    let pay = |id, reference| record.transition(id, OrderStatus::Paid, Some(reference));
    let expire = |id| record.transition(id, OrderStatus::Expired, None);
    let cancel = |id| record.transition(id, OrderStatus::Cancelled, None);
    assert_eq!(
        status(&pay(lapsed.id, "late").await.unwrap()),
        Some((false, OrderStatus::Pending))
    );
    assert_eq!(
        status(&expire(lapsed.id).await.unwrap()),
        Some((true, OrderStatus::Expired))
    );
    assert_eq!(
        status(&expire(held.id).await.unwrap()),
        Some((false, OrderStatus::Pending))
    );
    let paid = pay(held.id, "pay-1").await.unwrap();
    assert_eq!(status(&paid), Some((true, OrderStatus::Paid)));
    assert_eq!(
        status(&cancel(held.id).await.unwrap()),
        Some((false, OrderStatus::Paid))
    );
    assert_eq!(status(&expire(Uuid::new_v4()).await.unwrap()), None);
    assert_eq!(overdue(Duration::ZERO).await, []);

    // The expired order's seat is free again; a cancelled one frees its seats too.
    let again = order(&sale, &["B-2-5"], hour, false);
    record.insert_order(&again).await.unwrap();
    assert_eq!(
        status(&cancel(again.id).await.unwrap()),
        Some((true, OrderStatus::Cancelled))
    );
    let live = record.live_seats(&sale.spec.id).await.unwrap();
    let mut sold: Vec<_> = live.iter().map(|s| (s.seat.as_str(), s.sold)).collect();
    sold.sort();
    assert_eq!(sold, [("A-1-1", true), ("A-1-2", true)]);

    assert_eq!(record.order_counts(&sale.spec.id).await.unwrap(), (1, 1));
    let other = EventId::parse("other").unwrap();
    assert_eq!(record.order_counts(&other).await.unwrap(), (0, 0));

    group_cases(record, &sale).await;
}

/// What each order of a group inserted together was answered, in words.
fn outcomes(answers: Vec<Result<(), InsertOrderError>>) -> Vec<String> {
    answers
        .into_iter()
        .map(|answer| match answer {
            Ok(()) => "inserted".to_owned(),
            Err(InsertOrderError::SeatsTaken(seats)) => format!("taken {seats:?}"),
            Err(InsertOrderError::Backend(_)) => "failed".to_owned(),
        })
        .collect()
}

/// Orders inserted as a group (one transaction): each answered on its own,
/// a refused one leaving nothing behind and the others committed.
async fn group_cases<R: OrderRepository + ?Sized>(record: &R, sale: &Event) {
    let hour = Duration::from_secs(3600);
    let group = [
        order(sale, &["B-1-1"], hour, false),
        order(sale, &["A-1-1", "B-1-2"], hour, false),
        order(sale, &["B-1-3", "B-1-1"], hour, false),
        order(sale, &["B-1-4"], hour, false),
    ];
    assert_eq!(
        outcomes(record.insert_orders(&group).await),
        [
            "inserted",
            r#"taken ["A-1-1"]"#, // sold before
            r#"taken ["B-1-1"]"#, // to an order earlier in the group
            "inserted"
        ]
    );
    let live_seats = || async {
        let mut live: Vec<_> = record
            .live_seats(&sale.spec.id)
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.seat, s.order))
            .collect();
        live.sort();
        live
    };
    let live = live_seats().await;
    assert_eq!(
        live.iter()
            .filter(|(seat, _)| seat.starts_with('B'))
            .cloned()
            .collect::<Vec<_>>(),
        [
            ("B-1-1".to_owned(), group[0].id),
            ("B-1-4".to_owned(), group[3].id)
        ],
        "the refused orders' other seats are not kept"
    );
    assert_eq!(record.order(group[1].id).await.unwrap(), None);
    assert_eq!(record.order(group[2].id).await.unwrap(), None);
    assert_eq!(
        record.order(group[3].id).await.unwrap().map(|o| o.seats),
        Some(vec!["B-1-4".to_owned()])
    );

    // An order the database refuses outright (a seat the venue does not have,
    // an event it does not know) fails alone too, and the group keeps its
    // order of arrival.
    let elsewhere = Order {
        event: EventId::parse("unknown").unwrap(),
        ..order(sale, &["B-2-3"], hour, false)
    };
    let group = [
        order(sale, &["B-2-1"], hour, false),
        order(sale, &["A-99-1"], hour, false),
        order(sale, &["B-2-1"], hour, false),
        elsewhere,
        order(sale, &["B-2-2"], hour, false),
    ];
    assert_eq!(
        outcomes(record.insert_orders(&group).await),
        [
            "inserted",
            "failed",
            r#"taken ["B-2-1"]"#,
            "failed",
            "inserted"
        ]
    );
    assert_eq!(live_seats().await.len(), live.len() + 2);
}

async fn all_cases<R: EventRepository + LineRecords + OrderRepository>(record: &R) {
    events_cases(record).await;
    line_cases(record).await;
    order_cases(record).await;
}

mod servers_only {
    use anteroom::adapters::record::PostgresRecord;

    use crate::helpers::{database_url, fresh_namespace};

    #[tokio::test]
    async fn the_record_on_postgres() {
        let record = PostgresRecord::connect(&database_url().await, &fresh_namespace())
            .await
            .unwrap();
        super::all_cases(&record).await;
    }
}

mod embedded_only {
    use anteroom::adapters::embedded::open_database;
    use anteroom::adapters::record::SqliteRecord;

    use crate::helpers::{fresh_namespace, sqlite_path};

    /// A fresh SQLite file, removed when dropped.
    struct Scratch(std::path::PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
            }
        }
    }

    async fn scratch() -> (Scratch, sqlx::SqlitePool) {
        let path = sqlite_path(&fresh_namespace());
        let pool = open_database(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        (Scratch(path), pool)
    }

    #[tokio::test]
    async fn the_record_on_sqlite() {
        let (_file, pool) = scratch().await;
        super::all_cases(&SqliteRecord::new(pool.clone())).await;
        // Events keep when they were created and changed, by the database's clock.
        let stamped: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM events WHERE updated_at >= created_at
               AND created_at > CAST(unixepoch('subsec') * 1000 AS INTEGER) - 60000",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(stamped, 3);
    }
}
