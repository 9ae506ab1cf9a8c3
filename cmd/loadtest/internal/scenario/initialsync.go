package scenario

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/matrix"
)

// defaultInitialSyncFilter is what a client such as Element asks for on
// its first sync: members loaded lazily and a short timeline per room.
const defaultInitialSyncFilter = `{"room":{"state":{"lazy_load_members":true},"timeline":{"limit":10}}}`

// InitialSync is the initial-sync scenario: one user in rooms full of
// messages, timing a fresh /sync (no since token) without a filter and
// with one, alternately.
type InitialSync struct {
	rooms, messages, syncs int
	size                   int
	filter                 string
	timing
}

// Name implements Scenario.
func (s *InitialSync) Name() string { return "initial-sync" }

// Describe implements Scenario.
func (s *InitialSync) Describe() string {
	return "one user in N rooms of M messages: time of a fresh /sync, with and without a filter"
}

// Flags implements Scenario.
func (s *InitialSync) Flags(fs *flag.FlagSet) {
	fs.IntVar(&s.rooms, "rooms", 20, "rooms the user is in")
	fs.IntVar(&s.messages, "messages", 20, "messages sent in each room during setup")
	fs.IntVar(&s.size, "message-bytes", 100, "approximate size of a message body")
	fs.IntVar(&s.syncs, "syncs", 10, "measured syncs of each kind (the window ends sooner when reached)")
	fs.StringVar(&s.filter, "filter", defaultInitialSyncFilter, "the filter of the filtered sync: inline JSON or a filter ID")
	s.timing.flags(fs, 2*time.Second, 60*time.Second)
}

// Check implements Scenario.
func (s *InitialSync) Check() error {
	switch {
	case s.rooms < 1 || s.messages < 0:
		return errors.New("--rooms must be positive and --messages at least 0")
	case s.syncs < 1:
		return errors.New("--syncs must be positive")
	case s.filter == "":
		return errors.New("--filter cannot be empty")
	}
	return s.timing.check()
}

// Params implements Scenario.
func (s *InitialSync) Params() map[string]any {
	return s.timing.params(map[string]any{"rooms": s.rooms, "messages": s.messages, "message_bytes": s.size, "syncs": s.syncs, "filter": s.filter})
}

// Run implements Scenario.
func (s *InitialSync) Run(ctx context.Context, e *Env) error {
	setupCtx, cancelSetup := e.setupContext(ctx)
	defer cancelSetup()
	e.phase("setup: user", 0)
	users, err := e.Users.Create(setupCtx, 1)
	if err != nil {
		return err
	}
	u := users[0]
	if err := requireSync(setupCtx, u); err != nil {
		return err
	}

	// One user creates its rooms one after the other, as a client does,
	// then fills them a few at a time.
	e.phase("setup: rooms", 0)
	roomIDs := make([]id.RoomID, s.rooms)
	for r := range roomIDs {
		if roomIDs[r], err = createRoom(setupCtx, e, u, fmt.Sprintf("loadtest initial-sync %s %d", e.RunID, r)); err != nil {
			return err
		}
	}
	e.phase("setup: messages", 0)
	sends := e.Rec.SetupSeries(seriesSend)
	err = forEach(setupCtx, s.rooms, e.setupConcurrency(), func(ctx context.Context, r int) error {
		for m := range s.messages {
			tag := fmt.Sprintf("%s-%d-%d", e.RunID, r, m)
			err := matrix.RetryLimited(ctx, func() error {
				start := time.Now()
				if err := sendMessage(ctx, u, roomIDs[r], tag, s.size); err != nil {
					sends.Fail(start, matrix.ErrCode(err))
					return err
				}
				sends.Observe(start, time.Since(start))
				return nil
			})
			if err != nil {
				return fmt.Errorf("fill room %s: %w", roomIDs[r], err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}

	kinds := []struct {
		series, filter string
	}{{"sync.full", ""}, {"sync.filtered", s.filter}}
	rooms := e.Rec.Counter("sync.rooms_missing")
	e.Progress.SetStatus(func() string {
		return fmt.Sprintf("full %d, filtered %d", e.Rec.Series(kinds[0].series).Count(), e.Rec.Series(kinds[1].series).Count())
	})
	defer e.Progress.SetStatus(nil)

	// One sync at a time, alternating kinds, from the warm-up to the end
	// of the window: a fresh sync is a heavy request, and concurrent ones
	// would measure the queue rather than the sync.
	done, finish := e.ender()
	stop := make(chan struct{})
	result := make(chan error, 1)
	go func() {
		measured := 0
		for i := 0; ; i++ {
			select {
			case <-stop:
				result <- nil
				return
			default:
			}
			k := kinds[i%2]
			series := e.Rec.Series(k.series)
			start := time.Now()
			raw, err := doSync(ctx, u, "", k.filter, 0)
			d := time.Since(start)
			var r *syncResponse
			if err == nil {
				r, err = parseSync(raw)
			}
			if err != nil {
				if ctx.Err() != nil {
					result <- nil
					return
				}
				series.Fail(start, matrix.ErrCode(err))
				if matrix.IsNotImplemented(err) {
					finish()
					result <- err
					return
				}
				sleep(ctx, 100*time.Millisecond)
				continue
			}
			series.ObserveBytes(start, d, int64(len(raw)))
			if n := len(r.Rooms.Join); n < s.rooms {
				rooms.Add(start, int64(s.rooms-n))
			}
			if e.Rec.InWindow(start) {
				if measured++; measured >= 2*s.syncs {
					finish()
				}
			}
		}
	}()
	e.window(s.warmup, s.duration, done)
	close(stop)
	return <-result
}
