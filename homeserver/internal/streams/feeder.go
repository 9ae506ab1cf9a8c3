package streams

import (
	"context"
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/bus"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// feederDurable names the feeder's durable consumer of the roomserver's
// output.
const feederDurable = "homeserver_sync"

// EventProcessor is work done on each room event before clients are woken
// (push rule evaluation, so that unread counts are right when the event
// arrives).
type EventProcessor interface {
	ProcessEvent(ctx context.Context, out rsapi.OutputEvent) error
}

// FeederStore is what the feeder writes.
type FeederStore interface {
	AppendSyncEvent(ctx context.Context, roomID, eventID string, streamPos int64, changes []storage.MembershipChange) (int64, bool, error)
}

// EventReader reads events the feeder needs beyond the output event: the
// member events a state resolution made current.
type EventReader interface {
	Event(ctx context.Context, eventID string) (rsapi.Event, error)
}

// Feeder consumes the roomserver's output into the rooms stream.
type Feeder struct {
	Bus      *bus.Bus
	Store    FeederStore
	Rooms    EventReader
	Notifier *Notifier
	// Processor, when set, runs on every event before clients are woken.
	Processor EventProcessor
	Log       *logrus.Entry

	stop func()
}

// Start attaches the feeder's durable consumer; ctx bounds the start
// only, Stop ends the consuming.
func (f *Feeder) Start(ctx context.Context) error {
	stop, err := f.Bus.Consume(context.WithoutCancel(ctx), bus.StreamRoomserverOutput, feederDurable, "", f.handle)
	if err != nil {
		return fmt.Errorf("consume roomserver output: %w", err)
	}
	f.stop = stop
	return nil
}

// Stop detaches it, once the event in hand is done.
func (f *Feeder) Stop() {
	if f.stop != nil {
		f.stop()
	}
}

// handle appends one output event to the rooms stream. Soft-failed events
// are federation's business only.
func (f *Feeder) handle(ctx context.Context, msg bus.Message) error {
	var out rsapi.OutputEvent
	if err := msg.Decode(&out); err != nil {
		return err
	}
	if out.SoftFailed {
		return nil
	}
	ev, err := events.Parse(out.Event)
	if err != nil {
		return fmt.Errorf("%w: %w", err, bus.ErrPoison)
	}
	changes, err := f.membershipChanges(ctx, ev, out.StateAdded)
	if err != nil {
		return err
	}
	pos, _, err := f.Store.AppendSyncEvent(ctx, ev.RoomID, ev.EventID, ev.StreamPos, changes)
	if err != nil {
		return err
	}
	if f.Processor != nil {
		if err := f.Processor.ProcessEvent(ctx, out); err != nil {
			// Counts are lost for this event; delivery must go on.
			f.Log.WithError(err).WithField("event_id", ev.EventID).Warn("evaluate push rules")
		}
	}
	f.Notifier.OnRoomEvent(storage.SyncEvent{SyncPos: pos, RoomID: ev.RoomID, EventID: ev.EventID, StreamPos: ev.StreamPos}, changes)
	return nil
}

// membershipChanges lists the memberships ev made current: its own when
// it is a member event, and those of other member events in stateAdded
// (a state resolution can bring back older ones).
func (f *Feeder) membershipChanges(ctx context.Context, ev events.Event, stateAdded []string) ([]storage.MembershipChange, error) {
	var out []storage.MembershipChange
	add := func(e events.Event) {
		if e.Type == "m.room.member" && e.StateKey != nil {
			out = append(out, storage.MembershipChange{RoomID: e.RoomID, UserID: *e.StateKey, Membership: e.Membership(),
				EventID: e.EventID, Sender: e.Sender, StreamPos: ev.StreamPos})
		}
	}
	add(ev)
	for _, id := range stateAdded {
		if id == ev.EventID {
			continue
		}
		raw, err := f.Rooms.Event(ctx, id)
		if errors.Is(err, rsapi.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read state event %s: %w", id, err)
		}
		e, err := events.Parse(raw)
		if err != nil {
			return nil, err
		}
		add(e)
	}
	return out, nil
}
