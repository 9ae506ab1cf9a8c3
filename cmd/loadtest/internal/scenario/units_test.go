package scenario

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix/crypto/canonicaljson"

	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/stats"
)

func TestDeviceKeysSignature(t *testing.T) {
	k, err := newDeviceKeys("@alice:example.org", "DEVICE")
	if err != nil {
		t.Fatal(err)
	}
	obj, err := k.deviceKeysObject()
	if err != nil {
		t.Fatal(err)
	}
	// What the server receives and checks: the JSON as sent, decoded.
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if err := verifySigned(got, "@alice:example.org", "ed25519:DEVICE", k.ed25519); err != nil {
		t.Fatalf("device keys: %v\n%s", err, raw)
	}
	keys := got["keys"].(map[string]any)
	if keys["curve25519:DEVICE"] != k.curve || keys["ed25519:DEVICE"] != k.ed25519 || got["device_id"] != "DEVICE" {
		t.Errorf("device keys: %s", raw)
	}
	if pub, _ := b64.DecodeString(k.ed25519); len(pub) != ed25519.PublicKeySize {
		t.Errorf("ed25519 key of %d bytes", len(pub))
	}
	if c, _ := b64.DecodeString(k.curve); len(c) != 32 {
		t.Errorf("curve25519 key of %d bytes", len(c))
	}
	// The signature covers the canonical form, not Go's key order: an
	// independent canonicalisation of the signed part gives the same bytes.
	bare := map[string]any{"user_id": got["user_id"], "device_id": got["device_id"], "algorithms": got["algorithms"], "keys": got["keys"]}
	canon, _ := canonicaljson.Marshal(bare)
	pub, _ := b64.DecodeString(k.ed25519)
	sig, _ := b64.DecodeString(got["signatures"].(map[string]any)["@alice:example.org"].(map[string]any)["ed25519:DEVICE"].(string))
	if !ed25519.Verify(pub, canon, sig) {
		t.Error("signature does not verify over the canonical JSON")
	}
	// Tampering is caught; unsigned is ignored.
	got["unsigned"] = map[string]any{"device_display_name": "x"}
	if err := verifySigned(got, "@alice:example.org", "ed25519:DEVICE", k.ed25519); err != nil {
		t.Errorf("unsigned broke the signature: %v", err)
	}
	got["device_id"] = "OTHER"
	if verifySigned(got, "@alice:example.org", "ed25519:DEVICE", k.ed25519) == nil {
		t.Error("a tampered object verified")
	}

	otks, err := k.oneTimeKeys(5, 3)
	if err != nil || len(otks) != 3 {
		t.Fatalf("one-time keys: %v, %v", otks, err)
	}
	for id, o := range otks {
		if err := verifySigned(o.(map[string]any), "@alice:example.org", "ed25519:DEVICE", k.ed25519); err != nil || id[:18] != "signed_curve25519:" {
			t.Errorf("one-time key %s: %v", id, err)
		}
	}
}

func TestTagKeyMatchesSyncEvent(t *testing.T) {
	raw, _ := json.Marshal(map[string]any{"type": "m.room.message", "content": messageContent("run-7", 50)})
	var ev syncEvent
	if err := json.Unmarshal(raw, &ev); err != nil || ev.Content.Tag != "run-7" {
		t.Errorf("the sync event struct does not read TagKey: %+v, %v", ev, err)
	}
	raw, _ = json.Marshal(map[string]any{"content": fakeOlm("a", "b", "run-8")})
	if err := json.Unmarshal(raw, &ev); err != nil || ev.Content.Tag != "run-8" {
		t.Errorf("to-device: %+v", ev)
	}
	if body := messageContent("x", 300)["body"].(string); len(body) < 300 {
		t.Errorf("body of %d bytes", len(body))
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int{"512": 512, "512B": 512, "10KiB": 10240, "1MiB": 1 << 20, "2MB": 2000000, "3KB": 3000, "1 MiB": 1 << 20} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1KiB", "1XB", "KiB", "1.5MiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) did not fail", in)
		}
	}
}

