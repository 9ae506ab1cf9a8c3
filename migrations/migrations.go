// Package migrations holds the database schema as numbered SQL files,
// embedded in the binary and applied in order by internal/storage at start.
//
// Each file is written once for both engines; the few types that differ are
// written as macros that internal/storage expands: {{autoid}} for an
// auto-incremented int64 primary key, {{bytes}} for binary data; a part
// that has no common form at all (full-text search) goes in a
// {{if sqlite}} … {{end}} or {{if postgres}} … {{end}} block. A landed
// migration is never edited: change the schema with a new file. A file names
// the component that owns its tables: 0001_homeserver_accounts.sql.
package migrations

import "embed"

// Files holds every NNNN_name.sql file of this folder.
//
//go:embed *.sql
var Files embed.FS
