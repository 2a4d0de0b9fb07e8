//! RabbitMQ: the durable line (one quorum queue per event, single-active-consumer)
//! and the durable expiry timers (a TTL delay queue per event, dead-lettered
//! into one expiry queue). Every publish is persistent, mandatory and confirmed.

use std::collections::{BTreeSet, HashSet};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{FutureExt, StreamExt, future::try_join_all};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::domain::EventId;
use crate::ports::{
    AnyError, BackendError, BackendResult, Consumer, DelayQueue, Delivered, ExpiryBatch,
    ExpiryConsumer, LineBatch, LineConsumer, LineMessage, LineQueue, QueueMessage,
};

/// Publishing longer than this answers 503; the admission worker waits longer
/// than this for a missing place, so a place is never skipped while its join may
/// still be acknowledged.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(3);
const PERSISTENT: u8 = 2;
/// The first pause before messages the broker refused are sent again.
const REFUSED_PAUSE: Duration = Duration::from_millis(25);
/// A node that has not answered within this is passed over for the next one.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn unavailable(e: impl Into<AnyError>) -> BackendError {
    BackendError::unavailable("rabbitmq", e)
}

/// A queue this deployment uses, and how it is declared.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Queue {
    Line(EventId),
    /// Holds an event's expiry timers for its `hold_seconds`, then dead-letters them.
    Delay(EventId, Duration),
    Expiry,
}

struct Session {
    connection: Connection,
    publisher: Channel,
    declared: HashSet<Queue>,
}

/// The nodes of one RabbitMQ cluster (`AMQP_URL` lists one, or several separated
/// by commas). A connection goes to the node that last answered, else to the
/// next one that does: the quorum queues live on every node, so any node serves
/// the publisher and the consumers alike.
struct Nodes {
    urls: Vec<String>,
    last_answered: AtomicUsize,
}

impl Nodes {
    fn parse(list: &str) -> BackendResult<Self> {
        let urls: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        if urls.is_empty() {
            return Err(unavailable("AMQP_URL lists no node"));
        }
        if let Some(bad) = urls
            .iter()
            .find(|u| !(u.starts_with("amqp://") || u.starts_with("amqps://")))
        {
            return Err(unavailable(format!(
                "AMQP_URL: {} is not an amqp:// or amqps:// URL",
                where_of(bad)
            )));
        }
        Ok(Self {
            urls,
            last_answered: AtomicUsize::new(0),
        })
    }

    /// A connection to the first node that answers, starting with the one that
    /// answered last; the error names every node tried and why it failed.
    async fn connect(&self) -> BackendResult<Connection> {
        let first = self.last_answered.load(Ordering::Relaxed);
        let mut failures = Vec::new();
        for i in (0..self.urls.len()).map(|n| (first + n) % self.urls.len()) {
            let url = &self.urls[i];
            match tokio::time::timeout(
                CONNECT_TIMEOUT,
                Connection::connect(url, ConnectionProperties::default()),
            )
            .await
            {
                Ok(Ok(connection)) => {
                    if i != first {
                        tracing::info!(node = %where_of(url), "connected to another RabbitMQ node");
                    }
                    self.last_answered.store(i, Ordering::Relaxed);
                    return Ok(connection);
                }
                Ok(Err(e)) => failures.push(format!("{}: {e}", where_of(url))),
                Err(_) => failures.push(format!(
                    "{}: no answer within {CONNECT_TIMEOUT:?}",
                    where_of(url)
                )),
            }
        }
        Err(unavailable(format!(
            "no RabbitMQ node answered ({})",
            failures.join("; ")
        )))
    }
}

/// A node's host and port, for messages: a URL's credentials never reach a log.
fn where_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
        .to_owned()
}

pub struct AmqpLine {
    nodes: Nodes,
    namespace: String,
    session: Mutex<Option<Session>>,
}

impl AmqpLine {
    /// Connects to `url`: one node, or a comma-separated list of one cluster's nodes.
    pub async fn connect(url: &str, namespace: &str) -> BackendResult<Self> {
        let line = Self {
            nodes: Nodes::parse(url)?,
            namespace: namespace.to_owned(),
            session: Mutex::new(None),
        };
        line.publisher_for(None).await?;
        Ok(line)
    }

    fn name(&self, queue: &Queue) -> String {
        match queue {
            Queue::Line(event) => format!("{}.line.{event}", self.namespace),
            Queue::Delay(event, _) => format!("{}.delay.{event}", self.namespace),
            Queue::Expiry => format!("{}.expiry", self.namespace),
        }
    }

