package workflows

import (
	"fmt"
	"sort"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"dgpu-release/internal/release"
)

// Matrix releases one driver set for many kernels: a child Release per kernel, with the
// release's deterministic ID and a bounded number in flight. It reports when every
// kernel is released, already released, failed or waiting for a human; children that
// wait go on after it (they are abandoned, not cancelled, when it ends).
func Matrix(ctx workflow.Context, req release.MatrixRequest) (release.MatrixReport, error) {
	if err := req.Validate(); err != nil {
		return release.MatrixReport{}, temporal.NewNonRetryableApplicationError("invalid matrix request: "+err.Error(), release.ErrTypeInvalidInput, nil)
	}
	max := req.MaxInFlight
	if max <= 0 {
		max = release.DefaultMaxInFlight
	}
	targets := append([]release.KernelTarget(nil), req.Targets...)
	sort.Slice(targets, func(i, j int) bool { return targets[i].Kernel < targets[j].Kernel })
	rep := release.MatrixReport{Driver: req.Driver}
	index := map[string]int{}
	for _, t := range targets {
		if _, dup := index[t.Kernel]; dup {
			continue
		}
		id := release.WorkflowID(t.Kernel, req.Driver.DriverVersion)
		index[id] = len(rep.Entries)
		index[t.Kernel] = len(rep.Entries)
		rep.Entries = append(rep.Entries, release.MatrixEntry{KernelTarget: t, WorkflowID: id, State: release.MatrixPending})
	}
	if err := workflow.SetQueryHandler(ctx, release.QueryStatus, func() (release.MatrixReport, error) { return withCounts(rep), nil }); err != nil {
		return release.MatrixReport{}, err
	}
	inFlight := 0
	counted := make([]bool, len(rep.Entries))
	release1 := func(i int) {
		if counted[i] {
			counted[i] = false
			inFlight--
		}
	}
	// Children say when they stop for a human: they no longer count as in flight.
	waiting := workflow.GetSignalChannel(ctx, release.SignalChildWaiting)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var w release.ChildWaiting
			waiting.Receive(ctx, &w)
			if i, ok := index[w.WorkflowID]; ok && rep.Entries[i].State == release.MatrixRunning {
				rep.Entries[i].State, rep.Entries[i].Detail = release.MatrixWaiting, fmt.Sprintf("%s: %s", w.Step, w.Summary)
				release1(i)
			}
		}
	})
	for i := range rep.Entries {
		if err := workflow.Await(ctx, func() bool { return inFlight < max }); err != nil {
			return release.MatrixReport{}, err
		}
		e := &rep.Entries[i]
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:            e.WorkflowID,
			TaskQueue:             release.TaskQueue,
			ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			StaticSummary:         fmt.Sprintf("Driver %s for kernel %s (matrix)", req.Driver.DriverVersion, e.Kernel),
			TypedSearchAttributes: temporal.NewSearchAttributes(
				saKernel.ValueSet(e.Kernel), saDriver.ValueSet(req.Driver.DriverVersion), saStep.ValueSet("queued")),
		})
		f := workflow.ExecuteChildWorkflow(cctx, Release, req.Release(e.KernelTarget))
		e.State, counted[i] = release.MatrixRunning, true
		inFlight++
		i := i
		workflow.Go(ctx, func(gctx workflow.Context) {
			e := &rep.Entries[i]
			if err := f.GetChildWorkflowExecution().Get(gctx, nil); err != nil {
				release1(i)
				if temporal.IsWorkflowExecutionAlreadyStartedError(err) {
					e.State, e.Detail = release.MatrixRunningElsewhere, "a release with this ID is already running; it was not started twice"
				} else {
					e.State, e.Detail = release.MatrixFailed, "not started: "+rootMessage(err)
				}
				return
			}
			var rec release.Record
			err := f.Get(gctx, &rec)
			release1(i)
			if err != nil {
				e.State, e.Detail = release.MatrixFailed, rootMessage(err)
				return
			}
			e.State, e.Detail = string(rec.Outcome), ""
			if rec.Published != nil {
				e.Detail = rec.Published.Ref()
			}
		})
	}
	settled := func() bool {
		for _, e := range rep.Entries {
			if e.State == release.MatrixPending || e.State == release.MatrixRunning {
				return false
			}
		}
		return true
	}
	if err := workflow.Await(ctx, settled); err != nil {
		return release.MatrixReport{}, err
	}
	return withCounts(rep), nil
}

func withCounts(r release.MatrixReport) release.MatrixReport {
	r.Counts = map[string]int{}
	for _, e := range r.Entries {
		r.Counts[e.State]++
	}
	return r
}
