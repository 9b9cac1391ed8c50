package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"dgpu-release/internal/release"
)

func (a *app) statusCmd() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "status ID",
		Short: "Show a release's steps, attempts and evidence",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			id := args[0]
			c, err := a.releaseClient(ctx, id)
			if err != nil {
				return err
			}
			defer c.Close()
			desc, err := c.DescribeWorkflowExecution(ctx, id, "")
			if err != nil {
				return fmt.Errorf("release %s: %w", id, err)
			}
			var st release.Status
			var rec *release.Record
			if desc.WorkflowExecutionInfo.Status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
				var r release.Record
				if err := c.GetWorkflow(ctx, id, "").Get(ctx, &r); err != nil {
					return err
				}
				rec, st = &r, r.Status
			} else {
				if st, err = queryStatus(ctx, c, id); err != nil {
					return fmt.Errorf("release %s is %s and did not answer the status query (is a worker running?): %w", id, desc.WorkflowExecutionInfo.Status, err)
				}
			}
			if jsonOut {
				var v any = st
				if rec != nil {
					v = rec
				}
				b, _ := json.MarshalIndent(v, "", "  ")
				fmt.Fprintln(a.out, string(b))
				return nil
			}
			fmt.Fprintf(a.out, "%s: %s, step %s, round %d\n", id, desc.WorkflowExecutionInfo.Status, st.Step, st.Round)
			p := &progress{out: a.out, id: id}
			p.update(st)
			if rec != nil {
				printRecord(a.out, *rec)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print the status (or the record of a finished release) as JSON")
	return cmd
}

// releaseClient checks a release ID, then connects: for the commands that act on one release.
func (a *app) releaseClient(ctx context.Context, id string) (client.Client, error) {
	if err := release.ValidateWorkflowID("ID", id); err != nil {
		return nil, err
	}
	return a.dial(ctx)
}

func (a *app) debugCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "debug ID",
		Short: "Print the command that attaches to a failed release's debug workload",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.releaseClient(ctx, args[0])
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := queryStatus(ctx, c, args[0])
			if err != nil {
				return fmt.Errorf("release %s: %w", args[0], err)
			}
			if st.DebugAttach == "" {
				return fmt.Errorf("release %s has no debug workload (step %s)", args[0], st.Step)
			}
			fmt.Fprintln(a.out, st.DebugAttach)
			return nil
		},
	}
}

func (a *app) signalCmd() *cobra.Command {
	var ref, reason, by, i915, firmware string
	cmd := &cobra.Command{
		Use:   "signal ID retry|escalate|abort|approve",
		Short: "Steer a release that waits for a human",
		Long: `Send a human action to a release. The action is delivered as a Temporal update, so it
is validated before it is accepted: a bad or untimely action is refused with the reason
and changes nothing.

  retry     re-run from build; --ref REV rebuilds from a fixed Dockerfile, and
            --i915-tag/--firmware-tag from fixed driver tags
  escalate  file the failure as a driver bug in the driver's repository (--reason)
  abort     remove the debug workload and end the release (--reason)
  approve   let a release waiting at the approval gate publish`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, action := args[0], args[1]
			arg, err := signalInput(id, action, signalFlags{ref: ref, reason: reason, by: by, i915: i915, firmware: firmware, given: givenFlags(cmd.Flags())})
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := a.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			if in, ok := arg.(release.RetryInput); ok && in.Driver != nil {
				// The driver version stays the release's own; fetch it.
				st, err := queryStatus(ctx, c, id)
				if err != nil {
					return fmt.Errorf("release %s: %w", id, err)
				}
				in.Driver.DriverVersion = st.Request.Driver.DriverVersion
				arg = in
			}
			h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: action, Args: []any{arg}, WaitForStage: client.WorkflowUpdateStageCompleted})
			if err != nil {
				var notFound *serviceerror.NotFound
				if errors.As(err, &notFound) {
					return fmt.Errorf("%s %s: no such release is running (it ended, or never started; `starter status %s` tells which): %w", action, id, id, err)
				}
				return fmt.Errorf("%s %s: %w", action, id, err)
			}
			var msg string
			if err := h.Get(ctx, &msg); err != nil {
				var appErr *temporal.ApplicationError
				if errors.As(err, &appErr) {
					return fmt.Errorf("%s refused, nothing changed: %s", action, appErr.Message())
				}
				return fmt.Errorf("%s refused, nothing changed: %w", action, err)
			}
			fmt.Fprintf(a.out, "%s: %s\n", id, msg)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&ref, "ref", "", "retry: Dockerfile revision to rebuild from")
	f.StringVar(&i915, "i915-tag", "", "retry: new i915 backports tag")
	f.StringVar(&firmware, "firmware-tag", "", "retry: new firmware tag")
	f.StringVar(&reason, "reason", "", "why (required for escalate and abort; shown on the issue)")
	f.StringVar(&by, "by", username(), "who is acting")
	return cmd
}

