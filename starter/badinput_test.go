package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"dgpu-release/docker"
	"dgpu-release/internal/devstack"
	"dgpu-release/internal/ocp"
	"dgpu-release/internal/release"
	"dgpu-release/workflows"
)

// clearTemporalEnv unsets the variables the programs read, for the test.
func clearTemporalEnv(t *testing.T) {
	for _, k := range []string{"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY", "TEMPORAL_TLS_CA", "TEMPORAL_TLS_SERVER_NAME", "TEMPORAL_API_KEY", "KUBECONFIG"} {
		t.Setenv(k, "")
	}
}

// listing is every path under dir, or nil when dir does not exist.
func listing(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		out = append(out, p)
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	sort.Strings(out)
	return out
}

// Every flag of every command, the environment variables and the files they read: a bad
// value is refused before anything starts, with an error that names the flag, variable or
// file and the accepted form, and the state folder gains nothing.
func TestStarterRefusesBadInput(t *testing.T) {
	tmp := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(tmp, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	dir := filepath.Join(tmp, "a-folder")
	require.NoError(t, os.Mkdir(dir, 0o755))
	aFile := file("a-file", "not a folder\n")
	badKube := file("kubeconfig-bad", "garbage: [")
	pem := file("not-pem", "hello\n")
	id := release.WorkflowID("5.14.0-427.37.1.el9_4.x86_64", "1.2.0")
	live := fmt.Sprint(os.Getpid()) // a running process, so the stack file is read, not taken as stale
	remote := map[string]string{"TEMPORAL_ADDRESS": "127.0.0.1:1"}

	for _, tc := range []struct {
		name  string
		args  []string          // without --state, which the test adds unless env sets DGPU_STATE_DIR
		env   map[string]string // on top of a cleared Temporal environment
		stack string            // content of <state>/stack.json, when set
		want  []string          // each must appear in the error
	}{
		// release
		{name: "trigger missing", args: []string{"release"}, want: []string{"--trigger is required", "driver, kernel, manual"}},
		{name: "trigger unknown", args: []string{"release", "--trigger", "nightly"}, want: []string{`--trigger "nightly"`, "driver, kernel, manual"}},
		{name: "kernel", args: []string{"release", "--trigger", "manual", "--kernel", "5.14"}, want: []string{`--kernel "5.14"`, release.FormKernel}},
		{name: "kernel empty", args: []string{"release", "--trigger", "manual", "--kernel", ""}, want: []string{"--kernel is required", "or leave --kernel out"}},
		{name: "kernel unknown", args: []string{"release", "--trigger", "manual", "--kernel", "5.14.0-1.1.1.el9_4.x86_64"}, want: []string{"--kernel", "no known OpenShift release ships kernel 5.14.0-1.1.1.el9_4.x86_64", "known: 4.14.30"}},
		{name: "ocp", args: []string{"release", "--trigger", "manual", "--ocp", "4.x"}, want: []string{`--ocp "4.x"`, release.FormOpenShift}},
		{name: "ocp unknown", args: []string{"release", "--trigger", "manual", "--ocp", "4.99.0"}, want: []string{"--ocp", "4.99.0 is not known", "known: 4.14.30"}},
		{name: "ocp and kernel disagree", args: []string{"release", "--trigger", "manual", "--ocp", "4.16.3", "--kernel", "5.14.0-427.37.1.el9_4.x86_64"}, want: []string{"--ocp and --kernel"}},
		{name: "tags and version", args: []string{"release", "--trigger", "kernel", "--i915-tag", "a b", "--firmware-tag", "", "--driver-version", "1.2"},
			want: []string{`--i915-tag "a b"`, "--firmware-tag is required", `--driver-version "1.2"`, release.FormDriverVersion}},
		{name: "ref empty", args: []string{"release", "--trigger", "kernel", "--ref", ""}, want: []string{"--ref is required", release.FormRef}},
		{name: "fail-at", args: []string{"release", "--trigger", "kernel", "--fail-at", "certify"}, want: []string{`--fail-at "certify"`, "build or gpu-test"}},
		{name: "durations out of range", args: []string{"release", "--trigger", "kernel", "--require-approval", "--approval-timeout", "0s", "--human-deadline", "-1h", "--reminder", "0s"},
			want: []string{"--approval-timeout", "--human-deadline", "--reminder", "a positive duration"}},
		{name: "duration malformed", args: []string{"release", "--trigger", "kernel", "--reminder", "5"}, want: []string{`--reminder "5"`, "a duration with a unit"}},
		{name: "approval timeout without a gate", args: []string{"release", "--trigger", "kernel", "--approval-timeout", "1h"}, want: []string{"--approval-timeout", "--require-approval"}},
		{name: "bool malformed", args: []string{"release", "--trigger", "kernel", "--require-approval=maybe"}, want: []string{`--require-approval "maybe"`, "true or false"}},
		{name: "port", args: []string{"release", "--trigger", "kernel", "--temporal-port", "-1"}, want: []string{`--temporal-port "-1"`, "1 to 65535"}},
		{name: "port malformed", args: []string{"release", "--trigger", "kernel", "--registry-port", "abc"}, want: []string{`--registry-port "abc"`, "a whole number"}},
		{name: "kubeconfig missing", args: []string{"release", "--trigger", "kernel", "--kubeconfig", "/nonexistent/kubeconfig"}, want: []string{`--kubeconfig "/nonexistent/kubeconfig"`, "no such file"}},
		{name: "kubeconfig is a folder", args: []string{"release", "--trigger", "kernel", "--kubeconfig", dir}, want: []string{"--kubeconfig", "folder"}},
		{name: "kubeconfig bad content", args: []string{"release", "--trigger", "kernel", "--kubeconfig", badKube}, want: []string{"--kubeconfig", "kubeconfig-bad", "yaml"}},
		{name: "kubeconfig with another trigger", args: []string{"release", "--trigger", "manual", "--ocp", "4.16.3", "--kubeconfig", badKube}, want: []string{"--kubeconfig applies to --trigger kernel"}},
		{name: "node selector", args: []string{"release", "--trigger", "kernel", "--kubeconfig", badKube, "--node-selector", "a b="}, want: []string{`--node-selector "a b="`, "label selector"}},
		{name: "node selector alone", args: []string{"release", "--trigger", "kernel", "--node-selector", "x=y"}, want: []string{"--node-selector", "--kubeconfig"}},
		{name: "kernel needed with TEMPORAL_ADDRESS", args: []string{"release", "--trigger", "kernel"}, env: remote, want: []string{"--kernel is required with TEMPORAL_ADDRESS"}},
		{name: "stray argument", args: []string{"release", "--trigger", "kernel", "now"}, want: []string{`unknown command "now"`}},
		// global flags and environment
		{name: "log level", args: []string{"--log-level", "loud", "release", "--trigger", "kernel"}, want: []string{`--log-level "loud"`, "debug, info, warn, error"}},
		{name: "state empty", args: []string{"--state", "", "release", "--trigger", "kernel"}, want: []string{"--state is required"}},
		{name: "state is a file", args: []string{"--state", aFile, "release", "--trigger", "kernel"}, want: []string{"--state", "this is a file"}},
		{name: "DGPU_STATE_DIR is a file", args: []string{"release", "--trigger", "kernel"}, env: map[string]string{"DGPU_STATE_DIR": aFile}, want: []string{"DGPU_STATE_DIR", "this is a file"}},
		{name: "address without port", args: []string{"status", id}, env: map[string]string{"TEMPORAL_ADDRESS": "localhost"}, want: []string{`TEMPORAL_ADDRESS "localhost"`, "host:port"}},
		{name: "address with scheme", args: []string{"list"}, env: map[string]string{"TEMPORAL_ADDRESS": "http://localhost:7233"}, want: []string{"TEMPORAL_ADDRESS", "no scheme"}},
		{name: "namespace", args: []string{"list"}, env: map[string]string{"TEMPORAL_ADDRESS": "127.0.0.1:1", "TEMPORAL_NAMESPACE": "my ns"}, want: []string{`TEMPORAL_NAMESPACE "my ns"`}},
		{name: "TLS key without cert", args: []string{"list"}, env: map[string]string{"TEMPORAL_ADDRESS": "127.0.0.1:1", "TEMPORAL_TLS_KEY": pem}, want: []string{"must be set together", "only TEMPORAL_TLS_KEY"}},
		{name: "TLS cert missing", args: []string{"list"}, env: map[string]string{"TEMPORAL_ADDRESS": "127.0.0.1:1", "TEMPORAL_TLS_CERT": "/nonexistent/c.pem", "TEMPORAL_TLS_KEY": pem},
			want: []string{`TEMPORAL_TLS_CERT "/nonexistent/c.pem"`, "no such file", "PEM client certificate"}},
		{name: "TLS CA is a folder", args: []string{"list"}, env: map[string]string{"TEMPORAL_ADDRESS": "127.0.0.1:1", "TEMPORAL_TLS_CA": dir}, want: []string{"TEMPORAL_TLS_CA", "is a directory"}},
		{name: "TLS CA not PEM", args: []string{"list"}, env: map[string]string{"TEMPORAL_ADDRESS": "127.0.0.1:1", "TEMPORAL_TLS_CA": pem}, want: []string{"TEMPORAL_TLS_CA", "holds none"}},
		{name: "TLS server name", args: []string{"list"}, env: map[string]string{"TEMPORAL_ADDRESS": "127.0.0.1:1", "TEMPORAL_TLS_SERVER_NAME": "https://x"}, want: []string{"TEMPORAL_TLS_SERVER_NAME"}},
		{name: "API key with a newline", args: []string{"list"}, env: map[string]string{"TEMPORAL_ADDRESS": "127.0.0.1:1", "TEMPORAL_API_KEY": "secret-key\n"}, want: []string{"TEMPORAL_API_KEY", "no trailing newline"}},
		// the state folder's stack.json
		{name: "stack file not JSON", args: []string{"status", id}, stack: `{"pid": `, want: []string{"stack.json is not JSON", `"temporal_address"`}},
		{name: "stack file wrong type", args: []string{"status", id}, stack: `{"pid": "1"}`, want: []string{"stack.json: field pid holds a JSON string"}},
		{name: "stack file without address", args: []string{"debug", id}, stack: `{"pid": ` + live + `}`, want: []string{"stack.json", "temporal_address is required", "namespace is required"}},
		{name: "stack file bad address", args: []string{"list"}, stack: `{"pid": ` + live + `, "temporal_address": "nonsense", "namespace": "default"}`, want: []string{"stack.json", `temporal_address "nonsense"`}},
		// status, debug
		{name: "status ID empty", args: []string{"status", ""}, want: []string{"ID is required", "release/<kernel>/<driver-version>"}},
		{name: "status ID of a matrix", args: []string{"status", "matrix/1.2.0"}, want: []string{`ID "matrix/1.2.0"`, "release/<kernel>/<driver-version>"}},
		{name: "debug ID", args: []string{"debug", "release/5.14/1.2.0"}, want: []string{`ID "release/5.14/1.2.0"`}},
		// signal
		{name: "signal action", args: []string{"signal", id, "restart"}, want: []string{`action "restart"`, "retry, escalate, abort, approve"}},
		{name: "signal ID", args: []string{"signal", "5.14.0-427.37.1.el9_4.x86_64", "retry"}, want: []string{"ID", "release/<kernel>/<driver-version>"}},
		{name: "retry ref", args: []string{"signal", id, "retry", "--ref", "bad ref"}, want: []string{"--ref", `dockerfile_ref "bad ref" is not valid`, release.FormRef}},
		{name: "retry ref empty", args: []string{"signal", id, "retry", "--ref", ""}, want: []string{"--ref", "dockerfile_ref is required"}},
		{name: "retry half a driver set", args: []string{"signal", id, "retry", "--i915-tag", "I915_1"}, want: []string{"--i915-tag and --firmware-tag go together"}},
		{name: "retry bad driver set", args: []string{"signal", id, "retry", "--i915-tag", "a b", "--firmware-tag", ""}, want: []string{"--i915-tag", "driver.i915_tag", "--firmware-tag", "driver.firmware_tag is required"}},
		{name: "abort without reason", args: []string{"signal", id, "abort"}, want: []string{"--reason", "reason is required"}},
		{name: "escalate blank reason", args: []string{"signal", id, "escalate", "--reason", "  ", "--by", ""}, want: []string{"--reason", "--by is required"}},
		{name: "abort with retry flags", args: []string{"signal", id, "abort", "--reason", "x", "--ref", "main"}, want: []string{"--ref, --i915-tag and --firmware-tag apply to retry only"}},
		// list
		{name: "list filters", args: []string{"list", "--kernel", "x", "--ocp", "", "--driver-version", "1", "--step", "bogus", "--status", "done"},
			want: []string{`--kernel "x"`, "--ocp is required", `--driver-version "1"`, `--step "bogus"`, "queued, resolve", `--status "done"`}},
		{name: "list limit", args: []string{"list", "--limit", "0"}, want: []string{`--limit "0"`, "1 to 1000"}},
		{name: "list limit too big", args: []string{"list", "--limit", "3000000000"}, want: []string{`--limit "3000000000"`, "1 to 1000"}},
		// watch
		{name: "watch intervals", args: []string{"watch", "--kernel-interval", "10ms", "--merge-poll", "0s", "--max-in-flight", "0"}, want: []string{`--kernel-interval "10ms"`, "--merge-poll", "--max-in-flight", "at least 1s"}},
		{name: "watch once with intervals", args: []string{"watch", "--once", "--driver-interval", "1h"}, want: []string{"--driver-interval", "--once"}},
		{name: "watch port", args: []string{"watch", "--ui-port", "99999"}, want: []string{`--ui-port "99999"`}},
		{name: "watch duration malformed", args: []string{"watch", "--merge-poll", "soon"}, want: []string{`--merge-poll "soon"`, "a duration with a unit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearTemporalEnv(t)
			state := filepath.Join(t.TempDir(), "state")
			t.Setenv("DGPU_STATE_DIR", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if tc.stack != "" {
				require.NoError(t, os.MkdirAll(state, 0o755))
				require.NoError(t, os.WriteFile(devstack.InfoFile(state), []byte(tc.stack), 0o644))
			}
			before := listing(t, state)
			args := tc.args
			if tc.env["DGPU_STATE_DIR"] == "" && !strings.Contains(strings.Join(args, " "), "--state") {
				args = append([]string{"--state", state}, args...)
			}
			for i, a := range args {
				if a == "release" || a == "watch" {
					// Free ports and no web UI, should a case get that far; the case's own flags,
					// later on the line, win.
					args = append(append(append([]string{}, args[:i+1]...), "--temporal-port", "0", "--ui-port", "0", "--registry-port", "0", "--no-ui"), args[i+1:]...)
					break
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var out bytes.Buffer
			root := newRoot(&out, &out)
			root.SetArgs(args)
			err := root.ExecuteContext(ctx)
			require.Error(t, err, "the starter must refuse %v; it printed:\n%s", args, out.String())
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, out.String(), "Starting the embedded default", "nothing starts")
			assert.Equal(t, before, listing(t, state), "the state folder gains nothing")
		})
	}
}

// The program exits non-zero with the error on stderr.
func TestStarterExitsNonZeroOnBadInput(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	cmd := exec.Command(os.Args[0], "--state", state, "release", "--trigger", "kernel", "--kernel", "5.14")
	cmd.Env = append(os.Environ(), "STARTER_TEST_AS_MAIN=1", "TEMPORAL_ADDRESS=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 1, exit.ExitCode())
	assert.Contains(t, stderr.String(), `error: --kernel "5.14" is not valid`)
	assert.Empty(t, stdout.String())
	assert.NoDirExists(t, state)
}

// A release that waits for a human after its GPU test failed, on the embedded server, is
// steered with bad input of every kind: each update with a bad payload is refused by the
// validator, naming the field, and leaves no event in the history; each raw signal (as the
// Temporal UI sends them) with a bad or wrongly typed payload is recorded as rejected while
// the release keeps waiting. After all of it a good retry signal finishes the release, and
// actions sent to the finished release are refused.
func TestBadHumanInputLeavesAWaitingReleaseAsItWas(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	clearTemporalEnv(t)
	state := t.TempDir()
	_, c, _, stop := stackWithWorker(t, ctx, devstack.Config{StateDir: state, NoUI: true})
	defer stop()

	rel, err := ocp.Find(ocp.RehearsalKernels(), "4.16.3", "")
	require.NoError(t, err)
	df, err := docker.Parse(docker.DriverDockerfile)
	require.NoError(t, err)
	i915, fw, version := df.PinnedDriver()
	req := release.Request{Trigger: release.TriggerManual, Kernel: rel.Kernel, OpenShiftVersion: rel.OpenShift, DockerfileRef: "main",
		Driver: release.DriverSet{I915Tag: i915, FirmwareTag: fw, DriverVersion: version}, Rehearsal: release.RehearsalOptions{FailAt: release.StepGPUTest}}
	id := release.WorkflowID(req.Kernel, version)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: release.TaskQueue}, workflows.Release, req)
	require.NoError(t, err)

	status := func() release.Status {
		t.Helper()
		v, err := c.QueryWorkflow(ctx, id, "", release.QueryStatus)
		require.NoError(t, err)
		var st release.Status
		require.NoError(t, v.Get(&st))
		return st
	}
	waitForStatus(t, ctx, c, id, waitingForHuman) // after the GPU test failed
	waiting := status()
	updateEvents := func() int {
		t.Helper()
		n := 0
		it := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			e, err := it.Next()
			require.NoError(t, err)
			switch e.GetEventType() {
			case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED,
				enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
				n++
			}
		}
		return n
	}
	require.Zero(t, updateEvents())

	sameDriver := func(i915 string) map[string]any {
		return map[string]any{"i915_tag": i915, "firmware_tag": fw, "driver_version": version}
	}
	bad := []struct {
		action  string
		payload any
		field   string // named in the refusal
	}{
		{release.ActionRetry, release.RetryInput{DockerfileRef: "bad ref"}, `dockerfile_ref "bad ref"`},
		{release.ActionRetry, release.RetryInput{Driver: &release.DriverSet{I915Tag: "a b", FirmwareTag: fw, DriverVersion: version}}, `driver.i915_tag "a b"`},
		{release.ActionRetry, release.RetryInput{Driver: &release.DriverSet{}}, "driver.i915_tag is required"},
		{release.ActionRetry, release.RetryInput{Driver: &release.DriverSet{I915Tag: i915, FirmwareTag: fw, DriverVersion: "9.9.9"}}, `driver.driver_version "9.9.9"`},
		{release.ActionRetry, map[string]any{"dockerfileref": "main"}, `dockerfileref "\"main\""`},
		{release.ActionRetry, map[string]any{"reason": 5}, `reason "5"`},
		{release.ActionRetry, map[string]any{"driver": "I915_1"}, `driver "\"I915_1\""`},
		{release.ActionRetry, map[string]any{"driver": sameDriver(i915), "by": false}, `by "false"`},
		{release.ActionRetry, "retry please", "retry input"},
		{release.ActionEscalate, release.ReasonInput{}, "reason is required"},
		{release.ActionEscalate, map[string]any{"reason": []string{"i915 misses a symbol"}}, "reason "},
		{release.ActionAbort, release.ReasonInput{Reason: "   "}, "reason is required"},
		{release.ActionAbort, map[string]any{"reason": "superseded", "because": "x"}, `because "\"x\""`},
		{release.ActionApprove, release.ReasonInput{By: "alice"}, "no approval gate"},
	}

	// Updates, as the starter sends them: refused, and no trace.
	for _, b := range bad {
		err := func() error {
			h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: b.action, Args: []any{b.payload}, WaitForStage: client.WorkflowUpdateStageCompleted})
			if err != nil {
				return err
			}
			return h.Get(ctx, nil)
		}()
		if assert.Error(t, err, "update %s %v is refused", b.action, b.payload) {
			assert.Contains(t, err.Error(), b.field, "update %s %v", b.action, b.payload)
		}
	}
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: "restart", WaitForStage: client.WorkflowUpdateStageCompleted})
	if err == nil {
		err = h.Get(ctx, nil)
	}
	if assert.Error(t, err, "an update name that is not an action is refused") {
		assert.Contains(t, err.Error(), "unknown update")
	}
	assert.Zero(t, updateEvents(), "refused updates leave no event in the history")
	assert.Equal(t, waiting, status(), "refused updates change nothing")

	// Raw signals, as the Temporal UI sends them: each recorded as rejected, naming the field.
	for _, b := range bad {
		require.NoError(t, c.SignalWorkflow(ctx, id, "", b.action, b.payload))
	}
	var st release.Status
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		v, err := c.QueryWorkflow(ctx, id, "", release.QueryStatus)
		if assert.NoError(ct, err) && assert.NoError(ct, v.Get(&st)) {
			assert.Len(ct, st.Actions, len(waiting.Actions)+len(bad))
		}
	}, time.Minute, 100*time.Millisecond, "every bad signal is recorded")
	rejected := st.Actions[len(waiting.Actions):]
	for i, b := range bad {
		assert.Equal(t, b.action+" (rejected)", rejected[i].Action)
		assert.Contains(t, rejected[i].Reason, b.field, "signal %s %v", b.action, b.payload)
	}
	assert.Equal(t, release.StepWaiting, st.Step, "the release keeps waiting")
	assert.Equal(t, waiting.Round, st.Round)
	assert.Equal(t, waiting.Attempts, st.Attempts)
	assert.Equal(t, waiting.Waiting, st.Waiting)
	assert.Equal(t, waiting.Issues, st.Issues)
	assert.Equal(t, waiting.Evidence, st.Evidence)
	assert.Equal(t, waiting.DebugAttach, st.DebugAttach)
	assert.Zero(t, updateEvents())

	// A good retry, as a raw signal after all of that, finishes the release.
	require.NoError(t, c.SignalWorkflow(ctx, id, "", release.ActionRetry, map[string]any{"reason": "the node was flaky", "by": "ui-user"}))
	var rec release.Record
	require.NoError(t, run.Get(ctx, &rec))
	assert.Equal(t, release.OutcomeReleased, rec.Outcome)
	assert.Equal(t, 2, rec.Round)
	last := rec.Actions[len(rec.Actions)-1]
	assert.Equal(t, release.HumanAction{Action: release.ActionRetry, At: last.At, By: "ui-user", Reason: "the node was flaky"}, last)

	// The release has ended: an action now is refused, and says so.
	out, err := starter(t, ctx, state, "signal", id, "abort", "--reason", "too late")
	require.Error(t, err, out)
	t.Logf("an action on the ended release: %v", err)
	assert.Contains(t, err.Error(), "no such release is running")
	assert.Error(t, c.SignalWorkflow(ctx, id, "", release.ActionRetry, release.RetryInput{}), "a signal to an ended release is refused")
}
