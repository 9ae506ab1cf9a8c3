//go:build goolm

package tests

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Helpers of the tests with real E2EE clients (e2ee_clients_test.go):
// mautrix-go's OlmMachine built on goolm (the pure-Go Olm, selected by the
// goolm build tag), an in-memory crypto store and its own /sync loop, wired
// the way mautrix's cryptohelper wires a bot (which needs cgo SQLite).

// e2eeDevice is one logged-in device of a real E2EE client, syncing in
// the background from start until the test ends or it is logged out.
type e2eeDevice struct {
	t     testing.TB
	name  string
	c     *mautrix.Client
	mach  *crypto.OlmMachine
	state *mautrix.MemoryStateStore
	// logs is where the machine's logs go; it drops them once the test
	// has ended.
	logs *testLog

	// machMu serialises the use of the machine and its stores: mautrix's
	// in-memory stores (MemoryStore, MemoryStateStore) are not safe for
	// the concurrent use its SQL stores allow, so the sync loop processes
	// each response under it, and the test's own calls take it too.
	machMu sync.Mutex

	// ctx bounds the sync loop and every background decryption.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts the sync loop and the decryptions waiting for a key.
	wg sync.WaitGroup
	// syncErr is what ended the sync loop (after done is closed).
	syncErr error
	done    chan struct{}

	// mu guards the fields below, written by the sync loop.
	mu sync.Mutex
	// decrypted maps each event decrypted to its body.
	decrypted map[id.EventID]string
	// failed maps each event that could not be decrypted to the error.
	failed map[id.EventID]error
	// encrypted keeps every encrypted event received, as received.
	encrypted map[id.EventID]*event.Event
	// otkCounts lists the signed_curve25519 counts of the syncs.
	otkCounts []int
	// left lists the users device_lists.left named.
	left map[id.UserID]bool
	// membership is each room's membership as the client has handled it
	// (recorded after the machine has seen the member event, so that a
	// message sent once it shows a leave is under a rotated session).
	membership map[id.RoomID]map[id.UserID]event.Membership
}

// testLog forwards a client's logs to the test log until closed.
type testLog struct {
	t      testing.TB
	closed atomic.Bool
}

func (l *testLog) Write(p []byte) (int, error) {
	if !l.closed.Load() {
		l.t.Log(string(p))
	}
	return len(p), nil
}

// keyWait bounds how long a device waits for the room key of an event
// it cannot decrypt yet (the key travels in a to-device message that may
// come in a later sync than the event).
const keyWait = 5 * time.Second

// startE2EEDevice gives c an OlmMachine, uploads its device keys and
// one-time keys, and starts its sync loop. The device stops when the test
// ends.
func startE2EEDevice(t testing.TB, name string, c *mautrix.Client) *e2eeDevice {
	t.Helper()
	d := &e2eeDevice{t: t, name: name, c: c, state: mautrix.NewMemoryStateStore().(*mautrix.MemoryStateStore),
		logs: &testLog{t: t}, done: make(chan struct{}),
		decrypted: map[id.EventID]string{}, failed: map[id.EventID]error{}, encrypted: map[id.EventID]*event.Event{},
		left: map[id.UserID]bool{}, membership: map[id.RoomID]map[id.UserID]event.Membership{}}
	log := zerolog.New(zerolog.ConsoleWriter{Out: d.logs, NoColor: true}).Level(e2eeLogLevel()).
		With().Str("device", name).Timestamp().Logger()
	c.Log = log
	c.StateStore = d.state
	d.mach = crypto.NewOlmMachine(c, &log, crypto.NewMemoryStore(nil), d.state)
	d.ctx, d.cancel = context.WithCancel(context.Background())
	if err := d.mach.Load(d.ctx); err != nil {
		t.Fatalf("%s: load olm account: %v", name, err)
	}
	if err := d.mach.ShareKeys(d.ctx, -1); err != nil {
		t.Fatalf("%s: upload keys: %v", name, err)
	}
	syncer := c.Syncer.(*mautrix.DefaultSyncer)
	c.Syncer = lockedSyncer{DefaultSyncer: syncer, mu: &d.machMu}
	synced := make(chan struct{})
	syncer.OnSync(func(ctx context.Context, _ *mautrix.RespSync, since string) bool {
		if since == "" {
			// Like Element's crypto after its first sync, learn the user's
			// own other devices: device_lists only carries the changes
			// after that sync's token.
			if _, err := d.mach.FetchKeys(ctx, []id.UserID{c.UserID}, true); err != nil {
				d.logs.Write([]byte(fmt.Sprintf("%s: query own devices: %v", name, err)))
			}
			close(synced)
		}
		return true
	})
	syncer.OnSync(d.record)
	syncer.OnSync(d.mach.ProcessSyncResponse)
	syncer.OnEvent(c.StateStoreSyncHandler)
	syncer.OnEventType(event.StateMember, d.mach.HandleMemberEvent)
	syncer.OnEventType(event.StateMember, d.recordMember)
	syncer.OnEventType(event.EventEncrypted, d.handleEncrypted)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(d.done)
		d.syncErr = c.SyncWithContext(d.ctx)
	}()
	t.Cleanup(d.stop)
	select {
	case <-synced:
	case <-d.done:
		t.Fatalf("%s: sync stopped: %v", name, d.syncErr)
	case <-time.After(15 * time.Second):
		t.Fatalf("%s: no first sync after 15 s", name)
	}
	return d
}

