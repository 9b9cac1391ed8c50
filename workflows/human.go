package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"dgpu-release/activities"
	"dgpu-release/internal/forge"
	"dgpu-release/internal/release"
)

// registerHandlers registers the status query and, for each human action, an update
// (validated before it enters history) and a signal (for the Temporal UI; a bad signal is
// recorded as rejected and changes nothing).
func (s *releaseState) registerHandlers(ctx workflow.Context) error {
	status := func() (release.Status, error) {
		st := s.status
		st.UnknownSignals = workflow.GetUnhandledSignalNames(ctx)
		return st, nil
	}
	if err := workflow.SetQueryHandlerWithOptions(ctx, release.QueryStatus, status,
		workflow.QueryHandlerOptions{Description: "Current step, every attempt and the evidence so far"}); err != nil {
		return err
	}
	retry := func(ctx workflow.Context, in release.RetryInput) (string, error) {
		return s.accept(ctx, action{name: release.ActionRetry, retry: in}), nil
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, release.ActionRetry, retry, workflow.UpdateHandlerOptions{
		Validator:   func(in release.RetryInput) error { return s.validate(action{name: release.ActionRetry, retry: in}) },
		Description: "Re-run a failed release from build, optionally with a new Dockerfile ref or driver set",
	}); err != nil {
		return err
	}
	for _, name := range []string{release.ActionEscalate, release.ActionAbort, release.ActionApprove} {
		name := name
		handler := func(ctx workflow.Context, in release.ReasonInput) (string, error) {
			return s.accept(ctx, action{name: name, why: in}), nil
		}
		if err := workflow.SetUpdateHandlerWithOptions(ctx, name, handler, workflow.UpdateHandlerOptions{
			Validator:   func(in release.ReasonInput) error { return s.validate(action{name: name, why: in}) },
			Description: descriptions[name],
		}); err != nil {
			return err
		}
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		retryCh := workflow.GetSignalChannelWithOptions(ctx, release.ActionRetry, workflow.SignalChannelOptions{Description: descriptions[release.ActionRetry]})
		sel := workflow.NewSelector(ctx)
		// ReceiveAsync, not Receive: a payload that cannot be decoded is dropped by the SDK,
		// and Receive would then block this loop, and every other signal, until the next
		// good one on the same channel.
		sel.AddReceive(retryCh, func(c workflow.ReceiveChannel, _ bool) {
			var in release.RetryInput
			if !c.ReceiveAsync(&in) {
				s.undecodable(ctx, release.ActionRetry)
				return
			}
			s.signal(ctx, action{name: release.ActionRetry, retry: in})
		})
		for _, name := range []string{release.ActionEscalate, release.ActionAbort, release.ActionApprove} {
			name := name
			ch := workflow.GetSignalChannelWithOptions(ctx, name, workflow.SignalChannelOptions{Description: descriptions[name]})
			sel.AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) {
				var in release.ReasonInput
				if !c.ReceiveAsync(&in) {
					s.undecodable(ctx, name)
					return
				}
				s.signal(ctx, action{name: name, why: in})
			})
		}
		for {
			sel.Select(ctx)
		}
	})
	return nil
}

var descriptions = map[string]string{
	release.ActionRetry:    "Re-run a failed release from build, optionally with a new Dockerfile ref or driver set",
	release.ActionEscalate: "File the failure as a driver bug in the driver's repository and keep waiting for a fixed tag",
	release.ActionAbort:    "Remove the debug workload and end the release as aborted",
	release.ActionApprove:  "Let a release that waits at the approval gate publish",
}

