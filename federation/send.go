package federation

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/matrix-org/gomatrixserverlib/fclient"

	fedstorage "github.com/matrix-gouv/homeserver/federation/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// The spec's limits on one transaction.
const (
	maxTxnPDUs = 50
	maxTxnEDUs = 100
)

// txnRequest is the body of PUT /_matrix/federation/v1/send/{txnId}.
type txnRequest struct {
	Origin         string            `json:"origin"`
	OriginServerTS int64             `json:"origin_server_ts"`
	PDUs           []json.RawMessage `json:"pdus"`
	EDUs           []json.RawMessage `json:"edus"`
}

// Send answers PUT /_matrix/federation/v1/send/{txnId}: each PDU is
// checked (format, prev_events, signatures, content hash) and given to
// the roomserver, which checks the auth rules; the answer gives each
// PDU's result by event id. PDUs of senders whose servers are off the
// allow-list are taken like the others (relay.go). A transaction already handled (same origin
// and id) gets the same answer again without being handled twice. PDUs
// of rooms this server does not know, or that do not parse far enough
// to have an event id, are dropped, as the spec allows.
func (c *Component) Send(r *http.Request) (any, error) {
	// Events of servers off the allow-list that the origin relays are
	// checked with keys the origin vouches for (relay.go).
	ctx := withRelay(r.Context(), originOf(r))
	origin, txnID := string(originOf(r)), httputil.PathParam(r, "txnID")
	var req txnRequest
	if err := decodeContent(r, &req); err != nil {
		return nil, err
	}
	if len(req.PDUs) > maxTxnPDUs || len(req.EDUs) > maxTxnEDUs {
		return nil, httputil.BadJSON("a transaction holds at most %d PDUs and %d EDUs", maxTxnPDUs, maxTxnEDUs)
	}
	if req.Origin != "" && req.Origin != origin {
		return nil, httputil.BadJSON("origin %q is not the request's signer", req.Origin)
	}
	unlock := c.txns.lock(origin + "\x00" + txnID)
	defer unlock()
	if prev, err := c.store.InboundTxn(ctx, origin, txnID); err == nil {
		return json.RawMessage(prev), nil
	} else if !errors.Is(err, fedstorage.ErrNotFound) {
		return nil, err
	}
	log := c.log.WithFields(map[string]any{fieldOrigin: origin, fieldTxnID: txnID})
	resp := fclient.RespSend{PDUs: map[string]fclient.PDUResult{}}
	// The PDUs that pass the checks, by room, in order: each room's go to
	// the roomserver in one call (one commit).
	var rooms []*roomPDUs
	byRoom := map[string]*roomPDUs{}
	for _, raw := range req.PDUs {
		var head struct {
			RoomID string `json:"room_id"`
		}
		if json.Unmarshal(raw, &head) != nil || head.RoomID == "" {
			log.Debug("dropping a PDU without room id")
			continue
		}
		v, err := c.roomVersionOf(ctx, head.RoomID)
		if errors.Is(err, rsapi.ErrRoomNotFound) || errors.Is(err, rsapi.ErrUnsupportedVersion) {
			log.WithField(fieldRoomID, head.RoomID).Debug("dropping a PDU of an unknown room")
			continue
		}
		if err != nil {
			return nil, err
		}
		pdu, err := c.checkPDU(ctx, v, raw)
		var bad *errPDU
		switch {
		case pdu == nil:
			log.WithError(err).Debug("dropping an unparsable PDU")
			continue
		case errors.As(err, &bad):
			resp.PDUs[pdu.EventID()] = fclient.PDUResult{Error: bad.reason}
			continue
		}
		if ok, err := c.aclAllows(ctx, head.RoomID, origin); err != nil {
			return nil, err
		} else if !ok {
			resp.PDUs[pdu.EventID()] = fclient.PDUResult{Error: "denied by the room's server ACL"}
			continue
		}
		g := byRoom[head.RoomID]
		if g == nil {
			g = &roomPDUs{v: v}
			byRoom[head.RoomID] = g
			rooms = append(rooms, g)
		}
		g.pdus = append(g.pdus, pdu)
	}
	for _, g := range rooms {
		msgs, err := c.inputRoom(ctx, originOf(r), g)
		if err != nil {
			return nil, err
		}
		for _, pdu := range g.pdus {
			msg := msgs[pdu.EventID()]
			resp.PDUs[pdu.EventID()] = fclient.PDUResult{Error: msg}
			if msg != "" {
				log.WithField(fieldEventID, pdu.EventID()).WithField("reason", msg).Info("inbound PDU not accepted")
			}
		}
	}
	// Of the EDUs, to-device messages, device-list changes, typing,
	// receipts and presence are handled; others are acknowledged and
	// dropped.
	for _, raw := range req.EDUs {
		var edu struct {
			Type    string          `json:"edu_type"`
			Content json.RawMessage `json:"content"`
		}
		if json.Unmarshal(raw, &edu) != nil {
			continue
		}
		var err error
		switch edu.Type {
		case eduDirectToDevice:
			err = c.receiveToDevice(ctx, origin, edu.Content)
		case eduDeviceListUpdate:
			err = c.receiveDeviceListUpdate(ctx, origin, edu.Content)
		case eduSigningKeyUpdate:
			err = c.receiveSigningKeyUpdate(ctx, origin, edu.Content)
		case eduTyping:
			err = c.receiveTyping(ctx, origin, edu.Content)
		case eduReceipt:
			err = c.receiveReceipts(ctx, origin, edu.Content)
		case eduPresence:
			err = c.receivePresence(ctx, origin, edu.Content)
		}
		if err != nil {
			return nil, err
		}
	}
	js, err := json.Marshal(resp)
	if err != nil {
		return nil, err
	}
	if err := c.store.StoreInboundTxn(ctx, origin, txnID, js); err != nil {
		return nil, err
	}
	return json.RawMessage(js), nil
}