// stop ends the sync loop and waits for it and the pending decryptions.
func (d *e2eeDevice) stop() {
	d.cancel()
	d.wg.Wait()
	d.logs.closed.Store(true)
}

// record notes what a sync response tells the client about keys.
func (d *e2eeDevice) record(_ context.Context, resp *mautrix.RespSync, _ string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.otkCounts = append(d.otkCounts, resp.DeviceOTKCount.SignedCurve25519)
	for _, u := range resp.DeviceLists.Left {
		d.left[u] = true
	}
	return true
}

// recordMember notes a membership change the machine has handled.
func (d *e2eeDevice) recordMember(_ context.Context, evt *event.Event) {
	if evt.StateKey == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	room := d.membership[evt.RoomID]
	if room == nil {
		room = map[id.UserID]event.Membership{}
		d.membership[evt.RoomID] = room
	}
	room[id.UserID(*evt.StateKey)] = evt.Content.AsMember().Membership
}

// handleEncrypted decrypts an m.room.encrypted event, waiting up to
// keyWait for its room key when it has not come yet.
func (d *e2eeDevice) handleEncrypted(ctx context.Context, evt *event.Event) {
	d.mu.Lock()
	d.encrypted[evt.ID] = evt
	d.mu.Unlock()
	if d.tryDecrypt(evt) {
		return
	}
	content := evt.Content.AsEncrypted()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if d.mach.WaitForSession(d.ctx, evt.RoomID, content.SenderKey, content.SessionID, keyWait) {
			d.locked(func() { d.tryDecrypt(evt) })
		}
	}()
}

// lockedSyncer is mautrix's DefaultSyncer processing each sync response
// under a device's machMu.
type lockedSyncer struct {
	*mautrix.DefaultSyncer
	mu *sync.Mutex
}

// ProcessResponse runs the handlers of resp under the lock.
func (s lockedSyncer) ProcessResponse(ctx context.Context, resp *mautrix.RespSync, since string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.DefaultSyncer.ProcessResponse(ctx, resp, since)
}

// locked runs fn, which uses the machine or its stores, under machMu.
func (d *e2eeDevice) locked(fn func()) {
	d.machMu.Lock()
	defer d.machMu.Unlock()
	fn()
}

// tryDecrypt decrypts evt and records the outcome; it reports false when
// the room key is missing (and records that as the failure for now).
func (d *e2eeDevice) tryDecrypt(evt *event.Event) bool {
	dec, err := d.mach.DecryptMegolmEvent(d.ctx, evt)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.failed[evt.ID] = err
		return !errors.Is(err, crypto.ErrNoSessionFound)
	}
	delete(d.failed, evt.ID)
	d.decrypted[evt.ID] = dec.Content.AsMessage().Body
	return true
}

