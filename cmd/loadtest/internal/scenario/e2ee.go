package scenario

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix"

	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/accounts"
	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/matrix"
	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/stats"
)

// Capabilities of the e2ee scenario.
const (
	capKeysUpload = "E2EE key upload"
	capKeysQuery  = "E2EE key query"
	capKeysClaim  = "E2EE one-time key claim"
	capToDevice   = "to-device messages"
)

// phaseKeys labels the series of the key wave.
const phaseKeys = "keys"

// toDeviceSyncFilter leaves rooms, presence and account data out of the
// devices' syncs: only to-device messages matter here.
const toDeviceSyncFilter = `{"room":{"rooms":[]},"presence":{"not_types":["*"]},"account_data":{"not_types":["*"]}}`

// E2EE is the e2ee scenario: devices upload their device keys and
// one-time keys, query each other's keys and claim one-time keys (the
// key wave), then send to-device messages to several devices at a total
// rate while every device long-polls /sync, measuring each send and each
// arrival. Key material is well-formed but fake, except the ed25519
// signatures, which are real because servers check them.
type E2EE struct {
	devices, otks, claims, fanout int
	rate                          float64
	messages, concurrency         int
	drain, pollTimeout            time.Duration
	timing
}

// Name implements Scenario.
func (s *E2EE) Name() string { return "e2ee" }

// Describe implements Scenario.
func (s *E2EE) Describe() string {
	return "devices uploading, querying and claiming keys, then sending to-device messages to several devices"
}

// Flags implements Scenario.
func (s *E2EE) Flags(fs *flag.FlagSet) {
	fs.IntVar(&s.devices, "devices", 20, "devices, one per user")
	fs.IntVar(&s.otks, "otks", 20, "one-time keys each device uploads")
	fs.IntVar(&s.claims, "claims", 5, "devices whose one-time key each device claims")
	fs.IntVar(&s.fanout, "fanout", 5, "devices each to-device send goes to")
	fs.Float64Var(&s.rate, "rate", 10, "to-device sends per second, all devices together")
	fs.IntVar(&s.messages, "messages", 10000, "at most this many measured sends (the window ends sooner when reached)")
	fs.IntVar(&s.concurrency, "concurrency", 10, "key requests in flight during the key wave")
	fs.DurationVar(&s.drain, "drain", 10*time.Second, "after the window, how long to wait for messages still on their way")
	fs.DurationVar(&s.pollTimeout, "poll-timeout", 30*time.Second, "the long poll's timeout parameter")
	s.timing.flags(fs, 5*time.Second, 30*time.Second)
}

// Check implements Scenario.
func (s *E2EE) Check() error {
	switch {
	case s.devices < 2:
		return errors.New("--devices must be at least 2")
	case s.claims < 0 || s.claims >= s.devices || s.claims > s.otks:
		return errors.New("--claims must be at least 0, below --devices and at most --otks (each device's keys are claimed --claims times)")
	case s.fanout < 1 || s.fanout >= s.devices:
		return errors.New("--fanout must be at least 1 and below --devices")
	case s.otks < 0 || s.rate <= 0 || s.messages < 1 || s.concurrency < 1:
		return errors.New("--otks must be at least 0; --rate, --messages and --concurrency positive")
	case s.drain < 0 || s.pollTimeout < 0:
		return errors.New("--drain and --poll-timeout cannot be negative")
	}
	return s.timing.check()
}

// Params implements Scenario.
func (s *E2EE) Params() map[string]any {
	return s.timing.params(map[string]any{
		"devices": s.devices, "otks": s.otks, "claims": s.claims, "fanout": s.fanout, "rate": s.rate,
		"messages": s.messages, "concurrency": s.concurrency, "drain": s.drain.String(), "poll_timeout": s.pollTimeout.String(),
	})
}

// e2eeDevice is a simulated device.
type e2eeDevice struct {
	u    *accounts.User
	keys *deviceKeys
}

// Run implements Scenario.
func (s *E2EE) Run(ctx context.Context, e *Env) error {
	setupCtx, cancelSetup := e.setupContext(ctx)
	defer cancelSetup()
	e.phase("setup: users", 0)
	users, err := e.Users.Create(setupCtx, s.devices)
	if err != nil {
		return err
	}
	if err := requireSync(setupCtx, users[0]); err != nil {
		return err
	}
	devs := make([]*e2eeDevice, len(users))
	for i, u := range users {
		k, err := newDeviceKeys(u.UserID, u.DeviceID)
		if err != nil {
			return err
		}
		devs[i] = &e2eeDevice{u: u, keys: k}
	}
	if err := s.keyWave(setupCtx, e, devs); err != nil || e.Stopped() {
		return err
	}
	return s.toDevice(ctx, setupCtx, e, devs)
}

