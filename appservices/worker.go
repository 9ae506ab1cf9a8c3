package appservices

// One worker per application service with a URL moves the roomserver's
// output to the bridge:
//
//	roomserver_output ──(durable consumer appservices_<id>, batches)──►
//	  interest filter ──► appservice_queue rows + last_seq (one commit) ──► ack
//	                                   │
//	  sender goroutine: NextTxn (forms a txn of the oldest rows, once) ──►
//	  PUT {url}/_matrix/app/v1/transactions/{txn} until 2xx ──► delete rows
//
// The queue is the record: a bus message is acknowledged only once its
// events are queued, and last_seq makes a redelivered message queue
// nothing twice. A transaction's id and events are fixed when it is formed,
// so a retry (after a failure or a restart of either side) resends the
// same id with the same events, and the next transaction is formed only
// once the bridge accepted this one: order holds and nothing is lost.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/appservices/storage"
	"github.com/matrix-gouv/homeserver/config"
	hsapi "github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/internal/bus"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// Tuning of the workers.
const (
	// consumeBatch bounds the output events queued in one commit.
	consumeBatch = 100
	// txnMaxEvents bounds the events of one transaction.
	txnMaxEvents = 100
	// retryMin is the first wait after a failed push; it doubles up to
	// the configured maximum.
	retryMin = 250 * time.Millisecond
	// handleTimeout bounds the handling of one batch (reads of room
	// state, one commit).
	handleTimeout = 30 * time.Second
	// idlePoll is how often an idle sender looks at its queue anyway
	// (rows queued by another process, a wake-up lost to a crash).
	idlePoll = 5 * time.Second
)

// Log field names of the component.
const (
	fieldAppService = "appservice_id"
	fieldTxnID      = "txn_id"
	fieldEvents     = "events"
)

// worker pushes one application service's transactions.
type worker struct {
	as      *config.AppService
	store   *storage.Store
	bus     *bus.Bus
	cache   *roomCache
	client  *http.Client
	log     *logrus.Entry
	maxWait time.Duration

	// createdTS is when the server first saw the registration: older
	// output is not the bridge's.
	createdTS int64
	// lastSeq is the last stream sequence queued; only the consumer
	// goroutine uses it.
	lastSeq int64
	// wake tells the sender that rows were queued.
	wake chan struct{}

	stopConsume func()
	stopEDUs    []func()
	cancel      context.CancelFunc
	done        sync.WaitGroup
}

// durableName is the worker's consumer name: NATS allows only some
// characters, and a hash keeps two ids that clean up alike apart.
func durableName(id string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return fmt.Sprintf("appservices_%s_%08x", durableUnsafe.ReplaceAllString(id, "_"), h.Sum32())
}

var durableUnsafe = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// start attaches the consumer and starts the sender.
func (w *worker) start(ctx context.Context) error {
	created, last, err := w.store.Ensure(ctx, w.as.ID)
	if err != nil {
		return err
	}
	w.createdTS, w.lastSeq = created, last
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.cancel = cancel
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		w.send(sctx)
	}()
	// handle skips what is at or below last_seq as queued already: what a
	// stopped run left unacknowledged must come back first, in order, not
	// after its ack wait behind newer events, which would have moved
	// last_seq past it (an event acknowledged just before a restart was
	// lost so, 1 run in 10 of TestAppServiceBridgeDown under load).
	stop, err := w.bus.ConsumeBatch(context.WithoutCancel(ctx), bus.StreamRoomserverOutput, durableName(w.as.ID), "", w.handle, consumeBatch,
		bus.WithReplayPendingFirst())
	if err != nil {
		w.stop()
		return fmt.Errorf("consume roomserver output for %s: %w", w.as.ID, err)
	}
	w.stopConsume = stop
	var streams []string
	if w.as.WantsEphemeral() {
		streams = append(streams, bus.StreamTyping, bus.StreamReceipts, bus.StreamPresence)
	}
	if w.as.WantsEphemeral() || w.as.MSC3202 {
		streams = append(streams, bus.StreamToDevice) // to-device messages and key counts
	}
	if w.as.MSC3202 {
		streams = append(streams, bus.StreamDeviceLists)
	}
	for _, stream := range streams {
		stop, err := w.bus.Consume(context.WithoutCancel(ctx), stream, durableName(stream+"_"+w.as.ID), "", w.handleEDU)
		if err != nil {
			w.stop()
			return fmt.Errorf("consume %s for %s: %w", stream, w.as.ID, err)
		}
		w.stopEDUs = append(w.stopEDUs, stop)
	}
	return nil
}

