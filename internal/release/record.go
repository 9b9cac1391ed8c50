package release

import (
	"errors"
	"strings"
	"time"
)

// Evidence is what a step leaves behind for the people who read a release: a one-line
// summary, the tail of its logs, and named links or values (digests, commands, URLs).
type Evidence struct {
	Step    Step              `json:"step"`
	Summary string            `json:"summary"`
	LogTail string            `json:"log_tail,omitempty"`
	Details map[string]string `json:"details,omitempty"`
	// StandIn is set when a rehearsal stand-in produced the evidence instead of the real system.
	StandIn string `json:"stand_in,omitempty"`
}

// Attempt is one run of one step.
type Attempt struct {
	Step Step `json:"step"`
	// Round counts the passes through the pipeline: 1, then +1 for each retry signal.
	Round     int       `json:"round"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at,omitempty"`
	// Result is ok, failed, skipped, or running.
	Result string `json:"result"`
	Error  string `json:"error,omitempty"`
}

// Attempt results.
const (
	ResultOK      = "ok"
	ResultFailed  = "failed"
	ResultSkipped = "skipped"
	ResultRunning = "running"
)

// HumanAction is a signal or update received from a person, as recorded in the status.
type HumanAction struct {
	Action string    `json:"action"`
	At     time.Time `json:"at"`
	By     string    `json:"by,omitempty"`
	Reason string    `json:"reason,omitempty"`
	Ref    string    `json:"ref,omitempty"`
}

// Image is a built or published image.
type Image struct {
	Repository string `json:"repository"`
	Tag        string `json:"tag,omitempty"`
	Digest     string `json:"digest"`
}

// Ref is the pull spec by digest.
func (i Image) Ref() string {
	if i.Digest == "" {
		return i.Repository + ":" + i.Tag
	}
	return i.Repository + "@" + i.Digest
}

// Resolved is what the resolve step found.
type Resolved struct {
	Kernel           string            `json:"kernel"`
	RHELVersion      string            `json:"rhel_version"`
	OpenShiftVersion string            `json:"openshift_version"`
	DTKImage         string            `json:"dtk_image"`
	DockerfileRef    string            `json:"dockerfile_ref"`
	DockerfileCommit string            `json:"dockerfile_commit"`
	BuildArgs        map[string]string `json:"build_args"`
	BuildKey         BuildKey          `json:"build_key"`
	ImageTag         string            `json:"image_tag"`
}

// Status is what the status query returns: where the release is and everything so far.
type Status struct {
	WorkflowID string   `json:"workflow_id"`
	Request    Request  `json:"request"`
	Step       Step     `json:"step"`
	Round      int      `json:"round"`
	Resolved   Resolved `json:"resolved"`
	// Waiting explains what a human is expected to do, when the release waits for one.
	Waiting     string        `json:"waiting,omitempty"`
	Attempts    []Attempt     `json:"attempts"`
	Evidence    []Evidence    `json:"evidence"`
	Actions     []HumanAction `json:"actions,omitempty"`
	Staged      *Image        `json:"staged,omitempty"`
	Published   *Image        `json:"published,omitempty"`
	Issues      []string      `json:"issues,omitempty"`
	DebugAttach string        `json:"debug_attach,omitempty"`
	Outcome     Outcome       `json:"outcome,omitempty"`
	// UnknownSignals names signals the release received but has no handler for (a typo
	// in the Temporal UI, such as "retyr"): they did nothing.
	UnknownSignals []string `json:"unknown_signals,omitempty"`
}

// Record is the result of the Release workflow.
type Record struct {
	Status
	Certification *CertificationResult `json:"certification,omitempty"`
	TableCommit   string               `json:"table_commit,omitempty"`
	CatalogID     string               `json:"catalog_id,omitempty"`
	FinishedAt    time.Time            `json:"finished_at"`
}

// CertificationResult is shaped like preflight's results document.
type CertificationResult struct {
	Image       string       `json:"image"`
	Passed      bool         `json:"passed"`
	TestLibrary TestLibrary  `json:"test_library"`
	Policy      string       `json:"policy"`
	Results     CheckResults `json:"results"`
	// NotRun lists checks of the policy that this engine did not run, with the reason.
	NotRun []CheckOutcome `json:"not_run,omitempty"`
}

// TestLibrary names the engine that ran the checks.
type TestLibrary struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// CheckResults groups the checks by outcome, as preflight does.
type CheckResults struct {
	Passed []CheckOutcome `json:"passed"`
	Failed []CheckOutcome `json:"failed"`
	Errors []CheckOutcome `json:"errors"`
}

// CheckOutcome is one check's result.
type CheckOutcome struct {
	Name        string `json:"name"`
	ElapsedTime int64  `json:"elapsed_time"` // milliseconds
	Description string `json:"description"`
	Help        string `json:"help,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

// RetryInput is the payload of the retry signal/update.
type RetryInput struct {
	// DockerfileRef, when set, rebuilds from this revision of the Dockerfile.
	DockerfileRef string `json:"dockerfile_ref,omitempty"`
	// Driver, when set, rebuilds from this driver set.
	Driver *DriverSet `json:"driver,omitempty"`
	Reason string     `json:"reason,omitempty"`
	By     string     `json:"by,omitempty"`
	// invalid is what was wrong with the JSON it was decoded from (see UnmarshalJSON).
	invalid error
}

// Validate checks the optional fields that are set.
func (in RetryInput) Validate() error {
	errs := []error{in.invalid}
	if in.DockerfileRef != "" {
		errs = append(errs, ValidateRef("dockerfile_ref", in.DockerfileRef))
	}
	if in.Driver != nil {
		errs = append(errs, in.Driver.Validate("driver."))
	}
	return errors.Join(errs...)
}

// ReasonInput is the payload of escalate, abort and approve.
type ReasonInput struct {
	Reason string `json:"reason,omitempty"`
	By     string `json:"by,omitempty"`
	// invalid is what was wrong with the JSON it was decoded from (see UnmarshalJSON).
	invalid error
}

// Validate requires a reason for escalate and abort, where the people who read the
// issue need one; approve may go without.
func (in ReasonInput) Validate(action string) error {
	if in.invalid != nil {
		return in.invalid
	}
	if (action == ActionEscalate || action == ActionAbort) && strings.TrimSpace(in.Reason) == "" {
		return &FieldError{Field: "reason", Accepted: "a short text that says why (shown on the issue)"}
	}
	return nil
}

// StepFailure is returned by an adapter when the step ran and its subject failed (the
// build did not compile, the GPU test failed): retrying the same call will not help, a
// human has to look. Evidence says why.
type StepFailure struct {
	Evidence Evidence
}

func (f *StepFailure) Error() string {
	return string(f.Evidence.Step) + " failed: " + f.Evidence.Summary
}
