package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"
)

// ErrPoison marks a message that can never be handled (it does not decode,
// it names something that cannot exist): a Handler returns an error
// wrapping it to have the message dropped instead of redelivered forever.
var ErrPoison = errors.New("poison message")

// Message is one stream message as a Handler sees it.
type Message struct {
	// Subject is the relative subject it was published on, with its
	// partition token.
	Subject string
	// ID is the message id given to Publish; empty if none.
	ID string
	// Data is the JSON body; Decode reads it.
	Data []byte
	// Sequence is the message's position in its stream.
	Sequence uint64
	// Delivery counts deliveries to this consumer: 1 the first time, more
	// on redelivery.
	Delivery uint64
	// Time is when the stream stored the message.
	Time time.Time
}

// Decode unmarshals the JSON body into v. Its error wraps ErrPoison: a
// body that does not decode now never will.
func (m Message) Decode(v any) error {
	if err := json.Unmarshal(m.Data, v); err != nil {
		return fmt.Errorf("decode message %d on %s: %w (%w)", m.Sequence, m.Subject, err, ErrPoison)
	}
	return nil
}

// Handler handles one message. Returning nil acknowledges it; an error
// has it redelivered after a backoff (it must therefore be idempotent),
// unless the error wraps ErrPoison. ctx ends when the consumer stops.
type Handler func(ctx context.Context, msg Message) error

// Consumer defaults.
const (
	// defaultBackoffMin is the first redelivery delay after a failure.
	defaultBackoffMin = 250 * time.Millisecond
	// defaultBackoffMax caps the doubling delays.
	defaultBackoffMax = time.Minute
	// ackWait is how long the server waits for an ack before redelivering;
	// a long handler is kept alive by progress pings (see keepAlive).
	ackWait = 30 * time.Second
	// retryDelay is the pause before re-attaching a consumer after an
	// error, such as a NATS restart.
	retryDelay = time.Second
	// ackTimeout bounds the wait for the server to confirm an ack.
	ackTimeout = 5 * time.Second
)

// ConsumeOption tunes Consume.
type ConsumeOption func(*consumeOptions)

type consumeOptions struct {
	maxAckPending          int
	maxBatch               int
	backoffMin, backoffMax time.Duration
	replayPending          bool
	linger                 time.Duration
	// lingerWhile, when set, limits lingering to batches whose every
	// message it accepts.
	lingerWhile func(Message) bool
}

// WithMaxAckPending lets n messages be in flight at once. The default, 1,
// keeps strict order even across failures: a message that failed is
// redelivered before anything after it. Larger n is faster but a failed
// message comes back after later ones; use it only where order does not
// matter.
func WithMaxAckPending(n int) ConsumeOption {
	return func(o *consumeOptions) {
		if n > 0 {
			o.maxAckPending = n
		}
	}
}

// WithReplayPendingFirst makes messages left unacknowledged by an earlier
// run (a crash, a kill) come back first, in stream order, before anything
// newer, and marked as redelivered (Delivery > 1). Without it the server
// redelivers them only after their ack wait, behind newer messages. It is
// for a consumer whose handling depends on the order across a crash (the
// sync feeder numbers events in the order it sees them) and that no other
// process consumes: the consumer is recreated at its ack floor.
func WithReplayPendingFirst() ConsumeOption {
	return func(o *consumeOptions) { o.replayPending = true }
}

// WithBatchLinger makes ConsumeBatch wait up to d after a batch's first
// message for more to join it (up to its maximum), instead of taking only
// what is already waiting. For a handler whose cost is mostly per batch
// (a commit) and whose readers can wait d (the search index): under a
// steady trickle it commits every d instead of at every message.
func WithBatchLinger(d time.Duration) ConsumeOption {
	return func(o *consumeOptions) { o.linger = max(d, 0) }
}

// WithBatchLingerWhile is WithBatchLinger for the batches whose every
// message satisfies ok; a batch stops lingering at the first message ok
// refuses and takes only what is already waiting after it. For a handler
// whose messages are sometimes awaited and sometimes not (the sync
// feeder writes events clients were already woken for, and wakes them
// for the others).
func WithBatchLingerWhile(d time.Duration, ok func(Message) bool) ConsumeOption {
	return func(o *consumeOptions) { o.linger, o.lingerWhile = max(d, 0), ok }
}

