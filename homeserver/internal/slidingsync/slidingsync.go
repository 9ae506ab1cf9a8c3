// Package slidingsync serves simplified sliding sync (MSC4186), the sync
// Element X and every matrix-rust-sdk client use:
// POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync.
//
// A client asks for lists of its rooms (sorted by their latest activity,
// bump_stamp, and windowed by ranges) and for rooms by id; the response
// carries, per room, only what this connection's client does not have
// yet. What a client has is kept per connection (user, device, conn_id)
// in memory, under the pos each response gives out; an unknown pos
// answers M_UNKNOWN_POS and the client starts over.
//
// Room content and the extensions' data (to-device, E2EE, account data,
// receipts, typing) come from syncv3.Parts: the same code as /sync.
package slidingsync

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	"github.com/matrix-gouv/homeserver/homeserver/internal/streams"
	"github.com/matrix-gouv/homeserver/homeserver/internal/syncv3"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// maxTimeout caps a long poll.
const maxTimeout = 5 * time.Minute

// Deps is what sliding sync needs.
type Deps struct {
	// Sync builds the rooms' parts and the extensions' data.
	V3       *syncv3.Handlers
	Rooms    rsapi.Reader
	Store    *storage.Store
	Notifier *streams.Notifier
	Log      *logrus.Entry
	// MaxRequestBytes bounds request bodies.
	MaxRequestBytes int64
}

// Handlers serves sliding sync.
type Handlers struct {
	Deps
	now   func() time.Time
	conns conns
	meta  metaCache
}

// New returns the sliding sync handlers.
func New(d Deps) *Handlers {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &Handlers{
		Deps:  d,
		now:   time.Now,
		conns: conns{instance: hex.EncodeToString(b[:]), m: map[connKey]*conn{}},
		meta:  metaCache{rooms: map[string]roomMeta{}},
	}
}

// Sweep drops the connections unused for a while; the component calls it
// now and then.
func (h *Handlers) Sweep() { h.conns.sweep(h.now()) }

