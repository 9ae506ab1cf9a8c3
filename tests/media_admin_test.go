package tests

import (
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
)

// TestMediaAdminQuarantine: an admin quarantines one item, a user's
// media, or the media a room's events name; quarantined media are not
// served, and can be released.
func TestMediaAdminQuarantine(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob, admin := s.Register("alice"), s.Register("bob"), s.RegisterAdmin("admin")
		photo := upload(t, alice, encodeImage(t, "png", 40, 40), "image/png", "photo.png")
		avatar := upload(t, alice, encodeImage(t, "jpeg", 40, 40), "image/jpeg", "avatar.jpg")
		elsewhere := upload(t, alice, []byte("not in the room"), "text/plain", "")
		bobs := upload(t, bob, []byte("bob's file"), "text/plain", "")

		room, err := alice.CreateRoom(ctx(), &mautrix.ReqCreateRoom{Preset: "private_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.SendMessageEvent(ctx(), room.RoomID, event.EventMessage, &event.MessageEventContent{
			MsgType: event.MsgImage, Body: "photo.png", URL: photo.CUString(),
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.SendStateEvent(ctx(), room.RoomID, event.StateRoomAvatar, "", &event.RoomAvatarEventContent{URL: avatar.CUString()}); err != nil {
			t.Fatal(err)
		}
		adminPath := "/_synapse/admin/v1/"
		s.mediaDo("POST", adminPath+"room/"+room.RoomID.String()+"/media/quarantine", alice.AccessToken, nil).expect(t, 403, "M_FORBIDDEN")
		r := s.mediaDo("POST", adminPath+"room/"+room.RoomID.String()+"/media/quarantine", admin.AccessToken, nil).expect(t, 200, "")
		if r.JSON["num_quarantined"] != float64(2) {
			t.Errorf("room quarantine: %s, want 2", r.Body)
		}
		s.mediaDo("GET", downloadPath(photo), alice.AccessToken, nil).expect(t, 404, "M_NOT_FOUND")
		s.mediaDo("GET", downloadPath(avatar)+"/x.jpg", alice.AccessToken, nil).expect(t, 404, "M_NOT_FOUND")
		s.mediaDo("GET", "/_matrix/client/v1/media/thumbnail/"+photo.Homeserver+"/"+photo.FileID+"?width=32&height=32", alice.AccessToken, nil).expect(t, 404, "M_NOT_FOUND")
		s.mediaDo("GET", downloadPath(elsewhere), alice.AccessToken, nil).expect(t, 200, "")
		s.mediaDo("POST", adminPath+"room/!nosuchroom:"+serverName+"/media/quarantine", admin.AccessToken, nil).expect(t, 404, "M_NOT_FOUND")

		// Released again.
		s.mediaDo("POST", adminPath+"media/unquarantine/"+photo.Homeserver+"/"+photo.FileID, admin.AccessToken, nil).expect(t, 200, "")
		s.mediaDo("GET", downloadPath(photo), alice.AccessToken, nil).expect(t, 200, "")
		// One item, then a user's.
		s.mediaDo("POST", adminPath+"media/quarantine/"+elsewhere.Homeserver+"/"+elsewhere.FileID, admin.AccessToken, nil).expect(t, 200, "")
		s.mediaDo("GET", downloadPath(elsewhere), alice.AccessToken, nil).expect(t, 404, "M_NOT_FOUND")
		r = s.mediaDo("POST", adminPath+"user/"+bob.UserID.String()+"/media/quarantine", admin.AccessToken, nil).expect(t, 200, "")
		if r.JSON["num_quarantined"] != float64(1) {
			t.Errorf("user quarantine: %s", r.Body)
		}
		s.mediaDo("GET", downloadPath(bobs), bob.AccessToken, nil).expect(t, 404, "M_NOT_FOUND")

		// A user's list, paged.
		r = s.mediaDo("GET", adminPath+"users/"+alice.UserID.String()+"/media?limit=2", admin.AccessToken, nil).expect(t, 200, "")
		if list, _ := r.JSON["media"].([]any); len(list) != 2 || r.JSON["total"] != float64(3) || r.JSON["next_token"] != float64(2) {
			t.Errorf("alice's media: %s", r.Body)
		}
	})
}
