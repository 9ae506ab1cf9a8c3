package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/matrix-gouv/homeserver/config"
)

// errNotHere is a service's sentinel error in these tests.
var errNotHere = errors.New("not here")

func testCodes() ErrorCodes { return ErrorCodes{"not_here": errNotHere} }

// refusedError is a service's typed error in these tests: it crosses with
// its field.
type refusedError struct{ Why string }

func (e *refusedError) Error() string { return "refused: " + e.Why }

// testOptions are the error options of the echo service.
func testOptions() []RPCOption {
	return []RPCOption{WithErrors(testCodes()), WithErrorType[refusedError]("refused")}
}

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
	case "refused":
		return echoResp{}, &refusedError{Why: "rule 4"}
	case "refused-wrapped":
		return echoResp{}, fmt.Errorf("check event: %w", &refusedError{Why: "rule 5"})
	case "refused-and-missing":
		return echoResp{}, fmt.Errorf("%w: %w", errNotHere, &refusedError{Why: "rule 6"})
	case "partial":
		return echoResp{Said: "half of it"}, fmt.Errorf("then: %w", errNotHere)
	case "deadline":
		if _, ok := ctx.Deadline(); !ok {
			return echoResp{}, errors.New("no deadline")
		}
	}
	return echoResp{Said: req.Say}, nil
}

func TestServeCall(t *testing.T) {
	eachBus(t, func(t *testing.T, b *Bus) {
		stop, err := Serve(b, "test.echo", echo, testOptions()...)
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
		defer stop()

		tests := []struct {
			say      string
			want     string
			wantIs   error  // errors.Is must hold
			wantCode string // of the *RemoteError
			wantWhy  string // errors.As must find a *refusedError with it
			wantMsg  string // the remote error's message, when set
		}{
			{say: "hello", want: "hello"},
			{say: "deadline", want: "deadline"}, // Call sent its default timeout
			{say: "missing", wantIs: errNotHere, wantCode: "not_here"},
			{say: "missing-wrapped", wantIs: errNotHere, wantCode: "not_here", wantMsg: "look up: not here"},
			{say: "boom", wantCode: CodeInternal},
			{say: "panic", wantCode: CodeInternal},
			{say: "refused", wantCode: "refused", wantWhy: "rule 4", wantMsg: "refused: rule 4"},
			{say: "refused-wrapped", wantCode: "refused", wantWhy: "rule 5", wantMsg: "check event: refused: rule 5"},
			// The type goes first; the sentinel is not lost from the message.
			{say: "refused-and-missing", wantCode: "refused", wantWhy: "rule 6", wantMsg: "not here: refused: rule 6"},
			// A partial result comes back beside the error.
			{say: "partial", want: "half of it", wantIs: errNotHere, wantCode: "not_here"},
		}
		for _, tt := range tests {
			t.Run(tt.say, func(t *testing.T) {
				got, err := Call[echoReq, echoResp](context.Background(), b, "test.echo", echoReq{Say: tt.say}, testOptions()...)
				if got.Said != tt.want {
					t.Fatalf("got %+v, want %q", got, tt.want)
				}
				if tt.wantCode == "" {
					if err != nil {
						t.Fatalf("error %v", err)
					}
					return
				}
				var re *RemoteError
				if !errors.As(err, &re) || re.Code != tt.wantCode {
					t.Fatalf("got error %v, want a RemoteError with code %s", err, tt.wantCode)
				}
				if tt.wantMsg != "" && re.Message != tt.wantMsg {
					t.Errorf("message %q, want %q", re.Message, tt.wantMsg)
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Fatalf("errors.Is(%v, %v) is false", err, tt.wantIs)
				}
				if tt.wantIs == nil && errors.Is(err, errNotHere) {
					t.Fatalf("%v matches errNotHere", err)
				}
				var refused *refusedError
				if got := errors.As(err, &refused); got != (tt.wantWhy != "") || got && refused.Why != tt.wantWhy {
					t.Fatalf("errors.As(%v, *refusedError) = %v %+v, want reason %q", err, got, refused, tt.wantWhy)
				}
			})
		}

		// A caller that does not know the type still has the code and
		// the message.
		_, err = Call[echoReq, echoResp](context.Background(), b, "test.echo", echoReq{Say: "refused"}, WithErrors(testCodes()))
		var re *RemoteError
		if !errors.As(err, &re) || re.Code != "refused" || re.Message != "refused: rule 4" || re.Unwrap() != nil {
			t.Fatalf("without the type: %#v", err)
		}
	})
}

