package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"dgpu-release/activities"
	"dgpu-release/internal/devstack"
	"dgpu-release/internal/release"
	"dgpu-release/workflows"
)

// driverMatrix is `release --trigger driver`: the newest driver tags (or the ones given)
// released for every kernel of the kernel sources, as a Matrix.
func (a *app) driverMatrix(ctx context.Context, sess *session, f releaseFlags, req release.Request) error {
	rels, err := sess.kernels.Releases(ctx)
	if err != nil {
		return err
	}
	driver := req.Driver
	if sess.set != nil && f.i915 == "" && f.firmware == "" {
		latest, err := sess.set.Watch.LatestDriver(ctx, activities.LatestDriverInput{Pinned: req.Driver})
		if err != nil {
			return err
		}
		if latest.New {
			fmt.Fprintf(a.out, "Newer driver tags than the Dockerfile pins: i915 %s, firmware %s, released as %s\n", latest.Latest.I915Tag, latest.Latest.FirmwareTag, latest.Latest.DriverVersion)
			if f.version != "" {
				latest.Latest.DriverVersion = f.version
			}
			driver = latest.Latest
		}
	}
	m := release.MatrixRequest{Trigger: release.TriggerDriver, Driver: driver, DockerfileRef: req.DockerfileRef, RequireApproval: req.RequireApproval, Rehearsal: req.Rehearsal}
	seen := map[string]bool{}
	for _, r := range rels {
		if !seen[r.Kernel] {
			seen[r.Kernel] = true
			m.Targets = append(m.Targets, release.KernelTarget{Kernel: r.Kernel, OpenShiftVersion: r.OpenShift})
		}
	}
	id := release.MatrixID(driver.DriverVersion)
	run, err := sess.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: release.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		StaticSummary:            fmt.Sprintf("Driver %s over %d kernels", driver.DriverVersion, len(m.Targets)),
	}, workflows.Matrix, m)
	if err != nil {
		return fmt.Errorf("start %s: %w", id, err)
	}
	fmt.Fprintf(a.out, "Matrix %s over %d kernels (i915 %s, firmware %s)\n", id, len(m.Targets), driver.I915Tag, driver.FirmwareTag)
	rep, err := a.followMatrix(ctx, sess.c, run)
	if err != nil {
		return err
	}
	if f.jsonOut {
		b, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Fprintln(a.out, string(b))
	}
	return nil
}

func (a *app) followMatrix(ctx context.Context, c client.Client, run client.WorkflowRun) (release.MatrixReport, error) {
	done := make(chan error, 1)
	var rep release.MatrixReport
	go func() { done <- run.Get(ctx, &rep) }()
	printed := map[string]string{}
	show := func(r release.MatrixReport) {
		for _, e := range r.Entries {
			if printed[e.Kernel] != e.State {
				printed[e.Kernel] = e.State
				fmt.Fprintf(a.out, "  %-32s %-18s %s\n", e.Kernel, e.State, e.Detail)
			}
		}
	}
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				return rep, fmt.Errorf("matrix %s: %w", run.GetID(), err)
			}
			show(rep)
			keys := make([]string, 0, len(rep.Counts))
			for k := range rep.Counts {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var parts []string
			for _, k := range keys {
				parts = append(parts, fmt.Sprintf("%d %s", rep.Counts[k], k))
			}
			fmt.Fprintf(a.out, "\n%s: %s\n", run.GetID(), strings.Join(parts, ", "))
			return rep, nil
		case <-tick.C:
			if v, err := c.QueryWorkflow(ctx, run.GetID(), run.GetRunID(), release.QueryStatus); err == nil {
				var r release.MatrixReport
				if v.Get(&r) == nil {
					show(r)
				}
			}
		case <-ctx.Done():
			return rep, ctx.Err()
		}
	}
}

type watchFlags struct {
	once                     bool
	kernelEvery, driverEvery time.Duration
	mergePoll                time.Duration
	maxInFlight              int
	noUI                     bool
	ports                    ports
	given                    map[string]bool
}

