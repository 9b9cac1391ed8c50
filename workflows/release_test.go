package workflows_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"github.com/stretchr/testify/suite"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"dgpu-release/activities"
	"dgpu-release/internal/forge"
	"dgpu-release/internal/release"
	"dgpu-release/workflows"
)

const kernel = "5.14.0-427.26.1.el9_4.x86_64"

var (
	resolver  *activities.Resolver
	builds    *activities.Builds
	gpuTests  *activities.GPUTests
	certifier *activities.Certifier
	publisher *activities.Publisher
	tables    *activities.Tables
	issues    *activities.Issues
	debugs    *activities.Debug
)

type ReleaseSuite struct {
	suite.Suite
	testsuite.WorkflowTestSuite
	env        *testsuite.TestWorkflowEnvironment
	resolveOut activities.ResolveOutput
	comments   []activities.CommentInput
}

func TestRelease(t *testing.T) { suite.Run(t, new(ReleaseSuite)) }

func request() release.Request {
	return release.Request{
		Trigger: release.TriggerKernel, OpenShiftVersion: "4.16.3", DockerfileRef: "main",
		Driver: release.DriverSet{I915Tag: "I915_A", FirmwareTag: "FW_A", DriverVersion: "1.2.0"},
	}
}

var resolved = release.Resolved{Kernel: kernel, RHELVersion: "9.4", OpenShiftVersion: "4.16.3", DTKImage: "reg/dtk@sha256:d", DockerfileRef: "main", DockerfileCommit: "c1", BuildKey: "sha256:abcdefabcdef00", ImageTag: "1.2.0-" + kernel}
var staged = release.Image{Repository: "reg/staging", Tag: "t", Digest: "sha256:s1"}

func stepFailed(step release.Step, summary string) error {
	return temporal.NewNonRetryableApplicationError(summary, release.ErrTypeStepFailed, nil, release.Evidence{Step: step, Summary: summary, LogTail: "log tail", Details: map[string]string{"node": "gpu-1"}})
}

func (s *ReleaseSuite) SetupTest() {
	s.env = s.NewTestWorkflowEnvironment()
	s.env.RegisterWorkflow(workflows.Release)
	for _, a := range []any{resolver, builds, gpuTests, certifier, publisher, tables, issues, debugs} {
		s.env.RegisterActivity(a)
	}
	s.resolveOut = activities.ResolveOutput{Resolved: resolved, Evidence: release.Evidence{Step: release.StepResolve, Summary: "resolved"}}
	s.comments = nil
	s.env.OnActivity(resolver.Resolve, mock.Anything, mock.Anything).Return(
		func(_ context.Context, _ activities.ResolveInput) (activities.ResolveOutput, error) {
			return s.resolveOut, nil
		}).Maybe()
	s.env.OnActivity(certifier.CertifyImage, mock.Anything, mock.Anything).Return(release.CertificationResult{Image: staged.Ref(), Passed: true, Policy: "root"}, nil).Maybe()
	s.env.OnActivity(tables.UpdateTable, mock.Anything, mock.Anything).Return(forge.TableUpdate{Commit: "t1", Changed: true}, nil).Maybe()
	s.env.OnActivity(issues.FileIssue, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.IssueInput) (forge.IssueRef, error) {
			if in.Escalate {
				return forge.IssueRef{Repo: "intel-gpu/intel-gpu-i915-backports", Number: 7, URL: "https://example/driver/7", Created: true}, nil
			}
			return forge.IssueRef{Repo: "intel/dgpu-release", Number: 1, URL: "https://example/project/1", Created: true}, nil
		}).Maybe()
	s.env.OnActivity(issues.CommentIssue, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CommentInput) error {
			s.comments = append(s.comments, in)
			return nil
		}).Maybe()
	s.env.OnActivity(debugs.DeployDebug, mock.Anything, mock.Anything).Return(release.DebugWorkload{Name: "dbg", Attach: "oc rsh -n intel-dgpu-debug pod/dbg"}, nil).Maybe()
	s.env.OnActivity(debugs.RemoveDebug, mock.Anything, mock.Anything).Return(nil).Maybe()
}

