package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"k8s.io/apimachinery/pkg/labels"

	"dgpu-release/activities"
	"dgpu-release/docker"
	"dgpu-release/internal/cluster"
	"dgpu-release/internal/devstack"
	"dgpu-release/internal/ocp"
	"dgpu-release/internal/release"
	"dgpu-release/internal/tclient"
	"dgpu-release/internal/wiring"
	"dgpu-release/workflows"
)

type releaseFlags struct {
	trigger, kernel, ocp, i915, firmware, version, ref, failAt string
	requireApproval, keep, jsonOut, noUI                       bool
	kubeconfig, nodeSelector                                   string
	approvalTimeout, humanDeadline, reminder                   time.Duration
	ports                                                      ports
	// empty holds the flags given with an empty value (see givenEmpty); given, every flag given.
	empty []error
	given map[string]bool
}

func (a *app) releaseCmd() *cobra.Command {
	var f releaseFlags
	cmd := &cobra.Command{
		Use:   "release",
		Short: "Start a release and follow it to the end",
		Long: `Start the release of one driver image for one kernel and follow it step by step.

Without TEMPORAL_ADDRESS this runs the embedded default in this process: a Temporal
server and web UI, an OCI registry, and a worker with rehearsal stand-ins for the
OpenShift build, the GPU test and the debug workload (they say so in their output).

The driver set defaults to the tags docker/intel-dgpu-driver.Dockerfile pins; with no
--kernel and no --ocp, the newest OpenShift release of the kernel source is used.`,
		Example: `  starter release --trigger kernel
  starter release --trigger manual --ocp 4.16.3 --require-approval
  starter release --trigger kernel --fail-at gpu-test   # rehearse the failure path`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.ports, f.given = a.ports, givenFlags(cmd.Flags())
			f.empty = givenEmpty(cmd.Flags(), map[string]string{
				"kernel": release.FormKernel, "ocp": release.FormOpenShift, "i915-tag": release.FormTag, "firmware-tag": release.FormTag,
				"driver-version": release.FormDriverVersion, "kubeconfig": "the path of a kubeconfig file", "node-selector": formSelector,
			})
			return a.release(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.trigger, "trigger", "", "what started the release: driver, kernel or manual (required)")
	fl.StringVar(&f.kernel, "kernel", "", "RHCOS kernel, such as 5.14.0-427.13.1.el9_4.x86_64")
	fl.StringVar(&f.ocp, "ocp", "", "OpenShift version, such as 4.16.3")
	fl.StringVar(&f.i915, "i915-tag", "", "i915 backports tag (default: the Dockerfile's pinned I915_RELEASE)")
	fl.StringVar(&f.firmware, "firmware-tag", "", "firmware tag (default: the Dockerfile's pinned FIRMWARE_RELEASE)")
	fl.StringVar(&f.version, "driver-version", "", "driver version to release (default: the Dockerfile's pinned DRIVER_VERSION)")
	fl.StringVar(&f.ref, "ref", "main", "revision of the Dockerfile to build from")
	fl.BoolVar(&f.requireApproval, "require-approval", false, "wait for 'starter signal ID approve' before publishing")
	fl.DurationVar(&f.approvalTimeout, "approval-timeout", release.DefaultApprovalTimeout, "end the release if not approved within this time")
	fl.DurationVar(&f.humanDeadline, "human-deadline", release.DefaultHumanDeadline, "end a failed release nobody answers within this time")
	fl.DurationVar(&f.reminder, "reminder", release.DefaultReminderInterval, "remind on the issue this often while waiting")
	fl.StringVar(&f.failAt, "fail-at", "", "rehearsal only: make this step fail in round 1 (build or gpu-test)")
	fl.BoolVar(&f.keep, "keep", false, "embedded default: keep the stack and web UI up after the release ends (Ctrl-C to stop)")
	fl.BoolVar(&f.jsonOut, "json", false, "print the final record as JSON")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "with --trigger kernel and no --kernel: release for the kernels the cluster's GPU nodes run")
	fl.StringVar(&f.nodeSelector, "node-selector", "intel.feature.node.kubernetes.io/gpu=true", "with --kubeconfig: the GPU nodes")
	fl.BoolVar(&f.noUI, "no-ui", false, "embedded default: do not start the web UI")
	a.portFlags(fl)
	return cmd
}

