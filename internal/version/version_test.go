package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestWithRevision(t *testing.T) {
	rev := debug.BuildSetting{Key: "vcs.revision", Value: "0123456789abcdef0123"}
	dirty := debug.BuildSetting{Key: "vcs.modified", Value: "true"}
	clean := debug.BuildSetting{Key: "vcs.modified", Value: "false"}
	tests := []struct {
		name     string
		v        string
		settings []debug.BuildSetting
		want     string
	}{
		{"no vcs info", "1.0.0", nil, "1.0.0"},
		{"clean tree", "1.0.0", []debug.BuildSetting{rev, clean}, "1.0.0+0123456789ab"},
		{"dirty tree", "1.0.0", []debug.BuildSetting{rev, dirty}, "1.0.0+0123456789ab.dirty"},
		{"metadata already set", "1.0.0+build7", []debug.BuildSetting{rev}, "1.0.0+build7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := withRevision(tt.v, tt.settings); got != tt.want {
				t.Errorf("withRevision(%q) = %q, want %q", tt.v, got, tt.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	if got := String(); !strings.HasPrefix(got, Version) {
		t.Errorf("String() = %q, want it to start with %q", got, Version)
	}
}
