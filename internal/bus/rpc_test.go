package bus

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/matrix-gouv/homeserver/config"
)

// errNotHere is a service's sentinel error in these tests.
var errNotHere = errors.New("not here")

func testCodes() ErrorCodes { return ErrorCodes{"not_here": errNotHere} }

type echoReq struct {
	Say string `json:"say"`
}

type echoResp struct {
	Said string `json:"said"`
}

func echo(ctx context.Context, req echoReq) (echoResp, error) {
	switch req.Say {
	case "missing":
		return echoResp{}, errNotHere
	case "missing-wrapped":
		return echoResp{}, fmt.Errorf("look up: %w", errNotHere)
	case "boom":
		return echoResp{}, errors.New("disk on fire")
	case "panic":
		panic("bug")
	case "deadline":
		if _, ok := ctx.Deadline(); !ok {
			return echoResp{}, errors.New("no deadline")
		}
	}
	return echoResp{Said: req.Say}, nil
}

func TestServeCall(t *testing.T) {
	eachBus(t, func(t *testing.T, b *Bus) {
		stop, err := Serve(b, "test.echo", echo, WithErrors(testCodes()))
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
		defer stop()

		tests := []struct {
			say      string
			want     string
			wantIs   error  // errors.Is must hold
			wantCode string // of the *RemoteError
		}{
			{say: "hello", want: "hello"},
			{say: "deadline", want: "deadline"}, // Call sent its default timeout
			{say: "missing", wantIs: errNotHere, wantCode: "not_here"},
			{say: "missing-wrapped", wantIs: errNotHere, wantCode: "not_here"},
			{say: "boom", wantCode: CodeInternal},
			{say: "panic", wantCode: CodeInternal},
		}
		for _, tt := range tests {
			t.Run(tt.say, func(t *testing.T) {
				got, err := Call[echoReq, echoResp](context.Background(), b, "test.echo", echoReq{Say: tt.say}, WithErrors(testCodes()))
				if tt.wantCode == "" {
					if err != nil || got.Said != tt.want {
						t.Fatalf("got %+v, %v; want %q", got, err, tt.want)
					}
					return
				}
				var re *RemoteError
				if !errors.As(err, &re) || re.Code != tt.wantCode {
					t.Fatalf("got error %v, want a RemoteError with code %s", err, tt.wantCode)
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Fatalf("errors.Is(%v, %v) is false", err, tt.wantIs)
				}
				if tt.wantIs == nil && errors.Is(err, errNotHere) {
					t.Fatalf("%v matches errNotHere", err)
				}
			})
		}
	})
}

func TestCallTimeouts(t *testing.T) {
	eachBus(t, func(t *testing.T, b *Bus) {
		// Nobody serves the subject: an answer at once.
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := Call[echoReq, echoResp](ctx, b, "test.nobody", echoReq{})
		if !errors.Is(err, ErrNoResponders) {
			t.Fatalf("call with no server: %v, want ErrNoResponders", err)
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("no responders took %s", time.Since(start))
		}

		// A server that does not answer in time: the caller's deadline,
		// which the server sees too.
		serverDeadline := make(chan time.Duration, 1)
		stop, err := Serve(b, "test.slow", func(ctx context.Context, req echoReq) (echoResp, error) {
			d, _ := ctx.Deadline()
			serverDeadline <- time.Until(d)
			<-ctx.Done()
			return echoResp{}, ctx.Err()
		})
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
		ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start = time.Now()
		_, err = Call[echoReq, echoResp](ctx, b, "test.slow", echoReq{})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call to a slow server: %v, want context.DeadlineExceeded", err)
		}
		if elapsed := time.Since(start); elapsed < 250*time.Millisecond || elapsed > 3*time.Second {
			t.Fatalf("timed out after %s, want about 300ms", elapsed)
		}
		if d := <-serverDeadline; d <= 0 || d > 300*time.Millisecond {
			t.Fatalf("server's deadline was %s away, want at most 300ms", d)
		}
		stop() // returns once the slow handler gave up

		// Stopped: nobody serves any more.
		if _, err := Call[echoReq, echoResp](context.Background(), b, "test.slow", echoReq{}); !errors.Is(err, ErrNoResponders) {
			t.Fatalf("call after stop: %v, want ErrNoResponders", err)
		}
	})
}

func TestServeRejectsBadCodes(t *testing.T) {
	b := openEmbedded(t, t.TempDir(), randomPrefix(t))
	tests := []struct {
		name  string
		codes ErrorCodes
	}{
		{"reserved", ErrorCodes{CodeInternal: errNotHere}},
		{"context code", ErrorCodes{CodeCanceled: errNotHere}},
		{"empty code", ErrorCodes{"": errNotHere}},
		{"nil error", ErrorCodes{"x": nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if stop, err := Serve(b, "test.codes", echo, WithErrors(tt.codes)); err == nil {
				stop()
				t.Fatal("serve accepted the table")
			}
		})
	}
}

func TestCloseStopsServers(t *testing.T) {
	cfg := config.Bus{StoreDir: "nats", Prefix: "hs"}
	b, err := Open(context.Background(), cfg, &config.Global{DataDir: t.TempDir()}, testLog())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if _, err := Serve(b, "test.echo", echo); err != nil {
		t.Fatalf("serve: %v", err)
	}
	if _, err := b.Consume(context.Background(), StreamPresence, "homeserver", "", func(context.Context, Message) error { return nil }); err != nil {
		t.Fatalf("consume: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("close: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("close hangs with a server and a consumer running")
	}
	if _, err := Serve(b, "test.echo", echo); err == nil {
		t.Fatal("serve on a closed bus succeeded")
	}
}