// WithBackoff sets the redelivery delay after a failure: min at first,
// doubling on each further failure of the same message, at most max.
// Default: 250ms to 1m.
func WithBackoff(min, max time.Duration) ConsumeOption {
	return func(o *consumeOptions) {
		if min > 0 && max >= min {
			o.backoffMin, o.backoffMax = min, max
		}
	}
}

// Consume attaches the durable consumer durable (named after the consuming
// component) to stream (one of the Stream constants), filtered to
// filterSubject (a relative subject, may end in a wildcard; empty: the whole
// stream), creating it on first use, and calls handler for each message in
// stream order, one at a time, from one goroutine. A message is
// acknowledged once handler returns nil, and negatively acknowledged with a
// backoff otherwise (see Handler). Consuming stops when ctx ends, when stop
// is called, or when the Bus closes; stop returns once the handler has
// returned and may be called more than once.
func (b *Bus) Consume(ctx context.Context, stream, durable, filterSubject string, handler Handler, opts ...ConsumeOption) (stop func(), err error) {
	batch := func(ctx context.Context, msgs []Message) error { return handler(ctx, msgs[0]) }
	return b.consume(ctx, stream, durable, filterSubject, batch, 1, opts...)
}

// BatchHandler handles messages that arrived together, in stream order,
// all or nothing: nil acknowledges them all, an error has them all
// redelivered (or dropped, if it wraps ErrPoison).
type BatchHandler func(ctx context.Context, msgs []Message) error

// ConsumeBatch is Consume for a handler that does better with several
// messages at once (one database transaction for many): it is given the
// messages that are already waiting, up to maxBatch, in stream order, and
// never waits for more to come. Order holds as with Consume: the next
// batch comes only once this one is acknowledged, and a batch whose
// handler fails is retried in place, with a backoff, rather than given
// back to the server (which could redeliver it after newer messages).
func (b *Bus) ConsumeBatch(ctx context.Context, stream, durable, filterSubject string, handler BatchHandler, maxBatch int, opts ...ConsumeOption) (stop func(), err error) {
	return b.consume(ctx, stream, durable, filterSubject, handler, max(maxBatch, 1), opts...)
}

func (b *Bus) consume(ctx context.Context, stream, durable, filterSubject string, handler BatchHandler, maxBatch int, opts ...ConsumeOption) (stop func(), err error) {
	o := consumeOptions{maxAckPending: maxBatch, backoffMin: defaultBackoffMin, backoffMax: defaultBackoffMax}
	for _, opt := range opts {
		opt(&o)
	}
	o.maxBatch = maxBatch
	if durable == "" {
		return nil, fmt.Errorf("consume %s: empty durable name", stream)
	}
	c := &consumer{
		b:       b,
		stream:  b.StreamName(stream),
		handler: handler,
		opts:    o,
		cfg: jetstream.ConsumerConfig{
			Durable:       durable,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       ackWait,
			MaxDeliver:    -1,
			MaxAckPending: o.maxAckPending,
			DeliverPolicy: jetstream.DeliverAllPolicy,
		},
	}
	if filterSubject != "" {
		c.cfg.FilterSubject = b.subject(filterSubject)
	}
	c.log = b.log.WithFields(logrus.Fields{fieldStream: c.stream, fieldConsumer: durable})
	if err := c.keepDeliverPolicy(ctx); err != nil {
		return nil, err
	}
	if o.replayPending {
		if err := c.replayFromAckFloor(ctx); err != nil {
			return nil, err
		}
	}
	// Create it now, so that a bad stream or configuration fails here and
	// not in the background.
	cons, err := b.js.CreateOrUpdateConsumer(ctx, c.stream, c.cfg)
	if err != nil {
		return nil, fmt.Errorf("create consumer %s on %s: %w", durable, c.stream, err)
	}

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	stop = func() {
		cancel()
		wg.Wait()
	}
	unregister, err := b.register(stop)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("consume %s: %w", stream, err)
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer unregister()
		c.run(ctx, cons)
	}()
	go func() {
		defer wg.Done()
		c.keepAlive(ctx)
	}()
	return stop, nil
}

// consumer is one running Consume.
type consumer struct {
	b       *Bus
	stream  string
	cfg     jetstream.ConsumerConfig
	handler BatchHandler
	opts    consumeOptions
	log     *logrus.Entry

	// replayedUpTo is the last stream sequence delivered before the
	// consumer was recreated at its ack floor (WithReplayPendingFirst):
	// messages up to it may have been seen before.
	replayedUpTo uint64

	// mu guards current.
	mu sync.Mutex
	// current are the messages being handled, kept alive by keepAlive.
	current []jetstream.Msg
}

