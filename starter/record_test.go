package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"

	"dgpu-release/activities"
	"dgpu-release/internal/devstack"
	"dgpu-release/internal/forge"
	"dgpu-release/internal/release"
	"dgpu-release/internal/wiring"
	"dgpu-release/workflows"
)

// The tests below run each workflow type for real on the embedded server, with the
// rehearsal backends and a worker in this process, assert on the outcome, and replay the
// history the server recorded. With -record-history they keep it under
// workflows/testdata, where TestReplayRecordedHistories replays it in CI.

// recordEnv is one embedded stack with its backends and a worker.
type recordEnv struct {
	state string
	set   *wiring.Set
	c     client.Client
}

func startRecordEnv(t *testing.T, ctx context.Context) *recordEnv {
	t.Helper()
	state := t.TempDir()
	_, c, set, stop := stackWithWorker(t, ctx, devstack.Config{StateDir: state, NoUI: true})
	t.Cleanup(stop)
	return &recordEnv{state: state, set: set, c: c}
}

// pinned is the driver set the Dockerfile pins on main in the forge.
func (e *recordEnv) pinned(t *testing.T, ctx context.Context) release.DriverSet {
	t.Helper()
	p, err := e.set.Watch.PinnedDriver(ctx, activities.PinnedInput{Ref: "main"})
	require.NoError(t, err)
	return p.Driver
}

// targets are the sample kernels, one per kernel, sorted.
func (e *recordEnv) targets(t *testing.T, ctx context.Context) []release.KernelTarget {
	t.Helper()
	k, err := e.set.Watch.ListKernels(ctx)
	require.NoError(t, err)
	require.Len(t, k.Targets, 4, "the sample kernels")
	return k.Targets
}

func (e *recordEnv) startRelease(t *testing.T, ctx context.Context, tg release.KernelTarget, d release.DriverSet, failAt release.Step) client.WorkflowRun {
	t.Helper()
	req := release.Request{Trigger: release.TriggerManual, Kernel: tg.Kernel, OpenShiftVersion: tg.OpenShiftVersion, Driver: d,
		DockerfileRef: "main", Rehearsal: release.RehearsalOptions{FailAt: failAt}}
	run, err := e.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: release.WorkflowID(tg.Kernel, d.DriverVersion), TaskQueue: release.TaskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE}, workflows.Release, req)
	require.NoError(t, err)
	return run
}

// released runs a release of the kernel to its end and requires it released.
func (e *recordEnv) released(t *testing.T, ctx context.Context, tg release.KernelTarget, d release.DriverSet) {
	t.Helper()
	var rec release.Record
	require.NoError(t, e.startRelease(t, ctx, tg, d, "").Get(ctx, &rec))
	require.Equal(t, release.OutcomeReleased, rec.Outcome)
}

// waitForHuman waits until the release stops for a human and has filed its issue.
func (e *recordEnv) waitForHuman(t *testing.T, ctx context.Context, id string) release.Status {
	t.Helper()
	return waitForStatus(t, ctx, e.c, id, waitingForHuman)
}

func (e *recordEnv) act(t *testing.T, ctx context.Context, id, action, reason string) string {
	t.Helper()
	h, err := e.c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: action,
		Args: []any{release.ReasonInput{Reason: reason, By: "record-test"}}, WaitForStage: client.WorkflowUpdateStageCompleted})
	require.NoError(t, err)
	var msg string
	require.NoError(t, h.Get(ctx, &msg))
	return msg
}

// abort ends a waiting release, so no test leaves one behind.
func (e *recordEnv) abort(t *testing.T, ctx context.Context, id string) {
	t.Helper()
	e.act(t, ctx, id, release.ActionAbort, "the test is over")
	var rec release.Record
	require.NoError(t, e.c.GetWorkflow(ctx, id, "").Get(ctx, &rec))
	assert.Equal(t, release.OutcomeAborted, rec.Outcome)
}

func (e *recordEnv) history(t *testing.T, ctx context.Context, id, runID string) *historypb.History {
	t.Helper()
	return fetchHistory(t, ctx, e.c, id, runID)
}