// handleEDU queues an ephemeral event or to-device message that
// interests the application service. Ephemeral events are not kept in
// stream order with the room events: they go into the next transaction.
func (w *worker) handleEDU(ctx context.Context, msg bus.Message) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), handleTimeout)
	defer cancel()
	var edu hsapi.EDU
	if err := msg.Decode(&edu); err != nil {
		return err
	}
	if msg.Time.UnixMilli() < w.createdTS {
		return nil
	}
	kind := storage.KindEDU
	var ok bool
	var err error
	body := ""
	switch {
	case edu.Type == hsapi.EDUKeyCounts:
		kind, ok = storage.KindKeyCounts, w.as.MSC3202 && w.as.OwnsUser(edu.ToUserID)
	case edu.Type == hsapi.EDUDeviceListUpdate:
		kind, body = storage.KindDeviceList, edu.Sender
		if w.as.MSC3202 {
			ok, err = w.cache.userInterested(ctx, edu.Sender)
		}
	case edu.ToUserID != "":
		kind, ok = storage.KindToDevice, w.as.WantsEphemeral() && w.as.OwnsUser(edu.ToUserID)
	case edu.Type == "m.presence":
		ok, err = w.cache.userInterested(ctx, edu.Sender)
	case edu.RoomID != "":
		ok, err = w.cache.roomInterested(ctx, edu.RoomID)
	}
	if err != nil || !ok {
		return err
	}
	if body == "" {
		raw, err := json.Marshal(edu)
		if err != nil {
			return fmt.Errorf("encode ephemeral event: %w", err)
		}
		body = string(raw)
	}
	return w.enqueue(ctx, []storage.Item{{Kind: kind, Body: body}})
}

// stop stops consuming, then the sender, and waits for both.
func (w *worker) stop() {
	if w.stopConsume != nil {
		w.stopConsume()
	}
	for _, stop := range w.stopEDUs {
		stop()
	}
	if w.cancel != nil {
		w.cancel()
	}
	w.done.Wait()
}

// handle queues the events of msgs the application service is interested
// in, and moves last_seq past them, in one commit.
func (w *worker) handle(ctx context.Context, msgs []bus.Message) error {
	// A batch in hand is finished even when the consumer is stopping: a
	// batch given back at shutdown may only come back after the bus's ack
	// wait, late behind newer events.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), handleTimeout)
	defer cancel()
	var items []storage.Item
	var maxSeq int64
	for _, msg := range msgs {
		if int64(msg.Sequence) <= w.lastSeq {
			continue // queued before a crash, redelivered since
		}
		maxSeq = int64(msg.Sequence)
		if msg.Time.UnixMilli() < w.createdTS {
			continue
		}
		var out rsapi.OutputEvent
		if err := msg.Decode(&out); err != nil {
			w.log.WithError(err).Error("skipping undecodable roomserver output")
			continue
		}
		if out.SoftFailed {
			continue
		}
		p, err := parseEvent(out.Event)
		if err != nil {
			w.log.WithError(err).Error("skipping unparsable roomserver output")
			continue
		}
		ok, err := w.cache.interested(ctx, p)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		body, err := clientJSON(out.Event, p)
		if err != nil {
			w.log.WithError(err).Error("skipping an event that does not encode")
			continue
		}
		items = append(items, storage.Item{Kind: storage.KindPDU, Body: body})
	}
	if maxSeq == 0 {
		return nil
	}
	if err := w.store.Enqueue(ctx, w.as.ID, maxSeq, items); err != nil {
		return err
	}
	w.lastSeq = maxSeq
	if len(items) > 0 {
		w.poke()
	}
	return nil
}

// enqueue queues items that came from elsewhere than the roomserver's
// output (ephemeral events, to-device messages) and wakes the sender.
func (w *worker) enqueue(ctx context.Context, items []storage.Item) error {
	if err := w.store.Enqueue(ctx, w.as.ID, 0, items); err != nil {
		return err
	}
	w.poke()
	return nil
}

