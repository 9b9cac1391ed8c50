// Package workflows holds the durable release flow. Workflow code is deterministic: it
// uses workflow.Now, timers and activities, never the clock, the network or the disk.
package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"dgpu-release/activities"
	"dgpu-release/internal/forge"
	"dgpu-release/internal/release"
)

// Nil activity structs: the workflow names activities through their methods.
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

// Search attribute keys kept current by the workflow.
var (
	saKernel    = temporal.NewSearchAttributeKeyKeyword(release.SearchAttrKernel)
	saOpenShift = temporal.NewSearchAttributeKeyKeyword(release.SearchAttrOpenShiftVersion)
	saDriver    = temporal.NewSearchAttributeKeyKeyword(release.SearchAttrDriverVersion)
	saStep      = temporal.NewSearchAttributeKeyKeyword(release.SearchAttrStep)
)

// Release builds, tests, certifies, publishes and lists one driver image for one kernel.
func Release(ctx workflow.Context, req release.Request) (release.Record, error) {
	if err := req.Validate(); err != nil {
		return release.Record{}, temporal.NewNonRetryableApplicationError("invalid release request: "+err.Error(), release.ErrTypeInvalidInput, nil)
	}
	s := &releaseState{req: req.WithDefaults()}
	s.status.WorkflowID = workflow.GetInfo(ctx).WorkflowExecution.ID
	s.status.Request = req
	s.status.Round = 1
	if err := s.registerHandlers(ctx); err != nil {
		return release.Record{}, err
	}
	return s.run(ctx)
}

// action is a human action waiting to be handled by the main path.
type action struct {
	name  string
	retry release.RetryInput
	why   release.ReasonInput
}

type releaseState struct {
	req      release.Request
	status   release.Status
	record   release.Record
	pending  []action
	approved bool
	aborted  *action
	debug    *release.DebugWorkload
	issue    bool // an issue is open in the project repository
	lastNode string
}

// outcome ends the main path early.
type outcome struct{ release.Outcome }

func (o *outcome) Error() string { return string(o.Outcome) }

// stepFailed is a failure a human must look at.
type stepFailed struct {
	step     release.Step
	evidence release.Evidence
}

func (f *stepFailed) Error() string { return fmt.Sprintf("%s failed: %s", f.step, f.evidence.Summary) }

func (s *releaseState) run(ctx workflow.Context) (release.Record, error) {
	s.upsert(ctx, saDriver.ValueSet(s.req.Driver.DriverVersion))
	if s.req.Kernel != "" {
		s.upsert(ctx, saKernel.ValueSet(s.req.Kernel))
	}
	if s.req.OpenShiftVersion != "" {
		s.upsert(ctx, saOpenShift.ValueSet(s.req.OpenShiftVersion))
	}

	// The forward path, one step at a time; a failure waits for a human, whose answer
	// chooses the next step.
	step := release.StepResolve
	for step != release.StepFinished {
		next, err := s.runStep(ctx, step)
		var done *outcome
		var failed *stepFailed
		switch {
		case err == nil:
			step = next
		case errors.As(err, &done):
			return s.finish(ctx, done.Outcome)
		case errors.As(err, &failed):
			step, err = s.waitForHuman(ctx, failed)
			if errors.As(err, &done) {
				return s.finish(ctx, done.Outcome)
			}
			if err != nil {
				return s.fail(ctx, err)
			}
		default:
			return s.fail(ctx, err)
		}
	}
	return s.finish(ctx, release.OutcomeReleased)
}

// runStep runs one step and names the next.
func (s *releaseState) runStep(ctx workflow.Context, step release.Step) (release.Step, error) {
	if s.aborted != nil {
		return "", &outcome{release.OutcomeAborted}
	}
	s.setStep(ctx, step)
	switch step {
	case release.StepResolve:
		done, err := s.resolve(ctx)
		if err != nil || done {
			if done {
				return "", &outcome{release.OutcomeAlreadyReleased}
			}
			return "", err
		}
		return release.StepBuild, nil
	case release.StepBuild:
		return release.StepGPUTest, s.build(ctx)
	case release.StepGPUTest:
		return release.StepCertify, s.gpuTest(ctx)
	case release.StepCertify:
		return release.StepApprove, s.certify(ctx)
	case release.StepApprove:
		return release.StepPublish, s.approve(ctx)
	case release.StepPublish:
		return release.StepTable, s.publish(ctx)
	case release.StepTable:
		return release.StepFinished, s.table(ctx)
	}
	return "", fmt.Errorf("unknown step %q", step)
}

