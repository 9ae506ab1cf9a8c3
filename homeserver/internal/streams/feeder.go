package streams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
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

// EventProcessor evaluates push rules: in memory before clients are
// woken (their unread counts take the actions from Pending), written
// afterwards with the rooms stream.
type EventProcessor interface {
	Evaluate(ctx context.Context, outs []rsapi.OutputEvent) ([]storage.PushAction, error)
	Record(ctx context.Context, actions []storage.PushAction) error
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
	// Processor, when set, evaluates push rules on every event; Pending
	// holds its actions until they are written.
	Processor EventProcessor
	Pending   *PendingActions
	Log       *logrus.Entry
	// WriteLinger is how long an event clients were already woken for
	// may wait to be written with the next ones (0: not at all). Nobody
	// waits for that write; on PostgreSQL each commit is a WAL flush,
	// which the roomserver's commits on the send path queue behind, so
	// under a steady trickle one commit per WriteLinger is better than
	// one per event. On SQLite, whose writes share commits anyway, a
	// larger write only lengthens the commit the sends share.
	WriteLinger time.Duration

	stop func()

	// mu guards last, seq and early: the feeder's consumer and the
	// roomserver's in-process listener (OutputPublished) both give out
	// positions.
	mu sync.Mutex
	// last is the last rooms position given out.
	last int64
	// seq is the stream sequence of the last output event given a
	// position; 0 until the consumer delivers one.
	seq uint64
	// early are the events positioned by OutputPublished and not yet
	// written, by event id.
	early map[string]earlyEvent
}

// earlyEvent is an event clients were woken for by OutputPublished, to be
// written when the consumer delivers it.
type earlyEvent struct {
	append  storage.SyncAppend
	actions []storage.PushAction
}

// Start attaches the feeder's durable consumer; ctx bounds the start
// only, Stop ends the consuming.
func (f *Feeder) Start(ctx context.Context) error {
	f.mu.Lock()
	f.last = f.Notifier.Current().Rooms
	f.early = map[string]earlyEvent{}
	f.mu.Unlock()
	// The messages an earlier run woke clients with but did not write
	// come back first and in order, so that they get the same positions.
	// Events OutputPublished woke clients for wait up to WriteLinger to
	// be written together: one commit for several of them.
	stop, err := f.Bus.ConsumeBatch(context.WithoutCancel(ctx), bus.StreamRoomserverOutput, feederDurable, "", f.handle, feederBatch,
		bus.WithReplayPendingFirst(), bus.WithBatchLingerWhile(f.WriteLinger, f.woken))
	if err != nil {
		return fmt.Errorf("consume roomserver output: %w", err)
	}
	f.stop = stop
	return nil
}

// PostgresWriteLinger is the Feeder's WriteLinger on PostgreSQL.
const PostgresWriteLinger = 50 * time.Millisecond

// woken reports whether OutputPublished woke clients for the event of m:
// its write is not awaited.
func (f *Feeder) woken(m bus.Message) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.early[m.ID]
	return ok
}

// Stop detaches it, once the event in hand is done.
func (f *Feeder) Stop() {
	if f.stop != nil {
		f.stop()
	}
	f.mu.Lock()
	f.seq = 0
	f.mu.Unlock()
}

// earlyTimeout bounds the reads OutputPublished makes (member events a
// state resolution brought back, push rules).
const earlyTimeout = 5 * time.Second

// OutputPublished implements rsapi.OutputListener: with the roomserver in
// this process, an event wakes clients as soon as the bus stored it,
// without waiting for the bus to deliver it to the feeder's consumer
// (which then only writes it). It takes the event only when it directly
// follows, in the stream, the last one given a position, so that
// positions keep the stream's order whichever path gave them.
func (f *Feeder) OutputPublished(seq uint64, output json.RawMessage) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seq == 0 || seq != f.seq+1 {
		return
	}
	var out rsapi.OutputEvent
	if err := json.Unmarshal(output, &out); err != nil {
		return // the consumer drops it
	}
	ctx, cancel := context.WithTimeout(context.Background(), earlyTimeout)
	defer cancel()
	p, ok, err := f.prepare(ctx, out)
	if err != nil {
		return // the consumer retries it
	}
	f.seq = seq
	if !ok {
		return
	}
	f.last++
	p.append.SyncPos = f.last
	actions := f.evaluate(ctx, []prepared{p})
	f.wake(p)
	f.early[p.append.EventID] = earlyEvent{append: p.append, actions: actions}
}

