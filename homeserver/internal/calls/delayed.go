package calls

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/bus"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// Delayed events (MSC4140): PUT /send and /state with
// ?org.matrix.msc4140.delay=<ms> store the event instead of sending it and
// answer {"delay_id"}; the owner may cancel, restart or send it at once
// (POST …/delayed_events/{delay_id}); otherwise it is sent when the delay
// runs out. Element Call schedules its "left the call" member event this
// way and keeps restarting it, so that a client that vanishes leaves the
// call by itself.
//
//	PUT ?delay ──► delayed_events row ──► wake
//	                                        │
//	scheduler (one goroutine) ◄─────────────┘ sleeps until the soonest
//	  └─ due rows: take (DELETE … RETURNING), send as their owner
//
// Rows are in the database, so a restart keeps them; an event due while
// the server was down is sent at start. Taking a row before sending means
// a crash between the two loses that one event rather than sending it
// twice.

// DelayParam is the query parameter of a delayed send.
const DelayParam = "org.matrix.msc4140.delay"

// maxDelayedPerUser bounds the events one user may have waiting.
const maxDelayedPerUser = 100

// DelayedStore is the delayed events table.
type DelayedStore interface {
	AddDelayedEvent(ctx context.Context, d storage.DelayedEvent) error
	DelayedEventsOf(ctx context.Context, userID string) ([]storage.DelayedEvent, error)
	DueDelayedEvents(ctx context.Context, nowTS int64, limit int) ([]storage.DelayedEvent, error)
	NextDelayedEventTS(ctx context.Context) (int64, bool, error)
	TakeDelayedEvent(ctx context.Context, userID, delayID string) (storage.DelayedEvent, error)
	RestartDelayedEvent(ctx context.Context, userID, delayID string, nowTS int64) error
	CountDelayedEvents(ctx context.Context, userID string) (int, error)
	CancelDelayedState(ctx context.Context, roomID, typ, stateKey, sender string) error
}

// Sender sends an event as the client API sends it (the room API's
// checks included).
type Sender interface {
	SendAs(ctx context.Context, roomID string, ev rsapi.ProtoEvent) (eventID string, err error)
}

// Membership reads a user's membership, to refuse a delayed event in a
// room the user is not in.
type Membership interface {
	Membership(ctx context.Context, roomID, userID string) (string, int64, error)
}

// Delayed serves and sends delayed events.
type Delayed struct {
	store           DelayedStore
	send            Sender
	rooms           Membership
	maxDelay        time.Duration
	maxRequestBytes int64
	log             *logrus.Entry
	now             func() time.Time
	bus             *bus.Bus
	stopConsumer    func()

	wake chan struct{}
	// mu guards cancel and done.
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// DelayedDeps is what Delayed needs.
type DelayedDeps struct {
	Store           DelayedStore
	Send            Sender
	Rooms           Membership
	MaxDelay        time.Duration
	MaxRequestBytes int64
	Log             *logrus.Entry
	// Bus carries the roomserver's output, watched for state that other
	// users overwrite; nil: not watched.
	Bus *bus.Bus
}

// NewDelayed returns the delayed events service; nothing is sent before
// Start.
func NewDelayed(d DelayedDeps) *Delayed {
	return &Delayed{store: d.Store, send: d.Send, rooms: d.Rooms, maxDelay: d.MaxDelay, maxRequestBytes: d.MaxRequestBytes,
		log: d.Log, now: time.Now, bus: d.Bus, wake: make(chan struct{}, 1)}
}

// Or returns a handler that schedules the request when it carries the
// delay parameter and leaves it to next (the plain PUT /send, or PUT
// /state when state is set) otherwise.
func (d *Delayed) Or(next httputil.HandlerFunc, state bool) httputil.HandlerFunc {
	return func(r *http.Request) (any, error) {
		if !r.URL.Query().Has(DelayParam) {
			return next(r)
		}
		return d.schedule(r, state)
	}
}

// schedule stores the delayed event of a PUT /send or /state.
func (d *Delayed) schedule(r *http.Request, state bool) (any, error) {
	ctx := r.Context()
	dev := auth.DeviceFrom(ctx)
	delayMS, err := strconv.ParseInt(r.URL.Query().Get(DelayParam), 10, 64)
	if err != nil || delayMS <= 0 {
		return nil, httputil.InvalidParam("%s must be a positive number of milliseconds", DelayParam)
	}
	if max := d.maxDelay.Milliseconds(); delayMS > max {
		return nil, httputil.Errorf(httputil.CodeMaxDelayExceeded, "the delay is longer than the allowed %d ms", max).
			With("org.matrix.msc4140.errcode", string(httputil.CodeMaxDelayExceeded)).With("org.matrix.msc4140.max_delay", max)
	}
	body, err := httputil.ReadBody(r, d.maxRequestBytes)
	if err != nil {
		return nil, err
	}
	if len(body) > rsapi.MaxEventBytes {
		return nil, httputil.Errorf(httputil.CodeTooLarge, "event is larger than %d bytes", rsapi.MaxEventBytes)
	}
	var obj map[string]json.RawMessage
	if err := httputil.UnmarshalBody(body, &obj); err != nil {
		return nil, err
	}
	content, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode content: %w", err)
	}
	roomID := httputil.PathParam(r, "roomID")
	m, _, err := d.rooms.Membership(ctx, roomID, dev.UserID)
	if err != nil && !errors.Is(err, rsapi.ErrRoomNotFound) {
		return nil, fmt.Errorf("read membership: %w", err)
	}
	if m != "join" {
		return nil, httputil.Forbidden("you are not joined to this room")
	}
	if n, err := d.store.CountDelayedEvents(ctx, dev.UserID); err != nil {
		return nil, err
	} else if n >= maxDelayedPerUser {
		return nil, httputil.Errorf(httputil.CodeLimitExceeded, "at most %d delayed events may wait", maxDelayedPerUser)
	}
	ev := storage.DelayedEvent{UserID: dev.UserID, DeviceID: dev.DeviceID, RoomID: roomID,
		Type: httputil.PathParam(r, "eventType"), Content: content, DelayMS: delayMS, RunningSince: d.now().UnixMilli()}
	if state {
		key := httputil.PathParam(r, "stateKey")
		ev.StateKey = &key
	}
	raw := make([]byte, 18)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("make delay id: %w", err)
	}
	ev.DelayID = "syd_" + base64.RawURLEncoding.EncodeToString(raw)
	if err := d.store.AddDelayedEvent(ctx, ev); err != nil {
		return nil, err
	}
	d.poke()
	return map[string]string{"delay_id": ev.DelayID}, nil
}

