package profile

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// Propagation of display name and avatar changes into member events.
//
//	PUT /profile ──► profile_fields (committed) ──► Changed(user)
//	                                                    │ pending set
//	                     workers (at most `workers`) ◄──┘
//	                        └─ for each joined room: read the member event,
//	                           send it again with the profile's name and
//	                           avatar (one send per gap, per worker)
//
// A user changed again while their rooms are being updated is queued once
// more, and every worker reads the profile when it starts, so the last
// change always wins and a burst of changes costs one pass. The work is in
// memory: a crash in the middle leaves the rooms not yet done with the old
// name until the next change.

// Rooms is what propagation asks of the roomserver.
type Rooms interface {
	RoomsOf(ctx context.Context, userID, membership string) ([]string, error)
	CurrentStateEvent(ctx context.Context, roomID string, key rsapi.StateKey) (rsapi.Event, error)
	Send(ctx context.Context, roomID string, ev rsapi.ProtoEvent) (rsapi.Event, error)
}

// Propagator sends the member events that follow profile changes.
type Propagator struct {
	rooms   Rooms
	store   Store
	log     *logrus.Entry
	workers int
	// gap is the pause between two sends of one worker: a user in
	// hundreds of rooms must not flood the roomserver.
	gap time.Duration

	// mu guards queue, queued, running, again and the lifecycle fields.
	mu      sync.Mutex
	queue   []string
	queued  map[string]bool
	running map[string]bool
	// again marks users changed while their pass runs.
	again  map[string]bool
	active int
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewPropagator returns a propagator running at most workers passes at
// once (0: 2), each pausing gap between sends (0: 20 ms).
func NewPropagator(rooms Rooms, store Store, log *logrus.Entry, workers int, gap time.Duration) *Propagator {
	if workers <= 0 {
		workers = 2
	}
	if gap <= 0 {
		gap = 20 * time.Millisecond
	}
	return &Propagator{rooms: rooms, store: store, log: log, workers: workers, gap: gap,
		queued: map[string]bool{}, running: map[string]bool{}, again: map[string]bool{}}
}

// Start lets changes be propagated until Stop.
func (p *Propagator) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ctx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	return nil
}

// Stop ends the passes under way (at their next send) and waits for them.
func (p *Propagator) Stop(ctx context.Context) error {
	p.mu.Lock()
	if p.cancel != nil {
		p.cancel()
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Changed queues userID's rooms for an update to the current profile.
func (p *Propagator) Changed(userID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx == nil || p.ctx.Err() != nil {
		return
	}
	switch {
	case p.running[userID]:
		p.again[userID] = true
		return
	case p.queued[userID]:
		return
	}
	p.queued[userID] = true
	p.queue = append(p.queue, userID)
	if p.active < p.workers {
		p.active++
		p.wg.Add(1)
		go p.work(p.ctx)
	}
}

// work runs passes until the queue is empty.
func (p *Propagator) work(ctx context.Context) {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		if len(p.queue) == 0 || ctx.Err() != nil {
			p.active--
			p.mu.Unlock()
			return
		}
		userID := p.queue[0]
		p.queue = p.queue[1:]
		delete(p.queued, userID)
		p.running[userID] = true
		p.mu.Unlock()

		if err := p.pass(ctx, userID); err != nil && ctx.Err() == nil {
			p.log.WithError(err).WithField("user_id", userID).Warn("update member events after a profile change")
		}

		p.mu.Lock()
		delete(p.running, userID)
		if p.again[userID] {
			delete(p.again, userID)
			p.queued[userID] = true
			p.queue = append(p.queue, userID)
		}
		p.mu.Unlock()
	}
}

// pass sends userID's member event again, with the current profile, in
// every room they are joined to where it differs. A room that refuses
// (a power level forbids it, the room is gone) does not stop the others.
func (p *Propagator) pass(ctx context.Context, userID string) error {
	fields, err := p.store.ProfileFields(ctx, userID)
	if err != nil {
		return err
	}
	name, avatar := stringField(fields[storage.ProfileDisplayName]), stringField(fields[storage.ProfileAvatarURL])
	rooms, err := p.rooms.RoomsOf(ctx, userID, "join")
	if err != nil {
		return err
	}
	var firstErr error
	for _, roomID := range rooms {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		sent, err := p.update(ctx, roomID, userID, name, avatar)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if sent {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(p.gap):
			}
		}
	}
	return firstErr
}

// update sends one room's member event when its name or avatar differ.
func (p *Propagator) update(ctx context.Context, roomID, userID string, name, avatar *string) (bool, error) {
	cur, err := p.rooms.CurrentStateEvent(ctx, roomID, rsapi.StateKey{Type: "m.room.member", StateKey: userID})
	if errors.Is(err, rsapi.ErrNotFound) || errors.Is(err, rsapi.ErrRoomNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var pdu struct {
		Content map[string]any `json:"content"`
	}
	if err := json.Unmarshal(cur.JSON, &pdu); err != nil || pdu.Content == nil {
		return false, nil
	}
	if pdu.Content["membership"] != "join" {
		return false, nil
	}
	changed := setOrDelete(pdu.Content, "displayname", name)
	changed = setOrDelete(pdu.Content, "avatar_url", avatar) || changed
	if !changed {
		return false, nil
	}
	// A profile change is not a reason given for a membership change.
	delete(pdu.Content, "reason")
	raw, err := json.Marshal(pdu.Content)
	if err != nil {
		return false, err
	}
	key := userID
	if _, err := p.rooms.Send(ctx, roomID, rsapi.ProtoEvent{Type: "m.room.member", StateKey: &key, Sender: userID, Content: raw}); err != nil {
		return false, err
	}
	return true, nil
}

// setOrDelete sets content[key] to *v (deletes it when v is nil) and
// reports whether that changed anything.
func setOrDelete(content map[string]any, key string, v *string) bool {
	old, had := content[key]
	if v == nil {
		delete(content, key)
		return had
	}
	content[key] = *v
	return !had || old != *v
}
