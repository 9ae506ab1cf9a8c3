package push

// The Sender delivers notifications to http pushers' push gateways
// (Push Gateway API, POST /_matrix/push/v1/notify).
//
//	Processor ──AddPushActions──► push_queue (table) ──► Sender ──HTTPS──► gateway
//	                 │ (same transaction)                  │
//	                 └────────────── Wake ─────────────────┘
//
// The queue is a table, so it survives a restart; a row goes once its
// gateway took the notification (or refused it for good). A Sender runs
// in every client process: each claims the rows it sends (a lease, in
// the row's next_try_ts), so two processes never send one row. A failed
// delivery postpones all of that pusher's rows with a doubling backoff,
// so one pusher's notifications keep their order and a gateway that is
// down does not hold up the others.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/homeserver/internal/pushrules"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// Delivery tuning.
const (
	// sendBatch is how many queued notifications one pass claims.
	sendBatch = 20
	// leaseSlack is added to the worst time a batch can take (every
	// request timing out) to make the lease of claimed rows.
	leaseSlack = 30 * time.Second
	// idlePoll is the longest sleep between passes, so that rows queued
	// by another process are sent even without a wake-up.
	idlePoll = 5 * time.Second
	// backoffMin and backoffMax bound the delay after a failure.
	backoffMin = time.Second
	backoffMax = 10 * time.Minute
	// maxAttempts gives a notification up after this many failures
	// (about two hours of retries at backoffMax).
	maxAttempts = 20
	// maxGatewayResponse bounds the gateway's answer read.
	maxGatewayResponse = 1 << 20
	// pruneEvery is how often old push actions are pruned, pruneBatch
	// how many rows one transaction deletes; read notifications stay
	// readRetention for /notifications, highlights highlightRetention.
	pruneEvery         = time.Hour
	pruneBatch         = 1000
	readRetention      = 24 * time.Hour
	highlightRetention = 30 * 24 * time.Hour
)

// Log fields of the sender.
const (
	fieldAppID   = "app_id"
	fieldRetryIn = "retry_in"
)

