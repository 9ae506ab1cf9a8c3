package streams

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	ProcessEvents(ctx context.Context, outs []rsapi.OutputEvent) error
}

// FeederStore is what the feeder writes.
type FeederStore interface {
	AppendSyncEvents(ctx context.Context, evs []storage.SyncAppend) error
	SyncPositions(ctx context.Context, eventIDs []string) (map[string]int64, error)
}

// feederBatch bounds the events appended in one transaction: under load,
// one commit (and one disk flush) for many events.
const feederBatch = 256

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
	// last is the last rooms position given out.
	last int64
}

// Start attaches the feeder's durable consumer; ctx bounds the start
// only, Stop ends the consuming.
func (f *Feeder) Start(ctx context.Context) error {
	f.last = f.Notifier.Current().Rooms
	stop, err := f.Bus.ConsumeBatch(context.WithoutCancel(ctx), bus.StreamRoomserverOutput, feederDurable, "", f.handle, feederBatch)
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

// handle gives output events their rooms positions, wakes the clients
// they concern, then writes them (and only then are they acknowledged).
// Soft-failed events are federation's business only.
//
// Clients see an event before it is written, so that delivery does not
// wait for a disk flush. That is safe because positions are
// deterministic: they follow the stream's order, and after a crash the
// events not written come back in the same order, from the last written
// position, and get the same positions again; an event written but not
// acknowledged keeps the position it was written with.
func (f *Feeder) handle(ctx context.Context, msgs []bus.Message) error {
	var outs []rsapi.OutputEvent
	var appends []storage.SyncAppend
	redelivered := false
	for _, msg := range msgs {
		var out rsapi.OutputEvent
		if err := msg.Decode(&out); err != nil {
			// One bad message must not hold back the others.
			f.Log.WithError(err).Error("dropping undecodable roomserver output")
			continue
		}
		if out.SoftFailed {
			continue
		}
		ev, err := events.Parse(out.Event)
		if err != nil {
			f.Log.WithError(err).WithField("event_id", out.Event.EventID).Error("dropping unparsable roomserver output")
			continue
		}
		changes, err := f.membershipChanges(ctx, ev, out.StateAdded)
		if err != nil {
			return err
		}
		redelivered = redelivered || msg.Delivery > 1
		outs = append(outs, out)
		appends = append(appends, storage.SyncAppend{RoomID: ev.RoomID, EventID: ev.EventID, StreamPos: ev.StreamPos, Changes: changes})
	}
	if len(appends) == 0 {
		return nil
	}
	var written map[string]int64
	if redelivered {
		ids := make([]string, len(appends))
		for i, a := range appends {
			ids[i] = a.EventID
		}
		var err error
		if written, err = f.Store.SyncPositions(ctx, ids); err != nil {
			return err
		}
	}
	for i := range appends {
		if pos, ok := written[appends[i].EventID]; ok {
			appends[i].SyncPos = pos
			continue
		}
		f.last++
		appends[i].SyncPos = f.last
	}
	if f.Processor != nil {
		// Push actions first, in one commit for the batch, so that the
		// unread counts of the syncs woken below already count them.
		if err := f.Processor.ProcessEvents(ctx, outs); err != nil {
			// Counts are lost for these events; delivery must go on.
			f.Log.WithError(err).WithField("events", len(outs)).Warn("evaluate push rules")
		}
	}
	for _, a := range appends {
		f.Notifier.OnRoomEvent(storage.SyncEvent{SyncPos: a.SyncPos, RoomID: a.RoomID, EventID: a.EventID, StreamPos: a.StreamPos}, a.Changes)
	}
	// The positions are given out: the write must happen, whatever it
	// takes, before anything after it.
	for attempt := 0; ; attempt++ {
		err := f.Store.AppendSyncEvents(ctx, appends)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			// Stopping: the messages come back at the next start and get
			// the same positions.
			return err
		}
		f.Log.WithError(err).Warn("write the rooms stream; retrying")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(time.Duration(attempt+1)*100*time.Millisecond, 5*time.Second)):
		}
	}
	f.Notifier.Persisted(appends[len(appends)-1].SyncPos)
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