// hasEvent reports whether the run's history holds an event of the type so far.
func (e *recordEnv) hasEvent(ctx context.Context, id, runID string, typ enumspb.EventType) bool {
	it := e.c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return false
		}
		if ev.GetEventType() == typ {
			return true
		}
	}
	return false
}

// replayAndKeep replays a finished run's history with every workflow type registered and,
// with -record-history, writes it to ../workflows/testdata/<name>.
func replayAndKeep(t *testing.T, hist *historypb.History, workflowType, name string) {
	t.Helper()
	events := hist.GetEvents()
	require.NotEmpty(t, events)
	assert.Equal(t, workflowType, events[0].GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName())
	require.Equal(t, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, events[len(events)-1].GetEventType(), "a whole run is recorded")
	r := worker.NewWorkflowReplayer()
	for _, wf := range []any{workflows.Release, workflows.Matrix, workflows.KernelWatch, workflows.DriverWatch} {
		r.RegisterWorkflow(wf)
	}
	require.NoError(t, r.ReplayWorkflowHistory(nil, hist), "the recorded history replays")
	if *recordHistory {
		b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(hist)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join("..", "workflows", "testdata", name), b, 0o644))
	}
}

// A driver upgrade over the sample kernels, two in flight: one kernel was released before,
// one has a release of the same driver waiting for a human, the other two release.
func TestRecordedMatrixReplays(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	e := startRecordEnv(t, ctx)
	d := e.pinned(t, ctx)
	targets := e.targets(t, ctx)
	e.released(t, ctx, targets[0], d)
	waitingID := release.WorkflowID(targets[1].Kernel, d.DriverVersion)
	e.startRelease(t, ctx, targets[1], d, release.StepBuild)
	e.waitForHuman(t, ctx, waitingID)

	id := release.MatrixID(d.DriverVersion)
	run, err := e.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: release.TaskQueue}, workflows.Matrix,
		release.MatrixRequest{Trigger: release.TriggerDriver, Driver: d, DockerfileRef: "main", Targets: targets, MaxInFlight: 2})
	require.NoError(t, err)
	var rep release.MatrixReport
	require.NoError(t, run.Get(ctx, &rep))
	assert.Equal(t, map[string]int{release.MatrixRunningElsewhere: 1, string(release.OutcomeAlreadyReleased): 1, string(release.OutcomeReleased): 2}, rep.Counts, "%+v", rep.Entries)
	require.Len(t, rep.Entries, 4)
	want := []string{string(release.OutcomeAlreadyReleased), release.MatrixRunningElsewhere, string(release.OutcomeReleased), string(release.OutcomeReleased)}
	for i, en := range rep.Entries {
		assert.Equal(t, targets[i].Kernel, en.Kernel)
		assert.Equal(t, want[i], en.State, en.Kernel)
	}
	assert.Contains(t, rep.Entries[2].Detail, "/"+wiring.ReleasePath+"@sha256:", "a released entry names its image")

	hist := e.history(t, ctx, id, run.GetRunID())
	// The bound held and was reached: children started and not yet closed, over the history.
	inFlight, most := 0, 0
	for _, ev := range hist.GetEvents() {
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
			inFlight++
		case enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED, enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED,
			enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED, enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED,
			enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT, enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED:
			inFlight--
		}
		most = max(most, inFlight)
	}
	assert.Equal(t, 2, most, "at most two releases in flight")
	replayAndKeep(t, hist, release.WorkflowMatrix, "matrix_upgrade_mixed_outcomes.json")
	e.abort(t, ctx, waitingID)
}