func (a *app) watchCmd() *cobra.Command {
	var f watchFlags
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Create or update the Temporal Schedules of the kernel and driver watches, or run each once",
		Long: `The kernel watch compares the kernels of the supported OpenShift releases with the
published images and starts a release for each missing kernel; the driver watch looks for
new driver tags, opens the Dockerfile bump pull request and, once it is merged, releases
the new driver for every kernel.

Without --once this creates (or updates) two Temporal Schedules. Without TEMPORAL_ADDRESS
and with no embedded stack running, it starts the embedded default and serves it until
Ctrl-C, so the schedules fire.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.ports, f.given = a.ports, givenFlags(cmd.Flags())
			return a.watch(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.once, "once", false, "run each watch once now and report, instead of scheduling")
	fl.DurationVar(&f.kernelEvery, "kernel-interval", release.DefaultKernelWatchTick, "how often the kernel watch runs")
	fl.DurationVar(&f.driverEvery, "driver-interval", release.DefaultDriverWatchTick, "how often the driver watch runs")
	fl.DurationVar(&f.mergePoll, "merge-poll", release.DefaultMergePoll, "how often the driver watch checks whether its bump is merged")
	fl.IntVar(&f.maxInFlight, "max-in-flight", release.DefaultMaxInFlight, "releases a driver upgrade runs at once")
	fl.BoolVar(&f.noUI, "no-ui", false, "embedded default: do not start the web UI")
	a.portFlags(fl)
	return cmd
}

// validate checks every flag, naming each one that is wrong.
func (f watchFlags) validate() error {
	var errs []error
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--kernel-interval", f.kernelEvery}, {"--driver-interval", f.driverEvery}, {"--merge-poll", f.mergePoll}} {
		if d.v < time.Second {
			errs = append(errs, &release.FieldError{Field: d.flag, Value: d.v.String(), Accepted: "a duration of at least 1s, such as 6h"})
		}
	}
	if f.maxInFlight <= 0 {
		errs = append(errs, &release.FieldError{Field: "--max-in-flight", Value: fmt.Sprint(f.maxInFlight), Accepted: "a positive number"})
	}
	if f.once && (f.given["kernel-interval"] || f.given["driver-interval"]) {
		errs = append(errs, errors.New("--kernel-interval and --driver-interval set the schedules: leave them out with --once (it runs each watch once now)"))
	}
	errs = append(errs, f.ports.validate()...)
	return errors.Join(errs...)
}

func (a *app) watch(ctx context.Context, f watchFlags) error {
	if err := f.validate(); err != nil {
		return err
	}
	sess, err := a.connect(ctx, f.noUI, false)
	if err != nil {
		return err
	}
	defer sess.close()
	kreq := release.KernelWatchRequest{DockerfileRef: "main"}
	dreq := release.DriverWatchRequest{MergePoll: f.mergePoll, MaxInFlight: f.maxInFlight}
	if f.once {
		return a.watchOnce(ctx, sess, kreq, dreq)
	}
	for _, s := range []struct {
		id, wfID string
		every    time.Duration
		wf       any
		arg      any
	}{
		{release.KernelWatchScheduleID, release.KernelWatchID, f.kernelEvery, workflows.KernelWatch, kreq},
		{release.DriverWatchScheduleID, release.DriverWatchID, f.driverEvery, workflows.DriverWatch, dreq},
	} {
		verb, err := upsertSchedule(ctx, sess.c, s.id, s.wfID, s.every, s.wf, s.arg)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.out, "Schedule %s %s: every %s starts %s\n", s.id, verb, s.every, s.wfID)
	}
	if sess.set != nil {
		fmt.Fprintln(a.out, "Serving the embedded default so the schedules fire; Ctrl-C stops it (the schedules stay in the state folder).")
		<-ctx.Done()
	}
	return nil
}

// upsertSchedule creates the schedule, or updates its interval and action.
func upsertSchedule(ctx context.Context, c client.Client, id, wfID string, every time.Duration, wf, arg any) (string, error) {
	action := &client.ScheduleWorkflowAction{ID: wfID, Workflow: wf, Args: []any{arg}, TaskQueue: release.TaskQueue}
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}}
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{ID: id, Spec: spec, Action: action, Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP})
	if err == nil {
		return "created", nil
	}
	var exists *serviceerror.WorkflowExecutionAlreadyStarted
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) && !errors.As(err, &exists) {
		return "", fmt.Errorf("create schedule %s: %w", id, err)
	}
	h := c.ScheduleClient().GetHandle(ctx, id)
	err = h.Update(ctx, client.ScheduleUpdateOptions{DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
		in.Description.Schedule.Spec = &spec
		in.Description.Schedule.Action = action
		in.Description.Schedule.Policy.Overlap = enumspb.SCHEDULE_OVERLAP_POLICY_SKIP
		return &client.ScheduleUpdate{Schedule: &in.Description.Schedule}, nil
	}})
	if err != nil {
		return "", fmt.Errorf("update schedule %s: %w", id, err)
	}
	return "updated", nil
}

func (a *app) watchOnce(ctx context.Context, sess *session, kreq release.KernelWatchRequest, dreq release.DriverWatchRequest) error {
	stamp := time.Now().UTC().Format("20060102T150405")
	krun, err := sess.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: release.KernelWatchID + "/once-" + stamp, TaskQueue: release.TaskQueue}, workflows.KernelWatch, kreq)
	if err != nil {
		return err
	}
	var kres release.KernelWatchResult
	if err := krun.Get(ctx, &kres); err != nil {
		return fmt.Errorf("kernel watch: %w", err)
	}
	fmt.Fprintf(a.out, "Kernel watch: driver %s, %d kernels, %d already released, %d started, %d already running\n",
		kres.Driver.DriverVersion, kres.Kernels, len(kres.AlreadyReleased), len(kres.Started), len(kres.Running))
	for _, id := range kres.Started {
		fmt.Fprintf(a.out, "  started %s\n", id)
	}
	drun, err := sess.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: release.DriverWatchID + "/once-" + stamp, TaskQueue: release.TaskQueue}, workflows.DriverWatch, dreq)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.out, "Driver watch %s running (it waits for its bump pull request to merge when there are new tags)\n", drun.GetID())
	if sess.set == nil {
		return nil
	}
	// The releases run in this process: wait for them, and for the driver watch when it
	// has nothing to wait for.
	for _, id := range kres.Started {
		var rec release.Record
		if err := sess.c.GetWorkflow(ctx, id, "").Get(ctx, &rec); err != nil {
			fmt.Fprintf(a.out, "  %s: %v\n", id, err)
			continue
		}
		fmt.Fprintf(a.out, "  %s: %s\n", id, rec.Outcome)
	}
	var dres release.DriverWatchResult
	ctxD, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := drun.Get(ctxD, &dres); err != nil {
		v, qerr := sess.c.QueryWorkflow(ctx, drun.GetID(), "", release.QueryStatus)
		if qerr == nil && v.Get(&dres) == nil && dres.PullRequest != "" {
			fmt.Fprintf(a.out, "Driver watch: new tags (i915 %s, firmware %s); bump pull request %s waits to be merged\n", dres.Latest.I915Tag, dres.Latest.FirmwareTag, dres.PullRequest)
			return nil
		}
		return fmt.Errorf("driver watch: %w", err)
	}
	fmt.Fprintf(a.out, "Driver watch: %s (pinned i915 %s, firmware %s)\n", dres.Outcome, dres.Pinned.I915Tag, dres.Pinned.FirmwareTag)
	return nil
}

func (a *app) portFlags(fl *pflag.FlagSet) {
	fl.IntVar(&a.ports.frontend, "temporal-port", devstack.DefaultFrontendPort, "embedded default: Temporal frontend port (0: any free port)")
	fl.IntVar(&a.ports.ui, "ui-port", devstack.DefaultUIPort, "embedded default: web UI port (0: any free port)")
	fl.IntVar(&a.ports.registry, "registry-port", devstack.DefaultRegistryPort, "embedded default: registry port (0: any free port)")
}
