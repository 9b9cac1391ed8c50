package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"dgpu-release/activities"
	"dgpu-release/docker"
	"dgpu-release/internal/catalog"
	"dgpu-release/internal/devstack"
	"dgpu-release/internal/forge"
	"dgpu-release/internal/registry"
	"dgpu-release/internal/release"
	"dgpu-release/internal/wiring"
	"dgpu-release/workflows"
)

// The fault worker: this test binary run as a worker process whose activities stop dead
// at chosen points, after their side effect is done and before they report it, so that
// the test can kill the process (SIGKILL, no graceful stop) at the worst moment.
const (
	envFaultWorker = "DGPU_TEST_FAULT_WORKER"
	envFaultState  = "DGPU_TEST_FAULT_STATE"
	envFaultReg    = "DGPU_TEST_FAULT_REGISTRY"
	envFaultAddr   = "DGPU_TEST_FAULT_TEMPORAL"
	envFaultNS     = "DGPU_TEST_FAULT_NAMESPACE"
	// envFaultHold lists point=key pairs: the activity at point holds when the thing it
	// works on names key (a kernel); "bump" holds every bump.
	envFaultHold = "DGPU_TEST_FAULT_HOLD"
)

// holder stops an activity at a point: it writes <state>/held/<point> and blocks until
// the process is killed.
type holder struct {
	dir   string
	holds map[string]string
}

func (h holder) hold(point, what string) {
	key, ok := h.holds[point]
	if !ok || !strings.Contains(what, key) {
		return
	}
	_ = os.MkdirAll(h.dir, 0o755)
	_ = os.WriteFile(filepath.Join(h.dir, point), []byte(what+"\n"), 0o644)
	select {} // until SIGKILL
}

type heldBuilder struct {
	activities.Builder
	h holder
}

func (b heldBuilder) Build(ctx context.Context, spec release.BuildSpec, p release.Progress) (release.BuildOutput, error) {
	out, err := b.Builder.Build(ctx, spec, p)
	if err == nil {
		b.h.hold("build", spec.WorkflowID)
	}
	return out, err
}

type heldCatalog struct {
	catalog.Catalog
	h holder
}

func (c heldCatalog) Record(ctx context.Context, img catalog.Image) (catalog.Image, error) {
	out, err := c.Catalog.Record(ctx, img)
	if err == nil {
		c.h.hold("publish", img.Kernel)
	}
	return out, err
}

type heldForge struct {
	forge.Forge
	h holder
}

func (f heldForge) UpdateTable(ctx context.Context, row release.Row, msg string) (forge.TableUpdate, error) {
	out, err := f.Forge.UpdateTable(ctx, row, msg)
	if err == nil {
		f.h.hold("table", row.Image)
	}
	return out, err
}

func (f heldForge) FileIssue(ctx context.Context, in forge.Issue) (forge.IssueRef, error) {
	out, err := f.Forge.FileIssue(ctx, in)
	if err == nil {
		f.h.hold("issue", in.Marker)
	}
	return out, err
}

type heldDrivers struct {
	activities.DriverForge
	h holder
}

func (d heldDrivers) BumpDockerfile(ctx context.Context, ds release.DriverSet) (forge.PullRequest, error) {
	out, err := d.DriverForge.BumpDockerfile(ctx, ds)
	if err == nil {
		d.h.hold("bump", "bump")
	}
	return out, err
}

// faultWorkerMain runs the worker of the fault tests (see TestMain).
func faultWorkerMain() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	state := os.Getenv(envFaultState)
	h := holder{dir: filepath.Join(state, "held"), holds: map[string]string{}}
	for _, kv := range strings.Split(os.Getenv(envFaultHold), ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			h.holds[k] = v
		}
	}
	set, err := wiring.Rehearsal(ctx, wiring.Options{StateDir: state, RegistryHost: os.Getenv(envFaultReg)})
	if err != nil {
		return err
	}
	set.Builds.Builder = heldBuilder{set.Builds.Builder, h}
	set.Publisher.Catalog = heldCatalog{set.Publisher.Catalog, h}
	set.Tables.Forge = heldForge{set.Tables.Forge, h}
	set.Issues.Forge = heldForge{set.Issues.Forge, h}
	set.Watch.Drivers = heldDrivers{set.Watch.Drivers, h}
	c, err := client.DialContext(ctx, client.Options{HostPort: os.Getenv(envFaultAddr), Namespace: os.Getenv(envFaultNS)})
	if err != nil {
		return err
	}
	defer c.Close()
	w := worker.New(c, release.TaskQueue, worker.Options{})
	set.Register(w)
	if err := w.Start(); err != nil {
		return err
	}
	defer w.Stop()
	fmt.Fprintln(os.Stderr, "fault worker polling; holds:", h.holds)
	<-ctx.Done()
	return nil
}

