package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"

	"dgpu-release/docker"
	"dgpu-release/internal/catalog"
	"dgpu-release/internal/devstack"
	"dgpu-release/internal/fakes"
	"dgpu-release/internal/registry"
	"dgpu-release/internal/rehearsal"
	"dgpu-release/internal/release"
	"dgpu-release/internal/wiring"
	"dgpu-release/workflows"
)

// Secrets of the outage tests: they are set where the adapters read them (environment,
// docker config) and must appear in no history and no log.
const (
	secretGitHubToken = "ghp_outageTEST0000secret1111token"
	secretCatalogKey  = "catalog-outage-TEST-secret-api-key"
	secretRegistryPwd = "registry-outage-TEST-secret-password"
	outageProject     = "5f9a0c1d2e3b4a5968778899"
)

// outage is a release setup whose registry, GitHub and catalog API sit behind fault
// injectors: the embedded registry through a proxy, and the GitHub and catalog fakes.
type outage struct {
	stack                  *devstack.Stack
	c                      client.Client
	regHost                string
	reg, ghf, catf         *fakes.Faults
	gh                     *fakes.GitHub
	cat                    *fakes.Catalog
	logs                   *syncBuffer
	driver                 release.DriverSet
	registryClient         *registry.Client
	catalogTimeout, regTTL time.Duration
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startOutage(t *testing.T, ctx context.Context) *outage {
	t.Helper()
	o := &outage{logs: &syncBuffer{}, driver: pinnedDriver(t)}
	state := t.TempDir()
	stack, err := devstack.Start(ctx, devstack.Config{StateDir: state, NoUI: true})
	require.NoError(t, err)
	t.Cleanup(stack.Stop)
	o.stack = stack

	o.reg = fakes.NewFaults(fakes.RegistryProxy(stack.RegistryHost), fakes.WithErrorBody(fakes.RegistryError))
	regSrv := httptest.NewServer(o.reg)
	t.Cleanup(regSrv.Close)
	o.regHost = strings.TrimPrefix(regSrv.URL, "http://")

	o.gh = fakes.NewGitHub(secretGitHubToken)
	o.gh.AddRepo(wiring.DefaultProjectRepo)
	o.gh.SetFile(wiring.DefaultProjectRepo, "main", docker.DriverDockerfilePath, string(docker.DriverDockerfile))
	o.gh.SetTags(wiring.DefaultI915Repo, o.driver.I915Tag)
	o.gh.SetTags(wiring.DefaultFirmwareRepo, o.driver.FirmwareTag)
	o.ghf = fakes.NewFaults(o.gh, fakes.WithErrorBody(fakes.GitHubError))
	ghSrv := httptest.NewServer(o.ghf)
	t.Cleanup(ghSrv.Close)

	o.cat = fakes.NewCatalog(secretCatalogKey, outageProject)
	o.catf = fakes.NewFaults(o.cat, fakes.WithErrorBody(fakes.CatalogError))
	catSrv := httptest.NewServer(o.catf)
	t.Cleanup(catSrv.Close)

	// The secrets live where a deployment keeps them: the environment and a docker config.
	t.Setenv("GITHUB_TOKEN", secretGitHubToken)
	t.Setenv("DGPU_CATALOG_API_KEY", secretCatalogKey)
	dockerCfg := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("dgpu-bot:" + secretRegistryPwd))
	require.NoError(t, os.WriteFile(filepath.Join(dockerCfg, "config.json"), []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, o.regHost, auth)), 0o600))
	t.Setenv("DOCKER_CONFIG", dockerCfg)
	ubi := filepath.Join(state, "ubi.txt")
	require.NoError(t, rehearsal.WriteUBIList(ubi))

	// Every log line of the worker and the adapters goes to one buffer, to be scanned.
	logger := slog.New(slog.NewTextHandler(o.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	prev := slog.Default()
	slog.SetDefault(logger)
	t.Cleanup(func() { slog.SetDefault(prev) })

	set, err := wiring.Rehearsal(ctx, wiring.Options{StateDir: state, RegistryHost: o.regHost, GitHub: true, GitHubAPIURL: ghSrv.URL + "/",
		CatalogProject: outageProject, CatalogURL: catSrv.URL + fakes.CatalogAPIPath, UBILayers: ubi})
	require.NoError(t, err)
	// Short timeouts, so that a stalled service costs this test seconds; production
	// keeps the adapters' defaults (60 s for the APIs, 2 min for a registry's answer).
	api, err := catalog.NewAPI(catalog.APIConfig{BaseURL: catSrv.URL + fakes.CatalogAPIPath, ProjectID: outageProject, HTTPClient: &http.Client{Timeout: 2 * time.Second}})
	require.NoError(t, err)
	set.Resolver.Catalog, set.Publisher.Catalog = api, api
	o.registryClient = registry.NewClientWithTimeout(2 * time.Second)
	set.Certifier.Registry, set.Publisher.Registry = o.registryClient, o.registryClient
	set.GPUTests.Tester = &rehearsal.Tester{Registry: o.registryClient}

	c, err := client.DialContext(ctx, client.Options{HostPort: stack.TemporalAddress, Namespace: stack.Namespace, Logger: tlog.NewStructuredLogger(logger)})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	o.c = c
	w := worker.New(c, release.TaskQueue, worker.Options{})
	set.Register(w)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	return o
}

func (o *outage) start(t *testing.T, ctx context.Context, ocpVersion, kernel string) (string, client.WorkflowRun) {
	t.Helper()
	req := release.Request{Trigger: release.TriggerManual, OpenShiftVersion: ocpVersion, Driver: o.driver, DockerfileRef: "main"}
	id := release.WorkflowID(kernel, o.driver.DriverVersion)
	run, err := o.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: release.TaskQueue}, workflows.Release, req)
	require.NoError(t, err)
	return id, run
}

