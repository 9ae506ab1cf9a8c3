package homeserver

import (
	"context"
	"encoding/json"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/homeserver/internal/keys"
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
	// store reads devices and key counts.
	store *storage.Store
	log   *logrus.Entry
}

// publishTimeout bounds one publish; an ephemeral event that cannot be
// published is dropped with a log line, never failing the request.
const publishTimeout = 5 * time.Second

// newEDUPublisher returns a publisher, or nil when no application service
// wants ephemeral events.
func newEDUPublisher(b *bus.Bus, apps *config.AppServices, store *storage.Store, log *logrus.Entry) *eduPublisher {
	if b == nil || apps == nil {
		return nil
	}
	for _, as := range apps.Registrations {
		if (as.WantsEphemeral() || as.MSC3202) && as.HasURL() {
			return &eduPublisher{bus: b, apps: apps, store: store, log: log}
		}
	}
	return nil
}

// msc3202 reports whether a registration asked for device lists and key
// counts, and (with userID not empty) owns userID.
func (p *eduPublisher) msc3202(userID string) bool {
	for _, as := range p.apps.Registrations {
		if as.MSC3202 && as.HasURL() && (userID == "" || as.OwnsUser(userID)) {
			return true
		}
	}
	return false
}

// DeviceListChange publishes that userID's devices changed.
func (p *eduPublisher) DeviceListChange(ctx context.Context, userID string) {
	if p.msc3202("") {
		p.publish(ctx, bus.SubjectDeviceLists, userID, api.EDU{Type: api.EDUDeviceListUpdate, Sender: userID, Content: json.RawMessage(`{}`)})
	}
}

// KeyCounts publishes the key counts of a bridge user's device.
func (p *eduPublisher) KeyCounts(ctx context.Context, userID, deviceID string) {
	if !p.msc3202(userID) {
		return
	}
	counts, err := p.store.OneTimeKeyCounts(ctx, userID, deviceID)
	if err != nil {
		p.log.WithError(err).Warn("read one-time key counts for an application service")
		return
	}
	fallback, err := p.store.UnusedFallbackKeyTypes(ctx, userID, deviceID)
	if err != nil {
		p.log.WithError(err).Warn("read fallback key types for an application service")
		return
	}
	if fallback == nil {
		fallback = []string{}
	}
	content, _ := json.Marshal(api.KeyCounts{OneTimeKeys: counts, UnusedFallback: fallback}) // maps and lists always encode
	p.publish(ctx, bus.SubjectToDevice, userID, api.EDU{Type: api.EDUKeyCounts, ToUserID: userID, ToDeviceID: deviceID, Content: content})
}

// bridgeKeysNotifier is the E2EE relay's keys.Notifier when bridges asked
// for device lists and key counts (MSC3202): it tells them, then next.
type bridgeKeysNotifier struct {
	next keys.Notifier
	edus *eduPublisher
}

// NotifyToDevice implements keys.Notifier (to-device messages reach the
// bridges through keys.Deps.Bridges).
func (n bridgeKeysNotifier) NotifyToDevice(userID string) { n.next.NotifyToDevice(userID) }

// NotifyDeviceListChange implements keys.Notifier.
func (n bridgeKeysNotifier) NotifyDeviceListChange(userID string) {
	n.next.NotifyDeviceListChange(userID)
	n.edus.DeviceListChange(context.Background(), userID)
}

// NotifyKeyCounts implements keys.Notifier.
func (n bridgeKeysNotifier) NotifyKeyCounts(userID, deviceID string) {
	n.next.NotifyKeyCounts(userID, deviceID)
	n.edus.KeyCounts(context.Background(), userID, deviceID)
}

var _ keys.Notifier = bridgeKeysNotifier{}

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
// users (the rest only go to the inbox /sync reads); a message to "*" goes
// to each of the user's devices.
func (p *eduPublisher) ToDevice(ctx context.Context, sender, eventType string, msgs []storage.ToDeviceMessage) {
	for _, m := range msgs {
		owned := false
		for _, as := range p.apps.Registrations {
			owned = owned || (as.WantsEphemeral() && as.HasURL() && as.OwnsUser(m.UserID))
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
		devices := []string{m.DeviceID}
		if m.DeviceID == "*" {
			devs, err := p.store.Devices(ctx, m.UserID)
			if err != nil {
				p.log.WithError(err).Warn("list devices for an application service's to-device message")
				continue
			}
			devices = devices[:0]
			for _, d := range devs {
				devices = append(devices, d.DeviceID)
			}
		}
		for _, d := range devices {
			p.publish(ctx, bus.SubjectToDevice, m.UserID, api.EDU{Type: eventType, Sender: sender, ToUserID: m.UserID, ToDeviceID: d, Content: ev.Content})
		}
	}
}
