package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"go.temporal.io/sdk/client"

	"dgpu-release/internal/devstack"
	"dgpu-release/internal/release"
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
		info, err := readStackInfo(a.stateDir)
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

// formStackInfo is the accepted form of <state>/stack.json.
const formStackInfo = `accepted form is the JSON a running embedded stack writes, {"pid": 1234, "temporal_address": "127.0.0.1:7243", "namespace": "default", ...}, rewritten when starter release or worker --dev starts a stack there`

// readStackInfo reads the running stack of a state folder, and checks what it says before
// anything connects to it: an empty address would mean the SDK's default, localhost:7233,
// which may be another Temporal server.
func readStackInfo(stateDir string) (devstack.Info, error) {
	info, err := devstack.ReadInfo(stateDir)
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typ):
		return info, fmt.Errorf("%s: field %s holds a JSON %s: %s", devstack.InfoFile(stateDir), typ.Field, typ.Value, formStackInfo)
	case errors.As(err, &syntax):
		return info, fmt.Errorf("%s is not JSON (%v): %s", devstack.InfoFile(stateDir), syntax, formStackInfo)
	case err != nil:
		return info, err
	}
	var errs []error
	if err := tclient.ValidateAddress("temporal_address", info.TemporalAddress); err != nil {
		errs = append(errs, err)
	}
	if strings.TrimSpace(info.Namespace) == "" {
		errs = append(errs, &release.FieldError{Field: "namespace", Accepted: "the namespace of the embedded stack, such as default"})
	}
	if err := errors.Join(errs...); err != nil {
		return info, fmt.Errorf("%s: %w\n(%s)", devstack.InfoFile(stateDir), err, formStackInfo)
	}
	return info, nil
}

func username() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "starter"
}
