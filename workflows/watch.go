package workflows

import (
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"dgpu-release/activities"
	"dgpu-release/internal/forge"
	"dgpu-release/internal/release"
)

var watch *activities.Watch

func watchCtx(ctx workflow.Context, summary string) workflow.Context {
	return activityCtx(ctx, summary, 10*time.Minute, 5)
}

// KernelWatch reads the kernel sources, compares them with the published images of the
// pinned driver, and starts one Release per missing kernel under its deterministic ID, so
// overlapping runs never build twice. It does not wait for the releases.
func KernelWatch(ctx workflow.Context, req release.KernelWatchRequest) (release.KernelWatchResult, error) {
	if req.DockerfileRef == "" {
		req.DockerfileRef = "main"
	}
	if err := release.ValidateRef("dockerfile_ref", req.DockerfileRef); err != nil {
		return release.KernelWatchResult{}, temporal.NewNonRetryableApplicationError(err.Error(), release.ErrTypeInvalidInput, nil)
	}
	var res release.KernelWatchResult
	var pinned activities.PinnedOutput
	if err := workflow.ExecuteActivity(watchCtx(ctx, "read the pinned driver at "+req.DockerfileRef), watch.PinnedDriver, activities.PinnedInput{Ref: req.DockerfileRef}).Get(ctx, &pinned); err != nil {
		return res, err
	}
	res.Driver = pinned.Driver
	var kernels activities.KernelsOutput
	if err := workflow.ExecuteActivity(watchCtx(ctx, "list the kernels of supported OpenShift releases"), watch.ListKernels).Get(ctx, &kernels); err != nil {
		return res, err
	}
	res.Kernels = len(kernels.Targets)
	var un activities.UnreleasedOutput
	if err := workflow.ExecuteActivity(watchCtx(ctx, "find kernels without a "+pinned.Driver.DriverVersion+" image"), watch.Unreleased,
		activities.UnreleasedInput{Targets: kernels.Targets, DriverVersion: pinned.Driver.DriverVersion}).Get(ctx, &un); err != nil {
		return res, err
	}
	res.AlreadyReleased = un.Released
	for _, t := range un.Missing {
		if req.MaxStarts > 0 && len(res.Started) >= req.MaxStarts {
			break
		}
		id := release.WorkflowID(t.Kernel, pinned.Driver.DriverVersion)
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID: id, TaskQueue: release.TaskQueue,
			ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			StaticSummary:         fmt.Sprintf("Driver %s for new kernel %s (kernel watch)", pinned.Driver.DriverVersion, t.Kernel),
			TypedSearchAttributes: temporal.NewSearchAttributes(saKernel.ValueSet(t.Kernel), saDriver.ValueSet(pinned.Driver.DriverVersion), saStep.ValueSet("queued")),
		})
		r := release.Request{Trigger: release.TriggerKernel, Kernel: t.Kernel, OpenShiftVersion: t.OpenShiftVersion, Driver: pinned.Driver,
			DockerfileRef: pinned.Commit, Rehearsal: req.Rehearsal}
		err := workflow.ExecuteChildWorkflow(cctx, Release, r).GetChildWorkflowExecution().Get(ctx, nil)
		switch {
		case err == nil:
			res.Started = append(res.Started, id)
		case temporal.IsWorkflowExecutionAlreadyStartedError(err):
			res.Running = append(res.Running, id)
		default:
			return res, err
		}
	}
	return res, nil
}

// DriverWatch finds new driver tags, opens the Dockerfile bump pull request, waits for it
// to merge (polling, or the merged signal), then starts a Matrix release of the new
// driver for every supported kernel.
func DriverWatch(ctx workflow.Context, req release.DriverWatchRequest) (release.DriverWatchResult, error) {
	if req.MergePoll <= 0 {
		req.MergePoll = release.DefaultMergePoll
	}
	if req.MergeTimeout <= 0 {
		req.MergeTimeout = release.DefaultMergeTimeout
	}
	var res release.DriverWatchResult
	merged := false
	workflow.Go(ctx, func(ctx workflow.Context) {
		workflow.GetSignalChannel(ctx, release.SignalMerged).Receive(ctx, nil)
		merged = true
	})
	if err := workflow.SetQueryHandler(ctx, release.QueryStatus, func() (release.DriverWatchResult, error) { return res, nil }); err != nil {
		return res, err
	}
	var pinned activities.PinnedOutput
	if err := workflow.ExecuteActivity(watchCtx(ctx, "read the pinned driver"), watch.PinnedDriver, activities.PinnedInput{Ref: "main"}).Get(ctx, &pinned); err != nil {
		return res, err
	}
	res.Pinned = pinned.Driver
	var latest activities.LatestDriverOutput
	if err := workflow.ExecuteActivity(watchCtx(ctx, "read the newest driver tags"), watch.LatestDriver, activities.LatestDriverInput{Pinned: pinned.Driver}).Get(ctx, &latest); err != nil {
		return res, err
	}
	res.Latest = latest.Latest
	if !latest.New {
		res.Outcome = "up-to-date"
		return res, nil
	}
	var pr forge.PullRequest
	if err := workflow.ExecuteActivity(watchCtx(ctx, "open the Dockerfile bump pull request"), watch.OpenBump, latest.Latest).Get(ctx, &pr); err != nil {
		return res, err
	}
	res.PullRequest, res.BumpCommit = pr.URL, pr.Commit
	deadline := workflow.Now(ctx).Add(req.MergeTimeout)
	for !merged {
		var m bool
		if err := workflow.ExecuteActivity(watchCtx(ctx, "is the bump merged?"), watch.BumpMerged, activities.MergedInput{Number: pr.Number}).Get(ctx, &m); err != nil {
			return res, err
		}
		if m {
			break
		}
		left := deadline.Sub(workflow.Now(ctx))
		if left <= 0 {
			res.Outcome = "merge-timed-out"
			return res, nil
		}
		wait := req.MergePoll
		if left < wait {
			wait = left
		}
		if _, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{Timeout: wait, TimerOptions: workflow.TimerOptions{Summary: "waiting for the bump pull request to merge"}}, func() bool { return merged }); err != nil {
			return res, err
		}
	}
	var kernels activities.KernelsOutput
	if err := workflow.ExecuteActivity(watchCtx(ctx, "list the kernels of supported OpenShift releases"), watch.ListKernels).Get(ctx, &kernels); err != nil {
		return res, err
	}
	if len(kernels.Targets) == 0 {
		return res, temporal.NewNonRetryableApplicationError("the kernel sources list no kernel", release.ErrTypeInvalidInput, nil)
	}
	res.Matrix = release.MatrixID(latest.Latest.DriverVersion)
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID: res.Matrix, TaskQueue: release.TaskQueue,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		StaticSummary:         fmt.Sprintf("Driver upgrade to %s over %d kernels", latest.Latest.DriverVersion, len(kernels.Targets)),
	})
	err := workflow.ExecuteChildWorkflow(cctx, Matrix, release.MatrixRequest{Trigger: release.TriggerDriver, Driver: latest.Latest, DockerfileRef: pr.Commit,
		Targets: kernels.Targets, MaxInFlight: req.MaxInFlight}).GetChildWorkflowExecution().Get(ctx, nil)
	if err != nil && !temporal.IsWorkflowExecutionAlreadyStartedError(err) {
		return res, err
	}
	res.Outcome = "matrix-started"
	return res, nil
}
