package activities

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"dgpu-release/internal/forge"
	"dgpu-release/internal/release"
)

// Issues files, updates and closes the issues of failed releases (steps 5 and 7).
type Issues struct {
	Forge  forge.Forge
	Config Config
}

// IssueInput describes a failure for the people who will fix it.
type IssueInput struct {
	WorkflowID string           `json:"workflow_id"`
	Request    release.Request  `json:"request"`
	Resolved   release.Resolved `json:"resolved"`
	Round      int              `json:"round"`
	Failure    release.Evidence `json:"failure"`
	Staged     *release.Image   `json:"staged,omitempty"`
	Attach     string           `json:"attach,omitempty"`
	// Escalate files in the driver's repository instead of the project's.
	Escalate bool   `json:"escalate,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// Marker is the hidden key of a release's issue in a repository.
func Marker(workflowID string, escalated bool) string {
	if escalated {
		return workflowID + "#driver-bug"
	}
	return workflowID
}

// FileIssue files or comments (never twice for the same release).
func (a *Issues) FileIssue(ctx context.Context, in IssueInput) (forge.IssueRef, error) {
	ctx, done := alive(ctx)
	defer done()
	repo := a.Config.ProjectRepo
	if in.Escalate {
		repo = a.Config.DriverRepo
	}
	ref, err := a.Forge.FileIssue(ctx, forge.Issue{Repo: repo, Marker: Marker(in.WorkflowID, in.Escalate), Title: IssueTitle(in), Body: IssueBody(in)})
	return ref, stepError(err)
}

// IssueTitle is one line that says what broke where.
func IssueTitle(in IssueInput) string {
	if in.Escalate {
		return fmt.Sprintf("i915 %s fails on RHCOS kernel %s (OpenShift %s): %s", in.Request.Driver.I915Tag, in.Resolved.Kernel, in.Resolved.OpenShiftVersion, in.Failure.Step)
	}
	return fmt.Sprintf("Release %s for kernel %s failed at %s (round %d)", in.Request.Driver.DriverVersion, in.Resolved.Kernel, in.Failure.Step, in.Round)
}

// IssueBody lays out the evidence.
func IssueBody(in IssueInput) string {
	var b strings.Builder
	if in.Escalate {
		fmt.Fprintf(&b, "Escalated from the release automation as a driver bug.\n\n**Reason:** %s\n\n", in.Reason)
	}
	fmt.Fprintf(&b, "| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| Release | `%s` |\n| Failed step | %s (round %d) |\n", in.WorkflowID, in.Failure.Step, in.Round)
	fmt.Fprintf(&b, "| Kernel | `%s` (RHEL %s, OpenShift %s) |\n", in.Resolved.Kernel, in.Resolved.RHELVersion, in.Resolved.OpenShiftVersion)
	fmt.Fprintf(&b, "| Driver | %s: i915 `%s`, firmware `%s` |\n", in.Request.Driver.DriverVersion, in.Request.Driver.I915Tag, in.Request.Driver.FirmwareTag)
	fmt.Fprintf(&b, "| Dockerfile | `%s` at `%s` |\n", in.Resolved.DockerfileRef, in.Resolved.DockerfileCommit)
	if in.Staged != nil {
		fmt.Fprintf(&b, "| Image | `%s` |\n", in.Staged.Ref())
	}
	if in.Attach != "" {
		fmt.Fprintf(&b, "| Debug workload | `%s` |\n", in.Attach)
	}
	fmt.Fprintf(&b, "\n**Summary:** %s\n", in.Failure.Summary)
	if in.Failure.StandIn != "" {
		fmt.Fprintf(&b, "\n> %s\n", in.Failure.StandIn)
	}
	if len(in.Failure.Details) > 0 {
		keys := make([]string, 0, len(in.Failure.Details))
		for k := range in.Failure.Details {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("\n<details><summary>Details</summary>\n\n")
		for _, k := range keys {
			fmt.Fprintf(&b, "- %s: `%s`\n", k, strings.ReplaceAll(in.Failure.Details[k], "\n", " "))
		}
		b.WriteString("\n</details>\n")
	}
	if in.Failure.LogTail != "" {
		fmt.Fprintf(&b, "\n```\n%s\n```\n", strings.TrimRight(in.Failure.LogTail, "\n"))
	}
	if !in.Escalate {
		fmt.Fprintf(&b, "\nSteer the release with `starter signal %s retry [--ref REV]`, `escalate --reason ...` or `abort --reason ...`.\n", in.WorkflowID)
	}
	return b.String()
}

// CommentInput is a comment on a release's open issue.
type CommentInput struct {
	WorkflowID string `json:"workflow_id"`
	Escalated  bool   `json:"escalated,omitempty"`
	Body       string `json:"body"`
	// Close closes the issue after the comment.
	Close bool `json:"close,omitempty"`
}

// CommentIssue reminds on, or closes, the release's issue in the project repository.
func (a *Issues) CommentIssue(ctx context.Context, in CommentInput) error {
	ctx, done := alive(ctx)
	defer done()
	repo := a.Config.ProjectRepo
	if in.Escalated {
		repo = a.Config.DriverRepo
	}
	if in.Close {
		return stepError(a.Forge.CloseIssue(ctx, repo, Marker(in.WorkflowID, in.Escalated), in.Body))
	}
	_, err := a.Forge.Comment(ctx, repo, Marker(in.WorkflowID, in.Escalated), in.Body)
	return stepError(err)
}

// Debug deploys and removes the debug workload (step 5).
type Debug struct {
	Deployer DebugDeployer
}

// DeployDebug deploys the workload for a failed release.
func (a *Debug) DeployDebug(ctx context.Context, in release.DebugSpec) (release.DebugWorkload, error) {
	ctx, done := alive(ctx)
	defer done()
	w, err := a.Deployer.Deploy(ctx, in)
	return w, stepError(err)
}

// RemoveDebugInput names a deployed workload.
type RemoveDebugInput struct {
	Name string `json:"name"`
}

// RemoveDebug removes it; a workload already gone is no error.
func (a *Debug) RemoveDebug(ctx context.Context, in RemoveDebugInput) error {
	ctx, done := alive(ctx)
	defer done()
	return stepError(a.Deployer.Remove(ctx, in.Name))
}
