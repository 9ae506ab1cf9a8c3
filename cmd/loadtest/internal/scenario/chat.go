package scenario

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/accounts"
	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/matrix"
)

// chatSyncFilter is the chat members' sync filter: room timelines long
// enough not to be cut at the tested rates, and no presence (which would
// wake every poll and is not what is measured).
const chatSyncFilter = `{"room":{"timeline":{"limit":100},"state":{"lazy_load_members":true}},"presence":{"not_types":["*"]}}`

// Chat is the chat scenario: users in rooms, every member long-polling
// /sync, some of them sending at a total rate; it measures each send and,
// for every message and every member who receives it, the time from the
// send request to its arrival in that member's sync.
type Chat struct {
	users, rooms, senders int
	rate                  float64
	messages              int
	size                  int
	drain, pollTimeout    time.Duration
	idle                  time.Duration
	timing
}

// Name implements Scenario.
func (c *Chat) Name() string { return "chat" }

// Describe implements Scenario.
func (c *Chat) Describe() string {
	return "users in rooms long-polling /sync while senders post at a total rate: send and delivery latency"
}

// Flags implements Scenario.
func (c *Chat) Flags(fs *flag.FlagSet) {
	fs.IntVar(&c.users, "users", 20, "users, spread evenly over the rooms, each long-polling /sync")
	fs.IntVar(&c.rooms, "rooms", 2, "rooms")
	fs.IntVar(&c.senders, "senders", 4, "users who send (spread over the rooms)")
	fs.Float64Var(&c.rate, "rate", 10, "messages per second, all senders together")
	fs.IntVar(&c.messages, "messages", 10000, "at most this many measured messages (the window ends sooner when reached)")
	fs.IntVar(&c.size, "message-bytes", 100, "approximate size of a message body")
	fs.DurationVar(&c.drain, "drain", 10*time.Second, "after the window, how long to wait for messages still on their way")
	fs.DurationVar(&c.pollTimeout, "poll-timeout", 30*time.Second, "the long poll's timeout parameter")
	fs.DurationVar(&c.idle, "idle", 0, "after the drain, how long every member keeps long-polling with nothing sent (the server's idle memory with the connections open, with --pid)")
	c.timing.flags(fs, 5*time.Second, 30*time.Second)
}

// Check implements Scenario.
func (c *Chat) Check() error {
	switch {
	case c.rooms < 1:
		return errors.New("--rooms must be at least 1")
	case c.users < 2*c.rooms:
		return errors.New("--users must be at least twice --rooms: a room needs a sender and a receiver")
	case c.senders < 1 || c.senders > c.users:
		return errors.New("--senders must be between 1 and --users")
	case c.rate <= 0:
		return errors.New("--rate must be positive")
	case c.messages < 1:
		return errors.New("--messages must be positive")
	case c.drain < 0 || c.pollTimeout < 0 || c.idle < 0:
		return errors.New("--drain, --poll-timeout and --idle cannot be negative")
	}
	return c.timing.check()
}

// Params implements Scenario.
func (c *Chat) Params() map[string]any {
	return c.timing.params(map[string]any{
		"users": c.users, "rooms": c.rooms, "senders": c.senders, "rate": c.rate, "messages": c.messages,
		"message_bytes": c.size, "drain": c.drain.String(), "poll_timeout": c.pollTimeout.String(), "idle": c.idle.String(),
	})
}