// request turns flags into a request, naming the flag in every error. It reads the
// kubeconfig it is given, and changes nothing.
func (f releaseFlags) request() (release.Request, error) {
	errs := append([]error(nil), f.empty...)
	trig := release.Trigger(f.trigger)
	switch trig {
	case release.TriggerDriver, release.TriggerKernel, release.TriggerManual:
	case "":
		errs = append(errs, errors.New("--trigger is required: accepted are driver, kernel, manual"))
	default:
		errs = append(errs, &release.FieldError{Field: "--trigger", Value: f.trigger, Accepted: "one of driver, kernel, manual"})
	}
	df, err := docker.Parse(docker.DriverDockerfile)
	if err != nil {
		return release.Request{}, err
	}
	i915, fw, ver := df.PinnedDriver()
	d := release.DriverSet{I915Tag: or(f.i915, i915), FirmwareTag: or(f.firmware, fw), DriverVersion: or(f.version, ver)}
	if f.kernel != "" {
		errs = append(errs, release.ValidateKernel("--kernel", f.kernel))
	}
	if f.ocp != "" {
		errs = append(errs, release.ValidateOpenShiftVersion("--ocp", f.ocp))
	}
	errs = append(errs, release.ValidateTag("--i915-tag", d.I915Tag), release.ValidateTag("--firmware-tag", d.FirmwareTag),
		release.ValidateDriverVersion("--driver-version", d.DriverVersion), release.ValidateRef("--ref", f.ref))
	if f.failAt != "" && f.failAt != string(release.StepBuild) && f.failAt != string(release.StepGPUTest) {
		errs = append(errs, &release.FieldError{Field: "--fail-at", Value: f.failAt, Accepted: "build or gpu-test"})
	}
	for _, dur := range []struct {
		flag string
		v    time.Duration
	}{{"--approval-timeout", f.approvalTimeout}, {"--human-deadline", f.humanDeadline}, {"--reminder", f.reminder}} {
		if dur.v <= 0 {
			errs = append(errs, &release.FieldError{Field: dur.flag, Value: dur.v.String(), Accepted: "a positive duration such as 30m, 24h"})
		}
	}
	if f.given["approval-timeout"] && !f.requireApproval {
		errs = append(errs, errors.New("--approval-timeout applies to the approval gate: add --require-approval, or leave --approval-timeout out"))
	}
	errs = append(errs, f.ports.validate()...)
	errs = append(errs, f.clusterFlags()...)
	if tclient.Configured() && f.kernel == "" && f.kubeconfig == "" {
		errs = append(errs, fmt.Errorf("--kernel is required with %s (accepted form is %s): the worker's kernel sources are not reachable from the starter; or give --kubeconfig with --trigger kernel", tclient.EnvAddress, release.FormKernel))
	}
	if err := errors.Join(errs...); err != nil {
		return release.Request{}, err
	}
	return release.Request{
		Trigger: trig, Kernel: f.kernel, OpenShiftVersion: f.ocp, Driver: d, DockerfileRef: f.ref,
		RequireApproval: f.requireApproval, ApprovalTimeout: f.approvalTimeout, HumanDeadline: f.humanDeadline, ReminderInterval: f.reminder,
		Rehearsal: release.RehearsalOptions{FailAt: release.Step(f.failAt)},
	}, nil
}

// formSelector is the accepted form of a Kubernetes label selector.
const formSelector = "a Kubernetes label selector, such as intel.feature.node.kubernetes.io/gpu=true"

// clusterFlags checks --kubeconfig and --node-selector: where they apply, and that the
// kubeconfig file loads (it is not contacted).
func (f releaseFlags) clusterFlags() []error {
	var errs []error
	if f.kubeconfig == "" {
		if f.given["node-selector"] {
			errs = append(errs, errors.New("--node-selector picks the GPU nodes of --kubeconfig's cluster: add --kubeconfig, or leave --node-selector out"))
		}
		return errs
	}
	switch {
	case release.Trigger(f.trigger) != release.TriggerKernel:
		errs = append(errs, fmt.Errorf("--kubeconfig applies to --trigger kernel (the kernels of the cluster's GPU nodes), not --trigger %s", f.trigger))
	case f.kernel != "" || f.ocp != "":
		errs = append(errs, errors.New("--kubeconfig releases for the kernels of the cluster's GPU nodes: leave out --kernel and --ocp, or leave out --kubeconfig"))
	}
	if f.nodeSelector != "" {
		if _, err := labels.Parse(f.nodeSelector); err != nil {
			errs = append(errs, fmt.Errorf("%w (%v)", &release.FieldError{Field: "--node-selector", Value: f.nodeSelector, Accepted: formSelector}, err))
		}
	}
	if _, err := cluster.RESTConfig(f.kubeconfig); err != nil {
		errs = append(errs, kubeconfigError("--kubeconfig", f.kubeconfig, err))
	}
	return errs
}

