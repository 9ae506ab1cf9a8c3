// Package version tells which build of the homeserver is running, for
// `homeserver version`, the federation version endpoint and logs. It sits
// at the bottom of the dependency order and imports nothing of ours.
package version

import (
	"runtime/debug"
	"strings"
)

// Default is the version of a build that did not set Version.
const Default = "0.1.0-dev"

// Version is the release version. Release builds set it with
//
//	go build -ldflags "-X github.com/matrix-gouv/homeserver/internal/version.Version=1.2.3" ./cmd/homeserver
//
// It is the one package-level variable the house style allows, because
// -ldflags -X can set only variables; nothing assigns it at run time.
var Version = Default

// String returns Version followed, when the binary records its VCS
// revision (go build without -buildvcs=false, from a git checkout), by
// "+" and the first 12 characters of the revision, and ".dirty" when the
// tree had uncommitted changes: "0.1.0-dev+0123456789ab.dirty". A Version
// that already carries build metadata ("+…") is returned as is.
func String() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return Version
	}
	return withRevision(Version, info.Settings)
}

// withRevision appends the revision found in settings to v.
func withRevision(v string, settings []debug.BuildSetting) string {
	if strings.Contains(v, "+") {
		return v
	}
	var rev string
	var dirty bool
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return v
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	v += "+" + rev
	if dirty {
		v += ".dirty"
	}
	return v
}