// Run implements Scenario.
func (c *Chat) Run(ctx context.Context, e *Env) error {
	setupCtx, cancelSetup := e.setupContext(ctx)
	defer cancelSetup()

	e.phase("setup: users", 0)
	users, err := e.Users.Create(setupCtx, c.users)
	if err != nil {
		return err
	}
	if err := requireSync(setupCtx, users[0]); err != nil {
		return err
	}
	// User i is in room i % rooms; the first user of each room creates
	// it. Senders are users 0..senders-1, so they spread over the rooms.
	e.phase("setup: rooms", 0)
	roomOf := func(i int) int { return i % c.rooms }
	members := make([]int, c.rooms)
	for i := range users {
		members[roomOf(i)]++
	}
	roomIDs := make([]id.RoomID, c.rooms)
	err = forEach(setupCtx, c.rooms, e.setupConcurrency(), func(ctx context.Context, r int) error {
		var err error
		roomIDs[r], err = createRoom(ctx, e, users[r], fmt.Sprintf("loadtest chat %s %d", e.RunID, r))
		return err
	})
	if err != nil {
		return err
	}
	var joiners []*accounts.User
	var joinRooms []id.RoomID
	for i := c.rooms; i < len(users); i++ {
		joiners = append(joiners, users[i])
		joinRooms = append(joinRooms, roomIDs[roomOf(i)])
	}
	join := e.Rec.SetupSeries(seriesJoin)
	err = forEach(setupCtx, len(joiners), e.setupConcurrency(), func(ctx context.Context, i int) error {
		return joinRoom(ctx, joiners[i], joinRooms[i], join, true)
	})
	if err != nil {
		return err
	}

	// Every member syncs: an initial sync each, then long polls.
	e.phase("setup: initial syncs", 0)
	tr := newTracker(e.Rec, "delivery", "messages")
	limited := e.Rec.Counter("sync.limited_timelines")
	syncers := make([]*syncer, len(users))
	for i, u := range users {
		seen := map[string]bool{}
		syncers[i] = &syncer{u: u, filter: chatSyncFilter, timeout: c.pollTimeout, handle: func(at time.Time, r *syncResponse) {
			for _, room := range r.Rooms.Join {
				if room.Timeline.Limited {
					limited.Add(at, 1)
				}
				for _, ev := range room.Timeline.Events {
					if ev.Type == "m.room.message" {
						tr.arrived(ev.Content.Tag, i, at, seen)
					}
				}
			}
		}}
	}
	initial := e.Rec.SetupSeries(seriesInitialSync)
	if err := forEach(setupCtx, len(syncers), e.setupConcurrency(), func(ctx context.Context, i int) error {
		return syncers[i].initial(ctx, initial)
	}); err != nil {
		return err
	}
	syncCtx, stopSync := context.WithCancel(ctx)
	defer stopSync()
	var syncing sync.WaitGroup
	for _, s := range syncers {
		syncing.Add(1)
		go func() {
			defer syncing.Done()
			s.run(syncCtx, e.Rec)
		}()
	}

	// Senders, paced from the start of the warm-up.
	send, sent, late := e.Rec.Series("send"), e.Rec.Counter("messages.sent"), e.Rec.Counter("sends.late")
	done, finish := e.ender()
	var fatal firstError
	var measured atomic.Int64
	stopSend := make(chan struct{})
	e.Progress.SetStatus(func() string {
		return fmt.Sprintf("sent %d, delivered %d, errors %d", sent.Value(), tr.deliveries.Value(), send.ErrorCount())
	})
	defer e.Progress.SetStatus(nil)
	waitSenders := pace(stopSend, c.senders, c.rate, late, func(k, j int) {
		tag := fmt.Sprintf("%s-%d", e.RunID, k)
		room := roomOf(j)
		m := &tracked{sender: j, expected: members[room] - 1}
		m.start = time.Now()
		tr.add(tag, m)
		err := sendMessage(ctx, users[j], roomIDs[room], tag, c.size)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if matrix.IsNotImplemented(err) {
				fatal.set(err)
				finish()
			}
			send.Fail(m.start, matrix.ErrCode(err))
			return
		}
		send.Observe(m.start, time.Since(m.start))
		m.sent.Store(true)
		sent.Add(m.start, 1)
		if e.Rec.InWindow(m.start) && measured.Add(1) >= int64(c.messages) {
			finish()
		}
	})
	e.window(c.warmup, c.duration, done)
	close(stopSend)
	waitSenders()

	e.phase("drain", c.drain)
	if !e.waitFor(c.drain, func() bool { return tr.outstanding() == 0 }) && !e.Stopped() {
		e.Note("%d deliveries still missing after the %s drain", tr.outstanding(), c.drain)
	}
	e.idle(c.idle)
	stopSync()
	syncing.Wait()
	tr.finish("messages")
	return fatal.get()
}
