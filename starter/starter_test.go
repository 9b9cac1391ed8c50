package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/retry"

	"dgpu-release/internal/cluster"
	"dgpu-release/internal/devstack"
	"dgpu-release/internal/kubetest"
	"dgpu-release/internal/registry"
	"dgpu-release/internal/rehearsal"
	"dgpu-release/internal/release"
	"dgpu-release/internal/wiring"
	"dgpu-release/workflows"
)

var recordHistory = flag.Bool("record-history", false, "write the history of the retried release to ../workflows/testdata")

// TestMain lets the test binary act as the starter program, so a test can run a second
// starter process the way a person in another terminal would.
func TestMain(m *testing.M) {
	if os.Getenv("STARTER_TEST_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	if os.Getenv(envFaultWorker) == "1" {
		if err := faultWorkerMain(); err != nil {
			fmt.Fprintln(os.Stderr, "fault worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// starter runs the CLI in this process with a private state folder and free ports.
func starter(t *testing.T, ctx context.Context, state string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := newRoot(&out, &out)
	full := append([]string{"--state", state}, args...)
	if len(args) > 0 && args[0] == "release" {
		full = append(full, "--temporal-port", "0", "--ui-port", "0", "--registry-port", "0", "--no-ui")
	}
	root.SetArgs(full)
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

func readRecord(t *testing.T, state, id string) release.Record {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, "records", strings.NewReplacer("/", "_", ":", "_").Replace(id)+".json"))
	require.NoError(t, err)
	var rec release.Record
	require.NoError(t, json.Unmarshal(b, &rec))
	return rec
}

func gitShow(t *testing.T, state, what string) string {
	t.Helper()
	out, err := exec.Command("git", "-C", filepath.Join(state, "forge", "repo"), "show", what).CombinedOutput()
	require.NoError(t, err, string(out))
	return string(out)
}

func gitRevParse(t *testing.T, state string) string {
	t.Helper()
	out, err := exec.Command("git", "-C", filepath.Join(state, "forge", "repo"), "rev-parse", "HEAD").CombinedOutput()
	require.NoError(t, err, string(out))
	return string(out)
}

func TestReleaseEndToEndOnTheEmbeddedStack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	state := t.TempDir()

	out, err := starter(t, ctx, state, "release", "--trigger", "kernel")
	require.NoError(t, err, out)
	assert.Contains(t, out, "rehearsal stand-in", "stand-ins say what they are")
	id := release.WorkflowID("5.14.0-427.37.1.el9_4.x86_64", "1.2.0")
	assert.Contains(t, out, id+": RELEASED")
	rec := readRecord(t, state, id)
	require.Equal(t, release.OutcomeReleased, rec.Outcome)
	require.NotNil(t, rec.Published)
	require.NotNil(t, rec.Certification)
	assert.True(t, rec.Certification.Passed)
	assert.Equal(t, "root", rec.Certification.Policy)
	assert.Len(t, rec.Certification.Results.Passed, 9, "all nine checks of the root policy pass on the rehearsal image")
	assert.Empty(t, rec.Certification.NotRun)

	// The registry holds the image under its tag, by the recorded digest (read back from
	// the state folder with a fresh registry server: it survived the stack's stop).
	h, err := registry.NewServer(filepath.Join(state, "registry"), nil)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	host := strings.TrimPrefix(srv.URL, "http://")
	digest, ok, err := registry.NewClient().Digest(ctx, host+"/"+wiring.ReleasePath+":"+rec.Published.Tag)
	require.NoError(t, err)
	require.True(t, ok, "the release repository holds the tag")
	assert.Equal(t, rec.Published.Digest, digest)
	img, err := registry.NewClient().Image(ctx, host+"/"+wiring.ReleasePath+"@"+digest)
	require.NoError(t, err)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, "1.2.0", cf.Config.Labels["version"], "labels come from the Dockerfile with the build args")
	assert.Equal(t, "5.14.0-427.37.1.el9_4.x86_64", cf.Config.Labels["release"])
	stagingTags, err := registry.NewClient().Tags(ctx, host+"/"+wiring.StagingPath)
	require.NoError(t, err)
	srv.Close()

	// The release table row is committed.
	table := gitShow(t, state, "HEAD:release/README.md")
	assert.Contains(t, table, "| `"+rec.Published.Repository+":1.2.0-5.14.0-427.37.1.el9_4.x86_64` | i915 `I915_24WW30.4_803.75_23.10.54_231129.76`, firmware `24WW20.5_881` | 9.4 | 4.17.0 |")
	assert.Equal(t, rec.TableCommit, strings.TrimSpace(gitRevParse(t, state)))

	// The second run of the same release builds nothing.
	out, err = starter(t, ctx, state, "release", "--trigger", "kernel")
	require.NoError(t, err, out)
	rec2 := readRecord(t, state, id)
	assert.Equal(t, release.OutcomeAlreadyReleased, rec2.Outcome)
	assert.Equal(t, rec.Published.Digest, rec2.Published.Digest)
	require.Len(t, rec2.Attempts, 1)
	assert.Equal(t, release.StepResolve, rec2.Attempts[0].Step)

	h, err = registry.NewServer(filepath.Join(state, "registry"), nil)
	require.NoError(t, err)
	srv = httptest.NewServer(h)
	defer srv.Close()
	tags, err := registry.NewClient().Tags(ctx, strings.TrimPrefix(srv.URL, "http://")+"/"+wiring.StagingPath)
	require.NoError(t, err)
	assert.Equal(t, stagingTags, tags, "no new build was staged")
}

func TestFailedReleaseIsRetriedFromASecondProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	state := t.TempDir()
	id := release.WorkflowID("5.14.0-427.26.1.el9_4.x86_64", "1.2.0")

	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := starter(t, ctx, state, "release", "--trigger", "manual", "--ocp", "4.16.3", "--fail-at", "gpu-test")
		done <- result{out, err}
	}()

	// A second process: this test binary run as the starter, finding the stack through
	// the state folder, as a person in another terminal would.
	second := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, os.Args[0], append([]string{"--state", state}, args...)...)
		cmd.Env = append(os.Environ(), "STARTER_TEST_AS_MAIN=1")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		out, err := second("status", id, "--json")
		if !assert.NoError(c, err, out) {
			return
		}
		var st release.Status
		if assert.NoError(c, json.Unmarshal([]byte(out), &st)) {
			assert.Equal(c, release.StepWaiting, st.Step)
		}
	}, 3*time.Minute, 200*time.Millisecond)

	out, err := second("status", id)
	require.NoError(t, err, out)
	assert.Contains(t, out, "✖ gpu-test failed")
	assert.Contains(t, out, "clinfo: Number of platforms 0")
	assert.Contains(t, out, "debug:  oc rsh -n intel-dgpu-debug pod/")

	out, err = second("debug", id)
	require.NoError(t, err, out)
	assert.True(t, strings.HasPrefix(out, "oc rsh -n intel-dgpu-debug pod/dgpu-debug-"), out)
	debugFiles, _ := filepath.Glob(filepath.Join(state, "debug", "*.yaml"))
	assert.Len(t, debugFiles, 1, "the debug workload's manifests are rendered")

	out, err = second("list", "--step", "waiting-for-human")
	require.NoError(t, err, out)
	assert.Contains(t, out, id)

	out, err = second("signal", id, "abort")
	require.Error(t, err, "abort without a reason is refused")
	assert.Contains(t, out, "reason is required")
	out, err = second("signal", id, "retry", "--ref", "bad ref")
	require.Error(t, err)
	assert.Contains(t, out, `dockerfile_ref "bad ref" is not valid`)

	out, err = second("signal", id, "retry", "--reason", "node was flaky", "--by", "alice")
	require.NoError(t, err, out)
	assert.Contains(t, out, "retry accepted")

	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		t.Fatal("the release did not finish after retry")
	}
	require.NoError(t, r.err, r.out)
	assert.Contains(t, r.out, id+": RELEASED")
	rec := readRecord(t, state, id)
	assert.Equal(t, 2, rec.Round)
	assert.Len(t, rec.Issues, 1)
	assert.Equal(t, "alice", rec.Actions[len(rec.Actions)-1].By)
	debugFiles, _ = filepath.Glob(filepath.Join(state, "debug", "*.yaml"))
	assert.Empty(t, debugFiles, "the debug workload is removed after success")
	issue, err := os.ReadFile(strings.TrimPrefix(rec.Issues[0], "file://"))
	require.NoError(t, err)
	assert.Contains(t, string(issue), "state: closed")
	assert.Contains(t, string(issue), "The release ended as **released**")
}

