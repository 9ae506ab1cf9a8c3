package scenario

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/accounts"
	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/matrix"
	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/stats"
	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/testserver"
)

// targets runs fn as two subtests: against this project's server
// started in-process ("homeserver"), and against the in-memory fake
// ("fake"), which serves every endpoint the scenarios use so that their
// plumbing is tested even before the real server implements it.
func targets(t *testing.T, fn func(t *testing.T, url string)) {
	t.Run("homeserver", func(t *testing.T) { fn(t, testserver.Start(t).URL) })
	t.Run("fake", func(t *testing.T) { fn(t, testserver.StartFake(t).URL) })
}

// run runs the scenario name with args against the server at url and
// returns what it recorded. It skips the test, saying why, only when the
// server answers M_UNRECOGNIZED to an endpoint the scenario needs: such
// tests start to run once the server implements it.
func run(t *testing.T, url, name string, args ...string) (stats.Snapshot, *Env) {
	t.Helper()
	sc, ok := New(name)
	if !ok {
		t.Fatalf("no scenario %q", name)
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	sc.Flags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := sc.Check(); err != nil {
		t.Fatal(err)
	}
	httpc := matrix.NewHTTPClient(time.Minute)
	// Before the server stops (cleanups run last first): a graceful
	// shutdown waits up to 5 s for connections dialled but never used.
	t.Cleanup(httpc.CloseIdleConnections)
	rec := stats.NewRecorder()
	users, err := accounts.New(accounts.Config{HS: url, HTTP: httpc, SharedSecret: testserver.SharedSecret}, rec)
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{HS: url, HTTP: httpc, Users: users, Rec: rec, Stop: make(chan struct{}), RunID: users.Prefix()}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err = sc.Run(ctx, e)
	if matrix.IsNotImplemented(err) {
		t.Skipf("skipped until the server implements it: %v", err)
	}
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, n := range e.Notes() {
		t.Logf("note: %s", n)
	}
	return rec.Snapshot(), e
}

// series returns the named series of snap, failing when absent.
func series(t *testing.T, snap stats.Snapshot, name string) stats.SeriesSnapshot {
	t.Helper()
	for _, s := range snap.Series {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no series %q", name)
	return stats.SeriesSnapshot{}
}

// counter returns the named counter of snap, 0 when absent.
func counter(snap stats.Snapshot, name string) int64 {
	for _, c := range snap.Counters {
		if c.Name == name {
			return c.Value
		}
	}
	return 0
}

// noErrors fails when any series recorded an error.
func noErrors(t *testing.T, snap stats.Snapshot) {
	t.Helper()
	for _, s := range snap.Series {
		if len(s.Errors) > 0 {
			t.Errorf("%s: errors %v", s.Name, s.Errors)
		}
	}
}

func TestJoin(t *testing.T) {
	targets(t, func(t *testing.T, url string) {
		snap, _ := run(t, url, "join", "--users", "6", "--warmup", "200ms", "--duration", "1s")
		noErrors(t, snap)
		if n := len(series(t, snap, "join.wave").Samples); n != 6 {
			t.Errorf("wave: %d joins, want 6", n)
		}
		if len(series(t, snap, "leave").Samples) == 0 || len(series(t, snap, "rejoin").Samples) == 0 {
			t.Error("no churn measured")
		}
		if snap.Values["members.joined"] != 7 || snap.Values["members.expected"] != 7 {
			t.Errorf("members: %v", snap.Values)
		}
		// The window ends after 1s, or sooner at --ops on a fast server.
		if snap.Begin.IsZero() || snap.End.Before(snap.Begin) || snap.End.Sub(snap.Begin) > 2*time.Second {
			t.Errorf("window %v..%v", snap.Begin, snap.End)
		}
	})
}

func TestSend(t *testing.T) {
	targets(t, func(t *testing.T, url string) {
		snap, _ := run(t, url, "send", "--senders", "4", "--rooms", "2", "--rate", "40", "--warmup", "200ms", "--duration", "1s")
		noErrors(t, snap)
		n := len(series(t, snap, "send").Samples)
		// 40/s for about a second in the window, paced: allow for a slow
		// machine but not for nothing or for an unpaced burst.
		if n < 10 || n > 80 {
			t.Errorf("%d sends measured in a 1s window at 40/s", n)
		}
	})
}

func TestJoinCount(t *testing.T) {
	targets(t, func(t *testing.T, url string) {
		// --ops ends the window before --duration.
		start := time.Now()
		snap, _ := run(t, url, "join", "--users", "3", "--warmup", "0s", "--duration", "1m", "--ops", "6")
		if time.Since(start) > 30*time.Second {
			t.Errorf("the count did not end the window")
		}
		if n := len(series(t, snap, "leave").Samples) + len(series(t, snap, "rejoin").Samples); n < 6 {
			t.Errorf("%d churn ops, want at least 6", n)
		}
	})
}

func TestChat(t *testing.T) {
	targets(t, func(t *testing.T, url string) {
		snap, _ := run(t, url, "chat", "--users", "6", "--rooms", "2", "--senders", "2", "--rate", "20",
			"--warmup", "300ms", "--duration", "1500ms", "--drain", "5s", "--poll-timeout", "5s")
		noErrors(t, snap)
		sent := counter(snap, "messages.sent")
		if sent == 0 || int64(len(series(t, snap, "send").Samples)) != sent {
			t.Errorf("sent %d, send samples %d", sent, len(series(t, snap, "send").Samples))
		}
		// Each room has 3 members: every message reaches the 2 others.
		if exp := counter(snap, "messages.expected"); exp != 2*sent || counter(snap, "messages.missing") != 0 ||
			counter(snap, "messages.deliveries") != exp || int64(len(series(t, snap, "delivery").Samples)) != exp {
			t.Errorf("expected %d, deliveries %d, missing %d", exp, counter(snap, "messages.deliveries"), counter(snap, "messages.missing"))
		}
		if counter(snap, "messages.duplicates") != 0 {
			t.Errorf("%d duplicate deliveries", counter(snap, "messages.duplicates"))
		}
	})
}

func TestInitialSync(t *testing.T) {
	targets(t, func(t *testing.T, url string) {
		snap, _ := run(t, url, "initial-sync", "--rooms", "3", "--messages", "4", "--syncs", "2", "--warmup", "0s", "--duration", "30s")
		noErrors(t, snap)
		if n := len(series(t, snap, seriesCreateRoom).Samples); n != 3 {
			t.Errorf("%d rooms created", n)
		}
		if n := len(series(t, snap, seriesSend).Samples); n != 12 {
			t.Errorf("%d messages sent", n)
		}
		full, filtered := series(t, snap, "sync.full"), series(t, snap, "sync.filtered")
		if len(full.Samples) != 2 || len(filtered.Samples) != 2 || full.Bytes == 0 {
			t.Errorf("syncs: %d full (%d bytes), %d filtered", len(full.Samples), full.Bytes, len(filtered.Samples))
		}
		if counter(snap, "sync.rooms_missing") != 0 {
			t.Errorf("syncs missed %d rooms", counter(snap, "sync.rooms_missing"))
		}
	})
}

func TestE2EE(t *testing.T) {
	targets(t, func(t *testing.T, url string) {
		snap, _ := run(t, url, "e2ee", "--devices", "4", "--otks", "3", "--claims", "2", "--fanout", "2", "--rate", "10",
			"--warmup", "300ms", "--duration", "1500ms", "--drain", "5s", "--poll-timeout", "5s")
		noErrors(t, snap)
		for _, n := range []string{"keys.upload", "keys.query", "keys.claim"} {
			if got := len(series(t, snap, n).Samples); got != 4 {
				t.Errorf("%s: %d, want 4", n, got)
			}
		}
		for _, v := range []string{"keys.query.missing_devices", "keys.query.bad_signatures", "keys.claim.missing"} {
			if snap.Values[v] != 0 {
				t.Errorf("%s = %v", v, snap.Values[v])
			}
		}
		sent := counter(snap, "to_device.sent")
		if sent == 0 || counter(snap, "to_device.expected") != 2*sent || counter(snap, "to_device.missing") != 0 {
			t.Errorf("to-device: sent %d, expected %d, missing %d", sent, counter(snap, "to_device.expected"), counter(snap, "to_device.missing"))
		}
	})
}

func TestMedia(t *testing.T) {
	targets(t, func(t *testing.T, url string) {
		snap, _ := run(t, url, "media", "--sizes", "1KiB,64KiB", "--uploads", "3", "--downloads", "2", "--concurrency", "2",
			"--warmup", "0s", "--duration", "30s")
		noErrors(t, snap)
		for _, size := range []string{"1KiB", "64KiB"} {
			up, down := series(t, snap, "upload."+size), series(t, snap, "download."+size)
			// The window closes when the last file's downloads are done;
			// another worker's file may be cut short then. A worker may
			// also have uploaded a file just before the window opened
			// (its upload is not measured, its downloads are): at most
			// one such file per worker, two downloads each.
			const concurrency = 2
			if len(up.Samples) < 3 || len(down.Samples) < 6 || len(down.Samples) > 2*(len(up.Samples)+concurrency) {
				t.Errorf("%s: %d uploads, %d downloads", size, len(up.Samples), len(down.Samples))
			}
		}
		if counter(snap, "download.corrupt") != 0 {
			t.Error("corrupt downloads")
		}
	})
}

func TestStopDuringWindow(t *testing.T) {
	srv := testserver.Start(t)
	httpc := matrix.NewHTTPClient(time.Minute)
	t.Cleanup(httpc.CloseIdleConnections)
	rec := stats.NewRecorder()
	users, err := accounts.New(accounts.Config{HS: srv.URL, HTTP: httpc, SharedSecret: testserver.SharedSecret}, rec)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	e := &Env{HS: srv.URL, HTTP: httpc, Users: users, Rec: rec, Stop: stop, RunID: users.Prefix()}
	sc := &Join{}
	fs := flag.NewFlagSet("join", flag.ContinueOnError)
	sc.Flags(fs)
	_ = fs.Parse([]string{"--users", "3", "--warmup", "0s", "--duration", "10m"})
	// Stop once the window is open (the set-up takes a while on a busy
	// machine; a stop before the window opens ends the run without one).
	go func() {
		defer close(stop)
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if b, _ := rec.Window(); !b.IsZero() {
				time.Sleep(300 * time.Millisecond)
				return
			}
		}
	}()
	start := time.Now()
	err = sc.Run(context.Background(), e)
	if matrix.IsNotImplemented(err) {
		t.Skipf("skipped until the server implements it: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > time.Minute {
		t.Error("stop did not end the run")
	}
	if b, end := rec.Window(); b.IsZero() || end.IsZero() {
		t.Errorf("window %v..%v not closed by the stop", b, end)
	}
}