// prepared is an output event ready to be given a position.
type prepared struct {
	out rsapi.OutputEvent
	// redacts is the event it redacts, "" for none.
	redacts string
	append  storage.SyncAppend
}

// prepare reads what the rooms stream needs of out; ok is false for an
// event the stream does not take (soft-failed, unparsable).
func (f *Feeder) prepare(ctx context.Context, out rsapi.OutputEvent) (p prepared, ok bool, err error) {
	if out.SoftFailed {
		// Soft-failed events are federation's business only.
		return prepared{}, false, nil
	}
	ev, err := events.Parse(out.Event)
	if err != nil {
		f.Log.WithError(err).WithField("event_id", out.Event.EventID).Error("dropping unparsable roomserver output")
		return prepared{}, false, nil
	}
	changes, err := f.membershipChanges(ctx, ev, out.StateAdded)
	if err != nil {
		return prepared{}, false, err
	}
	a := storage.SyncAppend{RoomID: ev.RoomID, EventID: ev.EventID, StreamPos: ev.StreamPos,
		Bump: BumpTypes[ev.Type], Changes: changes}
	if t := out.Txn; t != nil {
		a.Txn = &storage.TxnKey{UserID: ev.Sender, DeviceID: t.DeviceID, Scope: t.Scope, TxnID: t.ID}
	}
	return prepared{out: out, redacts: ev.Redacts, append: a}, true, nil
}

// roomRanges returns the roomserver positions appends span per room.
func roomRanges(appends []storage.SyncAppend) map[string]RoomRange {
	ranges := map[string]RoomRange{}
	for _, a := range appends {
		r, ok := ranges[a.RoomID]
		if !ok {
			r.First = a.StreamPos
		}
		r.Last = a.StreamPos
		ranges[a.RoomID] = r
	}
	return ranges
}

// evaluate runs the push rules on ps (positioned) and holds their actions
// as pending until written.
func (f *Feeder) evaluate(ctx context.Context, ps []prepared) []storage.PushAction {
	if f.Processor == nil || len(ps) == 0 {
		return nil
	}
	outs := make([]rsapi.OutputEvent, len(ps))
	appends := make([]storage.SyncAppend, len(ps))
	for i, p := range ps {
		outs[i], appends[i] = p.out, p.append
	}
	actions, err := f.Processor.Evaluate(ctx, outs)
	if err != nil {
		// Counts miss these events; delivery must go on.
		f.Log.WithError(err).WithField("events", len(outs)).Warn("evaluate push rules")
	}
	f.Pending.Add(actions, roomRanges(appends))
	return actions
}

// wake tells the notifier of p, positioned: clients see it from memory.
func (f *Feeder) wake(p prepared) {
	a := p.append
	if parent := relatesTo(p.out); parent != "" {
		f.Notifier.OnRelation(a.RoomID, parent)
	}
	f.Notifier.KeepEvent(p.out.Event, p.redacts, a.Txn)
	f.Notifier.OnRoomEvent(storage.SyncEvent{SyncPos: a.SyncPos, RoomID: a.RoomID, EventID: a.EventID, StreamPos: a.StreamPos, Bump: a.Bump}, a.Changes)
}

// handle gives output events their rooms positions, wakes the clients
// they concern, then writes them (and only then are they acknowledged).
// Events OutputPublished already positioned and woke for are only
// written.
//
// Clients see an event before it is written, so that delivery does not
// wait for a disk flush. That is safe because positions are
// deterministic: they follow the stream's order, and after a crash the
// events not acknowledged come back first and in the same order
// (bus.WithReplayPendingFirst); those not written get the same positions
// again, from the last written one, and an event written but not
// acknowledged keeps the position it was written with.
func (f *Feeder) handle(ctx context.Context, msgs []bus.Message) error {
	appends, actions, err := f.position(ctx, msgs)
	if err != nil || len(appends) == 0 {
		return err
	}
	// From here the positions are given out: the writes must happen,
	// whatever it takes, before anything after them; only stopping ends
	// the retries (the messages then come back at the next start and get
	// the same positions). The push actions and the rooms stream are
	// written side by side (one commit on SQLite, whose writes group).
	pushDone := make(chan error, 1)
	go func() {
		if len(actions) == 0 {
			pushDone <- nil
			return
		}
		pushDone <- f.retry(ctx, "record push actions", func() error { return f.Processor.Record(ctx, actions) })
	}()
	err = f.retry(ctx, "write the rooms stream", func() error { return f.Store.AppendSyncEvents(ctx, appends) })
	if pushErr := <-pushDone; err == nil {
		err = pushErr
	}
	if err != nil {
		return err
	}
	if f.Processor != nil {
		f.Pending.Written(roomRanges(appends))
	}
	f.mu.Lock()
	for _, a := range appends {
		delete(f.early, a.EventID)
	}
	f.mu.Unlock()
	f.Notifier.Persisted(appends[len(appends)-1].SyncPos)
	return nil
}

