// Package release is the domain of dgpu-release: what a release asks for, how it is
// named and validated, what it records, and the wire contract (task queue, workflow,
// signal, query and update names) shared by the workflows, the worker and the starter.
//
// It depends on the standard library only, so every other package can import it.
package release

import "time"

// TaskQueue is the Temporal task queue that the worker polls and the starter targets.
const TaskQueue = "dgpu-release"

// Workflow type names.
const (
	WorkflowRelease = "Release"
)

// Signal and update names. Each human action exists both as a signal (so the Temporal
// UI can send it) and as an update of the same name with a validator (so the starter
// gets a synchronous answer and bad input never enters history).
const (
	ActionRetry    = "retry"
	ActionEscalate = "escalate"
	ActionAbort    = "abort"
	ActionApprove  = "approve"
)

// Actions lists every human action, in the order the CLI documents them.
var Actions = []string{ActionRetry, ActionEscalate, ActionAbort, ActionApprove}

// QueryStatus returns a Status.
const QueryStatus = "status"

// Custom search attributes kept current by the Release workflow. All are Keyword typed.
const (
	SearchAttrKernel           = "DgpuKernel"
	SearchAttrOpenShiftVersion = "DgpuOpenShiftVersion"
	SearchAttrDriverVersion    = "DgpuDriverVersion"
	SearchAttrStep             = "DgpuStep"
)

// SearchAttributes lists the custom search attributes the server must know.
var SearchAttributes = []string{SearchAttrKernel, SearchAttrOpenShiftVersion, SearchAttrDriverVersion, SearchAttrStep}

// Step names, in the order the Release workflow runs them.
type Step string

const (
	StepResolve  Step = "resolve"
	StepBuild    Step = "build"
	StepGPUTest  Step = "gpu-test"
	StepCertify  Step = "certify"
	StepApprove  Step = "approve"
	StepPublish  Step = "publish"
	StepTable    Step = "table"
	StepWaiting  Step = "waiting-for-human"
	StepFinished Step = "finished"
)

// Steps is the forward path of a release.
var Steps = []Step{StepResolve, StepBuild, StepGPUTest, StepCertify, StepApprove, StepPublish, StepTable}

// Outcome of a whole release.
type Outcome string

const (
	OutcomeReleased        Outcome = "released"
	OutcomeAlreadyReleased Outcome = "already-released"
	OutcomeAborted         Outcome = "aborted"
	OutcomeTimedOut        Outcome = "timed-out"
	OutcomeApprovalTimeout Outcome = "approval-timed-out"
)

// LabelBuildKey is the image label that carries the build key, so a published image
// tells which inputs it was built from.
const LabelBuildKey = "io.dgpu-release.build-key"

// Defaults for the human waits.
const (
	DefaultHumanDeadline    = 7 * 24 * time.Hour
	DefaultReminderInterval = 24 * time.Hour
	DefaultApprovalTimeout  = 72 * time.Hour
)

// Error types carried by Temporal application errors, so the workflow can tell a
// step that failed for good from an infrastructure error.
const (
	ErrTypeInvalidInput = "InvalidInput"
	ErrTypeStepFailed   = "StepFailed"
	ErrTypeTagConflict  = "TagConflict"
	// ErrTypePermanent is an error retrying cannot fix (401, bad input to a service).
	ErrTypePermanent = "PermanentError"
)