// The history the real server recorded replays against the current workflow code; with
// -record-history it is kept under workflows/testdata for the replay tests there.
func TestRecordedHistoryReplays(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	state := t.TempDir()
	id := release.WorkflowID("5.14.0-284.73.1.el9_2.x86_64", "1.2.0")
	done := make(chan error, 1)
	go func() {
		out, err := starter(t, ctx, state, "release", "--trigger", "manual", "--ocp", "4.14.30", "--fail-at", "build", "--require-approval")
		if err != nil {
			err = fmt.Errorf("%w: %s", err, out)
		}
		done <- err
	}()
	// Steer it in process: retry after the failure, then approve at the gate.
	var c client.Client
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		var err error
		if c == nil {
			c, err = (&app{stateDir: state}).dial(ctx)
			if !assert.NoError(ct, err) {
				return
			}
		}
		v, err := c.QueryWorkflow(ctx, id, "", release.QueryStatus)
		if !assert.NoError(ct, err) {
			return
		}
		var st release.Status
		require.NoError(t, v.Get(&st))
		assert.Equal(ct, release.StepWaiting, st.Step)
	}, 3*time.Minute, 200*time.Millisecond)
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: release.ActionRetry, Args: []any{release.RetryInput{Reason: "replay test"}}, WaitForStage: client.WorkflowUpdateStageCompleted})
	require.NoError(t, err)
	require.NoError(t, h.Get(ctx, nil))
	// Approve until the release leaves the gate; it may finish (and its process stop the
	// stack) between two looks, which also means it passed.
	var releaseErr error
	finished := false
	deadline := time.Now().Add(2 * time.Minute)
	for !finished {
		select {
		case releaseErr = <-done:
			finished = true
			continue
		default:
		}
		_ = c.SignalWorkflow(ctx, id, "", release.ActionApprove, release.ReasonInput{By: "replay-test"})
		require.True(t, time.Now().Before(deadline), "the release did not pass the approval gate")
		time.Sleep(300 * time.Millisecond)
	}
	c.Close()
	require.NoError(t, releaseErr)

	// Start the stack again from its state folder and read the history back.
	stack, err := devstack.Start(ctx, devstack.Config{StateDir: state, NoUI: true})
	require.NoError(t, err)
	defer stack.Stop()
	c, err = client.DialContext(ctx, client.Options{HostPort: stack.TemporalAddress, Namespace: stack.Namespace})
	require.NoError(t, err)
	defer c.Close()
	var events []*historypb.HistoryEvent
	it := c.GetWorkflowHistory(ctx, id, "", false, 0)
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		events = append(events, e)
	}
	hist := &historypb.History{Events: events}
	replayer := worker.NewWorkflowReplayer()
	replayer.RegisterWorkflow(workflows.Release)
	require.NoError(t, replayer.ReplayWorkflowHistory(nil, hist), "the recorded history replays")
	if *recordHistory {
		b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(hist)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile("../workflows/testdata/release_fail_retry_approve.json", b, 0o644))
	}
}