// position gives the batch's events their positions (those
// OutputPublished gave keep theirs, those written before a crash too),
// wakes clients for the new ones, and returns what to write.
func (f *Feeder) position(ctx context.Context, msgs []bus.Message) ([]storage.SyncAppend, []storage.PushAction, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var appends []storage.SyncAppend
	var actions []storage.PushAction
	// fresh are the events positioned here, at their index in appends.
	var fresh []prepared
	var freshAt []int
	redelivered := false
	var lastSeq uint64
	for _, msg := range msgs {
		lastSeq = max(lastSeq, msg.Sequence)
		var out rsapi.OutputEvent
		if err := msg.Decode(&out); err != nil {
			// One bad message must not hold back the others.
			f.Log.WithError(err).Error("dropping undecodable roomserver output")
			continue
		}
		if e, ok := f.early[out.Event.EventID]; ok {
			appends = append(appends, e.append)
			actions = append(actions, e.actions...)
			continue
		}
		p, ok, err := f.prepare(ctx, out)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			continue
		}
		redelivered = redelivered || msg.Delivery > 1
		fresh, freshAt = append(fresh, p), append(freshAt, len(appends))
		appends = append(appends, p.append)
	}
	var written map[string]int64
	if redelivered {
		ids := make([]string, len(fresh))
		for i, p := range fresh {
			ids[i] = p.append.EventID
		}
		var err error
		if written, err = f.Store.SyncPositions(ctx, ids); err != nil {
			return nil, nil, err
		}
	}
	for i := range fresh {
		a := &fresh[i].append
		if pos, ok := written[a.EventID]; ok {
			a.SyncPos = pos
		} else {
			f.last++
			a.SyncPos = f.last
		}
		appends[freshAt[i]] = *a
	}
	f.seq = max(f.seq, lastSeq)
	actions = append(actions, f.evaluate(ctx, fresh)...)
	for _, p := range fresh {
		f.wake(p)
	}
	return appends, actions, nil
}

// retry runs write until it succeeds or ctx ends, with a growing pause;
// a panic counts as a failure.
func (f *Feeder) retry(ctx context.Context, what string, write func() error) error {
	for attempt := 0; ; attempt++ {
		err := func() (err error) {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("panic: %v", r)
				}
			}()
			return write()
		}()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f.Log.WithError(err).WithField("attempt", attempt+1).Warn(what + "; retrying")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(time.Duration(attempt+1)*100*time.Millisecond, 5*time.Second)):
		}
	}
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

// BumpTypes are the event types that count as activity in a room: sliding
// sync sorts rooms by their latest such event (bump_stamp). They are
// Synapse's, so that clients order rooms alike on either server: joins,
// name or topic changes do not move a room up.
var BumpTypes = map[string]bool{
	"m.room.create":    true,
	"m.room.message":   true,
	"m.room.encrypted": true,
	"m.sticker":        true,
	"m.call.invite":    true,
	"m.poll.start":     true,
	"m.beacon_info":    true,
}

// relatesTo returns the event out's event relates to (m.relates_to), ""
// for none.
func relatesTo(out rsapi.OutputEvent) string {
	var pdu struct {
		Content struct {
			RelatesTo struct {
				EventID string `json:"event_id"`
			} `json:"m.relates_to"`
		} `json:"content"`
	}
	_ = json.Unmarshal(out.Event.JSON, &pdu)
	return pdu.Content.RelatesTo.EventID
}
