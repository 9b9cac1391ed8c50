package workflows_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"dgpu-release/activities"
	"dgpu-release/internal/forge"
	"dgpu-release/internal/release"
	"dgpu-release/workflows"
)

var watch *activities.Watch

func kernelN(i int) string { return fmt.Sprintf("5.14.0-%d.1.el9_4.x86_64", 400+i) }

func matrixEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.Matrix)
	env.RegisterWorkflow(workflows.Release)
	return env
}

func TestMatrixBoundsInFlightAndReports(t *testing.T) {
	env := matrixEnv(t)
	req := release.MatrixRequest{Trigger: release.TriggerDriver, Driver: release.DriverSet{I915Tag: "I", FirmwareTag: "F", DriverVersion: "1.3.0"}, DockerfileRef: "main", MaxInFlight: 4}
	for i := 0; i < 10; i++ {
		req.Targets = append(req.Targets, release.KernelTarget{Kernel: kernelN(i), OpenShiftVersion: "4.16.3"})
	}
	builds := 0
	env.OnWorkflow(workflows.Release, mock.Anything, mock.Anything).After(time.Hour).Return(
		func(_ workflow.Context, r release.Request) (release.Record, error) {
			rec := release.Record{}
			if r.Kernel < kernelN(7) { // the first seven were released before
				rec.Outcome = release.OutcomeAlreadyReleased
			} else {
				builds++
				rec.Outcome = release.OutcomeReleased
				rec.Published = &release.Image{Repository: "reg/driver", Digest: "sha256:" + r.Kernel}
			}
			return rec, nil
		})
	start := env.Now()
	env.ExecuteWorkflow(workflows.Matrix, req)
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var rep release.MatrixReport
	require.NoError(t, env.GetWorkflowResult(&rep))
	assert.Equal(t, map[string]int{"already-released": 7, "released": 3}, rep.Counts)
	assert.Equal(t, 3, builds)
	assert.Equal(t, release.WorkflowID(kernelN(0), "1.3.0"), rep.Entries[0].WorkflowID, "children carry the release's deterministic ID")
	elapsed := env.Now().Sub(start)
	assert.GreaterOrEqual(t, elapsed, 3*time.Hour, "10 one-hour releases, 4 at a time, take three rounds")
	assert.Less(t, elapsed, 4*time.Hour)
}

func TestMatrixReportsWaitingChildren(t *testing.T) {
	env := matrixEnv(t)
	req := release.MatrixRequest{Trigger: release.TriggerDriver, Driver: release.DriverSet{I915Tag: "I", FirmwareTag: "F", DriverVersion: "1.3.0"}, DockerfileRef: "main",
		Targets: []release.KernelTarget{{Kernel: kernelN(1)}, {Kernel: kernelN(2)}, {Kernel: kernelN(3)}}, MaxInFlight: 1}
	env.OnWorkflow(workflows.Release, mock.Anything, mock.Anything).Return(
		func(_ workflow.Context, r release.Request) (release.Record, error) {
			if r.Kernel == kernelN(2) {
				return release.Record{}, fmt.Errorf("activity error: build exploded")
			}
			return release.Record{Status: release.Status{Outcome: release.OutcomeReleased}}, nil
		}).Times(2)
	// The third kernel's release stops for a human and says so; it is still running when
	// the matrix reports, and with one in flight it must not block the others.
	env.OnWorkflow(workflows.Release, mock.Anything, mock.MatchedBy(func(r release.Request) bool { return r.Kernel == kernelN(3) })).After(1000*time.Hour).Return(release.Record{}, nil)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(release.SignalChildWaiting, release.ChildWaiting{WorkflowID: release.WorkflowID(kernelN(3), "1.3.0"), Step: release.StepGPUTest, Summary: "clinfo found no platform"})
	}, time.Minute)
	env.ExecuteWorkflow(workflows.Matrix, req)
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var rep release.MatrixReport
	require.NoError(t, env.GetWorkflowResult(&rep))
	assert.Equal(t, map[string]int{"released": 1, "failed": 1, "waiting-for-human": 1}, rep.Counts, "%+v", rep.Entries)
	assert.Contains(t, rep.Entries[2].Detail, "clinfo found no platform")
}

func TestMatrixRejectsBadInput(t *testing.T) {
	env := matrixEnv(t)
	env.ExecuteWorkflow(workflows.Matrix, release.MatrixRequest{Trigger: release.TriggerDriver, Targets: []release.KernelTarget{{Kernel: "5.14"}}})
	require.ErrorContains(t, env.GetWorkflowError(), `targets[0].kernel "5.14" is not valid`)
}

func watchEnv() *testsuite.TestWorkflowEnvironment {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.KernelWatch)
	env.RegisterWorkflow(workflows.DriverWatch)
	env.RegisterWorkflow(workflows.Matrix)
	env.RegisterWorkflow(workflows.Release)
	env.RegisterActivity(watch)
	return env
}

var pinned = release.DriverSet{I915Tag: "I915_24WW30.4_1", FirmwareTag: "24WW20.5_881", DriverVersion: "1.2.0"}

