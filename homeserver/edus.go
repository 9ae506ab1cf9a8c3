package homeserver

import (
	"context"
	"encoding/json"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/bus"
)

// eduPublisher publishes typing, receipts, presence and to-device
// messages on the bus for the application services that asked for
// ephemeral events (the appservices component consumes them). It does
// nothing when no registration asked, so that servers without bridges
// publish nothing.
type eduPublisher struct {
	bus  *bus.Bus
	apps *config.AppServices
	log  *logrus.Entry
}

// publishTimeout bounds one publish; an ephemeral event that cannot be
// published is dropped with a log line, never failing the request.
const publishTimeout = 5 * time.Second

// newEDUPublisher returns a publisher, or nil when no application service
// wants ephemeral events.
func newEDUPublisher(b *bus.Bus, apps *config.AppServices, log *logrus.Entry) *eduPublisher {
	if b == nil || apps == nil {
		return nil
	}
	for _, as := range apps.Registrations {
		if as.WantsEphemeral() && as.HasURL() {
			return &eduPublisher{bus: b, apps: apps, log: log}
		}
	}
	return nil
}

func (p *eduPublisher) publish(ctx context.Context, root, key string, edu api.EDU) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	if err := p.bus.Publish(ctx, bus.Subject(root, bus.Partition(key, 1)), "", edu); err != nil {
		p.log.WithError(err).WithField("edu_type", edu.Type).Warn("publish ephemeral event for application services")
	}
}

// Typing publishes the users typing in roomID.
func (p *eduPublisher) Typing(ctx context.Context, roomID string, userIDs []string) {
	if userIDs == nil {
		userIDs = []string{}
	}
	content, _ := json.Marshal(map[string][]string{"user_ids": userIDs}) // a map of strings always encodes
	p.publish(ctx, bus.SubjectTyping, roomID, api.EDU{Type: "m.typing", RoomID: roomID, Content: content})
}

// Receipt publishes one receipt.
func (p *eduPublisher) Receipt(ctx context.Context, roomID, userID, typ, threadID, eventID string, ts int64) {
	r := map[string]any{"ts": ts}
	if threadID != "" {
		r["thread_id"] = threadID
	}
	content, _ := json.Marshal(map[string]map[string]map[string]any{eventID: {typ: {userID: r}}})
	p.publish(ctx, bus.SubjectReceipts, roomID, api.EDU{Type: "m.receipt", RoomID: roomID, Content: content})
}

// Presence publishes a user's presence.
func (p *eduPublisher) Presence(ctx context.Context, userID, presence, statusMsg string) {
	c := map[string]any{"presence": presence, "last_active_ago": 0, "currently_active": presence == "online"}
	if statusMsg != "" {
		c["status_msg"] = statusMsg
	}
	content, _ := json.Marshal(c)
	p.publish(ctx, bus.SubjectPresence, userID, api.EDU{Type: "m.presence", Sender: userID, Content: content})
}

// ToDevice publishes the messages addressed to application services'
// users (the rest only go to the inbox /sync reads).
func (p *eduPublisher) ToDevice(ctx context.Context, sender, eventType string, msgs []storage.ToDeviceMessage) {
	for _, m := range msgs {
		owned := false
		for _, as := range p.apps.Registrations {
			owned = owned || (as.WantsEphemeral() && as.OwnsUser(m.UserID))
		}
		if !owned {
			continue
		}
		var ev struct {
			Content json.RawMessage `json:"content"`
		}
		if err := json.Unmarshal([]byte(m.JSON), &ev); err != nil {
			continue
		}
		p.publish(ctx, bus.SubjectToDevice, m.UserID, api.EDU{Type: eventType, Sender: sender, ToUserID: m.UserID, ToDeviceID: m.DeviceID, Content: ev.Content})
	}
}