// kubeconfigError names the flag and the file that did not load.
func kubeconfigError(flag, path string, err error) error {
	if cause := errors.Unwrap(err); cause != nil {
		err = cause // without cluster.RESTConfig's own hint
	}
	fe := &release.FieldError{Field: flag, Value: path, Accepted: "the path of a kubeconfig file, such as ~/.kube/config"}
	fi, serr := os.Stat(path)
	switch {
	case serr != nil:
		return fmt.Errorf("%w (%v)", fe, unwrapPath(serr))
	case fi.IsDir():
		return fmt.Errorf("%w (it is a folder)", fe)
	}
	return fmt.Errorf("%w (%v)", fe, err)
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// givenFlags names the flags that were given on the command line.
func givenFlags(fs *pflag.FlagSet) map[string]bool {
	given := map[string]bool{}
	fs.Visit(func(fl *pflag.Flag) { given[fl.Name] = true })
	return given
}

// validate checks the port flags of the embedded default.
func (p ports) validate() []error {
	return []error{tclient.ValidatePort("--temporal-port", p.frontend), tclient.ValidatePort("--ui-port", p.ui), tclient.ValidatePort("--registry-port", p.registry)}
}

// knownToEmbedded checks --kernel and --ocp against the kernel source of the embedded
// default this process is about to start, so that an unknown one is refused before a
// stack starts or a release is recorded.
func knownToEmbedded(kernel, openshift string) error {
	if kernel == "" && openshift == "" {
		return nil
	}
	if _, err := ocp.Find(ocp.RehearsalKernels(), openshift, kernel); err != nil {
		flag := "--kernel"
		switch {
		case kernel != "" && openshift != "":
			flag = "--ocp and --kernel"
		case openshift != "":
			flag = "--ocp"
		}
		return fmt.Errorf("%s: %w (the embedded default's sample kernel source)", flag, err)
	}
	return nil
}

func or(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

func (a *app) release(ctx context.Context, f releaseFlags) error {
	req, err := f.request()
	if err != nil {
		return err
	}
	if _, running := devstack.ReadInfo(a.stateDir); !tclient.Configured() && running != nil {
		if err := knownToEmbedded(f.kernel, f.ocp); err != nil {
			return err
		}
	}
	sess, err := a.connect(ctx, f.noUI, f.keep)
	if err != nil {
		return err
	}
	defer sess.close()
	c, kernels := sess.c, sess.kernels
	if sess.set != nil {
		// The driver set the Dockerfile pins at --ref in the forge, not the copy compiled
		// into this program: after a bump is merged they differ.
		p, err := sess.set.Watch.PinnedDriver(ctx, activities.PinnedInput{Ref: f.ref})
		if err != nil {
			return fmt.Errorf("--ref %s: %w", f.ref, err)
		}
		req.Driver = release.DriverSet{I915Tag: or(f.i915, p.Driver.I915Tag), FirmwareTag: or(f.firmware, p.Driver.FirmwareTag), DriverVersion: or(f.version, p.Driver.DriverVersion)}
	}
	if f.failAt != "" && sess.set == nil && tclient.Configured() {
		fmt.Fprintln(a.out, "note: --fail-at only affects rehearsal stand-ins; a production worker ignores it")
	}
	if req.Trigger == release.TriggerDriver && f.kernel == "" && f.ocp == "" {
		return a.driverMatrix(ctx, sess, f, req)
	}
	if f.kubeconfig != "" && f.kernel == "" && req.Trigger == release.TriggerKernel {
		return a.clusterKernels(ctx, c, kernels, f, req)
	}
	if req.Kernel == "" {
		rels, err := kernels.Releases(ctx)
		if err != nil {
			return err
		}
		var rel ocp.Release
		if req.OpenShiftVersion == "" {
			rel, _ = ocp.Newest(rels)
		} else if rel, err = ocp.Find(rels, req.OpenShiftVersion, ""); err != nil {
			return fmt.Errorf("--ocp: %w", err)
		}
		req.Kernel, req.OpenShiftVersion = rel.Kernel, rel.OpenShift
	}
	_, err = a.startAndFollow(ctx, c, req, f.jsonOut)
	return err
}

// startAndFollow starts (or joins) one release and follows it to its record.
func (a *app) startAndFollow(ctx context.Context, c client.Client, req release.Request, jsonOut bool) (release.Record, error) {
	id := release.WorkflowID(req.Kernel, req.Driver.DriverVersion)
	sa := []temporal.SearchAttributeUpdate{
		temporal.NewSearchAttributeKeyKeyword(release.SearchAttrKernel).ValueSet(req.Kernel),
		temporal.NewSearchAttributeKeyKeyword(release.SearchAttrDriverVersion).ValueSet(req.Driver.DriverVersion),
		temporal.NewSearchAttributeKeyKeyword(release.SearchAttrStep).ValueSet(stepQueued),
	}
	if req.OpenShiftVersion != "" {
		sa = append(sa, temporal.NewSearchAttributeKeyKeyword(release.SearchAttrOpenShiftVersion).ValueSet(req.OpenShiftVersion))
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: release.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		StaticSummary:            fmt.Sprintf("Driver %s for kernel %s (%s trigger)", req.Driver.DriverVersion, req.Kernel, req.Trigger),
		StaticDetails:            fmt.Sprintf("i915 `%s`, firmware `%s`, Dockerfile ref `%s`", req.Driver.I915Tag, req.Driver.FirmwareTag, req.DockerfileRef),
		TypedSearchAttributes:    temporal.NewSearchAttributes(sa...),
	}, workflows.Release, req)
	if err != nil {
		return release.Record{}, fmt.Errorf("start %s: %w", id, err)
	}
	fmt.Fprintf(a.out, "Release %s (run %s)\n", id, run.GetRunID())
	rec, err := a.follow(ctx, c, run)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(a.out, "\nStopped following. The release is durable: run the same command again to pick it up.\n")
		}
		return rec, err
	}
	a.saveRecord(rec)
	if jsonOut {
		b, _ := json.MarshalIndent(rec, "", "  ")
		fmt.Fprintln(a.out, string(b))
	} else {
		printRecord(a.out, rec)
	}
	return rec, nil
}