// A Temporal Schedule on the embedded server fires the kernel watch, which starts
// releases for the kernels that have none; overlapping runs start nothing twice.
func TestScheduledKernelWatchStartsReleases(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	state := t.TempDir()
	a := &app{out: io.Discard, errOut: io.Discard, stateDir: state}
	sess, err := a.connect(ctx, true, false)
	require.NoError(t, err)
	defer sess.close()
	require.NotNil(t, sess.set, "this test runs the embedded default in process")

	verb, err := upsertSchedule(ctx, sess.c, release.KernelWatchScheduleID, release.KernelWatchID, 2*time.Second, workflows.KernelWatch, release.KernelWatchRequest{DockerfileRef: "main", MaxStarts: 2})
	require.NoError(t, err)
	assert.Equal(t, "created", verb)
	verb, err = upsertSchedule(ctx, sess.c, release.KernelWatchScheduleID, release.KernelWatchID, 2*time.Second, workflows.KernelWatch, release.KernelWatchRequest{DockerfileRef: "main", MaxStarts: 2})
	require.NoError(t, err)
	assert.Equal(t, "updated", verb, "a second watch command updates the schedule")

	// Every sample kernel gets released by the fires of the schedule, two at a time.
	var ids []string
	rels, err := sess.kernels.Releases(ctx)
	require.NoError(t, err)
	for _, r := range rels {
		ids = append(ids, release.WorkflowID(r.Kernel, "1.2.0"))
	}
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for _, id := range ids {
			var rec release.Record
			ctxQ, cancelQ := context.WithTimeout(ctx, 2*time.Second)
			err := sess.c.GetWorkflow(ctxQ, id, "").Get(ctxQ, &rec)
			cancelQ()
			if assert.NoError(c, err, id) {
				assert.Equal(c, release.OutcomeReleased, rec.Outcome, id)
			}
		}
	}, 2*time.Minute, time.Second)

	// No release ran twice: one run per workflow ID.
	for _, id := range ids {
		resp, err := sess.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: fmt.Sprintf("WorkflowId = '%s'", id)})
		require.NoError(t, err)
		assert.Len(t, resp.Executions, 1, "%s ran once", id)
	}
	require.NoError(t, sess.c.ScheduleClient().GetHandle(ctx, release.KernelWatchScheduleID).Delete(ctx))
}