func (s *ReleaseSuite) okBuildAndPublish() {
	s.env.OnActivity(builds.BuildImage, mock.Anything, mock.Anything).Return(release.BuildOutput{Image: staged, Evidence: release.Evidence{Step: release.StepBuild, Summary: "built"}}, nil)
	s.env.OnActivity(publisher.PublishImage, mock.Anything, mock.Anything).Return(activities.PublishOutput{Image: release.Image{Repository: "reg/release", Tag: resolved.ImageTag, Digest: staged.Digest}, CatalogID: "cat1"}, nil)
}

func (s *ReleaseSuite) result() release.Record {
	s.True(s.env.IsWorkflowCompleted())
	s.Require().NoError(s.env.GetWorkflowError())
	var rec release.Record
	s.Require().NoError(s.env.GetWorkflowResult(&rec))
	return rec
}

func steps(rec release.Record) []string {
	var out []string
	for _, a := range rec.Attempts {
		out = append(out, string(a.Step)+":"+a.Result)
	}
	return out
}

func (s *ReleaseSuite) TestHappyPath() {
	s.okBuildAndPublish()
	s.env.OnActivity(gpuTests.TestImage, mock.Anything, mock.Anything).Return(release.TestOutput{Node: "gpu-1", Evidence: release.Evidence{Step: release.StepGPUTest, Summary: "clinfo ok"}}, nil)
	s.env.ExecuteWorkflow(workflows.Release, request())
	rec := s.result()
	s.Equal(release.OutcomeReleased, rec.Outcome)
	s.Equal([]string{"resolve:ok", "build:ok", "gpu-test:ok", "certify:ok", "approve:skipped", "publish:ok", "table:ok"}, steps(rec))
	s.Equal("t1", rec.TableCommit)
	s.Equal("cat1", rec.CatalogID)
	s.Equal(staged.Digest, rec.Published.Digest)
	s.Empty(rec.Issues)
	s.env.AssertNotCalled(s.T(), "FileIssue", mock.Anything, mock.Anything)
	s.env.AssertNotCalled(s.T(), "DeployDebug", mock.Anything, mock.Anything)
}

// failOnce makes the GPU test fail in round 1 and pass afterwards.
func (s *ReleaseSuite) failOnce() {
	s.env.OnActivity(gpuTests.TestImage, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.TestInput) (release.TestOutput, error) {
			if in.Round == 1 {
				return release.TestOutput{}, stepFailed(release.StepGPUTest, "clinfo found no platform")
			}
			return release.TestOutput{Node: "gpu-1", Evidence: release.Evidence{Step: release.StepGPUTest, Summary: "clinfo ok"}}, nil
		})
}

func (s *ReleaseSuite) TestFailureFilesIssueDeploysDebugAndRetrySucceeds() {
	s.okBuildAndPublish()
	s.failOnce()
	s.env.RegisterDelayedCallback(func() {
		v, err := s.env.QueryWorkflow(release.QueryStatus)
		s.Require().NoError(err)
		var st release.Status
		s.Require().NoError(v.Get(&st))
		s.Equal(release.StepWaiting, st.Step)
		s.Equal("oc rsh -n intel-dgpu-debug pod/dbg", st.DebugAttach)
		s.Equal([]string{"https://example/project/1"}, st.Issues)
		s.Contains(st.Waiting, "clinfo found no platform")
		s.env.UpdateWorkflow(release.ActionRetry, "u1", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { s.Fail("retry rejected", err.Error()) },
			OnAccept: func() {}, OnComplete: func(any, error) {},
		}, release.RetryInput{DockerfileRef: "fix-1", By: "alice", Reason: "fixed the Dockerfile"})
	}, time.Hour)
	s.env.ExecuteWorkflow(workflows.Release, request())
	rec := s.result()
	s.Equal(release.OutcomeReleased, rec.Outcome)
	s.Equal(2, rec.Round)
	s.Equal([]string{"resolve:ok", "build:ok", "gpu-test:failed", "resolve:ok", "build:ok", "gpu-test:ok", "certify:ok", "approve:skipped", "publish:ok", "table:ok"}, steps(rec),
		"a new Dockerfile ref re-resolves (new build key) and rebuilds")
	s.Equal("fix-1", rec.Actions[0].Ref, "the action is recorded")
	s.Equal("fix-1", rec.Request.DockerfileRef, "the record shows the ref the image was built from")
	s.Equal("alice", rec.Actions[0].By)
	s.Empty(rec.DebugAttach, "the debug workload is removed after success")
	s.env.AssertCalled(s.T(), "DeployDebug", mock.Anything, mock.Anything)
	s.env.AssertCalled(s.T(), "RemoveDebug", mock.Anything, activities.RemoveDebugInput{Name: "dbg"})
	s.env.AssertCalled(s.T(), "CommentIssue", mock.Anything, mock.MatchedBy(func(in activities.CommentInput) bool { return in.Close }))
}