// validate says whether an action makes sense now. It reads state and changes nothing.
func (s *releaseState) validate(a action) error {
	if s.status.Step == release.StepFinished {
		return fmt.Errorf("%s: the release has finished (%s)", a.name, s.status.Outcome)
	}
	waiting := s.status.Step == release.StepWaiting
	switch a.name {
	case release.ActionRetry:
		if err := a.retry.Validate(); err != nil {
			return err
		}
		if a.retry.Driver != nil && a.retry.Driver.DriverVersion != s.req.Driver.DriverVersion {
			return &release.FieldError{Field: "driver.driver_version", Value: a.retry.Driver.DriverVersion,
				Accepted: fmt.Sprintf("this release's version %s (a new driver version is a new release: start one)", s.req.Driver.DriverVersion)}
		}
		if !waiting {
			return fmt.Errorf("retry: the release is not waiting for a human (step %s)", s.status.Step)
		}
	case release.ActionEscalate:
		if err := a.why.Validate(a.name); err != nil {
			return err
		}
		if !waiting {
			return fmt.Errorf("escalate: the release is not waiting for a human (step %s)", s.status.Step)
		}
	case release.ActionAbort:
		if err := a.why.Validate(a.name); err != nil {
			return err
		}
		if s.aborted != nil {
			return errors.New("abort: the release is already aborting")
		}
	case release.ActionApprove:
		if err := a.why.Validate(a.name); err != nil {
			return err
		}
		if !s.req.RequireApproval {
			return errors.New("approve: this release has no approval gate")
		}
		if s.approved {
			return errors.New("approve: already approved")
		}
	default:
		return fmt.Errorf("unknown action %q: accepted are retry, escalate, abort, approve", a.name)
	}
	return nil
}

// accept records a validated action for the main path.
func (s *releaseState) accept(ctx workflow.Context, a action) string {
	by := a.why.By
	ref := ""
	reason := a.why.Reason
	if a.name == release.ActionRetry {
		by, ref, reason = a.retry.By, a.retry.DockerfileRef, a.retry.Reason
	}
	s.status.Actions = append(s.status.Actions, release.HumanAction{Action: a.name, At: workflow.Now(ctx), By: by, Reason: reason, Ref: ref})
	switch a.name {
	case release.ActionAbort:
		s.aborted = &a
		return "abort accepted: the release ends as aborted"
	case release.ActionApprove:
		s.approved = true
		return "approved: the release publishes"
	}
	s.pending = append(s.pending, a)
	return a.name + " accepted"
}

// undecodable records a signal whose payload the SDK could not decode.
func (s *releaseState) undecodable(ctx workflow.Context, name string) {
	msg := "the payload is not JSON: send an object such as {\"reason\": \"...\", \"by\": \"...\"}"
	s.status.Actions = append(s.status.Actions, release.HumanAction{Action: name + " (rejected)", At: workflow.Now(ctx), Reason: msg})
	workflow.GetLogger(ctx).Warn("signal rejected", "signal", name, "error", msg)
}

// signal applies a signal like an update, but as a signal cannot be refused, a bad one
// is recorded as rejected and ignored.
func (s *releaseState) signal(ctx workflow.Context, a action) {
	if err := s.validate(a); err != nil {
		s.status.Actions = append(s.status.Actions, release.HumanAction{Action: a.name + " (rejected)", At: workflow.Now(ctx), Reason: err.Error()})
		workflow.GetLogger(ctx).Warn("signal rejected", "signal", a.name, "error", err)
		return
	}
	s.accept(ctx, a)
}

// waitForHuman files the issue, deploys the debug workload and waits for retry, escalate
// or abort, reminding on the issue, until the deadline. It returns the step to resume at.
func (s *releaseState) waitForHuman(ctx workflow.Context, f *stepFailed) (release.Step, error) {
	logger := workflow.GetLogger(ctx)
	s.setStep(ctx, release.StepWaiting)
	s.status.Waiting = fmt.Sprintf("a human: %s failed (%s). Signal retry [--ref REV], escalate or abort.", f.step, f.evidence.Summary)

	image := s.status.Resolved.DTKImage
	if s.status.Staged != nil {
		image = s.status.Staged.Ref()
	}
	if image != "" {
		var w release.DebugWorkload
		c := activityCtx(ctx, "deploy debug workload for "+string(f.step), 10*time.Minute, 5)
		if err := workflow.ExecuteActivity(c, debugs.DeployDebug, release.DebugSpec{WorkflowID: s.status.WorkflowID, Step: f.step, Kernel: s.status.Resolved.Kernel, Image: image, Node: s.lastNode}).Get(ctx, &w); err != nil {
			logger.Error("debug workload not deployed", "error", err)
			s.status.Evidence = append(s.status.Evidence, release.Evidence{Step: f.step, Summary: "debug workload not deployed: " + rootMessage(err)})
		} else {
			s.debug = &w
			s.status.DebugAttach = w.Attach
		}
	}
	s.fileIssue(ctx, f.evidence, false, "")
	s.setDetails(ctx)
	s.tellParent(ctx, f)

	deadline := workflow.Now(ctx).Add(s.req.HumanDeadline)
	for {
		remaining := deadline.Sub(workflow.Now(ctx))
		if remaining <= 0 {
			return "", &outcome{release.OutcomeTimedOut}
		}
		wait := s.req.ReminderInterval
		if remaining < wait {
			wait = remaining
		}
		got, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{Timeout: wait, TimerOptions: workflow.TimerOptions{Summary: "waiting for a human: retry, escalate or abort"}},
			func() bool { return len(s.pending) > 0 || s.aborted != nil })
		if err != nil {
			return "", err
		}
		if s.aborted != nil {
			return "", &outcome{release.OutcomeAborted}
		}
		if !got {
			if deadline.Sub(workflow.Now(ctx)) > 0 && s.issue {
				body := fmt.Sprintf("Reminder: this release has waited since %s for a human to retry, escalate or abort. It ends as timed-out at %s.",
					f.evidence.Step, deadline.UTC().Format(time.RFC3339))
				c := activityCtx(ctx, "remind on the release's issue", 5*time.Minute, 5)
				if err := workflow.ExecuteActivity(c, issues.CommentIssue, activities.CommentInput{WorkflowID: s.status.WorkflowID, Body: body}).Get(ctx, nil); err != nil {
					logger.Warn("reminder not posted", "error", err)
				}
			}
			continue
		}
		a := s.pending[0]
		s.pending = s.pending[1:]
		switch a.name {
		case release.ActionEscalate:
			s.fileIssue(ctx, f.evidence, true, a.why.Reason)
			s.setDetails(ctx)
		case release.ActionRetry:
			return s.retryFrom(f.step, a.retry), nil
		}
	}
}

