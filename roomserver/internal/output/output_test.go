package output

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/internal/bus"
	"github.com/matrix-gouv/homeserver/internal/bus/bustest"
	"github.com/matrix-gouv/homeserver/roomserver/api"
	"github.com/matrix-gouv/homeserver/roomserver/storage"
)

// memOutbox is an outbox in memory; failReads makes Outbox fail that many
// times.
type memOutbox struct {
	mu        sync.Mutex
	rows      map[int64][]byte
	failReads int
	reads     int
	// emptyReads counts the reads that found nothing.
	emptyReads int
}

func (m *memOutbox) Outbox(_ context.Context, limit int) ([]storage.OutboxEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	if m.failReads > 0 {
		m.failReads--
		return nil, errors.New("database unavailable")
	}
	nids := make([]int64, 0, len(m.rows))
	for n := range m.rows {
		nids = append(nids, n)
	}
	slices.Sort(nids)
	var out []storage.OutboxEntry
	for _, n := range nids[:min(limit, len(nids))] {
		out = append(out, storage.OutboxEntry{EventNID: n, JSON: m.rows[n]})
	}
	if len(out) == 0 {
		m.emptyReads++
	}
	return out, nil
}

// waitDrained waits until the publisher found the outbox empty: its
// reading of the outbox is over, and what is handed from then on is
// published from memory. (Before that, an event committed and handed may
// be read from the outbox first, and then be a repeat.)
func (m *memOutbox) waitDrained(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		m.mu.Lock()
		drained := m.emptyReads > 0
		m.mu.Unlock()
		if drained {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the publisher never found the outbox empty")
		}
	}
}

func (m *memOutbox) RemoveFromOutbox(_ context.Context, nids []int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range nids {
		delete(m.rows, n)
	}
	return nil
}

func (m *memOutbox) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.rows)
}

// commit writes events from..to-1 of one room to the outbox and returns
// the entries the input path would hand over.
func (m *memOutbox) commit(t *testing.T, from, to int) []storage.OutboxEntry {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []storage.OutboxEntry
	for i := from; i < to; i++ {
		ev := api.Event{RoomID: "!r:example.org", EventID: fmt.Sprintf("$%d", i)}
		js, err := json.Marshal(api.OutputEvent{Event: ev})
		if err != nil {
			t.Fatal(err)
		}
		m.rows[int64(i)] = js
		out = append(out, storage.OutboxEntry{EventNID: int64(i), JSON: js, RoomID: ev.RoomID, EventID: ev.EventID})
	}
	return out
}

// collect consumes the output stream and returns the event ids once n
// distinct ones came (a repeat is dropped by the stream's deduplication,
// so a repeat here is a defect).
func collect(t *testing.T, b *bus.Bus, n int) []string {
	t.Helper()
	var mu sync.Mutex
	var got []string
	done := make(chan struct{})
	stop, err := b.Consume(context.Background(), bus.StreamRoomserverOutput, "test", "", func(_ context.Context, msg bus.Message) error {
		var out api.OutputEvent
		if err := msg.Decode(&out); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, out.Event.EventID)
		if len(got) == n {
			close(done)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("got %d of %d events", len(got), n)
	}
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(got)
}

func TestPublisher(t *testing.T) {
	tests := []struct {
		name string
		// before are committed (and not published) before Start.
		before int
		// batches are committed and handed after Start.
		batches   []int
		failReads int
	}{
		{name: "handed", batches: []int{1, 5, 1, 100}},
		{name: "left by an earlier run first", before: 30, batches: []int{3, 3}},
		{name: "more than the hand-off holds", batches: []int{maxHanded - 10, 50, 10}},
		{name: "outbox unreadable for a while", before: 5, batches: []int{5}, failReads: 2},
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := bustest.Embedded(t)
			store := &memOutbox{rows: map[int64][]byte{}, failReads: tt.failReads}
			store.commit(t, 0, tt.before)
			p := New(store, b, logrus.NewEntry(log))
			p.Start(context.Background())
			n := tt.before
			for _, size := range tt.batches {
				p.Hand(store.commit(t, n, n+size))
				n += size
			}
			got := collect(t, b, n)
			for i, id := range got {
				if want := fmt.Sprintf("$%d", i); id != want {
					t.Fatalf("event %d published is %s, want %s: order lost", i, id, want)
				}
			}
			p.Stop(context.Background())
			if left := store.len(); left != 0 {
				t.Errorf("%d outbox rows left after stop", left)
			}
		})
	}
}

func TestPublisherReadsOutboxOnlyWhenItMust(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	b := bustest.Embedded(t)
	store := &memOutbox{rows: map[int64][]byte{}}
	p := New(store, b, logrus.NewEntry(log))
	p.Start(context.Background())
	defer p.Stop(context.Background())
	// The first round reads the outbox (what an earlier run left).
	p.Hand(store.commit(t, 0, 1))
	collect(t, b, 1)
	store.waitDrained(t)
	store.mu.Lock()
	before := store.reads
	store.mu.Unlock()
	for i := 1; i < 20; i++ {
		p.Hand(store.commit(t, i, i+1))
	}
	collect(t, b, 19)
	store.mu.Lock()
	defer store.mu.Unlock()
	// The events handed since are published from memory.
	if store.reads != before {
		t.Errorf("the outbox was read %d more times for 19 events handed", store.reads-before)
	}
}

// listener records what the publisher told it.
type listener struct {
	mu   sync.Mutex
	seqs []uint64
	ids  []string
}

func (l *listener) OutputPublished(seq uint64, output json.RawMessage) {
	var out api.OutputEvent
	_ = json.Unmarshal(output, &out)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seqs, l.ids = append(l.seqs, seq), append(l.ids, out.Event.EventID)
}

func TestPublisherTellsListener(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	b := bustest.Embedded(t)
	store := &memOutbox{rows: map[int64][]byte{}}
	store.commit(t, 0, 2) // left by an earlier run: read back, not told
	l := &listener{}
	p := New(store, b, logrus.NewEntry(log))
	p.Listen(l)
	p.Start(context.Background())
	defer p.Stop(context.Background())
	collect(t, b, 2)
	store.waitDrained(t)
	for i := 2; i < 5; i++ {
		p.Hand(store.commit(t, i, i+1))
	}
	collect(t, b, 3)
	// A backlog goes through the bus alone.
	p.Hand(store.commit(t, 5, 5+maxTold+1))
	collect(t, b, maxTold+1)
	// The listener is told once JetStream acknowledged the publish, which
	// may come after the collector got the messages.
	deadline := time.Now().Add(5 * time.Second)
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.ids) < 3 && time.Now().Before(deadline) {
		l.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
		l.mu.Lock()
	}
	if want := []string{"$2", "$3", "$4"}; !slices.Equal(l.ids, want) {
		t.Fatalf("told of %v, want %v", l.ids, want)
	}
	if want := []uint64{3, 4, 5}; !slices.Equal(l.seqs, want) {
		t.Errorf("told stream sequences %v, want %v", l.seqs, want)
	}
}
