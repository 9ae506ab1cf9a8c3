package scenario

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/matrix"
)

// Send is the send scenario: senders post into rooms at a paced total
// rate, nobody syncing; it measures the send request alone (the server's
// write path: build, authorise, commit), which chat's delivery figures
// include.
type Send struct {
	senders, rooms int
	rate           float64
	messages, size int
	timing
}

// Name implements Scenario.
func (s *Send) Name() string { return "send" }

// Describe implements Scenario.
func (s *Send) Describe() string {
	return "senders post into rooms at a total rate, without /sync: send latency and throughput"
}

// Flags implements Scenario.
func (s *Send) Flags(fs *flag.FlagSet) {
	fs.IntVar(&s.senders, "senders", 20, "users who send, spread over the rooms (each its own room when rooms = senders)")
	fs.IntVar(&s.rooms, "rooms", 20, "rooms")
	fs.Float64Var(&s.rate, "rate", 200, "messages per second, all senders together")
	fs.IntVar(&s.messages, "messages", 100000, "at most this many measured messages (the window ends sooner when reached)")
	fs.IntVar(&s.size, "message-bytes", 100, "approximate size of a message body")
	s.timing.flags(fs, 5*time.Second, 30*time.Second)
}

// Check implements Scenario.
func (s *Send) Check() error {
	switch {
	case s.rooms < 1 || s.senders < 1:
		return errors.New("--rooms and --senders must be at least 1")
	case s.rate <= 0 || s.messages < 1:
		return errors.New("--rate and --messages must be positive")
	}
	return s.timing.check()
}

// Params implements Scenario.
func (s *Send) Params() map[string]any {
	return s.timing.params(map[string]any{"senders": s.senders, "rooms": s.rooms, "rate": s.rate, "messages": s.messages, "message_bytes": s.size})
}

// Run implements Scenario.
func (s *Send) Run(ctx context.Context, e *Env) error {
	setupCtx, cancelSetup := e.setupContext(ctx)
	defer cancelSetup()
	e.phase("setup: users", 0)
	users, err := e.Users.Create(setupCtx, s.senders)
	if err != nil {
		return err
	}
	// Sender j sends into room j % rooms; the first sender of a room
	// creates it, the others join.
	e.phase("setup: rooms", 0)
	roomOf := func(j int) int { return j % s.rooms }
	roomIDs := make([]id.RoomID, s.rooms)
	for r := 0; r < s.rooms; r++ {
		creator := users[r%len(users)]
		if roomIDs[r], err = createRoom(setupCtx, e, creator, fmt.Sprintf("loadtest send %s %d", e.RunID, r)); err != nil {
			return err
		}
	}
	join := e.Rec.SetupSeries(seriesJoin)
	err = forEach(setupCtx, len(users), e.setupConcurrency(), func(ctx context.Context, j int) error {
		if j < s.rooms {
			return nil // the creator of its room
		}
		return joinRoom(ctx, users[j], roomIDs[roomOf(j)], join, true)
	})
	if err != nil {
		return err
	}

	send, sent, late := e.Rec.Series("send"), e.Rec.Counter("messages.sent"), e.Rec.Counter("sends.late")
	done, finish := e.ender()
	var fatal firstError
	var measured atomic.Int64
	stopSend := make(chan struct{})
	e.Progress.SetStatus(func() string { return fmt.Sprintf("sent %d, errors %d", sent.Value(), send.ErrorCount()) })
	defer e.Progress.SetStatus(nil)
	wait := pace(stopSend, s.senders, s.rate, late, func(k, j int) {
		tag := fmt.Sprintf("%s-%d", e.RunID, k)
		start := time.Now()
		if err := sendMessage(ctx, users[j], roomIDs[roomOf(j)], tag, s.size); err != nil {
			if ctx.Err() != nil {
				return
			}
			if matrix.IsNotImplemented(err) {
				fatal.set(err)
				finish()
			}
			send.Fail(start, matrix.ErrCode(err))
			return
		}
		send.Observe(start, time.Since(start))
		sent.Add(start, 1)
		if e.Rec.InWindow(start) && measured.Add(1) >= int64(s.messages) {
			finish()
		}
	})
	e.window(s.warmup, s.duration, done)
	close(stopSend)
	wait()
	return fatal.get()
}