// run pulls and handles messages until ctx ends, re-attaching the
// consumer after errors (a NATS restart, a deleted consumer).
func (c *consumer) run(ctx context.Context, cons jetstream.Consumer) {
	for {
		if cons != nil {
			c.drain(ctx, cons)
		}
		if ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(retryDelay):
		}
		var err error
		cons, err = c.b.js.CreateOrUpdateConsumer(ctx, c.stream, c.cfg)
		if err != nil && ctx.Err() == nil {
			c.log.WithError(err).Warn("re-attach consumer")
		}
	}
}

// drain handles messages of one iterator until ctx ends or the iterator
// fails.
func (c *consumer) drain(ctx context.Context, cons jetstream.Consumer) {
	// A small pull buffer: messages waiting in it are not kept alive, and
	// no more can be in flight than the handler takes at once.
	it, err := cons.Messages(jetstream.PullMaxMessages(c.opts.maxAckPending + 1))
	if err != nil {
		c.log.WithError(err).Warn("pull messages")
		return
	}
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				c.release(it)
			} else {
				it.Stop()
				c.log.WithError(err).Warn("pull messages")
			}
			return
		}
		batch, msgs := []jetstream.Msg{msg}, []Message{c.message(msg)}
		lingerUntil := time.Now().Add(c.opts.linger)
		lingering := c.mayLinger(msgs[0])
		for len(batch) < c.opts.maxBatch {
			// Take what is already buffered; a short wait only, unless
			// the consumer lingers.
			wait := batchWait
			if lingering {
				wait = max(batchWait, time.Until(lingerUntil))
			}
			more, err := it.Next(jetstream.NextMaxWait(wait))
			if err != nil {
				break
			}
			batch, msgs = append(batch, more), append(msgs, c.message(more))
			lingering = lingering && c.mayLinger(msgs[len(msgs)-1])
		}
		c.handle(ctx, batch, msgs)
	}
}

// batchWait is how long a batch waits for one more message that is not
// buffered yet: long enough to take what the client library already
// holds, short enough not to add to every message's latency when the
// stream is quiet (a batch ends with this wait).
const batchWait = 100 * time.Microsecond

// release hands the messages already buffered back to the server at once,
// so that the next consumer need not wait for their ack timeout.
func (c *consumer) release(it jetstream.MessagesContext) {
	it.Drain()
	for {
		msg, err := it.Next(jetstream.NextMaxWait(time.Second))
		if err != nil {
			return
		}
		_ = msg.Nak()
	}
}

// mayLinger reports whether a batch holding m may wait for more.
func (c *consumer) mayLinger(m Message) bool {
	return c.opts.linger > 0 && (c.opts.lingerWhile == nil || c.opts.lingerWhile(m))
}

// message is what a handler sees of jm.
func (c *consumer) message(jm jetstream.Msg) Message {
	msg := Message{Subject: c.b.relSubject(jm.Subject()), ID: jm.Headers().Get(jetstream.MsgIDHeader), Data: jm.Data()}
	if md, err := jm.Metadata(); err == nil {
		msg.Sequence, msg.Delivery, msg.Time = md.Sequence.Stream, md.NumDelivered, md.Timestamp
	}
	if msg.Sequence <= c.replayedUpTo {
		msg.Delivery = max(msg.Delivery, 2)
	}
	return msg
}

