package keys

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// toDeviceEvent is what a target device receives through /sync.
type toDeviceEvent struct {
	Content json.RawMessage `json:"content"`
	Sender  string          `json:"sender"`
	Type    string          `json:"type"`
}

// SendToDevice is PUT /sendToDevice/{eventType}/{txnID}: queues a message
// per target device ("*": every device of the user), once per transaction
// id of the sending device. Remote users' messages go through
// RemoteToDevice (dropped with a log line while there is none).
func (h *Handlers) SendToDevice(r *http.Request) (any, error) {
	dev := auth.DeviceFrom(r.Context())
	eventType := httputil.PathParam(r, "eventType")
	txnID := httputil.PathParam(r, "txnID")
	if eventType == "" || txnID == "" {
		return nil, httputil.InvalidParam("the event type and transaction id must not be empty")
	}
	var req struct {
		Messages map[string]map[string]json.RawMessage `json:"messages"`
	}
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	if req.Messages == nil {
		return nil, httputil.MissingParam("messages is required")
	}
	var local []storage.ToDeviceMessage
	remote := map[string]map[string]map[string]json.RawMessage{}
	users := make([]string, 0, len(req.Messages))
	for u := range req.Messages {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, userID := range users {
		server := serverOf(userID)
		if server == "" {
			return nil, httputil.InvalidParam("%q is not a user id", userID)
		}
		devices := req.Messages[userID]
		ids := make([]string, 0, len(devices))
		for d := range devices {
			ids = append(ids, d)
		}
		sort.Strings(ids)
		for _, deviceID := range ids {
			content := devices[deviceID]
			if t := strings.TrimSpace(string(content)); t == "" || t[0] != '{' {
				return nil, httputil.BadJSON("the content for %s's device %s must be an object", userID, deviceID)
			}
			if server != h.global.ServerName {
				if remote[server] == nil {
					remote[server] = map[string]map[string]json.RawMessage{}
				}
				if remote[server][userID] == nil {
					remote[server][userID] = map[string]json.RawMessage{}
				}
				remote[server][userID][deviceID] = content
				continue
			}
			msg, err := json.Marshal(toDeviceEvent{Content: content, Sender: dev.UserID, Type: eventType})
			if err != nil {
				return nil, httputil.BadJSON("the content for %s's device %s is not valid JSON", userID, deviceID)
			}
			local = append(local, storage.ToDeviceMessage{UserID: userID, DeviceID: deviceID, JSON: string(msg)})
		}
	}
	recipients, duplicate, err := h.store.SendToDevice(r.Context(),
		storage.ToDeviceTxn{UserID: dev.UserID, DeviceID: dev.DeviceID, TxnID: txnID}, local)
	if err != nil {
		return nil, err
	}
	if duplicate {
		return struct{}{}, nil
	}
	for _, u := range recipients {
		h.notify.NotifyToDevice(u)
	}
	if h.bridges != nil {
		h.bridges.ToDevice(r.Context(), dev.UserID, eventType, local)
	}
	for server, msgs := range remote {
		log := h.log.WithFields(logrus.Fields{fieldServer: server, fieldEventType: eventType, fieldCount: len(msgs)})
		if h.remoteToDevice == nil {
			log.Info("to-device messages for a remote server dropped: federation is not available")
			continue
		}
		// The message id makes the remote server's delivery idempotent too.
		if err := h.remoteToDevice.SendToDevice(r.Context(), server, dev.UserID, eventType, dev.DeviceID+"/"+txnID, msgs); err != nil {
			log.WithError(err).Warn("could not queue to-device messages for a remote server")
		}
	}
	return struct{}{}, nil
}
