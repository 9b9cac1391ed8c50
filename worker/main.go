// Command worker runs the release workflows and activities.
//
// It connects to TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE (and the TEMPORAL_TLS_* variables),
// or with --dev starts the embedded default (Temporal server, web UI and OCI registry in
// this process) and serves it until stopped, so that `starter` commands in other terminals
// use it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"dgpu-release/internal/certify"
	"dgpu-release/internal/devstack"
	"dgpu-release/internal/metrics"
	"dgpu-release/internal/ocp"
	"dgpu-release/internal/release"
	"dgpu-release/internal/tclient"
	"dgpu-release/internal/wiring"
)

type flags struct {
	dev                     bool
	stateDir                string
	backend                 string
	registry                string
	policy                  string
	projectRepo, driverRepo string
	logLevel                string
	frontend, ui, reg       int
	catalogProject          string
	catalogURL              string
	ubiLayers               string
	preflight               string
	graphURL, channels      string
	github                  bool
	githubAPI               string
	tablePR                 bool
	i915Repo, firmwareRepo  string
	kubeconfig              string
	buildNS, gitURI         string
	pushSecret              string
	testNS, canary          string
	testImage, testCommand  string
	debugNS                 string
	healthAddr              string
}

func main() {
	var f flags
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.BoolVar(&f.dev, "dev", false, "start the embedded default (Temporal server, web UI, registry) and serve it")
	fs.StringVar(&f.stateDir, "state", tclient.DefaultStateDir(), "state folder of the embedded default and the local forge and catalog (env DGPU_STATE_DIR)")
	fs.StringVar(&f.backend, "backend", "rehearsal", "backends for build, GPU test and debug: rehearsal (stand-ins) or cluster (OpenShift Builds, KMM, Jobs)")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "cluster backend: kubeconfig file (default $KUBECONFIG, ~/.kube/config, or in-cluster)")
	fs.StringVar(&f.buildNS, "build-namespace", "dgpu-release", "cluster backend: namespace of the OpenShift Builds")
	fs.StringVar(&f.gitURI, "git-uri", "", "cluster backend: the project repository the builds clone")
	fs.StringVar(&f.pushSecret, "push-secret", "", "cluster backend: secret with push credentials for the staging repository")
	fs.StringVar(&f.testNS, "test-namespace", "dgpu-release", "cluster backend: namespace of the GPU test Module and Job")
	fs.StringVar(&f.canary, "canary", "dgpu-release/canary=true", "cluster backend: label selector of the canary GPU nodes")
	fs.StringVar(&f.testImage, "test-image", "", "cluster backend: image of the GPU test tools (default UBI minimal)")
	fs.StringVar(&f.testCommand, "test-command", "clinfo", "cluster backend: GPU test command, space separated")
	fs.StringVar(&f.debugNS, "debug-namespace", "intel-dgpu-debug", "cluster backend: namespace of the debug workloads")
	fs.StringVar(&f.healthAddr, "health-addr", "", "serve /healthz, /readyz and Prometheus /metrics on this address (such as :8080)")
	fs.StringVar(&f.registry, "registry", "", "registry host for staged and released images (required without --dev)")
	fs.StringVar(&f.policy, "policy", string(certify.PolicyRoot), "certification policy: container, root, scratch-nonroot, scratch-root")
	fs.StringVar(&f.projectRepo, "project-repo", wiring.DefaultProjectRepo, "owner/name that gets issues about failed releases")
	fs.StringVar(&f.driverRepo, "driver-repo", wiring.DefaultDriverRepo, "owner/name that gets escalated driver bugs")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.catalogProject, "catalog-project", "", "certification project ID: record images in the catalog API (key in $DGPU_CATALOG_API_KEY) instead of the local catalog")
	fs.StringVar(&f.catalogURL, "catalog-url", "", "catalog API base URL (default https://catalog.redhat.com/api/containers/v1/)")
	fs.StringVar(&f.ubiLayers, "ubi-layers", "", "file of certified UBI layer IDs for BasedOnUbi (default: the catalog API when configured)")
	fs.StringVar(&f.preflight, "preflight", "", "certify with this installed openshift-preflight binary instead of the native checks")
	fs.StringVar(&f.graphURL, "graph-url", "", "OpenShift update graph URL (such as "+ocp.DefaultGraphURL+"): take OpenShift releases from it instead of the sample list")
	fs.StringVar(&f.channels, "channels", "stable-4.16", "comma-separated update channels to read with --graph-url")
	fs.BoolVar(&f.github, "github", false, "use GitHub for the Dockerfile, release table, issues and driver tags (token in $GITHUB_TOKEN) instead of the local forge")
	fs.StringVar(&f.githubAPI, "github-api-url", "", "GitHub API URL (GitHub Enterprise: https://HOST/api/v3/)")
	fs.BoolVar(&f.tablePR, "table-pr", false, "with --github: update the release table by pull request instead of a commit to main")
	fs.StringVar(&f.i915Repo, "i915-repo", wiring.DefaultI915Repo, "owner/name of the i915 backports repository")
	fs.StringVar(&f.firmwareRepo, "firmware-repo", wiring.DefaultFirmwareRepo, "owner/name of the GPU firmware repository")
	fs.IntVar(&f.frontend, "temporal-port", devstack.DefaultFrontendPort, "--dev: Temporal frontend port")
	fs.IntVar(&f.ui, "ui-port", devstack.DefaultUIPort, "--dev: web UI port")
	fs.IntVar(&f.reg, "registry-port", devstack.DefaultRegistryPort, "--dev: registry port")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, f); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, f flags) error {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q is not valid: accepted are debug, info, warn, error", f.logLevel)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	slog.SetDefault(logger)
	var clusterOpts *wiring.ClusterOptions
	switch f.backend {
	case "rehearsal":
	case "cluster":
		clusterOpts = &wiring.ClusterOptions{Kubeconfig: f.kubeconfig, BuildNamespace: f.buildNS, GitURI: f.gitURI, PushSecret: f.pushSecret,
			TestNamespace: f.testNS, Canary: f.canary, TestImage: f.testImage, TestCommand: strings.Fields(f.testCommand), DebugNamespace: f.debugNS}
	default:
		return fmt.Errorf("--backend %q is not valid: accepted are rehearsal and cluster", f.backend)
	}
	policy, err := certify.ParsePolicy(f.policy)
	if err != nil {
		return fmt.Errorf("--%w", err)
	}
	opts, err := tclient.FromEnv(logger)
	if err != nil {
		return err
	}
	registryHost := f.registry
	if f.dev {
		if tclient.Configured() {
			return fmt.Errorf("--dev starts its own Temporal server: unset %s, or drop --dev to use it", tclient.EnvAddress)
		}
		start := time.Now()
		stack, err := devstack.Start(ctx, devstack.Config{StateDir: f.stateDir, FrontendPort: f.frontend, UIPort: f.ui, RegistryPort: f.reg})
		if err != nil {
			return err
		}
		defer stack.Stop()
		logger.Info("embedded default started", "temporal", stack.TemporalAddress, "ui", stack.UIURL, "registry", stack.RegistryHost, "state", f.stateDir, "ready_ms", time.Since(start).Milliseconds())
		opts.HostPort, opts.Namespace = stack.TemporalAddress, stack.Namespace
		registryHost = stack.RegistryHost
	} else {
		if !tclient.Configured() {
			return fmt.Errorf("no Temporal service: set %s (and %s), or run with --dev for the embedded default", tclient.EnvAddress, tclient.EnvNamespace)
		}
		if registryHost == "" {
			return errors.New("--registry is required without --dev: the registry host that receives staged and released images")
		}
	}
	set, err := wiring.Rehearsal(ctx, wiring.Options{StateDir: f.stateDir, RegistryHost: registryHost, ProjectRepo: f.projectRepo, DriverRepo: f.driverRepo, Policy: policy,
		CatalogProject: f.catalogProject, CatalogURL: f.catalogURL, UBILayers: f.ubiLayers, Preflight: f.preflight,
		GraphURL: f.graphURL, Channels: splitList(f.channels), GitHub: f.github, GitHubAPIURL: f.githubAPI, TableByPR: f.tablePR,
		I915Repo: f.i915Repo, FirmwareRepo: f.firmwareRepo, Cluster: clusterOpts})
	if err != nil {
		return err
	}
	for _, s := range set.StandIns() {
		logger.Warn("stand-in in use", "what", s)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	opts.MetricsHandler = metrics.New(reg)
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return fmt.Errorf("connect to Temporal at %s: %w", opts.HostPort, err)
	}
	defer c.Close()
	w := worker.New(c, release.TaskQueue, worker.Options{})
	set.Register(w)
	logger.Info("worker polling", "task_queue", release.TaskQueue, "namespace", opts.Namespace, "backends", set.Describe())
	if f.dev {
		fmt.Fprintf(os.Stderr, "\nEmbedded default is up. In another terminal:\n  go run ./starter release --trigger kernel\n  go run ./starter list\n")
	}
	var ready atomic.Bool
	if f.healthAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
			if !ready.Load() {
				http.Error(w, "worker not polling yet", http.StatusServiceUnavailable)
				return
			}
			_, _ = w.Write([]byte("ok\n"))
		})
		ln, err := net.Listen("tcp", f.healthAddr)
		if err != nil {
			return fmt.Errorf("--health-addr %s: %w", f.healthAddr, err)
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
	}
	if err := w.Start(); err != nil {
		return err
	}
	defer w.Stop()
	ready.Store(true)
	<-ctx.Done()
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
