package release

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Trigger says what started a release.
type Trigger string

const (
	TriggerDriver Trigger = "driver" // the driver repos published new tags
	TriggerKernel Trigger = "kernel" // a new OpenShift release or node brings a new kernel
	TriggerManual Trigger = "manual" // a person asked for it
)

// Triggers lists the accepted triggers.
var Triggers = []Trigger{TriggerDriver, TriggerKernel, TriggerManual}

// DriverSet pins the Intel GPU driver sources an image is built from.
type DriverSet struct {
	// I915Tag is the tag of the i915 backports repository (intel-gpu-i915-backports).
	I915Tag string `json:"i915_tag"`
	// FirmwareTag is the tag of the firmware repository (intel-gpu-firmware).
	FirmwareTag string `json:"firmware_tag"`
	// DriverVersion is the semantic version the image is released as.
	DriverVersion string `json:"driver_version"`
}

// Request is the input of the Release workflow.
type Request struct {
	Trigger Trigger `json:"trigger"`
	// OpenShiftVersion such as 4.16.3. With an empty Kernel, resolve finds the kernel it ships.
	OpenShiftVersion string `json:"openshift_version,omitempty"`
	// Kernel such as 5.14.0-427.13.1.el9_4.x86_64. With an empty OpenShiftVersion, resolve
	// finds the OpenShift release that ships it.
	Kernel string    `json:"kernel,omitempty"`
	Driver DriverSet `json:"driver"`
	// DockerfileRef names the revision of docker/intel-dgpu-driver.Dockerfile to build from
	// (a git revision of the project repository the forge serves).
	DockerfileRef string `json:"dockerfile_ref"`
	// RequireApproval adds the approve gate before publishing.
	RequireApproval bool `json:"require_approval,omitempty"`
	// ApprovalTimeout ends a release that waits longer than this at the gate (0: default).
	ApprovalTimeout time.Duration `json:"approval_timeout,omitempty"`
	// HumanDeadline ends a release that waits longer than this for a human after a failure (0: default).
	HumanDeadline time.Duration `json:"human_deadline,omitempty"`
	// ReminderInterval is how often a waiting release reminds on its issue (0: default).
	ReminderInterval time.Duration `json:"reminder_interval,omitempty"`
	// Rehearsal holds options that only the rehearsal stand-ins honour.
	Rehearsal RehearsalOptions `json:"rehearsal,omitempty"`
}

// RehearsalOptions steer the rehearsal stand-ins of the embedded default. Production
// adapters ignore them.
type RehearsalOptions struct {
	// FailAt makes the named step fail on the first attempt of the release, so the
	// failure path (issue, debug workload, human wait) can be rehearsed.
	FailAt Step `json:"fail_at,omitempty"`
}

// RehearsalFailSteps are the steps whose stand-ins can be told to fail.
var RehearsalFailSteps = []Step{StepBuild, StepGPUTest}

// FieldError is a validation error that names the field, the value and the accepted form.
type FieldError struct {
	Field    string
	Value    string
	Accepted string
}

func (e *FieldError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s is required: accepted form is %s", e.Field, e.Accepted)
	}
	return fmt.Sprintf("%s %q is not valid: accepted form is %s", e.Field, e.Value, e.Accepted)
}

var (
	kernelRE = regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)-(\d+(?:\.\d+)*)\.el(\d+)(?:_(\d+))?\.(x86_64|aarch64|ppc64le|s390x)$`)
	ocpRE    = regexp.MustCompile(`^4\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-(?:ec|rc)\.(0|[1-9]\d*))?$`)
	// Semantic versioning 2.0.0 without build metadata ("+..." cannot appear in an image tag).
	semverRE = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?$`)
	// A git tag or revision: no whitespace, no control characters, none of ~^:?*[\ (git check-ref-format).
	tagRE = regexp.MustCompile(`^[^\s~^:?*\[\\\x00-\x1f\x7f]+$`)
)

