package slidingsync

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/matrix-gouv/homeserver/homeserver/internal/streams"
	"github.com/matrix-gouv/homeserver/homeserver/internal/syncv3"
)

// Bounds on the connection state kept in memory. A client whose
// connection was dropped gets M_UNKNOWN_POS and starts over, which
// clients handle.
const (
	// maxConns bounds the connections kept; past it the least recently
	// used go.
	maxConns = 10000
	// connTTL drops a connection unused for that long.
	connTTL = 30 * time.Minute
	// keepStates is how many recent positions of a connection stay
	// usable: a client may retry with its previous pos, and a cancelled
	// long poll may race the request that replaced it.
	keepStates = 4
)

// connKey names a connection: one device may run several (Element X runs
// "room-list" and "encryption").
type connKey struct{ user, device, conn string }

// roomSent is what a connection's client has of a room.
type roomSent struct {
	// upTo is the rooms position the client has the room's timeline up
	// to.
	upTo int64
	// membership (and its rooms position) the room was sent with.
	membership string
	memberPos  int64
	// config is the roomConfig.key the room was sent with.
	config string
	// bump is the bump_stamp sent.
	bump int64
	// lazy are the members sent through $LAZY.
	lazy map[string]bool
	// counts are the unread counts sent.
	counts syncv3.Counts
}

// connState is what a connection's client had after one response: the
// state a request with that response's pos starts from. It is never
// changed once stored. Rooms are kept as layers: a state holds the rooms
// its response changed over the state it followed (base), and every
// maxDepth responses the layers are flattened, so that a response costs
// a copy of what it changed, not of every room the connection had.
type connState struct {
	seq   int64
	token streams.Token
	// rooms are the rooms this response changed (guarded by nothing: a
	// stored state is read only).
	rooms map[string]*roomSent
	base  *connState
	depth int
	// counts are the lists' counts sent.
	counts map[string]int
}

// maxDepth bounds the layers a room lookup walks.
const maxDepth = 8

// newState returns the state that follows prev (nil: a new connection).
func newState(prev *connState) *connState {
	st := &connState{rooms: map[string]*roomSent{}, counts: map[string]int{}}
	switch {
	case prev == nil:
	case prev.depth < maxDepth:
		st.base, st.depth = prev, prev.depth+1
	default:
		var chain []*connState
		for s := prev; s != nil; s = s.base {
			chain = append(chain, s)
		}
		for i := len(chain) - 1; i >= 0; i-- {
			for id, r := range chain[i].rooms {
				st.rooms[id] = r
			}
		}
	}
	return st
}

// room returns what the client has of a room, nil when it never had it.
func (s *connState) room(id string) *roomSent {
	for c := s; c != nil; c = c.base {
		if r, ok := c.rooms[id]; ok {
			return r
		}
	}
	return nil
}

// conn is one connection's recent states and sticky parameters.
type conn struct {
	mu       sync.Mutex
	lastUsed time.Time
	nextSeq  int64
	states   []*connState
	// subs are the room subscriptions (sticky: matrix-js-sdk sends them
	// once), ext the extensions' configuration.
	subs map[string]roomConfig
	ext  extensionsReq
}

// conns holds every connection's state.
type conns struct {
	// instance starts every pos, so that a pos from before a restart is
	// unknown rather than mistaken for a new one.
	instance string

	mu sync.Mutex
	// m holds the connections (guarded by mu).
	m map[connKey]*conn
}

// get returns the connection, created when absent; a full table first
// drops expired and least recently used connections.
func (cs *conns) get(k connKey, now time.Time) *conn {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if c, ok := cs.m[k]; ok {
		return c
	}
	if len(cs.m) >= maxConns {
		cs.evictLocked(now)
	}
	c := &conn{lastUsed: now, subs: map[string]roomConfig{}}
	cs.m[k] = c
	return c
}

// drop forgets a connection (a request without pos starts it over).
func (cs *conns) drop(k connKey) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	delete(cs.m, k)
}

// evictLocked drops expired connections, then the least recently used
// ones until a tenth of the table is free.
func (cs *conns) evictLocked(now time.Time) {
	type aged struct {
		k connKey
		t time.Time
	}
	var all []aged
	for k, c := range cs.m {
		c.mu.Lock()
		t := c.lastUsed
		c.mu.Unlock()
		if now.Sub(t) > connTTL {
			delete(cs.m, k)
			continue
		}
		all = append(all, aged{k, t})
	}
	for len(cs.m) > maxConns*9/10 && len(all) > 0 {
		oldest := 0
		for i, a := range all {
			if a.t.Before(all[oldest].t) {
				oldest = i
			}
		}
		delete(cs.m, all[oldest].k)
		all[oldest] = all[len(all)-1]
		all = all[:len(all)-1]
	}
}

// sweep drops the connections unused for connTTL.
func (cs *conns) sweep(now time.Time) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for k, c := range cs.m {
		c.mu.Lock()
		expired := now.Sub(c.lastUsed) > connTTL
		c.mu.Unlock()
		if expired {
			delete(cs.m, k)
		}
	}
}

// pos formats a position of this process.
func (cs *conns) pos(seq int64) string { return cs.instance + "_" + strconv.FormatInt(seq, 10) }

// parsePos reads a pos of this process; ok is false for any other.
func (cs *conns) parsePos(s string) (int64, bool) {
	rest, found := strings.CutPrefix(s, cs.instance+"_")
	if !found {
		return 0, false
	}
	seq, err := strconv.ParseInt(rest, 10, 64)
	return seq, err == nil && seq > 0
}

// state returns the connection's state at seq (nil when unknown).
func (c *conn) stateLocked(seq int64) *connState {
	for _, s := range c.states {
		if s.seq == seq {
			return s
		}
	}
	return nil
}

// addLocked stores a new state and returns its seq.
func (c *conn) addLocked(s *connState) int64 {
	c.nextSeq++
	s.seq = c.nextSeq
	c.states = append(c.states, s)
	if len(c.states) > keepStates {
		c.states = append(c.states[:0:0], c.states[len(c.states)-keepStates:]...)
	}
	return s.seq
}