// handle runs the handler on a batch: jms as received, msgs as the
// handler sees them.
func (c *consumer) handle(ctx context.Context, jms []jetstream.Msg, msgs []Message) {
	c.mu.Lock()
	c.current = jms
	c.mu.Unlock()
	err := c.callHandler(ctx, msgs)
	if c.opts.maxBatch > 1 {
		// With several messages in flight a redelivery could come after
		// newer ones: a batch is retried here, kept alive, until it is
		// handled (or poison, or the consumer stops).
		for attempt := uint64(1); err != nil && !errors.Is(err, ErrPoison) && ctx.Err() == nil; attempt++ {
			delay := c.backoff(attempt)
			c.log.WithError(err).WithFields(logrus.Fields{fieldSequence: msgs[0].Sequence, fieldBatch: len(msgs),
				fieldRetryIn: delay.String()}).Warn("batch handler failed")
			select {
			case <-ctx.Done():
			case <-time.After(delay):
				err = c.callHandler(ctx, msgs)
			}
		}
	}
	c.mu.Lock()
	c.current = nil
	c.mu.Unlock()

	first := msgs[0]
	log := c.log.WithFields(logrus.Fields{fieldSubject: first.Subject, fieldSequence: first.Sequence, fieldAttempt: first.Delivery})
	if len(msgs) > 1 {
		log = log.WithField(fieldBatch, len(msgs))
	}
	switch {
	case err == nil:
		// Plain acks for all but the last, a confirmed one for the last:
		// the server handles a connection's acks in order, so with strict
		// order the next message comes only once it has them all. The
		// consumer's ctx may be ending; the acks must still go.
		for _, jm := range jms[:len(jms)-1] {
			_ = jm.Ack()
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
		defer cancel()
		if err := jms[len(jms)-1].DoubleAck(actx); err != nil {
			log.WithError(err).Warn("ack failed; the messages will be redelivered")
		}
	case errors.Is(err, ErrPoison):
		log.WithError(err).Error("dropping messages that cannot be handled")
		// Term, not TermWithReason: servers before 2.10 do not know the
		// reason form and would leave the message pending.
		for _, jm := range jms {
			_ = jm.Term()
		}
	case ctx.Err() != nil:
		// Stopping: give them back at once for whoever consumes next.
		for _, jm := range jms {
			_ = jm.Nak()
		}
	default:
		delay := c.backoff(first.Delivery)
		log.WithError(err).WithField(fieldRetryIn, delay.String()).Warn("message handler failed")
		for _, jm := range jms {
			_ = jm.NakWithDelay(delay)
		}
	}
}

// callHandler turns a handler panic into an error, so that one bad message
// cannot take the process down.
func (c *consumer) callHandler(ctx context.Context, msgs []Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panic: %v", r)
		}
	}()
	return c.handler(ctx, msgs)
}

// backoff is the delay before redelivery after the delivery-th attempt.
func (c *consumer) backoff(delivery uint64) time.Duration {
	d := c.opts.backoffMin
	for i := uint64(1); i < delivery && d < c.opts.backoffMax; i++ {
		d *= 2
	}
	return min(d, c.opts.backoffMax)
}

// keepAlive tells the server, while a handler runs, that the message is
// in progress, so that a slow handler does not get its message redelivered.
func (c *consumer) keepAlive(ctx context.Context) {
	t := time.NewTicker(ackWait / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.mu.Lock()
			for _, jm := range c.current {
				_ = jm.InProgress()
			}
			c.mu.Unlock()
		}
	}
}

// keepDeliverPolicy copies an existing consumer's deliver policy into the
// configuration: it only says where a new consumer starts, and the server
// refuses to change it on an existing one (recreated at its ack floor, see
// replayFromAckFloor).
func (c *consumer) keepDeliverPolicy(ctx context.Context) error {
	cons, err := c.b.js.Consumer(ctx, c.stream, c.cfg.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read consumer %s on %s: %w", c.cfg.Durable, c.stream, err)
	}
	old := cons.CachedInfo().Config
	c.cfg.DeliverPolicy, c.cfg.OptStartSeq, c.cfg.OptStartTime = old.DeliverPolicy, old.OptStartSeq, old.OptStartTime
	return nil
}

// replayFromAckFloor recreates the consumer at its ack floor when an
// earlier run left messages unacknowledged, so that they are delivered
// again at once and in order (WithReplayPendingFirst).
func (c *consumer) replayFromAckFloor(ctx context.Context) error {
	cons, err := c.b.js.Consumer(ctx, c.stream, c.cfg.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read consumer %s on %s: %w", c.cfg.Durable, c.stream, err)
	}
	info := cons.CachedInfo()
	if info.Delivered.Stream <= info.AckFloor.Stream {
		return nil
	}
	c.log.WithFields(logrus.Fields{"ack_floor": info.AckFloor.Stream, "delivered": info.Delivered.Stream}).
		Info("replaying messages an earlier run left unacknowledged")
	if err := c.b.js.DeleteConsumer(ctx, c.stream, c.cfg.Durable); err != nil {
		return fmt.Errorf("recreate consumer %s on %s at its ack floor: %w", c.cfg.Durable, c.stream, err)
	}
	c.cfg.DeliverPolicy, c.cfg.OptStartSeq, c.cfg.OptStartTime = jetstream.DeliverByStartSequencePolicy, info.AckFloor.Stream+1, nil
	c.replayedUpTo = info.Delivered.Stream
	return nil
}
