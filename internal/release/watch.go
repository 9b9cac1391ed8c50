package release

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// Workflow types of the triggers.
const (
	WorkflowMatrix      = "Matrix"
	WorkflowKernelWatch = "KernelWatch"
	WorkflowDriverWatch = "DriverWatch"
)

// Signals of the triggers.
const (
	// SignalChildWaiting is sent by a Release started by a Matrix when it stops for a human.
	SignalChildWaiting = "child-waiting"
	// SignalMerged tells a DriverWatch that its Dockerfile bump pull request is merged.
	SignalMerged = "merged"
)

// Workflow and schedule IDs of the triggers.
const (
	KernelWatchID         = "watch/kernels"
	DriverWatchID         = "watch/driver"
	KernelWatchScheduleID = "schedule/watch-kernels"
	DriverWatchScheduleID = "schedule/watch-driver"
)

// MatrixID is the deterministic ID of the driver upgrade of one driver version.
func MatrixID(driverVersion string) string { return "matrix/" + driverVersion }

// Defaults of the triggers.
const (
	DefaultMaxInFlight     = 4
	DefaultMergePoll       = 10 * time.Minute
	DefaultMergeTimeout    = 14 * 24 * time.Hour
	DefaultKernelWatchTick = 6 * time.Hour
	DefaultDriverWatchTick = 24 * time.Hour
)

// KernelTarget is one kernel to release for, with the OpenShift release that ships it.
type KernelTarget struct {
	Kernel           string `json:"kernel"`
	OpenShiftVersion string `json:"openshift_version"`
}

// MatrixRequest releases one driver set for many kernels.
type MatrixRequest struct {
	Trigger         Trigger          `json:"trigger"`
	Driver          DriverSet        `json:"driver"`
	DockerfileRef   string           `json:"dockerfile_ref"`
	Targets         []KernelTarget   `json:"targets"`
	MaxInFlight     int              `json:"max_in_flight,omitempty"`
	RequireApproval bool             `json:"require_approval,omitempty"`
	Rehearsal       RehearsalOptions `json:"rehearsal,omitempty"`
}

// Validate checks the request.
func (m MatrixRequest) Validate() error {
	if len(m.Targets) == 0 {
		return &FieldError{Field: "targets", Accepted: "at least one kernel"}
	}
	for i, t := range m.Targets {
		if err := ValidateKernel(fmt.Sprintf("targets[%d].kernel", i), t.Kernel); err != nil {
			return err
		}
	}
	if m.MaxInFlight < 0 {
		return &FieldError{Field: "max_in_flight", Value: strconv.Itoa(m.MaxInFlight), Accepted: "a positive number, or 0 for the default"}
	}
	return Request{Trigger: m.Trigger, Kernel: m.Targets[0].Kernel, Driver: m.Driver, DockerfileRef: m.DockerfileRef}.Validate()
}

// Release is the request of one kernel of the matrix.
func (m MatrixRequest) Release(t KernelTarget) Request {
	return Request{Trigger: m.Trigger, Kernel: t.Kernel, OpenShiftVersion: t.OpenShiftVersion, Driver: m.Driver,
		DockerfileRef: m.DockerfileRef, RequireApproval: m.RequireApproval, Rehearsal: m.Rehearsal}
}

// Matrix entry states, besides the release outcomes.
const (
	MatrixPending          = "pending"
	MatrixRunning          = "running"
	MatrixWaiting          = "waiting-for-human"
	MatrixFailed           = "failed"
	MatrixRunningElsewhere = "running-elsewhere"
)

// MatrixEntry is one kernel of a matrix.
type MatrixEntry struct {
	KernelTarget
	WorkflowID string `json:"workflow_id"`
	State      string `json:"state"`
	Detail     string `json:"detail,omitempty"`
}

// MatrixReport is the Matrix workflow's status and result.
type MatrixReport struct {
	Driver  DriverSet      `json:"driver"`
	Entries []MatrixEntry  `json:"entries"`
	Counts  map[string]int `json:"counts"`
}

// ChildWaiting is the payload of SignalChildWaiting.
type ChildWaiting struct {
	WorkflowID string `json:"workflow_id"`
	Step       Step   `json:"step"`
	Summary    string `json:"summary"`
}

// KernelWatchRequest configures one KernelWatch run.
type KernelWatchRequest struct {
	DockerfileRef string `json:"dockerfile_ref"`
	// MaxStarts bounds the releases one run starts (0: no bound).
	MaxStarts int              `json:"max_starts,omitempty"`
	Rehearsal RehearsalOptions `json:"rehearsal,omitempty"`
}

// KernelWatchResult says what a KernelWatch run found and did.
type KernelWatchResult struct {
	Driver          DriverSet `json:"driver"`
	Kernels         int       `json:"kernels"`
	AlreadyReleased []string  `json:"already_released"`
	Started         []string  `json:"started"`
	Running         []string  `json:"running"`
}

// DriverWatchRequest configures one DriverWatch run.
type DriverWatchRequest struct {
	MergePoll    time.Duration `json:"merge_poll,omitempty"`
	MergeTimeout time.Duration `json:"merge_timeout,omitempty"`
	MaxInFlight  int           `json:"max_in_flight,omitempty"`
}

// DriverWatchResult says what a DriverWatch run did.
type DriverWatchResult struct {
	Pinned      DriverSet `json:"pinned"`
	Latest      DriverSet `json:"latest"`
	PullRequest string    `json:"pull_request,omitempty"`
	BumpCommit  string    `json:"bump_commit,omitempty"`
	Matrix      string    `json:"matrix,omitempty"`
	// Outcome: up-to-date, matrix-started, merge-timed-out.
	Outcome string `json:"outcome"`
}

var semverCore = regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)`)

// NextDriverVersion is the version a driver upgrade releases as: the next minor version
// of the pinned one (1.2.3 -> 1.3.0).
func NextDriverVersion(pinned string) (string, error) {
	m := semverCore.FindStringSubmatch(pinned)
	if m == nil {
		return "", &FieldError{Field: "driver_version", Value: pinned, Accepted: FormDriverVersion}
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return fmt.Sprintf("%d.%d.0", major, minor+1), nil
}
