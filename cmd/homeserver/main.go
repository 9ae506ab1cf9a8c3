// Command homeserver is the one binary of the Matrix homeserver. It writes
// a configuration (init), runs the server, all components or some of them
// (run), administers accounts directly on the database (admin), and with no
// arguments sets up and runs a local test server in ./data.
//
// Each subcommand lives in its own file; app/ builds and runs the
// components.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	c := &cli{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	os.Exit(c.main(os.Args[1:]))
}

// cli holds the standard streams, so that tests can run commands.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// errUsageShown is returned once the usage of a command has been printed
// for a bad command line: the exit status is 2 and nothing more is said.
var errUsageShown = errors.New("bad usage")

const usage = `Usage:
  homeserver
        set up (first time) and run a local test server in ./data
  homeserver init --server-name NAME --dir DIR [flags]
        write DIR/homeserver.yaml with a fresh signing key
  homeserver run --config FILE [--components LIST]
        run the server, or some of its components
  homeserver admin --config FILE create-user NAME [--admin] [--password-file F]
  homeserver admin --config FILE reset-password USER [--password-file F]
  homeserver admin --config FILE deactivate USER
  homeserver admin --config FILE create-registration-token TOKEN [--uses N]
        administer accounts (works while the server runs)
  homeserver version
        print the version
  homeserver help
        print this help

Run "homeserver COMMAND -h" for the flags of a command.
`

// main runs the command line args and returns the exit status: 0, 1 for
// a failure, 2 for bad usage.
func (c *cli) main(args []string) int {
	var err error
	if len(args) == 0 {
		err = c.quickstart(context.Background())
	} else {
		switch args[0] {
		case "init":
			err = c.cmdInit(args[1:])
		case "run":
			err = c.cmdRun(context.Background(), args[1:])
		case "admin":
			err = c.cmdAdmin(context.Background(), args[1:])
		case "version":
			err = c.cmdVersion(args[1:])
		case "help", "-h", "-help", "--help":
			fmt.Fprint(c.stderr, usage)
			return 2
		default:
			fmt.Fprintf(c.stderr, "homeserver: unknown command %q\n\n%s", args[0], usage)
			return 2
		}
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsageShown):
		return 2
	default:
		fmt.Fprintf(c.stderr, "homeserver: %v\n", err)
		return 1
	}
}

// flags returns the flag set of a command, printing its errors and
// synopsis to stderr.
func (c *cli) flags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("homeserver "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "Usage: homeserver %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args with fs, letting flags follow positional arguments
// ("create-user alice --admin"), and returns the positional arguments.
// After "--" everything is positional. A parse error (already printed with
// the usage by the flag package) and -h return errUsageShown.
func (c *cli) parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, errUsageShown
		}
		rest := fs.Args()
		consumed := args[:len(args)-len(rest)]
		if len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return append(positional, rest...), nil
		}
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// badUsage prints what is wrong and the usage of fs, and returns
// errUsageShown.
func (c *cli) badUsage(fs *flag.FlagSet, format string, args ...any) error {
	fmt.Fprintf(c.stderr, "%s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.Usage()
	return errUsageShown
}

// requireFlags reports, as bad usage, every one of the named flags that
// is empty.
func (c *cli) requireFlags(fs *flag.FlagSet, names ...string) error {
	var missing []string
	for _, n := range names {
		if f := fs.Lookup(n); f != nil && f.Value.String() == "" {
			missing = append(missing, "--"+n)
		}
	}
	if len(missing) > 0 {
		return c.badUsage(fs, "missing %s", strings.Join(missing, " and "))
	}
	return nil
}