// Sync serves POST …/org.matrix.simplified_msc3575/sync.
func (h *Handlers) Sync(r *http.Request) (any, error) {
	ctx := r.Context()
	dev := auth.DeviceFrom(ctx)
	q := r.URL.Query()
	var req request
	if err := httputil.DecodeJSON(r, h.MaxRequestBytes, &req); err != nil {
		return nil, err
	}
	if err := req.validate(); err != nil {
		return nil, err
	}
	var timeout time.Duration
	if t := q.Get("timeout"); t != "" {
		ms, err := strconv.ParseInt(t, 10, 64)
		if err != nil || ms < 0 {
			return nil, httputil.InvalidParam("timeout must be a non-negative integer")
		}
		timeout = min(time.Duration(ms)*time.Millisecond, maxTimeout)
	}
	switch p := q.Get("set_presence"); p {
	case "", "online", "offline", "unavailable":
		h.V3.TouchPresence(ctx, dev.UserID, p)
	default:
		return nil, httputil.InvalidParam("set_presence must be online, offline or unavailable")
	}
	key := connKey{dev.UserID, dev.DeviceID, req.ConnID}
	now := h.now()
	var c *conn
	var prev *connState
	if p := q.Get("pos"); p != "" {
		seq, ok := h.conns.parsePos(p)
		h.conns.mu.Lock()
		c = h.conns.m[key]
		h.conns.mu.Unlock()
		if ok && c != nil {
			c.mu.Lock()
			prev = c.stateLocked(seq)
			c.mu.Unlock()
		}
		if prev == nil {
			return nil, httputil.Errorf(httputil.CodeUnknownPos, "unknown position; start a new connection")
		}
	} else {
		// A request without pos starts the connection over.
		h.conns.drop(key)
		c = h.conns.get(key, now)
	}
	c.mu.Lock()
	c.lastUsed = now
	for room, cfg := range req.RoomSubscriptions {
		c.subs[room] = cfg
	}
	for _, room := range req.UnsubscribeRooms {
		delete(c.subs, room)
	}
	c.ext = mergeExtensions(c.ext, req.Extensions)
	subs := make(map[string]roomConfig, len(c.subs))
	for room, cfg := range c.subs {
		subs[room] = cfg
	}
	ext := c.ext
	c.mu.Unlock()
	// The to-device position is the request's own (since), or the one
	// this connection last gave.
	if req.Extensions.ToDevice != nil && req.Extensions.ToDevice.Since != "" {
		if _, err := strconv.ParseInt(req.Extensions.ToDevice.Since, 10, 64); err != nil {
			return nil, httputil.InvalidParam("extensions.to_device.since is not a position of this server")
		}
	}

	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		wake := h.Notifier.Wait(dev.UserID)
		upTo := h.Notifier.Current()
		b := &build{h: h, dev: dev, prev: prev, req: &req, subs: subs, ext: ext, upTo: upTo}
		resp, st, err := b.run(ctx)
		if err != nil {
			return nil, err
		}
		done := prev == nil || timeout == 0 || !resp.empty(b.countsChanged)
		if !done {
			select {
			case <-wake:
				continue
			case <-deadline.C:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		c.mu.Lock()
		seq := c.addLocked(st)
		c.lastUsed = h.now()
		c.mu.Unlock()
		resp.Pos = h.conns.pos(seq)
		resp.TxnID = req.TxnID
		return resp, nil
	}
}

// mergeExtensions applies a request's extension settings over the
// connection's: an extension the request does not mention keeps its
// settings.
func mergeExtensions(cur, req extensionsReq) extensionsReq {
	if req.ToDevice != nil {
		td := *req.ToDevice
		td.Since = ""
		if td.Enabled == nil && cur.ToDevice != nil {
			td.Enabled = cur.ToDevice.Enabled
		}
		cur.ToDevice = &td
	}
	if req.E2EE != nil && (req.E2EE.Enabled != nil || cur.E2EE == nil) {
		cur.E2EE = req.E2EE
	}
	for _, p := range []struct{ cur, req **scoped }{{&cur.AccountData, &req.AccountData}, {&cur.Receipts, &req.Receipts}, {&cur.Typing, &req.Typing}} {
		if *p.req == nil {
			continue
		}
		s := **p.req
		if *p.cur != nil {
			if s.Enabled == nil {
				s.Enabled = (*p.cur).Enabled
			}
			if s.Lists == nil {
				s.Lists = (*p.cur).Lists
			}
			if s.Rooms == nil {
				s.Rooms = (*p.cur).Rooms
			}
		}
		*p.cur = &s
	}
	return cur
}

// metaCache keeps what list filters need of rooms: a room's create type
// never changes and encryption is never turned off, so an entry holds
// until the room's latest event moves (and an encrypted one for good).
type metaCache struct {
	mu sync.Mutex
	// rooms is guarded by mu.
	rooms map[string]roomMeta
}

type roomMeta struct {
	roomType  string
	typed     bool
	encrypted bool
	// at is the room's latest rooms position when read.
	at int64
}

// maxMeta bounds the cache; past it, it starts empty again.
const maxMeta = 100000

// get returns roomID's metadata, read from the roomserver when the cached
// one may be stale.
func (c *metaCache) get(ctx context.Context, rooms rsapi.Reader, roomID string, latest int64) (roomMeta, error) {
	c.mu.Lock()
	m, ok := c.rooms[roomID]
	c.mu.Unlock()
	if ok && (m.encrypted || m.at >= latest) {
		return m, nil
	}
	m = roomMeta{at: latest}
	ev, err := rooms.CurrentStateEvent(ctx, roomID, rsapi.StateKey{Type: "m.room.create"})
	switch {
	case err == nil:
		var content struct {
			Type *string `json:"type"`
		}
		if e, perr := events.Parse(ev); perr == nil && json.Unmarshal(e.Content, &content) == nil && content.Type != nil {
			m.roomType, m.typed = *content.Type, true
		}
	case isNotFound(err):
	default:
		return roomMeta{}, err
	}
	_, err = rooms.CurrentStateEvent(ctx, roomID, rsapi.StateKey{Type: "m.room.encryption"})
	switch {
	case err == nil:
		m.encrypted = true
	case isNotFound(err):
	default:
		return roomMeta{}, err
	}
	c.mu.Lock()
	if len(c.rooms) >= maxMeta {
		c.rooms = map[string]roomMeta{}
	}
	c.rooms[roomID] = m
	c.mu.Unlock()
	return m, nil
}
