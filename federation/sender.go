package federation

// The outbound queue: every event this server's users send reaches the
// other servers in its room, in order per destination, batched into
// transactions, surviving restarts, and one dead server never holds up
// the others.
//
//	roomserver output stream ──► durable consumer "federation_sender"
//	        │   (events sent by our users; destinations = servers with
//	        │    joined members, plus the target of a membership change)
//	        ▼
//	federation_outbound stream, subject federation.outbound.<dest token>
//	        │   (message id event id + destination: no duplicates)
//	        ▼
//	one durable consumer per destination, "federation_dest_<token>":
//	the waiting messages (up to 50) become one transaction; a failure
//	retries the same transaction (same id) in place with a backoff
//	doubling from 1 s to 10 min, while the other destinations go on.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/matrix-gouv/homeserver/federation/internal/transport"
	"github.com/matrix-gouv/homeserver/internal/bus"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// Durable consumer names of the queue.
const (
	outputDurable     = "federation_sender"
	destDurablePrefix = "federation_dest_"
)

// Retry backoff of a destination that fails.
const (
	retryMin = time.Second
	retryMax = 10 * time.Minute
)

// outputBatch bounds the output events handled at once.
const outputBatch = 64

// queuedPDU is one message of the outbound stream: a PDU, or an EDU
// (a gomatrixserverlib.EDU).
type queuedPDU struct {
	Destination string          `json:"destination"`
	EventID     string          `json:"event_id,omitempty"`
	PDU         json.RawMessage `json:"pdu,omitempty"`
	EDU         json.RawMessage `json:"edu,omitempty"`
}

// sender runs the outbound queue.
type sender struct {
	c *Component
	// ctx lives from start to stop; consumers of destinations found later
	// are started in it.
	ctx    context.Context
	cancel context.CancelFunc

	mu sync.Mutex // guards dests and stopOutput
	// dests holds the stop function of each destination's consumer.
	dests      map[string]func()
	stopOutput func()

	// servers are the servers joined to each room, as the output stream
	// has them.
	servers *roomServers
}

func newSender(c *Component) *sender {
	return &sender{c: c, dests: map[string]func(){}, servers: newRoomServers(func(ctx context.Context, roomID string) ([]string, error) {
		return c.rooms.JoinedServers(ctx, roomID)
	})}
}