// A whole release with the cluster adapters for build, GPU test and debug, against the
// loopback control plane: a stand-in build controller completes OpenShift Builds (pushing
// a real image to the embedded registry) and a stand-in KMM labels the canary node; the
// scheduler and kwok run the test Job. Certify, publish and table run as in the embedded default.
func TestReleaseWithClusterAdapters(t *testing.T) {
	kc := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	kernel := "5.14.0-427.37.1.el9_4.x86_64"
	kc.Namespace(t, "dgpu-release")
	kc.AddNode(t, "canary-1", kernel, map[string]string{"intel.feature.node.kubernetes.io/gpu": "true", "dgpu-release/canary": "true"}, 1)
	kc.ContainerLog(t, "gpu-test", "Number of platforms                               1", "  Platform Name   Intel(R) OpenCL Graphics")

	state := t.TempDir()
	stack, err := devstack.Start(ctx, devstack.Config{StateDir: state, NoUI: true})
	require.NoError(t, err)
	defer stack.Stop()
	set, err := wiring.Rehearsal(ctx, wiring.Options{StateDir: state, RegistryHost: stack.RegistryHost, Cluster: &wiring.ClusterOptions{
		Kubeconfig: kc.Kubeconfig, BuildNamespace: "dgpu-release", GitURI: "https://example.com/dgpu-release.git",
		TestNamespace: "dgpu-release", TestImage: "example.com/gpu-test:ok", DebugNamespace: "intel-dgpu-debug"}})
	require.NoError(t, err)
	for _, s := range set.StandIns() {
		assert.NotContains(t, s, "no GPU node", "the GPU test is not a stand-in here")
	}
	c, err := client.DialContext(ctx, client.Options{HostPort: stack.TemporalAddress, Namespace: stack.Namespace})
	require.NoError(t, err)
	defer c.Close()
	w := worker.New(c, release.TaskQueue, worker.Options{})
	set.Register(w)
	require.NoError(t, w.Start())
	defer w.Stop()

	cl, err := cluster.New(kc.Config)
	require.NoError(t, err)
	go buildController(ctx, t, cl, set, "dgpu-release")
	go kmmOperator(ctx, cl, "dgpu-release", "canary-1")

	// The kernel trigger with a kubeconfig: the kernels come from the GPU nodes.
	var out bytes.Buffer
	a := &app{out: &out, errOut: &out, stateDir: state}
	f := releaseFlags{trigger: "kernel", ref: "main", kubeconfig: kc.Kubeconfig, nodeSelector: "intel.feature.node.kubernetes.io/gpu=true"}
	req := release.Request{Trigger: release.TriggerKernel, DockerfileRef: "main",
		Driver: release.DriverSet{I915Tag: "I915_24WW30.4_803.75_23.10.54_231129.76", FirmwareTag: "24WW20.5_881", DriverVersion: "1.2.0"}}
	require.NoError(t, a.clusterKernels(ctx, c, set.Kernels, f, req), out.String())
	text := out.String()
	assert.Contains(t, text, "Kernel "+kernel+" on canary-1")
	assert.Contains(t, text, release.WorkflowID(kernel, "1.2.0")+": RELEASED")
	assert.Contains(t, text, "OpenShift build intel-dgpu-driver-")
	assert.Contains(t, text, "GPU test passed on canary-1")
	builds, err := cl.Dynamic.Resource(cluster.BuildGVR).Namespace("dgpu-release").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	assert.Len(t, builds.Items, 1)
	mods, err := cl.Dynamic.Resource(cluster.ModuleGVR).Namespace("dgpu-release").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	assert.Empty(t, mods.Items, "the test Module is gone")
}

