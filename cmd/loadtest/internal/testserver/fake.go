package testserver

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fake is a minimal homeserver held in memory: the subset of the
// client-server API the load tool's scenarios use (registration, login,
// rooms, /sync long polls, keys, to-device messages, media), with no
// auth rules, no persistence and no federation. It lets the scenarios'
// plumbing be tested before the real server implements those endpoints;
// it says nothing of any real server's performance.
type Fake struct {
	// URL is its base URL.
	URL string

	// mu guards every field below.
	mu sync.Mutex
	// changed is closed and replaced at every write, waking long polls.
	changed chan struct{}
	// pos is the stream position of the last write.
	pos      int
	tokens   map[string]fakeDevice
	nextID   int
	rooms    map[string]map[string]bool // room → joined users
	events   []fakeEvent
	txns     map[string]bool
	toDevice map[fakeDevice][]fakeEvent
	devKeys  map[string]map[string]json.RawMessage // user → device → keys
	otks     map[string]map[string]map[string]any  // user → device → key id → key
	media    map[string][]byte
}

type fakeDevice struct{ user, device string }

type fakeEvent struct {
	pos  int
	room string
	ev   map[string]any
}

// StartFake starts a Fake, stopped when the test ends.
func StartFake(t testing.TB) *Fake {
	f := &Fake{changed: make(chan struct{}), tokens: map[string]fakeDevice{}, rooms: map[string]map[string]bool{},
		txns: map[string]bool{}, toDevice: map[fakeDevice][]fakeEvent{}, devKeys: map[string]map[string]json.RawMessage{},
		otks: map[string]map[string]map[string]any{}, media: map[string][]byte{}}
	mux := http.NewServeMux()
	c := "/_matrix/client/v3/"
	for pattern, h := range map[string]func(fakeDevice, *http.Request) (any, int){
		"POST " + c + "createRoom":                         f.createRoom,
		"POST " + c + "join/{room}":                        f.join,
		"POST " + c + "rooms/{room}/leave":                 f.leave,
		"PUT " + c + "rooms/{room}/send/{type}/{txn}":      f.send,
		"GET " + c + "rooms/{room}/joined_members":         f.members,
		"GET " + c + "sync":                                f.sync,
		"POST " + c + "keys/upload":                        f.keysUpload,
		"POST " + c + "keys/query":                         f.keysQuery,
		"POST " + c + "keys/claim":                         f.keysClaim,
		"PUT " + c + "sendToDevice/{type}/{txn}":           f.sendToDevice,
		"POST /_matrix/media/v3/upload":                    f.upload,
		"GET /_matrix/client/v1/media/download/{srv}/{id}": f.download,
	} {
		mux.HandleFunc(pattern, f.authed(h))
	}
	mux.HandleFunc("GET /_matrix/client/versions", func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string]any{"versions": []string{"v1.11"}}, 200)
	})
	mux.HandleFunc("GET /_synapse/admin/v1/register", func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string]any{"nonce": "n"}, 200)
	})
	mux.HandleFunc("POST /_synapse/admin/v1/register", func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string]any{"user_id": "@x:fake"}, 200)
	})
	mux.HandleFunc("POST "+c+"login", f.login)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string]any{"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}, 404)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

func reply(w http.ResponseWriter, body any, status int) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func (f *Fake) authed(h func(fakeDevice, *http.Request) (any, int)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		d, ok := f.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		f.mu.Unlock()
		if !ok {
			reply(w, map[string]any{"errcode": "M_UNKNOWN_TOKEN"}, 401)
			return
		}
		body, status := h(d, r)
		if raw, ok := body.([]byte); ok {
			w.WriteHeader(status)
			_, _ = w.Write(raw)
			return
		}
		reply(w, body, status)
	}
}

// writeLocked advances the stream and wakes the long polls.
func (f *Fake) writeLocked() int {
	f.pos++
	close(f.changed)
	f.changed = make(chan struct{})
	return f.pos
}