// Sender delivers queued notifications to push gateways.
type Sender struct {
	cfg      *config.Push
	store    *storage.Store
	rooms    RoomReader
	receipts ReceiptPositions
	client   *http.Client
	log      *logrus.Entry
	now      func() time.Time

	wakeCh chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newSender(cfg *config.Push, store *storage.Store, rooms RoomReader, receipts ReceiptPositions, log *logrus.Entry) (*Sender, error) {
	client, err := gatewayClient(cfg)
	if err != nil {
		return nil, err
	}
	return &Sender{cfg: cfg, store: store, rooms: rooms, receipts: receipts, client: client, log: log,
		now: time.Now, wakeCh: make(chan struct{}, 1)}, nil
}

// errPrivateAddress: a gateway resolved to an address pushers may not
// reach.
var errPrivateAddress = errors.New("push gateway address is not public")

// gatewayClient is the outbound HTTP client for gateways: timeouts, no
// redirects, the extra CAs of the configuration, and (unless allowed)
// no connections to loopback, private or link-local addresses, checked
// on the address actually dialled.
func gatewayClient(cfg *config.Push) (*http.Client, error) {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	if !cfg.AllowPrivateAddresses {
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip := net.ParseIP(host)
			if ip == nil || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
				ip.IsUnspecified() || ip.IsMulticast() {
				return fmt.Errorf("%w: %s", errPrivateAddress, host)
			}
			return nil
		}
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.GatewayCAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(cfg.GatewayCAFile)
		if err != nil {
			return nil, fmt.Errorf("read push gateway CA file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("push gateway CA file %s holds no PEM certificate", cfg.GatewayCAFile)
		}
		tlsCfg.RootCAs = pool
	}
	return &http.Client{
		Timeout: time.Duration(cfg.Timeout),
		Transport: &http.Transport{
			DialContext:         dialer.DialContext,
			TLSClientConfig:     tlsCfg,
			TLSHandshakeTimeout: 5 * time.Second,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     90 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// Wake tells the Sender that notifications may be due.
func (s *Sender) Wake() {
	select {
	case s.wakeCh <- struct{}{}:
	default:
	}
}

func (s *Sender) start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.run(ctx)
	}()
}

func (s *Sender) stop() {
	if s.cancel != nil {
		s.cancel()
		s.wg.Wait()
		s.cancel = nil
	}
}

// run sends what is due, then sleeps until the next row is due, a wake-up
// or idlePoll, until ctx ends.
func (s *Sender) run(ctx context.Context) {
	var lastPrune time.Time
	for {
		if err := s.sendDue(ctx); err != nil && ctx.Err() == nil {
			s.log.WithError(err).Warn("send push notifications")
		}
		if s.now().Sub(lastPrune) >= pruneEvery {
			lastPrune = s.now()
			if err := s.prune(ctx); err != nil && ctx.Err() == nil {
				s.log.WithError(err).Warn("prune push actions")
			}
		}
		wait := idlePoll
		if next, ok, err := s.store.NextPushDue(ctx); err == nil && ok {
			wait = min(wait, max(time.Duration(next-s.now().UnixMilli())*time.Millisecond, 0))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.wakeCh:
			t.Stop()
		case <-t.C:
		}
	}
}

// prune deletes the push actions that serve no more, a batch at a time
// so that other writes are not held up.
func (s *Sender) prune(ctx context.Context) error {
	now := s.now()
	for ctx.Err() == nil {
		n, err := s.store.PrunePushActions(ctx, now.Add(-readRetention).UnixMilli(), now.Add(-highlightRetention).UnixMilli(), pruneBatch)
		if err != nil || n < pruneBatch {
			return err
		}
	}
	return ctx.Err()
}

// sendDue sends every due notification, batch after batch.
func (s *Sender) sendDue(ctx context.Context) error {
	for ctx.Err() == nil {
		lease := time.Duration(s.cfg.Timeout)*sendBatch + leaseSlack
		due, err := s.store.ClaimDuePushes(ctx, s.now().UnixMilli(), lease.Milliseconds(), sendBatch)
		if err != nil {
			return err
		}
		if len(due) == 0 {
			return nil
		}
		// A pusher that failed in this batch is skipped for the rest of
		// it: its rows were postponed together.
		failed := map[[3]string]bool{}
		for _, q := range due {
			key := [3]string{q.Pusher.UserID, q.Pusher.AppID, q.Pusher.PushKey}
			if failed[key] {
				continue
			}
			if !s.deliver(ctx, q) {
				failed[key] = true
			}
		}
		if len(failed) > 0 && len(failed) == len(due) {
			return nil
		}
	}
	return ctx.Err()
}

// deliver sends one notification and updates the queue; false when the
// pusher must wait (the row was postponed).
func (s *Sender) deliver(ctx context.Context, q storage.QueuedPush) bool {
	log := s.log.WithFields(logrus.Fields{httputil.FieldUserID: q.Pusher.UserID, fieldAppID: q.Pusher.AppID, httputil.FieldEventID: q.Action.EventID})
	rejected, err := s.send(ctx, q)
	switch {
	case err == nil:
		if rejected {
			log.Info("push gateway rejected the pushkey: pusher removed")
			if err := s.store.DeletePusher(ctx, q.Pusher.UserID, q.Pusher.AppID, q.Pusher.PushKey); err != nil {
				log.WithError(err).Warn("remove rejected pusher")
			}
			return true
		}
		if err := s.store.DeleteQueuedPush(ctx, q.ID); err != nil {
			log.WithError(err).Warn("dequeue sent push")
		}
		return true
	case errors.Is(err, errPermanent):
		log.WithError(err).Warn("push notification dropped")
		if err := s.store.DeleteQueuedPush(ctx, q.ID); err != nil {
			log.WithError(err).Warn("dequeue dropped push")
		}
		return true
	}
	if ctx.Err() != nil {
		// Stopping mid-send: the row's lease would hold it for a while
		// after the next start; due at once, it goes first then.
		s.postpone(ctx, q, s.now(), log)
		return false
	}
	if q.Attempts+1 >= maxAttempts {
		log.WithError(err).Warn("push notification given up after repeated failures")
		if err := s.store.DeleteQueuedPush(ctx, q.ID); err != nil {
			log.WithError(err).Warn("dequeue given-up push")
		}
		return true
	}
	delay := backoffMin << min(q.Attempts, 20)
	delay = min(delay, backoffMax)
	log.WithError(err).WithField(fieldRetryIn, delay.String()).Info("push gateway failed, will retry")
	s.postpone(ctx, q, s.now().Add(delay), log)
	return false
}

// postpone makes q's pusher's notifications due at at, even while the
// sender stops (the write outlives ctx, briefly).
func (s *Sender) postpone(ctx context.Context, q storage.QueuedPush, at time.Time, log *logrus.Entry) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.store.DelayPusher(wctx, q.Pusher.UserID, q.Pusher.AppID, q.Pusher.PushKey, at.UnixMilli()); err != nil {
		log.WithError(err).Warn("postpone push")
	}
}

// errPermanent marks a notification that no retry can deliver.
var errPermanent = errors.New("permanent push failure")

// pusherData is what the server reads of a pusher's data.
type pusherData struct {
	URL    string `json:"url"`
	Format string `json:"format"`
}

// send posts one notification; rejected reports that the gateway
// refused the pushkey.
func (s *Sender) send(ctx context.Context, q storage.QueuedPush) (rejected bool, err error) {
	var data pusherData
	if err := json.Unmarshal(q.Pusher.Data, &data); err != nil {
		return false, fmt.Errorf("%w: pusher data: %v", errPermanent, err)
	}
	if err := checkGatewayURL(s.cfg, data.URL); err != nil {
		return false, fmt.Errorf("%w: %v", errPermanent, err)
	}
	body, err := s.payload(ctx, q, data)
	if err != nil {
		return false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, data.URL, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("%w: %v", errPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		if errors.Is(err, errPrivateAddress) {
			return false, fmt.Errorf("%w: %v", errPermanent, err)
		}
		return false, fmt.Errorf("post to push gateway: %w", err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxGatewayResponse))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return false, fmt.Errorf("push gateway answered %d", resp.StatusCode)
	default:
		// Another 4xx will not change on retry (Synapse drops it too).
		return false, fmt.Errorf("%w: push gateway answered %d", errPermanent, resp.StatusCode)
	}
	var out struct {
		Rejected []string `json:"rejected"`
	}
	_ = json.Unmarshal(answer, &out)
	for _, k := range out.Rejected {
		if k == q.Pusher.PushKey {
			return true, nil
		}
	}
	return false, nil
}

// checkGatewayURL checks a pusher URL: https, the spec's path, a host the
// configuration allows.
func checkGatewayURL(cfg *config.Push, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return errors.New("data.url must be an https URL")
	}
	if u.Path != "/_matrix/push/v1/notify" {
		return errors.New("data.url must end in /_matrix/push/v1/notify")
	}
	if !cfg.GatewayHostAllowed(u.Hostname()) {
		return fmt.Errorf("push gateway host %s is not allowed on this server", u.Hostname())
	}
	return nil
}

