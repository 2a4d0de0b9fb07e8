//! Every process keeps the events' settings in memory and refreshes them, so
//! that requests never read the database for them and a PATCH made anywhere is
//! seen everywhere within a second.

use std::sync::{Arc, RwLock};

use crate::domain::{Event, EventId, EventPatch, EventSpec};
use crate::ports::{BackendResult, EventRepository, InsertEventError};

pub struct Catalog {
    repo: Arc<dyn EventRepository>,
    events: RwLock<foldhash::HashMap<EventId, Arc<Event>>>,
}

impl Catalog {
    pub async fn load(repo: Arc<dyn EventRepository>) -> BackendResult<Self> {
        let catalog = Self {
            repo,
            events: RwLock::default(),
        };
        catalog.refresh().await?;
        Ok(catalog)
    }

    /// Reloads every event. Events are never deleted, so the loaded ones are
    /// merged in: an event this process created during the reload stays.
    pub async fn refresh(&self) -> BackendResult<()> {
        let loaded = self.repo.list_events().await?;
        let mut events = self.events.write().unwrap_or_else(|p| p.into_inner());
        for event in loaded {
            events.insert(event.id().clone(), Arc::new(event));
        }
        Ok(())
    }

    pub fn get(&self, id: &EventId) -> Option<Arc<Event>> {
        self.events
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Every event, soonest first.
    pub fn all(&self) -> Vec<Arc<Event>> {
        let mut all: Vec<_> = self
            .events
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| (a.spec.starts_at, a.id()).cmp(&(b.spec.starts_at, b.id())));
        all
    }

    pub async fn create(&self, spec: EventSpec) -> Result<Arc<Event>, InsertEventError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| crate::ports::BackendError::unavailable("random", e))?;
        let event = Event {
            spec,
            prequeue_seed: seed,
        };
        self.repo.insert_event(&event).await?;
        Ok(self.remember(event))
    }

    pub async fn update(
        &self,
        id: &EventId,
        patch: EventPatch,
    ) -> BackendResult<Option<Arc<Event>>> {
        Ok(self
            .repo
            .update_event(id, patch)
            .await?
            .map(|e| self.remember(e)))
    }

    fn remember(&self, event: Event) -> Arc<Event> {
        let event = Arc::new(event);
        self.events
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(event.id().clone(), event.clone());
        event
    }
}