type signalFlags struct {
	ref, reason, by, i915, firmware string
	given                           map[string]bool
}

// signalInput checks a human action and its flags as the release's update validator
// would, before anything connects, and builds the update's input. Each error names the
// flag and the field of the input it fills.
func signalInput(id, action string, f signalFlags) (any, error) {
	errs := []error{release.ValidateWorkflowID("ID", id)}
	onFlag := func(flag string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", flag, err))
		}
	}
	if f.given["by"] && strings.TrimSpace(f.by) == "" {
		errs = append(errs, &release.FieldError{Field: "--by", Accepted: "who is acting, such as alice, or leave --by out ($USER)"})
	}
	var arg any
	switch action {
	case release.ActionRetry:
		in := release.RetryInput{DockerfileRef: f.ref, Reason: f.reason, By: f.by}
		if f.given["ref"] {
			onFlag("--ref", release.ValidateRef("dockerfile_ref", f.ref))
		}
		if f.given["i915-tag"] || f.given["firmware-tag"] {
			if !f.given["i915-tag"] || !f.given["firmware-tag"] {
				errs = append(errs, errors.New("--i915-tag and --firmware-tag go together: give both to retry with a new driver set"))
			} else {
				onFlag("--i915-tag", release.ValidateTag("driver.i915_tag", f.i915))
				onFlag("--firmware-tag", release.ValidateTag("driver.firmware_tag", f.firmware))
				in.Driver = &release.DriverSet{I915Tag: f.i915, FirmwareTag: f.firmware}
			}
		}
		arg = in
	case release.ActionEscalate, release.ActionAbort, release.ActionApprove:
		if f.given["ref"] || f.given["i915-tag"] || f.given["firmware-tag"] {
			errs = append(errs, fmt.Errorf("--ref, --i915-tag and --firmware-tag apply to retry only, not %s", action))
		}
		in := release.ReasonInput{Reason: f.reason, By: f.by}
		onFlag("--reason", in.Validate(action))
		arg = in
	default:
		errs = append(errs, &release.FieldError{Field: "action", Value: action, Accepted: "one of " + strings.Join(release.Actions, ", ")})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return arg, nil
}

