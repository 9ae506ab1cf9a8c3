package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/matrix-gouv/homeserver/cmd/homeserver/app"
	"github.com/matrix-gouv/homeserver/config"
)

// The local test server `homeserver` with no arguments sets up.
const (
	quickstartDir        = "data"
	quickstartServerName = "localhost"
	quickstartClient     = "127.0.0.1:8008"
	quickstartFederation = "127.0.0.1:8448"
)

// quickstart is `homeserver` with no arguments: it initialises
// ./data/homeserver.yaml for server name localhost on first use, runs it,
// and tells the user what to do next.
func (c *cli) quickstart(ctx context.Context) error {
	cfgPath := filepath.Join(quickstartDir, configFile)
	if _, err := os.Stat(cfgPath); errors.Is(err, os.ErrNotExist) {
		_, err := initDir(quickstartDir, config.GenerateOptions{
			ServerName:       quickstartServerName,
			ClientListen:     quickstartClient,
			FederationListen: quickstartFederation,
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "Created %s for a local test server (server name %s).\n", cfgPath, quickstartServerName)
	} else if err != nil {
		return fmt.Errorf("look for %s: %w", cfgPath, err)
	}
	return c.serve(ctx, cfgPath, nil, func(a *app.App) {
		c.printNextSteps(cfgPath, a.ClientURL())
	})
}

// printNextSteps tells a first-time user how to make an account and log
// in with Element.
func (c *cli) printNextSteps(cfgPath, clientURL string) {
	if clientURL == "" {
		clientURL = "http://" + quickstartClient
	}
	fmt.Fprintf(c.stdout, `
The homeserver is running at %[2]s.

1. Create a user (in another terminal; you will be asked for a password):

       homeserver admin --config %[1]s create-user alice --admin

2. Open Element (Element Desktop, or Element Web in a browser), choose
   "Edit" next to the homeserver, enter the homeserver URL

       %[2]s

   and sign in as alice.

Stop the server with Ctrl-C. Your data stays in %[3]s/; run "homeserver"
again to start it, or "homeserver run --config %[1]s".
`, cfgPath, clientURL, filepath.Dir(cfgPath))
}
