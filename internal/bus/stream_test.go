package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func streamMsgs(t *testing.T, b *Bus, stream string) uint64 {
	t.Helper()
	st, err := b.js.Stream(context.Background(), b.StreamName(stream))
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatalf("stream %s info: %v", stream, err)
	}
	return info.State.Msgs
}

func TestPublish(t *testing.T) {
	eachBus(t, func(t *testing.T, b *Bus) {
		ctx := context.Background()
		subject := Subject(SubjectRoomserverOutput, Partition("!room:example.org", 8))
		steps := []struct {
			msgID    string
			wantMsgs uint64
		}{
			{"$a", 1},
			{"$a", 1}, // a retry: deduplicated
			{"$b", 2},
			{"", 3}, // no id: no deduplication
			{"", 4},
		}
		for _, s := range steps {
			if err := b.Publish(ctx, subject, s.msgID, map[string]string{"id": s.msgID}); err != nil {
				t.Fatalf("publish %q: %v", s.msgID, err)
			}
			if got := streamMsgs(t, b, StreamRoomserverOutput); got != s.wantMsgs {
				t.Fatalf("after publishing %q: %d messages, want %d", s.msgID, got, s.wantMsgs)
			}
		}
	})
}

func TestPublishRejects(t *testing.T) {
	b := openEmbedded(t, t.TempDir(), randomPrefix(t))
	ctx := context.Background()
	tests := []struct {
		name    string
		subject string
		v       any
	}{
		{"empty subject", "", 1},
		{"wildcard", "roomserver.output.*", 1},
		{"empty token", "roomserver..output", 1},
		{"no stream", "nowhere.0", 1},
		{"not JSON", Subject(SubjectRoomserverOutput, "0"), func() {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			if err := b.Publish(ctx, tt.subject, "", tt.v); err == nil {
				t.Fatal("publish succeeded, want an error")
			}
		})
	}
}

// recorder collects what a Handler saw.
type recorder struct {
	mu  sync.Mutex
	got []string
	ch  chan struct{}
}

func newRecorder() *recorder { return &recorder{ch: make(chan struct{}, 100)} }

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.got = append(r.got, s)
	r.mu.Unlock()
	r.ch <- struct{}{}
}

// wait waits for n records and returns them all.
func (r *recorder) wait(t *testing.T, n int) []string {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-r.ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("got %d messages, want %d: %v", i, n, r.snapshot())
		}
	}
	return r.snapshot()
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

func TestConsumeInOrderWithRedelivery(t *testing.T) {
	eachBus(t, func(t *testing.T, b *Bus) {
		ctx := context.Background()
		subject := Subject(SubjectRoomserverOutput, "5")
		for i := 1; i <= 5; i++ {
			if err := b.Publish(ctx, subject, "$"+strconv.Itoa(i), i); err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
		}
		rec := newRecorder()
		failed := false
		handler := func(ctx context.Context, msg Message) error {
			var n int
			if err := msg.Decode(&n); err != nil {
				return err
			}
			rec.add(fmt.Sprintf("%d#%d", n, msg.Delivery))
			if n == 3 && !failed { // fail once: must come back before 4
				failed = true
				return errors.New("database is down")
			}
			return nil
		}
		stop, err := b.Consume(ctx, StreamRoomserverOutput, "sync", Subject(SubjectRoomserverOutput, "*"), handler,
			WithBackoff(20*time.Millisecond, 100*time.Millisecond))
		if err != nil {
			t.Fatalf("consume: %v", err)
		}
		got := rec.wait(t, 6)
		want := []string{"1#1", "2#1", "3#1", "3#2", "4#1", "5#1"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("handled %v, want %v", got, want)
		}
		stop()
		stop() // stopping twice is fine

		// The durable consumer resumes where it stopped.
		if err := b.Publish(ctx, subject, "$6", 6); err != nil {
			t.Fatalf("publish 6: %v", err)
		}
		stop, err = b.Consume(ctx, StreamRoomserverOutput, "sync", Subject(SubjectRoomserverOutput, "*"), handler)
		if err != nil {
			t.Fatalf("consume again: %v", err)
		}
		defer stop()
		if got := rec.wait(t, 1); got[len(got)-1] != "6#1" {
			t.Fatalf("after restart handled %v, want 6#1 last", got)
		}
		select {
		case <-rec.ch:
			t.Fatalf("extra message after restart: %v", rec.snapshot())
		case <-time.After(100 * time.Millisecond):
		}
	})
}