// One kernel watch run over the sample kernels: one is released, one has a release
// running (waiting for a human), and with one start allowed it starts the next and leaves
// the last for the next run.
func TestRecordedKernelWatchReplays(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	e := startRecordEnv(t, ctx)
	d := e.pinned(t, ctx)
	targets := e.targets(t, ctx)
	e.released(t, ctx, targets[0], d)
	waitingID := release.WorkflowID(targets[1].Kernel, d.DriverVersion)
	e.startRelease(t, ctx, targets[1], d, release.StepBuild)
	e.waitForHuman(t, ctx, waitingID)

	id := release.KernelWatchID + "/once-record"
	run, err := e.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: release.TaskQueue}, workflows.KernelWatch,
		release.KernelWatchRequest{DockerfileRef: "main", MaxStarts: 1})
	require.NoError(t, err)
	var res release.KernelWatchResult
	require.NoError(t, run.Get(ctx, &res))
	startedID := release.WorkflowID(targets[2].Kernel, d.DriverVersion)
	assert.Equal(t, d, res.Driver)
	assert.Equal(t, 4, res.Kernels)
	assert.Equal(t, []string{targets[0].Kernel}, res.AlreadyReleased)
	assert.Equal(t, []string{waitingID}, res.Running, "the running release is not started twice")
	assert.Equal(t, []string{startedID}, res.Started, "one start allowed")

	var rec release.Record
	require.NoError(t, e.c.GetWorkflow(ctx, startedID, "").Get(ctx, &rec))
	assert.Equal(t, release.OutcomeReleased, rec.Outcome)
	assert.Equal(t, release.TriggerKernel, rec.Request.Trigger)
	assert.Regexp(t, "^[0-9a-f]{40}$", rec.Request.DockerfileRef, "the watch pins the Dockerfile's commit")
	_, err = e.c.DescribeWorkflowExecution(ctx, release.WorkflowID(targets[3].Kernel, d.DriverVersion), "")
	assert.Error(t, err, "the last kernel waits for the next run")

	replayAndKeep(t, e.history(t, ctx, id, run.GetRunID()), release.WorkflowKernelWatch, "kernelwatch_start_missing.json")
	e.abort(t, ctx, waitingID)
}

// The driver watch finds a new i915 tag, opens the bump pull request, polls until the
// test merges it, and starts the matrix of the new driver version from the bump commit.
func TestRecordedDriverWatchReplays(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	e := startRecordEnv(t, ctx)
	d := e.pinned(t, ctx)
	req := release.DriverWatchRequest{MergePoll: 2 * time.Second, MaxInFlight: 2}

	var res release.DriverWatchResult
	run, err := e.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: release.DriverWatchID + "/before-tag", TaskQueue: release.TaskQueue}, workflows.DriverWatch, req)
	require.NoError(t, err)
	require.NoError(t, run.Get(ctx, &res))
	require.Equal(t, "up-to-date", res.Outcome, "no new tag yet")

	// A new i915 tag is published (a line of the local forge's tag list).
	const newTag = "I915_24WW45.2_803.99_23.10.60_240101.1"
	tags := filepath.Join(e.state, "forge", "driver-tags", filepath.FromSlash(wiring.DefaultI915Repo)+".txt")
	b, err := os.ReadFile(tags)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(tags, append(b, newTag+"\n"...), 0o644))

	id := release.DriverWatchID + "/once-record"
	run, err = e.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: release.TaskQueue}, workflows.DriverWatch, req)
	require.NoError(t, err)
	// Merge once the watch has found the pull request unmerged and sleeps until the next poll.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.True(c, e.hasEvent(ctx, id, run.GetRunID(), enumspb.EVENT_TYPE_TIMER_STARTED))
	}, 2*time.Minute, 200*time.Millisecond)
	latest := release.DriverSet{I915Tag: newTag, FirmwareTag: d.FirmwareTag, DriverVersion: "1.3.0"}
	merged, err := e.set.Forge.PullRequestMerged(ctx, 1)
	require.NoError(t, err)
	require.False(t, merged)
	out, err := exec.CommandContext(ctx, "git", "-C", e.set.Forge.RepoDir(), "-c", "user.name=t", "-c", "user.email=t@t",
		"merge", "-q", "--no-edit", forge.BumpBranch(latest)).CombinedOutput()
	require.NoError(t, err, string(out))

	require.NoError(t, run.Get(ctx, &res))
	assert.Equal(t, "matrix-started", res.Outcome)
	assert.Equal(t, d, res.Pinned)
	assert.Equal(t, latest, res.Latest, "the new tag, released as the next minor version")
	assert.Equal(t, release.MatrixID("1.3.0"), res.Matrix)
	assert.True(t, strings.HasPrefix(res.PullRequest, "file://"), res.PullRequest)
	assert.Equal(t, latest, e.pinned(t, ctx), "main pins the new driver after the merge")
	after, err := e.set.Watch.PinnedDriver(ctx, activities.PinnedInput{Ref: res.BumpCommit})
	require.NoError(t, err)
	assert.Equal(t, latest, after.Driver, "the bump commit pins the new driver")

	// The matrix releases the new driver for every kernel from the bump commit.
	var rep release.MatrixReport
	require.NoError(t, e.c.GetWorkflow(ctx, res.Matrix, "").Get(ctx, &rep))
	assert.Equal(t, map[string]int{string(release.OutcomeReleased): 4}, rep.Counts, "%+v", rep.Entries)
	for _, en := range rep.Entries {
		var rec release.Record
		require.NoError(t, e.c.GetWorkflow(ctx, en.WorkflowID, "").Get(ctx, &rec))
		assert.Equal(t, res.BumpCommit, rec.Request.DockerfileRef)
		if assert.NotNil(t, rec.Published, en.Kernel) {
			assert.Equal(t, release.ImageTag("1.3.0", en.Kernel), rec.Published.Tag)
		}
	}

	replayAndKeep(t, e.history(t, ctx, id, run.GetRunID()), release.WorkflowDriverWatch, "driverwatch_bump_merge_matrix.json")
}

