package bus

// This file lists every JetStream stream of the homeserver. Adding a stream
// means adding one Stream and one Subject constant and one entry in
// Streams; EnsureStreams creates or updates it at Open.
//
// Subjects are partitioned so that order holds where it matters and nowhere
// else: a publisher appends one token, Partition(key, n), to the subject
// root, where key is the room (room events, typing, receipts), the user
// (presence, to-device, device lists), the destination server (federation)
// or the application service. A consumer that must keep order per key
// handles one partition at a time (see Consume and WithMaxAckPending).

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream names, without the prefix (see Bus.StreamName).
const (
	// StreamRoomserverOutput carries every event the roomserver accepted.
	StreamRoomserverOutput = "roomserver_output"
	// StreamFederationOutbound is the federation sender's queue of PDUs
	// and EDUs to send to other servers.
	StreamFederationOutbound = "federation_outbound"
	// StreamAppserviceTxn is the queue of transactions to push to
	// application services.
	StreamAppserviceTxn = "appservice_txn"
	// StreamTyping carries typing notifications.
	StreamTyping = "edu_typing"
	// StreamReceipts carries read receipts.
	StreamReceipts = "edu_receipt"
	// StreamPresence carries presence updates.
	StreamPresence = "edu_presence"
	// StreamToDevice carries to-device messages (E2EE key exchange).
	StreamToDevice = "edu_to_device"
	// StreamDeviceLists carries device-list updates, so that clients know
	// whom to encrypt for.
	StreamDeviceLists = "edu_device_list"
)

// Subject roots, without the prefix. Each stream takes its root followed by
// exactly one partition token: Subject(SubjectRoomserverOutput,
// Partition(roomID, n)).
const (
	// SubjectRoomserverOutput is partitioned by room.
	SubjectRoomserverOutput = "roomserver.output"
	// SubjectFederationOutbound is partitioned by destination server.
	SubjectFederationOutbound = "federation.outbound"
	// SubjectAppserviceTxn is partitioned by application service id.
	SubjectAppserviceTxn = "appservice.txn"
	// SubjectTyping is partitioned by room.
	SubjectTyping = "edu.typing"
	// SubjectReceipts is partitioned by room.
	SubjectReceipts = "edu.receipt"
	// SubjectPresence is partitioned by user.
	SubjectPresence = "edu.presence"
	// SubjectToDevice is partitioned by the receiving user.
	SubjectToDevice = "edu.to_device"
	// SubjectDeviceLists is partitioned by the user whose devices changed.
	SubjectDeviceLists = "edu.device_list"
)

// Durations of the table.
const (
	week = 7 * 24 * time.Hour
	// dedupWindow is how long a message id is remembered: long enough for a
	// publisher that crashed after the database commit to restart and
	// publish again without making a duplicate.
	dedupWindow = 10 * time.Minute
)

// StreamSpec is one stream of the table: names are relative (without the
// prefix), and every field is explicit so that the table reads as the
// whole policy.
type StreamSpec struct {
	// Name is one of the Stream constants.
	Name string
	// Subjects are relative subject filters, a root and ".*".
	Subjects []string
	// Retention says when a message goes: Limits keeps it for every
	// consumer until MaxAge; WorkQueue deletes it once its one consumer
	// acknowledged it.
	Retention jetstream.RetentionPolicy
	// Storage is File for what must survive a restart, Memory for what is
	// stale within seconds anyway.
	Storage jetstream.StorageType
	// MaxAge drops older messages.
	MaxAge time.Duration
	// Duplicates is the window in which a repeated message id is dropped.
	Duplicates time.Duration
}