// members returns the users joined to or invited into room as the
// device knows them from its sync. (mautrix's MemoryStateStore answers
// GetRoomJoinedOrInvitedMembers with every user it has seen, including
// those who left, so the device keeps its own list.)
func (d *e2eeDevice) members(room id.RoomID) []id.UserID {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []id.UserID
	for u, m := range d.membership[room] {
		if m == event.MembershipJoin || m == event.MembershipInvite {
			out = append(out, u)
		}
	}
	return out
}

// joined returns the users joined to room as the device knows them.
func (d *e2eeDevice) joined(room id.RoomID) map[id.UserID]bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[id.UserID]bool{}
	for u, m := range d.membership[room] {
		if m == event.MembershipJoin {
			out[u] = true
		}
	}
	return out
}

// waitRoom waits until the device's sync has shown room as encrypted with
// exactly the users of members joined.
func (d *e2eeDevice) waitRoom(room id.RoomID, members ...*e2eeDevice) {
	d.t.Helper()
	users := make([]id.UserID, len(members))
	for i, m := range members {
		users[i] = m.c.UserID
	}
	d.waitJoined(room, users...)
}

// waitJoined waits until the device's sync has shown room as encrypted
// with exactly users joined.
func (d *e2eeDevice) waitJoined(room id.RoomID, users ...id.UserID) {
	d.t.Helper()
	want := map[id.UserID]bool{}
	for _, u := range users {
		want[u] = true
	}
	eventually(d.t, fmt.Sprintf("%s sees %s encrypted with %d members", d.name, room, len(want)), func() bool {
		var enc bool
		d.locked(func() { enc, _ = d.state.IsEncrypted(d.ctx, room) })
		return enc && maps.Equal(d.joined(room), want)
	})
}

// send shares the room's Megolm session with every device of the members
// the client knows (as Element does before each message), encrypts body
// and sends it; it returns the event id.
func (d *e2eeDevice) send(room id.RoomID, body string) id.EventID {
	d.t.Helper()
	var enc *event.EncryptedEventContent
	var err error
	d.locked(func() {
		if err = d.mach.ShareGroupSession(d.ctx, room, d.members(room)); err != nil {
			err = fmt.Errorf("share group session: %w", err)
			return
		}
		enc, err = d.mach.EncryptMegolmEvent(d.ctx, room, event.EventMessage,
			&event.MessageEventContent{MsgType: event.MsgText, Body: body})
	})
	if err != nil {
		d.t.Fatalf("%s: %v", d.name, err)
	}
	resp, err := d.c.SendMessageEvent(d.ctx, room, event.EventEncrypted, enc)
	if err != nil {
		d.t.Fatalf("%s: send: %v", d.name, err)
	}
	return resp.EventID
}