    fn arguments(&self, queue: &Queue) -> FieldTable {
        let mut args = FieldTable::default();
        match queue {
            Queue::Line(_) => {
                args.insert(
                    "x-queue-type".into(),
                    AMQPValue::LongString("quorum".into()),
                );
                args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
            }
            // Classic: every message of an event has the same TTL, so the head
            // always expires first and dead-letters at its time.
            Queue::Delay(_, after) => {
                let ttl = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
                args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
                args.insert(
                    "x-dead-letter-exchange".into(),
                    AMQPValue::LongString("".into()),
                );
                let expiry = self.name(&Queue::Expiry);
                args.insert(
                    "x-dead-letter-routing-key".into(),
                    AMQPValue::LongString(expiry.as_str().into()),
                );
            }
            Queue::Expiry => {
                args.insert(
                    "x-queue-type".into(),
                    AMQPValue::LongString("quorum".into()),
                );
            }
        }
        args
    }

    async fn declare(&self, channel: &Channel, queue: &Queue) -> BackendResult<()> {
        let options = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(
                self.name(queue).as_str().into(),
                options,
                self.arguments(queue),
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The publishing channel, reconnecting if the broker went away, with the
    /// given queues declared on it.
    async fn publisher_for(&self, queues: Option<&[Queue]>) -> BackendResult<Channel> {
        let mut guard = self.session.lock().await;
        let healthy = guard
            .as_ref()
            .is_some_and(|s| s.connection.status().connected() && s.publisher.status().connected());
        if !healthy {
            *guard = None;
            let connection = self.nodes.connect().await?;
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
        for queue in queues.unwrap_or_default() {
            if !session.declared.contains(queue) {
                self.declare(&session.publisher, queue).await?;
                session.declared.insert(queue.clone());
            }
        }
        Ok(session.publisher.clone())
    }

    /// Publishes to `queues[0]` (declaring all of them first) and waits for
    /// every confirm; a channel that failed once is replaced. Messages the
    /// broker refuses are sent again a moment later, within the timeout: a
    /// quorum queue refuses messages while it has no leader, as just after it
    /// is declared (seen in CI: the first join of a new event refused, and
    /// the line's leader elected 36 ms later) or while its leader moves.
    /// A refused message sent again is safe even if the broker had kept it:
    /// admission files one delivery per place, and expiry is idempotent.
    async fn publish_to(&self, queues: &[Queue], payloads: &[String]) -> BackendResult<()> {
        let outcome = tokio::time::timeout(PUBLISH_TIMEOUT, async {
            let routing_key = self.name(&queues[0]);
            let mut pending: Vec<&String> = payloads.iter().collect();
            let mut pause = REFUSED_PAUSE;
            loop {
                let channel = self.publisher_for(Some(queues)).await?;
                let mut confirms = Vec::with_capacity(pending.len());
                for payload in &pending {
                    let confirm = channel
                        .basic_publish(
                            "".into(),
                            routing_key.as_str().into(),
                            BasicPublishOptions {
                                mandatory: true,
                                ..BasicPublishOptions::default()
                            },
                            payload.as_bytes(),
                            BasicProperties::default().with_delivery_mode(PERSISTENT),
                        )
                        .await
                        .map_err(unavailable)?;
                    confirms.push(confirm);
                }
                let confirmations = try_join_all(confirms).await.map_err(unavailable)?;
                let mut refused = Vec::new();
                for (payload, confirmation) in pending.into_iter().zip(confirmations) {
                    if !confirmation.is_ack() {
                        refused.push(payload);
                    } else if confirmation.take_message().is_some() {
                        return Err(unavailable("the broker could not route a message"));
                    }
                }
                if refused.is_empty() {
                    return Ok(());
                }
                tracing::debug!(
                    refused = refused.len(),
                    "the broker refused messages: sending them again"
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(PUBLISH_TIMEOUT / 4);
                pending = refused;
            }
        })
        .await
        .unwrap_or_else(|_| Err(unavailable("no confirm within the publish timeout")));
        if outcome.is_err() {
            *self.session.lock().await = None;
        }
        outcome
    }

    /// A consumer with its own connection, so that closing it (or losing it)
    /// is as independent of the publisher as a separate process would be.
    async fn consumer<M: QueueMessage>(
        &self,
        queue: &Queue,
        prefetch: u16,
    ) -> BackendResult<Box<dyn Consumer<M>>> {
        let connection = self.nodes.connect().await?;
        let channel = connection.create_channel().await.map_err(unavailable)?;
        self.declare(&channel, queue).await?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(unavailable)?;
        let consumer = channel
            .basic_consume(
                self.name(queue).as_str().into(),
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
            unsettled: BTreeSet::new(),
            message: PhantomData,
        }))
    }

    /// Closes the publisher's connection (the consumers close their own).
    pub async fn close(&self) {
        if let Some(session) = self.session.lock().await.take()
            && let Err(e) = session.connection.close(200, "stopping".into()).await
        {
            tracing::debug!(error = %e, "the publisher's connection was already gone");
        }
    }

    /// Removes the queues of the given events (test and demo clean-up).
    pub async fn delete_queues(&self, events: &[EventId]) -> BackendResult<()> {
        let channel = self.publisher_for(None).await?;
        let names = events.iter().flat_map(|e| {
            [
                self.name(&Queue::Line(e.clone())),
                self.name(&Queue::Delay(e.clone(), Duration::ZERO)),
            ]
        });
        for name in names.chain([self.name(&Queue::Expiry)]) {
            channel
                .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }
}

#[async_trait]
impl LineQueue for AmqpLine {
    async fn publish(&self, event: &EventId, messages: &[LineMessage]) -> BackendResult<()> {
        let payloads = [LineBatch(messages.to_vec()).encode()];
        self.publish_to(&[Queue::Line(event.clone())], &payloads)
            .await
    }

    async fn consume(&self, event: &EventId, prefetch: u16) -> BackendResult<Box<LineConsumer>> {
        self.consumer(&Queue::Line(event.clone()), prefetch).await
    }

    async fn ping(&self) -> BackendResult<()> {
        self.publisher_for(None).await.map(drop)
    }
}

#[async_trait]
impl DelayQueue for AmqpLine {
    async fn schedule_expiries(
        &self,
        event: &EventId,
        orders: &[Uuid],
        after: Duration,
    ) -> BackendResult<()> {
        // The expiry queue must exist before the first timer dead-letters into it.
        let queues = [Queue::Delay(event.clone(), after), Queue::Expiry];
        let batch = ExpiryBatch {
            event: event.clone(),
            orders: orders.to_vec(),
        };
        self.publish_to(&queues, &[batch.encode()]).await
    }

    async fn expiries(&self, prefetch: u16) -> BackendResult<Box<ExpiryConsumer>> {
        self.consumer(&Queue::Expiry, prefetch).await
    }
}

struct AmqpConsumer<M> {
    connection: Connection,
    channel: Channel,
    consumer: lapin::Consumer,
    /// Delivery tags received and neither acknowledged nor returned yet.
    unsettled: BTreeSet<u64>,
    message: PhantomData<fn() -> M>,
}

/// How to acknowledge `tags` with as few frames as possible: the longest run of
/// the oldest unsettled deliveries that `tags` covers goes in one frame (AMQP's
/// `multiple` acknowledges every unsettled tag up to the one given), each
/// other tag in a frame of its own. A drain acknowledges thousands of batches
/// a second, mostly in the order they came.
#[derive(Debug, PartialEq, Eq)]
struct AckPlan {
    up_to: Option<u64>,
    singly: Vec<u64>,
}

fn ack_plan(unsettled: &BTreeSet<u64>, tags: &[u64]) -> AckPlan {
    let mut tags = tags.to_vec();
    tags.sort_unstable();
    tags.dedup();
    let run = unsettled
        .iter()
        .zip(&tags)
        .take_while(|(unsettled, tag)| unsettled == tag)
        .count();
    AckPlan {
        up_to: run.checked_sub(1).map(|last| tags[last]),
        singly: tags.split_off(run),
    }
}

impl<M: QueueMessage> AmqpConsumer<M> {
    /// Keeps a well-formed delivery; returns the tag of a malformed one.
    fn accept(delivery: lapin::message::Delivery, into: &mut Vec<Delivered<M>>) -> Option<u64> {
        let tag = delivery.delivery_tag;
        match M::decode(&delivery.data) {
            Some(message) => {
                into.push(Delivered { message, tag });
                None
            }
            None => {
                tracing::warn!(tag, "dropping a malformed message");
                Some(tag)
            }
        }
    }
}

#[async_trait]
impl<M: QueueMessage> Consumer<M> for AmqpConsumer<M> {
    async fn receive(&mut self, wait: Duration, max: usize) -> BackendResult<Vec<Delivered<M>>> {
        let mut received = Vec::new();
        let mut malformed = Vec::new();
        let first = match tokio::time::timeout(wait, self.consumer.next()).await {
            Err(_) => return Ok(received),
            Ok(None) => return Err(unavailable("the consumer was cancelled")),
            Ok(Some(delivery)) => delivery.map_err(unavailable)?,
        };
        self.unsettled.insert(first.delivery_tag);
        malformed.extend(Self::accept(first, &mut received));
        while received.len() < max {
            match self.consumer.next().now_or_never() {
                Some(Some(delivery)) => {
                    let delivery = delivery.map_err(unavailable)?;
                    self.unsettled.insert(delivery.delivery_tag);
                    malformed.extend(Self::accept(delivery, &mut received))
                }
                Some(None) => return Err(unavailable("the consumer was cancelled")),
                None => break,
            }
        }
        self.ack(&malformed).await?;
        Ok(received)
    }

    async fn ack(&mut self, tags: &[u64]) -> BackendResult<()> {
        let AckPlan { up_to, singly } = ack_plan(&self.unsettled, tags);
        let frames = up_to
            .map(|tag| (tag, BasicAckOptions { multiple: true }))
            .into_iter()
            .chain(singly.iter().map(|&tag| (tag, BasicAckOptions::default())));
        for (tag, options) in frames {
            self.channel
                .basic_ack(tag, options)
                .await
                .map_err(unavailable)?;
        }
        if let Some(up_to) = up_to {
            self.unsettled = self.unsettled.split_off(&(up_to + 1));
        }
        for tag in &singly {
            self.unsettled.remove(tag);
        }
        Ok(())
    }

    async fn retry(&mut self, tag: u64) -> BackendResult<()> {
        let options = BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        };
        self.channel
            .basic_nack(tag, options)
            .await
            .map_err(unavailable)?;
        self.unsettled.remove(&tag);
        Ok(())
    }

    async fn close(self: Box<Self>) {
        if let Err(e) = self.connection.close(200, "consumer stopping".into()).await {
            tracing::debug!(error = %e, "the consumer's connection was already gone");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_unsettled_deliveries_are_acknowledged_in_one_frame() {
        let unsettled: BTreeSet<u64> = [3, 4, 5, 7, 9].into_iter().collect();
        let plan = |tags: &[u64]| ack_plan(&unsettled, tags);
        assert_eq!(
            plan(&[5, 3, 4, 9]),
            AckPlan {
                up_to: Some(5),
                singly: vec![9]
            },
            "7 is not settled: the run stops before it"
        );
        assert_eq!(
            plan(&[4, 7]),
            AckPlan {
                up_to: None,
                singly: vec![4, 7]
            },
            "3 is not settled: nothing goes as a run"
        );
        assert_eq!(
            plan(&[9, 7, 5, 4, 3, 3]),
            AckPlan {
                up_to: Some(9),
                singly: vec![]
            }
        );
        assert_eq!(
            plan(&[]),
            AckPlan {
                up_to: None,
                singly: vec![]
            }
        );
    }

    #[test]
    fn a_list_of_nodes_is_read_in_order_and_anything_else_is_refused_by_name() {
        let nodes = Nodes::parse("amqp://guest:guest@10.0.0.1:5672/%2f, amqp://10.0.0.2:5672/%2f,")
            .unwrap();
        assert_eq!(
            nodes.urls,
            [
                "amqp://guest:guest@10.0.0.1:5672/%2f",
                "amqp://10.0.0.2:5672/%2f"
            ]
        );
        assert!(Nodes::parse(" , ").is_err());
        let refused = Nodes::parse("amqp://a:5672,http://user:pw@b:80/")
            .err()
            .unwrap()
            .to_string();
        assert!(
            refused.contains("b:80") && !refused.contains("pw"),
            "{refused}"
        );
    }

    #[test]
    fn a_node_is_named_without_its_credentials() {
        assert_eq!(
            where_of("amqp://guest:s3cret@rabbit-1:5672/%2f"),
            "rabbit-1:5672"
        );
        assert_eq!(where_of("amqps://rabbit-2/vhost"), "rabbit-2");
        assert_eq!(where_of("rabbit-3:5672"), "rabbit-3:5672");
    }
}