// activityCtx sets the options of one step next to its call.
// Every activity heartbeats while it runs (activities.LivenessTimeout), so that a dead
// worker costs seconds, not the step's start-to-close timeout.
func activityCtx(ctx workflow.Context, summary string, startToClose time.Duration, maxAttempts int32) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: startToClose,
		HeartbeatTimeout:    activities.LivenessTimeout,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        5 * time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        5 * time.Minute,
			MaximumAttempts:        maxAttempts,
			NonRetryableErrorTypes: []string{release.ErrTypeInvalidInput, release.ErrTypeStepFailed, release.ErrTypeTagConflict},
		},
	})
}

// attempt records a step's run around fn, and turns its error into a stepFailed with evidence.
func (s *releaseState) attempt(ctx workflow.Context, step release.Step, fn func() error) error {
	i := len(s.status.Attempts)
	s.status.Attempts = append(s.status.Attempts, release.Attempt{Step: step, Round: s.status.Round, StartedAt: workflow.Now(ctx), Result: release.ResultRunning})
	err := fn()
	a := &s.status.Attempts[i]
	a.EndedAt = workflow.Now(ctx)
	a.Result = release.ResultOK
	if err != nil {
		a.Result, a.Error = release.ResultFailed, err.Error()
	}
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"step": string(step), "result": a.Result}).
		Timer("dgpu_release_step_duration").Record(a.EndedAt.Sub(a.StartedAt))
	if err == nil {
		return nil
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == release.ErrTypeInvalidInput && step == release.StepResolve && s.status.Round == 1 {
		return err // a request that cannot be resolved is the caller's to fix: fail fast
	}
	ev, ok := activities.EvidenceOf(err)
	if !ok {
		ev = release.Evidence{Summary: rootMessage(err)}
	}
	ev.Step = step
	s.status.Evidence = append(s.status.Evidence, ev)
	return &stepFailed{step: step, evidence: ev}
}