// start starts a consumer for each known destination, then the consumer
// of the roomserver's output.
func (s *sender) start(ctx context.Context) error {
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	dests, err := s.c.store.Destinations(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range dests {
		if err := s.startDestLocked(d); err != nil {
			return err
		}
	}
	stop, err := s.c.bus.ConsumeBatch(s.ctx, bus.StreamRoomserverOutput, outputDurable, "", s.handleOutput, outputBatch)
	if err != nil {
		return fmt.Errorf("consume roomserver output: %w", err)
	}
	s.stopOutput = stop
	return nil
}

// stop stops every consumer and waits for them.
func (s *sender) stop() {
	s.mu.Lock()
	stopOutput, dests := s.stopOutput, s.dests
	s.stopOutput, s.dests = nil, map[string]func(){}
	s.mu.Unlock()
	if stopOutput != nil {
		stopOutput()
	}
	for _, stop := range dests {
		stop()
	}
	if s.cancel != nil {
		s.cancel()
	}
}

// destToken is a destination's subject token and consumer name suffix:
// server names hold dots and colons, which NATS tokens may not.
func destToken(dest string) string {
	h := sha256.Sum256([]byte(dest))
	return hex.EncodeToString(h[:16])
}

// ensureDest records dest and starts its consumer, once.
func (s *sender) ensureDest(ctx context.Context, dest string) error {
	s.mu.Lock()
	_, ok := s.dests[dest]
	s.mu.Unlock()
	if ok {
		return nil
	}
	if err := s.c.store.AddDestination(ctx, dest); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.dests[dest]; ok || s.ctx.Err() != nil {
		return nil
	}
	return s.startDestLocked(dest)
}

// startDestLocked starts dest's consumer; s.mu is held.
func (s *sender) startDestLocked(dest string) error {
	token := destToken(dest)
	stop, err := s.c.bus.ConsumeBatch(s.ctx, bus.StreamFederationOutbound, destDurablePrefix+token,
		bus.Subject(bus.SubjectFederationOutbound, token),
		func(ctx context.Context, msgs []bus.Message) error { return s.sendTxn(ctx, dest, msgs) },
		maxTxnPDUs, bus.WithBackoff(retryMin, retryMax))
	if err != nil {
		return fmt.Errorf("start sender to %s: %w", dest, err)
	}
	s.dests[dest] = stop
	return nil
}

// eventHead is what the queue reads of an event.
type eventHead struct {
	RoomID   string  `json:"room_id"`
	Sender   string  `json:"sender"`
	Type     string  `json:"type"`
	StateKey *string `json:"state_key"`
	Content  struct {
		Membership string `json:"membership"`
	} `json:"content"`
}

// handleOutput queues each event our users sent for the other servers
// of its room.
func (s *sender) handleOutput(ctx context.Context, msgs []bus.Message) error {
	for _, msg := range msgs {
		var out rsapi.OutputEvent
		if err := msg.Decode(&out); err != nil {
			s.c.log.WithError(err).Error("dropping undecodable roomserver output")
			continue
		}
		if out.SoftFailed {
			continue
		}
		var head eventHead
		if err := json.Unmarshal(out.Event.JSON, &head); err != nil {
			continue
		}
		if len(out.StateAdded) > 0 || len(out.StateRemoved) > 0 {
			// Before the event is sent: a join's server gets the join.
			s.servers.changed(head.RoomID)
		}
		if serverOf(head.Sender) != string(s.c.serverName) {
			continue
		}
		dests, err := s.destinations(ctx, head)
		if err != nil {
			return err
		}
		for _, d := range dests {
			if err := s.ensureDest(ctx, d); err != nil {
				return err
			}
			q := queuedPDU{Destination: d, EventID: out.Event.EventID, PDU: out.Event.JSON}
			if err := s.c.bus.Publish(ctx, bus.Subject(bus.SubjectFederationOutbound, destToken(d)), out.Event.EventID+" "+d, q); err != nil {
				return err
			}
		}
	}
	return nil
}

// destinations returns the servers an event goes to: those with joined
// members in its room, and the server of a member event's target (who
// is being kicked, banned, or leaving), but never this one nor a server
// the policy does not allow.
func (s *sender) destinations(ctx context.Context, head eventHead) ([]string, error) {
	servers, err := s.servers.get(ctx, head.RoomID)
	if errors.Is(err, rsapi.ErrRoomNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if head.Type == spec.MRoomMember && head.StateKey != nil && head.Content.Membership != spec.Invite {
		// (Invites reach the invitee's server by /invite, before they
		// are accepted here.)
		servers = append(slices.Clip(servers), serverOf(*head.StateKey))
	}
	seen := map[string]bool{string(s.c.serverName): true, "": true}
	var out []string
	for _, d := range servers {
		if seen[d] {
			continue
		}
		seen[d] = true
		if s.c.cfg.ServerAllowed(d) {
			out = append(out, d)
		}
	}
	return out, nil
}

// sendTxn sends the waiting PDUs of one destination as one transaction.
// Its id is made of the first message's stream sequence and the count,
// so that a retry of the same batch is the same transaction, which the
// receiver answers without handling twice.
func (s *sender) sendTxn(ctx context.Context, dest string, msgs []bus.Message) error {
	txn := gomatrixserverlib.Transaction{
		TransactionID:  gomatrixserverlib.TransactionID(fmt.Sprintf("%d-%d", msgs[0].Sequence, len(msgs))),
		Origin:         s.c.serverName,
		Destination:    spec.ServerName(dest),
		OriginServerTS: spec.AsTimestamp(s.c.now()),
		PDUs:           make([]json.RawMessage, 0, len(msgs)),
		EDUs:           []gomatrixserverlib.EDU{},
	}
	for _, m := range msgs {
		var q queuedPDU
		if err := m.Decode(&q); err != nil {
			s.c.log.WithError(err).Error("dropping undecodable outbound message")
			continue
		}
		if q.EDU != nil {
			var edu gomatrixserverlib.EDU
			if err := json.Unmarshal(q.EDU, &edu); err != nil {
				s.c.log.WithError(err).Error("dropping undecodable outbound EDU")
				continue
			}
			txn.EDUs = append(txn.EDUs, edu)
			continue
		}
		txn.PDUs = append(txn.PDUs, q.PDU)
	}
	if len(txn.PDUs) == 0 && len(txn.EDUs) == 0 {
		return nil
	}
	log := s.c.log.WithFields(map[string]any{fieldServer: dest, fieldTxnID: string(txn.TransactionID)})
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.c.client.SendTransaction(ctx, txn)
	if errors.Is(err, transport.ErrNotAllowed) {
		log.Info("dropping a transaction for a server no longer allowed")
		return nil
	}
	if err != nil {
		log.WithError(err).WithField("attempt", msgs[0].Delivery).Warn("send transaction")
		return err
	}
	for id, res := range resp.PDUs {
		if res.Error != "" {
			log.WithField(fieldEventID, id).WithField("reason", res.Error).Info("destination did not accept an event")
		}
	}
	return nil
}

// serverOf returns the server name of a user id ("" when not one).
func serverOf(userID string) string {
	_, server, ok := strings.Cut(userID, ":")
	if !ok || !strings.HasPrefix(userID, "@") {
		return ""
	}
	return server
}
