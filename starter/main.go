// Command starter starts, follows and steers driver releases.
//
// With TEMPORAL_ADDRESS set it talks to that Temporal service (a worker must be running
// there). Without it, `starter release` runs the embedded default: a Temporal server, its
// web UI and an OCI registry in this process, with an in-process worker and rehearsal
// stand-ins for the cluster; the other commands find that stack through its state folder.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot(os.Stdout, os.Stderr).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// app holds what every command shares.
type app struct {
	out      io.Writer
	errOut   io.Writer
	stateDir string
	logLevel string
	ports    ports
	logger   *slog.Logger
}

type ports struct {
	frontend, ui, registry int
}

func newRoot(out, errOut io.Writer) *cobra.Command {
	a := &app{out: out, errOut: errOut}
	root := &cobra.Command{
		Use:           "starter",
		Short:         "Start, follow and steer Intel Data Center GPU driver releases",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(a.logLevel)); err != nil {
				return fmt.Errorf("--log-level %q is not valid: accepted are debug, info, warn, error", a.logLevel)
			}
			a.logger = slog.New(slog.NewTextHandler(a.errOut, &slog.HandlerOptions{Level: lvl}))
			slog.SetDefault(a.logger)
			return nil
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.stateDir, "state", defaultStateDir(), "state folder of the embedded default (env DGPU_STATE_DIR)")
	pf.StringVar(&a.logLevel, "log-level", "warn", "log level of the worker and client: debug, info, warn, error")
	root.AddCommand(a.releaseCmd(), a.statusCmd(), a.signalCmd(), a.listCmd(), a.debugCmd(), a.watchCmd())
	return root
}