func rootMessage(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

func (s *releaseState) resolve(ctx workflow.Context) (alreadyReleased bool, err error) {
	var out activities.ResolveOutput
	err = s.attempt(ctx, release.StepResolve, func() error {
		c := activityCtx(ctx, "resolve kernel, Driver Toolkit and build key", 10*time.Minute, 5)
		return workflow.ExecuteActivity(c, resolver.Resolve, activities.ResolveInput{Request: s.req}).Get(ctx, &out)
	})
	if err != nil {
		return false, err
	}
	s.status.Resolved = out.Resolved
	s.status.Evidence = append(s.status.Evidence, out.Evidence)
	s.upsert(ctx, saKernel.ValueSet(out.Resolved.Kernel), saOpenShift.ValueSet(out.Resolved.OpenShiftVersion))
	if out.Published != nil {
		s.status.Published = out.Published
		s.record.CatalogID = out.CatalogID
		return true, nil
	}
	return false, nil
}

func (s *releaseState) build(ctx workflow.Context) error {
	var out release.BuildOutput
	r := s.status.Resolved
	err := s.attempt(ctx, release.StepBuild, func() error {
		c := activityCtx(ctx, fmt.Sprintf("build %s for %s (round %d)", s.req.Driver.DriverVersion, r.Kernel, s.status.Round), 3*time.Hour, 3)
		return workflow.ExecuteActivity(c, builds.BuildImage, activities.BuildInput{WorkflowID: s.status.WorkflowID, Round: s.status.Round, Resolved: r, Rehearsal: s.req.Rehearsal}).Get(ctx, &out)
	})
	if err != nil {
		return err
	}
	s.status.Staged = &out.Image
	s.status.Evidence = append(s.status.Evidence, out.Evidence)
	return nil
}

func (s *releaseState) gpuTest(ctx workflow.Context) error {
	var out release.TestOutput
	err := s.attempt(ctx, release.StepGPUTest, func() error {
		c := activityCtx(ctx, "GPU test of "+s.status.Staged.Ref(), 2*time.Hour, 3)
		return workflow.ExecuteActivity(c, gpuTests.TestImage, activities.TestInput{WorkflowID: s.status.WorkflowID, Round: s.status.Round,
			Kernel: s.status.Resolved.Kernel, Image: *s.status.Staged, BuildKey: s.status.Resolved.BuildKey, Rehearsal: s.req.Rehearsal}).Get(ctx, &out)
	})
	if err != nil {
		var f *stepFailed
		if errors.As(err, &f) {
			s.lastNode = f.evidence.Details["node"]
		}
		return err
	}
	s.lastNode = out.Node
	s.status.Evidence = append(s.status.Evidence, out.Evidence)
	return nil
}

func (s *releaseState) certify(ctx workflow.Context) error {
	var out release.CertificationResult
	err := s.attempt(ctx, release.StepCertify, func() error {
		c := activityCtx(ctx, "certification checks on "+s.status.Staged.Ref(), time.Hour, 3)
		return workflow.ExecuteActivity(c, certifier.CertifyImage, activities.CertifyInput{Image: *s.status.Staged}).Get(ctx, &out)
	})
	if err != nil {
		return err
	}
	s.record.Certification = &out
	s.status.Evidence = append(s.status.Evidence, release.Evidence{Step: release.StepCertify, Summary: certifySummary(out)})
	return nil
}

func certifySummary(r release.CertificationResult) string {
	s := fmt.Sprintf("PASSED (policy %s): %d passed, %d failed, %d errors", r.Policy, len(r.Results.Passed), len(r.Results.Failed), len(r.Results.Errors))
	if len(r.NotRun) > 0 {
		s += fmt.Sprintf(", %d not run", len(r.NotRun))
	}
	return s
}

func (s *releaseState) approve(ctx workflow.Context) error {
	if !s.req.RequireApproval {
		now := workflow.Now(ctx)
		s.status.Attempts = append(s.status.Attempts, release.Attempt{Step: release.StepApprove, Round: s.status.Round, StartedAt: now, EndedAt: now, Result: release.ResultSkipped, Error: "no approval gate requested"})
		return nil
	}
	if s.approved {
		now := workflow.Now(ctx)
		s.status.Attempts = append(s.status.Attempts, release.Attempt{Step: release.StepApprove, Round: s.status.Round, StartedAt: now, EndedAt: now, Result: release.ResultOK})
		return nil
	}
	s.status.Waiting = fmt.Sprintf("approval to publish %s (signal approve, or abort); times out after %s", s.status.Staged.Ref(), s.req.ApprovalTimeout)
	s.setDetails(ctx)
	start := workflow.Now(ctx)
	ok, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{Timeout: s.req.ApprovalTimeout, TimerOptions: workflow.TimerOptions{Summary: "waiting for approve (or abort)"}},
		func() bool { return s.approved || s.aborted != nil })
	if err != nil {
		return err
	}
	s.status.Waiting = ""
	a := release.Attempt{Step: release.StepApprove, Round: s.status.Round, StartedAt: start, EndedAt: workflow.Now(ctx), Result: release.ResultOK}
	defer func() { s.status.Attempts = append(s.status.Attempts, a) }()
	switch {
	case s.aborted != nil:
		a.Result = release.ResultFailed
		a.Error = "aborted"
		return &outcome{release.OutcomeAborted}
	case !ok:
		a.Result, a.Error = release.ResultFailed, "no approval within "+s.req.ApprovalTimeout.String()
		return &outcome{release.OutcomeApprovalTimeout}
	}
	return nil
}

func (s *releaseState) publish(ctx workflow.Context) error {
	var out activities.PublishOutput
	err := s.attempt(ctx, release.StepPublish, func() error {
		c := activityCtx(ctx, fmt.Sprintf("publish %s as %s", s.status.Staged.Ref(), s.status.Resolved.ImageTag), time.Hour, 5)
		return workflow.ExecuteActivity(c, publisher.PublishImage, activities.PublishInput{Staged: *s.status.Staged, Resolved: s.status.Resolved, Driver: s.req.Driver, Certification: s.record.Certification}).Get(ctx, &out)
	})
	if err != nil {
		return err
	}
	s.status.Published = &out.Image
	s.record.CatalogID = out.CatalogID
	s.status.Evidence = append(s.status.Evidence, out.Evidence)
	return nil
}

