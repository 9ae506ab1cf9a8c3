package federation

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	fedapi "github.com/matrix-gouv/homeserver/federation/api"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// Backfill, outbound: history this server never had (what came before it
// joined, or what it missed), fetched when a client pages past the start
// of the room's timeline. The events come from /backfill, before the
// oldest event of the timeline; the state before those whose prev events
// are not here comes from /state_ids (and /state for the events this
// server does not have). Each is checked as any received PDU
// (signatures, hashes) before the roomserver places it.

// BackfillRoom implements fedapi.RemoteHistory.
func (c *Component) BackfillRoom(ctx context.Context, roomID string, limit int) (int, error) {
	oldest, err := c.rooms.Timeline(ctx, roomID, math.MinInt64, rsapi.Forward, 1)
	if err != nil {
		return 0, fmt.Errorf("oldest event of %s: %w", roomID, err)
	}
	if len(oldest) == 0 {
		return 0, nil
	}
	first, err := oldest[0].PDU()
	if err != nil {
		return 0, fmt.Errorf("oldest event of %s: %w", roomID, err)
	}
	if first.Type() == spec.MRoomCreate {
		return 0, nil // the whole history is here
	}
	if c.backfillMisses.recent(roomID, first.EventID(), c.now()) {
		return 0, nil
	}
	v, err := c.roomVersionOf(ctx, roomID)
	if err != nil {
		return 0, err
	}
	// A client waits for the answer: one request's time for all servers.
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	for _, server := range c.historyServers(ctx, roomID, first) {
		n, err := c.backfillFrom(ctx, v, roomID, server, first.EventID(), min(max(limit, 1), maxBackfill))
		if err != nil {
			c.log.WithError(err).WithFields(map[string]any{fieldRoomID: roomID, fieldServer: server}).Info("backfill failed")
			continue
		}
		if n > 0 {
			c.backfillMisses.forget(roomID)
			return n, nil
		}
	}
	c.backfillMisses.add(roomID, first.EventID(), c.now())
	return 0, nil
}

// backfillRetry is how long a room's history that no server gave (they
// failed, or had nothing this server may see) is not asked for again:
// each /messages reaching the start would otherwise wait on the servers.
const backfillRetry = time.Minute

// maxBackfillMisses bounds the rooms backfillMisses remembers.
const maxBackfillMisses = 10000

// backfillMisses remembers, by room, the oldest event from which a
// backfill last brought nothing, and when.
type backfillMisses struct {
	mu     sync.Mutex
	byRoom map[string]backfillMiss
}

type backfillMiss struct {
	from string
	at   time.Time
}

// recent reports whether a backfill of roomID from the event from brought
// nothing less than backfillRetry ago.
func (m *backfillMisses) recent(roomID, from string, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	miss, ok := m.byRoom[roomID]
	return ok && miss.from == from && now.Sub(miss.at) < backfillRetry
}

// add records that a backfill of roomID from the event from brought
// nothing at now.
func (m *backfillMisses) add(roomID, from string, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byRoom == nil || len(m.byRoom) >= maxBackfillMisses {
		m.byRoom = map[string]backfillMiss{}
	}
	m.byRoom[roomID] = backfillMiss{from: from, at: now}
}

// forget drops what is remembered of roomID.
func (m *backfillMisses) forget(roomID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.byRoom, roomID)
}