func (a *app) listCmd() *cobra.Command {
	var kernel, ocpVersion, driver, step, status string
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List releases, filtered by kernel, OpenShift version, driver version, step or status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			errs := givenEmpty(cmd.Flags(), map[string]string{
				"kernel": release.FormKernel, "ocp": release.FormOpenShift, "driver-version": release.FormDriverVersion,
				"step": "a step name, one of " + strings.Join(listSteps(), ", "), "status": "running, completed, failed, terminated, canceled or timedout",
			})
			if limit < 1 || limit > maxListLimit {
				errs = append(errs, &release.FieldError{Field: "--limit", Value: fmt.Sprint(limit), Accepted: fmt.Sprintf("a number from 1 to %d", maxListLimit)})
			}
			q := []string{fmt.Sprintf("WorkflowType = '%s'", release.WorkflowRelease)}
			if kernel != "" {
				errs = append(errs, release.ValidateKernel("--kernel", kernel))
				q = append(q, fmt.Sprintf("%s = '%s'", release.SearchAttrKernel, kernel))
			}
			if ocpVersion != "" {
				errs = append(errs, release.ValidateOpenShiftVersion("--ocp", ocpVersion))
				q = append(q, fmt.Sprintf("%s = '%s'", release.SearchAttrOpenShiftVersion, ocpVersion))
			}
			if driver != "" {
				errs = append(errs, release.ValidateDriverVersion("--driver-version", driver))
				q = append(q, fmt.Sprintf("%s = '%s'", release.SearchAttrDriverVersion, driver))
			}
			if step != "" {
				if !slices.Contains(listSteps(), step) {
					errs = append(errs, &release.FieldError{Field: "--step", Value: step, Accepted: "one of " + strings.Join(listSteps(), ", ")})
				}
				q = append(q, fmt.Sprintf("%s = '%s'", release.SearchAttrStep, step))
			}
			if status != "" {
				m := map[string]string{"running": "Running", "completed": "Completed", "failed": "Failed", "terminated": "Terminated", "canceled": "Canceled", "timedout": "TimedOut"}
				v, ok := m[strings.ToLower(status)]
				if !ok {
					errs = append(errs, &release.FieldError{Field: "--status", Value: status, Accepted: "running, completed, failed, terminated, canceled or timedout"})
				}
				q = append(q, fmt.Sprintf("ExecutionStatus = '%s'", v))
			}
			if err := errors.Join(errs...); err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := a.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: strings.Join(q, " AND "), PageSize: int32(limit)})
			if err != nil {
				return fmt.Errorf("list releases: %w", err)
			}
			tw := tabwriter.NewWriter(a.out, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATUS\tSTEP\tOPENSHIFT\tSTARTED")
			dc := converter.GetDefaultDataConverter()
			for _, e := range resp.Executions {
				fields := map[string]string{}
				for _, k := range []string{release.SearchAttrStep, release.SearchAttrOpenShiftVersion} {
					if p, ok := e.SearchAttributes.GetIndexedFields()[k]; ok {
						var s string
						_ = dc.FromPayload(p, &s)
						fields[k] = s
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Execution.WorkflowId, strings.TrimPrefix(e.Status.String(), "WORKFLOW_EXECUTION_STATUS_"),
					orDash(fields[release.SearchAttrStep]), orDash(fields[release.SearchAttrOpenShiftVersion]), e.StartTime.AsTime().Local().Format(time.DateTime))
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&kernel, "kernel", "", "only releases for this kernel")
	f.StringVar(&ocpVersion, "ocp", "", "only releases for this OpenShift version")
	f.StringVar(&driver, "driver-version", "", "only releases of this driver version")
	f.StringVar(&step, "step", "", "only releases at this step (such as waiting-for-human)")
	f.StringVar(&status, "status", "", "only releases in this state: running, completed, failed, ...")
	f.IntVar(&limit, "limit", 50, "at most this many")
	return cmd
}

// maxListLimit is the most releases one list asks for (one page of the visibility API).
const maxListLimit = 1000

// listSteps are the values of the DgpuStep search attribute: "queued" (set at start),
// the steps, waiting-for-human and finished.
func listSteps() []string {
	out := []string{stepQueued}
	for _, s := range release.Steps {
		out = append(out, string(s))
	}
	return append(out, string(release.StepWaiting), string(release.StepFinished))
}

// stepQueued is the DgpuStep of a release that has not started its first step.
const stepQueued = "queued"

// queryStatus asks a running release for its status.
func queryStatus(ctx context.Context, c client.Client, id string) (release.Status, error) {
	var st release.Status
	v, err := c.QueryWorkflow(ctx, id, "", release.QueryStatus)
	if err != nil {
		return st, err
	}
	return st, v.Get(&st)
}
