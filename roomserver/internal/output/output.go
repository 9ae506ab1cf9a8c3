// Package output publishes the roomserver's accepted events on the bus, in
// order, from the outbox that each event's transaction wrote: an event
// committed is published even across a crash (at least once; the event id
// as the message id lets JetStream drop repeats).
//
// The input path hands each commit's output events to the publisher
// directly, so that publishing does not wait for a read of the outbox;
// the outbox rows are deleted in batches once published, beside the
// publishing (a delete's commit does not hold up the next events). The
// outbox is read only at start (what a previous run committed but did
// not publish), after a failed publish, and when the hand-off queue is
// full.
package output

import (
	"context"
	"encoding/json"
	"fmt"
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

// Tuning of the hand-off and of the outbox deletes.
const (
	// maxHanded bounds the events waiting in memory; beyond it they are
	// left to the outbox, read back in order.
	maxHanded = 4096
	// removeBatch and removeEvery bound how many published events wait
	// for their outbox rows to be deleted, and for how long.
	removeBatch = 512
	removeEvery = 250 * time.Millisecond
	// maxTold is the most events handed at once that the listener is told
	// of one by one; a longer backlog reaches consumers through the bus,
	// in batches.
	maxTold = 16
)

// Store is the outbox.
type Store interface {
	Outbox(ctx context.Context, limit int) ([]storage.OutboxEntry, error)
	RemoveFromOutbox(ctx context.Context, eventNIDs []int64) error
}

// Publisher drains the outbox onto the bus.
type Publisher struct {
	store Store
	bus   *bus.Bus
	log   *logrus.Entry
	wake  chan struct{}

	mu sync.Mutex // guards handed and overflow
	// handed are the events committed since the loop last looked, in
	// commit order (within a room, the room's order).
	handed []storage.OutboxEntry
	// overflow: handed was dropped (full), the outbox has the events.
	overflow bool

	// fromOutbox is the loop's own: the next round reads the outbox (at
	// start, after a failure, after an overflow).
	fromOutbox bool

	// removing is held while outbox rows are deleted, by the remover or
	// by the loop before it reads the outbox.
	removing sync.Mutex
	// pubMu guards published: events published whose outbox rows are
	// still there.
	pubMu     sync.Mutex
	published []int64
	// removeNow wakes the remover when enough rows wait.
	removeNow chan struct{}

	// listener, when set, is told of each event stored (see Listen).
	listener api.OutputListener

	cancel context.CancelFunc
	done   sync.WaitGroup
}

// New returns a publisher; Start runs it.
func New(store Store, b *bus.Bus, log *logrus.Entry) *Publisher {
	return &Publisher{store: store, bus: b, log: log, wake: make(chan struct{}, 1), removeNow: make(chan struct{}, 1), fromOutbox: true}
}

// Listen makes l be told of each output event once the bus stored it, in
// stream order. Call it before Start.
func (p *Publisher) Listen(l api.OutputListener) { p.listener = l }

// Hand gives the publisher output events just committed to the outbox,
// in commit order.
func (p *Publisher) Hand(entries []storage.OutboxEntry) {
	p.mu.Lock()
	switch {
	case p.overflow:
	case len(p.handed)+len(entries) > maxHanded:
		p.handed, p.overflow = nil, true
	default:
		p.handed = append(p.handed, entries...)
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Start runs the publishing loop and the outbox remover until Stop.
func (p *Publisher) Start(ctx context.Context) {
	ctx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	p.done.Add(2)
	go p.remover(ctx)
	go func() {
		defer p.done.Done()
		tick := time.NewTicker(removeEvery)
		defer tick.Stop()
		for {
			if err := p.round(ctx); err != nil && ctx.Err() == nil {
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
	p.fromOutbox = true
	_ = p.round(ctx)
	_ = p.removePublished(ctx)
}

// round publishes what was handed, or what the outbox holds when it must
// be read.
func (p *Publisher) round(ctx context.Context) error {
	p.mu.Lock()
	handed := p.handed
	p.handed = nil
	if p.overflow {
		p.overflow, p.fromOutbox = false, true
	}
	p.mu.Unlock()
	if p.fromOutbox {
		// Rows published but not deleted would be published again:
		// delete them first. What was handed meanwhile is in the outbox.
		if err := p.removePublished(ctx); err != nil {
			return err
		}
		if err := p.drain(ctx); err != nil {
			return err
		}
		p.fromOutbox = false
	} else {
		// A backlog goes to consumers in batches, through the bus only.
		tell := len(handed) <= maxTold
		for i, e := range handed {
			if err := p.publish(ctx, e, tell); err != nil {
				// The rest is in the outbox, in order.
				p.fromOutbox = true
				p.log.WithError(err).WithField("waiting", len(handed)-i).Warn("publish roomserver output; reading the outbox again")
				return err
			}
		}
	}
	return nil
}

// drain publishes every event in the outbox, oldest first.
func (p *Publisher) drain(ctx context.Context) error {
	for {
		entries, err := p.store.Outbox(ctx, 100)
		if err != nil || len(entries) == 0 {
			return err
		}
		for _, e := range entries {
			if err := p.publish(ctx, e, false); err != nil {
				return err
			}
		}
		if err := p.removePublished(ctx); err != nil {
			return err
		}
	}
}

// publish puts one output event on the bus, and tells the listener when
// tell is set.
func (p *Publisher) publish(ctx context.Context, e storage.OutboxEntry, tell bool) error {
	if e.RoomID == "" {
		// Read from the outbox: the ids are in the JSON.
		var out api.OutputEvent
		if err := json.Unmarshal(e.JSON, &out); err != nil {
			return fmt.Errorf("decode outbox entry %d: %w", e.EventNID, err)
		}
		e.RoomID, e.EventID = out.Event.RoomID, out.Event.EventID
	}
	subject := bus.Subject(bus.SubjectRoomserverOutput, bus.Partition(e.RoomID, Partitions))
	stored, err := p.bus.PublishAck(ctx, subject, e.EventID, json.RawMessage(e.JSON))
	if err != nil {
		return err
	}
	p.markPublished(e.EventNID)
	if tell && p.listener != nil && !stored.Duplicate {
		p.listener.OutputPublished(stored.Sequence, e.JSON)
	}
	return nil
}

// markPublished records that an event is on the bus: its outbox row may
// go.
func (p *Publisher) markPublished(eventNID int64) {
	p.pubMu.Lock()
	p.published = append(p.published, eventNID)
	full := len(p.published) >= removeBatch
	p.pubMu.Unlock()
	if full {
		select {
		case p.removeNow <- struct{}{}:
		default:
		}
	}
}

// remover deletes the outbox rows of published events every removeEvery,
// or sooner when removeBatch of them wait: beside the publishing loop, so
// that a delete's commit never holds up the events behind it.
func (p *Publisher) remover(ctx context.Context) {
	defer p.done.Done()
	tick := time.NewTicker(removeEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-p.removeNow:
		}
		if err := p.removePublished(ctx); err != nil && ctx.Err() == nil {
			p.log.WithError(err).Warn("delete published roomserver output from the outbox; will retry")
		}
	}
}

// removePublished deletes the outbox rows of the events published so far.
func (p *Publisher) removePublished(ctx context.Context) error {
	p.removing.Lock()
	defer p.removing.Unlock()
	p.pubMu.Lock()
	nids := p.published
	p.published = nil
	p.pubMu.Unlock()
	if len(nids) == 0 {
		return nil
	}
	if err := p.store.RemoveFromOutbox(ctx, nids); err != nil {
		// Kept for the next try, before those published meanwhile.
		p.pubMu.Lock()
		p.published = append(nids, p.published...)
		p.pubMu.Unlock()
		return err
	}
	return nil
}