// Accepted forms, quoted in errors and CLI help.
const (
	FormKernel        = "a RHCOS/RHEL kernel release such as 5.14.0-427.13.1.el9_4.x86_64"
	FormOpenShift     = "an OpenShift version such as 4.16.3 (or 4.17.0-rc.1)"
	FormDriverVersion = "a semantic version such as 1.2.3 or 1.2.3-rc.1 (no +build suffix)"
	FormTag           = "a non-empty git tag without whitespace, such as I915_24WW30.4_803.75_23.10.54_231129.76"
	FormRef           = "a non-empty git revision without whitespace, such as main or a commit SHA"
)

// ValidateKernel checks a kernel release string.
func ValidateKernel(field, v string) error {
	if !kernelRE.MatchString(v) {
		return &FieldError{Field: field, Value: v, Accepted: FormKernel}
	}
	return nil
}

// ValidateOpenShiftVersion checks an OpenShift version.
func ValidateOpenShiftVersion(field, v string) error {
	if !ocpRE.MatchString(v) {
		return &FieldError{Field: field, Value: v, Accepted: FormOpenShift}
	}
	return nil
}

// ValidateDriverVersion checks a driver version.
func ValidateDriverVersion(field, v string) error {
	if !semverRE.MatchString(v) {
		return &FieldError{Field: field, Value: v, Accepted: FormDriverVersion}
	}
	return nil
}

// ValidateTag checks a git tag.
func ValidateTag(field, v string) error {
	if !tagRE.MatchString(v) {
		return &FieldError{Field: field, Value: v, Accepted: FormTag}
	}
	return nil
}

// ValidateRef checks a git revision.
func ValidateRef(field, v string) error {
	if !tagRE.MatchString(v) {
		return &FieldError{Field: field, Value: v, Accepted: FormRef}
	}
	return nil
}

// Validate checks every field of the driver set; prefix is prepended to field names.
func (d DriverSet) Validate(prefix string) error {
	return errors.Join(
		ValidateTag(prefix+"i915_tag", d.I915Tag),
		ValidateTag(prefix+"firmware_tag", d.FirmwareTag),
		ValidateDriverVersion(prefix+"driver_version", d.DriverVersion),
	)
}

// Validate checks a request and returns every problem at once.
func (r Request) Validate() error {
	var errs []error
	if !contains(Triggers, r.Trigger) {
		errs = append(errs, &FieldError{Field: "trigger", Value: string(r.Trigger), Accepted: "one of " + joinStrings(Triggers)})
	}
	if r.Kernel == "" && r.OpenShiftVersion == "" {
		errs = append(errs, &FieldError{Field: "kernel", Accepted: FormKernel + " (or give openshift_version and let resolve find it)"})
	}
	if r.Kernel != "" {
		errs = append(errs, ValidateKernel("kernel", r.Kernel))
	}
	if r.OpenShiftVersion != "" {
		errs = append(errs, ValidateOpenShiftVersion("openshift_version", r.OpenShiftVersion))
	}
	errs = append(errs, r.Driver.Validate("driver."), ValidateRef("dockerfile_ref", r.DockerfileRef))
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"approval_timeout", r.ApprovalTimeout}, {"human_deadline", r.HumanDeadline}, {"reminder_interval", r.ReminderInterval}} {
		if d.v < 0 {
			errs = append(errs, &FieldError{Field: d.name, Value: d.v.String(), Accepted: "a positive duration, or 0 for the default"})
		}
	}
	if f := r.Rehearsal.FailAt; f != "" && !contains(RehearsalFailSteps, f) {
		errs = append(errs, &FieldError{Field: "rehearsal.fail_at", Value: string(f), Accepted: "one of " + joinStrings(RehearsalFailSteps)})
	}
	return errors.Join(errs...)
}

