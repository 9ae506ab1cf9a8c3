package scenario

import (
	"context"
	"fmt"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/accounts"
	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/matrix"
	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/stats"
)

// Names of the setup series the room helpers record.
const (
	seriesCreateRoom = "setup.create_room"
	seriesJoin       = "setup.join"
	seriesSend       = "setup.send"
)

// TagKey is the content key carrying the tool's message IDs, so that a
// receiver finds the send time of what it receives. It is namespaced as
// the specification asks of custom keys.
const TagKey = "com.github.matrix-gouv.loadtest.id"

// Capabilities named in "the server does not implement …" errors.
const (
	capCreateRoom = "room creation"
	capJoin       = "joining rooms"
	capLeave      = "leaving rooms"
	capSend       = "sending events"
	capMembers    = "room members"
	capSync       = "sync"
)

// createRoom has u create a room anyone on the server may join
// (public_chat, not published in the directory), retrying rate limits.
func createRoom(ctx context.Context, e *Env, u *accounts.User, name string) (id.RoomID, error) {
	series := e.Rec.SetupSeries(seriesCreateRoom)
	var roomID id.RoomID
	err := matrix.RetryLimited(ctx, func() error {
		start := time.Now()
		resp, err := u.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Visibility: "private", Name: name})
		if err != nil {
			series.Fail(start, matrix.ErrCode(err))
			return err
		}
		series.Observe(start, time.Since(start))
		roomID = resp.RoomID
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("create room %q: %w", name, matrix.CheckImplemented(err, capCreateRoom))
	}
	return roomID, nil
}

// joinRoom has u join roomID, recording into series; during setup it
// retries rate limits.
func joinRoom(ctx context.Context, u *accounts.User, roomID id.RoomID, series *stats.Series, retry bool) error {
	do := func() error {
		start := time.Now()
		_, err := u.JoinRoom(ctx, roomID.String(), nil)
		if err != nil {
			if ctx.Err() == nil {
				series.Fail(start, matrix.ErrCode(err))
			}
			return err
		}
		series.Observe(start, time.Since(start))
		return nil
	}
	var err error
	if retry {
		err = matrix.RetryLimited(ctx, do)
	} else {
		err = do()
	}
	if err != nil {
		return fmt.Errorf("%s joins %s: %w", u.UserID, roomID, matrix.CheckImplemented(err, capJoin))
	}
	return nil
}

// joinAll has users join roomID during setup, a few at a time.
func joinAll(ctx context.Context, e *Env, users []*accounts.User, roomID id.RoomID) error {
	series := e.Rec.SetupSeries(seriesJoin)
	return forEach(ctx, len(users), e.setupConcurrency(), func(ctx context.Context, i int) error {
		return joinRoom(ctx, users[i], roomID, series, true)
	})
}

// messageContent is an m.text message carrying tag under TagKey, its
// body padded to about size bytes.
func messageContent(tag string, size int) map[string]any {
	body := "loadtest " + tag
	if pad := size - len(body); pad > 0 {
		b := make([]byte, pad+1)
		b[0] = ' '
		for i := 1; i < len(b); i++ {
			b[i] = 'a' + byte(i%26)
		}
		body += string(b)
	}
	return map[string]any{"msgtype": "m.text", "body": body, TagKey: tag}
}

// sendMessage has u send an m.room.message carrying tag to roomID, with
// tag as transaction ID.
func sendMessage(ctx context.Context, u *accounts.User, roomID id.RoomID, tag string, size int) error {
	_, err := u.SendMessageEvent(ctx, roomID, event.EventMessage, messageContent(tag, size), mautrix.ReqSendEvent{TransactionID: tag})
	return matrix.CheckImplemented(err, capSend)
}