func (s *releaseState) table(ctx workflow.Context) error {
	r := s.status.Resolved
	row := release.Row{Image: s.status.Published.Repository + ":" + s.status.Published.Tag, I915Tag: s.req.Driver.I915Tag, FirmwareTag: s.req.Driver.FirmwareTag, RHEL: r.RHELVersion, OpenShift: r.OpenShiftVersion}
	var out forge.TableUpdate
	err := s.attempt(ctx, release.StepTable, func() error {
		c := activityCtx(ctx, "add "+row.Image+" to the release table", 10*time.Minute, 10)
		msg := fmt.Sprintf("Release table: %s for kernel %s (OpenShift %s)\n\nReleased by %s.", s.req.Driver.DriverVersion, r.Kernel, r.OpenShiftVersion, s.status.WorkflowID)
		return workflow.ExecuteActivity(c, tables.UpdateTable, activities.TableInput{Row: row, Message: msg}).Get(ctx, &out)
	})
	if err != nil {
		return err
	}
	s.record.TableCommit = out.Commit
	summary := "release table row committed as " + out.Commit
	if !out.Changed {
		summary = "release table already had the row (commit " + out.Commit + ")"
	}
	s.status.Evidence = append(s.status.Evidence, release.Evidence{Step: release.StepTable, Summary: summary, Details: map[string]string{"url": out.URL}})
	return nil
}

// finish cleans up and returns the record. Clean-up runs on a disconnected context so
// that it also runs when the workflow is cancelled.
func (s *releaseState) finish(ctx workflow.Context, o release.Outcome) (release.Record, error) {
	cctx, _ := workflow.NewDisconnectedContext(ctx)
	s.cleanup(cctx, o)
	s.status.Outcome = o
	s.status.Waiting = ""
	s.setStep(ctx, release.StepFinished)
	s.record.Status = s.status
	s.record.FinishedAt = workflow.Now(ctx)
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"outcome": string(o)}).Counter("dgpu_release_finished").Inc(1)
	return s.record, nil
}

// fail cleans up and returns the error (the workflow fails).
func (s *releaseState) fail(ctx workflow.Context, err error) (release.Record, error) {
	cctx, _ := workflow.NewDisconnectedContext(ctx)
	s.cleanup(cctx, "")
	return release.Record{}, err
}

func (s *releaseState) cleanup(ctx workflow.Context, o release.Outcome) {
	logger := workflow.GetLogger(ctx)
	if s.debug != nil {
		c := activityCtx(ctx, "remove debug workload "+s.debug.Name, 5*time.Minute, 5)
		if err := workflow.ExecuteActivity(c, debugs.RemoveDebug, activities.RemoveDebugInput{Name: s.debug.Name}).Get(ctx, nil); err != nil {
			logger.Warn("could not remove the debug workload", "name", s.debug.Name, "error", err)
		} else {
			s.status.DebugAttach = ""
			s.debug = nil
		}
	}
	if s.issue {
		body := fmt.Sprintf("The release ended as **%s**.", o)
		if o == "" {
			body = "The release ended with an error."
		}
		if s.aborted != nil {
			body += fmt.Sprintf("\n\nAborted by %s: %s", orUnknown(s.aborted.why.By), s.aborted.why.Reason)
		}
		c := activityCtx(ctx, "close the release's issue", 5*time.Minute, 5)
		if err := workflow.ExecuteActivity(c, issues.CommentIssue, activities.CommentInput{WorkflowID: s.status.WorkflowID, Body: body, Close: true}).Get(ctx, nil); err != nil {
			logger.Warn("could not close the issue", "error", err)
		}
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "someone"
	}
	return s
}

func (s *releaseState) setStep(ctx workflow.Context, step release.Step) {
	s.status.Step = step
	s.upsert(ctx, saStep.ValueSet(string(step)))
	s.setDetails(ctx)
}

func (s *releaseState) upsert(ctx workflow.Context, updates ...temporal.SearchAttributeUpdate) {
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		workflow.GetLogger(ctx).Warn("search attributes not updated", "error", err)
	}
}

// setDetails shows the current state on the workflow's page in the Temporal UI.
func (s *releaseState) setDetails(ctx workflow.Context) {
	d := fmt.Sprintf("**Step:** %s (round %d)\n\n**Driver:** %s, i915 `%s`, firmware `%s`\n", s.status.Step, s.status.Round, s.req.Driver.DriverVersion, s.req.Driver.I915Tag, s.req.Driver.FirmwareTag)
	if k := s.status.Resolved.Kernel; k != "" {
		d += fmt.Sprintf("\n**Kernel:** `%s` (OpenShift %s)\n", k, s.status.Resolved.OpenShiftVersion)
	}
	if s.status.Waiting != "" {
		d += "\n**Waiting for:** " + s.status.Waiting + "\n"
	}
	if s.status.DebugAttach != "" {
		d += "\n**Debug:** `" + s.status.DebugAttach + "`\n"
	}
	workflow.SetCurrentDetails(ctx, d)
}
