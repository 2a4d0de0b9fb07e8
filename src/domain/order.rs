//! Orders: a hold of seats that ends exactly once — paid, cancelled or expired.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{EventId, TokenKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    Pending,
    Paid,
    Expired,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Paid => "paid",
            OrderStatus::Expired => "expired",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "pending" => OrderStatus::Pending,
            "paid" => OrderStatus::Paid,
            "expired" => OrderStatus::Expired,
            "cancelled" => OrderStatus::Cancelled,
            _ => return None,
        })
    }

    /// Whether the order's seats are still taken (held or sold).
    pub fn is_live(self) -> bool {
        matches!(self, OrderStatus::Pending | OrderStatus::Paid)
    }
}

/// Who holds an order: the admission pass that made it, identified by its token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Holder(String);

impl Holder {
    pub fn new(key: TokenKey, token_id: Uuid) -> Self {
        Self(format!("{key}:{token_id}"))
    }

    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: Uuid,
    pub event: EventId,
    pub holder: Holder,
    pub status: OrderStatus,
    pub seats: Vec<String>,
    pub amount_cents: i64,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_only_pending_and_paid_hold_seats() {
        for s in [
            OrderStatus::Pending,
            OrderStatus::Paid,
            OrderStatus::Expired,
            OrderStatus::Cancelled,
        ] {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(OrderStatus::parse("refunded"), None);
        assert!(OrderStatus::Pending.is_live() && OrderStatus::Paid.is_live());
        assert!(!OrderStatus::Expired.is_live() && !OrderStatus::Cancelled.is_live());
    }

    #[test]
    fn a_holder_is_its_pass_token() {
        let id = Uuid::nil();
        assert_eq!(
            Holder::new(TokenKey::regular(7), id).as_str(),
            format!("r7:{id}")
        );
    }
}