// waitDecrypted waits until the device has decrypted evt to body; it
// fails the test at once when decryption failed for good.
func (d *e2eeDevice) waitDecrypted(evt id.EventID, body string) {
	d.t.Helper()
	deadline := time.Now().Add(keyWait + 10*time.Second)
	for time.Now().Before(deadline) {
		d.mu.Lock()
		got, ok := d.decrypted[evt]
		ferr, failed := d.failed[evt]
		d.mu.Unlock()
		switch {
		case ok && got == body:
			return
		case ok:
			d.t.Fatalf("%s decrypted %s to %q, want %q", d.name, evt, got, body)
		case failed && !errors.Is(ferr, crypto.ErrNoSessionFound):
			d.t.Fatalf("%s could not decrypt %s: %v", d.name, evt, ferr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	d.mu.Lock()
	ferr := d.failed[evt]
	d.mu.Unlock()
	d.t.Fatalf("%s never decrypted %s (%q): %v", d.name, evt, body, ferr)
}

// waitBody waits until the device has decrypted an event whose body is
// body, and returns its id.
func (d *e2eeDevice) waitBody(body string, within time.Duration) id.EventID {
	d.t.Helper()
	var found id.EventID
	deadline := time.Now().Add(within)
	for found == "" {
		d.mu.Lock()
		for evt, b := range d.decrypted {
			if b == body {
				found = evt
			}
		}
		failed := fmt.Sprint(d.failed)
		d.mu.Unlock()
		if found == "" && time.Now().After(deadline) {
			d.t.Fatalf("%s never decrypted a message %q (undecryptable: %s)", d.name, body, failed)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return found
}

// encryptedEvent waits until the device's sync has delivered evt and
// returns it as received.
func (d *e2eeDevice) encryptedEvent(evt id.EventID) *event.Event {
	d.t.Helper()
	var e *event.Event
	eventually(d.t, fmt.Sprintf("%s receives %s", d.name, evt), func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		e = d.encrypted[evt]
		return e != nil
	})
	return e
}

// knowsDevice reports whether the device's crypto store holds the device
// keys of user's device dev (learnt through /keys/query, which
// device_lists.changed triggers).
func (d *e2eeDevice) knowsDevice(user id.UserID, dev id.DeviceID) bool {
	var devs map[id.DeviceID]*id.Device
	var err error
	d.locked(func() { devs, err = d.mach.CryptoStore.GetDevices(d.ctx, user) })
	if err != nil {
		d.t.Fatal(err)
	}
	_, ok := devs[dev]
	return ok
}

// otkTarget is the number of signed_curve25519 one-time keys the client
// keeps on the server: it uploads more when a sync shows fewer.
func (d *e2eeDevice) otkTarget() int {
	d.machMu.Lock()
	defer d.machMu.Unlock()
	return int(d.mach.GetAccount().Internal.MaxNumberOfOneTimeKeys() / 2)
}

// serverOTKCount asks the server how many signed_curve25519 one-time keys
// the device has left.
func (d *e2eeDevice) serverOTKCount() int {
	d.t.Helper()
	resp, err := d.c.UploadKeys(d.ctx, &mautrix.ReqUploadKeys{})
	if err != nil {
		d.t.Fatalf("%s: key counts: %v", d.name, err)
	}
	return resp.OneTimeKeyCounts.SignedCurve25519
}

// join, invite and leave change memberships through the raw API: mautrix's
// JoinRoomByID, InviteUser and LeaveRoom also write the client's state
// store, outside the sync loop (see machMu); the sync brings the change.

// join joins the device's user to room.
func (d *e2eeDevice) join(s *Server, room id.RoomID) {
	d.t.Helper()
	s.Do("POST", roomPath(room, "join"), d.c.AccessToken, map[string]any{}).Expect(d.t, 200, "")
}

// invite invites user into room.
func (d *e2eeDevice) invite(s *Server, room id.RoomID, user id.UserID) {
	d.t.Helper()
	s.Do("POST", roomPath(room, "invite"), d.c.AccessToken, map[string]any{"user_id": user}).Expect(d.t, 200, "")
}

// leave makes the device's user leave room.
func (d *e2eeDevice) leave(s *Server, room id.RoomID) {
	d.t.Helper()
	s.Do("POST", roomPath(room, "leave"), d.c.AccessToken, map[string]any{}).Expect(d.t, 200, "")
}

// logout deletes the device (POST /logout), leaving the client's
// credentials as they are: its sync loop ends with M_UNKNOWN_TOKEN.
func (d *e2eeDevice) logout(s *Server) {
	d.t.Helper()
	s.Do("POST", "/_matrix/client/v3/logout", d.c.AccessToken, map[string]any{}).Expect(d.t, 200, "")
}

var _ io.Writer = (*testLog)(nil)

// e2eeLogLevel is the level of the clients' logs shown on failure:
// warnings, or everything when E2EE_CLIENT_DEBUG is set.
func e2eeLogLevel() zerolog.Level {
	if os.Getenv("E2EE_CLIENT_DEBUG") != "" {
		return zerolog.TraceLevel
	}
	return zerolog.WarnLevel
}