// session is a connection to Temporal, and to the embedded stack when this process runs it.
type session struct {
	c       client.Client
	kernels ocp.Source
	set     *wiring.Set // the embedded default's backends, when this process runs them
	close   func()
}

// connect uses TEMPORAL_ADDRESS, else the embedded stack running in the state folder,
// else starts one in this process (with --keep, it stays up until Ctrl-C).
func (a *app) connect(ctx context.Context, noUI, keep bool) (*session, error) {
	if info, running := devstack.ReadInfo(a.stateDir); !tclient.Configured() && running == nil {
		c, err := a.dial(ctx)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(a.out, "Using the embedded stack of pid %d (Temporal %s, web UI %s)\n", info.PID, info.TemporalAddress, orDash(info.UIURL))
		return &session{c: c, kernels: ocp.RehearsalKernels(), close: c.Close}, nil
	}
	if tclient.Configured() {
		c, err := a.dial(ctx)
		if err != nil {
			return nil, err
		}
		return &session{c: c, kernels: noKernelSource{}, close: c.Close}, nil
	}
	stack, set, w, c, err := a.startEmbedded(ctx, noUI)
	if err != nil {
		return nil, err
	}
	return &session{c: c, kernels: set.Kernels, set: set, close: func() {
		if keep {
			fmt.Fprintf(a.out, "\nThe embedded stack stays up (web UI %s, Temporal %s). Press Ctrl-C to stop.\n", stack.UIURL, stack.TemporalAddress)
			<-ctx.Done()
		}
		w.Stop()
		c.Close()
		stack.Stop()
	}}, nil
}

// noKernelSource stands where the starter cannot see the worker's kernel sources.
type noKernelSource struct{}

func (noKernelSource) Releases(context.Context) ([]ocp.Release, error) {
	return nil, errors.New("--kernel is required with TEMPORAL_ADDRESS: the worker's kernel sources are not reachable from the starter")
}