func TestTracker(t *testing.T) {
	rec := stats.NewRecorder()
	t0 := time.Now()
	rec.BeginWindow(t0)
	tr := newTracker(rec, "delivery", "messages")
	a := &tracked{start: t0, sender: 0, expected: 2}
	b := &tracked{start: t0, sender: 1, expected: 2}
	warm := &tracked{start: t0.Add(-time.Second), sender: 0, expected: 2}
	tr.add("a", a)
	tr.add("b", b)
	tr.add("w", warm)
	a.sent.Store(true)
	b.sent.Store(true)
	warm.sent.Store(true)
	seen := []map[string]bool{{}, {}, {}}
	tr.arrived("a", 0, t0.Add(time.Millisecond), seen[0]) // the sender's own copy
	tr.arrived("a", 1, t0.Add(2*time.Millisecond), seen[1])
	tr.arrived("a", 1, t0.Add(3*time.Millisecond), seen[1]) // again: a duplicate
	tr.arrived("a", 2, t0.Add(4*time.Millisecond), seen[2])
	tr.arrived("b", 0, t0.Add(5*time.Millisecond), seen[0])
	tr.arrived("w", 1, t0.Add(time.Millisecond), seen[1]) // warm-up message
	tr.arrived("unknown", 1, t0, seen[1])
	tr.arrived("", 1, t0, seen[1])
	if n := tr.outstanding(); n != 1 {
		t.Errorf("outstanding %d, want 1 (b's second receiver)", n)
	}
	tr.finish("messages")
	snap := rec.Snapshot()
	got := map[string]int64{}
	for _, c := range snap.Counters {
		got[c.Name] = c.Value
	}
	if got["messages.deliveries"] != 3 || got["messages.duplicates"] != 1 || got["messages.expected"] != 4 || got["messages.missing"] != 1 {
		t.Errorf("counters %v", got)
	}
	if s := snap.Series[0]; len(s.Samples) != 3 || s.Samples[0] != 2*time.Millisecond {
		t.Errorf("latencies %v", s.Samples)
	}
}

func TestPace(t *testing.T) {
	rec := stats.NewRecorder()
	rec.BeginWindow(time.Now().Add(-time.Second))
	late := rec.Counter("late")
	var mu sync.Mutex
	var got []int
	bySender := map[int]int{}
	stop := make(chan struct{})
	start := time.Now()
	wait := pace(stop, 3, 100, late, func(k, j int) {
		if k%3 != j {
			t.Errorf("message %d went to sender %d", k, j)
		}
		mu.Lock()
		got = append(got, k)
		bySender[j]++
		mu.Unlock()
	})
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wait()
	elapsed := time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	// 100/s for 0.5 s: about 50, never more than the schedule allows.
	if max := int(elapsed.Seconds()*100) + 3; len(got) < 30 || len(got) > max {
		t.Errorf("%d sends in %v", len(got), elapsed)
	}
	if len(bySender) != 3 {
		t.Errorf("senders used: %v", bySender)
	}
	// A sender slower than its share falls behind and counts as late.
	rec2 := stats.NewRecorder()
	rec2.BeginWindow(time.Now().Add(-time.Second))
	late2 := rec2.Counter("late")
	stop2 := make(chan struct{})
	var n atomic.Int32
	wait2 := pace(stop2, 1, 100, late2, func(k, j int) { n.Add(1); time.Sleep(50 * time.Millisecond) })
	time.Sleep(400 * time.Millisecond)
	close(stop2)
	wait2()
	if late2.Value() == 0 || n.Load() > 10 {
		t.Errorf("slow sender: %d sends, %d late", n.Load(), late2.Value())
	}
}

func TestForEach(t *testing.T) {
	var running, peak atomic.Int32
	err := forEach(context.Background(), 20, 3, func(ctx context.Context, i int) error {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		return nil
	})
	if err != nil || peak.Load() > 3 {
		t.Errorf("err %v, peak concurrency %d", err, peak.Load())
	}
	boom := errors.New("boom")
	var calls atomic.Int32
	err = forEach(context.Background(), 100, 2, func(ctx context.Context, i int) error {
		calls.Add(1)
		if i == 3 {
			return boom
		}
		time.Sleep(time.Millisecond)
		return nil
	})
	if !errors.Is(err, boom) || calls.Load() > 10 {
		t.Errorf("err %v after %d calls", err, calls.Load())
	}
}

func TestWindowEndsEarly(t *testing.T) {
	rec := stats.NewRecorder()
	stop := make(chan struct{})
	e := &Env{Rec: rec, Stop: stop}
	done := make(chan struct{})
	close(done)
	if r := e.window(0, time.Minute, done); r != endCount {
		t.Errorf("reason %q", r)
	}
	rec2 := stats.NewRecorder()
	e2 := &Env{Rec: rec2, Stop: stop}
	close(stop)
	if r := e2.window(time.Minute, time.Minute, nil); r != endStopped {
		t.Errorf("reason %q", r)
	}
	if b, _ := rec2.Window(); !b.IsZero() {
		t.Error("a stop in the warm-up opened the window")
	}
}