// startFaultWorker runs a worker process against the stack; holds as for envFaultHold.
func startFaultWorker(t *testing.T, stack *devstack.Stack, state, holds string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envFaultWorker+"=1", envFaultState+"="+state, envFaultReg+"="+stack.RegistryHost,
		envFaultAddr+"="+stack.TemporalAddress, envFaultNS+"="+stack.Namespace, envFaultHold+"="+holds)
	logf, err := os.Create(filepath.Join(t.TempDir(), "worker.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("worker log (pid %d):\n%s", cmd.Process.Pid, tail(string(b), 60))
		}
	})
	return cmd
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// pinnedDriver is the driver set the Dockerfile on main pins.
func pinnedDriver(t *testing.T) release.DriverSet {
	df, err := docker.Parse(docker.DriverDockerfile)
	require.NoError(t, err)
	i915, fw, ver := df.PinnedDriver()
	return release.DriverSet{I915Tag: i915, FirmwareTag: fw, DriverVersion: ver}
}

// Kill the worker process in the middle of build, publish, the table update, filing the
// issue and opening the bump pull request, each after its side effect and before the
// activity reports it; a new worker finishes every release, and each side effect exists
// exactly once, counted from the registry, the forge and the catalog.
func TestKilledWorkerSideEffectsHappenOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	state := t.TempDir()
	stack, err := devstack.Start(ctx, devstack.Config{StateDir: state, NoUI: true})
	require.NoError(t, err)
	defer stack.Stop()
	// The test's own view of the local forge and catalog, for counting.
	set, err := wiring.Rehearsal(ctx, wiring.Options{StateDir: state, RegistryHost: stack.RegistryHost})
	require.NoError(t, err)
	// New driver tags, so the driver watch opens a bump pull request.
	appendLine(t, filepath.Join(state, "forge", "driver-tags", wiring.DefaultI915Repo+".txt"), "I915_24WW45.5_803.99_23.10.72_241106.4")
	appendLine(t, filepath.Join(state, "forge", "driver-tags", wiring.DefaultFirmwareRepo+".txt"), "24WW45.1_900")

	releases := []struct{ ocp, kernel, hold string }{
		{"4.14.30", "5.14.0-284.73.1.el9_2.x86_64", "build"},
		{"4.15.20", "5.14.0-284.74.1.el9_2.x86_64", "publish"},
		{"4.16.3", "5.14.0-427.26.1.el9_4.x86_64", "table"},
		{"4.17.0", "5.14.0-427.37.1.el9_4.x86_64", "issue"},
	}
	var holds []string
	for _, r := range releases {
		holds = append(holds, r.hold+"="+r.kernel)
	}
	holds = append(holds, "bump=bump")
	first := startFaultWorker(t, stack, state, strings.Join(holds, ","))

	c, err := client.DialContext(ctx, client.Options{HostPort: stack.TemporalAddress, Namespace: stack.Namespace})
	require.NoError(t, err)
	defer c.Close()
	driver := pinnedDriver(t)
	runs := map[string]client.WorkflowRun{}
	for _, r := range releases {
		req := release.Request{Trigger: release.TriggerManual, OpenShiftVersion: r.ocp, Driver: driver, DockerfileRef: "main"}
		if r.hold == "issue" {
			req.Rehearsal.FailAt = release.StepGPUTest
		}
		id := release.WorkflowID(r.kernel, driver.DriverVersion)
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: release.TaskQueue}, workflows.Release, req)
		require.NoError(t, err)
		runs[id] = run
	}
	_, err = c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: release.DriverWatchID, TaskQueue: release.TaskQueue}, workflows.DriverWatch,
		release.DriverWatchRequest{MergePoll: time.Hour})
	require.NoError(t, err)

	// Every activity is held after its side effect.
	points := []string{"build", "publish", "table", "issue", "bump"}
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for _, p := range points {
			_, err := os.Stat(filepath.Join(state, "held", p))
			assert.NoError(c, err, "%s is held", p)
		}
	}, 3*time.Minute, 200*time.Millisecond)
	// The side effects are done, unreported: a retry must find them, not repeat them.
	journal := readJournal(t, state)
	assert.Equal(t, 1, journal[releaseTagPath(releases[1].kernel, driver)], "publish pushed its tag before the kill")
	assert.Equal(t, 1, countKernel(catalogImages(t, ctx, set), releases[1].kernel), "publish recorded its catalog image before the kill")
	table, err := set.Forge.ReadTable(ctx)
	require.NoError(t, err)
	assert.Contains(t, table, releases[2].kernel, "the table has its row before the kill")
	issuesBefore, err := set.Forge.Issues(wiring.DefaultProjectRepo)
	require.NoError(t, err)
	assert.Len(t, issuesBefore, 1, "the issue is filed before the kill")
	pulls, _ := filepath.Glob(filepath.Join(state, "forge", "pulls", "*.json"))
	assert.Len(t, pulls, 1, "the bump pull request is open before the kill")

	// Kill -9: no graceful stop, no goodbye to the server.
	killedAt := time.Now()
	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	_, _ = first.Process.Wait()
	startFaultWorker(t, stack, state, "")

	// The failed release waits for a human; a retry finishes it.
	failedID := release.WorkflowID(releases[3].kernel, driver.DriverVersion)
	waitForStatus(t, ctx, c, failedID, waitingForHuman)
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: failedID, UpdateName: release.ActionRetry,
		Args: []any{release.RetryInput{Reason: "GPU node rebooted", By: "fault-test"}}, WaitForStage: client.WorkflowUpdateStageCompleted})
	require.NoError(t, err)
	require.NoError(t, h.Get(ctx, nil))

	recs := map[string]release.Record{}
	for id, run := range runs {
		var rec release.Record
		require.NoError(t, run.Get(ctx, &rec), id)
		assert.Equal(t, release.OutcomeReleased, rec.Outcome, id)
		recs[id] = rec
	}
	t.Logf("all releases finished %s after the kill", time.Since(killedAt).Round(time.Second))

	// Registry: one tag per release, each pushed once, holding the recorded digest.
	reg := registry.NewClient()
	tags, err := reg.Tags(ctx, stack.RegistryHost+"/"+wiring.ReleasePath)
	require.NoError(t, err)
	var want []string
	for _, r := range releases {
		want = append(want, driver.DriverVersion+"-"+r.kernel)
	}
	sort.Strings(tags)
	sort.Strings(want)
	assert.Equal(t, want, tags)
	journal = readJournal(t, state)
	for _, r := range releases {
		rec := recs[release.WorkflowID(r.kernel, driver.DriverVersion)]
		assert.Equal(t, 1, journal[releaseTagPath(r.kernel, driver)], "%s: the release tag was pushed once", r.kernel)
		d, ok, err := reg.Digest(ctx, stack.RegistryHost+"/"+wiring.ReleasePath+":"+rec.Published.Tag)
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, rec.Published.Digest, d, r.kernel)
	}
	// Catalog: one record per released image.
	imgs := catalogImages(t, ctx, set)
	assert.Len(t, imgs, len(releases), "one catalog record per image")
	for _, r := range releases {
		assert.Equal(t, 1, countKernel(imgs, r.kernel), r.kernel)
	}
	// Forge: one table row and one table commit per release; one issue; one pull request.
	table, err = set.Forge.ReadTable(ctx)
	require.NoError(t, err)
	for _, r := range releases {
		assert.Equal(t, 1, strings.Count(table, driver.DriverVersion+"-"+r.kernel+"`"), "%s: one table row", r.kernel)
	}
	out, err := exec.Command("git", "-C", set.Forge.RepoDir(), "log", "--format=%s", "main").CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Equal(t, len(releases), strings.Count(string(out), "Release table: "), "one table commit per release:\n%s", out)
	iss, err := set.Forge.Issues(wiring.DefaultProjectRepo)
	require.NoError(t, err)
	require.Len(t, iss, 1, "one issue for the failed release")
	doc, err := os.ReadFile(strings.TrimPrefix(iss[0].URL, "file://"))
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(string(doc), "failed at gpu-test (round 1)"), "the failure is reported once, though filing it was retried:\n%s", doc)
	pulls, _ = filepath.Glob(filepath.Join(state, "forge", "pulls", "*.json"))
	assert.Len(t, pulls, 1, "one bump pull request")
	var wres release.DriverWatchResult
	v, err := c.QueryWorkflow(ctx, release.DriverWatchID, "", release.QueryStatus)
	require.NoError(t, err)
	require.NoError(t, v.Get(&wres))
	assert.NotEmpty(t, wres.PullRequest, "the driver watch knows its pull request and waits for the merge")
	require.NoError(t, c.TerminateWorkflow(ctx, release.DriverWatchID, "", "fault test done"))
}

func appendLine(t *testing.T, path, line string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(line + "\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func releaseTagPath(kernel string, d release.DriverSet) string {
	return "/v2/" + wiring.ReleasePath + "/manifests/" + d.DriverVersion + "-" + kernel
}

// readJournal counts the manifest pushes per path in the embedded registry's journal.
func readJournal(t *testing.T, state string) map[string]int {
	t.Helper()
	f, err := os.Open(filepath.Join(state, "registry", "manifests.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	n := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e struct{ Op, Path string }
		require.NoError(t, json.Unmarshal(sc.Bytes(), &e))
		if e.Op == "put" {
			n[e.Path]++
		}
	}
	require.NoError(t, sc.Err())
	return n
}

func catalogImages(t *testing.T, ctx context.Context, set *wiring.Set) []catalog.Image {
	t.Helper()
	imgs, err := set.Catalog.List(ctx)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	return imgs
}

func countKernel(imgs []catalog.Image, kernel string) int {
	n := 0
	for _, i := range imgs {
		if i.Kernel == kernel {
			n++
		}
	}
	return n
}
