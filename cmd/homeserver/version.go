package main

import (
	"fmt"

	"github.com/matrix-gouv/homeserver/internal/version"
)

// cmdVersion is `homeserver version`: it prints the version and the VCS
// revision the binary was built from, when known.
func (c *cli) cmdVersion(args []string) error {
	fs := c.flags("version", "version")
	rest, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return c.badUsage(fs, "unexpected argument %q", rest[0])
	}
	fmt.Fprintf(c.stdout, "homeserver %s\n", version.String())
	return nil
}