// notification is the Push Gateway API's notification object.
type notification struct {
	EventID           string          `json:"event_id,omitempty"`
	RoomID            string          `json:"room_id,omitempty"`
	Type              string          `json:"type,omitempty"`
	Sender            string          `json:"sender,omitempty"`
	SenderDisplayName string          `json:"sender_display_name,omitempty"`
	RoomName          string          `json:"room_name,omitempty"`
	UserIsTarget      bool            `json:"user_is_target,omitempty"`
	Prio              string          `json:"prio"`
	Content           json.RawMessage `json:"content,omitempty"`
	Counts            struct {
		Unread int `json:"unread"`
	} `json:"counts"`
	Devices []device `json:"devices"`
}

type device struct {
	AppID     string          `json:"app_id"`
	PushKey   string          `json:"pushkey"`
	PushKeyTS int64           `json:"pushkey_ts"`
	Data      json.RawMessage `json:"data,omitempty"`
	Tweaks    map[string]any  `json:"tweaks,omitempty"`
}

// payload builds the body of one notification: with format
// "event_id_only", the ids, counts and devices only; else also the
// event's type, sender, content and the room's name.
func (s *Sender) payload(ctx context.Context, q storage.QueuedPush, data pusherData) ([]byte, error) {
	n := notification{EventID: q.Action.EventID, RoomID: q.Action.RoomID, Prio: "low"}
	if q.Action.Highlight {
		n.Prio = "high"
	}
	var actions []json.RawMessage
	_ = json.Unmarshal(q.Action.Actions, &actions)
	tweaks := pushrules.Outcome{Actions: actions}.Tweaks()
	if _, ok := tweaks["sound"]; ok || q.Action.Highlight {
		n.Prio = "high"
	}
	unread, err := s.unread(ctx, q.Pusher.UserID)
	if err != nil {
		return nil, err
	}
	n.Counts.Unread = unread
	// The gateway is given the pusher's data without the url (as Synapse
	// does): the rest is the app's own.
	var d map[string]json.RawMessage
	_ = json.Unmarshal(q.Pusher.Data, &d)
	delete(d, "url")
	var dataOut json.RawMessage
	if len(d) > 0 {
		dataOut, _ = json.Marshal(d)
	}
	n.Devices = []device{{AppID: q.Pusher.AppID, PushKey: q.Pusher.PushKey, PushKeyTS: q.Pusher.CreatedTS / 1000,
		Data: dataOut, Tweaks: tweaks}}
	if data.Format != "event_id_only" {
		if err := s.fillEvent(ctx, &n, q.Pusher.UserID); err != nil {
			return nil, err
		}
	}
	body, err := json.Marshal(map[string]any{"notification": n})
	if err != nil {
		return nil, fmt.Errorf("encode push notification: %w", err)
	}
	return body, nil
}