// delayedJSON is a delayed event as GET /delayed_events lists it.
type delayedJSON struct {
	DelayID      string          `json:"delay_id"`
	RoomID       string          `json:"room_id"`
	Type         string          `json:"type"`
	StateKey     *string         `json:"state_key,omitempty"`
	Delay        int64           `json:"delay"`
	RunningSince int64           `json:"running_since"`
	Content      json.RawMessage `json:"content"`
}

// List is GET /_matrix/client/unstable/org.matrix.msc4140/delayed_events:
// the caller's waiting events (as "delayed_events" and, when asked with
// status=scheduled, "scheduled"). Events already sent or cancelled are
// not kept, so status=finalised lists none.
func (d *Delayed) List(r *http.Request) (any, error) {
	userID := auth.DeviceFrom(r.Context()).UserID
	evs, err := d.store.DelayedEventsOf(r.Context(), userID)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, id := range r.URL.Query()["delay_id"] {
		want[id] = true
	}
	list := []delayedJSON{}
	for _, e := range evs {
		if len(want) > 0 && !want[e.DelayID] {
			continue
		}
		list = append(list, delayedJSON{DelayID: e.DelayID, RoomID: e.RoomID, Type: e.Type, StateKey: e.StateKey,
			Delay: e.DelayMS, RunningSince: e.RunningSince, Content: e.Content})
	}
	statuses := r.URL.Query()["status"]
	if len(statuses) == 0 {
		return map[string]any{"delayed_events": list, "scheduled": list, "finalised": []any{}}, nil
	}
	out := map[string]any{}
	for _, s := range statuses {
		switch s {
		case "scheduled":
			out["scheduled"] = list
		case "finalised":
			out["finalised"] = []any{}
		default:
			return nil, httputil.InvalidParam("status must be scheduled or finalised")
		}
	}
	return out, nil
}