func (o *outage) history(t *testing.T, ctx context.Context, id string) (*historypb.History, string) {
	t.Helper()
	h := fetchHistory(t, ctx, o.c, id, "")
	b, err := protojson.Marshal(h)
	require.NoError(t, err)
	return h, string(b)
}

// attempts counts how often each activity type was started, from a history.
func attempts(h *historypb.History) map[string]int32 {
	types := map[int64]string{}
	n := map[string]int32{}
	for _, e := range h.Events {
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil {
			types[e.EventId] = a.GetActivityType().GetName()
		}
		if a := e.GetActivityTaskStartedEventAttributes(); a != nil {
			n[types[a.ScheduledEventId]] += a.Attempt
		}
	}
	return n
}

func assertNoSecrets(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range []string{secretGitHubToken, secretCatalogKey, secretRegistryPwd, base64.StdEncoding.EncodeToString([]byte("dgpu-bot:" + secretRegistryPwd))} {
		assert.NotContains(t, text, s, "%s holds a secret", what)
	}
}

// A registry, GitHub and the catalog API that fail with 5xx, lose answers after doing the
// work, and stall past the client's timeout, for a while: the release retries with
// backoff and finishes, and every side effect exists once. The history and the logs of
// the run hold none of the secrets it used.
func TestOutagesAreRetriedWithoutDuplicatesAndLeakNoSecret(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	o := startOutage(t, ctx)
	releasePath := "/v2/" + wiring.ReleasePath + "/"
	regManifest := o.reg.On(http.MethodHead, releasePath+"manifests/").FailNext(2, http.StatusServiceUnavailable)
	regStall := o.reg.On(http.MethodGet, "/v2/"+wiring.StagingPath+"/blobs/").StallNext(1, time.Minute)
	ghRead := o.ghf.On(http.MethodGet, "/repos/"+wiring.DefaultProjectRepo+"/contents/").FailNext(3, http.StatusBadGateway)
	ghWrite := o.ghf.On(http.MethodPut, "/repos/"+wiring.DefaultProjectRepo+"/contents/"+release.TablePath).ServeThenFailNext(1, http.StatusBadGateway)
	catStall := o.catf.On(http.MethodGet, fakes.CatalogAPIPath).StallNext(1, time.Minute)
	catGet := o.catf.On(http.MethodGet, fakes.CatalogAPIPath).FailNext(2, http.StatusServiceUnavailable)
	catCreate := o.catf.On(http.MethodPost, fakes.CatalogAPIPath+"images").ServeThenFailNext(1, http.StatusGatewayTimeout)

	kernel := "5.14.0-427.37.1.el9_4.x86_64"
	id, run := o.start(t, ctx, "4.17.0", kernel)
	var rec release.Record
	runCtx, cancelRun := context.WithTimeout(ctx, 90*time.Second)
	defer cancelRun()
	if err := run.Get(runCtx, &rec); err != nil {
		st, _ := statusOf(t, ctx, o.c, id)
		desc, _ := o.c.DescribeWorkflowExecution(ctx, id, "")
		t.Logf("GitHub calls: %v", o.gh.Calls())
		t.Fatalf("the release did not finish: %v\nstatus: step %s, last evidence %+v\npending: %v", err, st.Step, st.Evidence[len(st.Evidence)-1], desc.GetPendingActivities())
	}
	require.Equal(t, release.OutcomeReleased, rec.Outcome)

	// Every fault was met.
	for name, s := range map[string]fakes.Scope{"registry manifest 503": regManifest, "registry blob stall": regStall, "GitHub read 502": ghRead,
		"GitHub table write, answer lost": ghWrite, "catalog stall": catStall, "catalog read 503": catGet, "catalog create, answer lost": catCreate} {
		c := s.Counts()
		assert.Positive(t, c.Failed+c.Stalled+c.Abandoned, "%s: the fault was met (%+v)", name, c)
	}
	// Once each: the image under its tag, its catalog record, its table commit; no issue.
	d, ok, err := registry.NewClient().Digest(ctx, o.stack.RegistryHost+"/"+wiring.ReleasePath+":"+rec.Published.Tag)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, rec.Published.Digest, d)
	assert.Len(t, o.cat.ImagesByDigest(rec.Published.Digest), 1, "one catalog record for the image, though the first create's answer was lost")
	var tableCommits int
	for _, cm := range o.gh.Commits(wiring.DefaultProjectRepo) {
		if cm.Path == release.TablePath {
			tableCommits++
		}
	}
	assert.Equal(t, 1, tableCommits, "one table commit, though the first write's answer was lost")
	table, _ := o.gh.File(wiring.DefaultProjectRepo, "main", release.TablePath)
	assert.Equal(t, 1, strings.Count(table, rec.Published.Tag+"`"), "one table row")
	assert.Empty(t, o.gh.Issues(wiring.DefaultProjectRepo), "no issue: retries absorbed the outage")

	// The secrets were used, and are nowhere in the history or the logs.
	assert.Contains(t, o.gh.Tokens(), secretGitHubToken)
	assert.Contains(t, o.cat.APIKeys(), secretCatalogKey)
	_, hist := o.history(t, ctx, id)
	assert.Contains(t, hist, kernel, "the history was read")
	assertNoSecrets(t, "the workflow history", hist)
	logs := o.logs.String()
	assert.Contains(t, logs, "ExecuteActivity", "the worker's logs were captured")
	assertNoSecrets(t, "the logs", logs)
}