func TestKernelWatchStartsOneReleasePerMissingKernel(t *testing.T) {
	env := watchEnv()
	env.OnActivity(watch.PinnedDriver, mock.Anything, activities.PinnedInput{Ref: "main"}).Return(activities.PinnedOutput{Driver: pinned, Commit: "c0ffee"}, nil)
	targets := []release.KernelTarget{{Kernel: kernelN(1), OpenShiftVersion: "4.16.3"}, {Kernel: kernelN(2), OpenShiftVersion: "4.16.10"}, {Kernel: kernelN(3), OpenShiftVersion: "4.17.0"}}
	env.OnActivity(watch.ListKernels, mock.Anything).Return(activities.KernelsOutput{Targets: targets}, nil)
	env.OnActivity(watch.Unreleased, mock.Anything, activities.UnreleasedInput{Targets: targets, DriverVersion: "1.2.0"}).Return(
		activities.UnreleasedOutput{Released: []string{kernelN(1)}, Missing: targets[1:]}, nil)
	var started []release.Request
	env.OnWorkflow(workflows.Release, mock.Anything, mock.Anything).Return(func(_ workflow.Context, r release.Request) (release.Record, error) {
		started = append(started, r)
		return release.Record{}, nil
	})
	env.ExecuteWorkflow(workflows.KernelWatch, release.KernelWatchRequest{})
	require.NoError(t, env.GetWorkflowError())
	var res release.KernelWatchResult
	require.NoError(t, env.GetWorkflowResult(&res))
	assert.Equal(t, 3, res.Kernels)
	assert.Equal(t, []string{kernelN(1)}, res.AlreadyReleased)
	assert.Equal(t, []string{release.WorkflowID(kernelN(2), "1.2.0"), release.WorkflowID(kernelN(3), "1.2.0")}, res.Started)
	require.Len(t, started, 2)
	assert.Equal(t, release.TriggerKernel, started[0].Trigger)
	assert.Equal(t, "c0ffee", started[0].DockerfileRef, "releases build from the commit the watch read")
	assert.Equal(t, "4.16.10", started[0].OpenShiftVersion)
}

func driverWatchMocks(env *testsuite.TestWorkflowEnvironment, latest release.DriverSet, isNew bool) {
	env.OnActivity(watch.PinnedDriver, mock.Anything, mock.Anything).Return(activities.PinnedOutput{Driver: pinned, Commit: "c0"}, nil)
	env.OnActivity(watch.LatestDriver, mock.Anything, activities.LatestDriverInput{Pinned: pinned}).Return(activities.LatestDriverOutput{Latest: latest, New: isNew}, nil)
	env.OnActivity(watch.OpenBump, mock.Anything, latest).Return(forge.PullRequest{Number: 7, URL: "https://github.com/x/y/pull/7", Commit: "b0b"}, nil).Maybe()
	env.OnActivity(watch.ListKernels, mock.Anything).Return(activities.KernelsOutput{Targets: []release.KernelTarget{{Kernel: kernelN(1)}, {Kernel: kernelN(2)}}}, nil).Maybe()
}

func TestDriverWatchUpToDate(t *testing.T) {
	env := watchEnv()
	driverWatchMocks(env, pinned, false)
	env.ExecuteWorkflow(workflows.DriverWatch, release.DriverWatchRequest{})
	require.NoError(t, env.GetWorkflowError())
	var res release.DriverWatchResult
	require.NoError(t, env.GetWorkflowResult(&res))
	assert.Equal(t, "up-to-date", res.Outcome)
	env.AssertNotCalled(t, "OpenBump", mock.Anything, mock.Anything)
}

func TestDriverWatchBumpsWaitsForMergeAndStartsMatrix(t *testing.T) {
	for _, bySignal := range []bool{false, true} {
		t.Run(fmt.Sprintf("merged signal %v", bySignal), func(t *testing.T) {
			env := watchEnv()
			latest := release.DriverSet{I915Tag: "I915_25WW02.1_2", FirmwareTag: "25WW01.1_900", DriverVersion: "1.3.0"}
			driverWatchMocks(env, latest, true)
			polls := 0
			env.OnActivity(watch.BumpMerged, mock.Anything, activities.MergedInput{Number: 7}).Return(func(context.Context, activities.MergedInput) (bool, error) {
				polls++
				return !bySignal && polls == 3, nil
			})
			if bySignal {
				env.RegisterDelayedCallback(func() { env.SignalWorkflow(release.SignalMerged, nil) }, 25*time.Minute)
			}
			var matrix release.MatrixRequest
			env.OnWorkflow(workflows.Matrix, mock.Anything, mock.Anything).Return(func(_ workflow.Context, m release.MatrixRequest) (release.MatrixReport, error) {
				matrix = m
				return release.MatrixReport{}, nil
			})
			env.ExecuteWorkflow(workflows.DriverWatch, release.DriverWatchRequest{MergePoll: 10 * time.Minute})
			require.NoError(t, env.GetWorkflowError())
			var res release.DriverWatchResult
			require.NoError(t, env.GetWorkflowResult(&res))
			assert.Equal(t, "matrix-started", res.Outcome)
			assert.Equal(t, "matrix/1.3.0", res.Matrix)
			assert.Equal(t, latest, matrix.Driver)
			assert.Equal(t, "b0b", matrix.DockerfileRef, "the matrix builds from the bump commit")
			assert.Len(t, matrix.Targets, 2)
			assert.Equal(t, release.TriggerDriver, matrix.Trigger)
		})
	}
}

func TestDriverWatchMergeTimesOut(t *testing.T) {
	env := watchEnv()
	latest := release.DriverSet{I915Tag: "I915_25WW02.1_2", FirmwareTag: "25WW01.1_900", DriverVersion: "1.3.0"}
	driverWatchMocks(env, latest, true)
	env.OnActivity(watch.BumpMerged, mock.Anything, mock.Anything).Return(false, nil)
	env.ExecuteWorkflow(workflows.DriverWatch, release.DriverWatchRequest{MergePoll: time.Hour, MergeTimeout: 5 * time.Hour})
	require.NoError(t, env.GetWorkflowError())
	var res release.DriverWatchResult
	require.NoError(t, env.GetWorkflowResult(&res))
	assert.Equal(t, "merge-timed-out", res.Outcome)
	env.AssertNotCalled(t, "ListKernels", mock.Anything)
}