func (s *ReleaseSuite) TestRetryBySignalWithoutChangesRebuildsFromBuild() {
	s.okBuildAndPublish()
	s.failOnce()
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(release.ActionRetry, release.RetryInput{})
	}, time.Hour)
	s.env.ExecuteWorkflow(workflows.Release, request())
	rec := s.result()
	s.Equal(release.OutcomeReleased, rec.Outcome)
	s.Equal([]string{"resolve:ok", "build:ok", "gpu-test:failed", "build:ok", "gpu-test:ok", "certify:ok", "approve:skipped", "publish:ok", "table:ok"}, steps(rec))
}

// A signal with a name the release does not know (a typo in the UI) shows in the status.
func (s *ReleaseSuite) TestUnknownSignalShowsInTheStatus() {
	s.env.OnActivity(builds.BuildImage, mock.Anything, mock.Anything).Return(release.BuildOutput{}, stepFailed(release.StepBuild, "i915 does not compile"))
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow("retyr", release.RetryInput{Reason: "typo"})
	}, time.Hour)
	s.env.RegisterDelayedCallback(func() {
		v, err := s.env.QueryWorkflow(release.QueryStatus)
		s.Require().NoError(err)
		var st release.Status
		s.Require().NoError(v.Get(&st))
		s.Equal([]string{"retyr"}, st.UnknownSignals)
		s.Equal(release.StepWaiting, st.Step, "it did nothing")
		s.env.SignalWorkflow(release.ActionAbort, release.ReasonInput{Reason: "done", By: "bob"})
	}, 2*time.Hour)
	s.env.ExecuteWorkflow(workflows.Release, request())
	s.Equal(release.OutcomeAborted, s.result().Outcome)
}

// A signal whose payload is not JSON (the UI's raw input) is recorded as rejected and
// does not block the other signals.
func (s *ReleaseSuite) TestUndecodableSignalIsRejectedAndBlocksNothing() {
	s.env.OnActivity(builds.BuildImage, mock.Anything, mock.Anything).Return(release.BuildOutput{}, stepFailed(release.StepBuild, "i915 does not compile"))
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(release.ActionAbort, []byte("stop it")) // a binary payload, not JSON
	}, time.Hour)
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(release.ActionEscalate, release.ReasonInput{Reason: "driver bug", By: "bob"})
	}, 2*time.Hour)
	s.env.RegisterDelayedCallback(func() {
		v, err := s.env.QueryWorkflow(release.QueryStatus)
		s.Require().NoError(err)
		var st release.Status
		s.Require().NoError(v.Get(&st))
		s.Require().Len(st.Actions, 2)
		s.Equal("abort (rejected)", st.Actions[0].Action)
		s.Contains(st.Actions[0].Reason, "not JSON")
		s.Equal(release.ActionEscalate, st.Actions[1].Action, "the next signal on another channel is read")
		s.env.SignalWorkflow(release.ActionAbort, release.ReasonInput{Reason: "superseded", By: "bob"})
	}, 3*time.Hour)
	s.env.ExecuteWorkflow(workflows.Release, request())
	s.Equal(release.OutcomeAborted, s.result().Outcome)
}