// startEmbedded starts the stack, the rehearsal backends and an in-process worker.
func (a *app) startEmbedded(ctx context.Context, noUI bool) (*devstack.Stack, *wiring.Set, worker.Worker, client.Client, error) {
	fmt.Fprintf(a.out, "Starting the embedded default (state in %s) ...\n", a.stateDir)
	stack, err := devstack.Start(ctx, devstack.Config{StateDir: a.stateDir, FrontendPort: a.ports.frontend, UIPort: a.ports.ui, RegistryPort: a.ports.registry, NoUI: noUI})
	if err != nil {
		return nil, nil, nil, nil, err
	}
	fail := func(err error) (*devstack.Stack, *wiring.Set, worker.Worker, client.Client, error) {
		stack.Stop()
		return nil, nil, nil, nil, err
	}
	set, err := wiring.Rehearsal(ctx, wiring.Options{StateDir: a.stateDir, RegistryHost: stack.RegistryHost})
	if err != nil {
		return fail(err)
	}
	opts, err := tclient.FromEnv(a.logger)
	if err != nil {
		return fail(err)
	}
	opts.HostPort, opts.Namespace = stack.TemporalAddress, stack.Namespace
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return fail(err)
	}
	w := worker.New(c, release.TaskQueue, worker.Options{})
	set.Register(w)
	if err := w.Start(); err != nil {
		c.Close()
		return fail(err)
	}
	fmt.Fprintf(a.out, "  Temporal  %s (namespace %s), ready in %s\n", stack.TemporalAddress, stack.Namespace, stack.Ready.Round(time.Millisecond))
	if stack.UIURL != "" {
		fmt.Fprintf(a.out, "  Web UI    %s\n", stack.UIURL)
	}
	fmt.Fprintf(a.out, "  Registry  %s (%s)\n", stack.RegistryHost, set.Describe())
	fmt.Fprintf(a.out, "  Forge     %s (release table and Dockerfile; issues in %s)\n", set.Forge.RepoDir(), filepath.Join(a.stateDir, "forge", "issues"))
	fmt.Fprintln(a.out, "  Stand-ins for what needs a cluster or an account:")
	for _, s := range set.StandIns() {
		fmt.Fprintln(a.out, "   -", s)
	}
	return stack, set, w, c, nil
}

func (a *app) saveRecord(rec release.Record) {
	if tclient.Configured() {
		return
	}
	dir := filepath.Join(a.stateDir, "records")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	b, _ := json.MarshalIndent(rec, "", "  ")
	name := strings.NewReplacer("/", "_", ":", "_").Replace(rec.WorkflowID) + ".json"
	_ = os.WriteFile(filepath.Join(dir, name), b, 0o644)
}

// clusterKernels releases for every kernel the cluster's GPU nodes run: the OpenShift
// version comes from the kernel source when it knows the kernel, else from the cluster.
func (a *app) clusterKernels(ctx context.Context, c client.Client, kernels ocp.Source, f releaseFlags, req release.Request) error {
	rc, err := cluster.RESTConfig(f.kubeconfig)
	if err != nil {
		return err
	}
	cl, err := cluster.New(rc)
	if err != nil {
		return err
	}
	nodes, err := cl.GPUNodeKernels(ctx, f.nodeSelector)
	if err != nil {
		return err
	}
	if len(nodes) == 0 {
		return fmt.Errorf("no node matches %s with a RHCOS kernel", f.nodeSelector)
	}
	desired := ""
	if cv, err := cl.OpenShiftVersion(ctx); err == nil {
		desired = cv.Desired
	}
	rels, _ := kernels.Releases(ctx)
	var failed []string
	for _, n := range nodes {
		r := req
		r.Kernel = n.Kernel
		if rel, err := ocp.Find(rels, "", n.Kernel); err == nil {
			r.OpenShiftVersion = rel.OpenShift
		} else {
			r.OpenShiftVersion = desired
		}
		fmt.Fprintf(a.out, "\nKernel %s on %s\n", n.Kernel, strings.Join(n.Nodes, ", "))
		if _, err := a.startAndFollow(ctx, c, r, f.jsonOut); err != nil {
			if ctx.Err() != nil {
				return err
			}
			failed = append(failed, n.Kernel+": "+err.Error())
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d kernels did not release:\n  %s", len(failed), len(nodes), strings.Join(failed, "\n  "))
	}
	return nil
}