// historyServers lists the servers to ask for a room's history, most
// likely first: the one whose user sent the oldest event this server
// has, then the others in the room; never this one nor servers off the
// allow-list.
func (c *Component) historyServers(ctx context.Context, roomID string, oldest gomatrixserverlib.PDU) []spec.ServerName {
	var out []spec.ServerName
	add := func(s spec.ServerName) {
		if s != "" && s != c.serverName && c.cfg.ServerAllowed(string(s)) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if uid, err := spec.NewUserID(string(oldest.SenderID()), true); err == nil {
		add(uid.Domain())
	}
	servers, err := c.rooms.JoinedServers(ctx, roomID)
	if err != nil {
		c.log.WithError(err).WithField(fieldRoomID, roomID).Info("servers of a room to backfill from")
	}
	for _, s := range servers {
		add(spec.ServerName(s))
	}
	return out
}

// backfillFrom asks server for up to limit events up to and including
// from, and has the roomserver place those that pass the checks.
func (c *Component) backfillFrom(ctx context.Context, v gomatrixserverlib.IRoomVersion, roomID string, server spec.ServerName, from string, limit int) (int, error) {
	ctx = withRelay(ctx, server)
	txn, err := c.client.Backfill(ctx, c.serverName, server, roomID, limit, []string{from})
	if err != nil {
		return 0, fmt.Errorf("backfill from %s: %w", server, err)
	}
	req := rsapi.BackfillRequest{RoomID: roomID, StateBefore: map[string][]string{}}
	var pdus []gomatrixserverlib.PDU
	for _, raw := range txn.PDUs {
		pdu, err := c.checkPDU(ctx, v, raw)
		if err != nil || pdu.RoomID().String() != roomID {
			continue
		}
		pdus = append(pdus, pdu)
	}
	pdus = ancestors(from, pdus)
	inAnswer := map[string]bool{}
	for _, pdu := range pdus {
		inAnswer[pdu.EventID()] = true
		req.Events = append(req.Events, pdu.JSON())
	}
	for _, pdu := range pdus {
		need, err := c.lacksState(ctx, pdu, inAnswer)
		if err != nil {
			return 0, err
		}
		if !need {
			continue
		}
		ids, outliers, err := c.stateBefore(ctx, v, roomID, server, pdu.EventID())
		if err != nil {
			c.log.WithError(err).WithFields(map[string]any{fieldEventID: pdu.EventID(), fieldServer: server}).Info("state before a backfilled event")
			continue
		}
		req.StateBefore[pdu.EventID()] = ids
		req.Outliers = append(req.Outliers, outliers...)
	}
	return c.rooms.Backfill(ctx, req)
}

// dagEvent is what ancestors needs of an event.
type dagEvent interface {
	EventID() string
	PrevEventIDs() []string
}

// ancestors keeps of pdus those reached from the event from through
// prev_events (from included): a server answering /backfill gives the
// history before an event, not events of its own making beside it.
func ancestors[E dagEvent](from string, pdus []E) []E {
	byID := make(map[string]E, len(pdus))
	for _, p := range pdus {
		byID[p.EventID()] = p
	}
	reached := map[string]bool{}
	queue := []string{from}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		p, ok := byID[id]
		if !ok || reached[id] {
			continue
		}
		reached[id] = true
		queue = append(queue, p.PrevEventIDs()...)
	}
	out := pdus[:0]
	for _, p := range pdus {
		if reached[p.EventID()] {
			out = append(out, p)
		}
	}
	return out
}

// stateBefore asks server for the state before eventID: the ids, and the
// events among them and their auth chains that this server does not have
// (from /state, each checked).
func (c *Component) stateBefore(ctx context.Context, v gomatrixserverlib.IRoomVersion, roomID string, server spec.ServerName, eventID string) ([]string, []json.RawMessage, error) {
	ids, err := c.client.LookupStateIDs(ctx, c.serverName, server, roomID, eventID)
	if err != nil {
		return nil, nil, fmt.Errorf("state_ids at %s: %w", eventID, err)
	}
	unknown, err := c.rooms.UnknownEvents(ctx, append(slices.Clone(ids.StateEventIDs), ids.AuthEventIDs...))
	if err != nil {
		return nil, nil, err
	}
	if len(unknown) == 0 {
		return ids.StateEventIDs, nil, nil
	}
	st, err := c.client.LookupState(ctx, c.serverName, server, roomID, eventID, v.Version())
	if err != nil {
		return nil, nil, fmt.Errorf("state at %s: %w", eventID, err)
	}
	want := map[string]bool{}
	for _, id := range unknown {
		want[id] = true
	}
	var outliers []json.RawMessage
	for _, raws := range []gomatrixserverlib.EventJSONs{st.StateEvents, st.AuthEvents} {
		for _, raw := range raws {
			pdu, err := c.parsePDU(v, json.RawMessage(raw))
			if err != nil || !want[pdu.EventID()] || pdu.RoomID().String() != roomID {
				continue
			}
			want[pdu.EventID()] = false
			if c.checkSignatures(ctx, pdu) != nil {
				continue
			}
			outliers = append(outliers, pdu.JSON())
		}
	}
	return ids.StateEventIDs, outliers, nil
}

var _ fedapi.RemoteHistory = (*Component)(nil)