// WithDefaults fills the zero durations with the defaults.
func (r Request) WithDefaults() Request {
	if r.ApprovalTimeout == 0 {
		r.ApprovalTimeout = DefaultApprovalTimeout
	}
	if r.HumanDeadline == 0 {
		r.HumanDeadline = DefaultHumanDeadline
	}
	if r.ReminderInterval == 0 {
		r.ReminderInterval = DefaultReminderInterval
	}
	return r
}

// WorkflowID is the deterministic ID of the release of one driver version for one kernel.
func WorkflowID(kernel, driverVersion string) string {
	return "release/" + kernel + "/" + driverVersion
}

// FormWorkflowID is the accepted form of a release's workflow ID.
const FormWorkflowID = "a release ID, release/<kernel>/<driver-version>, such as release/5.14.0-427.37.1.el9_4.x86_64/1.2.0 (starter list shows them)"

// ValidateWorkflowID checks that id names a release, as WorkflowID builds it.
func ValidateWorkflowID(field, id string) error {
	rest, ok := strings.CutPrefix(id, "release/")
	kernel, version, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || !kernelRE.MatchString(kernel) || !semverRE.MatchString(version) {
		return &FieldError{Field: field, Value: id, Accepted: FormWorkflowID}
	}
	return nil
}

// ImageTag is the tag a released image carries: <driver-version>-<kernel>.
func ImageTag(driverVersion, kernel string) string {
	return driverVersion + "-" + kernel
}

// RHELVersion derives the RHEL minor release from a kernel (el9_4 -> 9.4, el8 -> 8).
func RHELVersion(kernel string) (string, error) {
	m := kernelRE.FindStringSubmatch(kernel)
	if m == nil {
		return "", &FieldError{Field: "kernel", Value: kernel, Accepted: FormKernel}
	}
	if m[6] == "" {
		return m[5], nil
	}
	return m[5] + "." + m[6], nil
}

// BuildKey identifies the content of a build: two builds with the same key produce the
// same image, so an image published under that key need not be built again.
type BuildKey string