func (s *ReleaseSuite) TestEscalateFilesInDriverRepoAndKeepsWaiting() {
	s.env.OnActivity(builds.BuildImage, mock.Anything, mock.Anything).Return(release.BuildOutput{}, stepFailed(release.StepBuild, "i915 does not compile"))
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(release.ActionEscalate, release.ReasonInput{Reason: "backports miss a 9.4 API", By: "bob"})
	}, time.Hour)
	s.env.RegisterDelayedCallback(func() {
		v, err := s.env.QueryWorkflow(release.QueryStatus)
		s.Require().NoError(err)
		var st release.Status
		s.Require().NoError(v.Get(&st))
		s.Equal(release.StepWaiting, st.Step, "escalating keeps the release waiting")
		s.Equal([]string{"https://example/project/1", "https://example/driver/7"}, st.Issues)
		s.env.SignalWorkflow(release.ActionAbort, release.ReasonInput{Reason: "superseded", By: "bob"})
	}, 2*time.Hour)
	s.env.ExecuteWorkflow(workflows.Release, request())
	rec := s.result()
	s.Equal(release.OutcomeAborted, rec.Outcome)
	s.env.AssertCalled(s.T(), "FileIssue", mock.Anything, mock.MatchedBy(func(in activities.IssueInput) bool {
		return in.Escalate && in.Reason == "backports miss a 9.4 API" && in.Failure.Step == release.StepBuild
	}))
	s.env.AssertCalled(s.T(), "RemoveDebug", mock.Anything, mock.Anything)
	s.env.AssertNotCalled(s.T(), "PublishImage", mock.Anything, mock.Anything)
}

func (s *ReleaseSuite) TestAbortRemovesDebugWorkload() {
	s.env.OnActivity(builds.BuildImage, mock.Anything, mock.Anything).Return(release.BuildOutput{Image: staged}, nil)
	s.env.OnActivity(gpuTests.TestImage, mock.Anything, mock.Anything).Return(release.TestOutput{}, stepFailed(release.StepGPUTest, "hang"))
	s.env.RegisterDelayedCallback(func() {
		s.env.UpdateWorkflow(release.ActionAbort, "a1", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { s.Fail("abort rejected", err.Error()) }, OnAccept: func() {}, OnComplete: func(any, error) {},
		}, release.ReasonInput{Reason: "kernel withdrawn"})
	}, time.Hour)
	s.env.ExecuteWorkflow(workflows.Release, request())
	rec := s.result()
	s.Equal(release.OutcomeAborted, rec.Outcome)
	s.Empty(rec.DebugAttach)
	s.env.AssertCalled(s.T(), "RemoveDebug", mock.Anything, activities.RemoveDebugInput{Name: "dbg"})
	s.env.AssertCalled(s.T(), "CommentIssue", mock.Anything, mock.MatchedBy(func(in activities.CommentInput) bool { return in.Close }))
}

func (s *ReleaseSuite) TestGateApproved() {
	s.okBuildAndPublish()
	s.env.OnActivity(gpuTests.TestImage, mock.Anything, mock.Anything).Return(release.TestOutput{}, nil)
	s.env.RegisterDelayedCallback(func() {
		v, err := s.env.QueryWorkflow(release.QueryStatus)
		s.Require().NoError(err)
		var st release.Status
		s.Require().NoError(v.Get(&st))
		s.Equal(release.StepApprove, st.Step)
		s.env.SignalWorkflow(release.ActionApprove, release.ReasonInput{By: "carol"})
	}, time.Hour)
	req := request()
	req.RequireApproval = true
	s.env.ExecuteWorkflow(workflows.Release, req)
	rec := s.result()
	s.Equal(release.OutcomeReleased, rec.Outcome)
	s.Contains(steps(rec), "approve:ok")
}

func (s *ReleaseSuite) TestGateTimesOutWithoutPublishing() {
	s.env.OnActivity(builds.BuildImage, mock.Anything, mock.Anything).Return(release.BuildOutput{Image: staged}, nil)
	s.env.OnActivity(gpuTests.TestImage, mock.Anything, mock.Anything).Return(release.TestOutput{}, nil)
	req := request()
	req.RequireApproval = true
	req.ApprovalTimeout = 48 * time.Hour
	s.env.ExecuteWorkflow(workflows.Release, req)
	rec := s.result()
	s.Equal(release.OutcomeApprovalTimeout, rec.Outcome)
	s.Nil(rec.Published)
	s.env.AssertNotCalled(s.T(), "PublishImage", mock.Anything, mock.Anything)
}