// Update is POST /_matrix/client/unstable/org.matrix.msc4140/delayed_events/{delayID}
// with {"action": "cancel" | "restart" | "send"}.
func (d *Delayed) Update(r *http.Request) (any, error) {
	ctx := r.Context()
	userID := auth.DeviceFrom(ctx).UserID
	var req struct {
		Action *string `json:"action"`
	}
	if err := httputil.DecodeJSON(r, d.maxRequestBytes, &req); err != nil {
		return nil, err
	}
	if req.Action == nil {
		return nil, httputil.MissingParam("action is required")
	}
	delayID := httputil.PathParam(r, "delayID")
	notFound := httputil.NotFound("no such delayed event")
	switch *req.Action {
	case "cancel":
		if _, err := d.store.TakeDelayedEvent(ctx, userID, delayID); errors.Is(err, storage.ErrNotFound) {
			return nil, notFound
		} else if err != nil {
			return nil, err
		}
	case "restart":
		if err := d.store.RestartDelayedEvent(ctx, userID, delayID, d.now().UnixMilli()); errors.Is(err, storage.ErrNotFound) {
			return nil, notFound
		} else if err != nil {
			return nil, err
		}
		d.poke()
	case "send":
		ev, err := d.store.TakeDelayedEvent(ctx, userID, delayID)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, notFound
		}
		if err != nil {
			return nil, err
		}
		if _, err := d.send.SendAs(ctx, ev.RoomID, protoOf(ev)); err != nil {
			return nil, err
		}
	default:
		return nil, httputil.InvalidParam("action must be cancel, restart or send")
	}
	return struct{}{}, nil
}

// protoOf is the event a delayed event sends.
func protoOf(ev storage.DelayedEvent) rsapi.ProtoEvent {
	return rsapi.ProtoEvent{Type: ev.Type, StateKey: ev.StateKey, Sender: ev.UserID, Content: ev.Content}
}

// poke wakes the scheduler: the soonest event may have changed.
func (d *Delayed) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Start starts the scheduler, which first sends what fell due while the
// server was down.
func (d *Delayed) Start(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.bus != nil {
		stop, err := d.bus.Consume(context.WithoutCancel(ctx), bus.StreamRoomserverOutput, delayedDurable, "", d.overwritten)
		if err != nil {
			return fmt.Errorf("consume roomserver output for delayed events: %w", err)
		}
		d.stopConsumer = stop
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.cancel, d.done = cancel, make(chan struct{})
	go d.run(sctx, d.done)
	return nil
}

// delayedDurable names the consumer that watches for overwritten state.
const delayedDurable = "homeserver_delayed"

// overwritten cancels the delayed state events of other users for the
// state an accepted state event set, as Synapse does: a user's "I left
// the call" must not undo what someone else wrote since.
func (d *Delayed) overwritten(ctx context.Context, msg bus.Message) error {
	var out rsapi.OutputEvent
	if err := msg.Decode(&out); err != nil {
		return err
	}
	if out.SoftFailed || !slices.Contains(out.StateAdded, out.Event.EventID) {
		return nil
	}
	e, err := events.Parse(out.Event)
	if err != nil || e.StateKey == nil {
		return nil
	}
	return d.store.CancelDelayedState(ctx, e.RoomID, e.Type, *e.StateKey, e.Sender)
}

// Stop stops the scheduler and waits for the send in hand.
func (d *Delayed) Stop(ctx context.Context) error {
	d.mu.Lock()
	cancel, done, stopConsumer := d.cancel, d.done, d.stopConsumer
	d.mu.Unlock()
	if stopConsumer != nil {
		stopConsumer()
	}
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// idleWait is the scheduler's longest sleep: it also looks again this
// often, for rows written by another process.
const idleWait = 30 * time.Second

func (d *Delayed) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	for {
		wait := idleWait
		if err := d.sendDue(ctx); err != nil && ctx.Err() == nil {
			d.log.WithError(err).Warn("send delayed events")
			wait = time.Second
		}
		if next, ok, err := d.store.NextDelayedEventTS(ctx); err == nil && ok {
			wait = min(wait, time.Until(time.UnixMilli(next)))
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-d.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// sendDue sends every event due now. An event the room refuses (the
// owner left, lost the power) is dropped with a log line: its delay is
// over either way.
func (d *Delayed) sendDue(ctx context.Context) error {
	for {
		due, err := d.store.DueDelayedEvents(ctx, d.now().UnixMilli(), 50)
		if err != nil || len(due) == 0 {
			return err
		}
		for _, ev := range due {
			taken, err := d.store.TakeDelayedEvent(ctx, "", ev.DelayID)
			if errors.Is(err, storage.ErrNotFound) {
				continue // cancelled or sent meanwhile
			}
			if err != nil {
				return err
			}
			if _, err := d.send.SendAs(ctx, taken.RoomID, protoOf(taken)); err != nil {
				if _, internal := httputil.AsError(err); internal && ctx.Err() != nil {
					return err
				}
				d.log.WithError(err).WithField("room_id", taken.RoomID).WithField("user_id", taken.UserID).Warn("delayed event refused")
			}
		}
	}
}
