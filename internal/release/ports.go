package release

// Inputs and outputs of the adapters that build and test images. They live in the domain
// so that the cluster adapters and the rehearsal stand-ins share them without importing
// the activities.

// Progress receives human-readable progress from a long step (the activity turns it into
// heartbeats).
type Progress func(msg string)

// BuildSpec asks for one image build.
type BuildSpec struct {
	// Name is deterministic for the release and round, so a retried activity finds its own
	// build instead of starting a second one.
	Name       string `json:"name"`
	WorkflowID string `json:"workflow_id"`
	Round      int    `json:"round"`
	// BuildKey goes on the image as the LabelBuildKey label.
	BuildKey         BuildKey          `json:"build_key"`
	Dockerfile       []byte            `json:"dockerfile"`
	DockerfileCommit string            `json:"dockerfile_commit"`
	Args             map[string]string `json:"args"`
	// StagingRepo and Tag say where the built image is pushed.
	StagingRepo string           `json:"staging_repo"`
	Tag         string           `json:"tag"`
	Rehearsal   RehearsalOptions `json:"rehearsal,omitempty"`
}

// BuildOutput is a pushed image and the build's evidence.
type BuildOutput struct {
	Image    Image    `json:"image"`
	Evidence Evidence `json:"evidence"`
}

// TestSpec asks for one GPU test of a staged image.
type TestSpec struct {
	Name       string           `json:"name"`
	WorkflowID string           `json:"workflow_id"`
	Round      int              `json:"round"`
	Kernel     string           `json:"kernel"`
	Image      string           `json:"image"` // by digest
	Rehearsal  RehearsalOptions `json:"rehearsal,omitempty"`
}

// TestOutput is the evidence of a passed test and the node it ran on.
type TestOutput struct {
	Node     string   `json:"node"`
	Evidence Evidence `json:"evidence"`
}

// DebugSpec asks for the debug workload of a failed release.
type DebugSpec struct {
	WorkflowID string `json:"workflow_id"`
	Step       Step   `json:"step"`
	Kernel     string `json:"kernel"`
	Image      string `json:"image"`
	Node       string `json:"node,omitempty"`
}

// DebugWorkload is a deployed debug workload.
type DebugWorkload struct {
	Name    string `json:"name"`
	Attach  string `json:"attach"`
	StandIn string `json:"stand_in,omitempty"`
	// Manifest is where the rendered manifests were written (rehearsal) or applied (cluster).
	Manifest string `json:"manifest,omitempty"`
}