func (s *ReleaseSuite) TestAlreadyReleasedBuildsNothing() {
	published := release.Image{Repository: "reg/release", Tag: resolved.ImageTag, Digest: "sha256:old"}
	s.resolveOut = activities.ResolveOutput{Resolved: resolved, Published: &published, CatalogID: "cat0"}
	s.env.ExecuteWorkflow(workflows.Release, request())
	rec := s.result()
	s.Equal(release.OutcomeAlreadyReleased, rec.Outcome)
	s.Equal("sha256:old", rec.Published.Digest)
	s.Equal([]string{"resolve:ok"}, steps(rec))
	s.env.AssertNotCalled(s.T(), "BuildImage", mock.Anything, mock.Anything)
}

func (s *ReleaseSuite) TestUnansweredWaitRemindsThenTimesOut() {
	s.env.OnActivity(builds.BuildImage, mock.Anything, mock.Anything).Return(release.BuildOutput{}, stepFailed(release.StepBuild, "broken"))
	req := request()
	req.HumanDeadline = 72 * time.Hour
	req.ReminderInterval = 24 * time.Hour
	s.env.ExecuteWorkflow(workflows.Release, req)
	rec := s.result()
	s.Equal(release.OutcomeTimedOut, rec.Outcome)
	reminders := 0
	for _, c := range s.comments {
		if !c.Close {
			reminders++
		}
	}
	s.Equal(2, reminders, "reminders after 24h and 48h, the deadline at 72h")
	s.env.AssertCalled(s.T(), "RemoveDebug", mock.Anything, mock.Anything)
}

func (s *ReleaseSuite) TestBadUpdatesAreRejectedAndChangeNothing() {
	s.okBuildAndPublish()
	s.failOnce()
	rejected := map[string]string{}
	reject := func(name string) *testsuite.TestUpdateCallback {
		return &testsuite.TestUpdateCallback{
			OnReject: func(err error) { rejected[name] = err.Error() },
			OnAccept: func() { s.Fail(name + " was accepted") }, OnComplete: func(any, error) {},
		}
	}
	// While the release runs: nothing is waiting for a retry.
	s.env.RegisterDelayedCallback(func() {
		s.env.UpdateWorkflow(release.ActionApprove, "bad0", reject("approve-no-gate"), release.ReasonInput{})
	}, time.Millisecond)
	s.env.RegisterDelayedCallback(func() {
		s.env.UpdateWorkflow(release.ActionRetry, "bad1", reject("bad-ref"), release.RetryInput{DockerfileRef: "has space"})
		s.env.UpdateWorkflow(release.ActionRetry, "bad2", reject("new-version"), release.RetryInput{Driver: &release.DriverSet{I915Tag: "X", FirmwareTag: "Y", DriverVersion: "2.0.0"}})
		s.env.UpdateWorkflow(release.ActionAbort, "bad3", reject("no-reason"), release.ReasonInput{})
		s.env.SignalWorkflow(release.ActionEscalate, release.ReasonInput{}) // recorded as rejected
	}, time.Hour)
	s.env.RegisterDelayedCallback(func() { s.env.SignalWorkflow(release.ActionRetry, release.RetryInput{}) }, 2*time.Hour)
	s.env.ExecuteWorkflow(workflows.Release, request())
	rec := s.result()
	s.Equal(release.OutcomeReleased, rec.Outcome, "bad input never corrupts a running release")
	s.Contains(rejected["approve-no-gate"], "no approval gate")
	s.Contains(rejected["bad-ref"], "dockerfile_ref")
	s.Contains(rejected["new-version"], "driver.driver_version")
	s.Contains(rejected["no-reason"], "reason is required")
	s.Equal("escalate (rejected)", rec.Actions[0].Action)
	s.Contains(rec.Actions[0].Reason, "reason is required")
}

func TestInvalidRequestFailsFastNamingTheField(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.Release)
	req := request()
	req.Kernel = "5.14"
	env.ExecuteWorkflow(workflows.Release, req)
	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	require.Error(t, err)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr))
	assert.Equal(t, release.ErrTypeInvalidInput, appErr.Type())
	assert.Contains(t, err.Error(), `kernel "5.14" is not valid`)
}
