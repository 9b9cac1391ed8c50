package workflows_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"dgpu-release/internal/release"
	"dgpu-release/workflows"
)

// TestReplayRecordedHistories replays every history recorded from the embedded server
// against the current workflow code, with every workflow type registered, and requires at
// least one history of each type (go test ./starter -run 'TestRecorded' -record-history
// refreshes them). A change to a workflow that breaks one needs a version gate
// (workflow.GetVersion).
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files, "at least one recorded history is kept under testdata/")
	covered := map[string][]string{}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := os.Open(f)
			require.NoError(t, err)
			defer r.Close()
			hist, err := client.HistoryFromJSON(r, client.HistoryJSONOptions{})
			require.NoError(t, err)
			require.NotEmpty(t, hist.GetEvents())
			typ := hist.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName()
			require.NotEmpty(t, typ, "the history begins with WorkflowExecutionStarted")
			covered[typ] = append(covered[typ], filepath.Base(f))

			rep := worker.NewWorkflowReplayer()
			for _, wf := range []any{workflows.Release, workflows.Matrix, workflows.KernelWatch, workflows.DriverWatch} {
				rep.RegisterWorkflow(wf)
			}
			require.NoError(t, rep.ReplayWorkflowHistory(nil, hist))
		})
	}
	for _, typ := range []string{release.WorkflowRelease, release.WorkflowMatrix, release.WorkflowKernelWatch, release.WorkflowDriverWatch} {
		assert.NotEmpty(t, covered[typ], "no recorded history of %s under testdata/", typ)
	}
	for typ, fs := range covered {
		assert.Contains(t, []string{release.WorkflowRelease, release.WorkflowMatrix, release.WorkflowKernelWatch, release.WorkflowDriverWatch}, typ,
			"%v: a history of an unknown workflow type", fs)
	}
}
