package main

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"dgpu-release/internal/devstack"
	"dgpu-release/internal/release"
	"dgpu-release/internal/wiring"
	"dgpu-release/workflows"
)

func portOf(t *testing.T, hostPort string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostPort)
	require.NoError(t, err)
	n, err := strconv.Atoi(p)
	require.NoError(t, err)
	return n
}

// Stop the embedded server while releases wait for a human (after a failure, and at the
// approval gate) and start it again from its state folder: the waits, the reminder timer
// and the queries survive, and the humans' answers finish both releases.
func TestReleasesWaitingForAHumanSurviveAServerRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	state := t.TempDir()
	stack, c, set, stop := stackWithWorker(t, ctx, devstack.Config{StateDir: state, NoUI: true})
	driver := pinnedDriver(t)

	failed := release.Request{Trigger: release.TriggerManual, OpenShiftVersion: "4.16.3", Driver: driver, DockerfileRef: "main",
		ReminderInterval: 3 * time.Second, HumanDeadline: time.Hour, Rehearsal: release.RehearsalOptions{FailAt: release.StepGPUTest}}
	gated := release.Request{Trigger: release.TriggerManual, OpenShiftVersion: "4.17.0", Driver: driver, DockerfileRef: "main",
		RequireApproval: true, ApprovalTimeout: time.Hour}
	failedID := release.WorkflowID("5.14.0-427.26.1.el9_4.x86_64", driver.DriverVersion)
	gatedID := release.WorkflowID("5.14.0-427.37.1.el9_4.x86_64", driver.DriverVersion)
	for id, req := range map[string]release.Request{failedID: failed, gatedID: gated} {
		_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: release.TaskQueue}, workflows.Release, req)
		require.NoError(t, err)
	}
	before := map[string]release.Status{
		failedID: waitForStatus(t, ctx, c, failedID, waitingForHuman),
		gatedID:  waitForStatus(t, ctx, c, gatedID, func(st release.Status) bool { return st.Step == release.StepApprove && st.Waiting != "" }),
	}
	reminders := func() int {
		iss, err := set.Forge.Issues(wiring.DefaultProjectRepo)
		require.NoError(t, err)
		require.Len(t, iss, 1)
		b, err := os.ReadFile(strings.TrimPrefix(iss[0].URL, "file://"))
		require.NoError(t, err)
		return strings.Count(string(b), "Reminder: this release has waited")
	}
	// The reminder timer runs before the restart.
	require.Eventually(t, func() bool { return reminders() >= 1 }, time.Minute, 200*time.Millisecond)

	// Stop everything: worker, server, registry. Nothing runs for a while.
	frontend, reg := portOf(t, stack.TemporalAddress), portOf(t, stack.RegistryHost)
	stop()
	down := reminders()
	time.Sleep(4 * time.Second)
	assert.Equal(t, down, reminders(), "nothing reminds while the server is down")

	// Start again from the state folder, on the same ports (the staged image refs in the
	// releases' state name the registry's address, as they would a real registry's).
	stack, c, _, stop = stackWithWorker(t, ctx, devstack.Config{StateDir: state, NoUI: true, FrontendPort: frontend, RegistryPort: reg})
	defer stop()
	for _, id := range []string{failedID, gatedID} {
		st, err := statusOf(t, ctx, c, id)
		require.NoError(t, err, id)
		assert.Equal(t, before[id].Step, st.Step, id)
		assert.Equal(t, before[id].Waiting, st.Waiting, id)
		assert.Equal(t, before[id].Round, st.Round, id)
		assert.Equal(t, len(before[id].Attempts), len(st.Attempts), id)
		assert.Equal(t, before[id].Staged, st.Staged, id)
	}
	// The reminder timer fires again after the restart.
	require.Eventually(t, func() bool { return reminders() > down }, time.Minute, 200*time.Millisecond, "a reminder after the restart")

	// The humans answer: retry the failed one, approve the gated one.
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: failedID, UpdateName: release.ActionRetry,
		Args: []any{release.RetryInput{Reason: "node fixed", By: "restart-test"}}, WaitForStage: client.WorkflowUpdateStageCompleted})
	require.NoError(t, err)
	require.NoError(t, h.Get(ctx, nil))
	require.NoError(t, c.SignalWorkflow(ctx, gatedID, "", release.ActionApprove, release.ReasonInput{By: "restart-test", Reason: "looks good"}))
	for _, id := range []string{failedID, gatedID} {
		var rec release.Record
		require.NoError(t, c.GetWorkflow(ctx, id, "").Get(ctx, &rec), id)
		assert.Equal(t, release.OutcomeReleased, rec.Outcome, id)
	}
}