// Permanent errors fail fast with a clear message: a catalog that refuses the API key
// stops publish on its first attempt, before anything is copied; GitHub refusing the
// token stops resolve on its first attempt.
func TestPermanentErrorsFailFastWithAClearMessage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o := startOutage(t, ctx)
	refuse := o.catf.On(http.MethodGet, fakes.CatalogAPIPath+"projects/").Always(http.StatusUnauthorized)

	kernel := "5.14.0-427.37.1.el9_4.x86_64"
	id, _ := o.start(t, ctx, "4.17.0", kernel)
	st := waitForStatus(t, ctx, o.c, id, waitingForHuman)
	last := st.Evidence[len(st.Evidence)-1]
	assert.Equal(t, release.StepPublish, last.Step)
	assert.Contains(t, last.Summary, "401")
	assert.Contains(t, last.Summary, "DGPU_CATALOG_API_KEY", "the message says which secret to check")
	assert.Positive(t, refuse.Counts().Failed)
	h, _ := o.history(t, ctx, id)
	assert.Equal(t, int32(1), attempts(h)["PublishImage"], "publish is not retried on a refused key")
	_, ok, err := registry.NewClient().Digest(ctx, o.stack.RegistryHost+"/"+wiring.ReleasePath+":"+release.ImageTag(o.driver.DriverVersion, kernel))
	require.NoError(t, err)
	assert.False(t, ok, "nothing is published when the catalog refuses us")
	require.NoError(t, o.c.TerminateWorkflow(ctx, id, "", "test done"))

	// GitHub refuses the token: resolve fails on its first attempt and says so.
	o.ghf.On("", "/repos/").Always(http.StatusUnauthorized)
	kernel = "5.14.0-427.26.1.el9_4.x86_64"
	id, _ = o.start(t, ctx, "4.16.3", kernel)
	st = waitForStatus(t, ctx, o.c, id, func(st release.Status) bool { return st.Step == release.StepWaiting })
	assert.Equal(t, release.StepResolve, st.Evidence[0].Step)
	assert.Contains(t, st.Evidence[0].Summary, "401")
	h, _ = o.history(t, ctx, id)
	assert.Equal(t, int32(1), attempts(h)["Resolve"], "resolve is not retried on a refused token")
	require.NoError(t, o.c.TerminateWorkflow(ctx, id, "", "test done"))
}
