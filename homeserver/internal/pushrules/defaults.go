package pushrules

import (
	"encoding/json"
	"strings"
)

// Ids of the server-default rules the code refers to.
const (
	RuleMaster              = ".m.rule.master"
	RuleContainsDisplayName = ".m.rule.contains_display_name"
	RuleRoomNotif           = ".m.rule.roomnotif"
	RuleContainsUserName    = ".m.rule.contains_user_name"
)

// legacyMentionRules are the rules the spec (v1.7) deprecates in favour
// of m.mentions: they apply only to events without an m.mentions
// property.
var legacyMentionRules = map[string]bool{
	RuleContainsDisplayName: true,
	RuleRoomNotif:           true,
	RuleContainsUserName:    true,
}

// Raw actions of the default rules.
var (
	actNotify          = json.RawMessage(`"notify"`)
	actSoundDefault    = json.RawMessage(`{"set_tweak":"sound","value":"default"}`)
	actSoundRing       = json.RawMessage(`{"set_tweak":"sound","value":"ring"}`)
	actHighlight       = json.RawMessage(`{"set_tweak":"highlight"}`)
	notifySound        = []json.RawMessage{actNotify, actSoundDefault}
	notifySoundHigh    = []json.RawMessage{actNotify, actSoundDefault, actHighlight}
	notifyHighlight    = []json.RawMessage{actNotify, actHighlight}
	notifyOnly         = []json.RawMessage{actNotify}
	noActions          = []json.RawMessage{}
	valueTrue          = json.RawMessage(`true`)
	valueReplace       = json.RawMessage(`"m.replace"`)
	roomMemberCountIs2 = "2"
)

func match(key, pattern string) Condition {
	return Condition{Kind: CondEventMatch, Key: key, Pattern: &pattern}
}

func rule(id string, enabled bool, actions []json.RawMessage, conds ...Condition) Rule {
	if conds == nil {
		conds = []Condition{}
	}
	return Rule{RuleID: id, Default: true, Enabled: enabled, Conditions: conds, Actions: actions}
}

// Defaults returns the spec's server-default rules (v1.19, "Predefined
// Rules") for userID, each kind in the spec's order.
func Defaults(userID string) Ruleset {
	localpart := strings.TrimPrefix(userID, "@")
	if i := strings.IndexByte(localpart, ':'); i >= 0 {
		localpart = localpart[:i]
	}
	mentionValue, _ := json.Marshal(userID)
	return Ruleset{
		Override: []Rule{
			rule(RuleMaster, false, noActions),
			rule(".m.rule.suppress_notices", true, noActions, match("content.msgtype", "m.notice")),
			rule(".m.rule.invite_for_me", true, notifySound,
				match("type", "m.room.member"), match("content.membership", "invite"), match("state_key", userID)),
			rule(".m.rule.member_event", true, noActions, match("type", "m.room.member")),
			rule(".m.rule.is_user_mention", true, notifySoundHigh,
				Condition{Kind: CondEventPropertyContains, Key: `content.m\.mentions.user_ids`, Value: mentionValue}),
			rule(RuleContainsDisplayName, true, notifySoundHigh, Condition{Kind: CondContainsDisplayName}),
			rule(".m.rule.is_room_mention", true, notifyHighlight,
				Condition{Kind: CondEventPropertyIs, Key: `content.m\.mentions.room`, Value: valueTrue},
				Condition{Kind: CondSenderNotificationPerms, Key: "room"}),
			rule(RuleRoomNotif, true, notifyHighlight,
				match("content.body", "@room"), Condition{Kind: CondSenderNotificationPerms, Key: "room"}),
			rule(".m.rule.tombstone", true, notifyHighlight, match("type", "m.room.tombstone"), match("state_key", "")),
			rule(".m.rule.reaction", true, noActions, match("type", "m.reaction")),
			rule(".m.rule.room.server_acl", true, noActions, match("type", "m.room.server_acl"), match("state_key", "")),
			rule(".m.rule.suppress_edits", true, noActions,
				Condition{Kind: CondEventPropertyIs, Key: `content.m\.relates_to.rel_type`, Value: valueReplace}),
		},
		Content: []Rule{
			{RuleID: RuleContainsUserName, Default: true, Enabled: true, Pattern: &localpart, Actions: notifySoundHigh},
		},
		Room:   []Rule{},
		Sender: []Rule{},
		Underride: []Rule{
			rule(".m.rule.call", true, []json.RawMessage{actNotify, actSoundRing}, match("type", "m.call.invite")),
			rule(".m.rule.encrypted_room_one_to_one", true, notifySound,
				Condition{Kind: CondRoomMemberCount, Is: roomMemberCountIs2}, match("type", "m.room.encrypted")),
			rule(".m.rule.room_one_to_one", true, notifySound,
				Condition{Kind: CondRoomMemberCount, Is: roomMemberCountIs2}, match("type", "m.room.message")),
			rule(".m.rule.message", true, notifyOnly, match("type", "m.room.message")),
			rule(".m.rule.encrypted", true, notifyOnly, match("type", "m.room.encrypted")),
		},
	}
}
