// Command starter starts, follows and steers driver releases.
//
// With TEMPORAL_ADDRESS set it talks to that Temporal service (a worker must be running
// there). Without it, `starter release` runs the embedded default: a Temporal server, its
// web UI and an OCI registry in this process, with an in-process worker and rehearsal
// stand-ins for the cluster; the other commands find that stack through its state folder.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"dgpu-release/internal/release"
	"dgpu-release/internal/tclient"
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
			if err := tclient.ValidateStateDir(tclient.StateDirField("--state", cmd.Flags().Changed("state")), a.stateDir); err != nil {
				return err
			}
			a.logger = slog.New(slog.NewTextHandler(a.errOut, &slog.HandlerOptions{Level: lvl}))
			slog.SetDefault(a.logger)
			return nil
		},
	}
	root.SetFlagErrorFunc(flagError)
	pf := root.PersistentFlags()
	pf.StringVar(&a.stateDir, "state", defaultStateDir(), "state folder of the embedded default (env DGPU_STATE_DIR)")
	pf.StringVar(&a.logLevel, "log-level", "warn", "log level of the worker and client: debug, info, warn, error")
	root.AddCommand(a.releaseCmd(), a.statusCmd(), a.signalCmd(), a.listCmd(), a.debugCmd(), a.watchCmd())
	return root
}

// flagError turns a value the flag parser refused into an error that names the flag and
// the accepted form (the subcommands inherit it).
func flagError(_ *cobra.Command, err error) error {
	var inv *pflag.InvalidValueError
	if !errors.As(err, &inv) {
		return err
	}
	accepted := map[string]string{
		"duration": "a duration with a unit, such as 90s, 30m or 24h",
		"int":      "a whole number",
		"bool":     "true or false (or the flag alone for true)",
	}[inv.GetFlag().Value.Type()]
	if accepted == "" {
		return err
	}
	return &release.FieldError{Field: "--" + inv.GetFlag().Name, Value: inv.GetValue(), Accepted: accepted}
}

// givenEmpty names each of the flags that was given with an empty value: for these flags
// an empty value would silently mean the default, which is not what was typed.
func givenEmpty(fs *pflag.FlagSet, accepted map[string]string) []error {
	var errs []error
	fs.Visit(func(fl *pflag.Flag) {
		if form, ok := accepted[fl.Name]; ok && strings.TrimSpace(fl.Value.String()) == "" {
			errs = append(errs, &release.FieldError{Field: "--" + fl.Name, Accepted: form + ", or leave --" + fl.Name + " out"})
		}
	})
	return errs
}