func TestConsumeDropsPoison(t *testing.T) {
	eachBus(t, func(t *testing.T, b *Bus) {
		ctx := context.Background()
		subject := Subject(SubjectToDevice, "0")
		if err := b.Publish(ctx, subject, "bad", "not a number"); err != nil {
			t.Fatalf("publish: %v", err)
		}
		if err := b.Publish(ctx, subject, "good", 2); err != nil {
			t.Fatalf("publish: %v", err)
		}
		rec := newRecorder()
		stop, err := b.Consume(ctx, StreamToDevice, "homeserver", "", func(ctx context.Context, msg Message) error {
			rec.add(msg.ID)
			var n int
			return msg.Decode(&n)
		})
		if err != nil {
			t.Fatalf("consume: %v", err)
		}
		defer stop()
		got := rec.wait(t, 2)
		if fmt.Sprint(got) != "[bad good]" {
			t.Fatalf("handled %v, want [bad good]", got)
		}
		select {
		case <-rec.ch:
			t.Fatalf("poison message came back: %v", rec.snapshot())
		case <-time.After(300 * time.Millisecond):
		}
	})
}

func TestConsumeStopsWithContext(t *testing.T) {
	b := openEmbedded(t, t.TempDir(), randomPrefix(t))
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	returned := make(chan struct{})
	stop, err := b.Consume(ctx, StreamReceipts, "sync", "", func(ctx context.Context, msg Message) error {
		close(started)
		<-ctx.Done() // a handler that only ends when the consumer does
		close(returned)
		return ctx.Err()
	})
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	if err := b.Publish(context.Background(), Subject(SubjectReceipts, "0"), "r1", 1); err != nil {
		t.Fatalf("publish: %v", err)
	}
	<-started
	cancel()
	stop() // returns only once the handler has
	select {
	case <-returned:
	default:
		t.Fatal("stop returned before the handler")
	}
}

func TestConsumeBatchKeepsOrderAcrossFailures(t *testing.T) {
	eachBus(t, func(t *testing.T, b *Bus) {
		ctx := context.Background()
		const n = 40
		publish := func(from, to int) {
			for i := from; i < to; i++ {
				if err := b.Publish(ctx, Subject(SubjectRoomserverOutput, strconv.Itoa(i%4)), fmt.Sprint("m", i), i); err != nil {
					t.Error(err)
				}
			}
		}
		var mu sync.Mutex
		var got []int
		failed := make(chan struct{})
		done := make(chan struct{})
		handler := func(ctx context.Context, msgs []Message) error {
			mu.Lock()
			defer mu.Unlock()
			if got == nil {
				// The first batch fails once; newer messages arrive while
				// it waits for its retry, and must not overtake it.
				got = []int{}
				close(failed)
				return errors.New("transient")
			}
			for _, m := range msgs {
				var v int
				if err := m.Decode(&v); err != nil {
					return err
				}
				got = append(got, v)
			}
			if len(got) == n {
				close(done)
			}
			return nil
		}
		publish(0, 3)
		stop, err := b.ConsumeBatch(ctx, StreamRoomserverOutput, "batch", "", handler, 64, WithBackoff(300*time.Millisecond, time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		<-failed
		publish(3, n)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			mu.Lock()
			t.Fatalf("got %d of %d messages", len(got), n)
		}
		mu.Lock()
		defer mu.Unlock()
		for i, v := range got {
			if v != i {
				t.Fatalf("message %d is %d: order lost (%v)", i, v, got)
			}
		}
	})
}

func TestConsumeBatchReplaysPendingFirst(t *testing.T) {
	eachBus(t, func(t *testing.T, b *Bus) {
		ctx := context.Background()
		publish := func(from, to int) {
			for i := from; i < to; i++ {
				if err := b.Publish(ctx, Subject(SubjectRoomserverOutput, strconv.Itoa(i%4)), fmt.Sprint("m", i), i); err != nil {
					t.Fatal(err)
				}
			}
		}
		const durable = "replay"
		publish(0, 10)
		// An earlier run that died: it took five messages, acknowledged
		// the first two and never answered for the other three.
		stream := b.StreamName(StreamRoomserverOutput)
		cons, err := b.js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: durable,
			AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait, MaxDeliver: -1, MaxAckPending: 64})
		if err != nil {
			t.Fatal(err)
		}
		batch, err := cons.FetchNoWait(5)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			if n < 2 {
				if err := m.DoubleAck(ctx); err != nil {
					t.Fatal(err)
				}
			}
			n++
		}
		if n != 5 {
			t.Fatalf("the earlier run took %d messages, want 5", n)
		}
		publish(10, 15)

		type seen struct{ v, delivery int }
		var mu sync.Mutex
		var got []seen
		done := make(chan struct{}, 1)
		handler := func(ctx context.Context, msgs []Message) error {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range msgs {
				var v int
				if err := m.Decode(&v); err != nil {
					return err
				}
				got = append(got, seen{v, int(m.Delivery)})
			}
			if len(got) >= 13 {
				select {
				case done <- struct{}{}:
				default:
				}
			}
			return nil
		}
		stop, err := b.ConsumeBatch(ctx, StreamRoomserverOutput, durable, "", handler, 64, WithReplayPendingFirst())
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("got %v, want messages 2 to 14", got)
		}
		stop()
		mu.Lock()
		for i, s := range got {
			if s.v != i+2 {
				t.Fatalf("message %d is %d, want %d: pending messages must come first, in order (%v)", i, s.v, i+2, got)
			}
			if again := s.v < 5; again != (s.delivery > 1) {
				t.Errorf("message %d delivered with count %d; redelivered = %v", s.v, s.delivery, again)
			}
		}
		got = nil
		mu.Unlock()

		// The next run, with nothing pending, goes on where this one
		// stopped (the recreated consumer keeps its start).
		publish(15, 28)
		stop, err = b.ConsumeBatch(ctx, StreamRoomserverOutput, durable, "", handler, 64, WithReplayPendingFirst())
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("got %v, want messages 15 to 27", got)
		}
		mu.Lock()
		defer mu.Unlock()
		if got[0].v != 15 || got[0].delivery != 1 {
			t.Fatalf("the next run began with %v, want message 15 delivered once", got[0])
		}
	})
}