// fillEvent adds the event's details to a full-format notification. An
// event gone (redacted, purged) leaves them out.
func (s *Sender) fillEvent(ctx context.Context, n *notification, userID string) error {
	ev, err := s.rooms.Event(ctx, n.EventID)
	if errors.Is(err, rsapi.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read event for push: %w", err)
	}
	var f struct {
		Type     string          `json:"type"`
		Sender   string          `json:"sender"`
		StateKey *string         `json:"state_key"`
		Content  json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(ev.JSON, &f); err != nil {
		return fmt.Errorf("parse event for push: %w", err)
	}
	n.Type, n.Sender, n.Content = f.Type, f.Sender, f.Content
	n.UserIsTarget = f.StateKey != nil && *f.StateKey == userID
	if member, err := s.rooms.CurrentStateEvent(ctx, n.RoomID, rsapi.StateKey{Type: "m.room.member", StateKey: f.Sender}); err == nil {
		var c struct {
			DisplayName string `json:"displayname"`
		}
		if contentOf(member.JSON, &c) {
			n.SenderDisplayName = c.DisplayName
		}
	}
	if name, err := s.rooms.CurrentStateEvent(ctx, n.RoomID, rsapi.StateKey{Type: "m.room.name"}); err == nil {
		var c struct {
			Name string `json:"name"`
		}
		if contentOf(name.JSON, &c) {
			n.RoomName = c.Name
		}
	}
	return nil
}

// contentOf decodes an event's content into v.
func contentOf(pdu json.RawMessage, v any) bool {
	var f struct {
		Content json.RawMessage `json:"content"`
	}
	return json.Unmarshal(pdu, &f) == nil && len(f.Content) > 0 && json.Unmarshal(f.Content, v) == nil
}

// unread is the badge: the user's unread notifications in every room.
func (s *Sender) unread(ctx context.Context, userID string) (int, error) {
	rooms, err := s.store.PushActionRooms(ctx, userID)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, room := range rooms {
		unthreaded, threads, err := s.receipts.ReceiptPositions(ctx, userID, room)
		if err != nil {
			return 0, fmt.Errorf("read receipts for the badge: %w", err)
		}
		c, _, err := s.store.UnreadCounts(ctx, userID, room, unthreaded, threads)
		if err != nil {
			return 0, err
		}
		total += c.Notifications
	}
	return total, nil
}