// retryFrom applies a retry and names the step to resume at: resolve when the inputs
// changed (the build key changes), else build for pipeline failures, else the failed step.
func (s *releaseState) retryFrom(failed release.Step, in release.RetryInput) release.Step {
	s.status.Round++
	s.status.Waiting = ""
	changed := false
	if in.DockerfileRef != "" && in.DockerfileRef != s.req.DockerfileRef {
		s.req.DockerfileRef, changed = in.DockerfileRef, true
	}
	if in.Driver != nil && *in.Driver != s.req.Driver {
		s.req.Driver, changed = *in.Driver, true
	}
	s.status.Request.DockerfileRef, s.status.Request.Driver = s.req.DockerfileRef, s.req.Driver
	switch {
	case changed || failed == release.StepResolve:
		return release.StepResolve
	case failed == release.StepPublish || failed == release.StepTable:
		return failed
	default:
		return release.StepBuild
	}
}

func (s *releaseState) fileIssue(ctx workflow.Context, ev release.Evidence, escalate bool, reason string) {
	var ref forge.IssueRef
	summary := "file an issue about " + string(ev.Step)
	if escalate {
		summary = "escalate to the driver's repository"
	}
	c := activityCtx(ctx, summary, 5*time.Minute, 10)
	err := workflow.ExecuteActivity(c, issues.FileIssue, activities.IssueInput{
		WorkflowID: s.status.WorkflowID, Request: s.req, Resolved: s.status.Resolved, Round: s.status.Round,
		Failure: ev, Staged: s.status.Staged, Attach: s.status.DebugAttach, Escalate: escalate, Reason: reason,
	}).Get(ctx, &ref)
	if err != nil {
		workflow.GetLogger(ctx).Error("issue not filed", "error", err)
		s.status.Evidence = append(s.status.Evidence, release.Evidence{Step: ev.Step, Summary: "issue not filed: " + rootMessage(err)})
		return
	}
	if !escalate {
		s.issue = true
	}
	for _, u := range s.status.Issues {
		if u == ref.URL {
			return
		}
	}
	s.status.Issues = append(s.status.Issues, ref.URL)
}

// tellParent lets a Matrix that started this release know it stopped for a human.
// Version-gated: histories recorded before it replay without the signal.
func (s *releaseState) tellParent(ctx workflow.Context, f *stepFailed) {
	parent := workflow.GetInfo(ctx).ParentWorkflowExecution
	if workflow.GetVersion(ctx, "notify-parent-on-wait", workflow.DefaultVersion, 1) < 1 || parent == nil {
		return
	}
	err := workflow.SignalExternalWorkflow(ctx, parent.ID, "", release.SignalChildWaiting,
		release.ChildWaiting{WorkflowID: s.status.WorkflowID, Step: f.step, Summary: f.evidence.Summary}).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Warn("parent not told about the wait", "parent", parent.ID, "error", err)
	}
}
