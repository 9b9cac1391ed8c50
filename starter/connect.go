package main

import (
	"context"
	"fmt"
	"os"

	"go.temporal.io/sdk/client"

	"dgpu-release/internal/devstack"
	"dgpu-release/internal/tclient"
)

func defaultStateDir() string { return tclient.DefaultStateDir() }

// dial connects to TEMPORAL_ADDRESS, or else to the embedded stack running in the state folder.
func (a *app) dial(ctx context.Context) (client.Client, error) {
	opts, err := tclient.FromEnv(a.logger)
	if err != nil {
		return nil, err
	}
	if !tclient.Configured() {
		info, err := devstack.ReadInfo(a.stateDir)
		if err != nil {
			return nil, fmt.Errorf("%v; set %s to use a Temporal service, or run `starter release` (it starts the embedded default)", err, tclient.EnvAddress)
		}
		opts.HostPort, opts.Namespace = info.TemporalAddress, info.Namespace
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s: %w", opts.HostPort, err)
	}
	return c, nil
}

func username() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "starter"
}
