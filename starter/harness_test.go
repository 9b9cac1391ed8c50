package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"dgpu-release/internal/devstack"
	"dgpu-release/internal/release"
	"dgpu-release/internal/wiring"
)

// Helpers shared by the integration tests that run releases on the embedded server.

// stackWithWorker starts the embedded stack of a state folder and a worker in process;
// stop ends both (tests that restart the stack call it themselves).
func stackWithWorker(t *testing.T, ctx context.Context, cfg devstack.Config) (*devstack.Stack, client.Client, *wiring.Set, func()) {
	t.Helper()
	stack, err := devstack.Start(ctx, cfg)
	require.NoError(t, err)
	set, err := wiring.Rehearsal(ctx, wiring.Options{StateDir: cfg.StateDir, RegistryHost: stack.RegistryHost})
	require.NoError(t, err)
	c, err := client.DialContext(ctx, client.Options{HostPort: stack.TemporalAddress, Namespace: stack.Namespace})
	require.NoError(t, err)
	w := worker.New(c, release.TaskQueue, worker.Options{})
	set.Register(w)
	require.NoError(t, w.Start())
	return stack, c, set, func() {
		w.Stop()
		c.Close()
		stack.Stop()
	}
}

func statusOf(t *testing.T, ctx context.Context, c client.Client, id string) (release.Status, error) {
	t.Helper()
	v, err := c.QueryWorkflow(ctx, id, "", release.QueryStatus)
	if err != nil {
		return release.Status{}, err
	}
	var st release.Status
	return st, v.Get(&st)
}

// waitForStatus polls a release's status query until ok accepts it, and returns it.
func waitForStatus(t *testing.T, ctx context.Context, c client.Client, id string, ok func(release.Status) bool) release.Status {
	t.Helper()
	var st release.Status
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		var err error
		st, err = statusOf(t, ctx, c, id)
		if assert.NoError(ct, err, id) {
			assert.True(ct, ok(st), "%s: step %s", id, st.Step)
		}
	}, 3*time.Minute, 200*time.Millisecond)
	return st
}

// waitingForHuman: the release waits for a human and has filed its issue, the last
// thing it does before the wait.
func waitingForHuman(st release.Status) bool {
	return st.Step == release.StepWaiting && len(st.Issues) > 0
}

// fetchHistory reads a run's whole history from the server.
func fetchHistory(t *testing.T, ctx context.Context, c client.Client, id, runID string) *historypb.History {
	t.Helper()
	var events []*historypb.HistoryEvent
	it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		events = append(events, e)
	}
	return &historypb.History{Events: events}
}
