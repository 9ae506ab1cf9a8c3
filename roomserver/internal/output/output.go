// Package output publishes the roomserver's accepted events on the bus, in
// order, from the outbox that each event's transaction wrote: an event
// committed is published even across a crash (at least once; the event id
// as the message id lets JetStream drop repeats).
package output

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/internal/bus"
	"github.com/matrix-gouv/homeserver/roomserver/api"
	"github.com/matrix-gouv/homeserver/roomserver/storage"
)

// Partitions is the number of roomserver output subjects rooms are spread
// over; fixed for a deployment, since a room's events must stay on one.
const Partitions = 64

// Publisher drains the outbox onto the bus.
type Publisher struct {
	store *storage.Store
	bus   *bus.Bus
	log   *logrus.Entry
	wake  chan struct{}

	cancel context.CancelFunc
	done   sync.WaitGroup
}

// New returns a publisher; Start runs it.
func New(store *storage.Store, b *bus.Bus, log *logrus.Entry) *Publisher {
	return &Publisher{store: store, bus: b, log: log, wake: make(chan struct{}, 1)}
}

// Wake tells the publisher the outbox has new entries.
func (p *Publisher) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Start runs the publishing loop until Stop.
func (p *Publisher) Start(ctx context.Context) {
	ctx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			if err := p.drain(ctx); err != nil && ctx.Err() == nil {
				p.log.WithError(err).Warn("publish roomserver output; will retry")
			}
			select {
			case <-ctx.Done():
				return
			case <-p.wake:
			case <-tick.C:
			}
		}
	}()
}

// Stop publishes what is queued (within ctx) and stops the loop.
func (p *Publisher) Stop(ctx context.Context) {
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.done.Wait()
	_ = p.drain(ctx)
}

// drain publishes every queued output event, oldest first.
func (p *Publisher) drain(ctx context.Context) error {
	for {
		entries, err := p.store.Outbox(ctx, 100)
		if err != nil || len(entries) == 0 {
			return err
		}
		published := make([]int64, 0, len(entries))
		for _, e := range entries {
			var out api.OutputEvent
			if err := json.Unmarshal(e.JSON, &out); err != nil {
				return err
			}
			subject := bus.Subject(bus.SubjectRoomserverOutput, bus.Partition(out.Event.RoomID, Partitions))
			if err := p.bus.Publish(ctx, subject, out.Event.EventID, json.RawMessage(e.JSON)); err != nil {
				_ = p.store.RemoveFromOutbox(ctx, published)
				return err
			}
			published = append(published, e.EventNID)
		}
		if err := p.store.RemoveFromOutbox(ctx, published); err != nil {
			return err
		}
	}
}