// TestConsumeBatchLingers: with WithBatchLinger, messages published a
// little apart are handled as one batch; without it, each alone; with
// WithBatchLingerWhile, a batch stops lingering at a message refused.
func TestConsumeBatchLingers(t *testing.T) {
	eachBus(t, func(t *testing.T, b *Bus) {
		ctx := context.Background()
		for k, tc := range []struct {
			name string
			opts []ConsumeOption
			want []int
		}{
			{"no linger", nil, []int{1, 1, 1}},
			{"linger", []ConsumeOption{WithBatchLinger(time.Second)}, []int{3}},
			{"linger while all accepted", []ConsumeOption{WithBatchLingerWhile(time.Second, func(Message) bool { return true })}, []int{3}},
			// Message 1 ends the first batch at once; message 2 lingers alone.
			{"second refused", []ConsumeOption{WithBatchLingerWhile(time.Second, refuse("1"))}, []int{2, 1}},
			// Message 0 goes alone; 1 lingers and 2 joins it.
			{"first refused", []ConsumeOption{WithBatchLingerWhile(time.Second, refuse("0"))}, []int{1, 2}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				sizes := make(chan int, 3)
				name := "linger" + strconv.Itoa(k)
				stop, err := b.ConsumeBatch(ctx, StreamRoomserverOutput, name, SubjectRoomserverOutput+"."+name,
					func(_ context.Context, msgs []Message) error { sizes <- len(msgs); return nil }, 64, tc.opts...)
				if err != nil {
					t.Fatal(err)
				}
				defer stop()
				for i := 0; i < 3; i++ {
					if err := b.Publish(ctx, Subject(SubjectRoomserverOutput, name), fmt.Sprint(tc.name, i), i); err != nil {
						t.Fatal(err)
					}
					time.Sleep(100 * time.Millisecond)
				}
				var got []int
				for n := 0; n < 3; {
					select {
					case s := <-sizes:
						got = append(got, s)
						n += s
					case <-time.After(5 * time.Second):
						t.Fatalf("batches so far %v", got)
					}
				}
				if !slices.Equal(got, tc.want) {
					t.Fatalf("batch sizes %v, want %v", got, tc.want)
				}
			})
		}
	})
}

// refuse accepts every message but those whose id ends with suffix.
func refuse(suffix string) func(Message) bool {
	return func(m Message) bool { return !strings.HasSuffix(m.ID, suffix) }
}
