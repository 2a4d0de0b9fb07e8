//! Rotation of the key that signs passes, across instances.
//!
//! Each instance signs with the key it was started with (`ANTEROOM_SIGNING_KEY`,
//! or the one derived from the secret) and notes in the record, while it runs,
//! that this key signs ([`NOTE_INTERVAL`]). Every instance trusts, and lists in
//! its JWKS, its own key and every key noted recently enough that a pass it
//! signed may still be in use ([`retention`]), and reloads that set in the
//! background ([`TRUST_REFRESH`]): a request never waits on the record.
//!
//! So rotating is restarting the instances with the new key: it signs from
//! then on, and the old key stays trusted and published until every pass it
//! signed, and every hold made with one, has ended. Rows are kept (a few per
//! rotation), so a key brought back is trusted again as soon as it signs.
//!
//! Why the record and not the fast store: the keys must outlive a lost Redis
//! (passes are honoured across a restore), and the record already holds the
//! deployment's generated settings; the query is one indexed read every few seconds.

use std::sync::Arc;
use std::time::Duration;

use crate::domain::pass::CLOCK_SKEW_LEEWAY;
use crate::domain::{Event, Passes, PublicKey, unix_ms};
use crate::ports::{BackendResult, Clock, PassKeyRecords};
use crate::services::catalog::Catalog;
use crate::tasks::Tasks;

/// How often an instance notes that its key signs.
pub const NOTE_INTERVAL: Duration = Duration::from_secs(60);
/// How often an instance reloads the keys it trusts: how long, at most, an
/// instance refuses a pass signed by a key another instance has just started with.
pub const TRUST_REFRESH: Duration = Duration::from_secs(2);

pub struct PassKeys {
    passes: Arc<Passes>,
    record: Arc<dyn PassKeyRecords>,
    catalog: Arc<Catalog>,
    clock: Clock,
}

impl PassKeys {
    /// Notes the signing key and loads the trusted keys before the instance
    /// serves (a restarted instance verifies the previous key's passes at
    /// once), then keeps both fresh in the background.
    pub async fn start(
        passes: Arc<Passes>,
        record: Arc<dyn PassKeyRecords>,
        catalog: Arc<Catalog>,
        clock: Clock,
        tasks: &Tasks,
    ) -> BackendResult<()> {
        let keys = Arc::new(Self {
            passes,
            record,
            catalog,
            clock,
        });
        keys.note().await?;
        keys.refresh().await?;
        tasks.every(NOTE_INTERVAL, keys.clone(), |keys| async move {
            if let Err(e) = keys.note().await {
                tracing::warn!(error = %e, "could not note the pass signing key");
            }
        });
        tasks.every(TRUST_REFRESH, keys, |keys| async move {
            if let Err(e) = keys.refresh().await {
                tracing::warn!(error = %e, "could not reload the pass keys");
            }
        });
        Ok(())
    }

    async fn note(&self) -> BackendResult<()> {
        let key = self.passes.signing_key();
        let now_ms = unix_ms(self.clock.now());
        self.record
            .note_signing(key.kid(), &key.to_json(), now_ms)
            .await
    }

    async fn refresh(&self) -> BackendResult<()> {
        let retained = retention(&self.catalog.all());
        let since_ms = unix_ms(self.clock.now() - retained);
        let keys = self.record.keys_signing_since(since_ms).await?;
        self.passes
            .trust(keys.iter().filter_map(|json| match PublicKey::from_json(json) {
                Ok(key) => Some(key),
                Err(e) => {
                    tracing::error!(error = %e, "a stored pass key does not parse; it is not trusted");
                    None
                }
            }));
        Ok(())
    }
}

/// How long after its last note a key must still verify. A pass is signed
/// after its admission, so it ends within `pass_seconds` of being signed; a
/// hold made with it lives `hold_seconds` more (its order routes need the
/// pass), and is expired within a few seconds after. The signing instance may
/// have stopped just before its next note (at most [`NOTE_INTERVAL`] late, a
/// slow note counted twice), and a verifier's clock may be behind
/// ([`CLOCK_SKEW_LEEWAY`]). Events are never deleted and their pass and hold
/// times never change, so the longest of them bounds every pass ever signed.
pub fn retention(events: &[Arc<Event>]) -> Duration {
    /// The expiry worker's lateness allowed by API.md ("no later than hold_seconds + 2 s").
    const EXPIRY_LATENESS: Duration = Duration::from_secs(2);
    let longest = events
        .iter()
        .map(|e| {
            Duration::from_secs(
                u64::from(e.spec.admission.pass_seconds) + u64::from(e.spec.hold_seconds),
            )
        })
        .max()
        .unwrap_or_default();
    longest + EXPIRY_LATENESS + 2 * NOTE_INTERVAL + CLOCK_SKEW_LEEWAY
}