// ComputeBuildKey hashes the Dockerfile bytes, the build arguments (sorted by name) and
// the digest of the Driver Toolkit image the build runs on. DTK_AUTO is left out of the
// arguments: it names the DTK by a pull spec whose registry host may differ between
// mirrors, and the digest already identifies it.
func ComputeBuildKey(dockerfile []byte, args map[string]string, dtkDigest string) BuildKey {
	h := sha256.New()
	df := sha256.Sum256(dockerfile)
	fmt.Fprintf(h, "dockerfile=%x\n", df)
	names := make([]string, 0, len(args))
	for k := range args {
		if k != ArgDTK {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(h, "arg %s=%s\n", k, args[k])
	}
	fmt.Fprintf(h, "dtk=%s\n", dtkDigest)
	return BuildKey("sha256:" + hex.EncodeToString(h.Sum(nil)))
}

// Short is the first 12 hex digits of the key, for tags and object names.
func (k BuildKey) Short() string {
	s := strings.TrimPrefix(string(k), "sha256:")
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// Build argument names of docker/intel-dgpu-driver.Dockerfile.
const (
	ArgKernel        = "KERNEL_FULL_VERSION"
	ArgDTK           = "DTK_AUTO"
	ArgI915          = "I915_RELEASE"
	ArgFirmware      = "FIRMWARE_RELEASE"
	ArgDriverVersion = "DRIVER_VERSION"
)

// BuildArgs are the build arguments of one release.
func BuildArgs(kernel, dtkImage string, d DriverSet) map[string]string {
	return map[string]string{
		ArgKernel:        kernel,
		ArgDTK:           dtkImage,
		ArgI915:          d.I915Tag,
		ArgFirmware:      d.FirmwareTag,
		ArgDriverVersion: d.DriverVersion,
	}
}

func contains[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func joinStrings[T ~string](list []T) string {
	s := make([]string, len(list))
	for i, v := range list {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

// Fields of the human actions' inputs, as a person types them in the Temporal UI.
var (
	retryFields  = []string{"dockerfile_ref", "driver", "reason", "by"}
	driverFields = []string{"i915_tag", "firmware_tag", "driver_version"}
	reasonFields = []string{"reason", "by"}
)

// Accepted forms of the human actions' inputs.
const (
	FormRetryInput  = `a JSON object with any of dockerfile_ref, driver {i915_tag, firmware_tag, driver_version}, reason, by, such as {"dockerfile_ref": "main", "reason": "fixed the Dockerfile"}`
	FormReasonInput = `a JSON object with reason and by, such as {"reason": "superseded", "by": "alice"}`
)

// UnmarshalJSON decodes a retry input strictly. A payload that is not a JSON object, an
// unknown field or a value of the wrong JSON type does not fail the decoding: the SDK drops
// a signal it cannot decode without a trace. It is kept instead, with the fields that did
// decode, for Validate to refuse, naming the field and the accepted form.
func (in *RetryInput) UnmarshalJSON(b []byte) error {
	*in = RetryInput{}
	fields, err := objectFields("", "retry input", FormRetryInput, b, retryFields)
	errs := []error{err}
	errs = append(errs, stringField("dockerfile_ref", FormRef, fields, &in.DockerfileRef),
		stringField("reason", formWhy, fields, &in.Reason),
		stringField("by", formBy, fields, &in.By))
	if raw, ok := fields["driver"]; ok && !isNull(raw) {
		df, err := objectFields("driver.", "driver", "a JSON object with i915_tag, firmware_tag and driver_version", raw, driverFields)
		errs = append(errs, err)
		if df != nil {
			d := DriverSet{}
			errs = append(errs, stringField("driver.i915_tag", FormTag, df, &d.I915Tag),
				stringField("driver.firmware_tag", FormTag, df, &d.FirmwareTag),
				stringField("driver.driver_version", FormDriverVersion, df, &d.DriverVersion))
			in.Driver = &d
		}
	}
	in.invalid = errors.Join(errs...)
	return nil
}

// UnmarshalJSON decodes the input of escalate, abort and approve strictly, as
// RetryInput.UnmarshalJSON does.
func (in *ReasonInput) UnmarshalJSON(b []byte) error {
	*in = ReasonInput{}
	fields, err := objectFields("", "input", FormReasonInput, b, reasonFields)
	in.invalid = errors.Join(err,
		stringField("reason", formWhy, fields, &in.Reason),
		stringField("by", formBy, fields, &in.By))
	return nil
}

const (
	formWhy = "a short text that says why"
	formBy  = "the name of who acts"
)

// objectFields splits a JSON object (null: no fields) into its fields, and names each
// field that is not one of known. field names the object in errors.
func objectFields(prefix, field, accepted string, b []byte, known []string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, &FieldError{Field: field, Value: snippet(b), Accepted: accepted}
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	var errs []error
	for _, k := range names {
		if !contains(known, k) {
			errs = append(errs, &FieldError{Field: prefix + k, Value: snippet(m[k]),
				Accepted: fmt.Sprintf("a field of the %s: %s (this one is unknown)", field, strings.Join(known, ", "))})
			delete(m, k)
		}
	}
	return m, errors.Join(errs...)
}

// stringField decodes the named field, when present and not null, as a JSON string.
func stringField(name, accepted string, fields map[string]json.RawMessage, dst *string) error {
	key := name[strings.LastIndexByte(name, '.')+1:]
	raw, ok := fields[key]
	if !ok || isNull(raw) {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return &FieldError{Field: name, Value: snippet(raw), Accepted: accepted + " (a JSON string)"}
	}
	return nil
}

func isNull(raw json.RawMessage) bool { return strings.TrimSpace(string(raw)) == "null" }

// snippet is a short form of a JSON value for an error message.
func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if s == "" {
		return "(empty)"
	}
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}
