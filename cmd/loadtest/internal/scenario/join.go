package scenario

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/accounts"
	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/matrix"
)

// phaseWave labels the series of the join wave: a measured burst, not a
// steady window.
const phaseWave = "wave"

// Join is the join scenario: users joining one public room all at once
// (the wave), then leaving and joining again for the window (membership
// churn, the load state resolution feels).
type Join struct {
	users, ops int
	churn      bool
	timing
}

// Name implements Scenario.
func (j *Join) Name() string { return "join" }

// Describe implements Scenario.
func (j *Join) Describe() string {
	return "users joining one public room at once, then leaving and rejoining: join and leave latency"
}

// Flags implements Scenario.
func (j *Join) Flags(fs *flag.FlagSet) {
	fs.IntVar(&j.users, "users", 50, "users joining the room (plus one who creates it)")
	fs.BoolVar(&j.churn, "churn", true, "after the wave, have every user leave and rejoin until the window ends")
	fs.IntVar(&j.ops, "ops", 5000, "at most this many measured leaves and joins in the churn (the window ends sooner when reached)")
	j.timing.flags(fs, 2*time.Second, 20*time.Second)
}

// Check implements Scenario.
func (j *Join) Check() error {
	if j.users < 1 || j.ops < 1 {
		return errors.New("--users and --ops must be positive")
	}
	return j.timing.check()
}

// Params implements Scenario.
func (j *Join) Params() map[string]any {
	return j.timing.params(map[string]any{"users": j.users, "churn": j.churn, "ops": j.ops})
}

// Run implements Scenario.
func (j *Join) Run(ctx context.Context, e *Env) error {
	setupCtx, cancelSetup := e.setupContext(ctx)
	defer cancelSetup()
	e.phase("setup: users", 0)
	users, err := e.Users.Create(setupCtx, j.users+1)
	if err != nil {
		return err
	}
	owner, joiners := users[0], users[1:]
	e.phase("setup: room", 0)
	roomID, err := createRoom(setupCtx, e, owner, "loadtest join "+e.RunID)
	if err != nil {
		return err
	}
	if e.Stopped() {
		return nil
	}

	// The wave: every joiner released at once.
	e.phase("join wave", 0)
	wave := e.Rec.PhaseSeries("join.wave", phaseWave)
	e.Progress.SetStatus(func() string {
		return fmt.Sprintf("joined %d/%d, errors %d", wave.Count(), len(joiners), wave.ErrorCount())
	})
	defer e.Progress.SetStatus(nil)
	release := make(chan struct{})
	var wg sync.WaitGroup
	joined := make([]bool, len(joiners))
	var fatal firstError
	for i, u := range joiners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
			if err := joinRoom(ctx, u, roomID, wave, false); err != nil {
				if matrix.IsNotImplemented(err) {
					fatal.set(err)
				}
				return
			}
			joined[i] = true
		}()
	}
	close(release)
	wg.Wait()
	if err := fatal.get(); err != nil {
		return err
	}

	if j.churn && !e.Stopped() {
		if err := j.runChurn(ctx, e, joiners, joined, roomID); err != nil {
			return err
		}
	}
	return j.check(ctx, e, owner, roomID, joined)
}

// runChurn has each joined user leave and rejoin in a loop through the
// warm-up and the window. Every user ends joined.
func (j *Join) runChurn(ctx context.Context, e *Env, joiners []*accounts.User, joined []bool, roomID id.RoomID) error {
	leave, rejoin := e.Rec.Series("leave"), e.Rec.Series("rejoin")
	e.Progress.SetStatus(func() string {
		return fmt.Sprintf("left %d, rejoined %d, errors %d", leave.Count(), rejoin.Count(), leave.ErrorCount()+rejoin.ErrorCount())
	})
	done, finish := e.ender()
	stop := make(chan struct{})
	var fatal firstError
	var measured atomic.Int64
	count := func(start time.Time) {
		if e.Rec.InWindow(start) && measured.Add(1) >= int64(j.ops) {
			finish()
		}
	}
	var wg sync.WaitGroup
	for i, u := range joiners {
		if !joined[i] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				if _, err := u.LeaveRoom(ctx, roomID); err != nil {
					if ctx.Err() != nil {
						return
					}
					leave.Fail(start, matrix.ErrCode(err))
					if err := matrix.CheckImplemented(err, capLeave); matrix.IsNotImplemented(err) {
						fatal.set(err)
						finish()
						return
					}
					sleep(ctx, 100*time.Millisecond)
					continue
				}
				leave.Observe(start, time.Since(start))
				count(start)
				joined[i] = false
				// Rejoin even when stopping: every user ends in the room.
				for !joined[i] && ctx.Err() == nil {
					err := joinRoom(ctx, u, roomID, rejoin, false)
					if err == nil {
						joined[i] = true
						count(start)
						break
					}
					if matrix.IsNotImplemented(err) {
						fatal.set(err)
						finish()
						return
					}
					sleep(ctx, 100*time.Millisecond)
				}
			}
		}()
	}
	e.window(j.warmup, j.duration, done)
	close(stop)
	wg.Wait()
	return fatal.get()
}

// check compares the room's joined members, as the owner sees them, with
// the users who should be in it.
func (j *Join) check(ctx context.Context, e *Env, owner *accounts.User, roomID id.RoomID, joined []bool) error {
	want := 1
	for _, ok := range joined {
		if ok {
			want++
		}
	}
	var resp *mautrix.RespJoinedMembers
	err := matrix.RetryLimited(ctx, func() error {
		var err error
		resp, err = owner.JoinedMembers(ctx, roomID)
		return err
	})
	if err != nil {
		if err := matrix.CheckImplemented(err, capMembers); matrix.IsNotImplemented(err) {
			e.Note("could not check the room's members: %v", err)
			return nil
		}
		return fmt.Errorf("check the room's members: %w", err)
	}
	e.Rec.SetValue("members.expected", float64(want))
	e.Rec.SetValue("members.joined", float64(len(resp.Joined)))
	if len(resp.Joined) != want {
		e.Note("the room has %d joined members, but %d users joined it", len(resp.Joined), want)
	}
	return nil
}