// keyWave uploads every device's keys, then has every device query all
// the others' keys, then claim one-time keys of its next --claims
// neighbours. Each step checks what the server returns.
func (s *E2EE) keyWave(ctx context.Context, e *Env, devs []*e2eeDevice) error {
	e.phase("keys: upload", 0)
	upload, query, claim := e.Rec.PhaseSeries("keys.upload", phaseKeys), e.Rec.PhaseSeries("keys.query", phaseKeys), e.Rec.PhaseSeries("keys.claim", phaseKeys)
	err := forEach(ctx, len(devs), s.concurrency, func(ctx context.Context, i int) error {
		d := devs[i]
		dk, err := d.keys.deviceKeysObject()
		if err != nil {
			return err
		}
		otks, err := d.keys.oneTimeKeys(0, s.otks)
		if err != nil {
			return err
		}
		var resp struct {
			Counts map[string]int `json:"one_time_key_counts"`
		}
		err = timed(ctx, upload, capKeysUpload, func() error {
			err := post(ctx, d.u, []string{"keys", "upload"}, map[string]any{"device_keys": dk, "one_time_keys": otks}, &resp)
			if err == nil && resp.Counts["signed_curve25519"] < s.otks {
				err = matrix.Unexpectedf("the server counts %d one-time keys after %d were uploaded", resp.Counts["signed_curve25519"], s.otks)
			}
			return err
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("upload keys: %w", err)
	}

	e.phase("keys: query", 0)
	all := map[string][]string{}
	for _, d := range devs {
		all[string(d.u.UserID)] = []string{}
	}
	var missing, badSig atomic.Int64
	err = forEach(ctx, len(devs), s.concurrency, func(ctx context.Context, i int) error {
		var resp struct {
			DeviceKeys map[string]map[string]map[string]any `json:"device_keys"`
		}
		err := timed(ctx, query, capKeysQuery, func() error {
			return post(ctx, devs[i].u, []string{"keys", "query"}, map[string]any{"device_keys": all, "timeout": 10000}, &resp)
		})
		if err != nil {
			return err
		}
		for _, o := range devs {
			obj := resp.DeviceKeys[string(o.u.UserID)][string(o.u.DeviceID)]
			if obj == nil {
				missing.Add(1)
			} else if verifySigned(obj, o.u.UserID, o.keys.keyID("ed25519"), o.keys.ed25519) != nil {
				badSig.Add(1)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("query keys: %w", err)
	}
	e.Rec.SetValue("keys.query.missing_devices", float64(missing.Load()))
	e.Rec.SetValue("keys.query.bad_signatures", float64(badSig.Load()))

	e.phase("keys: claim", 0)
	var claimMissing atomic.Int64
	err = forEach(ctx, len(devs), s.concurrency, func(ctx context.Context, i int) error {
		want := map[string]map[string]string{}
		var targets []*e2eeDevice
		for n := 1; n <= s.claims; n++ {
			o := devs[(i+n)%len(devs)]
			targets = append(targets, o)
			if want[string(o.u.UserID)] == nil {
				want[string(o.u.UserID)] = map[string]string{}
			}
			want[string(o.u.UserID)][string(o.u.DeviceID)] = "signed_curve25519"
		}
		if len(targets) == 0 {
			return nil
		}
		var resp struct {
			OneTimeKeys map[string]map[string]map[string]map[string]any `json:"one_time_keys"`
		}
		err := timed(ctx, claim, capKeysClaim, func() error {
			return post(ctx, devs[i].u, []string{"keys", "claim"}, map[string]any{"one_time_keys": want, "timeout": 10000}, &resp)
		})
		if err != nil {
			return err
		}
		for _, o := range targets {
			got := resp.OneTimeKeys[string(o.u.UserID)][string(o.u.DeviceID)]
			ok := false
			for _, obj := range got {
				ok = ok || verifySigned(obj, o.u.UserID, o.keys.keyID("ed25519"), o.keys.ed25519) == nil
			}
			if !ok {
				claimMissing.Add(1)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("claim keys: %w", err)
	}
	e.Rec.SetValue("keys.claim.missing", float64(claimMissing.Load()))
	if n := missing.Load() + badSig.Load() + claimMissing.Load(); n > 0 {
		e.Note("key wave: %d devices missing from queries, %d bad signatures, %d claims without a valid key",
			missing.Load(), badSig.Load(), claimMissing.Load())
	}
	return nil
}

// toDevice runs the to-device load: every device long-polls /sync, and
// device k%N sends message k to its next --fanout neighbours.
func (s *E2EE) toDevice(ctx, setupCtx context.Context, e *Env, devs []*e2eeDevice) error {
	e.phase("setup: initial syncs", 0)
	tr := newTracker(e.Rec, "to_device.delivery", "to_device")
	syncers := make([]*syncer, len(devs))
	for i, d := range devs {
		seen := map[string]bool{}
		syncers[i] = &syncer{u: d.u, filter: toDeviceSyncFilter, timeout: s.pollTimeout, handle: func(at time.Time, r *syncResponse) {
			for _, ev := range r.ToDevice.Events {
				tr.arrived(ev.Content.Tag, i, at, seen)
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
	for _, sy := range syncers {
		syncing.Add(1)
		go func() {
			defer syncing.Done()
			sy.run(syncCtx, e.Rec)
		}()
	}

	send, sent, late := e.Rec.Series("to_device.send"), e.Rec.Counter("to_device.sent"), e.Rec.Counter("sends.late")
	e.Progress.SetStatus(func() string {
		return fmt.Sprintf("sent %d, delivered %d, errors %d", sent.Value(), tr.deliveries.Value(), send.ErrorCount())
	})
	defer e.Progress.SetStatus(nil)
	done, finish := e.ender()
	var fatal firstError
	var measured atomic.Int64
	stopSend := make(chan struct{})
	// One sender per device; pace hands message k to worker k%N.
	waitSenders := pace(stopSend, len(devs), s.rate, late, func(k, j int) {
		tag := fmt.Sprintf("%s-%d", e.RunID, k)
		from := devs[j]
		messages := map[string]map[string]any{}
		for n := 1; n <= s.fanout; n++ {
			to := devs[(j+n)%len(devs)]
			if messages[string(to.u.UserID)] == nil {
				messages[string(to.u.UserID)] = map[string]any{}
			}
			messages[string(to.u.UserID)][string(to.u.DeviceID)] = fakeOlm(from.keys.curve, to.keys.curve, tag)
		}
		m := &tracked{sender: j, expected: s.fanout}
		m.start = time.Now()
		tr.add(tag, m)
		url := from.u.BuildClientURL("v3", "sendToDevice", "m.room.encrypted", tag)
		_, err := from.u.MakeFullRequest(ctx, mautrix.FullRequest{Method: http.MethodPut, URL: url, RequestJSON: map[string]any{"messages": messages}})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			send.Fail(m.start, matrix.ErrCode(err))
			if err := matrix.CheckImplemented(err, capToDevice); matrix.IsNotImplemented(err) {
				fatal.set(err)
				finish()
			}
			return
		}
		send.Observe(m.start, time.Since(m.start))
		m.sent.Store(true)
		sent.Add(m.start, 1)
		if e.Rec.InWindow(m.start) && measured.Add(1) >= int64(s.messages) {
			finish()
		}
	})
	e.window(s.warmup, s.duration, done)
	close(stopSend)
	waitSenders()

	e.phase("drain", s.drain)
	if !e.waitFor(s.drain, func() bool { return tr.outstanding() == 0 }) && !e.Stopped() {
		e.Note("%d to-device deliveries still missing after the %s drain", tr.outstanding(), s.drain)
	}
	stopSync()
	syncing.Wait()
	tr.finish("to_device")
	return fatal.get()
}

// fakeOlm returns an m.room.encrypted to-device content shaped like an
// Olm pre-key message from senderKey to recipientKey, its ciphertext
// random, carrying tag in the clear for the tool.
func fakeOlm(senderKey, recipientKey, tag string) map[string]any {
	body := make([]byte, 180)
	_, _ = rand.Read(body) // crypto/rand.Read never fails
	return map[string]any{
		"algorithm":  "m.olm.v1.curve25519-aes-sha2",
		"sender_key": senderKey,
		"ciphertext": map[string]any{recipientKey: map[string]any{"type": 0, "body": b64.EncodeToString(body)}},
		TagKey:       tag,
	}
}

// post sends a POST under /_matrix/client/v3 and decodes the answer.
func post(ctx context.Context, u *accounts.User, path []string, body, out any) error {
	url := u.BuildClientURL(append([]any{"v3"}, toAny(path)...)...)
	_, err := u.MakeFullRequest(ctx, mautrix.FullRequest{Method: http.MethodPost, URL: url, RequestJSON: body, ResponseJSON: out})
	return err
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// timed runs fn once, recording its latency or its failure in series;
// an endpoint the server does not know becomes a *NotImplementedError
// naming capability.
func timed(ctx context.Context, series *stats.Series, capability string, fn func() error) error {
	start := time.Now()
	err := fn()
	if err != nil {
		if ctx.Err() == nil {
			series.Fail(start, matrix.ErrCode(err))
		}
		return matrix.CheckImplemented(err, capability)
	}
	series.Observe(start, time.Since(start))
	return nil
}