// TestLargeReplies sends replies larger than one NATS message (1 MB by
// default) and requests larger than one.
func TestLargeReplies(t *testing.T) {
	eachBus(t, func(t *testing.T, b *Bus) {
		stop, err := Serve(b, "test.big", func(ctx context.Context, req echoReq) (echoResp, error) {
			n, err := strconv.Atoi(req.Say)
			if err != nil {
				return echoResp{}, err
			}
			return echoResp{Said: strings.Repeat("x", n)}, nil
		})
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
		defer stop()
		part := b.partSize()
		for _, n := range []int{10, part - 20, part, part + 1, 3*part + 17, 5 << 20} {
			got, err := Call[echoReq, echoResp](context.Background(), b, "test.big", echoReq{Say: strconv.Itoa(n)})
			if err != nil || len(got.Said) != n || strings.Trim(got.Said, "x") != "" {
				t.Fatalf("reply of %d bytes: %d bytes back, %v", n, len(got.Said), err)
			}
		}

		// Over the cap: an error, at once.
		_, err = Call[echoReq, echoResp](context.Background(), b, "test.big", echoReq{Say: strconv.Itoa(MaxReplyBytes + 1)})
		var re *RemoteError
		if !errors.As(err, &re) || re.Code != CodeInternal || !strings.Contains(re.Message, "larger than the bus carries") {
			t.Fatalf("reply over the cap: %v", err)
		}

		// A request over max_payload fails at once too.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		if _, err := Call[echoReq, echoResp](ctx, b, "test.big", echoReq{Say: strings.Repeat("9", part+partHeadroom)}); err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("request over max_payload: %v, want an error at once", err)
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("request over max_payload took %s", time.Since(start))
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
		name string
		opts []RPCOption
	}{
		{"reserved", []RPCOption{WithErrors(ErrorCodes{CodeInternal: errNotHere})}},
		{"context code", []RPCOption{WithErrors(ErrorCodes{CodeCanceled: errNotHere})}},
		{"empty code", []RPCOption{WithErrors(ErrorCodes{"": errNotHere})}},
		{"nil error", []RPCOption{WithErrors(ErrorCodes{"x": nil})}},
		{"reserved type code", []RPCOption{WithErrorType[refusedError](CodeBadRequest)}},
		{"empty type code", []RPCOption{WithErrorType[refusedError]("")}},
		{"type code of a sentinel", []RPCOption{WithErrors(testCodes()), WithErrorType[refusedError]("not_here")}},
		{"type code twice", []RPCOption{WithErrorType[refusedError]("r"), WithErrorType[refusedError]("r")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if stop, err := Serve(b, "test.codes", echo, tt.opts...); err == nil {
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

// BenchmarkCall measures one small request and its reply on an embedded
// bus: the cost the NATS transport adds to a component query.
func BenchmarkCall(b *testing.B) {
	bus := openEmbedded(b, b.TempDir(), randomPrefix(b))
	stop, err := Serve(bus, "bench.echo", echo, WithErrors(testCodes()))
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Call[echoReq, echoResp](ctx, bus, "bench.echo", echoReq{Say: "hello"}, WithErrors(testCodes())); err != nil {
			b.Fatal(err)
		}
	}
}
