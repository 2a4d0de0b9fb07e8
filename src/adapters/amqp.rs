//! The durable line on RabbitMQ: one quorum queue per event with
//! single-active-consumer, persistent messages, and publisher confirms.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{FutureExt, StreamExt, future::try_join_all};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::sync::Mutex;

use crate::domain::EventId;
use crate::ports::{BackendError, BackendResult, Delivered, LineConsumer, LineMessage, LineQueue};

/// Publishing longer than this answers 503; the admission worker waits longer
/// than this for a missing place, so a place is never skipped while its join may
/// still be acknowledged.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(3);
const PERSISTENT: u8 = 2;

fn unavailable(e: impl std::fmt::Display) -> BackendError {
    BackendError::new("rabbitmq", e)
}

struct Session {
    connection: Connection,
    publisher: Channel,
    declared: HashSet<EventId>,
}

pub struct AmqpLine {
    url: String,
    namespace: String,
    session: Mutex<Option<Session>>,
}

impl AmqpLine {
    pub async fn connect(url: &str, namespace: &str) -> BackendResult<Self> {
        let line = Self {
            url: url.to_owned(),
            namespace: namespace.to_owned(),
            session: Mutex::new(None),
        };
        line.publisher_for(None).await?;
        Ok(line)
    }

    pub fn queue_name(&self, event: &EventId) -> String {
        format!("{}.line.{}", self.namespace, event)
    }

    /// The publishing channel, reconnecting if the broker went away, with the
    /// event's queue declared on it.
    async fn publisher_for(&self, event: Option<&EventId>) -> BackendResult<Channel> {
        let mut guard = self.session.lock().await;
        let healthy = guard
            .as_ref()
            .is_some_and(|s| s.connection.status().connected() && s.publisher.status().connected());
        if !healthy {
            *guard = None;
            let connection = Connection::connect(&self.url, ConnectionProperties::default())
                .await
                .map_err(unavailable)?;
            let publisher = connection.create_channel().await.map_err(unavailable)?;
            publisher
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(unavailable)?;
            *guard = Some(Session {
                connection,
                publisher,
                declared: HashSet::new(),
            });
        }
        let session = guard.as_mut().ok_or_else(|| unavailable("no session"))?;
        if let Some(event) = event
            && !session.declared.contains(event)
        {
            declare_line(&session.publisher, &self.queue_name(event)).await?;
            session.declared.insert(event.clone());
        }
        Ok(session.publisher.clone())
    }

    async fn forget_session(&self) {
        *self.session.lock().await = None;
    }

    /// Removes the queues of the given events (test and demo clean-up).
    pub async fn delete_lines(&self, events: &[EventId]) -> BackendResult<()> {
        let channel = self.publisher_for(None).await?;
        for event in events {
            channel
                .queue_delete(
                    self.queue_name(event).as_str().into(),
                    QueueDeleteOptions::default(),
                )
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    async fn publish_confirmed(
        &self,
        event: &EventId,
        messages: &[LineMessage],
    ) -> BackendResult<()> {
        let channel = self.publisher_for(Some(event)).await?;
        let queue = self.queue_name(event);
        let mut confirms = Vec::with_capacity(messages.len());
        for message in messages {
            let confirm = channel
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    message.encode().as_bytes(),
                    BasicProperties::default().with_delivery_mode(PERSISTENT),
                )
                .await
                .map_err(unavailable)?;
            confirms.push(confirm);
        }
        let confirmations = try_join_all(confirms).await.map_err(unavailable)?;
        for confirmation in confirmations {
            if !confirmation.is_ack() {
                return Err(unavailable("the broker refused a message"));
            }
            if confirmation.take_message().is_some() {
                return Err(unavailable(
                    "the broker could not route a message to its line",
                ));
            }
        }
        Ok(())
    }
}

fn line_arguments() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    args
}

async fn declare_line(channel: &Channel, queue: &str) -> BackendResult<()> {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            line_arguments(),
        )
        .await
        .map_err(unavailable)?;
    Ok(())
}

#[async_trait]
impl LineQueue for AmqpLine {
    async fn publish(&self, event: &EventId, messages: &[LineMessage]) -> BackendResult<()> {
        let outcome =
            tokio::time::timeout(PUBLISH_TIMEOUT, self.publish_confirmed(event, messages))
                .await
                .unwrap_or_else(|_| Err(unavailable("no confirm within the publish timeout")));
        if outcome.is_err() {
            // A channel that failed once is not trusted again: the next publish reconnects.
            self.forget_session().await;
        }
        outcome
    }

    async fn consume(
        &self,
        event: &EventId,
        prefetch: u16,
    ) -> BackendResult<Box<dyn LineConsumer>> {
        let connection = Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .map_err(unavailable)?;
        let channel = connection.create_channel().await.map_err(unavailable)?;
        let queue = self.queue_name(event);
        declare_line(&channel, &queue).await?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(unavailable)?;
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
        Ok(Box::new(AmqpConsumer {
            connection,
            channel,
            consumer,
        }))
    }

    async fn ping(&self) -> BackendResult<()> {
        self.publisher_for(None).await.map(drop)
    }
}

/// Each consumer has its own connection, so that a standby's hand-over is as
/// independent of the publisher as a separate process would be.
struct AmqpConsumer {
    connection: Connection,
    channel: Channel,
    consumer: lapin::Consumer,
}

impl AmqpConsumer {
    fn accept(&self, delivery: lapin::message::Delivery, into: &mut Vec<Delivered>) -> Option<u64> {
        match LineMessage::decode(&delivery.data) {
            Some(message) => {
                into.push(Delivered {
                    message,
                    tag: delivery.delivery_tag,
                });
                None
            }
            None => {
                tracing::warn!(
                    tag = delivery.delivery_tag,
                    "dropping a malformed line message"
                );
                Some(delivery.delivery_tag)
            }
        }
    }
}

#[async_trait]
impl LineConsumer for AmqpConsumer {
    async fn receive(&mut self, wait: Duration, max: usize) -> BackendResult<Vec<Delivered>> {
        let mut received = Vec::new();
        let mut malformed = Vec::new();
        let first = match tokio::time::timeout(wait, self.consumer.next()).await {
            Err(_) => return Ok(received),
            Ok(None) => return Err(unavailable("the consumer was cancelled")),
            Ok(Some(delivery)) => delivery.map_err(unavailable)?,
        };
        malformed.extend(self.accept(first, &mut received));
        while received.len() < max {
            match self.consumer.next().now_or_never() {
                Some(Some(delivery)) => {
                    malformed.extend(self.accept(delivery.map_err(unavailable)?, &mut received))
                }
                Some(None) => return Err(unavailable("the consumer was cancelled")),
                None => break,
            }
        }
        self.ack(&malformed).await?;
        Ok(received)
    }

    async fn ack(&mut self, tags: &[u64]) -> BackendResult<()> {
        for &tag in tags {
            self.channel
                .basic_ack(tag, BasicAckOptions::default())
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    async fn close(self: Box<Self>) {
        if let Err(e) = self
            .connection
            .close(200, "admission worker stopping".into())
            .await
        {
            tracing::debug!(error = %e, "the consumer's connection was already gone");
        }
    }
}
