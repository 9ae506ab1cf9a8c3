package rooms

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// Transaction ids make PUT /send and /redact idempotent per device: a
// retry gets the first attempt's event id and sends nothing.
//
//	request ──► in-process lock of the txn key ──► ReserveTxn (one SQL write)
//	              │ done already: the stored event id
//	              │ reserved by us: Send to the roomserver, CompleteTxn(event id)
//	              │                 (or ReleaseTxn when the send failed)
//	              └ reserved by another process: poll until it completes
//
// The lock makes concurrent retries in one process wait instead of poll;
// the reservation row (its primary key) keeps two processes behind a load
// balancer from both sending. The one gap: a crash after the roomserver
// committed the event and before CompleteTxn leaves a reservation that is
// taken over once stale (txnStale), and the retry then sends a second
// event. Closing it needs the roomserver to store the txn key with the
// event in its own commit.

// txnStale is how old a reservation must be for its request to be
// presumed dead and the reservation taken over.
const txnStale = time.Minute

// txnWait bounds how long a request waits for another process's
// reservation of the same transaction id to complete.
const txnWait = 30 * time.Second

// txnPoll is how often a waiting request asks again.
const txnPoll = 50 * time.Millisecond

// sendResponse is the body of /send, /state and /redact.
type sendResponse struct {
	EventID string `json:"event_id"`
}

// Send is PUT /rooms/{roomID}/send/{eventType}/{txnID}.
func (h *Handlers) Send(r *http.Request) (any, error) {
	dev := auth.DeviceFrom(r.Context())
	roomID, eventType := httputil.PathParam(r, "roomID"), httputil.PathParam(r, "eventType")
	content, err := h.readContent(r)
	if err != nil {
		return nil, err
	}
	ev := api.ProtoEvent{Type: eventType, Sender: dev.UserID, Content: content}
	if eventType == typeRedaction {
		// A redaction sent as a plain event names its target in the
		// content (room version 11 and later); the roomserver wants it
		// here too.
		var c struct {
			Redacts string `json:"redacts"`
		}
		_ = json.Unmarshal(content, &c)
		ev.Redacts = c.Redacts
	}
	key := storage.TxnKey{UserID: dev.UserID, DeviceID: dev.DeviceID, Scope: "send " + roomID + " " + eventType, TxnID: httputil.PathParam(r, "txnID")}
	var sent api.Event
	eventID, err := h.once(r.Context(), key, roomID, func() (string, error) {
		var err error
		sent, err = h.send(r.Context(), roomID, ev)
		return sent.EventID, err
	})
	if err != nil {
		return nil, err
	}
	h.awaitSync(r.Context(), sent)
	return sendResponse{EventID: eventID}, nil
}

// once runs send at most once per transaction key and returns its event
// id, or the event id of the request that already ran it.
func (h *Handlers) once(ctx context.Context, key storage.TxnKey, roomID string, send func() (string, error)) (string, error) {
	unlock := h.txns.lock(key)
	defer unlock()
	deadline := h.now().Add(txnWait)
	for {
		eventID, owned, err := h.store.ReserveTxn(ctx, key, roomID, h.now().Add(-txnStale).UnixMilli())
		if err != nil {
			return "", err
		}
		if eventID != "" {
			return eventID, nil
		}
		if owned {
			eventID, err := send()
			if err != nil {
				// The store's own context may be done with the request's;
				// the release must still happen for a retry to send.
				if relErr := h.store.ReleaseTxn(context.WithoutCancel(ctx), key); relErr != nil {
					httputil.Log(ctx).WithError(relErr).Warn("release transaction id after a failed send")
				}
				return "", err
			}
			if err := h.store.CompleteTxn(context.WithoutCancel(ctx), key, eventID); err != nil {
				// The event is sent: answer with it. A retry would wait
				// for the stale reservation and then send again.
				httputil.Log(ctx).WithError(err).WithField(httputil.FieldEventID, eventID).Error("record transaction id")
			}
			return eventID, nil
		}
		if h.now().After(deadline) {
			return "", httputil.Errorf(httputil.CodeUnknown, "a request with this transaction id is still in progress").WithStatus(http.StatusConflict)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(txnPoll):
		}
	}
}

// keyedMutex is a set of mutexes by transaction key, each alive while
// someone holds or waits for it.
type keyedMutex struct {
	// mu guards m.
	mu sync.Mutex
	m  map[storage.TxnKey]*keyedEntry
}

type keyedEntry struct {
	mu sync.Mutex
	// refs counts holders and waiters; guarded by keyedMutex.mu.
	refs int
}

// lock locks key and returns its unlock.
func (k *keyedMutex) lock(key storage.TxnKey) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[storage.TxnKey]*keyedEntry{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