// Streams returns the table of every stream the homeserver uses. The
// durable streams keep a week so that a component stopped over a long
// weekend (or a split-out process that crashed) catches up on restart; the
// database, not the bus, is the record, so a week is a catch-up window,
// not an archive.
func Streams() []StreamSpec {
	return []StreamSpec{
		{
			// Several durable consumers (sync, federation, appservices,
			// push) read it independently and a consumer added later must
			// still see recent events: limits, not interest, retention.
			Name: StreamRoomserverOutput, Subjects: []string{SubjectRoomserverOutput + ".*"},
			Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage,
			MaxAge: week, Duplicates: dedupWindow,
		},
		{
			// One consumer, the federation sender; a message goes once it
			// is handed over. A destination down for more than a week
			// catches up by backfill.
			Name: StreamFederationOutbound, Subjects: []string{SubjectFederationOutbound + ".*"},
			Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
			MaxAge: week, Duplicates: dedupWindow,
		},
		{
			// One consumer, the appservice pusher.
			Name: StreamAppserviceTxn, Subjects: []string{SubjectAppserviceTxn + ".*"},
			Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
			MaxAge: week, Duplicates: dedupWindow,
		},
		{
			// Typing lasts at most 30 s by default: stale after a minute,
			// worthless after a restart.
			Name: StreamTyping, Subjects: []string{SubjectTyping + ".*"},
			Retention: jetstream.LimitsPolicy, Storage: jetstream.MemoryStorage,
			MaxAge: time.Minute, Duplicates: 30 * time.Second,
		},
		{
			// Receipts are small and persisted by their consumers; a day
			// covers any restart.
			Name: StreamReceipts, Subjects: []string{SubjectReceipts + ".*"},
			Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage,
			MaxAge: 24 * time.Hour, Duplicates: dedupWindow,
		},
		{
			// Presence is re-sent periodically and only the latest counts.
			Name: StreamPresence, Subjects: []string{SubjectPresence + ".*"},
			Retention: jetstream.LimitsPolicy, Storage: jetstream.MemoryStorage,
			MaxAge: 10 * time.Minute, Duplicates: time.Minute,
		},
		{
			// To-device messages must arrive exactly once and in order per
			// device: durable, with the message id deduplicating retries.
			Name: StreamToDevice, Subjects: []string{SubjectToDevice + ".*"},
			Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage,
			MaxAge: week, Duplicates: dedupWindow,
		},
		{
			// A lost device-list update means a device nobody encrypts
			// for: durable.
			Name: StreamDeviceLists, Subjects: []string{SubjectDeviceLists + ".*"},
			Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage,
			MaxAge: week, Duplicates: dedupWindow,
		},
	}
}

// EnsureStreams creates every stream of Streams, or updates it to the
// table's settings; running it again changes nothing. Open calls it.
// A change NATS cannot apply in place (retention, storage) is an error
// naming the stream: an operator must migrate it.
func (b *Bus) EnsureStreams(ctx context.Context) error {
	for _, s := range Streams() {
		if _, err := b.js.CreateOrUpdateStream(ctx, b.streamConfig(s)); err != nil {
			return fmt.Errorf("ensure stream %s: %w", b.StreamName(s.Name), err)
		}
	}
	return nil
}

// streamConfig is the JetStream configuration of s under b's prefix.
func (b *Bus) streamConfig(s StreamSpec) jetstream.StreamConfig {
	subjects := make([]string, len(s.Subjects))
	for i, sub := range s.Subjects {
		subjects[i] = b.subject(sub)
	}
	return jetstream.StreamConfig{
		Name:       b.StreamName(s.Name),
		Subjects:   subjects,
		Retention:  s.Retention,
		Storage:    s.Storage,
		MaxAge:     s.MaxAge,
		Duplicates: s.Duplicates,
		MaxMsgs:    -1,
		MaxBytes:   -1,
		Discard:    jetstream.DiscardOld,
		Replicas:   1,
	}
}

// Partition returns the subject token of key among n partitions (n >= 1):
// a stable hash, so one key always lands in the same partition. n must not
// change while messages are in flight, or one key's messages would be
// split across two partitions and lose their order.
func Partition(key string, n int) string {
	if n <= 1 {
		return "0"
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key)) // hash.Hash never fails
	return strconv.FormatUint(uint64(h.Sum32()%uint32(n)), 10)
}