func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// send pushes transactions until ctx ends.
func (w *worker) send(ctx context.Context) {
	wait := time.Duration(0)
	for ctx.Err() == nil {
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		txn, err := w.store.NextTxn(ctx, w.as.ID, txnMaxEvents)
		if err != nil {
			if ctx.Err() == nil {
				w.log.WithError(err).Warn("read the queue")
			}
			wait = w.nextWait(wait)
			continue
		}
		if len(txn.Items) == 0 {
			wait = 0
			select {
			case <-ctx.Done():
				return
			case <-w.wake:
			case <-time.After(idlePoll):
			}
			continue
		}
		log := w.log.WithFields(logrus.Fields{fieldTxnID: txn.ID, fieldEvents: len(txn.Items)})
		if err := w.put(ctx, txn); err != nil {
			if ctx.Err() != nil {
				return
			}
			wait = w.nextWait(wait)
			log.WithError(err).WithField("retry_in", wait.String()).Warn("push transaction")
			if ferr := w.store.Failed(ctx, w.as.ID, err.Error()); ferr != nil {
				log.WithError(ferr).Warn("record push failure")
			}
			continue
		}
		wait = 0
		// The bridge has it: deleting may be retried, never the push.
		for {
			err := w.store.Sent(context.WithoutCancel(ctx), w.as.ID, txn.ID)
			if err == nil {
				break
			}
			log.WithError(err).Warn("delete sent transaction")
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
		log.Debug("transaction pushed")
	}
}

func (w *worker) nextWait(wait time.Duration) time.Duration {
	return min(max(2*wait, retryMin), w.maxWait)
}

// transaction is the body of PUT /transactions: the stable field names
// and MSC2409's and MSC3202's unstable ones, which mautrix-go reads.
type transaction struct {
	Events            []json.RawMessage `json:"events"`
	Ephemeral         []json.RawMessage `json:"ephemeral,omitempty"`
	EphemeralUnstable []json.RawMessage `json:"de.sorunome.msc2409.ephemeral,omitempty"`
	ToDevice          []json.RawMessage `json:"to_device,omitempty"`
	ToDeviceUnstable  []json.RawMessage `json:"de.sorunome.msc2409.to_device,omitempty"`
	// MSC3202's fields, under the stable names too.
	DeviceLists          *deviceLists                         `json:"device_lists,omitempty"`
	DeviceListsUnstable  *deviceLists                         `json:"org.matrix.msc3202.device_lists,omitempty"`
	OTKCounts            map[string]map[string]map[string]int `json:"device_one_time_keys_count,omitempty"`
	OTKCountsUnstable    map[string]map[string]map[string]int `json:"org.matrix.msc3202.device_one_time_keys_count,omitempty"`
	FallbackKeys         map[string]map[string][]string       `json:"device_unused_fallback_key_types,omitempty"`
	FallbackKeysUnstable map[string]map[string][]string       `json:"org.matrix.msc3202.device_unused_fallback_key_types,omitempty"`
}

// deviceLists is a transaction's device_lists: the users whose devices
// changed (left is never set: bridges learn departures from the member
// events they receive).
type deviceLists struct {
	Changed []string `json:"changed"`
	Left    []string `json:"left"`
}

// put sends txn once; nil means the bridge accepted it.
func (w *worker) put(ctx context.Context, txn storage.Txn) error {
	body := transaction{Events: []json.RawMessage{}}
	for _, it := range txn.Items {
		raw := json.RawMessage(it.Body)
		switch it.Kind {
		case storage.KindPDU:
			body.Events = append(body.Events, raw)
		case storage.KindEDU:
			body.Ephemeral = append(body.Ephemeral, raw)
			body.EphemeralUnstable = append(body.EphemeralUnstable, raw)
		case storage.KindToDevice:
			body.ToDevice = append(body.ToDevice, raw)
			body.ToDeviceUnstable = append(body.ToDeviceUnstable, raw)
		case storage.KindDeviceList:
			if body.DeviceLists == nil {
				body.DeviceLists = &deviceLists{Changed: []string{}, Left: []string{}}
				body.DeviceListsUnstable = body.DeviceLists
			}
			if !slices.Contains(body.DeviceLists.Changed, it.Body) {
				body.DeviceLists.Changed = append(body.DeviceLists.Changed, it.Body)
			}
		case storage.KindKeyCounts:
			addKeyCounts(&body, it.Body)
		}
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode transaction: %w", err)
	}
	target := appURL(w.as, "transactions", strconv.FormatInt(txn.ID, 10))
	_, err = call(ctx, w.client, w.as, http.MethodPut, target, raw)
	return err
}

// appURL is the bridge's Application Service API URL of the path
// segments (escaped).
func appURL(as *config.AppService, segments ...string) string {
	var b strings.Builder
	b.WriteString(strings.TrimRight(*as.URL, "/"))
	b.WriteString("/_matrix/app/v1")
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// statusError is a bridge's answer other than 2xx.
type statusError struct {
	Status int
	Body   string
}

// Error implements error; the body is kept for the ping's answer, not
// logged (it may hold anything).
func (e *statusError) Error() string { return fmt.Sprintf("bridge answered %d", e.Status) }

// maxAnswer bounds what is read of a bridge's answer.
const maxAnswer = 1 << 20

// call makes one request to the bridge with its hs_token and returns the
// answer of a 2xx, else a *statusError or the transport error.
func call(ctx context.Context, client *http.Client, as *config.AppService, method, target string, body []byte) ([]byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, r)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+as.HSToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &statusError{Status: resp.StatusCode, Body: string(raw)}
	}
	return raw, nil
}

// addKeyCounts puts a device's key counts (a later count replaces an
// earlier one of the same transaction) into body.
func addKeyCounts(body *transaction, raw string) {
	var edu hsapi.EDU
	var kc hsapi.KeyCounts
	if json.Unmarshal([]byte(raw), &edu) != nil || json.Unmarshal(edu.Content, &kc) != nil {
		return
	}
	if body.OTKCounts == nil {
		body.OTKCounts = map[string]map[string]map[string]int{}
		body.FallbackKeys = map[string]map[string][]string{}
		body.OTKCountsUnstable, body.FallbackKeysUnstable = body.OTKCounts, body.FallbackKeys
	}
	if body.OTKCounts[edu.ToUserID] == nil {
		body.OTKCounts[edu.ToUserID] = map[string]map[string]int{}
		body.FallbackKeys[edu.ToUserID] = map[string][]string{}
	}
	counts := kc.OneTimeKeys
	if counts == nil {
		counts = map[string]int{}
	}
	body.OTKCounts[edu.ToUserID][edu.ToDeviceID] = counts
	body.FallbackKeys[edu.ToUserID][edu.ToDeviceID] = kc.UnusedFallback
}