// buildController stands in for OpenShift's build controller: for each new Build it
// assembles the image from the Dockerfile at the Build's commit, pushes it where the Build
// says, and completes the Build with the pushed digest.
func buildController(ctx context.Context, t *testing.T, cl *cluster.Client, set *wiring.Set, ns string) {
	builder := &rehearsal.Builder{Registry: registry.NewClient()}
	res := cl.Dynamic.Resource(cluster.BuildGVR).Namespace(ns)
	for ctx.Err() == nil {
		list, err := res.List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, b := range list.Items {
				if phase, _, _ := unstructured.NestedString(b.Object, "status", "phase"); phase != "" {
					continue
				}
				commit, _, _ := unstructured.NestedString(b.Object, "spec", "source", "git", "ref")
				to, _, _ := unstructured.NestedString(b.Object, "spec", "output", "to", "name")
				argList, _, _ := unstructured.NestedSlice(b.Object, "spec", "strategy", "dockerStrategy", "buildArgs")
				labels, _, _ := unstructured.NestedSlice(b.Object, "spec", "output", "imageLabels")
				args := map[string]string{}
				for _, a := range argList {
					m := a.(map[string]any)
					args[m["name"].(string)] = m["value"].(string)
				}
				df, _, err := set.Forge.Dockerfile(ctx, commit)
				if err != nil {
					t.Logf("build controller: %v", err)
					continue
				}
				i := strings.LastIndex(to, ":")
				out, err := builder.Build(ctx, release.BuildSpec{Name: b.GetName(), Dockerfile: df, DockerfileCommit: commit, Args: args,
					StagingRepo: to[:i], Tag: to[i+1:], BuildKey: release.BuildKey(labels[0].(map[string]any)["value"].(string))}, func(string) {})
				if err != nil {
					t.Logf("build controller: %v", err)
					continue
				}
				b.Object["status"] = map[string]any{"phase": "Complete", "output": map[string]any{"to": map[string]any{"imageDigest": out.Image.Digest}}}
				if _, err := res.Update(ctx, &b, metav1.UpdateOptions{}); err != nil {
					t.Logf("build controller: %v", err)
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// kmmOperator stands in for KMM: it labels the node ready for every Module.
func kmmOperator(ctx context.Context, cl *cluster.Client, ns, node string) {
	for ctx.Err() == nil {
		mods, err := cl.Dynamic.Resource(cluster.ModuleGVR).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, m := range mods.Items {
				_ = retry.RetryOnConflict(retry.DefaultRetry, func() error {
					n, err := cl.Kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
					if err != nil {
						return err
					}
					if _, ok := n.Labels[cluster.ReadyLabel(ns, m.GetName())]; ok {
						return nil
					}
					n.Labels[cluster.ReadyLabel(ns, m.GetName())] = ""
					_, err = cl.Kube.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
					return err
				})
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
}