// A failed build: the release files an issue and waits; escalate files the failure in the
// driver's repository and keeps waiting; abort ends it and removes the debug workload.
func TestRecordedReleaseEscalateAbortReplays(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := startRecordEnv(t, ctx)
	d := e.pinned(t, ctx)
	tg := e.targets(t, ctx)[0]
	id := release.WorkflowID(tg.Kernel, d.DriverVersion)
	run := e.startRelease(t, ctx, tg, d, release.StepBuild)
	st := e.waitForHuman(t, ctx, id)
	require.Len(t, st.Issues, 1)
	debugFiles, _ := filepath.Glob(filepath.Join(e.state, "debug", "*.yaml"))
	assert.Len(t, debugFiles, 1, "the debug workload is deployed")

	assert.Equal(t, "escalate accepted", e.act(t, ctx, id, release.ActionEscalate, "i915 misses a 9.2 symbol"))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		v, err := e.c.QueryWorkflow(ctx, id, "", release.QueryStatus)
		if assert.NoError(c, err) && assert.NoError(c, v.Get(&st)) {
			assert.Len(c, st.Issues, 2, "the escalation is filed")
			assert.Equal(c, release.StepWaiting, st.Step, "and the release keeps waiting")
		}
	}, time.Minute, 200*time.Millisecond)
	assert.Contains(t, st.Issues[1], filepath.FromSlash(wiring.DefaultDriverRepo), "escalated to the driver's repository")

	assert.Contains(t, e.act(t, ctx, id, release.ActionAbort, "superseded by the next driver"), "abort accepted")
	var rec release.Record
	require.NoError(t, run.Get(ctx, &rec))
	assert.Equal(t, release.OutcomeAborted, rec.Outcome)
	assert.Nil(t, rec.Published)
	require.Len(t, rec.Actions, 2)
	assert.Equal(t, []string{release.ActionEscalate, release.ActionAbort}, []string{rec.Actions[0].Action, rec.Actions[1].Action})
	debugFiles, _ = filepath.Glob(filepath.Join(e.state, "debug", "*.yaml"))
	assert.Empty(t, debugFiles, "abort removes the debug workload")

	replayAndKeep(t, e.history(t, ctx, id, run.GetRunID()), release.WorkflowRelease, "release_fail_escalate_abort.json")
}