func (f *Fake) login(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Identifier struct{ User string } `json:"identifier"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	d := fakeDevice{user: "@" + req.Identifier.User + ":fake", device: fmt.Sprintf("DEV%d", f.nextID)}
	token := fmt.Sprintf("tok%d", f.nextID)
	f.tokens[token] = d
	reply(w, map[string]any{"user_id": d.user, "device_id": d.device, "access_token": token}, 200)
}

func decode(r *http.Request, v any) { _ = json.NewDecoder(r.Body).Decode(v) }

func (f *Fake) addEventLocked(room, typ, sender string, content any) {
	pos := f.writeLocked()
	f.events = append(f.events, fakeEvent{pos: pos, room: room, ev: map[string]any{
		"type": typ, "sender": sender, "content": content, "event_id": fmt.Sprintf("$%d", pos),
	}})
}

func (f *Fake) createRoom(d fakeDevice, r *http.Request) (any, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	room := fmt.Sprintf("!r%d:fake", f.nextID)
	f.rooms[room] = map[string]bool{d.user: true}
	f.addEventLocked(room, "m.room.member", d.user, map[string]any{"membership": "join"})
	return map[string]any{"room_id": room}, 200
}

func (f *Fake) setMembership(d fakeDevice, r *http.Request, join bool) (any, int) {
	room := r.PathValue("room")
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.rooms[room]
	if !ok {
		return map[string]any{"errcode": "M_NOT_FOUND"}, 404
	}
	m[d.user] = join
	membership := map[bool]string{true: "join", false: "leave"}[join]
	f.addEventLocked(room, "m.room.member", d.user, map[string]any{"membership": membership})
	return map[string]any{"room_id": room}, 200
}

func (f *Fake) join(d fakeDevice, r *http.Request) (any, int)  { return f.setMembership(d, r, true) }
func (f *Fake) leave(d fakeDevice, r *http.Request) (any, int) { return f.setMembership(d, r, false) }

func (f *Fake) send(d fakeDevice, r *http.Request) (any, int) {
	var content map[string]any
	decode(r, &content)
	room := r.PathValue("room")
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.rooms[room][d.user] {
		return map[string]any{"errcode": "M_FORBIDDEN"}, 403
	}
	key := d.device + "|" + r.PathValue("txn")
	if !f.txns[key] {
		f.txns[key] = true
		f.addEventLocked(room, r.PathValue("type"), d.user, content)
	}
	return map[string]any{"event_id": fmt.Sprintf("$%d", f.pos)}, 200
}

func (f *Fake) members(d fakeDevice, r *http.Request) (any, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	joined := map[string]any{}
	for u, in := range f.rooms[r.PathValue("room")] {
		if in {
			joined[u] = map[string]any{}
		}
	}
	return map[string]any{"joined": joined}, 200
}

// sync answers what happened after since in the user's rooms and to its
// device, waiting up to timeout for something to happen.
func (f *Fake) sync(d fakeDevice, r *http.Request) (any, int) {
	since, _ := strconv.Atoi(r.URL.Query().Get("since"))
	timeout, _ := strconv.Atoi(r.URL.Query().Get("timeout"))
	deadline := time.Now().Add(time.Duration(timeout) * time.Millisecond)
	for {
		f.mu.Lock()
		rooms := map[string]any{}
		for _, e := range f.events {
			if e.pos <= since || !f.rooms[e.room][d.user] {
				continue
			}
			room, _ := rooms[e.room].(map[string]any)
			if room == nil {
				room = map[string]any{"timeline": map[string]any{"events": []any{}, "limited": false}}
				rooms[e.room] = room
			}
			tl := room["timeline"].(map[string]any)
			tl["events"] = append(tl["events"].([]any), e.ev)
		}
		// To-device messages up to since were delivered: drop them.
		var pending, toDevice []any
		kept := f.toDevice[d][:0]
		for _, e := range f.toDevice[d] {
			if e.pos > since {
				kept = append(kept, e)
				pending = append(pending, e.ev)
			}
		}
		f.toDevice[d] = kept
		toDevice = pending
		pos, changed := f.pos, f.changed
		f.mu.Unlock()
		if len(rooms) > 0 || len(toDevice) > 0 || since == 0 || !time.Now().Before(deadline) {
			return map[string]any{"next_batch": strconv.Itoa(pos), "rooms": map[string]any{"join": rooms},
				"to_device": map[string]any{"events": toDevice}}, 200
		}
		select {
		case <-changed:
		case <-time.After(time.Until(deadline)):
		case <-r.Context().Done():
			return nil, 499
		}
	}
}

func (f *Fake) keysUpload(d fakeDevice, r *http.Request) (any, int) {
	var req struct {
		DeviceKeys  json.RawMessage `json:"device_keys"`
		OneTimeKeys map[string]any  `json:"one_time_keys"`
	}
	decode(r, &req)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.devKeys[d.user] == nil {
		f.devKeys[d.user], f.otks[d.user] = map[string]json.RawMessage{}, map[string]map[string]any{}
	}
	if len(req.DeviceKeys) > 0 {
		f.devKeys[d.user][d.device] = req.DeviceKeys
	}
	if f.otks[d.user][d.device] == nil {
		f.otks[d.user][d.device] = map[string]any{}
	}
	for id, k := range req.OneTimeKeys {
		f.otks[d.user][d.device][id] = k
	}
	return map[string]any{"one_time_key_counts": map[string]int{"signed_curve25519": len(f.otks[d.user][d.device])}}, 200
}

func (f *Fake) keysQuery(d fakeDevice, r *http.Request) (any, int) {
	var req struct {
		DeviceKeys map[string][]string `json:"device_keys"`
	}
	decode(r, &req)
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]any{}
	for u := range req.DeviceKeys {
		out[u] = f.devKeys[u]
	}
	return map[string]any{"device_keys": out}, 200
}

func (f *Fake) keysClaim(d fakeDevice, r *http.Request) (any, int) {
	var req struct {
		OneTimeKeys map[string]map[string]string `json:"one_time_keys"`
	}
	decode(r, &req)
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]any{}
	for u, devs := range req.OneTimeKeys {
		got := map[string]any{}
		for dev := range devs {
			for id, k := range f.otks[u][dev] {
				got[dev] = map[string]any{id: k}
				delete(f.otks[u][dev], id)
				break
			}
		}
		out[u] = got
	}
	return map[string]any{"one_time_keys": out}, 200
}

func (f *Fake) sendToDevice(d fakeDevice, r *http.Request) (any, int) {
	var req struct {
		Messages map[string]map[string]any `json:"messages"`
	}
	decode(r, &req)
	f.mu.Lock()
	defer f.mu.Unlock()
	key := d.device + "|td|" + r.PathValue("txn")
	if f.txns[key] {
		return map[string]any{}, 200
	}
	f.txns[key] = true
	pos := f.writeLocked()
	for u, devs := range req.Messages {
		for dev, content := range devs {
			to := fakeDevice{user: u, device: dev}
			f.toDevice[to] = append(f.toDevice[to], fakeEvent{pos: pos, ev: map[string]any{
				"type": r.PathValue("type"), "sender": d.user, "content": content,
			}})
		}
	}
	return map[string]any{}, 200
}

func (f *Fake) upload(d fakeDevice, r *http.Request) (any, int) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return map[string]any{"errcode": "M_UNKNOWN"}, 500
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	id := fmt.Sprintf("m%d", f.nextID)
	f.media[id] = data
	return map[string]any{"content_uri": "mxc://fake/" + id}, 200
}

func (f *Fake) download(d fakeDevice, r *http.Request) (any, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	data, ok := f.media[r.PathValue("id")]
	if !ok {
		return map[string]any{"errcode": "M_NOT_FOUND"}, 404
	}
	return data, 200
}
